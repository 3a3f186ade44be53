"""How fast ``provision up`` fills a database, next to the server's own bulk-load rate and the naive way.

Run: ``/tmp/venv/bin/python bench/provision_bench.py [--database-url URL] [--scale large]``
(the URL names any database on the server, default the local 127.0.0.1:5432; the bench
creates and drops its own scratch databases).

In one run, on one server, it measures:

(a) ``pgbench -i -I dtg -s N`` (client-side generation: one COPY stream into a table
    without indexes): the server's bulk-load rate in heap MB/s (pg_relation_size of
    the pgbench tables / the generate step's time);
(b) ``provision up --scale large`` end to end, as a subprocess (start to ready: hashing,
    index maintenance, foreign-key checks and ANALYZE included), into a fresh database
    with the reference schema and its indexes: rows/s, heap MB/s, per-phase times, peak
    RSS; with the defaults (two parallel streams, foreign keys checked set-based after
    the load, 4 distinct passwords), and, to show what each choice is worth, with
    ``--single-transaction``, ``--foreign-key-checks per-row`` (PostgreSQL's per-row
    triggers), ``--password-count 16`` and ``--bcrypt-cost 4`` (hashing made negligible);
(v1) with ``--v1``: the same ``up`` into the v1 dialect's schema (the platform's code: 21
    tables, wider rows, JSON step lists), right after the guide schema's, in the same run;
    ``--dialects-only`` measures just (a), (b) and (v1);
(c) the naive way: Faker per row + SQLAlchemy ORM ``add_all``/commit per 1,000 rows on a
    20,000-row agent sample: rows/s.

It prints the ratio of (b) to (a) (goal ≥ 40 %) and the speed-up of (b) over (c) (goal
≥ 30×).  ``--xlarge`` also measures peak RSS of ``provision up --scale xlarge`` (goal
≤ 300 MB).  It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from typing import Any

import asyncpg
from agentic_loadkit.provisioning.target.url import DatabaseTarget, parse_database_url
from agentic_loadkit.reference_platform.schema import build_metadata, create_schema
from server_bound import describe, measure_server_bound
from startup_time import cli_startup

PGBENCH_TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")


async def _admin(target: DatabaseTarget, sql: str) -> None:
    conn = await asyncpg.connect(target.with_database("postgres").asyncpg_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _value(target: DatabaseTarget, sql: str) -> Any:
    conn = await asyncpg.connect(target.asyncpg_url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _scratch(base: DatabaseTarget, tag: str) -> DatabaseTarget:
    name = f"bench_{tag}_{secrets.token_hex(3)}"
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    return base.with_database(name)


def _drop(target: DatabaseTarget) -> None:
    asyncio.run(_admin(target, f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))


def bench_pgbench(base: DatabaseTarget, scale: int) -> dict[str, float]:
    db = _scratch(base, "pgbench")
    try:
        host, port = db.hosts[0]
        env = {
            **os.environ,
            "PGHOST": host,
            "PGPORT": str(port),
            "PGUSER": db.user or "postgres",
            "PGDATABASE": db.database,
        }
        if db.password:
            env["PGPASSWORD"] = db.password
        started = time.perf_counter()
        proc = subprocess.run(
            ["pgbench", "-i", "-I", "dtg", "-s", str(scale), "-q"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
        m = re.search(r"client-side generate ([0-9.]+) s", proc.stderr + proc.stdout)
        generate = float(m.group(1)) if m else wall
        names = ", ".join(f"'{t}'" for t in PGBENCH_TABLES)
        heap = float(
            asyncio.run(
                _value(db, f"SELECT sum(pg_relation_size(c)) FROM unnest(ARRAY[{names}]::regclass[]) c")
            )
        )
        return {
            "scale": scale,
            "rows": scale * 100_000,
            "heap_mb": heap / 1e6,
            "generate_s": generate,
            "wall_s": wall,
            "heap_mb_s": heap / 1e6 / generate,
        }
    finally:
        _drop(db)


def bench_up(
    base: DatabaseTarget,
    scale: str,
    extra: list[str],
    dialect: str = "guide",
    *,
    bound: bool = False,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    db = _scratch(base, "up")
    try:
        asyncio.run(create_schema(db.asyncpg_url, "uuid", dialect=dialect))  # type: ignore[arg-type]
        with tempfile.TemporaryDirectory() as state:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "agentic_loadkit.cli",
                    "--state-dir",
                    state,
                    "up",
                    "--scale",
                    scale,
                    "--seed",
                    "1",
                    "--json",
                    "--database-url",
                    db.url,
                    *extra,
                ],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, **(env or {})},
            )
            wall = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"provision up failed ({proc.returncode}): {proc.stderr.strip()}")
        result = json.loads(proc.stdout)
        result["wall_s"] = wall
        result["children_max_rss_mb"] = after.ru_maxrss / 1024.0
        result["children_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if bound:  # the very rows of this run, reloaded by the server alone
            loaded = [t["name"] for t in result["tables"] if t["rows"]]  # the live names, parents first
            result["bound"] = asyncio.run(measure_server_bound(db, loaded))
        return result
    finally:
        _drop(db)


def bench_naive(base: DatabaseTarget, rows: int, per_commit: int = 1_000) -> dict[str, float]:
    """Faker per row + SQLAlchemy ORM add_all/commit per ``per_commit`` rows (the way the issue calls naive)."""
    import uuid

    from faker import Faker
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.orm import registry

    db = _scratch(base, "naive")
    try:
        asyncio.run(create_schema(db.asyncpg_url, "uuid"))
        md = build_metadata("uuid")
        mapper = registry()

        class Tenant:
            pass

        class User:
            pass

        class Agent:
            pass

        mapper.map_imperatively(Tenant, md.tables["tenants"])
        mapper.map_imperatively(User, md.tables["users"])
        mapper.map_imperatively(Agent, md.tables["agents"])
        fake = Faker()
        Faker.seed(1)

        def make(cls: type, **values: Any) -> Any:
            obj = cls()
            for k, v in values.items():
                setattr(obj, k, v)
            return obj

        async def go() -> float:
            engine = create_async_engine(db.sqlalchemy_url)
            try:
                tenant_id = uuid.uuid4()
                user_ids = [uuid.uuid4() for _ in range(50)]
                async with AsyncSession(engine) as s:  # setup, not timed
                    s.add(make(Tenant, id=tenant_id, name=fake.company(), slug="naive"))
                    await s.commit()
                    s.add_all(
                        [
                            make(
                                User,
                                id=u,
                                tenant_id=tenant_id,
                                email=f"{u}@example.com",
                                username=str(u),
                                hashed_password="x",
                                full_name=fake.name(),
                            )
                            for u in user_ids
                        ]
                    )
                    await s.commit()
                started = time.perf_counter()
                async with AsyncSession(engine) as s:
                    for k in range(0, rows, per_commit):
                        batch = []
                        for i in range(k, min(rows, k + per_commit)):
                            name = fake.catch_phrase()
                            batch.append(
                                make(
                                    Agent,
                                    id=uuid.uuid4(),
                                    tenant_id=tenant_id,
                                    created_by=user_ids[i % 50],
                                    name=name,
                                    slug=f"{fake.slug()}-{i}",
                                    description=fake.sentence(nb_words=12),
                                    system_prompt=f"You are {name}, working for {fake.company()}.\n\n"
                                    + fake.paragraph(nb_sentences=fake.random_int(8, 40)),
                                    model_provider="anthropic",
                                    model_name="claude-3-5-sonnet-20241022",
                                    temperature=round(fake.pyfloat(min_value=0, max_value=1), 2),
                                    max_tokens=fake.random_element((500, 1000, 2000, 4096)),
                                    status="active",
                                )
                            )
                        s.add_all(batch)
                        await s.commit()
                return time.perf_counter() - started
            finally:
                await engine.dispose()

        seconds = asyncio.run(go())
        return {"rows": rows, "seconds": seconds, "rows_s": rows / seconds}
    finally:
        _drop(db)


def _print_up(title: str, r: dict[str, Any], pgbench: dict[str, float] | None) -> None:
    heap_mb = r["heap_bytes"] / 1e6
    print(
        f"\n{title}: {r['rows']:,} rows, {heap_mb:,.1f} heap MB, {r['elapsed']:.2f} s start-to-ready "
        f"({r['wall_s']:.2f} s as a process), {r['streams']} stream(s), foreign keys checked "
        f"{r.get('foreign_key_checks', '?')}, {r['password_count']} password(s) at bcrypt cost {r['bcrypt_cost']}"
    )
    print(
        f"  {r['rows'] / r['elapsed']:,.0f} rows/s, {heap_mb / r['elapsed']:,.1f} heap MB/s"
        + (f" = {100 * heap_mb / r['elapsed'] / pgbench['heap_mb_s']:.0f} % of pgbench" if pgbench else "")
    )
    print("  phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in r["phases"].items() if k != "total"))
    print(
        "  tables: " + ", ".join(f"{t['table']} {t['rows']:,} rows {t['seconds']:.2f} s" for t in r["tables"])
    )
    print(
        f"  peak RSS {r['peak_rss_mb']:.0f} MB (the up process), {r['children_max_rss_mb']:.0f} MB (largest "
        f"process of its tree); CPU of the process tree {r['children_cpu_s']:.1f} s"
    )
    load_s = r["phases"]["load"] + r["phases"]["analyze"]
    print(
        f"  without hashing (load + analyze only): {heap_mb / load_s:,.1f} heap MB/s"
        + (f" = {100 * heap_mb / load_s / pgbench['heap_mb_s']:.0f} % of pgbench" if pgbench else "")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--scale", default="large")
    ap.add_argument(
        "--pgbench-scale", type=int, default=20, help="pgbench -s (100,000 accounts each; 20 ≈ 270 MB)"
    )
    ap.add_argument("--naive-rows", type=int, default=20_000)
    ap.add_argument("--skip-single", action="store_true", help="skip the --single-transaction comparison")
    ap.add_argument(
        "--repeat", type=int, default=1, help="run (a) and (b) this many times and keep the fastest"
    )
    ap.add_argument("--xlarge", action="store_true", help="also measure peak RSS at --scale xlarge")
    ap.add_argument("--v1", action="store_true", help="also measure up on the v1 dialect's schema")
    ap.add_argument("--dialects-only", action="store_true", help="measure only (a), (b) and (v1)")
    args = ap.parse_args()
    base = parse_database_url(args.database_url)
    print(f"server {base.masked}; load average {os.getloadavg()[0]:.2f} at start; {os.cpu_count()} cores")

    pg = max(
        (bench_pgbench(base, args.pgbench_scale) for _ in range(args.repeat)), key=lambda r: r["heap_mb_s"]
    )
    print(
        f"\n(a) pgbench -i -I dtg -s {pg['scale']}: {pg['rows']:,} rows, {pg['heap_mb']:,.1f} heap MB in "
        f"{pg['generate_s']:.2f} s (client-side generate) = {pg['heap_mb_s']:,.1f} heap MB/s"
    )

    def best(extra: list[str], dialect: str = "guide", **kw: Any) -> dict[str, Any]:
        return min(
            (bench_up(base, args.scale, extra, dialect, **kw) for _ in range(args.repeat)),
            key=lambda r: r["elapsed"],
        )

    par = best([], bound=True)
    _print_up(f"(b) provision up --scale {args.scale} (guide schema)", par, pg)
    print("\n".join(describe(par["bound"], par)))
    if args.v1 or args.dialects_only:
        v1 = best([], "v1", bound=True)
        _print_up(f"(v1) provision up --scale {args.scale} (v1 schema)", v1, pg)
        print("\n".join(describe(v1["bound"], v1)))
    if args.dialects_only:
        print(f"\nload average {os.getloadavg()[0]:.2f} at the end")
        return
    py = best([], bound=True, env={"PROVISION_COPY_ENCODER": "python"})
    _print_up(f"(b0) provision up --scale {args.scale} with the hand-written COPY encoder", py, pg)
    print("\n".join(describe(py["bound"], py)))
    if not args.skip_single:
        _print_up(
            f"(b1) provision up --scale {args.scale} --single-transaction", best(["--single-transaction"]), pg
        )
    for tag, extra, what in (
        ("b2", ["--foreign-key-checks", "per-row"], "per-row foreign-key triggers"),
        ("b3", ["--password-count", "16"], "16 distinct passwords, the former default"),
        ("b4", ["--bcrypt-cost", "4"], "hashing made negligible"),
    ):
        _print_up(f"({tag}) provision up --scale {args.scale} {' '.join(extra)} ({what})", best(extra), pg)

    naive = bench_naive(base, args.naive_rows)
    print(
        f"\n(c) naive (Faker per row + ORM add_all/commit per 1,000): {naive['rows']:,} agents in "
        f"{naive['seconds']:.2f} s = {naive['rows_s']:,.0f} rows/s"
    )

    up_rate = par["rows"] / par["elapsed"]
    print("\nsummary")
    print(
        f"  provision up heap MB/s / pgbench heap MB/s = "
        f"{100 * par['heap_bytes'] / 1e6 / par['elapsed'] / pg['heap_mb_s']:.0f} % (a reference, not the goal)"
    )
    print(f"  provision up rows/s / naive rows/s = {up_rate / naive['rows_s']:.0f}x (goal >= 50x)")
    print("\n".join(describe(par["bound"], par)))
    print("  " + cli_startup())
    if args.xlarge:
        xl = bench_up(base, "xlarge", [], bound=True)
        _print_up("(d) provision up --scale xlarge", xl, pg)
        print("\n".join(describe(xl["bound"], xl)))
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
