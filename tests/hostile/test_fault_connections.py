"""The connection dies: ``pg_terminate_backend`` on the toolkit's backends mid-``up`` (inside the
agents COPY) and mid-``down`` (inside a delete).  Promised: one sentence, a non-zero exit, no
partial run visible to the platform, and a later ``provision down`` with zero residue; the foreign
rows untouched throughout."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from hostile_db import HostileDb
from hostile_support import (
    active_tenants,
    assert_one_sentence,
    fetch,
    fetchval,
    ledger_tenants,
    provision,
    residue,
    run_is_live,
    run_status,
    spawn,
    wait_for,
)

BIG = ("--bcrypt-cost", "4", "--set", "agents=200000", "--quiet")

COPYING_AGENTS = (
    "SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name = 'provision-up' AND state = 'active' AND query ILIKE 'COPY%agents%'"
)


def _terminate(db: HostileDb, pids: list[int]) -> None:
    assert fetchval(db.target, "SELECT bool_and(pg_terminate_backend(p)) FROM unnest($1::int[]) p", pids)


def test_connection_killed_mid_up(hostile_db: HostileDb, state: Path) -> None:
    proc = spawn(state, "up", "--database-url", hostile_db.url, *BIG)
    try:
        pids = wait_for(lambda: fetchval(hostile_db.target, COPYING_AGENTS), "the up is inside the agents COPY", proc)
        run_id = fetchval(hostile_db.target, "SELECT run_id FROM provisioning.runs")
        tenants = ledger_tenants(hostile_db.target, run_id)
        # while loading, the run's tenants are recorded and held: the platform refuses their logins
        statuses = fetch(hostile_db.target, "SELECT DISTINCT status FROM tenants WHERE id::text = ANY($1)", tenants)
        assert [r[0] for r in statuses] == ["provisioning"]
        _terminate(hostile_db, pids)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    line = assert_one_sentence(err, proc.returncode, 8, f"run {run_id}", "rolled back and marked failed", alone=True)
    assert "connection" in line and out == ""
    assert residue(hostile_db.target, tenants) == {}  # nothing of the run is left
    assert run_status(hostile_db.target, run_id) == "failed"
    assert not (state / "runs" / run_id).exists()
    hostile_db.assert_intact()
    down = provision(state, "down", run_id, "--database-url", hostile_db.url, "--json")
    assert down.returncode == 0, down.stderr
    assert run_status(hostile_db.target, run_id) == "removed"
    hostile_db.assert_no_residue(run_id)
    hostile_db.assert_intact()


def test_connection_killed_mid_down(hostile_db: HostileDb, state: Path) -> None:
    made = provision(state, "up", "--database-url", hostile_db.url, "--bcrypt-cost", "4", "--json")
    assert made.returncode == 0, made.stderr
    run_id = made.stdout.split('"run_id": "', 1)[1].split('"', 1)[0]
    tenants = ledger_tenants(hostile_db.target, run_id)

    async def hold_one_agent() -> asyncpg.Connection:
        # another session holds one of the run's agents: the down blocks inside its agents delete
        conn = await asyncpg.connect(hostile_db.target.asyncpg_url)
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1 FROM agents WHERE tenant_id::text = $1 LIMIT 1 FOR UPDATE", tenants[-1])
        return conn

    loop = asyncio.new_event_loop()
    holder = loop.run_until_complete(hold_one_agent())
    proc = spawn(state, "down", run_id, "--database-url", hostile_db.url)
    try:
        pids = wait_for(
            lambda: fetchval(
                hostile_db.target,
                "SELECT array_agg(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'provision-down'",
            )
            if fetchval(
                hostile_db.target,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'provision-down' AND wait_event_type = 'Lock' AND query ILIKE 'DELETE%'",
            )
            else None,
            "the down waits inside a delete",
            proc,
        )
        _terminate(hostile_db, pids)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        loop.run_until_complete(holder.execute("ROLLBACK"))
        loop.run_until_complete(holder.close())
        loop.close()
    assert_one_sentence(err, proc.returncode, 9, run_id, f"'provision down {run_id}'")
    assert run_status(hostile_db.target, run_id) == "tearing_down"  # resumable, and says so
    assert residue(hostile_db.target, tenants)  # stopped half-way: what is left is the run's
    # ... and not visible as a working tenant: the platform refuses logins to tenants not 'active'
    assert active_tenants(hostile_db.target, tenants) == 0
    hostile_db.assert_intact()
    wait_for(lambda: not run_is_live(hostile_db.target, run_id), "the killed down's sessions ended")
    again = provision(state, "down", run_id, "--database-url", hostile_db.url, "--json")
    assert again.returncode == 0, again.stderr
    assert '"previous_status": "tearing_down"' in again.stdout
    hostile_db.assert_no_residue(run_id)
    hostile_db.assert_intact()
