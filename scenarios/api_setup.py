"""What the master (or local runner) learns from the platform before the load, and watches during it.

In order, once per platform URL: discovery (``discovery.py``) and the routes file over
it (``routes.py``), the warm-up (``warmup.py``), then, at ``test_start`` once the
planned users are known, the pre-flight check of the rate limit; during the run, the
scraper of the platform's ``/metrics`` (``platform_metrics.py``).  The hooks call these
and keep the results in their run state; workers only ever receive the routes, with
each account.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentic_loadkit.provisioning.runs.poolfile import CredentialRow

from .discovery import Discovery, discover
from .options import ScenarioOptions
from .platform_metrics import PlatformMetricsScraper
from .routes import Routes, load_routes
from .warmup import WarmUp, preflight_warnings, warm_up

__all__ = ["ApiSetup", "busiest_share", "check_preflight", "metrics_scraper", "prepare_api"]

log = logging.getLogger(__name__)

DISCOVERY_TIMEOUT_S = 5.0


@dataclass
class ApiSetup:
    """The platform as the scenarios will speak to it, and what its first answers showed."""

    host: str
    discovery: Discovery
    warm: WarmUp | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def routes(self) -> Routes:
        return self.discovery.routes

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.discovery.as_dict(),
            "warm_up": self.warm.as_dict() if self.warm else None,
            "preflight_warnings": list(self.warnings),
        }


def prepare_api(host: str, opts: ScenarioOptions, account: CredentialRow) -> ApiSetup:
    """Discover the dialect, apply ``--routes``, and warm the platform up (raises with one sentence)."""
    found = discover(host, opts.openapi, timeout=min(DISCOVERY_TIMEOUT_S, opts.warm_up_timeout or DISCOVERY_TIMEOUT_S))
    if opts.routes:
        found = found.with_routes_file(opts.routes, load_routes(opts.routes, base=found.routes))
    log.info("%s", found.line)
    setup = ApiSetup(host, found)
    if opts.warm_up_timeout > 0:
        setup.warm = warm_up(host, found.routes, account, timeout=opts.warm_up_timeout)
        for problem in setup.warm.problems:
            log.warning("Warm-up: %s.", problem)
    return setup


def busiest_share(user_classes: Iterable[Any]) -> float:
    """The largest share one task has in the chosen users' mixes (Locust expands weights into lists)."""
    share = 0.0
    for cls in user_classes:
        tasks = list(getattr(cls, "tasks", []) or [])
        if tasks:
            share = max(share, max(Counter(tasks).values()) / len(tasks))
    return share or 1.0


def check_preflight(setup: ApiSetup, *, users: int, wait_mean_s: float, user_classes: Iterable[Any]) -> None:
    """Warn (log, and keep for the results) when the limits seen are below the planned load."""
    if setup.warm is None:
        return
    setup.warnings = preflight_warnings(
        setup.warm,
        login_path=setup.routes.login,
        users=users,
        wait_mean_s=wait_mean_s,
        busiest_share=busiest_share(user_classes),
        dialect=setup.discovery.dialect,
    )
    for warning in setup.warnings:
        log.warning("%s", warning)


def metrics_scraper(host: str, opts: ScenarioOptions) -> PlatformMetricsScraper | None:
    """The scraper of the platform's /metrics, or None with ``--platform-metrics off``."""
    url = opts.platform_metrics
    if url is not None and url.lower() == "off":
        return None
    return PlatformMetricsScraper(
        url or host.rstrip("/") + "/metrics",
        interval_s=opts.platform_metrics_interval,
        pool_capacity=opts.db_pool_capacity,
    )
