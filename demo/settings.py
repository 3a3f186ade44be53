"""What ``provision demo`` takes (``DemoSettings``) and gives back (``DemoResult``), and its phases.

Light on purpose: ``provision demo --help`` shows these defaults without importing the
demo's stack (asyncpg, the provisioning stages, the reference platform).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agentic_loadkit.provisioning.generate.passwords import DEFAULT_BCRYPT_COST

from .verdict import GateVerdict

__all__ = [
    "DEFAULT_TIME_SCALE",
    "DEMO_DATABASE",
    "DEMO_PHASES",
    "LOAD_GRACE_SECONDS",
    "DemoResult",
    "DemoSettings",
]

DEMO_DATABASE = "agentic_demo"
"""The demo's own database on a server whose default database holds platform tables."""
DEMO_PHASES = ("database", "schema", "platform", "up", "load", "down", "stop")
DEFAULT_TIME_SCALE = 0.5
LOAD_GRACE_SECONDS = 120.0
"""On top of the profile's length: start-up, logins, Locust's shutdown."""


@dataclass(frozen=True)
class DemoSettings:
    scale: str = "small"
    overrides: tuple[str, ...] = ()
    seed: int | None = None
    database_url: str | None = None
    state_dir: Path | None = None
    load_profile: str = "light"
    time_scale: float = DEFAULT_TIME_SCALE
    users: int | None = None  # None: the profile's
    spawn_rate: float | None = None
    out_dir: Path | None = None  # None: <state_dir>/demo
    rate_limit: bool = False
    bcrypt_cost: int = DEFAULT_BCRYPT_COST
    locust_args: tuple[str, ...] = ()  # more scenario/Locust options, e.g. ("--gate-min-rps", "50")
    load_timeout: float | None = None  # None: the profile's length + LOAD_GRACE_SECONDS


@dataclass(frozen=True)
class DemoResult:
    exit_code: int  # the gate's: 0 pass, 3 breach
    gate: GateVerdict | None  # read from the results JSON; None when the scenarios wrote none
    run_id: str
    scale: str
    seed: int
    counts: dict[str, int]
    rows_made: int
    rows_removed: int  # includes the rows the platform made during the load
    rows_left: int
    database: str  # masked
    database_source: str
    schema_created: bool
    embedded_stopped: bool
    platform_url: str
    load_profile: str
    time_scale: float
    peak_users: int
    out_dir: Path
    html_report: Path | None
    results_json: Path | None
    locust_log: Path
    phases: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def gate_passed(self) -> bool:
        return self.gate.passed if self.gate is not None else self.exit_code == 0
