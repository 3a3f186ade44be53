"""How fast ``provision down`` removes a ``large`` run, next to the server's reference rates.

Run: ``/tmp/venv/bin/python bench/teardown_bench.py [--database-url URL] [--repeat 3]``
(the URL names any database on the server; the bench creates and drops its own).

In one run, on one server, it measures:

1. ``provision up --scale large`` (when ``up`` exists; else the bench seeds the same counts
   with binary COPY), plus what the platform makes inside the run's tenants under load
   (20,000 documents, 10,000 conversations, 20,000 audit rows), then the teardown of that
   run with the reference platform's indexes and foreign keys in place, with as much
   foreign data (tenants of no run) in the tables as the run itself (1×);
2. the same with ten times as much foreign data (10×);
3. reference rates for the same number of rows: a plain ``DELETE … WHERE tenant_id =
   ANY(…)`` on a table without foreign keys (with a tenant index), and ``TRUNCATE``.

Each teardown is repeated (a fresh run each time) and the median printed: seconds, rows/s,
the ratio to the plain DELETE, the ratio 10×/1×, and teardown time against up time.
Goals (issue 4): teardown ≤ up time; 10× foreign data → ≤ 1.2× the time.  It prints
figures; it asserts nothing (except that each teardown removed exactly the run's rows).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from agentic_loadkit.provisioning.down.teardown import DownSettings, provision_down
from agentic_loadkit.provisioning.generate.scales import SCALES
from agentic_loadkit.provisioning.runs import ledger
from agentic_loadkit.reference_platform.schema import create_schema

PLATFORM_EXTRA = {"documents": 20_000, "conversations": 10_000, "audit_events": 20_000}
_PROMPTS = ["".join(random.Random(i).choices("abcdefghij klmnopqrstuvwxyz.,", k=300 + 27 * i)) for i in range(64)]


@dataclass
class Seeded:
    tenant_ids: list[uuid.UUID] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _zipf_split(total: int, parts: int, rng: random.Random, minimum: int = 0) -> list[int]:
    weights = [1.0 / (i + 1) for i in range(parts)]
    rng.shuffle(weights)
    s = sum(weights)
    counts = [max(minimum, int(total * w / s)) for w in weights]
    counts[0] += total - sum(counts)
    return counts


def _counts(factor: float) -> dict[str, int]:
    large = SCALES["large"].as_dict()
    counts = {k: max(1, int(v * factor)) for k, v in large.items()}
    counts.update({k: max(1, int(v * factor)) for k, v in PLATFORM_EXTRA.items()})
    return counts


async def _copy(conn: asyncpg.Connection, table: str, columns: list[str], rows: Iterator[tuple]) -> None:
    await conn.copy_records_to_table(table, records=rows, columns=columns)


async def seed(conn: asyncpg.Connection, counts: dict[str, int], seed_value: int) -> Seeded:
    """Insert one tenant-consistent data set of ``counts`` rows with binary COPY."""
    rng = random.Random(seed_value)
    out = Seeded()
    n_t = counts["tenants"]
    tenants = [uuid.uuid4() for _ in range(n_t)]
    out.tenant_ids = tenants
    tag = secrets.token_hex(3)
    await _copy(
        conn,
        "tenants",
        ["id", "name", "slug"],
        ((t, f"Tenant {i}", f"{tag}-t{i}") for i, t in enumerate(tenants)),
    )

    users: list[list[uuid.UUID]] = [[] for _ in tenants]
    per = _zipf_split(counts["users"], n_t, rng, minimum=1)

    def user_rows() -> Iterator[tuple]:
        k = 0
        for ti, n in enumerate(per):
            for _ in range(n):
                u = uuid.uuid4()
                users[ti].append(u)
                k += 1
                yield (
                    u,
                    tenants[ti],
                    f"u{k}-{tag}@example.com",
                    f"u{k}{tag}",
                    "$2b$12$" + "x" * 53,
                    f"User {k}",
                )

    await _copy(conn, "users", ["id", "tenant_id", "email", "username", "hashed_password", "full_name"], user_rows())

    agents: list[list[uuid.UUID]] = [[] for _ in tenants]
    per_a = _zipf_split(counts["agents"], n_t, rng)

    def agent_rows() -> Iterator[tuple]:
        k = 0
        for ti, n in enumerate(per_a):
            for _ in range(n):
                a = uuid.uuid4()
                if len(agents[ti]) < 50:
                    agents[ti].append(a)
                k += 1
                yield (
                    a,
                    tenants[ti],
                    users[ti][k % len(users[ti])],
                    f"Agent {k}",
                    f"a{k}",
                    "An agent",
                    _PROMPTS[k % 64],
                    0.7,
                    1000,
                )

    await _copy(
        conn,
        "agents",
        [
            "id",
            "tenant_id",
            "created_by",
            "name",
            "slug",
            "description",
            "system_prompt",
            "temperature",
            "max_tokens",
        ],
        agent_rows(),
    )

    per_w = _zipf_split(counts["workflows"], n_t, rng)
    await _copy(
        conn,
        "workflows",
        ["tenant_id", "created_by", "name", "slug", "definition"],
        (
            (tenants[ti], users[ti][j % len(users[ti])], f"W {j}", f"w{j}", '{"nodes": [], "edges": []}')
            for ti, n in enumerate(per_w)
            for j in range(n)
        ),
    )
    collections: list[list[uuid.UUID]] = [[] for _ in tenants]
    per_c = _zipf_split(counts["collections"], n_t, rng)

    def collection_rows() -> Iterator[tuple]:
        for ti, n in enumerate(per_c):
            for j in range(n):
                c = uuid.uuid4()
                collections[ti].append(c)
                yield (c, tenants[ti], f"C {j}", f"c{j}")

    await _copy(conn, "collections", ["id", "tenant_id", "name", "slug"], collection_rows())
    per_m = _zipf_split(counts["mcp_servers"], n_t, rng)
    await _copy(
        conn,
        "mcp_servers",
        ["tenant_id", "name", "slug", "transport", "url"],
        (
            (tenants[ti], f"M {j}", f"m{j}", "sse", "https://mcp.example.com/sse")
            for ti, n in enumerate(per_m)
            for j in range(n)
        ),
    )
    with_colls = [ti for ti in range(n_t) if collections[ti]]
    await _copy(
        conn,
        "documents",
        ["collection_id", "title", "content"],
        (
            (collections[ti][j % len(collections[ti])], f"Doc {j}", _PROMPTS[j % 64][:400])
            for j in range(counts["documents"])
            for ti in [with_colls[j % len(with_colls)]]
        ),
    )
    with_agents = [ti for ti in range(n_t) if agents[ti]]
    await _copy(
        conn,
        "conversations",
        ["tenant_id", "agent_id", "user_id", "title"],
        (
            (tenants[ti], agents[ti][j % len(agents[ti])], users[ti][j % len(users[ti])], f"Chat {j}")
            for j in range(counts["conversations"])
            for ti in [with_agents[j % len(with_agents)]]
        ),
    )
    await _copy(
        conn,
        "audit_events",
        ["tenant_id", "user_id", "action"],
        ((tenants[j % n_t], users[j % n_t][0], "login") for j in range(counts["audit_events"])),
    )
    out.rows = {
        k: counts[k]
        for k in (
            "tenants",
            "users",
            "agents",
            "workflows",
            "collections",
            "mcp_servers",
            "documents",
            "conversations",
            "audit_events",
        )
    }
    return out


async def _new_db(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


async def _drop_db(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _settle(conn: asyncpg.Connection, *, vacuum: bool) -> None:
    """What a database looks like a while after ``up``: analyzed (vacuumed), checkpointed."""
    await conn.execute("VACUUM (ANALYZE)" if vacuum else "ANALYZE")
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.PostgresError:
        pass


async def seed_foreign(url: str, factor: float) -> int:
    """Foreign data (no run) with binary COPY; foreign-key triggers off while seeding when allowed
    (superuser): the rows are consistent by construction and this is setup, not the measure."""
    conn = await asyncpg.connect(url)
    try:
        try:
            await conn.execute("SET session_replication_role = replica")
        except asyncpg.PostgresError:
            pass
        seeded = await seed(conn, _counts(factor), 1)
        await conn.execute("RESET session_replication_role")
        await _settle(conn, vacuum=True)
        return seeded.total
    finally:
        await conn.close()


async def _platform_rows(conn: asyncpg.Connection, tenant_ids: list[str], size: float) -> dict[str, int]:
    """What the platform adds inside a run's tenants under load (documents, conversations, audit rows)."""
    ids = "$1::text[]::uuid[]"
    n = {k: max(1, int(v * size)) for k, v in PLATFORM_EXTRA.items()}
    await conn.execute(
        f"INSERT INTO documents (collection_id, title, content) SELECT c.id, 'Doc', repeat('lorem ipsum ', 30) "
        f"FROM (SELECT id FROM collections WHERE tenant_id = ANY({ids}) ORDER BY id LIMIT {n['documents']}) c",
        tenant_ids,
    )
    await conn.execute(
        f"INSERT INTO conversations (tenant_id, agent_id, user_id, title) SELECT a.tenant_id, a.id, a.created_by, "
        f"'chat' FROM (SELECT * FROM agents WHERE tenant_id = ANY({ids}) AND created_by IS NOT NULL "
        f"ORDER BY id LIMIT {n['conversations']}) a",
        tenant_ids,
    )
    await conn.execute(
        f"INSERT INTO audit_events (tenant_id, user_id, action) SELECT u.tenant_id, u.id, 'login' "
        f"FROM (SELECT * FROM users WHERE tenant_id = ANY({ids})) u, generate_series(1, 4) g "
        f"LIMIT {n['audit_events']}",
        tenant_ids,
    )
    counts = {}
    for table, sql in (
        (
            "documents",
            f"SELECT count(*) FROM documents d JOIN collections c ON c.id = d.collection_id "
            f"WHERE c.tenant_id = ANY({ids})",
        ),
        ("conversations", f"SELECT count(*) FROM conversations WHERE tenant_id = ANY({ids})"),
        ("audit_events", f"SELECT count(*) FROM audit_events WHERE tenant_id = ANY({ids})"),
    ):
        counts[table] = int(await conn.fetchval(sql, tenant_ids))
    return counts


