"""The scenarios' own command-line options (and config-file keys), added to Locust's parser.

They live in one argument group, "Agentic loadkit", shown by ``locust --help``; none is
shown in the web UI's form.  Each can also be set in a Locust config file (the
``scenarios/profiles/*.conf`` files do) or, where noted, by an environment variable.
Values travel to the workers with Locust's spawn message, so a worker needs none of
them on its own command line.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from agentic_loadkit.provisioning.errors import InputError

from .broker import POLICIES
from .gate import GateTargets
from .shapes import check_time_scale

__all__ = ["DEFAULTS", "OPTIONS", "OptionSpec", "ScenarioOptions", "add_options", "parse_wait_time"]

DEFAULT_WAIT_TIME = "0-0.1"


@dataclass(frozen=True)
class OptionSpec:
    """One option of the group: ``add_argument``'s flag and keywords, as data."""

    flag: str
    help: str
    default: Any = None
    type: type | None = None
    metavar: str | None = None
    env_var: str | None = None
    choices: tuple[str, ...] | None = None
    action: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def keywords(self) -> dict[str, Any]:
        names = ("type", "metavar", "env_var", "choices", "action")
        given = {name: getattr(self, name) for name in names if getattr(self, name) is not None}
        return {**given, "default": self.default, "help": self.help}


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "--credentials",
        "Credentials pool: a credentials.csv or a run directory. "
        "Default: the newest ready run under the state directory.",
        metavar="PATH",
        env_var="LOADKIT_CREDENTIALS",
    ),
    OptionSpec(
        "--state-dir",
        "The toolkit's state directory (default ./.provision), searched for the newest run.",
        metavar="DIR",
        env_var="PROVISION_STATE_DIR",
    ),
    OptionSpec(
        "--pool-exhausted",
        "When more users run than the pool has accounts: 'fail' stops the test (exit 12), "
        "'reuse' shares accounts and counts it. Default: fail.",
        default="fail",
        choices=POLICIES,
    ),
    OptionSpec(
        "--pool-timeout",
        "How long a worker's user waits for the master to lease an account. Default: 60.",
        60.0,
        float,
        "SECONDS",
    ),
    OptionSpec(
        "--routes",
        "Endpoint paths and answer keys for platforms whose paths differ from the contract.",
        metavar="FILE.toml",
    ),
    OptionSpec(
        "--openapi",
        "The platform's OpenAPI document, read before any load to learn its dialect "
        "('off': assume the guide's). Default: probe /v1/openapi.json, /openapi.json, /api/v1/openapi.json.",
        metavar="URL",
    ),
    OptionSpec(
        "--warm-up-timeout",
        "Bound of the warm-up (one login, one list) before users spawn; no answer by then: exit 16. "
        "0 skips the warm-up. Default: 15.",
        15.0,
        float,
        "SECONDS",
    ),
    OptionSpec(
        "--platform-metrics",
        "The platform's Prometheus /metrics, scraped during the run for the DB pool, memory and CPU "
        "gate rows ('off': not scraped). Default: the host's /metrics.",
        metavar="URL",
    ),
    OptionSpec(
        "--platform-metrics-interval",
        "Seconds between two scrapes of --platform-metrics. Default: 5.",
        5.0,
        float,
        "SECONDS",
    ),
    OptionSpec(
        "--db-pool-capacity",
        "The platform's DB pool capacity when its /metrics does not say "
        "(v1: DATABASE_POOL_SIZE 20 + DATABASE_MAX_OVERFLOW 10). Default: 30.",
        30,
        int,
        "N",
    ),
    OptionSpec(
        "--load-profile",
        "Run one of the guide's profiles as a load shape: light, medium, heavy, spike.",
        metavar="NAME",
        env_var="LOADKIT_LOAD_PROFILE",
    ),
    OptionSpec(
        "--time-scale",
        "Multiply the profile's durations by FACTOR (and divide its spawn rates), "
        "e.g. 0.1 for a CI run at a tenth of the length. Default: 1.",
        1.0,
        float,
        "FACTOR",
    ),
    OptionSpec(
        "--wait-time",
        "Think time between a user's tasks in seconds: 'MIN-MAX' (uniform) or one number. "
        f"Default: {DEFAULT_WAIT_TIME}.",
        DEFAULT_WAIT_TIME,
        metavar="MIN-MAX",
    ),
    OptionSpec(
        "--request-timeout",
        "Network timeout of every request; a slower answer counts as a failure. Default: 10.",
        10.0,
        float,
        "SECONDS",
    ),
    OptionSpec(
        "--isolation-probes",
        "Also run N TenantIsolationProbe users (they request other tenants' objects "
        "and fail on any answer but 404/403). Default: 0.",
        0,
        int,
        "N",
    ),
    OptionSpec("--no-gate", "Do not judge the run: Locust's own exit codes apply.", False, action="store_true"),
    OptionSpec(
        "--gate-p95-ms", "Target: p95 of all endpoints but logins, in ms. Default: 500.", GateTargets.p95_ms, float
    ),
    OptionSpec(
        "--gate-endpoint-p95-ms",
        "Target: p95 of each endpoint, in ms. Default: 500.",
        GateTargets.endpoint_p95_ms,
        float,
    ),
    OptionSpec(
        "--gate-error-rate",
        "Target: error rate of all endpoints but logins, in percent. Default: 1.",
        GateTargets.error_rate_pct,
        float,
        "PCT",
    ),
    OptionSpec(
        "--gate-min-rps",
        "Target: requests/s of all endpoints but logins. Default: 100.",
        GateTargets.min_rps,
        float,
    ),
    OptionSpec(
        "--gate-login-p95-ms",
        "Target: p95 of logins, in ms. Default: 2000.",
        GateTargets.login_p95_ms,
        float,
    ),
    OptionSpec(
        "--gate-login-error-rate",
        "Target: error rate of logins, in percent. Default: 1.",
        GateTargets.login_error_rate_pct,
        float,
        "PCT",
    ),
    OptionSpec(
        "--gate-db-pool-pct",
        "Target: the platform's DB connection pool use, in percent of its capacity. Default: 80.",
        GateTargets.db_pool_pct,
        float,
        "PCT",
    ),
    OptionSpec(
        "--gate-memory-mb",
        "Target: the platform's resident memory per process, in MB. Default: 1024.",
        GateTargets.memory_mb,
        float,
        "MB",
    ),
    OptionSpec(
        "--gate-cpu-pct",
        "Target: the platform's CPU per process, in percent of one core. Default: 70.",
        GateTargets.cpu_pct,
        float,
        "PCT",
    ),
    OptionSpec(
        "--results-json",
        "Write the run's figures, the gate's verdicts and the data's run id to PATH.",
        metavar="PATH",
    ),
    OptionSpec("--baseline", "An earlier --results-json file: fail on a p95 or throughput regression.", metavar="PATH"),
    OptionSpec(
        "--max-regression", "Regression allowed against --baseline, in percent. Default: 10.", 10.0, float, "PCT"
    ),
)
"""The group's options in ``--help`` order; ``ScenarioOptions`` takes their defaults from here too."""

