"""Crashes: ``provision down`` killed mid-delete, ``provision up`` killed mid-load; the next ``down``
finishes the job with zero residue and the foreign data untouched."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from agentic_loadkit.provisioning.down.teardown import DownSettings, provision_down
from agentic_loadkit.provisioning.runs import ledger
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from polltools import wait_until
from teardown_helpers import checksum, fetchval, residue, run, run_status, seed_foreign, seed_run
from up_helpers import install_gate

DEADLINE = 60.0


def cli(state: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentic_loadkit.cli", "--state-dir", str(state), *args],
        env={k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROVISION_ALLOW_REMOTE")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_is_free(target: DatabaseTarget, run_id: str) -> bool:
    async def go() -> bool:
        conn = await asyncpg.connect(target.asyncpg_url)
        try:
            return not await ledger.run_is_live(conn, run_id)
        finally:
            await conn.close()

    return bool(run(go()))


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_down_killed_mid_delete_is_resumed(sig: signal.Signals, db_factory: Any, tmp_path: Path) -> None:
    target = db_factory.new(schema="uuid")
    seed_foreign(target, tag="other")
    before = checksum(target)
    seeded = seed_run(target, tenants=3)

    async def blocker() -> asyncpg.Connection:
        # another session holds a lock on one of the run's agents: the down blocks in the middle
        conn = await asyncpg.connect(target.asyncpg_url)
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1 FROM agents WHERE tenant_id::text = $1 LIMIT 1 FOR UPDATE", seeded.tenant_ids[-1])
        return conn

    loop = asyncio.new_event_loop()
    holder = loop.run_until_complete(blocker())
    proc = cli(tmp_path, "down", seeded.run_id, "--database-url", target.url)
    try:
        wait_until(
            lambda: (
                run_status(target, seeded.run_id) == "tearing_down"
                and fetchval(
                    target,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'provision-down' "
                    "AND wait_event_type = 'Lock' AND datname = current_database()",
                )
            ),
            DEADLINE,
            what="the down waited on the locked agent",
            proc=proc,
        )
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        loop.run_until_complete(holder.execute("ROLLBACK"))
        loop.run_until_complete(holder.close())
        loop.close()

    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1] == (
            f"error: Interrupted: run {seeded.run_id} is not fully removed; "
            f"'provision down {seeded.run_id}' finishes the job."
        )
    # stopped mid-delete: resumable, some tables already done, the run's agents still there
    assert run_status(target, seeded.run_id) == "tearing_down"
    left = residue(target, seeded.tenant_ids)
    assert "audit_events" not in left and left.get("agents") == seeded.rows["agents"] and "tenants" in left
    wait_until(lambda: run_is_free(target, seeded.run_id), DEADLINE, what="the stopped down's session ended")

    again = cli(tmp_path, "down", seeded.run_id, "--database-url", target.url, "--json")
    out, err = again.communicate(timeout=DEADLINE)
    assert again.returncode == 0, err
    assert residue(target, seeded.tenant_ids) == {} and checksum(target) == before
    assert run_status(target, seeded.run_id) == "removed"
    assert '"previous_status": "tearing_down"' in out


def test_up_killed_mid_load_then_down(db_factory: Any, tmp_path: Path) -> None:
    target = db_factory.new(schema="uuid")
    seed_foreign(target, tag="other")
    before = checksum(target)
    install_gate(target, 1200, "PERFORM pg_sleep(60)")  # the up stalls inside its agents COPY
    proc = cli(tmp_path, "up", "--database-url", target.url, "--bcrypt-cost", "4", "--set", "agents=2000", "--quiet")
    try:
        wait_until(
            lambda: fetchval(
                target,
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                "AND application_name = 'provision-up' AND datname = current_database()",
            ),
            DEADLINE,
            what="the up reached the gate",
            proc=proc,
        )
        kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_id = fetchval(target, "SELECT run_id FROM provisioning.runs")
    tenant_ids = [
        r for (r,) in run(_fetch(target, "SELECT tenant_id FROM provisioning.run_tenants WHERE run_id = $1", run_id))
    ]
    assert tenant_ids and run_status(target, run_id) == "provisioning"
    assert residue(target, tenant_ids)  # SIGKILL left rows behind (no rollback could run)
    # what an operator does about sessions whose client is gone: end them
    fetchval(
        target,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'provision-up' AND datname = current_database()",
    )
    wait_until(lambda: run_is_free(target, run_id), DEADLINE, what="the killed up's sessions ended")

    result = run(provision_down(DownSettings(run_id=run_id, database_url=target.url, state_dir=tmp_path)))
    assert result.runs[0].previous_status == "provisioning" and result.runs[0].removed
    assert residue(target, tenant_ids) == {} and checksum(target) == before
    assert run_status(target, run_id) == "removed" and not (tmp_path / "runs" / run_id).exists()


async def _fetch(target: DatabaseTarget, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(target.asyncpg_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()
