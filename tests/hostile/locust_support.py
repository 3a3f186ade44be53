"""Helpers of the hostile Locust tests: the scenario tests' helpers, a hand-made pool, Locust runs.

The scenario tests' helpers (``tests/scenarios/scenario_support.py``: ``provision up``
into a state directory, reference platforms in subprocesses, ``locust`` subprocesses)
are reused as they are; this module puts their folder on ``sys.path`` so the hostile
tests also run on their own.  Locust itself always runs in subprocesses (monkey-patched,
as in production); this test process never imports it.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

_SCENARIO_TESTS = Path(__file__).resolve().parents[1] / "scenarios"
if str(_SCENARIO_TESTS) not in sys.path:
    sys.path.insert(0, str(_SCENARIO_TESTS))

from scenario_support import (  # noqa: E402
    REPO,
    LocustRun,
    Platforms,
    ProvisionedRun,
    audit_watermark,
    locust_env,
    logins_since,
    provision,
    run_locust,
)

__all__ = [
    "LENIENT",
    "REPO",
    "LocustRun",
    "Platforms",
    "ProvisionedRun",
    "audit_watermark",
    "gate_line",
    "locust_env",
    "logins_since",
    "provision",
    "run_locust",
    "write_pool",
]

LENIENT = [
    "--gate-p95-ms", "5000", "--gate-endpoint-p95-ms", "10000", "--gate-min-rps", "0.1",
    "--gate-login-p95-ms", "30000", "--gate-login-error-rate", "100", "--gate-error-rate", "100",
]  # fmt: skip
"""Targets no figure of a short hostile run can breach: these tests judge failures, not speed."""


def write_pool(run_dir: Path, users: int, *, password: str = "pw-hostile-1", field_size: int = 0) -> Path:
    """A credentials pool as ``provision up`` lays it out (``credentials.csv``, ``manifest.json``), made by hand
    for a hostile platform that accepts any account; ``field_size`` pads the first role field to that many bytes."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "credentials.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["email", "password", "tenant_id", "tenant_slug", "user_id", "role"])
        for i in range(users):
            role = "x" * field_size if (i == 0 and field_size) else "member"
            writer.writerow([f"user{i}@hostile.test", password, f"t{i % 2}", f"tenant-{i % 2}", f"u{i}", role])
    tenants = [{"id": "t0", "agents": ["a0"]}, {"id": "t1", "agents": ["a1"]}]
    manifest = {"format": 1, "run_id": "rhostile", "tenants": tenants}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def gate_line(stdout: str) -> str:
    """The gate table's closing verdict line ("Gate: ..."), or "" when none was printed."""
    lines = [line for line in stdout.splitlines() if line.startswith("Gate: ")]
    return lines[-1] if lines else ""
