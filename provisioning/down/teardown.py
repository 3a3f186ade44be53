"""``provision down``: remove everything a run made, and everything made inside its tenants.

What is removed is decided by the ledger only (the run's tenant ids in ``run_tenants``)
and the live foreign-key graph (``fkgraph``): every row that reaches one of those tenants
through declared foreign keys or the tenant column.  Nothing is ever chosen by name.

Order of work for one run, each step safe to interrupt:

1. take the run's advisory lock (a live ``up`` or another ``down`` of it → refuse);
2. check, reading only: rows of the run that other tenants' rows reference (cross-tenant
   references) stop the teardown before anything is written;
3. mark the run ``tearing_down`` (committed);
4. delete children before parents, table by table, one transaction per batch of tenants,
   whatever the platform's ``ON DELETE`` rules (triggers and constraints stay on);
5. verify that no table still holds a row of the run's tenants (else ``TeardownIncomplete``);
6. mark the run ``removed`` (history kept; ``forget`` deletes it) and delete its credentials.

A ``down`` that dies between 3 and 6 leaves the run ``tearing_down``; the next ``down``
starts again at 1 and finds only what is left.

This module runs those steps; the steps themselves live beside it: ``selection`` (which
runs, their graphs), ``check`` (2), ``execute`` (4 and 5), ``history`` (credentials and
``forget``), and ``plan`` (``--dry-run``, the same counts as 2 without the lock).  The
public names of the stage (``provision_down``, ``plan_down``, ``forget_history`` and
the settings and results of ``model``) are importable from here.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from ..errors import Interrupted, TeardownIncomplete, first_line
from ..progress import ProgressCallback, ProgressEvent, null_progress
from ..runs.ledger import (
    RunRecord,
    acquire_run_lock,
    find_run,
    forget_run,
    release_run_lock,
    run_tenant_ids,
    set_status,
)
from ..runs.tenants import stored_tenants_table, take_tenants_offline
from ..schema.fkgraph import ForeignKeyGraph
from ..target.resolve import ResolvedDatabase
from ..target.session import DB_ERRORS, DOWN_SESSION, chunked, close_connection, connect_for, open_connection
from .check import needed_paths
from .execute import delete_run_rows, verify_removed
from .failures import delete_failed, refused
from .history import forget_history, remove_credentials
from .model import DownPlan, DownResult, DownSettings, RunPlan, RunTeardown, TablePlan
from .plan import plan_down
from .selection import RunGraphs, run_schema_map, select_runs

__all__ = [
    "DownPlan",
    "DownResult",
    "DownSettings",
    "RunPlan",
    "RunTeardown",
    "TablePlan",
    "forget_history",
    "plan_down",
    "provision_down",
]


async def _take_tenants_offline(
    conn: asyncpg.Connection, run: RunRecord, ids: list[str], settings: DownSettings
) -> None:
    """Put the run's tenants on hold (``runs.tenants``) before the first delete.

    The platform refuses logins to tenants that are not 'active', so a teardown that stops
    half-way (a killed process, a lost connection) never leaves a half-deleted tenant that
    still serves its users.  Skipped when the tenants table has no status column.
    """
    table = stored_tenants_table(run, run_schema_map(settings, run))
    await take_tenants_offline(conn, table, run.settings.get("id_kind"), ids)


async def _remove_rows(
    conn: asyncpg.Connection,
    db: ResolvedDatabase,
    graph: ForeignKeyGraph,
    run: RunRecord,
    ids: list[str],
    settings: DownSettings,
    progress: ProgressCallback,
) -> dict[str, int]:
    """Steps 2 to 5 of the module docstring for one run whose lock ``conn`` holds."""
    run_id = run.run_id
    progress(ProgressEvent("phase", name="check", data={"run_id": run_id}))
    chunks = chunked(ids, settings.batch_tenants)
    try:
        needed = await needed_paths(conn, graph, run_id, chunks)
    except DB_ERRORS as exc:
        raise TeardownIncomplete(
            f"Checking run {run_id}'s rows failed ({first_line(exc)}); nothing was deleted.", run_id=run_id
        ) from exc
    extra = [await open_connection(db, DOWN_SESSION) for _ in range(min(settings.jobs, len(chunks)) - 1)]
    try:
        try:  # the first write: a read-only role or database says no here, before any delete
            async with conn.transaction():
                await _take_tenants_offline(conn, run, ids, settings)
                await set_status(conn, run_id, "tearing_down", schema=settings.ledger_schema)
        except asyncpg.PostgresError as exc:
            raise refused(exc, "provision down") from exc
        progress(ProgressEvent("phase", name="delete", data={"run_id": run_id}))
        deleted = await delete_run_rows([conn, *extra], graph, needed, run_id, chunks, progress)
    finally:
        for c in extra:
            await close_connection(c)
    progress(ProgressEvent("phase", name="verify", data={"run_id": run_id}))
    try:
        await verify_removed(conn, graph, run_id, chunks)
    except DB_ERRORS as exc:
        raise delete_failed(run_id, "(verification)", exc) from exc
    return deleted


async def _down_run(
    conn: asyncpg.Connection,
    db: ResolvedDatabase,
    graphs: RunGraphs,
    run_id: str,
    settings: DownSettings,
    progress: ProgressCallback,
) -> RunTeardown:
    started = time.monotonic()
    schema = settings.ledger_schema
    await acquire_run_lock(conn, run_id)
    try:
        run = await find_run(conn, run_id, schema)  # again, under the lock
        removed_now = run.status != "removed"
        deleted: dict[str, int] = {}
        if removed_now:
            progress(
                ProgressEvent(
                    "info",
                    message=f"run {run_id} ({run.status}, {run.tenant_count} tenants)",
                    data={"run_id": run_id},
                )
            )
            ids = await run_tenant_ids(conn, run_id, schema)
            if ids:
                try:
                    deleted = await _remove_rows(conn, db, await graphs.get(run), run, ids, settings, progress)
                except asyncio.CancelledError:
                    raise Interrupted(
                        f"Interrupted: run {run_id} is not fully removed; 'provision down {run_id}' finishes the job."
                    ) from None
            await set_status(conn, run_id, "removed", schema=schema)
        creds = remove_credentials(settings.state_dir, run_id)
        if settings.forget:
            await forget_run(conn, run_id, schema)
        return RunTeardown(
            run_id=run_id,
            previous_status=run.status,
            removed=removed_now,
            rows=deleted,
            seconds=time.monotonic() - started,
            forgotten=settings.forget,
            credentials_removed=creds,
        )
    finally:
        if not conn.is_closed():
            try:
                await release_run_lock(conn, run_id)
            except DB_ERRORS:
                pass


async def provision_down(settings: DownSettings, progress: ProgressCallback = null_progress) -> DownResult:
    """Tear down one run, the newest, or all; see the module docstring for the order of work."""
    started = time.monotonic()
    conn, db = await connect_for(settings, DOWN_SESSION)
    try:
        graphs = RunGraphs(conn, settings, progress)
        runs = await select_runs(conn, settings)
        results = [await _down_run(conn, db, graphs, r.run_id, settings, progress) for r in runs]
        for w in graphs.warnings:
            progress(ProgressEvent("warning", message=w))
        return DownResult(db.masked, tuple(results), graphs.warnings, time.monotonic() - started)
    finally:
        await close_connection(conn)
