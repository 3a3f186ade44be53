"""Client CPU of generating and copying each table: tuples through asyncpg's encoder vs the pre-encoded rows.

Run: ``.venv/bin/python bench/preencoded_bench.py [--database-url URL] [--scale large] [--repeat 3]``.

It builds the guide schema in a scratch database and, per table, copies the toolkit's
dataset (generation included, as ``up`` does it: ``copy_rows`` over ``TableStream.batches``)
into an index-free UNLOGGED copy of the table, once with ``encoder="asyncpg"`` (tuples)
and once with ``encoder="preencoded"``, alternating, best of ``--repeat``.  It reports the
client's CPU seconds (``time.process_time``: the server's work is in its own process),
so the two columns are what each path takes from the cores the server backends share.
It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import time

import asyncpg
from agentic_loadkit.provisioning.generate.binding import plan_tables
from agentic_loadkit.provisioning.generate.dataset import Dataset, GenerationSpec, UuidIds
from agentic_loadkit.provisioning.generate.scales import resolve_counts
from agentic_loadkit.provisioning.schema.reflect import reflect_tables
from agentic_loadkit.provisioning.schema.schemamap import SchemaMap
from agentic_loadkit.provisioning.target.copyload import CopyTarget, Encoder, copy_rows
from agentic_loadkit.provisioning.target.url import DatabaseTarget, parse_database_url
from agentic_loadkit.reference_platform.schema import create_schema

PATHS: tuple[Encoder, ...] = ("asyncpg", "preencoded")


async def _admin(base: DatabaseTarget, sql: str) -> None:
    conn = await asyncpg.connect(base.with_database("postgres").asyncpg_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _measure(db: DatabaseTarget, scale: str, repeat: int) -> dict[str, dict[str, float]]:
    plans = plan_tables(await reflect_tables(db, SchemaMap()), SchemaMap())
    _, counts = resolve_counts(scale)
    spec = GenerationSpec(seed=1, namespace="bench", counts=counts)
    best: dict[str, dict[str, float]] = {}
    conn = await asyncpg.connect(db.asyncpg_url)
    try:
        for table, plan in plans.items():
            sink = f"sink_{table}"
            await conn.execute(f"DROP TABLE IF EXISTS {sink}; CREATE UNLOGGED TABLE {sink} (LIKE {plan.qualified})")
            best[table] = dict.fromkeys(PATHS, float("inf"))
            for _ in range(repeat):
                for path in PATHS:
                    await conn.execute(f"TRUNCATE {sink}")
                    dataset = Dataset(spec, ["$2b$12$" + "x" * 53] * spec.password_slots)
                    target = CopyTarget(table, "public", sink, plan.columns, plan.transform)
                    started = time.process_time()
                    await copy_rows(conn, target, dataset.stream(table).batches(UuidIds("bench"), 4_000),
                                    encoder=path)
                    best[table][path] = min(best[table][path], time.process_time() - started)
    finally:
        await conn.close()
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--scale", default="large")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    base = parse_database_url(args.database_url)
    print(f"load average {os.getloadavg()[0]:.2f} at start; {os.cpu_count()} cores")
    name = f"bench_pre_{secrets.token_hex(3)}"
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    db = base.with_database(name)
    try:
        asyncio.run(create_schema(db.asyncpg_url, "uuid"))
        best = asyncio.run(_measure(db, args.scale, args.repeat))
    finally:
        asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(f"{'table':<12} {'asyncpg CPU s':>14} {'preencoded CPU s':>17} {'ratio':>6}")
    for table, cpu in best.items():
        ratio = cpu["preencoded"] / cpu["asyncpg"]
        print(f"{table:<12} {cpu['asyncpg']:>14.3f} {cpu['preencoded']:>17.3f} {ratio:>6.2f}")
    total = {p: sum(c[p] for c in best.values()) for p in PATHS}
    print(f"{'total':<12} {total['asyncpg']:>14.3f} {total['preencoded']:>17.3f} "
          f"{total['preencoded'] / total['asyncpg']:>6.2f}")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
