"""The platform's own ``/metrics``, scraped by the master during the run for the gate's resource rows.

The guide's key metrics include three the load generator cannot see: the database
connection pool's use, the platform's resident memory, and its CPU.  The platform
exposes them in the Prometheus text format (v1: ``prometheus_client``'s
``db_connection_pool_size``, ``process_resident_memory_bytes``,
``process_cpu_seconds_total``), so the master (or local runner) scrapes
``--platform-metrics URL`` (default: the host's ``/metrics``) once when the test starts,
every ``--platform-metrics-interval`` seconds, and once when it stops, and parses the
text with ``prometheus_client``'s parser.  Scrapes are outside Locust's statistics.
Rendering a large text costs the platform CPU the gate then measures, so the pause
between scrapes is at least ``SCRAPE_COST_FACTOR`` times the last scrape's duration.

What is judged (per process: each series of a metric is one process):

* DB pool use: the peak of connections in use (``db_connection_pool_checked_out`` or
  ``db_connection_pool_in_use``; else ``db_connection_pool_size``, which v1 sets to the
  checked-out count) over the pool's capacity (``db_connection_pool_max`` or
  ``db_connection_pool_capacity`` when exposed; else ``--db-pool-capacity``, default 30:
  v1's ``DATABASE_POOL_SIZE`` 20 + ``DATABASE_MAX_OVERFLOW`` 10);
* memory: the peak of ``process_resident_memory_bytes``;
* CPU: the growth of ``process_cpu_seconds_total`` between the first and the last
  scrape over the wall time between them, in percent of one core (and the busiest
  interval's, shown).

The platform's text can be large (v1 labels its HTTP histograms with the raw path, so
every id ever requested adds series), so it is streamed and only the sample lines of
these metrics are kept and parsed.  A missing endpoint, a text that is not Prometheus,
or a missing metric makes the row "not measured" with the reason; it is never a pass.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
from prometheus_client.parser import text_string_to_metric_families

from .probe_http import fetch

__all__ = ["DEFAULT_POOL_CAPACITY", "Measure", "PlatformMetricsScraper", "PlatformResources", "parse_samples"]

log = logging.getLogger(__name__)

DEFAULT_POOL_CAPACITY = 30
POOL_IN_USE = ("db_connection_pool_checked_out", "db_connection_pool_in_use", "db_connection_pool_size")
POOL_CAPACITY = ("db_connection_pool_max", "db_connection_pool_capacity", "db_connection_pool_max_size")
MEMORY = "process_resident_memory_bytes"
CPU = "process_cpu_seconds_total"
_WANTED = frozenset((*POOL_IN_USE, *POOL_CAPACITY, MEMORY, CPU))
_WANTED_BYTES = frozenset(n.encode() for n in _WANTED)
SCRAPE_COST_FACTOR = 10
"""Pause between scrapes, in multiples of the last scrape's duration (at least the interval)."""
SLOW_SCRAPE_S = 1.0
"""A scrape slower than this is named in the notes (its rendering is part of the platform's CPU)."""
BODY_CAP = 512 * 1024 * 1024
"""Bytes read per scrape at most (only the wanted lines are kept)."""


def wanted_line(line: bytes) -> bool:
    """A sample line of one of the metrics the gate judges (comments and other series are skipped)."""
    name = line.split(b"{", 1)[0].split(b" ", 1)[0].strip()
    return name in _WANTED_BYTES

Series = dict[tuple[tuple[str, str], ...], float]


def parse_samples(text: str) -> dict[str, Series]:
    """The wanted samples of a Prometheus text: {sample name: {labels: value}}; ``ValueError`` if not Prometheus."""
    out: dict[str, Series] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _WANTED:
                out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = float(sample.value)
    return out


@dataclass(frozen=True)
class Measure:
    """One resource's figure, or why there is none."""

    value: float | None
    text: str
    reason: str | None = None
    note: str | None = None

    @property
    def measured(self) -> bool:
        return self.value is not None

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "text": self.text, "not_measured_because": self.reason, "note": self.note}


@dataclass(frozen=True)
class PlatformResources:
    """The three resource figures of a run (DB pool %, memory bytes, CPU % of one core)."""

    url: str | None
    scrapes: int
    db_pool_pct: Measure
    memory_bytes: Measure
    cpu_pct: Measure

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "scrapes": self.scrapes,
            "db_pool_pct": self.db_pool_pct.as_dict(),
            "memory_bytes": self.memory_bytes.as_dict(),
            "cpu_pct": self.cpu_pct.as_dict(),
        }

    @classmethod
    def off(cls, reason: str) -> PlatformResources:
        m = Measure(None, "not measured", reason)
        return cls(None, 0, m, m, m)


@dataclass
class _Scrape:
    at: float
    samples: dict[str, Series]


