"""Client CPU per row of the two COPY encoders, on the rows ``up`` really writes.

Run: ``.venv/bin/python bench/copy_encode_bench.py [--database-url URL] [--scale large]``.

It builds the guide schema in a scratch database, generates each table's rows with the
toolkit's own dataset (the rows ``up`` writes, after the live-schema transform), and
measures, per table and in total:

(a) the hand-written encoder alone (``copyencode``): rows/s of ``encode`` into bytes;
(b) a whole COPY by asyncpg's encoder (``copy_records_to_table``) and (c) by the
    hand-written stream (``copy_to_table``), each into an index-free UNLOGGED copy of the
    table: the client's CPU seconds (``time.process_time``; the server's work is in its
    own process), so (b) vs (c) is the cost each encoder puts on the client.

Rows are generated before any timing; it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time
from typing import Any

import asyncpg
from agentic_loadkit.provisioning.generate.binding import plan_tables
from agentic_loadkit.provisioning.generate.dataset import (
    OPTIONAL_COLUMNS,
    TABLE_COLUMNS,
    Dataset,
    GenerationSpec,
    UuidIds,
)
from agentic_loadkit.provisioning.generate.scales import resolve_counts
from agentic_loadkit.provisioning.schema.reflect import reflect_tables
from agentic_loadkit.provisioning.schema.schemamap import SchemaMap
from agentic_loadkit.provisioning.target.copyencode import COPY_HEADER, COPY_TRAILER, column_types, row_encoder
from agentic_loadkit.provisioning.target.copyload import CopyTarget, copy_rows
from agentic_loadkit.provisioning.target.url import DatabaseTarget, parse_database_url
from agentic_loadkit.reference_platform.schema import create_schema


async def _admin(base: DatabaseTarget, sql: str) -> None:
    conn = await asyncpg.connect(base.with_database("postgres").asyncpg_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _cpu(coro: Any) -> tuple[float, Any]:
    started = time.process_time()
    out = await coro
    return time.process_time() - started, out


async def bench(base: DatabaseTarget, scale: str, repeat: int) -> None:
    name = f"bench_enc_{secrets.token_hex(3)}"
    await _admin(base, f'CREATE DATABASE "{name}"')
    db = base.with_database(name)
    try:
        await create_schema(db.asyncpg_url, "uuid")
        live = await reflect_tables(db, SchemaMap())
        plans = plan_tables(live, TABLE_COLUMNS, SchemaMap(), optional=OPTIONAL_COLUMNS)
        _, counts = resolve_counts(scale)
        spec = GenerationSpec(seed=1, namespace="bench", counts=counts)
        dataset = Dataset(spec, ["$2b$12$" + "x" * 53] * spec.password_slots)
        ids = UuidIds("bench")
        conn = await asyncpg.connect(db.asyncpg_url)
        totals = {"rows": 0, "a": 0.0, "b": 0.0, "c": 0.0, "bytes": 0}
        try:
            print(f"{'table':<12} {'rows':>8}  {'(a) encode rows/s':>18}  {'(b) asyncpg CPU s':>17}  "
                  f"{'(c) python CPU s':>16}  c/b")
            for table, plan in plans.items():
                stream = dataset.stream(table)
                batches = [
                    [plan.transform(r) for r in b] if plan.transform else list(b)
                    for b in stream.batches(ids, 4_000)
                ]
                rows = [r for b in batches for r in b]
                sink = f"sink_{table}"
                await conn.execute(
                    f"DROP TABLE IF EXISTS {sink}; CREATE UNLOGGED TABLE {sink} "
                    f"(LIKE {plan.qualified} INCLUDING DEFAULTS)"
                )
                encoder = row_encoder(await column_types(conn, "public", sink, plan.columns))
                assert encoder is not None, f"{table}: a column type the encoder does not know"
                a = b = c = float("inf")
                size = 0
                for _ in range(repeat):
                    started = time.process_time()
                    size = len(COPY_HEADER) + len(COPY_TRAILER)
                    for k in range(0, len(rows), 1_000):
                        size += len(encoder.encode(rows[k : k + 1_000]))
                    a = min(a, time.process_time() - started)
                    target = CopyTarget(table, "public", sink, plan.columns)
                    for which in ("asyncpg", "python"):
                        await conn.execute(f"TRUNCATE {sink}")
                        seconds, n = await _cpu(copy_rows(conn, target, batches, encoder=which))
                        assert n == len(rows)
                        if which == "asyncpg":
                            b = min(b, seconds)
                        else:
                            c = min(c, seconds)
                print(f"{table:<12} {len(rows):>8,}  {len(rows) / a:>18,.0f}  {b:>17.3f}  {c:>16.3f}  {c / b:.2f}")
                totals["rows"] += len(rows)
                totals["a"] += a
                totals["b"] += b
                totals["c"] += c
                totals["bytes"] += size
                await conn.execute(f"DROP TABLE {sink}")
        finally:
            await conn.close()
        n = totals["rows"]
        print(
            f"{'all':<12} {n:>8,}  {n / totals['a']:>18,.0f}  {totals['b']:>17.3f}  {totals['c']:>16.3f}  "
            f"{totals['c'] / totals['b']:.2f}"
        )
        print(
            f"\nstream {totals['bytes'] / 1e6:,.1f} MB; client CPU per COPY: asyncpg {n / totals['b']:,.0f} rows/s, "
            f"hand-written {n / totals['c']:,.0f} rows/s"
        )
    finally:
        await _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--scale", default="large")
    ap.add_argument("--repeat", type=int, default=3, help="keep the fastest of this many runs")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} at start; {os.cpu_count()} cores")
    asyncio.run(bench(parse_database_url(args.database_url), args.scale, args.repeat))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
