"""Locust entry point of the agentic-loadkit scenarios: ``locust -f scenarios/locustfile.py``.

Works with the web UI, headless, distributed (``--master``/``--worker``) and with
``--processes``.  It exposes exactly the user classes and ONE load shape:

* ``AgenticPlatformUser`` - the guide's mixed user (the default when no class is named);
* ``ReadOnlyUser`` - the guide's read-only user (name it: ``... ReadOnlyUser``);
* ``TenantIsolationProbe`` - requests other tenants' objects (``--isolation-probes N``);
* ``ProfileShape`` - the guide's profiles (``--load-profile light|medium|heavy|spike``),
  inactive unless ``--load-profile`` is given.

Typical runs (the pool defaults to the newest ``provision up`` run)::

    locust -f scenarios/locustfile.py --host http://127.0.0.1:8000 --headless -u 10 -r 2 -t 1m
    locust -f scenarios/locustfile.py --config scenarios/profiles/light.conf --host ...
    locust -f scenarios/locustfile.py --master --expect-workers 2 ...   # + 2 x --worker

``locust --help`` lists the scenarios' own options under "Agentic loadkit".
"""

from __future__ import annotations

from agentic_loadkit.scenarios import hooks as _hooks  # noqa: F401  (registers the event listeners)
from agentic_loadkit.scenarios.isolation import TenantIsolationProbe
from agentic_loadkit.scenarios.shapes import ProfileShape
from agentic_loadkit.scenarios.users import AgenticPlatformUser, ReadOnlyUser

__all__ = ["AgenticPlatformUser", "ProfileShape", "ReadOnlyUser", "TenantIsolationProbe"]
