"""Generation speed: Faker per row (the naive way) vs pooled, hash-based row builders, per table.

Not a test: it prints figures.  No database is involved — this measures only the Python
side of ``provision up`` (what one core can feed into COPY).  For each table it prints
rows/s of the pooled builders as streamed by ``TableStream.batches`` (fingerprint
included), CPU time and wall time (best of ``--repeat``), the fingerprint's share of
that time, and rows/s of a Faker-per-row generator making the same columns on a sample.

    /tmp/venv/bin/python bench/generation_bench.py [--scale large] [--repeat 3] [--faker-sample 2000]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from agentic_loadkit.provisioning.generate import dataset as dataset_module
from agentic_loadkit.provisioning.generate.dataset import Dataset, GenerationSpec, UuidIds
from agentic_loadkit.provisioning.generate.fingerprint import CHUNK_ROWS
from agentic_loadkit.provisioning.generate.ids import id_access
from agentic_loadkit.provisioning.generate.pools import MODEL_CATALOGUE
from agentic_loadkit.provisioning.generate.rowbase import time_table
from agentic_loadkit.provisioning.generate.rows import build_rows
from agentic_loadkit.provisioning.generate.scales import resolve_counts
from agentic_loadkit.provisioning.schema.concepts import CONTRACT_TABLES
from faker import Faker

__all__ = ["main"]


class _Discard:
    """A ``canon`` sink that drops canonical ints: generation without the fingerprint's appends."""

    extend = staticmethod(len)


def _faker_row(fake: Faker, table: str, i: int) -> tuple[Any, ...]:
    """One row made the naive way: Faker (and random) called for every value of every row."""
    now = datetime(2025, 1, 1, tzinfo=UTC) - timedelta(seconds=random.randrange(10**8))
    if table == "tenants":
        company = fake.company()
        settings = json.dumps({"plan": "team"})
        return (fake.uuid4(), company, f"{fake.slug(company)}-{i}", settings, "active", now)
    if table == "users":
        first, last = fake.first_name(), fake.last_name()
        return (fake.uuid4(), fake.uuid4(), f"{first}.{last}.{i}@example.com".lower(), fake.user_name(),
                "$2b$12$hash", f"{first} {last}", "member", True, "active", now)
    if table == "agents":
        provider, model, _ = random.choice(MODEL_CATALOGUE)
        name = fake.catch_phrase()
        return (fake.uuid4(), fake.uuid4(), fake.uuid4(), name, f"{fake.slug(name)}-{i}", fake.sentence(12),
                fake.paragraph(nb_sentences=random.randint(3, 20)), provider, model,
                round(random.random(), 2), random.choice((256, 1000, 4096)), "active", now, now, None)
    if table == "workflows":
        name = fake.bs()
        steps = [{"id": f"step-{k}", "type": "agent", "agent_id": fake.uuid4()}
                 for k in range(random.randint(2, 8))]
        edges = [{"from": steps[k]["id"], "to": steps[k + 1]["id"]} for k in range(len(steps) - 1)]
        return (fake.uuid4(), fake.uuid4(), fake.uuid4(), name, f"{fake.slug(name)}-{i}", fake.sentence(),
                json.dumps({"nodes": steps, "edges": edges}), "active", now)
    if table == "collections":
        name = fake.catch_phrase()
        return (fake.uuid4(), fake.uuid4(), name, f"{fake.slug(name)}-{i}", fake.sentence(),
                "text-embedding-3-small", "active", now)
    name = fake.word()
    return (fake.uuid4(), fake.uuid4(), name, f"{name}-{i}", "sse", f"https://{fake.domain_word()}.example.com/sse",
            None, "[]", "{}", "active", now)


