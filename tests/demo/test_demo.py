"""``provision demo`` end to end: a real platform (uvicorn), a real Locust run, real PostgreSQL.

Every demo runs as ``provision`` in a subprocess with its own state directory, while a
watcher thread records every process of its tree; afterwards no recorded process may
be alive, no process may mention the state directory or the platform's port, every
platform table must be empty, and the run must be ``removed`` in the ledger.

Loads are short (the light profile at time scale 0.125, about 15 s) and logins cheap
(bcrypt cost 4).  The throughput target is lowered in the pass test: requests/s on a
shared 2-core test machine say nothing about the demo; the gate itself is the
scenarios' and is tested there — here the breach test checks that the demo's exit code
is the gate's.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from agentic_loadkit.cli import app as cli
from agentic_loadkit.demo.locustrun import locustfile_path
from agentic_loadkit.demo.settings import DEMO_DATABASE, DEMO_PHASES
from agentic_loadkit.demo.verdict import read_gate_verdict
from agentic_loadkit.provisioning.target.embedded import EmbeddedPostgres
from agentic_loadkit.provisioning.target.url import parse_database_url
from agentic_loadkit.reference_platform.schema import TABLE_NAMES
from polltools import wait_until
from typer.testing import CliRunner

PROVISION = str(Path(sys.executable).with_name("provision"))
SHORT_LOAD = ["--time-scale", "0.125", "--bcrypt-cost", "4"]


class DemoProcess:
    """``provision --state-dir DIR demo ARGS`` in a subprocess, its process tree watched."""

    def __init__(self, state_dir: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.state_dir = state_dir
        self.proc = subprocess.Popen(
            [PROVISION, "--state-dir", str(state_dir), "demo", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.seen: dict[int, tuple[float, str]] = {}  # pid -> (create time, command line)
        self.lock = threading.Lock()
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()

    def _watch(self) -> None:
        root = psutil.Process(self.proc.pid)
        while self.proc.poll() is None:
            try:
                children = root.children(recursive=True)
            except psutil.Error:
                break
            for child in children:
                try:
                    entry = (child.create_time(), " ".join(child.cmdline()))
                except psutil.Error:
                    continue
                with self.lock:
                    self.seen.setdefault(child.pid, entry)
            time.sleep(0.05)

    def wait_for_child(self, needle: str, timeout: float) -> None:

        def appeared() -> bool:
            with self.lock:
                return any(needle in cmd for _, cmd in self.seen.values())

        wait_until(appeared, timeout, what=f"a {needle!r} child of the demo appeared", proc=self.proc)

    def finish(self, timeout: float = 150) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        self.watcher.join(5)
        return self.proc.returncode, out, err


def _alive(pid: int, created: float) -> bool:
    try:
        p = psutil.Process(pid)
        return p.create_time() == created and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_nothing_running(demo: DemoProcess, port: str) -> None:
    with demo.lock:
        seen = dict(demo.seen)
    assert any("reference_platform.server" in cmd for _, cmd in seen.values()), "the platform was never seen"
    alive = {pid: cmd for pid, (created, cmd) in seen.items() if _alive(pid, created)}
    assert not alive, f"processes of the demo still running: {alive}"
    strays = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or []) + " "
        if str(demo.state_dir) in cmd or f"--port {port} " in cmd or f"127.0.0.1:{port} " in cmd:
            strays.append((p.info["pid"], cmd))
    assert not strays, f"processes still mention the demo: {strays}"


async def _platform_state(url: str, run_id: str) -> tuple[dict[str, int], str | None]:
    conn = await asyncpg.connect(url)
    try:
        counts = {t: int(await conn.fetchval(f'SELECT count(*) FROM "{t}"')) for t in TABLE_NAMES}
        status = await conn.fetchval("SELECT status FROM provisioning.runs WHERE run_id = $1", run_id)
        return counts, status
    finally:
        await conn.close()


def assert_no_rows(url: str, run_id: str, state_dir: Path) -> None:
    counts, status = asyncio.run(_platform_state(url, run_id))
    assert counts == dict.fromkeys(TABLE_NAMES, 0)
    assert status == "removed"
    assert not (state_dir / "runs" / run_id).exists()  # the credentials went with the run


def _port(stderr: str) -> str:
    m = re.search(r"^platform: http://127\.0\.0\.1:(\d+)$", stderr, re.M)
    assert m, stderr
    return m.group(1)


def test_demo_runs_end_to_end_and_leaves_nothing(db_factory, tmp_path: Path) -> None:
    target = db_factory.new()  # empty: the demo creates the reference schema in it
    state_dir = tmp_path / "state"
    demo = DemoProcess(state_dir, ["--database-url", target.asyncpg_url, *SHORT_LOAD, "--", "--gate-min-rps", "10"])
    code, out, err = demo.finish()
    assert code == 0, out + err
    assert "Traceback" not in err
    # the gate's table, as the scenarios print it, and where everything is
    assert "Load-test gate" in out and "throughput, all endpoints but logins" in out
    assert re.search(r"^Gate: PASS - all \d+ checks passed \(exit code 0\)\.$", out, re.M), out
    run_id = re.search(r"^run (\w+) \(scale small, seed \d+\): ([\d,]+) rows made, ([\d,]+) rows removed.*, 0 left$",
                       out, re.M)
    assert run_id, out
    made, removed = (int(run_id.group(i).replace(",", "")) for i in (2, 3))
    assert made > 0 and removed > made  # the load made agents, conversations and audit events too
    out_dir = state_dir / "demo"
    assert f"HTML report   {out_dir / 'report.html'}" in out
    assert f"results JSON  {out_dir / 'results.json'}" in out
    assert "schema created by the demo" in out and "demo: gate PASS, exit code 0" in out
    assert "note: rate limiting is off" in out and "bcrypt cost 4" in out
    assert "<html" in (out_dir / "report.html").read_text(errors="replace")[:2000].lower()
    results = json.loads((out_dir / "results.json").read_text())
    assert results["run_id"] == run_id.group(1) and results["exit_code"] == 0 and results["gate"]["passed"]
    assert results["load_profile"] == "light" and results["totals"]["requests"] > 0
    # every phase was shown, in order
    steps = re.findall(r"^\[(\d)/7\] (\w+)", err, re.M)
    assert [s[1] for s in steps] == list(DEMO_PHASES)
    assert_no_rows(target.asyncpg_url, run_id.group(1), state_dir)
    assert_nothing_running(demo, _port(err))


def test_sigint_while_locust_runs_still_tears_down_and_stops_everything(db_factory, tmp_path: Path) -> None:
    target = db_factory.new()
    state_dir = tmp_path / "state"
    # a full-length light profile (2 minutes): the interrupt surely lands while Locust runs
    demo = DemoProcess(state_dir, ["--database-url", target.asyncpg_url, "--time-scale", "1", "--bcrypt-cost", "4"])
    demo.wait_for_child("-m locust", timeout=90)
    os.kill(demo.proc.pid, 2)  # SIGINT, as Ctrl-C sends it
    code, out, err = demo.finish(timeout=90)
    assert code == 130, out + err
    assert "Traceback" not in err
    run_id = re.search(r"^run (\w+) ready:", err, re.M)
    assert run_id, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: Interrupted (SIGINT) in the load phase; ")
    assert f"run {run_id.group(1)} was torn down" in last
    assert "Locust and the platform were stopped" in last
    assert "[6/7] down" in err and "[7/7] stop" in err
    assert_no_rows(target.asyncpg_url, run_id.group(1), state_dir)
    assert_nothing_running(demo, _port(err))


@pytest.fixture
def embedded_state_dir() -> Iterator[Path]:
    """A state directory outside pytest's private temporary root: the embedded server runs as
    its own system user, which must traverse the path (a concurrent pytest session resets the
    root's mode to 0700)."""
    path = Path(tempfile.mkdtemp(prefix="agentic-demo-test-", dir="/tmp"))
    os.chmod(path, 0o711)
    yield path / "state"
    EmbeddedPostgres(path / "state").stop()  # only if a failed test left it running
    shutil.rmtree(path, ignore_errors=True)


def test_embedded_default_is_started_and_stopped_and_exit_code_is_the_gates(embedded_state_dir: Path) -> None:
    state_dir = embedded_state_dir
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PROVISION_STATE_DIR")}
    embedded = EmbeddedPostgres(state_dir)
    assert not embedded.status().running
    # an unreachable throughput target: the gate breaches, so the demo exits 3
    demo = DemoProcess(state_dir, [*SHORT_LOAD, "--", "--gate-min-rps", "1000000"], env=env)
    code, out, err = demo.finish()
    assert code == 3, out + err
    assert re.search(r"^Gate: BREACH - 1 of \d+ checks failed \(exit code 3\)\.$", out, re.M), out
    assert "demo: gate BREACH, exit code 3" in out
    assert "(embedded, started by the demo)" in err
    assert "embedded server started and stopped by the demo" in out
    assert "Traceback" not in err and "Exception ignored" not in err, err  # not even from an exit hook
    assert json.loads((state_dir / "demo" / "results.json").read_text())["exit_code"] == 3
    status = subprocess.run([PROVISION, "--state-dir", str(state_dir), "db", "status"], capture_output=True,
                            text=True, env=env)
    assert status.returncode == 3 and "not running" in status.stdout
    assert_nothing_running(demo, _port(err))
    run_id = re.search(r"^run (\w+) \(scale", out, re.M)
    assert run_id, out
    server = parse_database_url(embedded.start())  # look inside, then stop it again
    try:
        demo_db = server.with_database(DEMO_DATABASE)
        assert_no_rows(demo_db.asyncpg_url, run_id.group(1), state_dir)
    finally:
        embedded.stop()


def test_a_failed_load_is_exit_14_after_the_cleanup(db_factory, tmp_path: Path) -> None:
    target = db_factory.new()
    state_dir = tmp_path / "state"
    demo = DemoProcess(state_dir, ["--database-url", target.asyncpg_url, *SHORT_LOAD, "--", "--wait-time", "bogus"])
    code, out, err = demo.finish()
    assert code == 14, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: The load test failed with Locust exit code 2 (--wait-time must be")
    assert str(state_dir / "demo" / "locust.log") in last
    run_id = re.search(r"^run (\w+) removed: [\d,]+ rows deleted, 0 left$", err, re.M)
    assert run_id, err
    assert_no_rows(target.asyncpg_url, run_id.group(1), state_dir)
    assert_nothing_running(demo, _port(err))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--load-profile", "nope"], "Unknown load profile 'nope'"),
        (["--time-scale", "0"], "--time-scale must be a number above 0"),
        (["--scale", "galactic"], "galactic"),
        (["--bcrypt-cost", "99"], "cost"),
        (["--", "--host", "http://example.com"], "The demo sets --host itself"),
    ],
)
def test_bad_options_touch_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    state_dir = tmp_path / "state"
    result = CliRunner().invoke(cli.app, ["--state-dir", str(state_dir), "demo", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not state_dir.exists()


def test_the_locustfile_ships_in_the_package() -> None:
    path = locustfile_path()
    assert path.is_file() and path.parent.name == "scenarios"


def test_the_verdict_is_read_from_the_results_json(tmp_path: Path) -> None:
    def check(name: str, verdict: str, measured: str) -> dict[str, object]:
        return {"name": name, "target": "< 500 ms", "measured": measured, "verdict": verdict,
                "target_value": 500.0, "measured_value": None}

    checks = [check("p95, all endpoints but logins", "pass", "120 ms"),
              check("p95 of each endpoint", "BREACH", "900 ms"),
              check("platform resident memory", "not measured", "not measured: no /metrics")]
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"format": 1, "gate": {"passed": False, "checks": checks}, "exit_code": 3}))
    verdict = read_gate_verdict(path)
    assert verdict is not None and not verdict.passed and verdict.exit_code == 3
    lines = verdict.table.splitlines()
    assert lines[0].startswith("Load-test gate")
    assert any(line.startswith("p95 of each endpoint") and line.endswith("BREACH") for line in lines)
    assert lines[-1] == "Gate: BREACH - 1 of 2 checks failed; 1 not measured (exit code 3)."
    assert read_gate_verdict(tmp_path / "missing.json") is None
    path.write_text("{}")
    assert read_gate_verdict(path) is None
