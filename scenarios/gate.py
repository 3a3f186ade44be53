"""The pass/fail gate: the guide's targets, judged on the whole run's figures (``figures.py``).

Targets (each overridable by an option):

==================================  ===========  ==========================
check                               default      option
==================================  ===========  ==========================
p95, all endpoints but logins       < 500 ms     ``--gate-p95-ms``
p95 of each endpoint                < 500 ms     ``--gate-endpoint-p95-ms``
error rate, all endpoints but login < 1 %        ``--gate-error-rate``
throughput, all endpoints but login > 100 /s     ``--gate-min-rps``
logins p95                          < 2000 ms    ``--gate-login-p95-ms``
logins error rate                   < 1 %        ``--gate-login-error-rate``
tenant isolation breaches           = 0          (only when probes ran)
rate-limited answers                = 0          (only when some were)
platform DB connection pool use     < 80 %       ``--gate-db-pool-pct``
platform resident memory            < 1024 MB    ``--gate-memory-mb``
platform CPU, % of one core         < 70 %       ``--gate-cpu-pct``
==================================  ===========  ==========================

Rate-limited answers (a 429, or a refusal carrying ``X-RateLimit-Remaining: 0``,
whatever its status: v1 answers 500) are counted apart, per endpoint, and left out of
the throughput: a limiter's fast refusals must not lift req/s over its target.  The
three platform rows come from the platform's own ``/metrics``
(``platform_metrics.py``); the guide's alert levels (90 %, 2 GB, 90 %) are named in the
row when crossed.  A row the platform gave no figure for says "not measured": it is
neither a pass nor a breach.

Logins get their own lines: a bcrypt login costs the platform far more CPU than an API
call, and a ramp-up's burst of logins says nothing about the API's latency.  The guide's 2 s alert
threshold is the logins' default p95 target.

The gate runs in a ``quitting`` listener on the master or local runner, after the
workers' last reports are in (at ``test_stop`` a headless master still misses some).
Exit codes: 0 all checks pass; 3 a check failed (a table says which); 12 the
credentials pool failed the run; 2 the scenario code raised (the figures are not
trusted).  Locust's own "exit 1 on any failed request" does not apply: an error rate of
0.2 % passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .figures import RunFigures

if TYPE_CHECKING:
    from .platform_metrics import PlatformResources

__all__ = [
    "ALERTS",
    "EXIT_BREACH",
    "EXIT_PASS",
    "Check",
    "GateTargets",
    "evaluate",
    "render_table",
    "resource_checks",
]

EXIT_PASS = 0
EXIT_BREACH = 3


@dataclass(frozen=True)
class GateTargets:
    p95_ms: float = 500.0
    endpoint_p95_ms: float = 500.0
    error_rate_pct: float = 1.0
    min_rps: float = 100.0
    login_p95_ms: float = 2000.0
    login_error_rate_pct: float = 1.0
    db_pool_pct: float = 80.0
    memory_mb: float = 1024.0
    cpu_pct: float = 70.0


ALERTS = {"db_pool_pct": 90.0, "memory_mb": 2048.0, "cpu_pct": 90.0}
"""The guide's alert levels of the platform rows (named in a row that crosses them)."""


@dataclass(frozen=True)
class Check:
    """One line of the gate's table; ``passed`` is None for lines shown but not judged."""

    name: str
    target: str
    measured: str
    passed: bool | None
    target_value: float | None = None
    measured_value: float | None = None
    unmeasured: bool = False

    @property
    def verdict(self) -> str:
        if self.unmeasured:
            return "not measured"
        return {True: "pass", False: "BREACH", None: "-"}[self.passed]

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "target": self.target,
            "measured": self.measured,
            "verdict": self.verdict,
            "target_value": self.target_value,
            "measured_value": self.measured_value,
        }


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def _below(name: str, target_text: str, measured_text: str, value: float, target: float) -> Check:
    """A row that passes when ``value`` stays under ``target``."""
    return Check(name, target_text, measured_text, value < target, target, value)


def _latency_checks(figures: RunFigures, targets: GateTargets) -> list[Check]:
    """p95 of all endpoints but logins (or a failed 'requests made' row), then p95 of each endpoint."""
    total = figures.totals
    if total.requests == 0:
        checks = [Check("requests made (logins apart)", "> 0", "0", False, 1, 0)]
    else:
        checks = [
            _below("p95, all endpoints but logins", f"< {_ms(targets.p95_ms)}", _ms(total.p95_ms), total.p95_ms,
                   targets.p95_ms)
        ]  # fmt: skip
    for ep in figures.endpoints:
        if ep.requests == 0 or ep.name in figures.login_names:
            continue
        checks.append(
            _below(f"p95 {ep.method} {ep.name}", f"< {_ms(targets.endpoint_p95_ms)}", _ms(ep.p95_ms), ep.p95_ms,
                   targets.endpoint_p95_ms)
        )  # fmt: skip
    return checks


