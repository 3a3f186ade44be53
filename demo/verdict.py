"""The gate's verdict as the scenarios wrote it to the results JSON (``scenarios.results``).

The demo reads the verdict from that document, not from Locust's printed output, and
shows it as the scenarios' own table (``scenarios.gate.render_table``) rebuilt from the
document's checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GateVerdict", "read_gate_verdict"]


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    exit_code: int  # the code the scenarios gave the run
    table: str  # the gate's table, as the scenarios render it


def read_gate_verdict(path: Path) -> GateVerdict | None:
    """The verdict in the results JSON at ``path``; None when the file is missing or not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        gate, exit_code = doc["gate"], int(doc["exit_code"])
        checks = [_check(c) for c in gate["checks"]]
        passed = bool(gate["passed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    from .locustrun import import_scenarios_module

    render_table = import_scenarios_module("gate").render_table
    return GateVerdict(passed, exit_code, render_table(checks, exit_code=exit_code))


_PASSED = {"pass": True, "BREACH": False, "-": None, "not measured": None}
"""``Check.verdict`` back to ``Check.passed``."""


def _check(entry: dict[str, Any]) -> Any:
    """One ``Check`` of the scenarios' gate from its ``as_dict`` form."""
    from .locustrun import import_scenarios_module

    check_type = import_scenarios_module("gate").Check
    verdict = entry["verdict"]
    if verdict not in _PASSED:
        raise ValueError(f"unknown verdict {verdict!r}")
    return check_type(
        str(entry["name"]), str(entry["target"]), str(entry["measured"]), _PASSED[verdict],
        entry.get("target_value"), entry.get("measured_value"), verdict == "not measured",
    )
