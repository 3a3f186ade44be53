"""``provision demo`` killed with SIGKILL while Locust runs: no Locust (and no platform) is left running.

A SIGKILL skips every cleanup of the demo, so its children must end on their own: the
platform watches its parent, and the Locust child is started so that the kernel sends it
SIGTERM when the demo dies.  The demo runs the full-length light profile (2 minutes), so a
Locust still alive a few seconds after the kill is one the kill left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from polltools import wait_until

PROVISION = str(Path(sys.executable).with_name("provision"))
ENDS_WITHIN_S = 30.0
GUARD = "agentic_loadkit.demo.parent_death"  # the wrapper's module, in its command line until it execs


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _wait_for_locust(demo: subprocess.Popen[str], timeout: float) -> list[psutil.Process]:

    def locust_children() -> list[psutil.Process]:
        found = []
        for child in _children(demo.pid):
            try:
                if "-m locust" in " ".join(child.cmdline()) and child.is_running():
                    found.append(child)
            except psutil.Error:
                continue
        return found

    return wait_until(locust_children, timeout, 0.1, what="the demo's Locust run started", proc=demo)


def _guard_execd(locust: list[psutil.Process]) -> bool:
    """Every Locust child runs Locust itself: its parent-death guard has armed the signal and exec'd."""
    try:
        return all(GUARD not in " ".join(p.cmdline()) for p in locust)
    except psutil.Error:
        return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_sigkill_of_the_demo_leaves_no_locust_running(db_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target: DatabaseTarget = db_factory.new()
    demo = subprocess.Popen(
        [PROVISION, "--state-dir", str(tmp_path / "state"), "demo", "--database-url", target.asyncpg_url,
         "--time-scale", "1", "--bcrypt-cost", "4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        locust = _wait_for_locust(demo, timeout=120)
        # the guard execs into Locust itself (the wrapper and Locust share one pid)
        wait_until(lambda: _guard_execd(locust), 30, 0.1, what="the parent-death guard exec'd Locust", proc=demo)
        family = [p for p in _children(demo.pid) if _alive(p)]
        assert family, "the demo has no children"
        os.kill(demo.pid, signal.SIGKILL)
        demo.wait(10)
        try:
            wait_until(lambda: not any(_alive(p) for p in family), ENDS_WITHIN_S, 0.2, what="the demo's family ended")
        except AssertionError:
            left = {p.pid: " ".join(p.cmdline()) for p in family if _alive(p)}
            raise AssertionError(f"still running {ENDS_WITHIN_S:.0f} s after the demo's SIGKILL: {left}") from None
    finally:
        if demo.poll() is None:
            demo.kill()
        for proc in _children(demo.pid):
            proc.kill()
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if str(tmp_path) in " ".join(proc.info["cmdline"] or []):
                proc.kill()  # only if the assertion above failed: never leave the load running
