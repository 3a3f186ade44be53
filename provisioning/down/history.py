"""What is left of a run after its rows are gone: its credentials files and its ledger history."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

from ..errors import InputError
from ..runs.ledger import find_run, forget_removed_runs, forget_run
from ..runs.poolfile import remove_run_dir
from ..target.session import DOWN_SESSION, close_connection, connect_for
from ..target.statedir import default_state_dir
from .failures import refused
from .model import DownSettings

__all__ = ["forget_history", "remove_credentials"]

_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def remove_credentials(state_dir: Path | None, run_id: str) -> bool:
    """Delete ``<state_dir>/runs/<run_id>/`` (only for a plain run id: the ledger may be shared)."""
    if not _RUN_ID.fullmatch(run_id):
        return False
    return remove_run_dir(state_dir if state_dir is not None else default_state_dir(), run_id)


async def forget_history(settings: DownSettings) -> list[str]:
    """Delete ledger history: run ``settings.run_id`` (it must be ``removed``), or with
    ``all_runs`` every ``removed`` run.  Returns the ids forgotten."""
    conn, _ = await connect_for(settings, DOWN_SESSION)
    try:
        if settings.run_id is None:
            if not settings.all_runs:
                raise InputError(
                    "Name a run to forget, or run 'provision runs --prune' to forget every removed run."
                )
            try:
                return await forget_removed_runs(conn, settings.ledger_schema)
            except asyncpg.PostgresError as exc:
                raise refused(exc, "forgetting removed runs") from exc
        run = await find_run(conn, settings.run_id, settings.ledger_schema)
        if run.status != "removed":
            raise InputError(
                f"Run {run.run_id} is '{run.status}', not removed; remove it with 'provision down {run.run_id}' first."
            )
        try:
            await forget_run(conn, run.run_id, settings.ledger_schema)
        except asyncpg.PostgresError as exc:
            raise refused(exc, "forgetting a run") from exc
        return [run.run_id]
    finally:
        await close_connection(conn)
