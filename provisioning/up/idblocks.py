"""Integer keys: reserve a contiguous block of ids from each table's own sequence.

Rows of an integer-keyed table get the ids ``first .. first + n - 1`` where ``first`` is
reserved from the table's sequence, so that the platform's own inserts (which draw from
the same sequence) never collide with ours, before or after the run.  The block starts
above the table's highest id as well, so rows someone inserted with explicit ids ahead of
the sequence cannot collide with it either (the max is read on the primary key's index).

How the block is taken, safely under concurrency: in one short transaction, the table
is locked ``SHARE ROW EXCLUSIVE`` (it conflicts with the ``ROW EXCLUSIVE`` lock every
INSERT takes before evaluating its ``nextval`` default, and with itself, so two
``provision up`` runs serialize here), then ``setval(seq, nextval(seq) + n - 1)`` moves
the sequence past the block in one statement.  The lock is held for milliseconds and
readers are not blocked.  The alternative, ``nextval`` in a ``generate_series``, costs
one call per row and does not give a contiguous block when others draw concurrently.
Sequences themselves cannot be locked (PostgreSQL refuses ``LOCK`` on a sequence), so a
session calling ``nextval`` outside an INSERT could still interleave; platforms do not
do that.  Sequence values are not transactional: a failed run leaves a gap, which is
harmless.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg

from ..errors import SchemaMismatch
from ..schema.reflect import TablePlan
from ..target.identifiers import quote_identifier

__all__ = ["LOCK_TIMEOUT_MS", "reserve_id_blocks"]

LOCK_TIMEOUT_MS = 15_000


async def reserve_id_blocks(
    conn: asyncpg.Connection, plans: Mapping[str, TablePlan], counts: Mapping[str, int]
) -> dict[str, int]:
    """Reserve ``counts[table]`` ids for every integer-keyed table; return the first id of each block.

    Tables are locked in the plans' order (parents first) inside one transaction, so
    concurrent reservations cannot deadlock with each other.
    """
    first: dict[str, int] = {}
    todo = [p for p in plans.values() if p.id_kind == "integer" and p.id_sequence]
    if not todo:
        return first
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}")
        for plan in todo:
            n = int(counts.get(plan.contract, 0))
            increment = await conn.fetchval(
                "SELECT seqincrement FROM pg_catalog.pg_sequence WHERE seqrelid = $1::regclass",
                plan.id_sequence,
            )
            if increment != 1:
                raise SchemaMismatch(
                    f"The sequence {plan.id_sequence} of table {plan.schema}.{plan.name} increments by "
                    f"{increment}; the toolkit can only reserve ids from sequences that increment by 1.",
                    table=plan.name,
                )
            if n <= 0:
                first[plan.contract] = 1
                continue
            await conn.execute(f"LOCK TABLE {plan.qualified} IN SHARE ROW EXCLUSIVE MODE")
            # the block starts above every id in the table, not just at the sequence: rows inserted
            # with explicit ids ahead of the sequence must never collide with the run's
            highest = await conn.fetchval(f"SELECT max({quote_identifier(plan.id_column)}) FROM {plan.qualified}")
            last = await conn.fetchval(
                "SELECT setval($1::regclass, greatest(nextval($1::regclass), $3::bigint + 1) + $2::bigint - 1)",
                plan.id_sequence, n, int(highest or 0),
            )
            first[plan.contract] = int(last) - n + 1
    return first
