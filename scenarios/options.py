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

from .gate import GateTargets
from .pool import POLICIES

__all__ = ["ScenarioOptions", "add_options", "parse_wait_time"]

DEFAULT_WAIT_TIME = "0-0.1"


def add_options(parser: Any) -> None:
    """Listener for ``init_command_line_parser``: add the scenarios' options."""
    group = parser.add_argument_group(
        "Agentic loadkit",
        "Options of the agentic-loadkit scenarios (credentials pool, load profiles, pass/fail gate).",
    )
    group.add_argument(
        "--credentials",
        metavar="PATH",
        env_var="LOADKIT_CREDENTIALS",
        default=None,
        help="Credentials pool: a credentials.csv or a run directory. "
        "Default: the newest ready run under the state directory.",
    )
    group.add_argument(
        "--state-dir",
        metavar="DIR",
        env_var="PROVISION_STATE_DIR",
        default=None,
        help="The toolkit's state directory (default ./.provision), searched for the newest run.",
    )
    group.add_argument(
        "--pool-exhausted",
        choices=POLICIES,
        default="fail",
        help="When more users run than the pool has accounts: 'fail' stops the test (exit 12), "
        "'reuse' shares accounts and counts it. Default: fail.",
    )
    group.add_argument(
        "--pool-timeout",
        type=float,
        metavar="SECONDS",
        default=60.0,
        help="How long a worker's user waits for the master to lease an account. Default: 60.",
    )
    group.add_argument(
        "--routes",
        metavar="FILE.toml",
        default=None,
        help="Endpoint paths and answer keys for platforms whose paths differ from the contract.",
    )
    group.add_argument(
        "--openapi",
        metavar="URL",
        default=None,
        help="The platform's OpenAPI document, read before any load to learn its dialect "
        "('off': assume the guide's). Default: probe /v1/openapi.json, /openapi.json, /api/v1/openapi.json.",
    )
    group.add_argument(
        "--warm-up-timeout",
        type=float,
        metavar="SECONDS",
        default=15.0,
        help="Bound of the warm-up (one login, one list) before users spawn; no answer by then: exit 16. "
        "0 skips the warm-up. Default: 15.",
    )
    group.add_argument(
        "--platform-metrics",
        metavar="URL",
        default=None,
        help="The platform's Prometheus /metrics, scraped during the run for the DB pool, memory and CPU "
        "gate rows ('off': not scraped). Default: the host's /metrics.",
    )
    group.add_argument(
        "--platform-metrics-interval",
        type=float,
        metavar="SECONDS",
        default=5.0,
        help="Seconds between two scrapes of --platform-metrics. Default: 5.",
    )
    group.add_argument(
        "--db-pool-capacity",
        type=int,
        metavar="N",
        default=30,
        help="The platform's DB pool capacity when its /metrics does not say "
        "(v1: DATABASE_POOL_SIZE 20 + DATABASE_MAX_OVERFLOW 10). Default: 30.",
    )
    group.add_argument(
        "--load-profile",
        metavar="NAME",
        env_var="LOADKIT_LOAD_PROFILE",
        default=None,
        help="Run one of the guide's profiles as a load shape: light, medium, heavy, spike.",
    )
    group.add_argument(
        "--time-scale",
        type=float,
        metavar="FACTOR",
        default=1.0,
        help="Multiply the profile's durations by FACTOR (and divide its spawn rates), "
        "e.g. 0.1 for a CI run at a tenth of the length. Default: 1.",
    )
    group.add_argument(
        "--wait-time",
        metavar="MIN-MAX",
        default=DEFAULT_WAIT_TIME,
        help="Think time between a user's tasks in seconds: 'MIN-MAX' (uniform) or one number. "
        f"Default: {DEFAULT_WAIT_TIME}.",
    )
    group.add_argument(
        "--request-timeout",
        type=float,
        metavar="SECONDS",
        default=10.0,
        help="Network timeout of every request; a slower answer counts as a failure. Default: 10.",
    )
    group.add_argument(
        "--isolation-probes",
        type=int,
        metavar="N",
        default=0,
        help="Also run N TenantIsolationProbe users (they request other tenants' objects "
        "and fail on any answer but 404/403). Default: 0.",
    )
    group.add_argument(
        "--no-gate", action="store_true", default=False, help="Do not judge the run: Locust's own exit codes apply."
    )
    group.add_argument(
        "--gate-p95-ms",
        type=float,
        default=GateTargets.p95_ms,
        help="Target: p95 of all endpoints but logins, in ms. Default: 500.",
    )
    group.add_argument(
        "--gate-endpoint-p95-ms",
        type=float,
        default=GateTargets.endpoint_p95_ms,
        help="Target: p95 of each endpoint, in ms. Default: 500.",
    )
    group.add_argument(
        "--gate-error-rate",
        type=float,
        metavar="PCT",
        default=GateTargets.error_rate_pct,
        help="Target: error rate of all endpoints but logins, in percent. Default: 1.",
    )
    group.add_argument(
        "--gate-min-rps",
        type=float,
        default=GateTargets.min_rps,
        help="Target: requests/s of all endpoints but logins. Default: 100.",
    )
    group.add_argument(
        "--gate-login-p95-ms",
        type=float,
        default=GateTargets.login_p95_ms,
        help="Target: p95 of logins, in ms. Default: 2000.",
    )
    group.add_argument(
        "--gate-login-error-rate",
        type=float,
        metavar="PCT",
        default=GateTargets.login_error_rate_pct,
        help="Target: error rate of logins, in percent. Default: 1.",
    )
    group.add_argument(
        "--gate-db-pool-pct",
        type=float,
        metavar="PCT",
        default=GateTargets.db_pool_pct,
        help="Target: the platform's DB connection pool use, in percent of its capacity. Default: 80.",
    )
    group.add_argument(
        "--gate-memory-mb",
        type=float,
        metavar="MB",
        default=GateTargets.memory_mb,
        help="Target: the platform's resident memory per process, in MB. Default: 1024.",
    )
    group.add_argument(
        "--gate-cpu-pct",
        type=float,
        metavar="PCT",
        default=GateTargets.cpu_pct,
        help="Target: the platform's CPU per process, in percent of one core. Default: 70.",
    )
    group.add_argument(
        "--results-json",
        metavar="PATH",
        default=None,
        help="Write the run's figures, the gate's verdicts and the data's run id to PATH.",
    )
    group.add_argument(
        "--baseline",
        metavar="PATH",
        default=None,
        help="An earlier --results-json file: fail on a p95 or throughput regression.",
    )
    group.add_argument(
        "--max-regression",
        type=float,
        metavar="PCT",
        default=10.0,
        help="Regression allowed against --baseline, in percent. Default: 10.",
    )


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
        def get(name: str, default: Any = None) -> Any:
            return getattr(ns, name, default) if ns is not None else default

        wait_min, wait_max = parse_wait_time(get("wait_time", DEFAULT_WAIT_TIME))
        targets = GateTargets(
            p95_ms=float(get("gate_p95_ms", GateTargets.p95_ms)),
            endpoint_p95_ms=float(get("gate_endpoint_p95_ms", GateTargets.endpoint_p95_ms)),
            error_rate_pct=float(get("gate_error_rate", GateTargets.error_rate_pct)),
            min_rps=float(get("gate_min_rps", GateTargets.min_rps)),
            login_p95_ms=float(get("gate_login_p95_ms", GateTargets.login_p95_ms)),
            login_error_rate_pct=float(get("gate_login_error_rate", GateTargets.login_error_rate_pct)),
            db_pool_pct=float(get("gate_db_pool_pct", GateTargets.db_pool_pct)),
            memory_mb=float(get("gate_memory_mb", GateTargets.memory_mb)),
            cpu_pct=float(get("gate_cpu_pct", GateTargets.cpu_pct)),
        )
        for name, value in vars(targets).items():
            if not value >= 0:
                raise InputError(f"The gate target {name} must be a non-negative number, not {value}.")
        opts = cls(
            credentials=get("credentials"),
            state_dir=get("state_dir"),
            pool_exhausted=str(get("pool_exhausted", "fail")),
            pool_timeout=float(get("pool_timeout", 60.0)),
            routes=get("routes"),
            openapi=get("openapi") or None,
            warm_up_timeout=float(get("warm_up_timeout", 15.0)),
            platform_metrics=get("platform_metrics") or None,
            platform_metrics_interval=float(get("platform_metrics_interval", 5.0)),
            db_pool_capacity=int(get("db_pool_capacity", 30)),
            load_profile=get("load_profile") or None,
            time_scale=float(get("time_scale", 1.0)),
            wait_min=wait_min,
            wait_max=wait_max,
            request_timeout=float(get("request_timeout", 10.0)),
            isolation_probes=int(get("isolation_probes", 0) or 0),
            gate=not bool(get("no_gate", False)),
            targets=targets,
            results_json=get("results_json") or None,
            baseline=get("baseline") or None,
            max_regression=float(get("max_regression", 10.0)),
        )
        if opts.pool_exhausted not in POLICIES:
            raise InputError(f"--pool-exhausted must be one of {', '.join(POLICIES)}, not '{opts.pool_exhausted}'.")
        if not opts.pool_timeout > 0:
            raise InputError(f"--pool-timeout must be positive, not {opts.pool_timeout}.")
        if not opts.request_timeout > 0:
            raise InputError(f"--request-timeout must be positive, not {opts.request_timeout}.")
        if opts.isolation_probes < 0:
            raise InputError(f"--isolation-probes must be 0 or more, not {opts.isolation_probes}.")
        if not opts.max_regression >= 0:
            raise InputError(f"--max-regression must be a non-negative percentage, not {opts.max_regression}.")
        if not opts.warm_up_timeout >= 0:
            raise InputError(f"--warm-up-timeout must be 0 (no warm-up) or more seconds, not {opts.warm_up_timeout}.")
        if not opts.platform_metrics_interval >= 0.5:
            raise InputError(
                f"--platform-metrics-interval must be at least 0.5 seconds, not {opts.platform_metrics_interval}."
            )
        if opts.db_pool_capacity < 1:
            raise InputError(f"--db-pool-capacity must be 1 or more, not {opts.db_pool_capacity}.")
        for name, value in (("--openapi", opts.openapi), ("--platform-metrics", opts.platform_metrics)):
            if value and value.lower() != "off" and not value.startswith(("http://", "https://")):
                raise InputError(f"{name} must be an http(s) URL or 'off', not '{value}'.")
        if not opts.time_scale > 0:
            raise InputError(f"--time-scale must be a positive number, not {opts.time_scale}.")
        return opts
