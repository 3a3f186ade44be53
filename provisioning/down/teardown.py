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
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from ..errors import DatabaseRefused, InputError, Interrupted, RunNotFound, TeardownIncomplete, first_line
from ..progress import ProgressCallback, ProgressEvent, null_progress
from ..runs.ledger import (
    RunRecord,
    acquire_run_lock,
    find_run,
    forget_removed_runs,
    forget_run,
    latest_run,
    ledger_exists,
    list_runs,
    release_run_lock,
    run_is_live,
    run_tenant_ids,
    set_status,
)
from ..runs.poolfile import remove_run_dir
from ..runs.tenants import stored_tenants_table, take_tenants_offline
from ..schema.fkgraph import ForeignKeyGraph, GraphTable, reflect_graph
from ..schema.fkgraph import Path as FkPath
from ..schema.schemamap import SchemaMap, parse_schema_map
from ..target.resolve import ResolvedDatabase
from ..target.session import (
    DB_ERRORS,
    DOWN_SESSION,
    chunked,
    close_connection,
    connect_for,
    delete_settings,
    index_planner,
    open_connection,
    read_one,
)
from ..target.statedir import default_state_dir
from .model import DownPlan, DownResult, DownSettings, RunPlan, RunTeardown, TablePlan
from .sql import RUN, check_sql, delete_sql, nullify_sql, path_indexed, path_label, residue_sql

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

_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# --- choosing runs and reflecting the graph ---------------------------------------------------------------


async def _select_runs(conn: asyncpg.Connection, settings: DownSettings) -> list[RunRecord]:
    try:
        return await _select_runs_unguarded(conn, settings)
    except asyncpg.PostgresError as exc:  # a role that may not even read the ledger
        raise _refused(exc, "provision down") from exc


async def _select_runs_unguarded(conn: asyncpg.Connection, settings: DownSettings) -> list[RunRecord]:
    schema = settings.ledger_schema
    if settings.run_id is not None:
        return [await find_run(conn, settings.run_id, schema)]
    if not await ledger_exists(conn, schema):
        raise RunNotFound("This database has no run ledger, so it has no run to remove.")
    if settings.all_runs:
        return list(reversed(await list_runs(conn, schema=schema)))  # oldest first
    return [await latest_run(conn, schema=schema)]


def _schema_map(settings: DownSettings, run: RunRecord) -> SchemaMap:
    if settings.schema_map is not None:
        return settings.schema_map
    stored = run.settings.get("schema_map")
    if isinstance(stored, dict):
        return parse_schema_map(stored, source=f"stored with run {run.run_id}")
    return SchemaMap()


class _Graphs:
    """One reflection per distinct (schema, tenants table, tenant column) within a command."""

    def __init__(self, conn: asyncpg.Connection, settings: DownSettings, progress: ProgressCallback) -> None:
        self.conn, self.settings, self.progress = conn, settings, progress
        self.cache: dict[tuple[str, str, str], ForeignKeyGraph] = {}

    async def get(self, run: RunRecord) -> ForeignKeyGraph:
        m = _schema_map(self.settings, run)
        key = (m.schema, m.table_name("tenants"), m.tenant_column)
        if key not in self.cache:
            self.progress(ProgressEvent("phase", name="reflect"))
            self.cache[key] = await reflect_graph(
                self.conn,
                tenants_schema=key[0],
                tenants_table=key[1],
                tenant_column=key[2],
                exclude_schemas=(self.settings.ledger_schema,),
            )
        return self.cache[key]

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w for g in self.cache.values() for w in g.warnings))

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for g in self.cache.values() for n in g.notes))


# --- the plan (read only) ---------------------------------------------------------------------------------