def _api_rate_checks(figures: RunFigures, targets: GateTargets) -> list[Check]:
    """Error rate (when requests were made) and throughput, rate-limited answers left out of the latter."""
    total = figures.totals
    limited = figures.rate_limited_api
    checks = []
    if total.requests:
        rate = total.error_rate_pct
        of_which = f", {limited} of them rate-limited" if limited else ""
        checks.append(
            _below("error rate, all endpoints but logins", f"< {targets.error_rate_pct:g} %",
                   f"{rate:.2f} % ({total.failures}/{total.requests}{of_which})", rate, targets.error_rate_pct)
        )  # fmt: skip
    rps = (total.requests - limited) / figures.duration_s if figures.duration_s > 0 else 0.0
    checks.append(
        Check(
            "throughput, all endpoints but logins",
            f"> {targets.min_rps:g} req/s",
            f"{rps:.1f} req/s" + (" (rate-limited answers left out)" if limited else ""),
            rps > targets.min_rps,
            targets.min_rps,
            rps,
        )
    )
    return checks


def _login_checks(figures: RunFigures, targets: GateTargets) -> list[Check]:
    """The logins' own p95 and error rate, when any login was made."""
    lg = figures.logins
    if lg is None or not lg.requests:
        return []
    return [
        _below("logins p95", f"< {_ms(targets.login_p95_ms)}", _ms(lg.p95_ms), lg.p95_ms, targets.login_p95_ms),
        _below("logins error rate", f"< {targets.login_error_rate_pct:g} %",
               f"{lg.error_rate_pct:.2f} % ({lg.failures}/{lg.requests})", lg.error_rate_pct,
               targets.login_error_rate_pct),
    ]  # fmt: skip


def _isolation_checks(figures: RunFigures) -> list[Check]:
    """Breaches of tenant isolation, judged only when the probes ran."""
    if not figures.isolation_requests:
        return []
    breaches = figures.isolation_breaches
    return [Check("tenant isolation breaches", "= 0", str(breaches), breaches == 0, 0, breaches)]


def evaluate(figures: RunFigures, targets: GateTargets) -> list[Check]:
    """The gate's checks, in table order."""
    return [
        *_latency_checks(figures, targets),
        *_api_rate_checks(figures, targets),
        *_login_checks(figures, targets),
        *_isolation_checks(figures),
        *_rate_limit_checks(figures),
    ]


def _rate_limit_checks(figures: RunFigures) -> list[Check]:
    """One judged row for all rate-limited answers, and one shown (not judged) per endpoint."""
    if not figures.rate_limited:
        return []
    answered = figures.totals.requests + (figures.logins.requests if figures.logins else 0)
    rows = [
        Check(
            "rate-limited answers (429, or X-RateLimit-Remaining: 0)",
            "= 0",
            f"{figures.rate_limited} of {answered} answers",
            False,
            0,
            figures.rate_limited,
        )
    ]
    requests = {(e.method, e.name): e.requests for e in figures.endpoints}
    for r in figures.rate_limited_endpoints:
        statuses = "/".join(str(c) for c in r.statuses) or "?"
        rows.append(
            Check(
                f"  rate-limited {r.method} {r.name}",
                "-",
                f"{r.count} of {requests.get((r.method, r.name), r.count)} (HTTP {statuses})",
                None,
                None,
                r.count,
            )
        )
    return rows


def _resource_row(name: str, target: float, alert: float, unit: str, measure: Any, scale: float = 1.0) -> Check:
    if not measure.measured:
        return Check(name, f"< {target:g}{unit}", f"not measured: {measure.reason}", None, target, None, True)
    value = measure.value / scale
    text = measure.text + (f"; above the guide's alert level ({alert:g}{unit})" if value > alert else "")
    return Check(name, f"< {target:g}{unit}", text, value < target, target, value)


def resource_checks(resources: PlatformResources, targets: GateTargets) -> list[Check]:
    """The platform rows (DB pool, memory, CPU) from its ``/metrics``; 'not measured' when it gave none."""
    return [
        _resource_row("platform DB connection pool use", targets.db_pool_pct, ALERTS["db_pool_pct"], " %",
                      resources.db_pool_pct),
        _resource_row("platform resident memory", targets.memory_mb, ALERTS["memory_mb"], " MB",
                      resources.memory_bytes, 2**20),
        _resource_row("platform CPU, % of one core per process", targets.cpu_pct, ALERTS["cpu_pct"], " %",
                      resources.cpu_pct),
    ]


def render_table(checks: list[Check], *, notes: Iterable[str] = (), exit_code: int | None = None) -> str:
    """The gate's table (target, measured, verdict) and a closing verdict line.

    ``exit_code`` is the code the process really returns (Locust's ``quit`` event gives it);
    the verdict line never claims a code the process does not exit with.
    """
    header = ("check", "target", "measured", "verdict")
    rows = [header, *[(c.name, c.target, c.measured, c.verdict) for c in checks]]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["Load-test gate (targets from the platform's load-testing guide)"]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    failed = [c for c in checks if c.passed is False]
    judged = [c for c in checks if c.passed is not None]
    unmeasured = sum(1 for c in checks if c.unmeasured)
    tail = f"; {unmeasured} not measured" if unmeasured else ""
    lines.extend(f"note: {n}" for n in notes)
    natural = EXIT_BREACH if failed else EXIT_PASS
    code = natural if exit_code is None else exit_code
    if failed:
        lines.append(f"Gate: BREACH - {len(failed)} of {len(judged)} checks failed{tail} (exit code {code}).")
    elif code == EXIT_PASS:
        lines.append(f"Gate: PASS - all {len(judged)} checks passed{tail} (exit code {code}).")
    else:
        lines.append(
            f"Gate: FAILED RUN - the {len(judged)} checks passed{tail}, but the run failed (exit code {code})."
        )
    return "\n".join(lines)
