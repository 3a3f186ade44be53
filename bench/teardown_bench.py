"""How fast ``provision down`` removes a ``large`` run, next to the server's reference rates.

Run: ``/tmp/venv/bin/python bench/teardown_bench.py [--database-url URL] [--factor 1.0]``
(the URL names any database on the server; the bench creates and drops its own).

In one run, on one server, it measures:

1. the teardown of a ``large`` run (tenants, users, agents, workflows, collections, MCP
   servers, plus platform-made documents, conversations and audit rows) with the
   reference platform's indexes and foreign keys in place and as much foreign data as
   the run itself (1×);
2. the same teardown with ten times as much foreign data (10×);
3. reference rates for the same number of rows: a plain ``DELETE … WHERE tenant_id =
   ANY(…)`` on a table without foreign keys (with a tenant index), and ``TRUNCATE``;
4. when ``provision up`` exists, ``provision up --scale large`` itself, so teardown time
   can be set against up time.

Rows are seeded with asyncpg binary COPY (foreign data first, then the run, as ``up``
would leave them).  Goals (issue 4): teardown ≤ up time; 10× foreign → ≤ 1.2× the time.
It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
from agentic_loadkit.fixtures.platform.schema import create_schema
from agentic_loadkit.provisioning import ledger
from agentic_loadkit.provisioning.scales import SCALES
from agentic_loadkit.provisioning.teardown import DownSettings, provision_down

PLATFORM_EXTRA = {"documents": 20_000, "conversations": 10_000, "audit_events": 20_000}
_PROMPTS = [
    "".join(random.Random(i).choices("abcdefghij klmnopqrstuvwxyz.,", k=300 + 27 * i)) for i in range(64)
]


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

    await _copy(
        conn, "users", ["id", "tenant_id", "email", "username", "hashed_password", "full_name"], user_rows()
    )

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


async def _settle(conn: asyncpg.Connection) -> None:
    """What a database looks like some time after ``up``: analyzed, hint bits set, checkpointed."""
    await conn.execute("VACUUM (ANALYZE)")
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.PostgresError:
        pass


async def teardown_scenario(admin_url: str, foreign_factor: float, size: float) -> dict[str, float]:
    name = f"teardown_bench_{int(foreign_factor)}x_{secrets.token_hex(2)}"
    url = await _new_db(admin_url, name)
    try:
        await create_schema(url, "uuid")
        conn = await asyncpg.connect(url)
        try:
            t = time.perf_counter()
            foreign = await seed(conn, _counts(size * foreign_factor), 1)
            seed_foreign = time.perf_counter() - t
            await ledger.ensure_ledger(conn)
            run_id = ledger.new_run_id()
            await ledger.create_run(
                conn, run_id=run_id, scale="large", seed=2, counts={}, toolkit_version="bench"
            )
            run_counts = _counts(size)
            # the ledger learns the tenant ids before their rows exist (the ledger invariant)
            t = time.perf_counter()
            run = await seed(conn, run_counts, 2)
            seed_run = time.perf_counter() - t
            await ledger.record_tenants(conn, run_id, run.tenant_ids)
            await ledger.set_status(conn, run_id, "ready")
            await _settle(conn)
            before = {k: await conn.fetchval(f"SELECT count(*) FROM {k}") for k in run.rows}
        finally:
            await conn.close()
        t = time.perf_counter()
        result = await provision_down(DownSettings(run_id=run_id, database_url=url, state_dir=None))
        seconds = time.perf_counter() - t
        conn = await asyncpg.connect(url)
        try:
            after = {k: await conn.fetchval(f"SELECT count(*) FROM {k}") for k in run.rows}
        finally:
            await conn.close()
        deleted = result.runs[0].total_rows
        ok = all(before[k] - after[k] == run.rows[k] for k in run.rows) and deleted == run.total
        return {
            "seconds": seconds,
            "rows": float(run.total),
            "foreign_rows": float(foreign.total),
            "seed_run_seconds": seed_run,
            "seed_foreign_seconds": seed_foreign,
            "exact": float(ok),
        }
    finally:
        await _drop_db(admin_url, name)


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
            await conn.copy_records_to_table(
                "plain",
                columns=["tenant_id", "payload"],
                records=((other[rng.randrange(tenants)], _PROMPTS[i % 64]) for i in range(rows)),
            )
            await conn.copy_records_to_table(
                "plain",
                columns=["tenant_id", "payload"],
                records=((run_ids[rng.randrange(tenants)], _PROMPTS[i % 64]) for i in range(rows)),
            )
            await conn.execute("CREATE TABLE trunc (LIKE plain INCLUDING ALL)")
            await conn.copy_records_to_table(
                "trunc",
                columns=["tenant_id", "payload"],
                records=((run_ids[i % tenants], _PROMPTS[i % 64]) for i in range(rows)),
            )
            await _settle(conn)
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


async def main_async(args: argparse.Namespace) -> None:
    admin = _admin_url(args.database_url)
    print(f"teardown bench: large run × {args.size:g}, server {admin.rpartition('@')[2]}", flush=True)
    one = await teardown_scenario(admin, 1.0, args.size)
    print(
        f"  seeded run {one['rows']:,.0f} rows in {one['seed_run_seconds']:.1f} s, foreign 1× {one['foreign_rows']:,.0f}",
        flush=True,
    )
    ten = await teardown_scenario(admin, 10.0, args.size)
    print(
        f"  seeded foreign 10× {ten['foreign_rows']:,.0f} rows in {ten['seed_foreign_seconds']:.1f} s",
        flush=True,
    )
    ref = await reference_rates(admin, int(one["rows"]), SCALES["large"].tenants)
    rows = one["rows"]
    print()
    print(f"{'measure':52} {'seconds':>8} {'rows/s':>10} {'× plain':>8}")
    for label, sec in (
        ("teardown, 1× foreign data (FKs + indexes in place)", one["seconds"]),
        ("teardown, 10× foreign data", ten["seconds"]),
        ("plain DELETE … tenant_id = ANY (no FKs, same rows)", ref["plain_delete"]),
        ("TRUNCATE (same rows)", ref["truncate"]),
    ):
        print(f"{label:52} {sec:8.2f} {rows / sec:10,.0f} {sec / ref['plain_delete']:8.2f}")
    print()
    print(f"ratio 10× foreign / 1× foreign: {ten['seconds'] / one['seconds']:.2f} (goal ≤ 1.20)")
    print(f"teardown removed exactly the run's rows: {bool(one['exact']) and bool(ten['exact'])}")
    print(
        f"seeding the same run with plain binary COPY took {one['seed_run_seconds']:.2f} s "
        f"(teardown / that = {one['seconds'] / one['seed_run_seconds']:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", help="any database on the server to use (default: TEST_DATABASE_URL)"
    )
    parser.add_argument("--size", type=float, default=1.0, help="fraction of a large run (default 1.0)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