def _best(repeat: int, fn: Callable[[], int]) -> tuple[float, float, int]:
    """(best CPU seconds, best wall seconds, rows) over ``repeat`` runs of ``fn``."""
    cpu, wall, rows = float("inf"), float("inf"), 0
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        rows = fn()
        cpu, wall = min(cpu, time.process_time() - c0), min(wall, time.perf_counter() - w0)
    return cpu, wall, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="large")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--faker-sample", type=int, default=2_000, help="rows per table for Faker per row")
    args = parser.parse_args()

    scale, counts = resolve_counts(args.scale)
    spec = GenerationSpec(seed=args.seed, namespace="benchrun", counts=counts)
    t0 = time.process_time()
    dataset = Dataset(spec, ["$2b$12$" + "x" * 53] * spec.password_slots)
    time_table()
    setup = time.process_time() - t0
    ids = UuidIds("benchrun")
    digest_time = [0.0]
    real_digest = dataset_module.chunk_digest

    def timed_digest(canon: list[int]) -> bytes:
        c0 = time.process_time()
        try:
            return real_digest(canon)
        finally:
            digest_time[0] += time.process_time() - c0

    dataset_module.chunk_digest = timed_digest  # type: ignore[assignment]
    fake = Faker("en_US")
    fake.seed_instance(args.seed)
    random.seed(args.seed)

    print(f"scale {scale} ({counts.total_rows():,} rows), seed {args.seed}, "
          f"setup (pools, layout) {setup:.2f} s CPU")
    print(f"{'table':<12} {'rows':>10} {'pooled rows/s':>14} {'(wall)':>10} {'fingerprint':>12} "
          f"{'Faker/row rows/s':>17} {'speed-up':>9}")
    totals = {"rows": 0, "cpu": 0.0, "wall": 0.0, "fingerprint": 0.0}
    for table in CONTRACT_TABLES:
        stream = dataset.stream(table)

        def streamed(stream: Any = stream) -> int:
            return sum(len(b) for b in stream.batches(ids, args.batch_size))

        digest_time[0] = 0.0
        cpu, wall, rows = _best(args.repeat, streamed)
        digest = digest_time[0] / args.repeat
        acc = id_access(ids, dataset.context.offsets)

        def without_canon(table: str = table, count: int = stream.count, acc: Any = acc) -> int:
            for lo in range(0, count, CHUNK_ROWS):
                build_rows(dataset.context, table, lo, min(lo + CHUNK_ROWS, count), acc, _Discard())  # type: ignore[arg-type]
            return count

        def with_canon(table: str = table, count: int = stream.count, acc: Any = acc) -> int:
            for lo in range(0, count, CHUNK_ROWS):
                build_rows(dataset.context, table, lo, min(lo + CHUNK_ROWS, count), acc, [])
            return count

        bare, _, _ = _best(args.repeat, without_canon)
        canon, _, _ = _best(args.repeat, with_canon)
        share = (max(canon - bare, 0.0) + digest) / cpu if cpu else 0.0
        sample = min(args.faker_sample, max(stream.count, 1))

        def naive(table: str = table, sample: int = sample) -> int:
            return len([_faker_row(fake, table, i) for i in range(sample)])

        faker_cpu, _, _ = _best(1, naive)
        faker_rate = sample / faker_cpu
        rate = rows / cpu if cpu else float("inf")
        print(f"{table:<12} {rows:>10,} {rate:>14,.0f} {rows / wall if wall else 0:>10,.0f} {share:>11.1%} "
              f"{faker_rate:>17,.0f} {rate / faker_rate:>8.0f}x")
        totals["rows"] += rows
        totals["cpu"] += cpu
        totals["wall"] += wall
        totals["fingerprint"] += share * cpu
    print(f"{'all tables':<12} {totals['rows']:>10,} {totals['rows'] / totals['cpu']:>14,.0f} "
          f"{totals['rows'] / totals['wall']:>10,.0f} {totals['fingerprint'] / totals['cpu']:>11.1%}")
    gc_before = gc.isenabled()
    gc.disable()
    try:
        agents = dataset.stream("agents")
        cpu, _, rows = _best(args.repeat, lambda: sum(len(b) for b in agents.batches(ids, args.batch_size)))
    finally:
        if gc_before:
            gc.enable()
    print(f"agents with the cyclic GC disabled: {rows / cpu:,.0f} rows/s (CPU)")
    print(f"fingerprint {dataset.fingerprint()}")
    print("rows/s are per CPU second of this process (best of the repeats); '(wall)' includes time the "
          "machine gave to other processes.")


if __name__ == "__main__":
    main()