async def _path_counts(
    conn: asyncpg.Connection,
    graph: ForeignKeyGraph,
    table: GraphTable,
    chunks: list[list[str]],
    indexes: Sequence[int],
    *,
    exact: bool = True,
) -> dict[int, tuple[int, int]]:
    """``check_sql`` counts per path, batch by batch (each batch anchors the plan on few tenants)."""
    ids = [i for chunk in chunks for i in chunk]
    out = {}
    for j in indexes:
        sql = check_sql(graph, table, j, exact=exact)
        rows = conflicts = 0
        for chunk in chunks:
            args = (chunk, ids) if RUN in sql else (chunk,)
            row = await read_one(conn, sql, args, force_index=path_indexed(table.paths[j]))
            assert row is not None  # an aggregate always returns one row
            rows, conflicts = rows + int(row["rows"]), conflicts + int(row["conflicts"])
        out[j] = (rows, conflicts)
    return out


async def _plan_run(conn: asyncpg.Connection, graphs: _Graphs, run: RunRecord, settings: DownSettings) -> RunPlan:
    live = await run_is_live(conn, run.run_id)
    ids = await run_tenant_ids(conn, run.run_id, settings.ledger_schema)
    if run.status == "removed" or not ids:
        return RunPlan(run.run_id, run.status, live, len(ids))
    graph = await graphs.get(run)
    tables = []
    for t in graph.tables:
        counts = await _path_counts(conn, graph, t, chunked(ids, settings.batch_tenants), range(len(t.paths)))
        tables.append(
            TablePlan(
                table=t.table.display,
                rows=sum(c[0] for c in counts.values()),
                paths=tuple(path_label(p) for p in t.paths),
                by_tenant_column=t.by_tenant_column,
                conflicts=sum(c[1] for c in counts.values()),
            )
        )
    return RunPlan(run.run_id, run.status, live, len(ids), tuple(tables))


async def plan_down(settings: DownSettings) -> DownPlan:
    """What ``provision_down`` would delete, per table, without writing anything."""
    conn, db = await connect_for(settings, DOWN_SESSION)
    try:
        graphs = _Graphs(conn, settings, null_progress)
        runs = [await _plan_run(conn, graphs, run, settings) for run in await _select_runs(conn, settings)]
        warnings = list(graphs.warnings)
        for r in runs:
            if r.live:
                warnings.append(f"Another provision process is working on run {r.run_id} right now.")
        tct = sorted({t.display for g in graphs.cache.values() for t in g.tenant_column_tables})
        return DownPlan(db.masked, tuple(runs), tuple(warnings), graphs.notes, tuple(tct))
    finally:
        await close_connection(conn)


def _conflict_message(run_id: str, table: str, count: int) -> str:
    return (
        f"Run {run_id} cannot be removed safely: {count} rows of table {table} belong to tenants "
        "outside the run but reference the run's rows; remove or reassign them first."
    )


# --- the teardown ------------------------------------------------------------------------------------------


async def _check(
    conn: asyncpg.Connection, graph: ForeignKeyGraph, run_id: str, chunks: list[list[str]]
) -> dict[GraphTable, list[FkPath]]:
    """The paths each table must be deleted along; refuse cross-tenant references first."""
    needed: dict[GraphTable, list[FkPath]] = {}
    for t in graph.tables:
        if not t.multi_path:
            needed[t] = list(t.paths)
            continue
        counts = await _path_counts(conn, graph, t, chunks, range(1, len(t.paths)), exact=False)
        conflicts = max(c[1] for c in counts.values())
        if conflicts:
            raise TeardownIncomplete(
                _conflict_message(run_id, t.table.display, conflicts) + " Nothing was deleted.",
                run_id=run_id,
                table=t.table.display,
            )
        paths = [t.paths[0]] + [p for j, p in enumerate(t.paths) if j and counts[j][0]]
        for p in paths:
            if any(e in graph.cycle_breaks for e in p):
                raise TeardownIncomplete(
                    f"Run {run_id} has rows in table {t.table.display} that only a foreign-key cycle ties "
                    "to its tenants; teardown cannot order them. Nothing was deleted.",
                    run_id=run_id,
                    table=t.table.display,
                )
        # a row that points at another run row of its own table goes in the same pass, before that row
        paths.sort(key=lambda p: 0 if p and p[0].is_self else 1)
        needed[t] = paths
    return needed




