"""The pass/fail gate: the guide's targets, judged on the whole run's figures.

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

Logins get their own lines: a bcrypt login costs the platform ~240 ms of CPU, and a
ramp-up's burst of logins says nothing about the API's latency.  The guide's 2 s alert
threshold is the logins' default p95 target.

The gate runs in a ``quitting`` listener on the master or local runner, after the
workers' last reports are in (at ``test_stop`` a headless master still misses some).
Exit codes: 0 all checks pass; 3 a check failed (a table says which); 12 the
credentials pool failed the run; 2 the scenario code raised (the figures are not
trusted).  Locust's own "exit 1 on any failed request" does not apply: an error rate of
0.2 % passes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from locust.stats import RequestStats, StatsEntry

if TYPE_CHECKING:
    from .platform_metrics import PlatformResources

__all__ = [
    "EXIT_BREACH",
    "EXIT_PASS",
    "ISOLATION_BREACH",
    "ISOLATION_PREFIX",
    "RATE_LIMITED",
    "Check",
    "EndpointFigures",
    "GateTargets",
    "RateLimited",
    "RunFigures",
    "collect_figures",
    "evaluate",
    "render_table",
    "resource_checks",
]

EXIT_PASS = 0
EXIT_BREACH = 3
RATE_LIMITED = "rate limited by the platform"
"""Start of the failure message of every answer the platform's rate limiter refused (counted and explained)."""
ISOLATION_BREACH = "tenant isolation breached"
"""Start of the failure message of an isolation probe that got another tenant's object."""
ISOLATION_PREFIX = "[isolation] "
"""Prefix of the statistics names of the isolation probe's requests."""
_LIMITED_STATUS = re.compile(r"\(HTTP (\d+)")
_LIMITED_LIMIT = re.compile(r"X-RateLimit-Limit: ([^)]+)\)")


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
class EndpointFigures:
    """One statistics line's figures (times in ms, rates in requests/s)."""

    method: str
    name: str
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float
    rps: float

    @property
    def error_rate_pct(self) -> float:
        return 100.0 * self.failures / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "method": self.method,
            "name": self.name,
            "requests": self.requests,
            "failures": self.failures,
            "error_rate_pct": round(self.error_rate_pct, 4),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "avg_ms": round(self.avg_ms, 2),
            "rps": round(self.rps, 3),
        }


@dataclass(frozen=True)
class RateLimited:
    """Refusals of the platform's rate limiter on one endpoint."""

    method: str
    name: str
    count: int
    statuses: tuple[int, ...]
    limits: tuple[str, ...]


@dataclass(frozen=True)
class RunFigures:
    endpoints: tuple[EndpointFigures, ...]
    totals: EndpointFigures
    logins: EndpointFigures | None
    duration_s: float
    rate_limited: int = 0
    isolation_breaches: int = 0
    isolation_requests: int = 0
    errors: tuple[tuple[str, int], ...] = field(default=())
    login_names: frozenset[str] = field(default=frozenset())
    rate_limited_endpoints: tuple[RateLimited, ...] = field(default=())

    @property
    def rate_limited_api(self) -> int:
        """Refusals of the limiter on all endpoints but logins (left out of the throughput)."""
        return sum(r.count for r in self.rate_limited_endpoints if r.name not in self.login_names)

    @property
    def rate_limit_statuses(self) -> frozenset[int]:
        return frozenset(c for r in self.rate_limited_endpoints for c in r.statuses)


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


def _figures(
    entry: StatsEntry, duration_s: float, *, method: str | None = None, name: str | None = None
) -> EndpointFigures:
    has = entry.num_requests > 0
    return EndpointFigures(
        method=entry.method if method is None else method,
        name=entry.name if name is None else name,
        requests=entry.num_requests,
        failures=entry.num_failures,
        p50_ms=float(entry.get_response_time_percentile(0.5)) if has else 0.0,
        p95_ms=float(entry.get_response_time_percentile(0.95)) if has else 0.0,
        p99_ms=float(entry.get_response_time_percentile(0.99)) if has else 0.0,
        avg_ms=entry.avg_response_time,
        rps=entry.num_requests / duration_s if duration_s > 0 else 0.0,
    )


def _merge(entries: Iterable[StatsEntry]) -> StatsEntry:
    scratch = RequestStats(use_response_times_cache=False)
    merged = scratch.total
    for entry in entries:
        merged.extend(entry)
    return merged


