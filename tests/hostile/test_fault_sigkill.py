"""The toolkit SIGKILLed at several points of ``up`` and ``down`` (no handler runs, nothing is
undone by the process itself); each point is reached by observing the database (the ledger's
advisory lock in pg_locks, the COPY in pg_stat_activity, a lock wait on a table), never by sleeping.
Then ``provision down`` leaves zero residue, and the foreign rows are untouched throughout.

Points already covered elsewhere and not repeated here: ``up`` killed inside an agents COPY stalled
by a trigger, and ``down`` killed (SIGKILL and Ctrl-C) while a delete waits on a locked row
(``tests/provisioning/test_teardown_crash.py``).
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from hostile_db import HostileDb
from hostile_support import (
    Holder,
    active_tenants,
    add_lookalike,
    assert_one_sentence,
    checksum,
    fetchval,
    files_under,
    ledger_tenants,
    provision,
    residue,
    run_is_live,
    run_status,
    spawn,
    wait_for,
    waiting_on,
)

UP = ("--bcrypt-cost", "4", "--quiet")
LOCK_CLASS = 0x4C4B


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _only_run(db: HostileDb) -> str:
    return str(fetchval(db.target, "SELECT run_id FROM provisioning.runs"))


def _offline(db: HostileDb, tenants: list[str]) -> bool:
    """None of the tenants is 'active' (the platform logs nobody of them in)."""
    return active_tenants(db.target, tenants) == 0


def _down_finishes(db: HostileDb, state: Path, run_id: str) -> None:
    wait_for(lambda: not run_is_live(db.target, run_id), "the killed process's sessions ended")
    res = provision(state, "down", run_id, "--database-url", db.url, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["runs"][0]["removed"]
    assert run_status(db.target, run_id) == "removed"
    db.assert_no_residue(run_id)
    db.assert_intact()
    assert not (state / "runs" / run_id).exists()


def test_up_killed_before_the_ledger_row(hostile_db: HostileDb, state: Path) -> None:
    # the test holds the ledger's creation lock: the up stops just before it records its run
    holder = Holder(hostile_db.target).begin(f"SELECT pg_advisory_xact_lock({LOCK_CLASS}, 0)")
    try:
        proc = spawn(state, "up", "--database-url", hostile_db.url, *UP)
        wait_for(
            lambda: fetchval(
                hostile_db.target,
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND NOT l.granted AND l.classid = $1::int::oid AND l.objid = 0 "
                "AND a.application_name = 'provision-up'",
                LOCK_CLASS,
            ),
            "the up waits for the ledger",
            proc,
        )
        _kill(proc)
    finally:
        holder.release()
    wait_for(
        lambda: not fetchval(
            hostile_db.target, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'provision-up'"
        ),
        "the killed up's session ended",
    )
    assert fetchval(hostile_db.target, "SELECT to_regclass('provisioning.runs')") is None  # nothing recorded
    hostile_db.assert_intact()  # and nothing written
    assert files_under(state / "runs") == []
    res = provision(state, "down", "--database-url", hostile_db.url)
    assert_one_sentence(res.stderr, res.returncode, 7, "no run ledger", alone=True)
    hostile_db.assert_intact()


def test_up_killed_during_copy(hostile_db: HostileDb, state: Path) -> None:
    proc = spawn(state, "up", "--database-url", hostile_db.url, "--set", "agents=200000", *UP)
    try:
        wait_for(
            lambda: fetchval(
                hostile_db.target,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'provision-up' "
                "AND state = 'active' AND query ILIKE 'COPY%agents%'",
            ),
            "the up is inside the agents COPY",
            proc,
        )
        _kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_id = _only_run(hostile_db)
    tenants = ledger_tenants(hostile_db.target, run_id)
    assert run_status(hostile_db.target, run_id) == "provisioning" and tenants
    assert residue(hostile_db.target, tenants)  # committed pieces stay: nobody could undo them ...
    assert _offline(hostile_db, tenants)  # ... but the platform serves none of them
    # a foreign tenant that carries this very run id in its slug and emails
    add_lookalike(hostile_db.target, run_id)
    hostile_db.baseline = checksum(hostile_db.target)
    _down_finishes(hostile_db, state, run_id)


def test_up_killed_between_tables(hostile_db: HostileDb, state: Path) -> None:
    # SHARE lets the up read the agents table's size but not write: it stops before its agents
    holder = Holder(hostile_db.target).begin("LOCK TABLE agents IN SHARE MODE")
    try:
        proc = spawn(state, "up", "--database-url", hostile_db.url, *UP)
        wait_for(lambda: waiting_on(hostile_db.target, "provision-up", "agents"), "the up waits for agents", proc)
        run_id = _only_run(hostile_db)
        tenants = ledger_tenants(hostile_db.target, run_id)
        wait_for(  # the users are committed: the run is between tables
            lambda: fetchval(hostile_db.target, "SELECT count(*) FROM users WHERE tenant_id::text = ANY($1)", tenants),
            "the users are in",
            proc,
        )
        _kill(proc)
    finally:
        holder.release()
    assert run_status(hostile_db.target, run_id) == "provisioning"
    left = residue(hostile_db.target, tenants)
    assert "public.users" in left and "public.agents" not in left
    assert _offline(hostile_db, tenants)
    hostile_db.assert_intact()
    _down_finishes(hostile_db, state, run_id)


def test_down_killed_between_tables(hostile_db: HostileDb, state: Path) -> None:
    made = provision(state, "up", "--database-url", hostile_db.url, "--json", *UP[:2])
    assert made.returncode == 0, made.stderr
    run_id = json.loads(made.stdout)["run_id"]
    tenants = ledger_tenants(hostile_db.target, run_id)
    # the down deletes the tables below users, then waits for the users table the test holds
    holder = Holder(hostile_db.target).begin("LOCK TABLE users IN SHARE MODE")
    try:
        proc = spawn(state, "down", run_id, "--database-url", hostile_db.url)
        wait_for(lambda: waiting_on(hostile_db.target, "provision-down", "users"), "the down waits for users", proc)
        _kill(proc)
    finally:
        holder.release()
    assert run_status(hostile_db.target, run_id) == "tearing_down"
    left = residue(hostile_db.target, tenants)
    assert "public.users" in left and "public.tenants" in left and "public.agents" not in left
    assert _offline(hostile_db, tenants)  # half-deleted tenants are out of service
    hostile_db.assert_intact()
    assert (state / "runs" / run_id / "credentials.csv").exists()  # removed only when the run is
    _down_finishes(hostile_db, state, run_id)