DEFAULTS: dict[str, Any] = {spec.dest: spec.default for spec in OPTIONS}

_GATE_TARGET_OPTIONS = {
    "p95_ms": "gate_p95_ms",
    "endpoint_p95_ms": "gate_endpoint_p95_ms",
    "error_rate_pct": "gate_error_rate",
    "min_rps": "gate_min_rps",
    "login_p95_ms": "gate_login_p95_ms",
    "login_error_rate_pct": "gate_login_error_rate",
    "db_pool_pct": "gate_db_pool_pct",
    "memory_mb": "gate_memory_mb",
    "cpu_pct": "gate_cpu_pct",
}
"""Each ``GateTargets`` field and the option (namespace attribute) that sets it."""


def add_options(parser: Any) -> None:
    """Listener for ``init_command_line_parser``: add the scenarios' options."""
    group = parser.add_argument_group(
        "Agentic loadkit",
        "Options of the agentic-loadkit scenarios (credentials pool, load profiles, pass/fail gate).",
    )
    for spec in OPTIONS:
        group.add_argument(spec.flag, **spec.keywords())


def parse_wait_time(spec: str) -> tuple[float, float]:
    """'MIN-MAX' or 'X' seconds -> (min, max); ``InputError`` on anything else."""
    text = str(spec).strip()
    parts = text.split("-") if "-" in text else [text, text]
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"--wait-time must be 'MIN-MAX' or one number of seconds, not '{spec}'.") from None
    if len(parts) != 2 or not 0 <= low <= high or high > 3600:
        raise InputError(f"--wait-time must be 'MIN-MAX' seconds with 0 <= MIN <= MAX <= 3600, not '{spec}'.")
    return low, high


