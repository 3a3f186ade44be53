"""Timeouts set on the database role, and tables locked by another session for a while.

Decisions asserted here:
- a ``statement_timeout`` on the role does not break ``up``/``down``: like ``pg_dump`` and
  ``pg_restore``, the toolkit's bulk sessions turn it off for themselves (a 50 ms limit meant for
  an application's queries would otherwise cancel every COPY);
- a ``lock_timeout`` on the role is honoured: an ``up`` that cannot read the schema in time stops
  with one sentence (exit 15, nothing written); one that cannot write a table in time stops with one
  sentence naming the lock timeout (exit 8) and leaves nothing of the run visible; a ``down`` stops
  'tearing_down' and resumable (exit 9); the next ``down`` (once the lock is gone) leaves zero residue;
- without a timeout, the toolkit waits for a table locked by another session and finishes once the
  lock is released (the run invisible to the platform meanwhile).
"""

from __future__ import annotations

import json
from pathlib import Path

from hostile_db import HostileDb, Roles
from hostile_support import (
    Holder,
    active_tenants,
    assert_one_sentence,
    fetchval,
    ledger_tenants,
    provision,
    residue,
    run_status,
    spawn,
    wait_for,
    waiting_on,
)


def _active(db: HostileDb, run_id: str) -> int:
    return active_tenants(db.target, ledger_tenants(db.target, run_id))


def test_statement_timeout_on_the_role(hostile_db: HostileDb, roles: Roles, state: Path) -> None:
    user = roles.create(hostile_db.target, password="st-pw-1", settings={"statement_timeout": "50ms"})
    assert fetchval(user, "SHOW statement_timeout") == "50ms"  # the role's sessions really have it
    made = provision(state, "up", "--database-url", user.url, "--bcrypt-cost", "4", "--set", "agents=40000", "--json")
    assert made.returncode == 0, made.stderr[-2000:]
    run_id = json.loads(made.stdout)["run_id"]
    assert run_status(hostile_db.target, run_id) == "ready"
    assert fetchval(hostile_db.target, "SELECT count(*) FROM agents") == 40000 + 9  # the run's + the foreign ones
    down = provision(state, "down", run_id, "--database-url", user.url, "--quiet")
    assert down.returncode == 0, down.stderr[-2000:]
    hostile_db.assert_no_residue(run_id)
    hostile_db.assert_intact()


def test_lock_timeout_on_the_role_with_locked_tables(hostile_db: HostileDb, roles: Roles, state: Path) -> None:
    user = roles.create(hostile_db.target, password="lt-pw-1", settings={"lock_timeout": "300ms"})
    # up, 1: the agents table is locked against readers too: the up cannot even read the schema
    with Holder(hostile_db.target).begin("LOCK TABLE agents IN ACCESS EXCLUSIVE MODE"):
        res = provision(state, "up", "--database-url", user.url, "--bcrypt-cost", "4", "--quiet")
        assert_one_sentence(res.stderr, res.returncode, 15, "lock timeout", "nothing was written", alone=True)
        assert fetchval(hostile_db.target, "SELECT to_regclass('provisioning.runs')") is None
    hostile_db.assert_intact()  # (reading agents waits for the lock: after it is gone)
    # up, 2: the agents table is locked against writers: the up stops in the middle of its load
    with Holder(hostile_db.target).begin("LOCK TABLE agents IN EXCLUSIVE MODE"):
        res = provision(state, "up", "--database-url", user.url, "--bcrypt-cost", "4", "--quiet")
        line = assert_one_sentence(res.stderr, res.returncode, 8, "lock timeout", alone=True)
        run_id = fetchval(hostile_db.target, "SELECT run_id FROM provisioning.runs")
        assert f"run {run_id}" in line
        assert _active(hostile_db, run_id) == 0  # nothing of the run serves logins
        assert fetchval(hostile_db.target, "SELECT count(*) FROM agents") == 9  # no agent of the run
        hostile_db.assert_intact()
    assert run_status(hostile_db.target, run_id) in ("failed", "provisioning")
    down = provision(state, "down", run_id, "--database-url", user.url, "--quiet")
    assert down.returncode == 0, down.stderr
    assert residue(hostile_db.target, ledger_tenants(hostile_db.target, run_id)) == {}
    hostile_db.assert_intact()

    # down: the users table is locked for longer than the role waits
    made = provision(state, "up", "--database-url", user.url, "--bcrypt-cost", "4", "--json")
    assert made.returncode == 0, made.stderr
    run_id = json.loads(made.stdout)["run_id"]
    with Holder(hostile_db.target).begin("LOCK TABLE users IN SHARE MODE"):
        res = provision(state, "down", run_id, "--database-url", user.url, "--quiet")
        assert_one_sentence(res.stderr, res.returncode, 9, "lock timeout", f"'provision down {run_id}'", alone=True)
        assert run_status(hostile_db.target, run_id) == "tearing_down"
        assert _active(hostile_db, run_id) == 0
        hostile_db.assert_intact()
    again = provision(state, "down", run_id, "--database-url", user.url, "--quiet")
    assert again.returncode == 0, again.stderr
    hostile_db.assert_no_residue(run_id)
    hostile_db.assert_intact()


def test_tables_locked_for_a_while_are_waited_for(hostile_db: HostileDb, state: Path) -> None:
    holder = Holder(hostile_db.target).begin("LOCK TABLE agents IN EXCLUSIVE MODE")
    try:
        proc = spawn(state, "up", "--database-url", hostile_db.url, "--bcrypt-cost", "4", "--json")
        wait_for(lambda: waiting_on(hostile_db.target, "provision-up", "agents"), "the up waits for agents", proc)
        run_id = fetchval(hostile_db.target, "SELECT run_id FROM provisioning.runs")
        assert run_status(hostile_db.target, run_id) == "provisioning" and _active(hostile_db, run_id) == 0
    finally:
        holder.release()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert json.loads(out)["run_id"] == run_id and run_status(hostile_db.target, run_id) == "ready"
    assert _active(hostile_db, run_id) == len(ledger_tenants(hostile_db.target, run_id))

    holder = Holder(hostile_db.target).begin("LOCK TABLE users IN SHARE MODE")
    try:
        proc = spawn(state, "down", run_id, "--database-url", hostile_db.url, "--quiet")
        wait_for(lambda: waiting_on(hostile_db.target, "provision-down", "users"), "the down waits for users", proc)
        assert _active(hostile_db, run_id) == 0
    finally:
        holder.release()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    hostile_db.assert_no_residue(run_id)
    hostile_db.assert_intact()