# a role without the privilege, a read-only transaction or standby, a lock not granted in time
_REFUSED_STATES = ("42501", "25006", "55P03")


def _refused(exc: asyncpg.PostgresError, command: str) -> Exception:
    """``DatabaseRefused`` (exit 15) for a refusal before anything was deleted; else ``exc`` itself."""
    if str(getattr(exc, "sqlstate", "") or "") in _REFUSED_STATES:
        return DatabaseRefused(
            f"PostgreSQL refused what {command} needs ({first_line(exc)}); nothing was deleted."
        )
    return exc


def _failed(run_id: str, table: str, exc: BaseException) -> TeardownIncomplete:
    text = first_line(exc)
    return TeardownIncomplete(
        f"Deleting run {run_id}'s rows from table {table} failed ({text}); the run stays 'tearing_down' "
        f"and 'provision down {run_id}' resumes it.",
        run_id=run_id,
        table=table,
    )


async def _delete_table(
    conns: Sequence[asyncpg.Connection],
    statements: list[tuple[str, bool]],
    chunks: list[list[str]],
    report: ProgressCallback,
) -> int:
    """Delete one table's rows batch by batch, ``len(conns)`` batches at a time (one transaction each).

    Commits skip the wait for the WAL flush: a server crash may bring back the last
    batches, which only leaves the run ``tearing_down`` for the next ``down``.
    """
    queue = list(chunks)
    done: list[int] = []

    async def worker(conn: asyncpg.Connection) -> None:
        while queue:
            chunk = queue.pop(0)
            n = 0
            async with conn.transaction():
                for setting in delete_settings(conn):
                    await conn.execute(setting)
                for sql, force_index in statements:
                    await conn.execute(index_planner(force_index))
                    status = await conn.execute(sql, chunk)
                    n += int(status.rsplit(" ", 1)[-1])
            done.append(n)
            report(ProgressEvent("rows", count=n))

    try:
        async with asyncio.TaskGroup() as tg:
            for conn in conns[: max(1, len(chunks))]:
                tg.create_task(worker(conn))
    except BaseExceptionGroup as group:
        raise group.exceptions[0] from None
    return sum(done)


async def _delete(
    conns: Sequence[asyncpg.Connection],
    graph: ForeignKeyGraph,
    needed: dict[GraphTable, list[FkPath]],
    run_id: str,
    chunks: list[list[str]],
    progress: ProgressCallback,
) -> dict[str, int]:
    conn = conns[0]
    for edge in graph.cycle_breaks:
        table = next(t for t in graph.tables if t.table == edge.child)
        try:
            for chunk in chunks:
                async with conn.transaction():
                    for setting in delete_settings(conn):
                        await conn.execute(setting)
                    for p in needed[table]:
                        await conn.execute(index_planner(path_indexed(p)))
                        await conn.execute(nullify_sql(graph, table, p, edge), chunk)
        except DB_ERRORS as exc:
            raise _failed(run_id, table.table.display, exc) from exc
    deleted: dict[str, int] = {}
    for t in graph.tables:
        name = t.table.display
        data: dict[str, Any] = {"run_id": run_id}
        progress(ProgressEvent("table_start", table=name, data=data))
        statements = [
            (delete_sql(graph, t, p), path_indexed(p)) for p in needed[t] if not any(e in graph.cycle_breaks for e in p)
        ]

        def report(event: ProgressEvent, name: str = name, data: dict[str, Any] = data) -> None:
            progress(ProgressEvent("rows", table=name, count=event.count, data=data))

        try:
            deleted[name] = await _delete_table(conns, statements, chunks, report)
        except DB_ERRORS as exc:
            raise _failed(run_id, name, exc) from exc
        progress(ProgressEvent("table_done", table=name, count=deleted[name], data=data))
    return deleted


