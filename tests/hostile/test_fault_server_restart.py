"""The PostgreSQL server restarts in the middle of an ``up`` (stopped with ``pg_ctl -m fast`` while the
agents COPY runs, started again once the ``up`` has given up).  Only ever the private embedded
server of this suite (``private_pg``), never the shared one.

Promised: one sentence (exit 8) that names the run and says ``provision down`` finishes the job
(the undo cannot run while the server is down); after the restart nothing of the run serves logins
(its tenants are still held), the foreign rows are intact, and ``provision down`` leaves zero residue.
"""

from __future__ import annotations

from pathlib import Path

from hostile_db import PrivateServer, make_hostile_db
from hostile_support import (
    active_tenants,
    assert_one_sentence,
    fetchval,
    ledger_tenants,
    provision,
    residue,
    run_status,
    spawn,
    wait_for,
)


def test_server_restart_mid_up(private_pg: PrivateServer, tmp_path: Path) -> None:
    db = make_hostile_db(private_pg.target)
    state = tmp_path / "state"
    proc = spawn(
        state, "up", "--database-url", private_pg.url, "--bcrypt-cost", "4", "--set", "agents=200000", "--quiet"
    )
    try:
        wait_for(
            lambda: fetchval(
                db.target,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'provision-up' "
                "AND state = 'active' AND query ILIKE 'COPY%agents%'",
            ),
            "the up is inside the agents COPY",
            proc,
        )
        run_id = fetchval(db.target, "SELECT run_id FROM provisioning.runs WHERE status = 'provisioning'")
        private_pg.stop()
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        if not private_pg.embedded.status().running:
            private_pg.start()
    assert_one_sentence(err, proc.returncode, 8, f"run {run_id}", f"'provision down {run_id}'", alone=True)
    assert not (state / "runs" / run_id).exists()

    assert run_status(db.target, run_id) == "provisioning"  # the ledger survived the restart
    tenants = ledger_tenants(db.target, run_id)
    assert tenants and residue(db.target, tenants)
    assert active_tenants(db.target, tenants) == 0
    db.assert_intact()

    down = provision(state, "down", run_id, "--database-url", private_pg.url, "--quiet")
    assert down.returncode == 0, down.stderr
    assert run_status(db.target, run_id) == "removed"
    db.assert_no_residue(run_id)
    db.assert_intact()