@dataclass
class RunMade:
    run_id: str
    rows: int
    up_seconds: float | None  # None: seeded by the bench, not by ``provision up``
    seed_seconds: float


async def make_run(url: str, state_dir: str, size: float, use_up: bool) -> RunMade:
    """A ``large`` run: by ``provision up`` when it exists (timed), else by the bench's own COPY."""
    t = time.perf_counter()
    if use_up:
        from agentic_loadkit.provisioning.up.provision import UpSettings, provision_up

        up = await provision_up(UpSettings(scale="large", database_url=url, state_dir=Path(state_dir)))
        up_seconds: float | None = up.elapsed
        run_id, rows = up.run_id, up.rows
    else:
        conn = await asyncpg.connect(url)
        try:
            await ledger.ensure_ledger(conn)
            run_id = ledger.new_run_id()
            await ledger.create_run(conn, run_id=run_id, scale="large", seed=2, counts={}, toolkit_version="bench")
            counts = {k: v for k, v in _counts(size).items() if k not in PLATFORM_EXTRA}
            counts.update(dict.fromkeys(PLATFORM_EXTRA, 0))
            seeded = await seed(conn, counts, 2)
            await ledger.record_tenants(conn, run_id, seeded.tenant_ids)
            await ledger.set_status(conn, run_id, "ready")
            rows, up_seconds = seeded.total, None
        finally:
            await conn.close()
    seed_seconds = time.perf_counter() - t
    conn = await asyncpg.connect(url)
    try:
        ids = await ledger.run_tenant_ids(conn, run_id)
        rows += sum((await _platform_rows(conn, ids, size)).values())
        await _settle(conn, vacuum=False)
    finally:
        await conn.close()
    return RunMade(run_id, rows, up_seconds, seed_seconds)


