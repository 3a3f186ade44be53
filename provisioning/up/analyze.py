"""ANALYZE after a bulk load: the columns the planner needs now; autovacuum completes the rest.

Why not a plain ``ANALYZE table``: its cost is dominated by the long free-text and
JSON columns (sampling and sorting thousands of system prompts or workflow definitions),
and a column list that leaves them out costs much less.  The planner needs statistics
on the columns queries filter, join and sort by (keys, tenant ids, slugs, status,
timestamps), and on every indexed column; a free-text or JSON column
that no index covers is not one of them.

A column-list ANALYZE updates the table's row and page counts but, unlike a full one,
does not reset the table's modification counter (``pgstat_report_analyze`` resets it
only when no column list is given), so autovacuum still runs its own full ANALYZE soon
afterwards, in the background, and the skipped columns get statistics then.  Tables
with an expression index or extended statistics get a full ANALYZE: their statistics
span columns in ways a column list would miss.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import asyncpg

from ..progress import ProgressCallback, ProgressEvent, null_progress
from ..schema.reflect import TablePlan
from ..target.identifiers import quote_identifier

__all__ = ["analyze_statement", "analyze_table", "analyze_tables"]

_WIDE_TYPES = ("text", "json", "jsonb")  # unindexed columns of these types are left to autovacuum


async def analyze_statement(conn: asyncpg.Connection, plan: TablePlan) -> str:
    """The ANALYZE for one loaded table (see the module docstring for which columns)."""
    row = await conn.fetchrow(
        """
        SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indexprs IS NOT NULL)
                OR EXISTS (SELECT 1 FROM pg_statistic_ext s WHERE s.stxrelid = c.oid) AS whole,
               ARRAY(SELECT a.attname::text FROM pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                       AND (a.atttypid::regtype::text <> ALL($3::text[])
                            OR EXISTS (SELECT 1 FROM pg_index i
                                       WHERE i.indrelid = c.oid AND a.attnum = ANY(i.indkey)))
                     ORDER BY a.attnum) AS columns,
               (SELECT count(*) FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS all_columns
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2
        """,
        plan.schema,
        plan.name,
        list(_WIDE_TYPES),
    )
    if row is None or row["whole"] or not row["columns"] or len(row["columns"]) == row["all_columns"]:
        return f"ANALYZE {plan.qualified}"
    return f"ANALYZE {plan.qualified} ({', '.join(quote_identifier(c) for c in row['columns'])})"


async def analyze_table(conn: asyncpg.Connection, plan: TablePlan) -> None:
    await conn.execute(await analyze_statement(conn, plan))


async def analyze_tables(
    conns: Sequence[asyncpg.Connection],
    plans: Mapping[str, TablePlan],
    progress: ProgressCallback = null_progress,
) -> None:
    """ANALYZE every loaded table, spread over ``conns`` (so the planner knows the new rows)."""
    queue: asyncio.Queue[TablePlan] = asyncio.Queue()
    for plan in sorted(plans.values(), key=lambda p: p.contract == "tenants"):
        queue.put_nowait(plan)

    async def work(conn: asyncpg.Connection) -> None:
        while not queue.empty():
            plan = queue.get_nowait()
            await analyze_table(conn, plan)
            progress(
                ProgressEvent(
                    "info", name="analyze", table=plan.contract, message=f"analyzed {plan.qualified}"
                )
            )

    await asyncio.gather(*(work(c) for c in conns))
