"""Ways out of the provisioning CLI that must stay clean: one sentence, a documented code, and either
nothing written or everything undone.

- Ctrl-C, SIGTERM, or a terminated backend while bcrypt threads hash (before: exit 134, 'FATAL:
  exception not rethrown', as the interpreter's shutdown unwound a thread inside bcrypt);
- Ctrl-C during the first half second (before: a traceback from importing the commands);
- ``down 2>&1 | head -1`` (before: EPIPE ended the teardown half way);
- a state directory whose ``runs/`` is a symlink, or under /proc (before: refused after the load /
  exit 1 'unexpected');
- ``down`` as a role that may only read, and on a read-only database (exit 15, nothing deleted);
- ``--database-url ""`` next to a valid ``DATABASE_URL`` (before: silently used DATABASE_URL).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest
from hostile_support import (
    assert_one_sentence,
    execute,
    fetchval,
    files_under,
    ledger_tenants,
    provision,
    provision_env,
    run,
    run_status,
    spawn,
    wait_for,
)

SMALL = ("--set", "tenants=3", "--set", "users=9", "--set", "agents=12")
HASHING = ("--bcrypt-cost", "10", "--password-count", "200")


def _recorded_run(db) -> str | None:  # type: ignore[no-untyped-def]
    if not fetchval(db, "SELECT to_regclass('provisioning.runs') IS NOT NULL"):
        return None
    return fetchval(db, "SELECT run_id FROM provisioning.runs WHERE status = 'provisioning'")


def _hashing_up(state: Path, db):  # type: ignore[no-untyped-def]
    """An up whose bcrypt threads are busy for seconds once its run is recorded (200 hashes at cost
    10: short hashes, so that one ends while the interpreter shuts down, which is what aborted);
    returns the process and the run id."""
    proc = spawn(state, "up", "--database-url", db.url, *HASHING, "--streams", "1", *SMALL)
    run_id = wait_for(lambda: _recorded_run(db), "the run is recorded while bcrypt hashes", proc)
    return proc, run_id


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_while_bcrypt_hashes_undoes_the_run_and_exits_130(sig: int, hostile_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = hostile_db.target
    state = tmp_path / "state"
    proc, run_id = _hashing_up(state, db)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert "FATAL" not in err
    assert_one_sentence(err, proc.returncode, 130, "Interrupted", run_id)
    assert run_status(db, run_id) == "failed"
    assert not (state / "runs" / run_id).exists()
    hostile_db.assert_intact()


def test_a_backend_terminated_while_bcrypt_hashes_is_one_sentence(hostile_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With parallel streams the load runs while bcrypt hashes: its backends are terminated mid-COPY."""
    db = hostile_db.target
    state = tmp_path / "state"
    proc = spawn(state, "up", "--database-url", db.url, *HASHING, *SMALL[:4], "--set", "agents=150000")
    copying = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'provision-up' AND query ILIKE 'COPY%agents%'"
        " AND datname = current_database()"
    )
    wait_for(lambda: fetchval(db, copying), "the agents COPY runs while bcrypt hashes", proc)
    run_id = _recorded_run(db)
    execute(db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'provision-up'")
    _, err = proc.communicate(timeout=180)
    assert "FATAL" not in err and proc.returncode != 134, err
    assert proc.returncode in (8, 130), err  # the undo ran, or says 'provision down' finishes it
    assert_one_sentence(err, proc.returncode, proc.returncode, run_id)
    assert run_status(db, run_id) in ("failed", "provisioning")
    res = provision(state, "down", run_id, "--database-url", db.url)
    assert res.returncode == 0, res.stderr
    hostile_db.assert_intact()


def test_ctrl_c_in_the_first_half_second_prints_no_traceback(hostile_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SIGINT at 0 to 0.6 s after the start (the imports take about half a second)."""
    seen: list[int] = []
    for i in range(13):
        proc = spawn(tmp_path / "state", "runs", "--database-url", hostile_db.url)
        time.sleep(i * 0.05)  # where the signal lands is the variable under test, not a wait for a result
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        seen.append(proc.returncode)
        assert "Traceback" not in err and 'File "' not in err, err
        if proc.returncode == 130:
            assert_one_sentence(err, 130, 130, "nterrupted")
        else:
            assert proc.returncode in (0, -signal.SIGINT), (proc.returncode, err)
    assert 130 in seen, seen


def test_down_into_a_closed_pipe_finishes_the_teardown(hostile_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = hostile_db.target
    state = tmp_path / "state"
    res = provision(state, "up", "--database-url", db.url, "--bcrypt-cost", "4", "--json", *SMALL)
    assert res.returncode == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    cmd = ["sh", "-c", '"$@" 2>&1 | head -1', "sh", *spawn_args(state, "down", run_id, "--database-url", db.url)]
    piped = subprocess.run(cmd, env=provision_env(), capture_output=True, text=True, timeout=120, check=False)
    assert piped.stdout.count("\n") == 1, piped.stdout
    assert wait_for(lambda: run_status(db, run_id) == "removed", "the teardown finished")
    hostile_db.assert_no_residue(run_id)
    hostile_db.assert_intact()


def spawn_args(state: Path, *args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "agentic_loadkit.cli", "--state-dir", str(state), *args]


def test_a_symlinked_runs_dir_is_refused_before_any_write(hostile_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = hostile_db.target
    state = tmp_path / "state"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state.mkdir(mode=0o711)
    (state / "runs").symlink_to(elsewhere)
    res = provision(state, "up", "--database-url", db.url, "--bcrypt-cost", "4", *SMALL)
    assert_one_sentence(res.stderr, res.returncode, 11, "symlink")
    assert not fetchval(db, "SELECT to_regclass('provisioning.runs') IS NOT NULL") or (
        fetchval(db, "SELECT count(*) FROM provisioning.runs") == 0
    )
    assert files_under(elsewhere) == []
    hostile_db.assert_intact()


@pytest.mark.parametrize("where", ["/proc/hostile-state", "/proc/self", "/sys/kernel/hostile"])
def test_a_state_dir_on_a_kernel_file_system_is_one_sentence(where: str, hostile_db) -> None:  # type: ignore[no-untyped-def]
    res = provision(Path(where), "up", "--database-url", hostile_db.url, "--bcrypt-cost", "4", *SMALL)
    assert_one_sentence(res.stderr, res.returncode, 11, "kernel file system")
    res = provision(Path(where), "credentials")
    assert res.returncode in (7, 11), res.stderr  # no run there, or refused
    assert_one_sentence(res.stderr, res.returncode, res.returncode)
    hostile_db.assert_intact()


def test_down_as_a_read_only_role_or_database_deletes_nothing(hostile_db, roles, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = hostile_db.target
    state = tmp_path / "state"
    res = provision(state, "up", "--database-url", db.url, "--bcrypt-cost", "4", "--json", *SMALL)
    assert res.returncode == 0, res.stderr
    run_id = json.loads(res.stdout)["run_id"]
    rows = "SELECT count(*) FROM agents"
    before = fetchval(db, rows)
    reader = roles.create(db, password="ro-secret-2", read_only=True)
    blind = roles.create(db, password="ro-secret-3", read_only=True)
    execute(db, f"GRANT USAGE ON SCHEMA provisioning TO {reader.user}; "
                f"GRANT SELECT ON ALL TABLES IN SCHEMA provisioning TO {reader.user}")
    for who in (reader, blind):
        res = provision(state, "down", run_id, "--database-url", who.url)
        assert_one_sentence(res.stderr, res.returncode, 15, "permission denied")
        assert "ro-secret" not in res.stdout + res.stderr
    execute(db, f'ALTER DATABASE "{db.database}" SET default_transaction_read_only = on')
    try:
        res = provision(state, "down", run_id, "--database-url", db.url)
        assert_one_sentence(res.stderr, res.returncode, 15, "read-only")
    finally:
        _writable(db, f'ALTER DATABASE "{db.database}" RESET default_transaction_read_only')
    assert fetchval(db, rows) == before and run_status(db, run_id) == "ready"
    assert len(ledger_tenants(db, run_id)) == 3
    assert provision(state, "down", run_id, "--database-url", db.url).returncode == 0
    hostile_db.assert_intact()


def _writable(db, statement: str) -> None:  # type: ignore[no-untyped-def]
    """Run ``statement`` in a session that overrides the database's read-only default."""

    async def go() -> None:
        conn = await asyncpg.connect(db.asyncpg_url, server_settings={"default_transaction_read_only": "off"})
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    run(go())


def test_an_empty_database_url_is_an_error_not_a_fallback(hostile_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state = tmp_path / "state"
    for args in (("up", "--bcrypt-cost", "4", *SMALL), ("down",), ("runs",), ("platform", "init")):
        res = provision(state, *args, "--database-url", "", env={"DATABASE_URL": hostile_db.url})
        assert_one_sentence(res.stderr, res.returncode, 2, "is empty", alone=True)
    assert not fetchval(hostile_db.target, "SELECT to_regclass('provisioning.runs') IS NOT NULL")
    hostile_db.assert_intact()
