"""Locust scenarios for the Agentic Platform: pooled accounts, the guide's mixes, profiles and gate.

Run them with ``locust -f scenarios/locustfile.py`` (see that file).  The modules:
``users`` (the simulated users), ``pool`` (the credentials pool across workers),
``credentials`` (reading ``provision up``'s pool and manifest), ``routes`` (endpoint
paths), ``shapes`` (load profiles), ``gate`` and ``results`` (pass/fail and figures),
``metrics`` (Prometheus ``/metrics``), ``options`` and ``hooks`` (Locust wiring).

Importing this package does not import Locust (which patches the standard library
through gevent); import the submodules you need.
"""

from __future__ import annotations

__all__: list[str] = []