async def _verify(conn: asyncpg.Connection, graph: ForeignKeyGraph, run_id: str, chunks: list[list[str]]) -> None:
    for t in graph.tables:
        for p in t.paths:
            sql = residue_sql(graph, t, p)
            left = 0
            for chunk in chunks:
                row = await read_one(conn, sql, (chunk,), force_index=path_indexed(p))
                left += row[0]
            if left:
                many = left if left < 1000 else "over 1000"
                raise TeardownIncomplete(
                    f"After deleting, table {t.table.display} still holds {many} rows of run {run_id}'s "
                    f"tenants; the run stays 'tearing_down' and 'provision down {run_id}' tries again.",
                    run_id=run_id,
                    table=t.table.display,
                )


def _remove_credentials(state_dir: Path | None, run_id: str) -> bool:
    """Delete ``<state_dir>/runs/<run_id>/`` (only for a plain run id: the ledger may be shared)."""
    if not _RUN_ID.fullmatch(run_id):
        return False
    return remove_run_dir(state_dir if state_dir is not None else default_state_dir(), run_id)


async def _take_tenants_offline(
    conn: asyncpg.Connection, run: RunRecord, ids: list[str], settings: DownSettings
) -> None:
    """Put the run's tenants on hold (``runs.tenants``) before the first delete.

    The platform refuses logins to tenants that are not 'active', so a teardown that stops
    half-way (a killed process, a lost connection) never leaves a half-deleted tenant that
    still serves its users.  Skipped when the tenants table has no status column.
    """
    table = stored_tenants_table(run, _schema_map(settings, run))
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
        needed = await _check(conn, graph, run_id, chunks)
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
            raise _refused(exc, "provision down") from exc
        progress(ProgressEvent("phase", name="delete", data={"run_id": run_id}))
        deleted = await _delete([conn, *extra], graph, needed, run_id, chunks, progress)
    finally:
        for c in extra:
            await close_connection(c)
    progress(ProgressEvent("phase", name="verify", data={"run_id": run_id}))
    try:
        await _verify(conn, graph, run_id, chunks)
    except DB_ERRORS as exc:
        raise _failed(run_id, "(verification)", exc) from exc
    return deleted


async def _down_run(
    conn: asyncpg.Connection,
    db: ResolvedDatabase,
    graphs: _Graphs,
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
        creds = _remove_credentials(settings.state_dir, run_id)
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
        graphs = _Graphs(conn, settings, progress)
        runs = await _select_runs(conn, settings)
        results = [await _down_run(conn, db, graphs, r.run_id, settings, progress) for r in runs]
        for w in graphs.warnings:
            progress(ProgressEvent("warning", message=w))
        return DownResult(db.masked, tuple(results), graphs.warnings, time.monotonic() - started)
    finally:
        await close_connection(conn)


async def forget_history(settings: DownSettings) -> list[str]:
    """Delete ledger history: run ``settings.run_id`` (it must be ``removed``), or with
    ``all_runs`` every ``removed`` run.  Returns the ids forgotten."""
    conn, _ = await connect_for(settings, DOWN_SESSION)
    try:
        if settings.run_id is None:
            if not settings.all_runs:
                raise InputError("Name a run to forget, or pass --removed to forget every removed run.")
            try:
                return await forget_removed_runs(conn, settings.ledger_schema)
            except asyncpg.PostgresError as exc:
                raise _refused(exc, "forgetting removed runs") from exc
        run = await find_run(conn, settings.run_id, settings.ledger_schema)
        if run.status != "removed":
            raise InputError(
                f"Run {run.run_id} is '{run.status}', not removed; remove it with 'provision down {run.run_id}' first."
            )
        try:
            await forget_run(conn, run.run_id, settings.ledger_schema)
        except asyncpg.PostgresError as exc:
            raise _refused(exc, "forgetting a run") from exc
        return [run.run_id]
    finally:
        await close_connection(conn)
