"""``provision up`` against real PostgreSQL: exact counts, tenant-consistent references, reproducible
fingerprints for coexisting runs, both key kinds, the schema-map variant, and clean undo on failure."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import asyncpg
import bcrypt
import pytest
import sqlalchemy as sa
from agentic_loadkit.provisioning.errors import ProvisioningFailed
from agentic_loadkit.provisioning.generate.dataset import Dataset, GenerationSpec, compute_fingerprint
from agentic_loadkit.provisioning.generate.scales import SCALES
from agentic_loadkit.provisioning.progress import ProgressEvent, null_progress
from agentic_loadkit.provisioning.runs.listing import run_status
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.provisioning.up.load import plan_pieces
from agentic_loadkit.provisioning.up.plan import plan_up
from agentic_loadkit.provisioning.up.provision import UpResult, UpSettings, provision_up
from up_helpers import (
    TABLES,
    fetch,
    fetchval,
    install_gate,
    remove_gate,
    run,
    run_counts,
    run_row,
    total_rows,
    up,
)

SMALL = SCALES["small"].as_dict()


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def three_runs(platform_db: DatabaseTarget, state: Path) -> dict[str, Any]:
    events: list[ProgressEvent] = []
    a = up(platform_db, state, events.append, seed=7, label="first")
    b = up(platform_db, state, seed=7, streams=1)
    c = up(platform_db, state, seed=8)
    return {"a": a, "b": b, "c": c, "events": events}


def test_exact_counts_for_every_run(platform_db: DatabaseTarget, three_runs: dict[str, Any]) -> None:
    for key in "abc":
        r: UpResult = three_runs[key]
        assert r.counts == SMALL
        assert {t.table: t.rows for t in r.tables} == SMALL
        assert run_counts(platform_db, r.run_id) == SMALL
        row = run_row(platform_db, r.run_id)
        assert row["status"] == "ready" and row["fingerprint"] == r.fingerprint
        assert json.loads(row["counts"]) == SMALL
    assert total_rows(platform_db) == {t: 3 * n for t, n in SMALL.items()}  # three runs coexist
    assert fetchval(platform_db, "SELECT count(*) FROM users WHERE hashed_password NOT LIKE '$2b$04$%'") == 0
    statuses = {s for (s,) in run(fetch(platform_db, "SELECT DISTINCT status FROM tenants"))}
    assert statuses == {"active"}  # the hold status was restored


def test_fingerprint_is_reproducible(three_runs: dict[str, Any]) -> None:
    a, b, c = three_runs["a"], three_runs["b"], three_runs["c"]
    assert a.run_id != b.run_id
    assert a.fingerprint == b.fingerprint  # same seed, one parallel and one single-transaction run
    assert a.fingerprint != c.fingerprint
    spec = GenerationSpec(seed=7, namespace="elsewhere", counts=SCALES["small"])
    assert compute_fingerprint(spec) == a.fingerprint  # independent of the database and the namespace


def test_progress_events(three_runs: dict[str, Any]) -> None:
    events: list[ProgressEvent] = three_runs["events"]
    phases = [e.name for e in events if e.kind == "phase"]
    assert phases == ["reflect", "hash", "load", "analyze", "finalize"]
    for table, n in SMALL.items():
        assert sum(e.count for e in events if e.kind == "rows" and e.table == table) == n
        done = [e for e in events if e.kind == "table_done" and e.table == table]
        assert len(done) == 1 and done[0].count == n
    text = " ".join(e.message for e in events)
    assert all(not (e.data.get("password")) for e in events)
    assert "$2b$" not in text


WRONG_TENANT_UUID = {
    "agent creator": "SELECT count(*) FROM agents a JOIN users u ON u.id = a.created_by "
    "WHERE u.tenant_id <> a.tenant_id",
    "workflow creator": "SELECT count(*) FROM workflows w JOIN users u ON u.id = w.created_by "
    "WHERE u.tenant_id <> w.tenant_id",
    "workflow step": "SELECT count(*) FROM workflows w, jsonb_array_elements(w.definition->'nodes') n "
    "LEFT JOIN agents a ON a.id::text = n->>'agent_id' "
    "WHERE n ? 'agent_id' AND (a.id IS NULL OR a.tenant_id <> w.tenant_id)",
}


def _assert_tenant_consistent(target: DatabaseTarget) -> None:
    for what, query in WRONG_TENANT_UUID.items():
        assert fetchval(target, query) == 0, what
    steps = fetchval(
        target,
        "SELECT count(*) FROM workflows w, jsonb_array_elements(w.definition->'nodes') n "
        "WHERE n ? 'agent_id'",
    )
    assert steps > 0  # the step check above was not vacuous
    assert fetchval(target, "SELECT count(*) FROM agents WHERE created_by IS NULL") == 0


def test_every_reference_stays_in_its_tenant(platform_db: DatabaseTarget, three_runs: dict[str, Any]) -> None:
    _assert_tenant_consistent(platform_db)


def test_credentials_pool_matches_the_database(
    platform_db: DatabaseTarget, three_runs: dict[str, Any]
) -> None:
    r: UpResult = three_runs["a"]
    with r.credentials_path.open() as f:
        rows = list(csv.DictReader(f))
    users = {
        u["email"]: u
        for u in run(
            fetch(
                platform_db,
                "SELECT u.*, t.slug FROM users u JOIN tenants t ON t.id = u.tenant_id "
                "WHERE u.tenant_id::text IN "
                "(SELECT tenant_id FROM provisioning.run_tenants WHERE run_id = $1)",
                r.run_id,
            )
        )
    }
    active = {e for e, u in users.items() if u["is_active"]}
    assert {row["email"] for row in rows} == active and len(rows) == r.active_users
    assert len(active) < len(users) or SMALL["users"] < 20  # some inactive users were kept out
    for row in rows:
        u = users[row["email"]]
        assert (row["tenant_id"], row["user_id"], row["tenant_slug"], row["role"]) == (
            str(u["tenant_id"]),
            str(u["id"]),
            u["slug"],
            u["role"],
        )
        assert u["hashed_password"].startswith("$2b$04$")
        assert bcrypt.checkpw(row["password"].encode(), u["hashed_password"].encode())
    assert len({row["password"] for row in rows}) <= 16
    manifest = json.loads(r.manifest_path.read_text())
    assert set(manifest) == {
        "format",
        "run_id",
        "label",
        "scale",
        "seed",
        "fingerprint",
        "toolkit_version",
        "created_at",
        "target",
        "counts",
        "credentials",
        "tenants",
    }
    assert (manifest["run_id"], manifest["label"], manifest["seed"]) == (r.run_id, "first", 7)
    assert manifest["credentials"] == "credentials.csv" and manifest["counts"] == SMALL
    assert sum(t["active_users"] for t in manifest["tenants"]) == len(rows)
    for t in manifest["tenants"]:
        assert set(t) == {
            "id",
            "slug",
            "name",
            "active_users",
            "agents",
            "workflows",
            "collections",
            "mcp_servers",
        }
        assert 0 < len(t["agents"]) <= 50 and len(t["workflows"]) <= 20
        ok = fetchval(
            platform_db,
            "SELECT count(*) FROM agents WHERE id::text = ANY($1::text[]) "
            "AND tenant_id::text = $2 AND deleted_at IS NULL",
            t["agents"],
            t["id"],
        )
        assert ok == len(t["agents"])


def test_status_counts_live_rows(
    platform_db: DatabaseTarget, state: Path, three_runs: dict[str, Any]
) -> None:
    r: UpResult = three_runs["c"]
    report = run(run_status(r.run_id, database_url=platform_db.url, state_dir=state))
    assert {t.table: t.live for t in report.tables} == SMALL
    assert {t.table: t.expected for t in report.tables} == SMALL
    assert report.credentials_dir == r.run_dir and not report.live


def test_overrides_and_medium(platform_db: DatabaseTarget, state: Path) -> None:
    r = up(platform_db, state, seed=3, overrides=("agents=500", "users=40", "mcp_servers=0"))
    expected = {**SMALL, "agents": 500, "users": 40, "mcp_servers": 0}
    assert run_counts(platform_db, r.run_id) == expected
    medium = up(platform_db, state, scale="medium", seed=3)
    assert run_counts(platform_db, medium.run_id) == SCALES["medium"].as_dict()
    _assert_tenant_consistent(platform_db)


def test_unique_passwords(platform_db: DatabaseTarget, state: Path) -> None:
    r = up(platform_db, state, seed=5, unique_passwords=True)
    with r.credentials_path.open() as f:
        rows = list(csv.DictReader(f))
    assert len({row["password"] for row in rows}) == len(rows)
    hashes = dict(
        run(
            fetch(
                platform_db,
                "SELECT email, hashed_password FROM users WHERE email = ANY($1::text[])",
                [row["email"] for row in rows],
            )
        )
    )
    assert len(set(hashes.values())) == len(rows)
    for row in rows[:8]:
        assert bcrypt.checkpw(row["password"].encode(), hashes[row["email"]].encode())


def test_real_hashes_land_when_progress_ignores_every_event(platform_db: DatabaseTarget, state: Path) -> None:
    """With parallel streams the users are loaded with placeholders while bcrypt runs; the load's
    commit hook, not a progress event, says when the real hashes may go in.  A progress callback
    that ignores everything must still leave logins that verify."""
    settings = UpSettings(database_url=platform_db.url, state_dir=state, seed=13, streams=2, bcrypt_cost=4)
    r = run(asyncio.wait_for(provision_up(settings, null_progress), 300))
    with r.credentials_path.open() as f:
        rows = list(csv.DictReader(f))
    hashes = dict(
        run(
            fetch(
                platform_db,
                "SELECT u.email, u.hashed_password FROM users u WHERE u.tenant_id::text IN "
                "(SELECT tenant_id FROM provisioning.run_tenants WHERE run_id = $1)",
                r.run_id,
            )
        )
    )
    assert len(hashes) == SMALL["users"] and rows
    assert all(h.startswith("$2b$04$") for h in hashes.values())  # no placeholder left
    for row in rows:
        assert bcrypt.checkpw(row["password"].encode(), hashes[row["email"]].encode())


def test_integer_keys_parallel_pieces_and_single_transaction(
    platform_db_int: DatabaseTarget, state: Path
) -> None:
    # the platform made a row of its own first: our ids must come after it
    before = int(
        fetchval(
            platform_db_int,
            "WITH t AS (INSERT INTO tenants (name, slug) VALUES ('p', 'p') RETURNING id) "
            "INSERT INTO agents (tenant_id, name, slug) SELECT id, 'a', 'a' FROM t "
            "RETURNING id",
        )
    )
    kw: dict[str, Any] = {"seed": 11, "overrides": ("agents=12000",), "batch_size": 4000}
    par = up(platform_db_int, state, streams=2, split_rows=8192, **kw)
    one = up(platform_db_int, state, streams=1, **kw)
    assert par.fingerprint == one.fingerprint and par.id_kind == "integer"
    spec = GenerationSpec(
        seed=11, namespace="x", counts=SCALES["small"].__class__(**{**SMALL, "agents": 12_000})
    )
    pieces = plan_pieces(Dataset(spec, ["h"] * spec.password_slots), ["agents"], streams=2, split_rows=8192)
    assert len(pieces) == 2  # the parallel run really loaded agents in two concurrent pieces
    expected = {**SMALL, "agents": 12_000}
    assert run_counts(platform_db_int, par.run_id) == expected == run_counts(platform_db_int, one.run_id)
    lo, hi, n = run(
        fetch(
            platform_db_int, "SELECT min(id), max(id), count(DISTINCT id) FROM agents WHERE id <> $1", before
        )
    )[0]
    assert lo > before and n == 24_000
    after = int(fetchval(platform_db_int, "SELECT last_value FROM agents_id_seq"))
    assert after >= hi  # the ids came from the sequence: the platform's next insert cannot collide
    for what, query in WRONG_TENANT_UUID.items():
        q = query.replace("a.id::text = n->>'agent_id'", "a.id = (n->>'agent_id')::bigint")
        assert fetchval(platform_db_int, q) == 0, what


@pytest.mark.parametrize("streams", [1, 2])
def test_failure_mid_load_leaves_nothing(db_factory: Any, tmp_path: Path, streams: int) -> None:
    target = db_factory.new(schema="uuid")
    install_gate(target, 2500, "RAISE EXCEPTION 'injected failure at row 2500'")
    with pytest.raises(ProvisioningFailed) as info:
        up(target, tmp_path, seed=1, overrides=("agents=4000",), batch_size=500, streams=streams)
    err = info.value
    assert "injected failure" in err.message and "rolled back and marked failed" in err.message
    assert err.table == "agents" and err.run_id
    assert total_rows(target) == dict.fromkeys(TABLES, 0)
    row = run_row(target, err.run_id)
    assert row["status"] == "failed" and "injected failure" in row["error"]
    # parallel: tenants were committed with their ledger rows, which stay; single: both rolled back
    recorded = fetchval(target, "SELECT count(*) FROM provisioning.run_tenants WHERE run_id = $1", err.run_id)
    assert recorded == (3 if streams == 2 else 0)
    assert not (tmp_path / "runs" / err.run_id).exists()
    remove_gate(target)  # the same database then takes a run
    ok = up(target, tmp_path, seed=1, overrides=("agents=4000",), streams=streams)
    assert run_counts(target, ok.run_id)["agents"] == 4000


def test_lost_connections_mid_load_are_undone(db_factory: Any, tmp_path: Path) -> None:
    target = db_factory.new(schema="uuid")
    install_gate(target, 1500, "PERFORM pg_sleep(60)")

    async def scenario() -> tuple[BaseException | None, list[str]]:
        task = asyncio.create_task(
            provision_up(
                UpSettings(
                    database_url=target.url,
                    state_dir=tmp_path,
                    bcrypt_cost=4,
                    seed=2,
                    overrides=("agents=3000",),
                    batch_size=500,
                )
            )
        )
        admin = await asyncpg.connect(target.asyncpg_url)
        try:
            deadline = asyncio.get_running_loop().time() + 30
            while not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                "AND application_name = 'provision-up'"
            ):
                assert asyncio.get_running_loop().time() < deadline, "the load never reached the gate"
                assert not task.done(), task
                await asyncio.sleep(0.05)
            held = [r[0] for r in await admin.fetch("SELECT DISTINCT status FROM tenants")]
            # every connection of the run goes away at once, as if the network dropped
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'provision-up'"
            )
        finally:
            await admin.close()
        try:
            await asyncio.wait_for(task, 60)
        except BaseException as exc:  # the expected failure, asserted below
            return exc, held
        return None, held

    exc, held = run(scenario())
    assert held == ["provisioning"]  # while loading, the platform would refuse these tenants' logins
    assert isinstance(exc, ProvisioningFailed), exc
    assert "connection to the database was lost" in exc.message and "rolled back" in exc.message
    assert total_rows(target) == dict.fromkeys(TABLES, 0)
    assert run_row(target, exc.run_id or "")["status"] == "failed"


def test_dry_run_writes_nothing(db_factory: Any, tmp_path: Path) -> None:
    target = db_factory.new(schema="uuid")
    plan = run(plan_up(UpSettings(scale="large", database_url=target.url, state_dir=tmp_path / "st", seed=4)))
    assert plan.schema_checked and plan.counts == SCALES["large"].as_dict() and plan.seed == 4
    assert 100e6 < plan.heap_bytes < 300e6 and plan.total_bytes > plan.heap_bytes
    assert fetchval(target, "SELECT to_regclass('provisioning.runs')") is None
    assert total_rows(target) == dict.fromkeys(TABLES, 0)
    assert not (tmp_path / "st").exists()


MAP = """
schema = "acme"
tenant_column = "org_id"
[tables.tenants]
name = "organisations"
[tables.users]
name = "accounts"
columns = { tenant_id = "org_id", hashed_password = "password_hash" }
[tables.users.values]
status = "enabled"
[tables.agents]
name = "bots"
columns = { tenant_id = "org_id", system_prompt = "instructions" }
[tables.workflows]
name = "flows"
columns = { tenant_id = "org_id" }
[tables.collections]
name = "kbs"
columns = { tenant_id = "org_id" }
[tables.mcp_servers]
name = "tools"
columns = { tenant_id = "org_id" }
"""


def _acme_schema(url: str) -> None:
    """The reference schema under other names, with an extra NOT NULL column without default."""
    from agentic_loadkit.reference_platform.schema import build_metadata
    from sqlalchemy.ext.asyncio import create_async_engine

    md = build_metadata("uuid", schema="acme")
    renames = {
        "tenants": "organisations",
        "users": "accounts",
        "agents": "bots",
        "workflows": "flows",
        "collections": "kbs",
        "mcp_servers": "tools",
    }
    target = sa.MetaData(schema="acme")
    for table in md.sorted_tables:
        if table.name not in renames:
            continue
        cols = []
        for col in table.columns:
            name = {
                "tenant_id": "org_id",
                "hashed_password": "password_hash",
                "system_prompt": "instructions",
            }.get(col.name, col.name)
            fks = [sa.ForeignKey("acme." + renames[fk.column.table.name] + ".id") for fk in col.foreign_keys]
            cols.append(
                sa.Column(
                    name,
                    col.type,
                    *fks,
                    primary_key=col.primary_key,
                    nullable=col.nullable,
                    server_default=col.server_default,
                )
            )
        if table.name == "agents":
            cols.append(sa.Column("cost_centre", sa.String(32), nullable=False))  # unknown, no default
        sa.Table(renames[table.name], target, *cols)

    async def go() -> None:
        engine = create_async_engine("postgresql+asyncpg://" + url.split("://", 1)[1])
        async with engine.begin() as conn:
            await conn.execute(sa.schema.CreateSchema("acme"))
            await conn.run_sync(target.create_all)
        await engine.dispose()

    run(go())


def test_schema_map_variant(db_factory: Any, tmp_path: Path) -> None:
    target = db_factory.new()
    _acme_schema(target.asyncpg_url)
    smap = tmp_path / "map.toml"
    smap.write_text(MAP)
    warnings: list[str] = []
    r = up(
        target,
        tmp_path,
        lambda e: warnings.append(e.message) if e.kind == "warning" else None,
        seed=9,
        schema_map=smap,
    )
    assert [(f.table, f.column, f.value) for f in r.filled_columns] == [("acme.bots", "cost_centre", "''")]
    assert any("cost_centre" in w for w in warnings)
    names = {
        "tenants": ("organisations", "id"),
        "users": ("accounts", "org_id"),
        "agents": ("bots", "org_id"),
        "workflows": ("flows", "org_id"),
        "collections": ("kbs", "org_id"),
        "mcp_servers": ("tools", "org_id"),
    }
    assert run_counts(target, r.run_id, schema="acme", names=names) == SMALL
    assert fetchval(target, "SELECT count(*) FROM acme.accounts WHERE status <> 'enabled'") == 0
    assert (
        fetchval(target, "SELECT count(*) FROM acme.bots WHERE cost_centre <> '' OR instructions IS NULL")
        == 0
    )
    assert (
        fetchval(
            target,
            "SELECT count(*) FROM acme.bots b JOIN acme.accounts a ON a.id = b.created_by "
            "WHERE a.org_id <> b.org_id",
        )
        == 0
    )
    report = run(run_status(r.run_id, database_url=target.url, state_dir=tmp_path))
    assert {t.table: t.live for t in report.tables} == SMALL
    assert {t.name for t in report.tables} >= {"acme.bots", "acme.organisations"}
    stored = json.loads(run_row(target, r.run_id)["settings"])["schema_map"]
    assert stored["tenant_column"] == "org_id" and stored["tables"]["agents"]["name"] == "bots"
