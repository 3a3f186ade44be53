"""The ``up``/``runs``/``status``/``credentials`` commands end to end: JSON and quiet output, one-sentence
errors with exit codes and nothing written, the remote guard (``.invalid`` hosts only), Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agentic_loadkit.cli import app as cli
from agentic_loadkit.provisioning.generate.scales import SCALES
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from polltools import wait_until
from typer.testing import CliRunner
from up_helpers import TABLES, fetchval, install_gate, run_counts, run_row, total_rows

runner = CliRunner()
SMALL = SCALES["small"].as_dict()


def invoke(state: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(cli.app, ["--state-dir", str(state), *args], env=env)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-state")


@pytest.fixture(scope="module")
def made(
    platform_db: DatabaseTarget, state: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    profile = tmp_path_factory.mktemp("profile") / "p.toml"
    profile.write_text('scale = "small"\n[counts]\nagents = 77\n')
    res = invoke(
        state,
        "up",
        "--database-url",
        platform_db.url,
        "--bcrypt-cost",
        "4",
        "--seed",
        "21",
        "--profile",
        str(profile),
        "--label",
        "ci",
        "--json",
    )
    assert res.exit_code == 0, res.output
    return {"json": json.loads(res.stdout), "stderr": res.stderr}


def test_up_json_summary(platform_db: DatabaseTarget, made: dict[str, Any]) -> None:
    data = made["json"]
    assert data["counts"] == {**SMALL, "agents": 77} and data["seed"] == 21 and data["label"] == "ci"
    assert run_counts(platform_db, data["run_id"]) == data["counts"]
    assert {t["table"]: t["rows"] for t in data["tables"]} == data["counts"]
    assert len(data["fingerprint"]) == 64 and data["rows"] == sum(data["counts"].values())
    assert set(data["phases"]) >= {"reflect", "hash", "load", "analyze", "finalize", "total"}
    assert Path(data["credentials_path"]).is_file() and made["stderr"] == ""
    with open(data["credentials_path"]) as f:
        passwords = {row["password"] for row in csv.DictReader(f)}
    assert passwords and not any(p in json.dumps(data) for p in passwords)


def test_up_summary_and_quiet(platform_db: DatabaseTarget, state: Path) -> None:
    res = invoke(state, "up", "--database-url", platform_db.url, "--bcrypt-cost", "4", "--set", "agents=40")
    assert res.exit_code == 0, res.output
    assert "fingerprint" in res.stdout and "credentials" in res.stdout and "seed" in res.stdout
    run_id = res.stdout.split("run ", 1)[1].split()[0]
    with open(state / "runs" / run_id / "credentials.csv") as f:
        passwords = {row["password"] for row in csv.DictReader(f)}
    assert not any(p in res.output for p in passwords)  # no password on the terminal
    quiet = invoke(
        state, "up", "--database-url", platform_db.url, "--bcrypt-cost", "4", "--quiet", "--uniform"
    )
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_runs_status_and_credentials(platform_db: DatabaseTarget, state: Path, made: dict[str, Any]) -> None:
    run_id = made["json"]["run_id"]
    runs = invoke(state, "runs", "--database-url", platform_db.url, "--json")
    assert runs.exit_code == 0, runs.output
    listed = {r["run_id"]: r for r in json.loads(runs.stdout)["runs"]}
    assert listed[run_id]["status"] == "ready" and listed[run_id]["label"] == "ci"
    assert (
        json.loads(invoke(state, "runs", "--prune", "--json", "--database-url", platform_db.url).stdout)[
            "pruned"
        ]
        == []
    )
    st = invoke(state, "status", run_id, "--database-url", platform_db.url, "--json")
    assert st.exit_code == 0, st.output
    report = json.loads(st.stdout)
    assert {t["table"]: t["live"] for t in report["tables"]} == made["json"]["counts"]
    text = invoke(state, "status", run_id, "--database-url", platform_db.url)
    assert "live rows" in text.stdout and run_id in text.stdout
    exported = invoke(state, "credentials", run_id)
    assert exported.exit_code == 0
    lines = exported.stdout.splitlines()
    assert lines[0] == "email,password,tenant_id,tenant_slug,user_id,role"
    assert lines[1:] == Path(made["json"]["credentials_path"]).read_text().splitlines()[1:]
    out = state.parent / "export.json"
    res = invoke(state, "credentials", run_id, "--format", "json", "--output", str(out))
    assert res.exit_code == 0 and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert json.loads(out.read_text())["count"] == len(lines) - 1


@pytest.fixture(scope="module")
def untouched(db_factory: Any) -> DatabaseTarget:
    """A platform database that every bad invocation below must leave exactly as it was."""
    return db_factory.new(schema="uuid")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--scale", "huge"], 2, "Unknown scale 'huge'"),
        (["--set", "agents=-5"], 2, "negative"),
        (["--set", "tenants=0"], 2, "at least one tenant"),
        (["--set", "agents=ten"], 2, "not a whole number"),
        (["--set", "robots=3"], 2, "Unknown count 'robots'"),
        (["--profile", "{bad_profile}"], 2, "not valid TOML"),
        (["--schema-map", "{bad_map}"], 2, "unknown key 'colour'"),
        (["--bcrypt-cost", "3"], 2, "bcrypt cost"),
        (["--skew", "abc"], 2, "neither a number nor 'uniform'"),
        (["--skew", "2", "--uniform"], 2, "either --skew or --uniform"),
        (["--password-count", "0"], 2, "password count"),
    ],
)
def test_bad_input_is_one_sentence_and_writes_nothing(
    untouched: DatabaseTarget, tmp_path: Path, args: list[str], code: int, needle: str
) -> None:
    (tmp_path / "bad.toml").write_text("[counts\n")
    (tmp_path / "map.toml").write_text('colour = "blue"\n')
    args = [a.format(bad_profile=tmp_path / "bad.toml", bad_map=tmp_path / "map.toml") for a in args]
    sd = tmp_path / "state"
    res = (
        invoke(sd, "up", "--database-url", untouched.url, "--bcrypt-cost", "4", *args)
        if "--bcrypt-cost" not in args
        else invoke(sd, "up", "--database-url", untouched.url, *args)
    )
    assert res.exit_code == code, res.output
    assert needle in res.stderr
    assert res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.output
    assert fetchval(untouched, "SELECT to_regclass('provisioning.runs')") is None
    assert total_rows(untouched) == dict.fromkeys(TABLES, 0)
    assert not (sd / "runs").exists()


def test_unreachable_and_missing_schema(db_factory: Any, tmp_path: Path) -> None:
    res = invoke(
        tmp_path, "up", "--database-url", "postgresql://postgres@127.0.0.1:1/nope", "--bcrypt-cost", "4"
    )
    assert res.exit_code == 5 and "127.0.0.1:1" in res.stderr and "Traceback" not in res.output
    empty = db_factory.new()
    res = invoke(tmp_path, "up", "--database-url", empty.url, "--bcrypt-cost", "4")
    assert res.exit_code == 6, res.output
    assert "no table public.tenants" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert fetchval(empty, "SELECT to_regclass('provisioning.runs')") is None  # not even the ledger
    res = invoke(tmp_path, "status", "rnothere", "--database-url", empty.url)
    assert res.exit_code == 7 and "rnothere" in res.stderr
    res = invoke(tmp_path, "credentials", "rnothere")
    assert res.exit_code == 7


def test_dry_run_json_writes_nothing(untouched: DatabaseTarget, tmp_path: Path) -> None:
    res = invoke(
        tmp_path / "st", "up", "--dry-run", "--json", "--scale", "medium", "--database-url", untouched.url
    )
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert plan["dry_run"] and plan["schema_checked"] and plan["counts"] == SCALES["medium"].as_dict()
    assert plan["total_rows"] == sum(plan["counts"].values()) and plan["heap_bytes"] > 0
    assert fetchval(untouched, "SELECT to_regclass('provisioning.runs')") is None
    assert not (tmp_path / "st" / "runs").exists()


@pytest.mark.parametrize("command", [["up"], ["up", "--dry-run"], ["runs"], ["status"]])
def test_remote_guard_end_to_end(tmp_path: Path, command: list[str]) -> None:
    url = "postgresql://loadtest:s3cret-pw@db.staging.invalid:5432/agentic_db"
    res = invoke(tmp_path, *command, "--database-url", url, env={"PROVISION_ALLOW_REMOTE": ""})
    assert res.exit_code == 4, res.output
    assert "db.staging.invalid" in res.stderr and "loopback" in res.stderr and "--allow-remote" in res.stderr
    assert "s3cret-pw" not in res.output and not (tmp_path / "runs").exists()
    # allowed: the guard steps aside and only then is a connection tried (the name never resolves)
    res = (
        invoke(tmp_path, *command, "--database-url", url, "--allow-remote", "--bcrypt-cost", "4")
        if command[0] == "up"
        else invoke(tmp_path, *command, "--database-url", url, "--allow-remote")
    )
    assert res.exit_code == 5, res.output
    assert "s3cret-pw" not in res.output
    res = invoke(tmp_path, *command, "--database-url", url, env={"PROVISION_ALLOW_REMOTE": "1"})
    assert res.exit_code == 5, res.output


def test_ctrl_c_rolls_back(db_factory: Any, tmp_path: Path) -> None:
    target = db_factory.new(schema="uuid")
    install_gate(target, 1200, "PERFORM pg_sleep(60)")
    env = {**os.environ, "PROVISION_STATE_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentic_loadkit.cli",
            "up",
            "--database-url",
            target.url,
            "--bcrypt-cost",
            "4",
            "--set",
            "agents=2000",
            "--quiet",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        at_the_gate = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND application_name = 'provision-up'"
        )
        wait_until(lambda: fetchval(target, at_the_gate), 60, what="the load reached the gate", proc=proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.startswith("error: Interrupted: run ") and "rolled back and marked failed" in err
    assert "Traceback" not in err and out == ""
    run_id = err.split("run ", 1)[1].split()[0]
    assert total_rows(target) == dict.fromkeys(TABLES, 0)
    assert run_row(target, run_id)["status"] == "failed"
    assert not (tmp_path / "runs" / run_id).exists()
