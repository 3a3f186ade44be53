"""``provision down --dry-run``: what a teardown would delete, per table and path, reading only."""

from __future__ import annotations

import asyncpg

from ..progress import null_progress
from ..runs.ledger import RunRecord, run_is_live, run_tenant_ids
from ..target.session import DOWN_SESSION, chunked, close_connection, connect_for
from .check import path_counts
from .model import DownPlan, DownSettings, RunPlan, TablePlan
from .selection import RunGraphs, select_runs
from .sql import path_label

__all__ = ["plan_down"]


async def _plan_run(conn: asyncpg.Connection, graphs: RunGraphs, run: RunRecord, settings: DownSettings) -> RunPlan:
    live = await run_is_live(conn, run.run_id)
    ids = await run_tenant_ids(conn, run.run_id, settings.ledger_schema)
    if run.status == "removed" or not ids:
        return RunPlan(run.run_id, run.status, live, len(ids))
    graph = await graphs.get(run)
    tables = []
    for t in graph.tables:
        counts = await path_counts(conn, graph, t, chunked(ids, settings.batch_tenants), range(len(t.paths)))
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
        graphs = RunGraphs(conn, settings, null_progress)
        runs = [await _plan_run(conn, graphs, run, settings) for run in await select_runs(conn, settings)]
        warnings = list(graphs.warnings)
        for r in runs:
            if r.live:
                warnings.append(f"Another provision process is working on run {r.run_id} right now.")
        tct = sorted({t.display for g in graphs.cache.values() for t in g.tenant_column_tables})
        return DownPlan(db.masked, tuple(runs), tuple(warnings), graphs.notes, tuple(tct))
    finally:
        await close_connection(conn)
