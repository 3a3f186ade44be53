"""Foreign keys checked once after the load (``fkcheck``), against real PostgreSQL.

The fast path must be taken when it is safe, must still catch a row that breaks a
foreign key, and must step aside (per-row triggers) whenever turning triggers off could
skip something: a platform trigger, a MATCH FULL key, a role that may not do it.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from agentic_loadkit.provisioning.errors import DatabaseRefused, ProvisioningFailed
from agentic_loadkit.provisioning.generate.binding import plan_tables
from agentic_loadkit.provisioning.progress import ProgressEvent
from agentic_loadkit.provisioning.schema.reflect import reflect_tables
from agentic_loadkit.provisioning.schema.schemamap import SchemaMap
from agentic_loadkit.provisioning.target.url import DatabaseTarget, parse_database_url
from agentic_loadkit.provisioning.up.analyze import analyze_statement
from agentic_loadkit.provisioning.up.fkcheck import plan_fk_checks
from dbtools import execute
from up_helpers import TABLES, fetchval, run, run_counts, run_row, total_rows, up

VIOLATIONS = {
    "agents.created_by": "SELECT count(*) FROM agents a WHERE a.created_by IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = a.created_by)",
    "agents.tenant_id": "SELECT count(*) FROM agents a "
    "WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = a.tenant_id)",
    "users.tenant_id": "SELECT count(*) FROM users u "
    "WHERE NOT EXISTS (SELECT 1 FROM tenants t WHERE t.id = u.tenant_id)",
}


async def _plans(target: DatabaseTarget) -> dict[str, Any]:
    live = await reflect_tables(target, SchemaMap())
    return plan_tables(live, SchemaMap())


async def _with_conn(target: DatabaseTarget, fn: Any) -> Any:
    conn = await asyncpg.connect(target.asyncpg_url)
    try:
        return await fn(conn)
    finally:
        await conn.close()


def test_keys_are_checked_after_the_load_and_hold(db_factory: Any, tmp_path: Path) -> None:
    target = db_factory.new(schema="uuid")
    result = up(target, tmp_path, seed=3, overrides=("agents=3000",))
    assert result.foreign_key_checks == "after-load"
    settings = run_row(target, result.run_id)["settings"]
    assert json.loads(settings)["foreign_key_checks"] == "after-load"
    assert {what: fetchval(target, q) for what, q in VIOLATIONS.items()} == dict.fromkeys(VIOLATIONS, 0)
    single = up(target, tmp_path, seed=3, overrides=("agents=3000",), streams=1)
    assert single.foreign_key_checks == "after-load" and single.fingerprint == result.fingerprint
    assert run_counts(target, single.run_id)["agents"] == 3000


@pytest.mark.parametrize("streams", [1, 2])
def test_a_broken_key_found_after_the_load_fails_the_run(db_factory: Any, tmp_path: Path, streams: int) -> None:
    """agents.created_by made to refer to an empty table: every agent breaks it, and only the check can tell."""
    target = db_factory.new(schema="uuid")
    execute(
        target,
        "CREATE TABLE people (id uuid PRIMARY KEY); "
        "ALTER TABLE agents DROP CONSTRAINT agents_created_by_fkey; "
        "ALTER TABLE agents ADD CONSTRAINT agents_creator_is_a_person FOREIGN KEY (created_by) REFERENCES people (id)",
    )
    with pytest.raises(ProvisioningFailed) as info:
        up(target, tmp_path, seed=1, streams=streams)
    err = info.value
    assert "break foreign key agents_creator_is_a_person" in err.message, err.message
    assert "checked after the load" in err.message and "rolled back and marked failed" in err.message
    assert total_rows(target) == dict.fromkeys(TABLES, 0)
    assert run_row(target, err.run_id)["status"] == "failed"
    # the per-row triggers catch the same rows while copying
    with pytest.raises(ProvisioningFailed) as per_row:
        up(target, tmp_path, seed=1, streams=streams, foreign_key_checks="per-row")
    assert "agents_creator_is_a_person" in per_row.value.message
    assert "checked after the load" not in per_row.value.message
    assert total_rows(target) == dict.fromkeys(TABLES, 0)


def test_a_platform_trigger_keeps_the_per_row_checks(db_factory: Any, tmp_path: Path) -> None:
    target = db_factory.new(schema="uuid")
    execute(
        target,
        """
        CREATE TABLE agent_audit (n bigint NOT NULL);
        INSERT INTO agent_audit VALUES (0);
        CREATE FUNCTION count_agent() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE agent_audit SET n = n + 1; RETURN NEW; END $$;
        CREATE TRIGGER platform_counts_agents AFTER INSERT ON agents FOR EACH ROW EXECUTE FUNCTION count_agent();
        """,
    )
    with pytest.raises(DatabaseRefused) as refused:
        up(target, tmp_path, seed=2, foreign_key_checks="after-load")
    assert "trigger platform_counts_agents" in refused.value.message
    assert total_rows(target) == dict.fromkeys(TABLES, 0)
    assert fetchval(target, "SELECT to_regclass('provisioning.runs')") is None  # refused before the ledger

    events: list[ProgressEvent] = []
    result = up(target, tmp_path, events.append, seed=2)
    assert result.foreign_key_checks == "per-row"
    said = [e.message for e in events if e.kind == "info" and "checked per row" in (e.message or "")]
    assert said and "trigger platform_counts_agents" in said[0]
    # the platform's trigger fired for every agent the run wrote
    assert fetchval(target, "SELECT n FROM agent_audit") == result.counts["agents"]


def test_match_full_keys_keep_the_per_row_checks(db_factory: Any) -> None:
    target = db_factory.new(schema="uuid")
    execute(
        target,
        "CREATE UNIQUE INDEX users_tenant_id_id ON users (tenant_id, id); "
        "ALTER TABLE agents ADD CONSTRAINT agents_creator_same_tenant FOREIGN KEY (tenant_id, created_by) "
        "REFERENCES users (tenant_id, id) MATCH FULL",
    )

    async def go() -> Any:
        plans = await _plans(target)
        return await _with_conn(target, lambda c: plan_fk_checks(c, plans, "auto"))

    checks = run(go())
    assert not checks.after_load and "agents_creator_same_tenant" in checks.reason and "MATCH FULL" in checks.reason


def test_a_role_that_may_not_turn_triggers_off_keeps_the_per_row_checks(db_factory: Any, tmp_path: Path) -> None:
    target = db_factory.new(schema="uuid")
    role, password = f"loader_{secrets.token_hex(4)}", secrets.token_hex(8)
    execute(
        target,
        f"CREATE ROLE {role} LOGIN PASSWORD '{password}'; "
        f'GRANT CREATE, CONNECT ON DATABASE "{target.database}" TO {role}; '
        f"GRANT USAGE, CREATE ON SCHEMA public TO {role}; "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    )
    as_role = parse_database_url(target.url.replace("://postgres@", f"://{role}:{password}@", 1))
    assert as_role.user == role
    try:
        events: list[ProgressEvent] = []
        result = up(as_role, tmp_path, events.append, seed=4)
        assert result.foreign_key_checks == "per-row"
        assert any("session_replication_role" in (e.message or "") for e in events)
        assert run_counts(target, result.run_id)["agents"] == result.counts["agents"]
        with pytest.raises(DatabaseRefused, match="session_replication_role"):
            up(as_role, tmp_path, seed=4, foreign_key_checks="after-load")
    finally:
        execute(target, f"DROP OWNED BY {role} CASCADE; DROP ROLE {role}")


def test_analyze_leaves_unindexed_long_columns_to_autovacuum(db_factory: Any) -> None:
    target = db_factory.new(schema="uuid")

    async def go() -> tuple[str, str]:
        plans = await _plans(target)

        async def statements(conn: asyncpg.Connection) -> tuple[str, str]:
            agents = await analyze_statement(conn, plans["agents"])
            await conn.execute("CREATE INDEX agents_lower_name ON agents (lower(name))")
            return agents, await analyze_statement(conn, plans["agents"])

        return await _with_conn(target, statements)

    partial, whole = run(go())
    assert partial.startswith('ANALYZE "public"."agents" (')
    for kept in ('"id"', '"tenant_id"', '"created_by"', '"slug"', '"status"', '"created_at"', '"deleted_at"'):
        assert kept in partial
    for skipped in ('"system_prompt"', '"description"'):
        assert skipped not in partial
    assert whole == 'ANALYZE "public"."agents"'  # an expression index: everything
