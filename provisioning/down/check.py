"""The read-only check of a run's rows: how many rows each path reaches, and which paths a
teardown must delete along, refused when other tenants' rows reference the run's rows."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from ..errors import TeardownIncomplete
from ..schema.fkgraph import ForeignKeyGraph, GraphTable
from ..schema.fkgraph import Path as FkPath
from ..target.session import read_one
from .sql import RUN, check_sql, path_indexed

__all__ = ["needed_paths", "path_counts"]


async def path_counts(
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


def _conflict_message(run_id: str, table: str, count: int) -> str:
    return (
        f"Run {run_id} cannot be removed safely: {count} rows of table {table} belong to tenants "
        "outside the run but reference the run's rows; remove or reassign them first."
    )


async def needed_paths(
    conn: asyncpg.Connection, graph: ForeignKeyGraph, run_id: str, chunks: list[list[str]]
) -> dict[GraphTable, list[FkPath]]:
    """The paths each table must be deleted along; refuse cross-tenant references first."""
    needed: dict[GraphTable, list[FkPath]] = {}
    for t in graph.tables:
        if not t.multi_path:
            needed[t] = list(t.paths)
            continue
        counts = await path_counts(conn, graph, t, chunks, range(1, len(t.paths)), exact=False)
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