async def teardown_once(url: str, made: RunMade, state_dir: str, jobs: int) -> float:
    t = time.perf_counter()
    result = await provision_down(
        DownSettings(run_id=made.run_id, database_url=url, state_dir=Path(state_dir), jobs=jobs)
    )
    seconds = time.perf_counter() - t
    deleted = result.runs[0].total_rows
    if deleted != made.rows:
        raise SystemExit(f"teardown deleted {deleted} rows, the run had {made.rows}")
    conn = await asyncpg.connect(url)
    try:  # clean the dead rows away before the next repetition (not measured)
        await conn.execute("VACUUM")
    finally:
        await conn.close()
    return seconds


async def scenario(admin: str, factor: float, args: argparse.Namespace, state_dir: str) -> dict[str, Any]:
    name = f"teardown_bench_{int(factor)}x_{secrets.token_hex(2)}"
    url = await _new_db(admin, name)
    try:
        await create_schema(url, "uuid")
        t = time.perf_counter()
        foreign = await seed_foreign(url, args.size * factor)
        print(f"  {factor:g}× foreign data: {foreign:,} rows seeded in {time.perf_counter() - t:.1f} s", flush=True)
        times, ups, made = [], [], None
        for _ in range(args.repeat):
            made = await make_run(url, state_dir, args.size, args.use_up)
            seconds = await teardown_once(url, made, state_dir, args.jobs)
            times.append(seconds)
            if made.up_seconds is not None:
                ups.append(made.up_seconds)
            up = f", up {made.up_seconds:.2f} s" if made.up_seconds is not None else ""
            print(f"    run of {made.rows:,} rows: teardown {seconds:.2f} s{up}", flush=True)
        assert made is not None
        return {
            "seconds": statistics.median(times),
            "rows": made.rows,
            "foreign": foreign,
            "up": statistics.median(ups) if ups else None,
            "seed": made.seed_seconds,
        }
    finally:
        await _drop_db(admin, name)


