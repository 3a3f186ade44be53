"""A Locust worker killed mid-run (SIGKILL): the run goes on, the pool's books stay true.

A real master and two real workers run against the reference platform with the pool of a
real ``provision up``; once all users are spawned one worker is killed.  Locust's master
marks it missing after a few silent heartbeats, drops it later and hands its users to the
survivor in the same step.  The survivor's new users must get accounts (those of the dead
worker, which no live user holds any more), the run must end as the gate says, and the
books must count no account shared and no more accounts in use than the pool holds.

Locust drops a missing worker after ``HEARTBEAT_DEAD_INTERNAL`` heartbeats (-60, a minute);
the master here runs a locustfile that sets it to -2 so that the test takes seconds.  That
is Locust's own module constant, read on every heartbeat; nothing of the toolkit changes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.reference_platform.server import free_port
from locust_argv import locust_argv
from locust_support import (
    LENIENT,
    REPO,
    Platforms,
    ProvisionedRun,
    audit_watermark,
    gate_line,
    locust_env,
    logins_since,
    provision,
)
from polltools import wait_until

FAST_DROP_LOCUSTFILE = """
import locust.runners

locust.runners.HEARTBEAT_DEAD_INTERNAL = -2  # drop a missing worker 2 heartbeats after it went missing

from agentic_loadkit.scenarios.locustfile import *  # noqa: F403
"""


@pytest.fixture(scope="module")
def pool_run(platform_db: DatabaseTarget, tmp_path_factory: pytest.TempPathFactory) -> ProvisionedRun:
    """``provision up``: 4 tenants x 5 users (a pool of 20 accounts), cost-4 hashes."""
    return provision(platform_db, tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="module")
def platform_url(pool_run: ProvisionedRun) -> Iterator[str]:
    registry = Platforms(pool_run.database_url)
    yield registry.url()
    registry.stop_all()


def _wait_for_logins(run: ProvisionedRun, watermark: int, users: int, timeout: float = 30) -> None:
    """Poll the platform's audit log until ``users`` distinct users have logged in."""
    wait_until(
        lambda: len(logins_since(run, watermark)) >= users, timeout, 0.2, what=f"{users} distinct users logged in"
    )


class Master:
    """A headless Locust master whose stderr is read line by line (to know when all users are spawned)."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=locust_env()
        )
        self.err: list[str] = []
        self.spawned = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)
            if "All users spawned" in line or "Spawning is complete" in line:  # the latter on a busy machine
                self.spawned.set()


@pytest.mark.parametrize(("policy", "slack"), [("fail", 1.0), ("reuse", 1.3)], ids=["pool-equals-users", "reuse-slack"])
def test_a_killed_worker_does_not_end_the_run_nor_skew_the_books(
    pool_run: ProvisionedRun, platform_url: str, tmp_path: Path, policy: str, slack: float
) -> None:
    size = len(pool_run.users)  # the active users of the pool
    users = int(size / slack)  # the pool holds `slack` times the users
    locustfile = tmp_path / "locustfile_fast_drop.py"
    locustfile.write_text(FAST_DROP_LOCUSTFILE)
    port = free_port()
    results = tmp_path / "results.json"
    master = Master(
        locust_argv(
            "--master", "--master-bind-host", "127.0.0.1",
            "--master-bind-port", str(port), "--expect-workers", "2", "--headless",
            "-u", str(users), "-r", str(users), "-t", "16s", "--host", platform_url,
            "--credentials", str(pool_run.run_dir), "--pool-exhausted", policy, "--wait-time", "0.05-0.2",
            "--results-json", str(results), *LENIENT,
            locustfile=locustfile,
        ),
        tmp_path,
    )  # fmt: skip
    workers = [
        subprocess.Popen(
            locust_argv("--worker", "--master-host", "127.0.0.1", "--master-port", str(port)),
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=locust_env(),
        )
        for _ in range(2)
    ]
    watermark = audit_watermark(pool_run)
    try:
        assert master.spawned.wait(40), "".join(master.err)[-3000:]
        _wait_for_logins(pool_run, watermark, users)  # every user holds its account and is logged in
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        out, _ = master.proc.communicate(timeout=90)
        master.reader.join(10)
        workers[1].wait(30)
    finally:
        for proc in (master.proc, *workers):
            if proc.poll() is None:
                proc.kill()
    err = "".join(master.err)
    (tmp_path / "master.log").write_text(err)
    # the survivor got the dead worker's users (Locust re-dispatched them) ...
    assert master.proc.returncode == 0, (out + err)[-3000:]
    assert "leases were taken back from Locust workers that vanished" in out, out[-3000:]  # the gate's note
    assert "pool ran dry" not in err and "Traceback" not in err
    assert gate_line(out).startswith("Gate: PASS") and gate_line(out).endswith("(exit code 0)."), out[-2000:]
    doc = json.loads(results.read_text())
    pool = doc["pool"]
    killed = pool["reclaimed"]
    assert 0 < killed <= users  # the dead worker's leases, taken back
    assert pool["reused"] == 0  # no account ever had two live holders
    assert pool["peak_in_use"] <= min(users, size) and pool["peak_leases"] <= users
    assert pool["checkouts"] == users + killed  # the survivor's new users each got one account
    assert pool["in_use"] == 0 and doc["exit_code"] == 0