def collect_figures(stats: RequestStats, login_names: Iterable[str]) -> RunFigures:
    """The run's figures from Locust's (master's) statistics; logins apart from everything else."""
    logins = frozenset(login_names)
    start = stats.start_time
    last = stats.last_request_timestamp
    duration = float(last - start) if start and last and last > start else 0.0
    entries = sorted(stats.entries.values(), key=lambda e: (e.name, e.method))
    api = [e for e in entries if e.name not in logins]
    login_entries = [e for e in entries if e.name in logins]
    rate_limited = breaches = 0
    errors: list[tuple[str, int]] = []
    limited: dict[tuple[str, str], list[Any]] = {}
    for err in stats.errors.values():
        text = str(err.error)
        if RATE_LIMITED in text:
            rate_limited += err.occurrences
            books = limited.setdefault((err.method, err.name), [0, set(), set()])
            books[0] += err.occurrences
            if m := _LIMITED_STATUS.search(text):
                books[1].add(int(m.group(1)))
            if m := _LIMITED_LIMIT.search(text):
                books[2].add(m.group(1))
        if ISOLATION_BREACH in text:
            breaches += err.occurrences
        errors.append((err.to_name(), err.occurrences))
    return RunFigures(
        endpoints=tuple(_figures(e, duration) for e in entries),
        totals=_figures(_merge(api), duration, method="", name="all endpoints but logins"),
        logins=_figures(_merge(login_entries), duration, method="POST", name="logins") if login_entries else None,
        duration_s=duration,
        rate_limited=rate_limited,
        isolation_breaches=breaches,
        isolation_requests=sum(e.num_requests for e in entries if e.name.startswith(ISOLATION_PREFIX)),
        errors=tuple(sorted(errors, key=lambda x: -x[1])),
        login_names=logins,
        rate_limited_endpoints=tuple(
            RateLimited(method, name, b[0], tuple(sorted(b[1])), tuple(sorted(b[2])))
            for (method, name), b in sorted(limited.items(), key=lambda kv: -kv[1][0])
        ),
    )


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def evaluate(figures: RunFigures, targets: GateTargets) -> list[Check]:
    """The gate's checks, in table order."""
    checks: list[Check] = []
    total = figures.totals
    if total.requests == 0:
        checks.append(Check("requests made (logins apart)", "> 0", "0", False, 1, 0))
    else:
        checks.append(
            Check(
                "p95, all endpoints but logins",
                f"< {_ms(targets.p95_ms)}",
                _ms(total.p95_ms),
                total.p95_ms < targets.p95_ms,
                targets.p95_ms,
                total.p95_ms,
            )
        )
    for ep in figures.endpoints:
        if ep.requests == 0 or ep.name in figures.login_names:
            continue
        checks.append(
            Check(
                f"p95 {ep.method} {ep.name}",
                f"< {_ms(targets.endpoint_p95_ms)}",
                _ms(ep.p95_ms),
                ep.p95_ms < targets.endpoint_p95_ms,
                targets.endpoint_p95_ms,
                ep.p95_ms,
            )
        )
    limited = figures.rate_limited_api
    if total.requests:
        rate = total.error_rate_pct
        of_which = f", {limited} of them rate-limited" if limited else ""
        checks.append(
            Check(
                "error rate, all endpoints but logins",
                f"< {targets.error_rate_pct:g} %",
                f"{rate:.2f} % ({total.failures}/{total.requests}{of_which})",
                rate < targets.error_rate_pct,
                targets.error_rate_pct,
                rate,
            )
        )
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
    if figures.logins is not None and figures.logins.requests:
        lg = figures.logins
        checks.append(
            Check(
                "logins p95",
                f"< {_ms(targets.login_p95_ms)}",
                _ms(lg.p95_ms),
                lg.p95_ms < targets.login_p95_ms,
                targets.login_p95_ms,
                lg.p95_ms,
            )
        )
        checks.append(
            Check(
                "logins error rate",
                f"< {targets.login_error_rate_pct:g} %",
                f"{lg.error_rate_pct:.2f} % ({lg.failures}/{lg.requests})",
                lg.error_rate_pct < targets.login_error_rate_pct,
                targets.login_error_rate_pct,
                lg.error_rate_pct,
            )
        )
    if figures.isolation_requests:
        checks.append(
            Check(
                "tenant isolation breaches",
                "= 0",
                str(figures.isolation_breaches),
                figures.isolation_breaches == 0,
                0,
                figures.isolation_breaches,
            )
        )
    checks.extend(_rate_limit_checks(figures))
    return checks


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
