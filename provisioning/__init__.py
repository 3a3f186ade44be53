"""Provisioning for the Agentic Platform: ``up`` makes a run's data, ``down`` removes it.

The public face: the names of ``api`` (loaded on first use, so that importing a small
module such as ``errors`` stays cheap), the exception root and the progress events.

Stages, in the order a run passes them (each imports only those after it):
``up`` / ``down`` → ``runs`` (ledger, pool files) and ``generate`` (scales, value pools,
row builders, passwords) → ``schema`` (concepts, reflection, schema map, FK graph) →
``target`` (URL and guard, resolver, embedded server, sessions, the binary COPY loop) →
``errors``, ``progress``, ``files``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import ProvisionError
from .progress import ProgressCallback, ProgressEvent

if TYPE_CHECKING:
    from .api import (
        DownPlan,
        DownResult,
        DownSettings,
        ResolvedDatabase,
        UpPlan,
        UpResult,
        UpSettings,
        plan_down,
        plan_up,
        provision_down,
        provision_up,
        resolve_database,
    )

_API = (
    "DownPlan",
    "DownResult",
    "DownSettings",
    "ResolvedDatabase",
    "UpPlan",
    "UpResult",
    "UpSettings",
    "plan_down",
    "plan_up",
    "provision_down",
    "provision_up",
    "resolve_database",
)

__all__ = [
    "DownPlan",
    "DownResult",
    "DownSettings",
    "ProgressCallback",
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
]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(".api", __name__), name)
