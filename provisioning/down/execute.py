"""The deletes of one run: foreign-key cycles cut first, then table by table in key order
(children before parents), each table's batches spread over the jobs' connections; then the
check that no table still holds a row of the run's tenants."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from ..errors import TeardownIncomplete
from ..progress import ProgressCallback, ProgressEvent
from ..schema.fkgraph import ForeignKeyGraph, GraphTable
from ..schema.fkgraph import Path as FkPath
from ..target.session import DB_ERRORS, delete_settings, index_planner, read_one
from .failures import delete_failed
from .sql import delete_sql, nullify_sql, path_indexed, residue_sql

__all__ = ["delete_run_rows", "verify_removed"]


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


async def _break_cycles(
    conn: asyncpg.Connection,
    graph: ForeignKeyGraph,
    needed: dict[GraphTable, list[FkPath]],
    run_id: str,
    chunks: list[list[str]],
) -> None:
    """Set each cycle-breaking foreign key to NULL on the run's rows, so the deletes can be ordered."""
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
            raise delete_failed(run_id, table.table.display, exc) from exc


async def delete_run_rows(
    conns: Sequence[asyncpg.Connection],
    graph: ForeignKeyGraph,
    needed: dict[GraphTable, list[FkPath]],
    run_id: str,
    chunks: list[list[str]],
    progress: ProgressCallback,
) -> dict[str, int]:
    """Delete the run's rows along ``needed`` paths, table by table; rows deleted per table."""
    await _break_cycles(conns[0], graph, needed, run_id, chunks)
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
            raise delete_failed(run_id, name, exc) from exc
        progress(ProgressEvent("table_done", table=name, count=deleted[name], data=data))
    return deleted


async def verify_removed(
    conn: asyncpg.Connection, graph: ForeignKeyGraph, run_id: str, chunks: list[list[str]]
) -> None:
    """``TeardownIncomplete`` if any path still ties a row to the run's tenants."""
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