@dataclass(frozen=True)
class ScenarioOptions:
    """The options, validated (``InputError`` with one sentence on a bad value)."""

    credentials: str | None
    state_dir: str | None
    pool_exhausted: str
    pool_timeout: float
    routes: str | None
    openapi: str | None
    warm_up_timeout: float
    platform_metrics: str | None
    platform_metrics_interval: float
    db_pool_capacity: int
    load_profile: str | None
    time_scale: float
    wait_min: float
    wait_max: float
    request_timeout: float
    isolation_probes: int
    gate: bool
    targets: GateTargets
    results_json: str | None
    baseline: str | None
    max_regression: float

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace | None) -> ScenarioOptions:
        def get(name: str) -> Any:
            return getattr(ns, name, DEFAULTS[name]) if ns is not None else DEFAULTS[name]

        wait_min, wait_max = parse_wait_time(get("wait_time"))
        targets = GateTargets(**{field: float(get(option)) for field, option in _GATE_TARGET_OPTIONS.items()})
        for name, value in vars(targets).items():
            if not value >= 0:
                raise InputError(f"The gate target {name} must be a non-negative number, not {value}.")
        opts = cls(
            credentials=get("credentials"),
            state_dir=get("state_dir"),
            pool_exhausted=str(get("pool_exhausted")),
            pool_timeout=float(get("pool_timeout")),
            routes=get("routes"),
            openapi=get("openapi") or None,
            warm_up_timeout=float(get("warm_up_timeout")),
            platform_metrics=get("platform_metrics") or None,
            platform_metrics_interval=float(get("platform_metrics_interval")),
            db_pool_capacity=int(get("db_pool_capacity")),
            load_profile=get("load_profile") or None,
            time_scale=float(get("time_scale")),
            wait_min=wait_min,
            wait_max=wait_max,
            request_timeout=float(get("request_timeout")),
            isolation_probes=int(get("isolation_probes") or 0),
            gate=not bool(get("no_gate")),
            targets=targets,
            results_json=get("results_json") or None,
            baseline=get("baseline") or None,
            max_regression=float(get("max_regression")),
        )
        opts.validate()
        return opts

    def validate(self) -> None:
        """``InputError`` with one sentence on the first bad value."""
        if self.pool_exhausted not in POLICIES:
            raise InputError(f"--pool-exhausted must be one of {', '.join(POLICIES)}, not '{self.pool_exhausted}'.")
        if not self.pool_timeout > 0:
            raise InputError(f"--pool-timeout must be positive, not {self.pool_timeout}.")
        if not self.request_timeout > 0:
            raise InputError(f"--request-timeout must be positive, not {self.request_timeout}.")
        if self.isolation_probes < 0:
            raise InputError(f"--isolation-probes must be 0 or more, not {self.isolation_probes}.")
        if not self.max_regression >= 0:
            raise InputError(f"--max-regression must be a non-negative percentage, not {self.max_regression}.")
        if not self.warm_up_timeout >= 0:
            raise InputError(f"--warm-up-timeout must be 0 (no warm-up) or more seconds, not {self.warm_up_timeout}.")
        if not self.platform_metrics_interval >= 0.5:
            raise InputError(
                f"--platform-metrics-interval must be at least 0.5 seconds, not {self.platform_metrics_interval}."
            )
        if self.db_pool_capacity < 1:
            raise InputError(f"--db-pool-capacity must be 1 or more, not {self.db_pool_capacity}.")
        for name, value in (("--openapi", self.openapi), ("--platform-metrics", self.platform_metrics)):
            if value and value.lower() != "off" and not value.startswith(("http://", "https://")):
                raise InputError(f"{name} must be an http(s) URL or 'off', not '{value}'.")
        check_time_scale(self.time_scale)
