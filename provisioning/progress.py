"""Progress reporting: library code calls a callback; the CLI renders it with rich.

Library code never prints.  Every long operation takes ``progress: ProgressCallback``
and emits ``ProgressEvent`` values; ``null_progress`` ignores them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["EventKind", "ProgressCallback", "ProgressEvent", "null_progress"]

EventKind = Literal["phase", "table_start", "rows", "table_done", "info", "warning"]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of work.

    - ``phase``: a new phase begins (``name``: "reflect", "hash", "load", "analyze", ...).
    - ``table_start``: ``table`` will get ``total`` rows.
    - ``rows``: ``count`` more rows for ``table``.
    - ``table_done``: ``table`` finished.
    - ``info`` / ``warning``: a message for the user (``message``), never containing secrets.
    """

    kind: EventKind
    name: str = ""
    table: str = ""
    total: int | None = None
    count: int = 0
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


ProgressCallback = Callable[[ProgressEvent], None]


def null_progress(event: ProgressEvent) -> None:
    """Ignore progress."""

