"""What a finished run says besides its figures: the notes under the gate's table, and the results' meta.

The notes explain a verdict the figures alone would mislead about: refusals of the
platform's rate limiter (and how to lift the limiter), a run in which no request
succeeded, leases reclaimed from vanished workers or shared under ``--pool-exhausted
reuse``, isolation breaches, exceptions in the scenario code, and what the platform's
``/metrics`` could not tell.  ``hooks.py`` calls these once, in its ``quitting`` listener.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import locust
from agentic_loadkit.provisioning._version import __version__
from locust.env import Environment

from .api_setup import ApiSetup
from .broker import PoolBroker
from .figures import RunFigures
from .platform_metrics import PlatformResources
from .runstate import RunState

__all__ = ["platform_resources", "rate_limit_note", "resource_notes", "results_meta", "run_notes"]


def platform_resources(state: RunState) -> PlatformResources:
    if state.scraper is not None:
        return state.scraper.resources()
    return PlatformResources.off("--platform-metrics off" if state.options.platform_metrics else "no test started")


def rate_limit_note(figures: RunFigures, api: ApiSetup | None) -> str:
    limits = sorted({x for r in figures.rate_limited_endpoints for x in r.limits if x != "not given"})
    statuses = sorted(figures.rate_limit_statuses)
    shown = ", ".join(f"HTTP {c}" for c in statuses) or "refusals"
    head = (
        f"{figures.rate_limited} answers were refused by the platform's rate limiter ({shown}, "
        f"X-RateLimit-Limit {', '.join(limits) or 'not given'}): they measure the limiter, not the API"
    )
    v1_like = (api is not None and api.discovery.dialect == "v1") or any(c != 429 for c in statuses)
    if v1_like:
        return (
            head + "; this platform's limiter (v1) counts per client IP and path, is always on and cannot be "
            "turned off by configuration (RATE_LIMIT_ENABLED is read by nothing): load it from several source "
            "addresses, or run a build of the platform under test with its limiter patched out."
        )
    return head + "; run the platform with RATE_LIMIT_ENABLED=false (or higher RATE_LIMIT_PER_MINUTE/_PER_HOUR)."


def run_notes(
    state: RunState, figures: RunFigures, broker: PoolBroker | None, exceptions: int, host: str | None
) -> list[str]:
    notes: list[str] = []
    if state.api is not None and state.options.gate:  # under the table; with --no-gate it is in the log
        notes.append(state.api.discovery.line)
        notes.extend(state.api.warnings)
    if figures.rate_limited:
        notes.append(rate_limit_note(figures, state.api))
    if figures.totals.requests + (figures.logins.requests if figures.logins else 0) > 0 and not any(
        e.requests > e.failures for e in figures.endpoints
    ):
        notes.append(f"No request succeeded: is the platform at {host} up and reachable?")
    if broker is not None and broker.reclaimed:
        notes.append(
            f"{broker.reclaimed} leases were taken back from Locust workers that vanished, "
            f"and their accounts handed out again."
        )
    if broker is not None and broker.reused:
        notes.append(
            f"The pool was short: {broker.reused} leases shared an account already in use "
            f"(--pool-exhausted reuse); those sessions were not distinct."
        )
    if figures.isolation_breaches:
        notes.append(
            f"{figures.isolation_breaches} answers gave a user another tenant's object: tenant isolation is broken."
        )
    if exceptions:
        notes.append(f"{exceptions} exceptions were raised in the scenario code (see the log): exit code 2.")
    if state.failure:
        notes.append(state.failure)
    if state.options.gate:
        notes.extend(n for n in resource_notes(state) if n)
    return notes


def resource_notes(state: RunState) -> list[str | None]:
    if state.scraper is None:
        return []
    res = state.scraper.resources()
    return [res.db_pool_pct.note, res.memory_bytes.note, res.cpu_pct.note, state.scraper.slow_note()]


def results_meta(environment: Environment, state: RunState, broker: PoolBroker | None) -> dict[str, Any]:
    opts = state.options
    return {
        "tool": "agentic-loadkit",
        "toolkit_version": __version__,
        "locust_version": locust.__version__,
        "run_id": state.catalog.run_id,
        "credentials": str(state.source.credentials) if state.source else None,
        "host": environment.host,
        "load_profile": state.profile.name if state.profile else None,
        "time_scale": opts.time_scale if state.profile else None,
        "user_classes": [c.__name__ for c in environment.user_classes],
        "wait_time_s": [opts.wait_min, opts.wait_max],
        "pool": asdict(broker.snapshot()) if broker else None,
        "baseline": str(state.baseline.path) if state.baseline else None,
        "failure": state.failure,
        "api": state.api.as_dict() if state.api else None,
        "platform_metrics": platform_resources(state).as_dict(),
    }
