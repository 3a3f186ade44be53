"""The toolkit's importable async API: provision a run, tear it down, run the demo.

The ``provision`` CLI (``cli.py``) is a thin layer over these names.  Exports load
lazily so that importing a small module (``dburl``, ``errors``) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = [
    "DemoResult",
    "DemoSettings",
    "DownPlan",
    "DownResult",
    "DownSettings",
    "ProgressEvent",
    "ProvisionError",
    "ResolvedDatabase",
    "UpPlan",
    "UpResult",
    "UpSettings",
    "__version__",
    "plan_down",
    "plan_up",
    "provision_down",
    "provision_up",
    "resolve_database",
    "run_demo",
]

_EXPORTS = {
    "DemoResult": "demo",
    "DemoSettings": "demo",
    "DownPlan": "teardown",
    "DownResult": "teardown",
    "DownSettings": "teardown",
    "ProgressEvent": "progress",
    "ProvisionError": "errors",
    "ResolvedDatabase": "database",
    "UpPlan": "upplan",
    "UpResult": "upsettings",
    "UpSettings": "upsettings",
    "plan_down": "teardown",
    "plan_up": "upplan",
    "provision_down": "teardown",
    "provision_up": "up",
    "resolve_database": "database",
    "run_demo": "demo",
}

if TYPE_CHECKING:
    from .database import ResolvedDatabase, resolve_database
    from .demo import DemoResult, DemoSettings, run_demo
    from .errors import ProvisionError
    from .progress import ProgressEvent
    from .teardown import DownPlan, DownResult, DownSettings, plan_down, provision_down
    from .up import provision_up
    from .upplan import UpPlan, plan_up
    from .upsettings import UpResult, UpSettings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