async def reference_rates(admin_url: str, rows: int, tenants: int) -> dict[str, float]:
    """Plain DELETE by tenant id (no foreign keys, a tenant index) and TRUNCATE, same row count."""
    name = f"teardown_bench_ref_{secrets.token_hex(2)}"
    url = await _new_db(admin_url, name)
    try:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "CREATE TABLE plain (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
                "tenant_id uuid NOT NULL, payload text)"
            )
            await conn.execute("CREATE INDEX plain_tenant ON plain (tenant_id)")
            run_ids = [uuid.uuid4() for _ in range(tenants)]
            other = [uuid.uuid4() for _ in range(tenants)]
            rng = random.Random(3)
            for ids in (other, run_ids):  # as much foreign data as the run, then the run
                await conn.copy_records_to_table(
                    "plain",
                    columns=["tenant_id", "payload"],
                    records=((ids[rng.randrange(tenants)], _PROMPTS[i % 64]) for i in range(rows)),
                )
            await conn.execute("CREATE TABLE trunc (LIKE plain INCLUDING ALL)")
            await conn.copy_records_to_table(
                "trunc",
                columns=["tenant_id", "payload"],
                records=((run_ids[i % tenants], _PROMPTS[i % 64]) for i in range(rows)),
            )
            await _settle(conn, vacuum=True)
            t = time.perf_counter()
            status = await conn.execute("DELETE FROM plain WHERE tenant_id = ANY($1::uuid[])", run_ids)
            plain = time.perf_counter() - t
            assert int(status.split()[-1]) == rows, status
            t = time.perf_counter()
            await conn.execute("TRUNCATE trunc")
            trunc = time.perf_counter() - t
        finally:
            await conn.close()
        return {"plain_delete": plain, "truncate": trunc}
    finally:
        await _drop_db(admin_url, name)


def _admin_url(arg: str | None) -> str:
    url = (
        arg
        or os.environ.get("TEST_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    base, _, _ = url.partition("?")
    return base.rpartition("/")[0] + "/postgres"


def _up_available() -> bool:
    try:
        from agentic_loadkit.provisioning import up  # noqa: F401
    except ImportError:
        return False
    return True


async def main_async(args: argparse.Namespace) -> None:
    admin = _admin_url(args.database_url)
    args.use_up = _up_available() and not args.no_up and args.size == 1.0
    how = "provision up --scale large" if args.use_up else "the bench's own COPY"
    print(
        f"teardown bench: large run × {args.size:g} made by {how}, median of {args.repeat}, "
        f"{args.jobs} connection(s); server {admin.rpartition('@')[2]}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as state_dir:
        one = await scenario(admin, 1.0, args, state_dir)
        ten = await scenario(admin, 10.0, args, state_dir)
    ref = await reference_rates(admin, int(one["rows"]), SCALES["large"].tenants)
    rows = one["rows"]
    print()
    print(f"{'measure':54} {'seconds':>8} {'rows/s':>10} {'× plain':>8}")
    for label, sec in (
        ("teardown, 1× foreign data (FKs + indexes in place)", one["seconds"]),
        ("teardown, 10× foreign data", ten["seconds"]),
        ("plain DELETE … tenant_id = ANY (no FKs, same rows)", ref["plain_delete"]),
        ("TRUNCATE (same rows)", ref["truncate"]),
    ):
        print(f"{label:54} {sec:8.2f} {rows / sec:10,.0f} {sec / ref['plain_delete']:8.2f}")
    print()
    print(f"run rows: {rows:,}; foreign rows 1×: {one['foreign']:,}, 10×: {ten['foreign']:,}")
    print(f"ratio 10× foreign / 1× foreign: {ten['seconds'] / one['seconds']:.2f} (goal ≤ 1.20)")
    if one["up"] is not None:
        print(
            f"provision up --scale large: {one['up']:.2f} s; teardown / up = {one['seconds'] / one['up']:.2f} "
            "(goal ≤ 1.00)"
        )
    else:
        print(
            f"seeding the run by binary COPY took {one['seed']:.2f} s (teardown / that = "
            f"{one['seconds'] / one['seed']:.2f}); provision up was not used"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", help="any database on the server to use (default: TEST_DATABASE_URL)")
    parser.add_argument(
        "--size",
        type=float,
        default=1.0,
        help="fraction of a large run (default 1.0; below 1 the bench seeds the run itself)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="teardowns per scenario (median reported)")
    parser.add_argument("--jobs", type=int, default=DownSettings.jobs, help="teardown connections")
    parser.add_argument("--no-up", action="store_true", help="seed the run with COPY even if provision up exists")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
