"""``/metrics`` on Locust's web UI, in the Prometheus text format (version 0.0.4).

Teams watch Grafana during a test; this lets Prometheus scrape the master's web UI
(``http://<master>:8089/metrics``) next to the platform's own metrics.  It is always on
when the web UI runs: the text is built only when scraped, from the master's
aggregated statistics, so it costs nothing between scrapes.  No new dependency: the
exposition format is written by hand (and the tests parse it with ``prometheus_client``).

Series (``method``/``name`` labels per endpoint; the ``Aggregated`` line has method ""):

* ``locust_requests_total``, ``locust_failures_total`` (counters)
* ``locust_requests_per_second`` (gauge: Locust's current rate, last ~10 s)
* ``locust_response_time_milliseconds{quantile="0.5|0.95|0.99"}`` (gauge, whole run)
* ``locust_users``, ``locust_workers`` (gauges)
* ``loadkit_pool_accounts{state="in_use|free"}``, ``loadkit_pool_size``,
  ``loadkit_pool_leases`` (gauges) and ``loadkit_pool_reused_total`` (counter)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from locust.env import Environment
from locust.runners import MasterRunner
from locust.stats import RequestStats

from .broker import PoolBroker
from .pool import broker_for

__all__ = ["CONTENT_TYPE", "install_metrics", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = (0.5, 0.95, 0.99)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float | int]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(**labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _endpoint_series(out: _Writer, stats: RequestStats) -> None:
    """Counts, current rates and percentiles per endpoint, then the ``Aggregated`` line."""
    entries = sorted(stats.entries.values(), key=lambda e: (e.name, e.method))
    lines = [*entries, stats.total]
    ids = [{"method": e.method or "", "name": e.name} for e in lines]
    out.family(
        "locust_requests_total",
        "counter",
        "Requests made, per endpoint.",
        [(i, e.num_requests) for i, e in zip(ids, lines, strict=True)],
    )
    out.family(
        "locust_failures_total",
        "counter",
        "Failed requests, per endpoint.",
        [(i, e.num_failures) for i, e in zip(ids, lines, strict=True)],
    )
    out.family(
        "locust_requests_per_second",
        "gauge",
        "Current requests per second (last ~10 s), per endpoint.",
        [(i, float(e.current_rps or 0.0)) for i, e in zip(ids, lines, strict=True)],
    )
    percentiles: list[tuple[dict[str, str], float | int]] = []
    for i, e in zip(ids, lines, strict=True):
        if e.num_requests:
            for q in QUANTILES:
                percentiles.append(({**i, "quantile": str(q)}, e.get_response_time_percentile(q)))
    out.family(
        "locust_response_time_milliseconds",
        "gauge",
        "Response-time percentiles over the whole run, per endpoint.",
        percentiles,
    )


def _pool_series(out: _Writer, broker: PoolBroker) -> None:
    """The credentials pool's books (only where the broker lives: the master or the local runner)."""
    snap = broker.snapshot()
    out.family(
        "loadkit_pool_accounts",
        "gauge",
        "Credentials-pool accounts by state.",
        [({"state": "in_use"}, snap.in_use), ({"state": "free"}, snap.free)],
    )
    out.family("loadkit_pool_size", "gauge", "Accounts in the credentials pool.", [({}, snap.size)])
    out.family(
        "loadkit_pool_leases",
        "gauge",
        "Accounts leased to live users (above in_use only when reused).",
        [({}, broker.leases)],
    )
    out.family(
        "loadkit_pool_reused_total",
        "counter",
        "Leases of an account already in use (--pool-exhausted reuse).",
        [({}, snap.reused)],
    )


def render_metrics(environment: Environment) -> str:
    """The exposition text for the environment's runner, statistics and pool."""
    runner = environment.runner
    out = _Writer()
    _endpoint_series(out, environment.stats)
    users = runner.user_count if runner is not None else 0
    out.family("locust_users", "gauge", "Simulated users running.", [({}, users)])
    workers = runner.worker_count if isinstance(runner, MasterRunner) else 0
    out.family("locust_workers", "gauge", "Workers connected to the master (0 when not distributed).", [({}, workers)])
    broker = broker_for(environment)
    if broker is not None:
        _pool_series(out, broker)
    return out.text()


def install_metrics(environment: Environment) -> None:
    """Add ``/metrics`` to the environment's web UI (if there is one)."""
    web_ui = environment.web_ui
    if web_ui is None or web_ui.app is None:
        return
    from flask import Response

    @web_ui.app.route("/metrics")
    @web_ui.auth_required_if_enabled
    def metrics() -> Any:
        return Response(render_metrics(environment), mimetype=None, content_type=CONTENT_TYPE)

    _ = metrics