@dataclass
class PlatformMetricsScraper:
    """Scrapes one URL; ``start``/``stop`` run it in a greenlet, ``resources`` judges what it got."""

    url: str
    interval_s: float = 5.0
    timeout_s: float = 15.0
    pool_capacity: int = DEFAULT_POOL_CAPACITY
    clock: Callable[[], float] = time.monotonic
    scrapes: list[_Scrape] = field(default_factory=list)
    last_error: str | None = None
    last_duration_s: float = 0.0
    slowest_s: float = 0.0
    _greenlet: Any = None

    def scrape_once(self) -> bool:
        answer = fetch(self.url, timeout=self.timeout_s, body_cap=BODY_CAP, headers={"Accept": "text/plain"},
                       keep_lines=wanted_line)
        self.last_duration_s = answer.elapsed_s
        self.slowest_s = max(self.slowest_s, answer.elapsed_s)
        if not answer.ok:
            got = f"answered HTTP {answer.status}" if answer.status else f"got {answer.error}"
            self.last_error = f"GET {self.url} {got}" + (f" ({answer.error})" if answer.status and answer.error else "")
            return False
        try:
            samples = parse_samples(answer.body.decode("utf-8", errors="replace"))
            if not samples and not answer.body and "text/plain" not in (answer.header("Content-Type") or ""):
                raise ValueError(f"Content-Type {answer.header('Content-Type')}")
        except ValueError as exc:
            self.last_error = f"GET {self.url} answered a text that is not Prometheus ({exc})"
            return False
        self.scrapes.append(_Scrape(self.clock(), samples))
        return True

    def start(self) -> None:
        if self._greenlet is not None:
            return
        self.scrape_once()

        def loop() -> None:
            while True:
                gevent.sleep(max(self.interval_s, SCRAPE_COST_FACTOR * self.last_duration_s))
                self.scrape_once()

        self._greenlet = gevent.spawn(loop)

    def stop(self) -> None:
        if self._greenlet is None:
            return
        self._greenlet.kill(block=False)
        self._greenlet = None
        self.scrape_once()

    # -- judging ---------------------------------------------------------------------------------

    def _missing(self, metric: str) -> str:
        if not self.scrapes:
            return self.last_error or f"GET {self.url} was never scraped"
        return f"the platform's /metrics has no {metric}"

    def _series(self, name: str) -> list[Series]:
        return [s.samples[name] for s in self.scrapes if name in s.samples]

    def _pool(self) -> Measure:
        in_use_name = next((n for n in POOL_IN_USE if self._series(n)), None)
        if in_use_name is None:
            return Measure(None, "not measured", self._missing("db_connection_pool_* gauge"))
        values = [v for series in self._series(in_use_name) for v in series.values()]
        capacity_name = next((n for n in POOL_CAPACITY if self._series(n)), None)
        if capacity_name is not None:
            capacity = max(v for series in self._series(capacity_name) for v in series.values())
            source = capacity_name
        else:
            capacity, source = float(self.pool_capacity), "--db-pool-capacity"
        if capacity <= 0:
            return Measure(None, "not measured", f"the pool's capacity ({source}) is {capacity:g}")
        peak = max(values)
        pct = 100.0 * peak / capacity
        note = None
        if len(values) > 2 and len(set(values)) == 1:
            note = (f"the platform's {in_use_name} stayed at {peak:g} during the whole run: it may be set only "
                    f"at startup (v1 updates it once), so the pool's use under load is not known")
        unchanged = f", unchanged in all {len(values)} scrapes" if note else ""
        text = f"peak {peak:g}/{capacity:g} connections ({pct:.0f} %, capacity from {source}{unchanged})"
        return Measure(pct, text, None, note)

    def _memory(self) -> Measure:
        series = self._series(MEMORY)
        if not series:
            return Measure(None, "not measured", self._missing(MEMORY))
        peak = max(v for s in series for v in s.values())
        return Measure(peak, f"peak {peak / 2**20:,.0f} MB resident")

    def _cpu(self) -> Measure:
        points = [(s.at, s.samples[CPU]) for s in self.scrapes if CPU in s.samples]
        if not points:
            return Measure(None, "not measured", self._missing(CPU))
        if len(points) < 2 or points[-1][0] - points[0][0] < 0.5:
            return Measure(None, "not measured", "fewer than two scrapes of process_cpu_seconds_total, 0.5 s apart")
        (t0, first), (t1, last) = points[0], points[-1]
        average = max(100.0 * (last[k] - first.get(k, last[k])) / (t1 - t0) for k in last)
        busiest = 0.0
        for (ta, a), (tb, b) in itertools.pairwise(points):
            if tb > ta:
                busiest = max(busiest, *(100.0 * (b[k] - a.get(k, b[k])) / (tb - ta) for k in b))
        return Measure(average, f"{average:.0f} % of one core on average (busiest interval {busiest:.0f} %)")

    def resources(self) -> PlatformResources:
        return PlatformResources(self.url, len(self.scrapes), self._pool(), self._memory(), self._cpu())

    def slow_note(self) -> str | None:
        """A sentence when scraping was slow enough to weigh on the platform (and on the CPU row)."""
        if self.slowest_s < SLOW_SCRAPE_S:
            return None
        return (f"the platform's /metrics took up to {self.slowest_s:.1f} s to answer (v1 labels its series with "
                f"the raw path, so the text grows with every id requested): scrapes were spaced to "
                f"{SCRAPE_COST_FACTOR}x that, and the CPU row includes rendering them")
