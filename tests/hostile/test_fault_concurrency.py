"""Several ``provision`` processes on one database at once: two ``up``; two ``down`` of different
runs together with a second ``down`` of one of them; an ``up`` while a ``down`` of another run is
stuck mid-delete, and a second ``down`` of that same run meanwhile (refused: exit 10, one sentence).

What the toolkit does when two ``down`` of the same run really race: the run's advisory lock
decides; the loser either refuses (exit 10, "Another provision process is working on run ...")
or, when it comes after the winner finished, finds the run removed ("nothing to do", exit 0).
Both are accepted below; the deterministic case (the first one certainly still working) must refuse.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from hostile_db import HostileDb
from hostile_support import (
    Holder,
    assert_one_sentence,
    fetchval,
    ledger_tenants,
    provision,
    residue,
    run_status,
    spawn,
    wait_for,
)

UP = ("--bcrypt-cost", "4", "--json")


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _complete(db: HostileDb, run_id: str) -> None:
    """The run is ready and every table holds exactly the rows the ledger says (counted here in SQL)."""
    assert run_status(db.target, run_id) == "ready"
    expected = json.loads(fetchval(db.target, "SELECT counts::text FROM provisioning.runs WHERE run_id = $1", run_id))
    tenants = ledger_tenants(db.target, run_id)
    live = {
        t: fetchval(
            db.target,
            f"SELECT count(*) FROM {t} WHERE {'id' if t == 'tenants' else 'tenant_id'}::text = ANY($1)",
            tenants,
        )
        for t in expected
    }
    assert live == expected and len(tenants) == expected["tenants"]


def test_two_ups_then_three_downs_at_once(hostile_db: HostileDb, state: Path) -> None:
    ups = [spawn(state, "up", "--database-url", hostile_db.url, "--seed", "7", *UP) for _ in range(2)]
    results = [_finish(p) for p in ups]
    assert [r[0] for r in results] == [0, 0], [r[2] for r in results]
    a, b = (json.loads(r[1]) for r in results)
    assert a["run_id"] != b["run_id"] and a["fingerprint"] == b["fingerprint"]  # same seed, coexisting
    for run in (a, b):
        _complete(hostile_db, run["run_id"])
    hostile_db.assert_intact()

    downs = [
        spawn(state, "down", a["run_id"], "--database-url", hostile_db.url, "--json"),
        spawn(state, "down", b["run_id"], "--database-url", hostile_db.url, "--json"),
        spawn(state, "down", a["run_id"], "--database-url", hostile_db.url, "--json"),
    ]
    (code_a, out_a, err_a), (code_b, _out_b, err_b), (code_a2, out_a2, err_a2) = (_finish(p) for p in downs)
    assert code_b == 0, err_b
    outcomes = sorted([(code_a, out_a, err_a), (code_a2, out_a2, err_a2)], key=lambda r: (r[0], "removed" in r[1]))
    assert {code_a, code_a2} <= {0, 10}, (err_a, err_a2)
    removals = [json.loads(out)["runs"][0]["removed"] for code, out, _ in outcomes if code == 0]
    assert removals.count(True) == 1, outcomes  # exactly one of the two did the work
    for code, out, err in outcomes:
        if code == 10:
            assert_one_sentence(err, code, 10, f"working on run {a['run_id']!r} right now", alone=True)
        elif not json.loads(out)["runs"][0]["removed"]:
            assert json.loads(out)["nothing_to_do"]
    for run in (a, b):
        assert run_status(hostile_db.target, run["run_id"]) == "removed"
        hostile_db.assert_no_residue(run["run_id"])
    hostile_db.assert_intact()


def test_up_while_a_down_of_another_run_is_stuck(hostile_db: HostileDb, state: Path) -> None:
    made = provision(state, "up", "--database-url", hostile_db.url, *UP)
    assert made.returncode == 0, made.stderr
    old = json.loads(made.stdout)["run_id"]
    tenants = ledger_tenants(hostile_db.target, old)
    # another session holds one agent of the old run: its down stops inside the agents delete
    holder = Holder(hostile_db.target).begin()
    holder.execute("SELECT 1 FROM agents WHERE tenant_id::text = $1 LIMIT 1 FOR UPDATE", tenants[0])
    try:
        down = spawn(state, "down", old, "--database-url", hostile_db.url, "--json")
        wait_for(
            lambda: fetchval(
                hostile_db.target,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'provision-down' "
                "AND wait_event_type = 'Lock' AND datname = current_database()",
            ),
            "the down waits on the held agent",
            down,
        )
        # meanwhile: a second down of the same run refuses, and a new up goes through
        again = provision(state, "down", old, "--database-url", hostile_db.url)
        assert_one_sentence(again.stderr, again.returncode, 10, f"run {old!r}", "right now", alone=True)
        new_up = provision(state, "up", "--database-url", hostile_db.url, *UP)
        assert new_up.returncode == 0, new_up.stderr
        new = json.loads(new_up.stdout)["run_id"]
        _complete(hostile_db, new)
        assert down.poll() is None and run_status(hostile_db.target, old) == "tearing_down"
    finally:
        holder.release()
    code, out, err = _finish(down)
    assert code == 0, err
    assert json.loads(out)["runs"][0]["removed"]
    hostile_db.assert_no_residue(old)
    _complete(hostile_db, new)  # the new run is whole
    assert residue(hostile_db.target, ledger_tenants(hostile_db.target, new))
    hostile_db.assert_intact()
    res = provision(state, "down", new, "--database-url", hostile_db.url, "--quiet")
    assert res.returncode == 0, res.stderr
    hostile_db.assert_no_residue(new)
    hostile_db.assert_intact()
