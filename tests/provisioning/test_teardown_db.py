"""``provision_down`` / ``plan_down`` on real PostgreSQL: what goes, what stays, and when it refuses."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from agentic_loadkit.provisioning.down.teardown import DownSettings, plan_down, provision_down
from agentic_loadkit.provisioning.errors import ConcurrentOperation, RunNotFound, TeardownIncomplete
from agentic_loadkit.provisioning.progress import ProgressEvent
from agentic_loadkit.provisioning.runs import ledger
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from teardown_helpers import (
    TABLES,
    VARIANT_SQL,
    VARIANT_TABLES,
    checksum,
    execute,
    fetchval,
    foreign_conversation,
    owned_counts,
    residue,
    run,
    run_status,
    seed_foreign,
    seed_run,
    variant_rows,
)


def down(target: DatabaseTarget, run_id: str | None = None, state_dir: Path | None = None, **kw: object):  # type: ignore[no-untyped-def]
    events: list[ProgressEvent] = []
    settings = DownSettings(run_id=run_id, database_url=target.url, state_dir=state_dir, **kw)  # type: ignore[arg-type]
    result = run(provision_down(settings, events.append))
    return result, events


@pytest.fixture(scope="module")
def foreign(platform_db: DatabaseTarget) -> list[str]:
    """Foreign tenants (of no run) present before any run, one of them looking like a run."""
    return seed_foreign(platform_db, tag="rlookalk", tenants=3)


@pytest.mark.parametrize("id_kind", ["uuid", "integer"])
def test_down_removes_every_row_of_the_run_and_nothing_else(
    id_kind: str, platform_db: DatabaseTarget, platform_db_int: DatabaseTarget, foreign: list[str], tmp_path: Path
) -> None:
    target = platform_db if id_kind == "uuid" else platform_db_int
    run_id = ledger.new_run_id()
    # foreign rows whose slugs and emails carry this very run's id
    seed_foreign(target, tag=run_id, tenants=2)
    before = checksum(target)
    seeded = seed_run(target, run_id=run_id, tenants=3)
    assert owned_counts(target, seeded.tenant_ids) == seeded.rows
    assert all(seeded.rows[t] > 0 for t in TABLES)
    creds = tmp_path / "runs" / run_id
    creds.mkdir(parents=True)
    (creds / "credentials.csv").write_text("email,password,tenant_id,tenant_slug,user_id,role\n")

    result, events = down(target, run_id, state_dir=tmp_path)

    assert residue(target, seeded.tenant_ids) == {}
    assert checksum(target) == before
    (r,) = result.runs
    assert r.removed and r.previous_status == "ready" and r.credentials_removed and not creds.exists()
    assert r.rows == {t: seeded.rows[t] for t in r.rows} and set(r.rows) == set(TABLES)
    assert list(r.rows)[-1] == "tenants"  # parents last
    assert run_status(target, run_id) == "removed"
    assert fetchval(target, "SELECT count(*) FROM provisioning.run_tenants WHERE run_id = $1", run_id) == 3
    done = [e.table for e in events if e.kind == "table_done"]
    assert done == list(r.rows) and {"delete", "verify"} <= {e.name for e in events if e.kind == "phase"}


def test_checksum_of_foreign_data_survives_several_cycles(platform_db: DatabaseTarget, foreign: list[str]) -> None:
    before = checksum(platform_db)
    for cycle in range(3):
        seeded = seed_run(platform_db, tenants=2, size=cycle + 1)
        result, _ = down(platform_db, seeded.run_id)
        assert result.runs[0].total_rows == sum(seeded.rows.values())
        assert checksum(platform_db) == before, f"cycle {cycle}"


def test_tearing_down_one_run_leaves_the_other_complete(platform_db: DatabaseTarget, foreign: list[str]) -> None:
    a = seed_run(platform_db, tenants=2)
    b = seed_run(platform_db, tenants=2)
    b_before = checksum(platform_db, exclude=a.tenant_ids)
    down(platform_db, a.run_id)
    assert residue(platform_db, a.tenant_ids) == {}
    assert owned_counts(platform_db, b.tenant_ids) == b.rows
    assert checksum(platform_db) == b_before and run_status(platform_db, b.run_id) == "ready"
    down(platform_db, b.run_id)


def test_second_down_has_nothing_to_do(platform_db: DatabaseTarget) -> None:
    seeded = seed_run(platform_db)
    down(platform_db, seeded.run_id)
    again, events = down(platform_db, seeded.run_id)
    assert again.nothing_to_do and not again.runs[0].removed and again.runs[0].rows == {}
    assert not [e for e in events if e.kind == "table_start"]
    assert run_status(platform_db, seeded.run_id) == "removed"


def test_without_run_id_the_newest_run_goes(platform_db: DatabaseTarget) -> None:
    older = seed_run(platform_db)
    newer = seed_run(platform_db)
    result, _ = down(platform_db)
    assert [r.run_id for r in result.runs] == [newer.run_id]
    assert residue(platform_db, newer.tenant_ids) == {} and owned_counts(platform_db, older.tenant_ids) == older.rows
    down(platform_db, older.run_id)


def test_crashed_up_and_failed_runs_are_removable(platform_db: DatabaseTarget) -> None:
    crashed = seed_run(platform_db, status="provisioning")  # nobody holds its lock: its up died
    failed = seed_run(platform_db, status="failed")
    for seeded, was in ((crashed, "provisioning"), (failed, "failed")):
        result, _ = down(platform_db, seeded.run_id)
        assert result.runs[0].previous_status == was
        assert residue(platform_db, seeded.tenant_ids) == {} and run_status(platform_db, seeded.run_id) == "removed"


def test_a_live_up_or_down_is_refused(platform_db: DatabaseTarget) -> None:
    seeded = seed_run(platform_db, status="provisioning")

    async def scenario() -> None:
        holder = await asyncpg.connect(platform_db.asyncpg_url)
        try:
            await ledger.acquire_run_lock(holder, seeded.run_id)  # a live up (or down) of this run
            with pytest.raises(ConcurrentOperation) as err:
                await provision_down(DownSettings(run_id=seeded.run_id, database_url=platform_db.url))
            assert seeded.run_id in str(err.value) and err.value.exit_code == 10
        finally:
            await holder.close()

    asyncio.run(scenario())
    assert owned_counts(platform_db, seeded.tenant_ids) == seeded.rows
    assert run_status(platform_db, seeded.run_id) == "provisioning"
    down(platform_db, seeded.run_id)
    assert residue(platform_db, seeded.tenant_ids) == {}


def test_unknown_runs_and_ledgerless_databases_are_refused(platform_db: DatabaseTarget, db_factory) -> None:  # type: ignore[no-untyped-def]
    seed_run(platform_db)  # the ledger exists and knows other runs
    before = checksum(platform_db)
    with pytest.raises(RunNotFound) as err:
        down(platform_db, "rnotarun")
    assert "rnotarun" in str(err.value) and err.value.exit_code == 7
    bare = db_factory.new(schema="uuid")
    for run_id in ("rnotarun", None):
        with pytest.raises(RunNotFound, match="no run ledger"):
            down(bare, run_id)
    with pytest.raises(RunNotFound):
        down(bare, all_runs=True)
    assert checksum(platform_db) == before


def test_dry_run_counts_and_writes_nothing(platform_db: DatabaseTarget) -> None:
    seeded = seed_run(platform_db, tenants=2)
    everything = checksum(platform_db, exclude=())
    plan = run(plan_down(DownSettings(run_id=seeded.run_id, database_url=platform_db.url)))
    (rp,) = plan.runs
    assert {t.table: t.rows for t in rp.tables} == seeded.rows and rp.total_rows == sum(seeded.rows.values())
    audit = next(t for t in rp.tables if t.table == "audit_events")
    assert audit.by_tenant_column and "audit_events" in plan.tenant_column_tables
    assert any("audit_events" in n and "no foreign key" in n for n in plan.notes)
    docs = next(t for t in rp.tables if t.table == "documents")
    assert docs.paths == ("documents.collection_id → collections.tenant_id → tenants",)
    assert checksum(platform_db, exclude=()) == everything and run_status(platform_db, seeded.run_id) == "ready"
    down(platform_db, seeded.run_id)


def test_rows_of_other_tenants_that_reference_the_run_stop_it_before_any_delete(
    platform_db: DatabaseTarget, foreign: list[str]
) -> None:
    seeded = seed_run(platform_db)
    conv = foreign_conversation(platform_db, seeded, foreign[0])  # a foreign tenant's, with one of the run's agents
    plan = run(plan_down(DownSettings(run_id=seeded.run_id, database_url=platform_db.url)))
    conflicts = {t.table: t.conflicts for t in plan.runs[0].tables if t.conflicts}
    assert conflicts == {"conversations": 1}
    before = checksum(platform_db, exclude=())
    with pytest.raises(TeardownIncomplete, match="conversations") as err:
        down(platform_db, seeded.run_id)
    assert err.value.table == "conversations" and "Nothing was deleted" in str(err.value)
    assert checksum(platform_db, exclude=()) == before and run_status(platform_db, seeded.run_id) == "ready"
    execute(platform_db, "DELETE FROM conversations WHERE id = $1", conv)
    down(platform_db, seeded.run_id)
    assert residue(platform_db, seeded.tenant_ids) == {}


def test_forget_deletes_the_history(platform_db: DatabaseTarget) -> None:
    seeded = seed_run(platform_db)
    result, _ = down(platform_db, seeded.run_id, forget=True)
    assert result.runs[0].forgotten and run_status(platform_db, seeded.run_id) is None
    assert fetchval(platform_db, "SELECT count(*) FROM provisioning.run_tenants WHERE run_id = $1", seeded.run_id) == 0
    with pytest.raises(RunNotFound):
        down(platform_db, seeded.run_id)


def test_all_removes_every_run(db_factory) -> None:  # type: ignore[no-untyped-def]
    target = db_factory.new(schema="integer")
    seed_foreign(target, tag="other")
    before = checksum(target)
    runs = [seed_run(target, status=s) for s in ("ready", "failed", "provisioning")]
    down(target, runs[0].run_id)
    result, _ = down(target, all_runs=True)
    assert [r.run_id for r in result.runs] == [r.run_id for r in runs]  # oldest first
    assert [r.removed for r in result.runs] == [False, True, True]
    assert checksum(target) == before
    assert all(run_status(target, r.run_id) == "removed" for r in runs)


def test_cascading_foreign_keys_are_walked_too(db_factory) -> None:  # type: ignore[no-untyped-def]
    target = db_factory.new(schema="uuid")
    execute(
        target,
        "ALTER TABLE documents DROP CONSTRAINT documents_collection_id_fkey, "
        "ADD CONSTRAINT documents_collection_id_fkey FOREIGN KEY (collection_id) REFERENCES collections(id) "
        "ON DELETE CASCADE",
    )
    seed_foreign(target, tag="other")
    before = checksum(target)
    seeded = seed_run(target)
    result, _ = down(target, seeded.run_id)
    assert result.runs[0].rows["documents"] == seeded.rows["documents"]  # deleted as children, not by cascade
    assert residue(target, seeded.tenant_ids) == {} and checksum(target) == before


def test_missing_index_on_a_walked_foreign_key_is_reported(db_factory) -> None:  # type: ignore[no-untyped-def]
    target = db_factory.new(schema="uuid")
    execute(target, "DROP INDEX ix_documents_collection_id")
    seeded = seed_run(target)
    plan = run(plan_down(DownSettings(run_id=seeded.run_id, database_url=target.url)))
    assert any("No index on documents(collection_id)" in w for w in plan.warnings)
    result, events = down(target, seeded.run_id)
    assert any("documents(collection_id)" in w for w in result.warnings)
    assert any(e.kind == "warning" and "documents(collection_id)" in e.message for e in events)
    assert residue(target, seeded.tenant_ids) == {}


def test_harder_schema_is_emptied_of_the_run_and_only_of_it(db_factory) -> None:  # type: ignore[no-untyped-def]
    target = db_factory.new(schema="uuid")
    execute(target, VARIANT_SQL)
    others = seed_foreign(target, tag="other")
    variant_rows(target, others)
    before = checksum(target)
    extra_before = {t: fetchval(target, f"SELECT count(*) FROM {t}") for t in (*VARIANT_TABLES, "analytics.events")}
    seeded = seed_run(target, tenants=3)
    extra = variant_rows(target, seeded.tenant_ids)

    plan = run(plan_down(DownSettings(run_id=seeded.run_id, database_url=target.url)))
    planned = {t.table: t.rows for t in plan.runs[0].tables}
    assert planned == {**seeded.rows, **extra}
    assert any("cycle" in n for n in plan.notes) and any("usage_logs" in w for w in plan.warnings)

    result, _ = down(target, seeded.run_id)
    assert result.runs[0].rows == planned
    assert residue(target, seeded.tenant_ids) == {} and checksum(target) == before
    after = {t: fetchval(target, f"SELECT count(*) FROM {t}") for t in (*VARIANT_TABLES, "analytics.events")}
    # analytics.events has a tenant_id too, but in another schema: never touched
    assert after == {**extra_before, "analytics.events": extra_before["analytics.events"] + 3}


def test_the_schema_map_stored_with_the_run_is_used(db_factory) -> None:  # type: ignore[no-untyped-def]
    target = db_factory.new(schema="uuid")
    seed_foreign(target, tag="other")
    seeded = seed_run(target, tenants=2)
    execute(
        target,
        "CREATE SCHEMA platform; ALTER TABLE tenants SET SCHEMA platform; ALTER TABLE platform.tenants RENAME TO orgs; "
        "ALTER TABLE audit_events RENAME COLUMN tenant_id TO org_id; ALTER TABLE audit_events SET SCHEMA platform",
    )
    mapping = {"schema": "platform", "tenant_column": "org_id", "tables": {"tenants": {"name": "orgs"}}}
    execute(
        target,
        "UPDATE provisioning.runs SET settings = jsonb_build_object('schema_map', $2::jsonb) WHERE run_id = $1",
        seeded.run_id,
        json.dumps(mapping),
    )
    in_audit = "SELECT count(*) FROM platform.audit_events WHERE org_id::text = ANY($1::text[])"
    audit = fetchval(target, in_audit, seeded.tenant_ids)
    result, _ = down(target, seeded.run_id)
    assert result.runs[0].rows["platform.orgs"] == 2 and result.runs[0].rows["platform.audit_events"] == audit > 0
    assert (
        fetchval(target, "SELECT count(*) FROM platform.orgs WHERE id::text = ANY($1::text[])", seeded.tenant_ids) == 0
    )
    assert fetchval(target, in_audit, seeded.tenant_ids) == 0
    assert fetchval(target, "SELECT count(*) FROM platform.orgs") == 2  # the foreign ones


def test_batches_of_tenants_on_two_connections(platform_db: DatabaseTarget, foreign: list[str]) -> None:
    before = checksum(platform_db)
    seeded = seed_run(platform_db, tenants=5)
    result, events = down(platform_db, seeded.run_id, batch_tenants=2, jobs=2)
    assert result.runs[0].rows == seeded.rows and residue(platform_db, seeded.tenant_ids) == {}
    assert checksum(platform_db) == before
    agent_batches = [e.count for e in events if e.kind == "rows" and e.table == "agents"]
    assert len(agent_batches) == 3 and sum(agent_batches) == seeded.rows["agents"]  # 2 + 2 + 1 tenants
