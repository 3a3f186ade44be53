"""The COPY loop: rows land exactly, transforms reshape them, progress per table, errors propagate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from agentic_loadkit.provisioning.progress import ProgressEvent
from agentic_loadkit.provisioning.target.copyload import CopyTarget, copy_rows
from agentic_loadkit.provisioning.target.url import DatabaseTarget

DDL = """
CREATE SCHEMA IF NOT EXISTS "odd schema";
CREATE TABLE IF NOT EXISTS "odd schema"."Items"
    (id bigint PRIMARY KEY, label text NOT NULL, note text, extra int NOT NULL);
TRUNCATE "odd schema"."Items";
"""


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _with_conn(target: DatabaseTarget, fn: Any) -> Any:
    conn = await asyncpg.connect(target.asyncpg_url)
    try:
        await conn.execute(DDL)
        return await fn(conn)
    finally:
        await conn.close()


def test_batches_land_with_transform_and_progress(fresh_db: DatabaseTarget) -> None:
    events: list[ProgressEvent] = []
    target = CopyTarget(
        "items", "odd schema", "Items", ("id", "label", "extra"), transform=lambda r: (r[0], r[1].upper(), 7)
    )

    async def go(conn: asyncpg.Connection) -> tuple[int, list[Any]]:
        batches = [[(i, f"row {i}", "dropped") for i in range(k, k + 100)] for k in range(0, 250, 100)]
        batches.insert(1, [])  # an empty batch is skipped
        n = await copy_rows(conn, target, batches, total=250, progress=events.append)
        return n, await conn.fetch('SELECT id, label, note, extra FROM "odd schema"."Items" ORDER BY id')

    n, rows = _run(_with_conn(fresh_db, go))
    assert n == 300  # the third batch holds 100 rows too (200..299)
    assert [tuple(r) for r in rows[:2]] == [(0, "ROW 0", None, 7), (1, "ROW 1", None, 7)]
    assert len(rows) == 300
    kinds = [e.kind for e in events]
    assert kinds[0] == "table_start" and events[0].total == 250 and events[0].table == "items"
    assert kinds[-1] == "table_done" and events[-1].count == 300 and events[-1].data["rows"] == 300
    assert [e.count for e in events if e.kind == "rows"] == [100, 100, 100]


def test_async_iterables_and_silent_mode(fresh_db: DatabaseTarget) -> None:
    events: list[ProgressEvent] = []
    target = CopyTarget("items", "odd schema", "Items", ("id", "label", "extra"))

    async def batches() -> AsyncIterator[list[tuple[int, str, int]]]:
        for k in range(3):
            yield [(k * 10 + i, "x", i) for i in range(10)]

    async def go(conn: asyncpg.Connection) -> int:
        await copy_rows(conn, target, batches(), progress=events.append, announce=False)
        return int(await conn.fetchval('SELECT count(*) FROM "odd schema"."Items"'))

    assert _run(_with_conn(fresh_db, go)) == 30
    assert {e.kind for e in events} == {"rows"}


def test_a_bad_row_fails_the_callers_transaction(fresh_db: DatabaseTarget) -> None:
    target = CopyTarget("items", "odd schema", "Items", ("id", "label", "extra"))

    async def go(conn: asyncpg.Connection) -> int:
        with pytest.raises(asyncpg.NotNullViolationError):
            async with conn.transaction():
                await copy_rows(conn, target, [[(1, "a", 1)], [(2, None, 1)]])
        return int(await conn.fetchval('SELECT count(*) FROM "odd schema"."Items"'))

    assert _run(_with_conn(fresh_db, go)) == 0  # the first, good batch was rolled back with it
