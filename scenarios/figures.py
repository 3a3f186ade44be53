"""What a run measured, from Locust's statistics: per endpoint, all but logins, logins apart.

Failures carry their meaning in the start of their message: the users and the dialects
mark an answer the platform's rate limiter refused (``RATE_LIMITED``, with its status and
``X-RateLimit-Limit`` when known) and an isolation probe that got another tenant's
object (``ISOLATION_BREACH``); ``collect_figures`` counts them from the errors table.
The gate (``gate.py``) judges these figures; ``results.py`` writes them out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from locust.stats import RequestStats, StatsEntry

__all__ = [
    "ISOLATION_BREACH",
    "ISOLATION_PREFIX",
    "RATE_LIMITED",
    "EndpointFigures",
    "RateLimited",
    "RunFigures",
    "collect_figures",
]

RATE_LIMITED = "rate limited by the platform"
"""Start of the failure message of every answer the platform's rate limiter refused (counted and explained)."""
ISOLATION_BREACH = "tenant isolation breached"
"""Start of the failure message of an isolation probe that got another tenant's object."""
ISOLATION_PREFIX = "[isolation] "
"""Prefix of the statistics names of the isolation probe's requests."""
_LIMITED_STATUS = re.compile(r"\(HTTP (\d+)")
_LIMITED_LIMIT = re.compile(r"X-RateLimit-Limit: ([^)]+)\)")


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
