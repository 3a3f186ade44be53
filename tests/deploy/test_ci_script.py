"""``examples/ci/loadtest.sh`` end to end against the reference platform on 127.0.0.1.

The script must provision a run, drive a gated headless Locust run with the run's pool,
write its reports, and tear the run down whatever the gate said, exiting with the gate's
code.  Both outcomes are exercised: a pass (exit 0) and a breach (exit 3, still torn down).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.reference_platform.schema import TABLE_NAMES
from agentic_loadkit.reference_platform.server import PlatformProcess

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "ci" / "loadtest.sh"
BIN = Path(sys.executable).parent
PLATFORM_TABLES = TABLE_NAMES


def _counts(target: DatabaseTarget) -> dict[str, object]:
    async def go() -> dict[str, object]:
        conn = await asyncpg.connect(target.asyncpg_url)
        try:
            out: dict[str, object] = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in PLATFORM_TABLES}
            out["runs"] = [tuple(r) for r in await conn.fetch("SELECT run_id, status FROM provisioning.runs")]
            return out
        finally:
            await conn.close()

    return asyncio.run(go())


def _run_script(
    target: DatabaseTarget, base_url: str, out_dir: Path, locust_args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "PROVISION_", "LOADKIT_"))},
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "HOST": base_url,
        "DATABASE_URL": target.asyncpg_url,
        "SCALE": "small",
        "SET": "users=20",
        "BCRYPT_COST": "4",
        "RUN_TIME": "8s",
        "USERS": "5",
        "SPAWN_RATE": "5",
        "OUT_DIR": str(out_dir),
        "LOCUST_ARGS": locust_args,
        "PROVISION": str(BIN / "provision"),
        "LOCUST": str(BIN / "locust"),
    }
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def platform(db_factory):  # type: ignore[no-untyped-def]
    target = db_factory.new(schema="uuid")
    with PlatformProcess(target.asyncpg_url, env={"RATE_LIMIT_ENABLED": "false"}) as proc:
        yield target, proc.start()


def test_script_passes_the_gate_writes_reports_and_tears_down(platform, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target, base_url = platform
    out = tmp_path / "out"
    proc = _run_script(target, base_url, out, "--gate-min-rps 1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert results["totals"]["requests"] > 0
    assert (out / "report.html").stat().st_size > 0
    up = json.loads((out / "up.json").read_text())
    counts = _counts(target)
    assert all(counts[t] == 0 for t in PLATFORM_TABLES), counts
    assert counts["runs"] == [(up["run_id"], "removed")]
    # the pool never lands in the uploaded directory
    assert not list(out.rglob("credentials.csv"))


def test_script_tears_down_after_a_breached_gate_and_exits_3(platform, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target, base_url = platform
    out = tmp_path / "out"
    proc = _run_script(target, base_url, out, "--gate-p95-ms 0.001")
    assert proc.returncode == 3, proc.stderr[-3000:]
    counts = _counts(target)
    assert all(counts[t] == 0 for t in PLATFORM_TABLES), counts
    assert {status for _run, status in counts["runs"]} == {"removed"}  # type: ignore[attr-defined]
