"""The CI scripts: ``.ci/run`` (this repository's CI) and ``examples/ci/loadtest.sh`` (a user's).

``.ci/run`` must lint every package, type-check and check the import layers under the import
names (``.ci/import-names``), and end with exactly the README's test command.

``examples/ci/loadtest.sh`` runs end to end against the reference platform on 127.0.0.1: it must
provision a run, drive a gated headless Locust run with the run's pool, write its reports, and
tear the run down whatever the gate said, exiting with the gate's code.  Both outcomes are
exercised: a pass (exit 0) and a breach (exit 3, still torn down).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
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
CI_RUN = REPO / ".ci" / "run"
IMPORT_NAMES = REPO / ".ci" / "import-names"
PACKAGE_DIRS: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
    "package-dir"
]


def _ci_commands() -> list[str]:
    """The commands of ``.ci/run``: comments dropped, continued lines joined."""
    text = re.sub(r"\\\n\s*", " ", CI_RUN.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_ci_run_ends_with_exactly_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("Run the test suite:", 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert _ci_commands()[-1] == block.strip()


def test_ci_run_lints_and_type_checks_every_package_and_checks_the_import_layers() -> None:
    commands = _ci_commands()
    ruff = next(shlex.split(c) for c in commands if c.startswith(".venv/bin/ruff check"))
    assert set(ruff[2:]) >= {folder.split("/")[0] for folder in PACKAGE_DIRS.values()} | {"tests"}
    mypy = next(shlex.split(c) for c in commands if "/.venv/bin/mypy" in c)
    assert mypy[0] == ".ci/import-names"
    assert {mypy[i + 1] for i, word in enumerate(mypy) if word == "-p"} == set(PACKAGE_DIRS)
    lint = next(shlex.split(c) for c in commands if "lint-imports" in c)
    assert lint[0] == ".ci/import-names"


def test_import_names_puts_every_package_under_its_import_name() -> None:
    names = sorted(PACKAGE_DIRS)
    probe = "; ".join(["import os", *(f"import {n}" for n in names)]
                      + [f"print({n}.__path__[0], os.path.realpath({n}.__path__[0]))" for n in names])
    proc = subprocess.run(
        [str(IMPORT_NAMES), sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    found = [line.split() for line in proc.stdout.splitlines()]
    # imported from the tree (not through the editable install's hook), which links to the folders
    assert [".".join(Path(path).parts[-2:]) for path, _real in found] == names
    assert [Path(real) for _path, real in found] == [(REPO / PACKAGE_DIRS[n]).resolve() for n in names]


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
