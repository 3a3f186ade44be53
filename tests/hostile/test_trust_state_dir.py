"""The state directory: deleted between ``up`` and ``down`` (the ledger in the database still allows
teardown; the credentials cannot come back and the message says only a new run makes new ones),
private modes under a permissive umask end to end, and unsafe directories refused before anything
is written."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from hostile_db import HostileDb
from hostile_support import (
    assert_one_sentence,
    fetchval,
    files_under,
    provision,
    provision_env,
    run_status,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_state_dir_deleted_between_up_and_down(hostile_db: HostileDb, state: Path) -> None:
    made = provision(state, "up", "--database-url", hostile_db.url, "--bcrypt-cost", "4", "--json")
    assert made.returncode == 0, made.stderr
    run_id = json.loads(made.stdout)["run_id"]
    shutil.rmtree(state)

    gone = provision(state, "credentials", run_id)
    assert_one_sentence(gone.stderr, gone.returncode, 7, run_id, "regenerated only by a new run", alone=True)
    assert gone.stdout == ""
    status = provision(state, "status", run_id, "--database-url", hostile_db.url, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["credentials_dir"] is None and json.loads(status.stdout)["status"] == "ready"

    down = provision(state, "down", run_id, "--database-url", hostile_db.url, "--json")
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["runs"][0]["removed"]
    assert run_status(hostile_db.target, run_id) == "removed"
    hostile_db.assert_no_residue(run_id)
    hostile_db.assert_intact()


def test_private_modes_under_umask_000(hostile_db: HostileDb, tmp_path: Path) -> None:
    state = tmp_path / "fresh-state"
    export = tmp_path / "export.csv"
    cmd = [sys.executable, "-m", "agentic_loadkit.cli", "--state-dir", str(state)]

    def permissive(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cmd, *args], env=provision_env(), capture_output=True, text=True, timeout=120,
            preexec_fn=lambda: os.umask(0), check=False,
        )

    made = permissive("up", "--database-url", hostile_db.url, "--bcrypt-cost", "4", "--json")
    assert made.returncode == 0, made.stderr
    run_id = json.loads(made.stdout)["run_id"]
    run_dir = state / "runs" / run_id
    assert _mode(state) == 0o711 and _mode(state / "runs") == 0o700 and _mode(run_dir) == 0o700
    files = files_under(state)
    assert {p.name for p in files} == {"credentials.csv", "manifest.json"}
    assert all(_mode(p) == 0o600 for p in files), {p.name: oct(_mode(p)) for p in files}
    res = permissive("credentials", run_id, "--output", str(export))
    assert res.returncode == 0, res.stderr
    assert _mode(export) == 0o600
    assert permissive("down", run_id, "--database-url", hostile_db.url, "--quiet").returncode == 0
    hostile_db.assert_no_residue(run_id)


def test_unsafe_state_dirs_are_refused_before_anything_is_written(hostile_db: HostileDb, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(elsewhere)
    for state, needle in ((shared, "world-writable"), (link, "symlink")):
        res = provision(state, "up", "--database-url", hostile_db.url, "--bcrypt-cost", "4", "--quiet")
        assert_one_sentence(res.stderr, res.returncode, 11, needle, str(state), alone=True)
        assert fetchval(hostile_db.target, "SELECT to_regclass('provisioning.runs')") is None
    assert files_under(shared) == [] and files_under(elsewhere) == []
    hostile_db.assert_intact()
