"""How ``provision down`` words a refusal before anything was deleted, and a failed delete."""

from __future__ import annotations

import asyncpg

from ..errors import DatabaseRefused, TeardownIncomplete, first_line

__all__ = ["delete_failed", "refused"]

# a role without the privilege, a read-only transaction or standby, a lock not granted in time
_REFUSED_STATES = ("42501", "25006", "55P03")


def refused(exc: asyncpg.PostgresError, command: str) -> Exception:
    """``DatabaseRefused`` (exit 15) for a refusal before anything was deleted; else ``exc`` itself."""
    if str(getattr(exc, "sqlstate", "") or "") in _REFUSED_STATES:
        return DatabaseRefused(
            f"PostgreSQL refused what {command} needs ({first_line(exc)}); nothing was deleted."
        )
    return exc


def delete_failed(run_id: str, table: str, exc: BaseException) -> TeardownIncomplete:
    """A delete (or the verification after it) failed half-way: the next ``down`` resumes the run."""
    text = first_line(exc)
    return TeardownIncomplete(
        f"Deleting run {run_id}'s rows from table {table} failed ({text}); the run stays 'tearing_down' "
        f"and 'provision down {run_id}' resumes it.",
        run_id=run_id,
        table=table,
    )
