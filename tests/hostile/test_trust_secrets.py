"""Secrets never leak: every command runs with KNOWN secrets (a database password, the pool's
passwords read back from credentials.csv) and every byte it produces is searched for them: stdout,
stderr (with and without --debug), every file under the state directory except credentials.csv,
the ledger's rows, the platform's tables (only bcrypt hashes), and a short real Locust run's
outputs (--html, --csv, --logfile, --results-json, stdout/stderr) against a reference platform
whose logins fail part of the time (so that error messages are produced).

The shared server uses trust authentication, so the role's password is not checked there; it is
still a secret the toolkit is given and must never print.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

from agentic_loadkit.provisioning.target.url import parse_database_url
from agentic_loadkit.reference_platform.server import PlatformProcess
from hostile_db import Roles
from hostile_support import fetch, files_under, provision
from locust_argv import locust_argv

LENIENT = ["--gate-p95-ms", "5000", "--gate-endpoint-p95-ms", "10000", "--gate-min-rps", "1",
           "--gate-login-p95-ms", "30000"]


def _scan(texts: dict[str, str], secrets_: set[str]) -> dict[str, list[str]]:
    """Which secrets appear in which text."""
    found = {name: sorted(s for s in secrets_ if s in text) for name, text in texts.items()}
    return {name: hits for name, hits in found.items() if hits}


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def test_no_secret_in_any_output_file_or_row(db_factory: Any, roles: Roles, tmp_path: Path) -> None:
    db_secret = f"Db-S3cret-{secrets.token_hex(6)}"
    db = db_factory.new()
    user = roles.create(db, password=db_secret)
    url = user.url
    assert db_secret in url
    state = tmp_path / "state"
    outputs: dict[str, str] = {}

    def cmd(name: str, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        res = provision(state, *args)
        assert res.returncode in ok, f"{name}: {res.returncode} {res.stderr[-2000:]}"
        outputs[f"{name}: stdout"], outputs[f"{name}: stderr"] = res.stdout, res.stderr
        return res

    cmd("platform init", "platform", "init", "--dialect", "guide", "--database-url", url)
    made = cmd("up --json", "up", "--database-url", url, "--bcrypt-cost", "4", "--json", "--label", "secrets")
    run_id = json.loads(made.stdout)["run_id"]
    cmd("up", "up", "--database-url", url, "--bcrypt-cost", "4", "--set", "users=40", "--unique-passwords")
    cmd("up --dry-run", "up", "--dry-run", "--database-url", url)
    cmd("runs", "runs", "--database-url", url)
    cmd("runs --json", "runs", "--database-url", url, "--json")
    cmd("status", "status", run_id, "--database-url", url)
    cmd("status --json", "status", run_id, "--database-url", url, "--json")
    export = tmp_path / "export.json"
    cmd("credentials --output", "credentials", run_id, "--format", "json", "--output", str(export))
    cmd("down --dry-run", "down", run_id, "--dry-run", "--database-url", url)
    # the same secret on a port where nothing listens (the test server may be a Unix socket)
    target = parse_database_url(url)
    unreachable = f"postgresql://{target.user}:{target.password}@127.0.0.1:1/{target.database}"
    assert db_secret in unreachable
    cmd("unreachable", "up", "--database-url", unreachable, ok=(5,))
    cmd("unreachable --debug", "--debug", "runs", "--database-url", unreachable, ok=(5,))
    cmd("no such run --debug", "--debug", "down", "rnothere", "--database-url", url, ok=(7,))
    wrong_db = url.rsplit("/", 1)[0] + "/no_such_db_hostile"
    cmd("no such database", "status", "--database-url", wrong_db, ok=(5,))

    pool = state / "runs" / run_id / "credentials.csv"
    with pool.open() as f:
        passwords = {row["password"] for row in csv.DictReader(f)}
    assert passwords and all(len(p) >= 8 for p in passwords)
    known = passwords | {db_secret}
    assert {p for p in passwords if p in export.read_text()} == passwords  # exported where asked, and only there

    outputs |= _locust_outputs(url, state / "runs" / run_id, tmp_path / "locust")

    files = {str(p): _read(p) for p in files_under(state) if p.name != "credentials.csv"}
    assert sum(p.endswith("manifest.json") for p in files) == 2, sorted(files)
    cmd("down", "down", "--all", "--database-url", url)
    cmd("runs --prune", "runs", "--prune", "--database-url", url)
    rows = {
        "ledger": "\n".join(r[0] for r in fetch(db, "SELECT r::text FROM provisioning.runs r")),
        "users": "\n".join(r[0] for r in fetch(db, "SELECT u::text FROM users u")),
    }
    leaks = _scan({**outputs, **files, **rows}, known)
    assert leaks == {}, leaks
    assert outputs["up --json: stdout"] and "***" in outputs["runs: stdout"] + outputs["status: stdout"]


def _locust_outputs(database_url: str, run_dir: Path, out: Path) -> dict[str, str]:
    """A short real Locust run with the pool, against a platform whose logins start failing."""
    out.mkdir()
    platform = PlatformProcess(database_url, env={"PLATFORM_FAULTS": "login_fail_after=3,error_rate=0.1,seed=3",
                                                  "RATE_LIMIT_ENABLED": "0"})
    base = platform.start()
    try:
        cmd = locust_argv(
            "--headless", "-u", "4", "-r", "4", "-t", "4s",
            "--host", base, "--credentials", str(run_dir), "--wait-time", "0.05-0.1",
            "--html", str(out / "report.html"), "--csv", str(out / "stats"), "--logfile", str(out / "locust.log"),
            "--results-json", str(out / "results.json"), *LENIENT,
        )  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in ("LOCUST_SKIP_MONKEY_PATCH", "DATABASE_URL")}
        res = subprocess.run(cmd, cwd=out, capture_output=True, text=True, timeout=90, env=env, check=False)
    finally:
        platform.stop()
    assert res.returncode in (0, 3), (res.stdout + res.stderr)[-3000:]
    produced = files_under(out)
    names = {p.name for p in produced}
    assert {"report.html", "locust.log", "results.json", "stats_stats.csv", "stats_failures.csv"} <= names, names
    results = json.loads((out / "results.json").read_text())
    assert results["totals"]["requests"] > 0
    texts = {f"locust {p.name}": _read(p) for p in produced}
    texts["locust stdout"], texts["locust stderr"] = res.stdout, res.stderr
    assert "login" in texts["locust stats_failures.csv"].lower() or results["errors"], "no failure was produced"
    return texts
