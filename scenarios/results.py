"""The run's figures as a JSON file (``--results-json``) and the comparison with an earlier one (``--baseline``).

The results file holds, per endpoint, requests, failures, p50/p95/p99 and requests/s;
the totals (logins apart) and the logins' own line; the gate's checks and verdict; the
pool's books; and the run id of the provisioned data, so that a figure can always be
traced to the data it was measured on.  It never holds a password.

A baseline is an earlier results file.  ``--max-regression PCT`` (default 10) lets the
overall p95 grow by PCT percent (plus 1 ms, the resolution of Locust's statistics) and
throughput shrink by PCT percent before the gate fails.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentic_loadkit.provisioning.errors import InputError

from .figures import RunFigures
from .gate import Check

__all__ = ["RESULTS_FORMAT", "Baseline", "build_results", "compare_with_baseline", "load_baseline", "write_results"]

RESULTS_FORMAT = 1
P95_RESOLUTION_MS = 1.0


@dataclass(frozen=True)
class Baseline:
    path: Path
    p95_ms: float
    rps: float
    run_id: str | None
    created_at: str | None


def build_results(figures: RunFigures, checks: list[Check], *, meta: dict[str, Any], exit_code: int) -> dict[str, Any]:
    """The results document (see the module docstring)."""
    return {
        "format": RESULTS_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **meta,
        "duration_s": round(figures.duration_s, 3),
        "endpoints": [e.as_dict() for e in figures.endpoints],
        "totals": figures.totals.as_dict(),
        "logins": figures.logins.as_dict() if figures.logins else None,
        "rate_limited": figures.rate_limited,
        "isolation": {"requests": figures.isolation_requests, "breaches": figures.isolation_breaches},
        "errors": [{"error": name, "occurrences": n} for name, n in figures.errors],
        "gate": {
            "passed": all(c.passed is not False for c in checks),
            "checks": [c.as_dict() for c in checks],
        },
        "exit_code": exit_code,
    }


def write_results(path: str | Path, doc: dict[str, Any]) -> Path:
    """Write the document atomically (a reader never sees half a file)."""
    target = Path(path)
    if target.parent and not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def load_baseline(path: str | Path) -> Baseline:
    """Read an earlier results file; ``InputError`` (one sentence) if it is missing or not one."""
    source = Path(path)
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"The baseline file {source} does not exist.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"The baseline file {source} is not readable JSON ({exc.__class__.__name__}).") from None
    totals = doc.get("totals") if isinstance(doc, dict) else None
    if not isinstance(totals, dict) or doc.get("format") != RESULTS_FORMAT:
        raise InputError(f"The baseline file {source} is not a results file of this toolkit (format {RESULTS_FORMAT}).")
    try:
        p95, rps = float(totals["p95_ms"]), float(totals["rps"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"The baseline file {source} lacks the totals' p95_ms and rps.") from None
    if p95 < 0 or rps < 0:
        raise InputError(f"The baseline file {source} has negative figures.")
    return Baseline(source, p95, rps, doc.get("run_id"), doc.get("created_at"))


def compare_with_baseline(figures: RunFigures, baseline: Baseline, max_regression_pct: float) -> list[Check]:
    """Gate lines for p95 and throughput against the baseline."""
    total = figures.totals
    allowed_p95 = baseline.p95_ms * (1 + max_regression_pct / 100) + P95_RESOLUTION_MS
    p95_change = (total.p95_ms / baseline.p95_ms - 1) * 100 if baseline.p95_ms else 0.0
    min_rps = baseline.rps * (1 - max_regression_pct / 100)
    rps_change = (total.rps / baseline.rps - 1) * 100 if baseline.rps else 0.0
    return [
        Check(
            f"p95 vs baseline ({baseline.p95_ms:.0f} ms)",
            f"<= {allowed_p95:.0f} ms (+{max_regression_pct:g} %)",
            f"{total.p95_ms:.0f} ms ({p95_change:+.1f} %)",
            total.p95_ms <= allowed_p95,
            allowed_p95,
            total.p95_ms,
        ),
        Check(
            f"throughput vs baseline ({baseline.rps:.1f} req/s)",
            f">= {min_rps:.1f} req/s (-{max_regression_pct:g} %)",
            f"{total.rps:.1f} req/s ({rps_change:+.1f} %)",
            total.rps >= min_rps,
            min_rps,
            total.rps,
        ),
    ]
