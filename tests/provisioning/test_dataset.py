"""The orchestrator-facing dataset: fingerprint rules, spec validation, real binary COPY into PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import asyncpg
import pytest
from agentic_loadkit.provisioning.errors import InputError
from agentic_loadkit.provisioning.generate.dataset import (
    Dataset,
    GenerationSpec,
    IdSpace,
    IntegerIds,
    UuidIds,
    compute_fingerprint,
)
from agentic_loadkit.provisioning.generate.fingerprint import CHUNK_ROWS
from agentic_loadkit.provisioning.generate.scales import SCALES, ScaleCounts
from agentic_loadkit.provisioning.schema.concepts import CONTRACT_TABLES
from agentic_loadkit.provisioning.target.url import DatabaseTarget

SMALL = SCALES["small"]
# enough rows that agents span several fingerprint chunks
MULTI_CHUNK = ScaleCounts(4, 60, 3 * CHUNK_ROWS + 123, 500, 40, 20)


def _spec(seed: int = 5, namespace: str = "r3k9x2ab", counts: ScaleCounts = SMALL, **kw: Any
          ) -> GenerationSpec:
    kw.setdefault("password_slots", 16)  # the tests hand every dataset 16 hashes
    return GenerationSpec(seed=seed, namespace=namespace, counts=counts, **kw)


def _consume(dataset: Dataset, ids: IdSpace, batch_size: int = 50_000) -> str:
    for stream in dataset.streams:
        for _ in stream.batches(ids, batch_size):
            pass
    return dataset.fingerprint()


def test_same_seed_gives_the_same_fingerprint_across_namespaces_ids_and_password_hashes() -> None:
    a = _consume(Dataset(_spec(namespace="aaaa1111"), ["hash-a"] * 16), UuidIds("aaaa1111"))
    b = _consume(Dataset(_spec(namespace="bbbb2222"), [f"hash-b{k}" for k in range(16)]), UuidIds("bbbb2222"))
    c = _consume(Dataset(_spec(namespace="cccc3333"), ["x"] * 16), IntegerIds(dict.fromkeys(CONTRACT_TABLES, 77)))
    assert a == b == c == compute_fingerprint(_spec(namespace="zz"))
    assert len(a) == 64 and int(a, 16) >= 0


@pytest.mark.parametrize(
    "other",
    [
        _spec(seed=6),
        _spec(counts=ScaleCounts(3, 30, 151, 60, 30, 15)),
        _spec(skew=None),
        _spec(password_slots=8),
        _spec(deleted_agent_share=0.5),
    ],
)
def test_anything_that_changes_the_data_changes_the_fingerprint(other: GenerationSpec) -> None:
    assert compute_fingerprint(other) != compute_fingerprint(_spec())


def test_fingerprint_does_not_depend_on_batch_size_or_stream_order() -> None:
    spec = _spec(counts=MULTI_CHUNK)
    reference = compute_fingerprint(spec)
    assert _consume(Dataset(spec, ["h"] * 16), UuidIds("r3k9x2ab"), batch_size=997) == reference

    ds = Dataset(spec, ["h"] * 16)
    ids = IntegerIds(dict.fromkeys(CONTRACT_TABLES, 1))
    for stream in reversed(ds.streams):  # children first, ranges backwards: as parallel loaders might
        for start, stop in reversed(stream.ranges(3)):
            for _ in stream.batches(ids, 5_000, start=start, stop=stop):
                pass
    assert ds.fingerprint() == reference


def test_ranges_are_chunk_aligned_and_cover_the_table() -> None:
    stream = Dataset(_spec(counts=MULTI_CHUNK), ["h"] * 16).stream("agents")
    ranges = stream.ranges(3)
    assert len(ranges) == 3
    assert ranges[0][0] == 0 and ranges[-1][1] == stream.count
    assert all(a % CHUNK_ROWS == 0 for a, _ in ranges)
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(ranges))
    assert stream.ranges(100) == [(k * CHUNK_ROWS, min((k + 1) * CHUNK_ROWS, stream.count)) for k in range(4)]
    with pytest.raises(ValueError):
        stream.batches(IntegerIds(dict.fromkeys(CONTRACT_TABLES, 1)), start=5)


def test_fingerprint_refuses_until_every_stream_was_consumed_to_the_end() -> None:
    ds = Dataset(_spec(counts=MULTI_CHUNK), ["h"] * 16)
    ids = UuidIds("r3k9x2ab")
    with pytest.raises(RuntimeError):
        ds.fingerprint()
    for stream in ds.streams[:-1]:
        for _ in stream.batches(ids):
            pass
    with pytest.raises(RuntimeError, match="mcp_servers"):
        ds.fingerprint()
    agents = ds.stream("agents").batches(ids, 1_000)
    next(agents)  # a retried stream abandoned after one batch makes the table incomplete again
    with pytest.raises(RuntimeError, match="agents"):
        ds.fingerprint()
    for _ in ds.stream("mcp_servers").batches(ids):
        pass
    for _ in ds.stream("agents").batches(ids):
        pass
    assert ds.fingerprint() == compute_fingerprint(_spec(counts=MULTI_CHUNK))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"namespace": "Has Spaces"},
        {"namespace": "UPPER"},
        {"namespace": ""},
        {"namespace": "x" * 40},
        {"skew": -0.5},
        {"skew": 9.0},
        {"password_slots": 0},
        {"inactive_user_share": 1.5},
        {"deleted_agent_share": -0.1},
        {"seed": "7"},
        {"counts": ScaleCounts(0, 0, 0, 0, 0, 0)},
        {"counts": ScaleCounts(5, 4, 0, 0, 0, 0)},
    ],
)
def test_generation_spec_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        _spec(**kwargs)


def test_dataset_needs_one_hash_per_password_slot() -> None:
    with pytest.raises(ValueError):
        Dataset(_spec(password_slots=4), ["h"] * 3)


def test_tenant_lookup_helpers_agree_with_sizes() -> None:
    ds = Dataset(_spec(counts=SCALES["medium"]), ["h"] * 16)
    sizes = ds.tenant_sizes()
    assert list(sizes) == list(CONTRACT_TABLES)
    for table, per_tenant in sizes.items():
        assert len(per_tenant) == 20 and sum(per_tenant) == SCALES["medium"].as_dict()[table]
        start = 0
        for t, n in enumerate(per_tenant):
            assert ds.tenant_range(table, t) == range(start, start + n)
            if n:
                assert ds.tenant_of(table, start) == ds.tenant_of(table, start + n - 1) == t
            start += n
    with pytest.raises(IndexError):
        ds.tenant_of("agents", SCALES["medium"].agents)
    assert ds.tenant_slug(3).endswith("-r3k9x2ab-3") and ds.tenant_name(3)
    with pytest.raises(KeyError):
        ds.stream("documents")


# --- real PostgreSQL: the rows go in with asyncpg binary COPY and the database agrees -------------

CROSS_TENANT_SQL = {
    "users": "SELECT count(*) FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id WHERE t.id IS NULL",
    "agent creators": (
        "SELECT count(*) FROM agents a JOIN users u ON u.id = a.created_by WHERE u.tenant_id <> a.tenant_id"
    ),
    "workflow creators": (
        "SELECT count(*) FROM workflows w JOIN users u ON u.id = w.created_by "
        "WHERE u.tenant_id <> w.tenant_id"
    ),
    "workflow step agents": (
        "SELECT count(*) FROM workflows w, jsonb_array_elements(w.definition->'nodes') n "
        "LEFT JOIN agents a ON a.id::text = n->>'agent_id' "
        "WHERE n->>'type' = 'agent' AND (a.id IS NULL OR a.tenant_id <> w.tenant_id)"
    ),
}


async def _load_and_check(url: str, ids: IdSpace, namespace: str) -> dict[str, Any]:
    ds = Dataset(_spec(namespace=namespace, counts=SCALES["medium"]), ["$2b$12$" + "x" * 53] * 16)
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for stream in ds.streams:
                for batch in stream.batches(ids, 1_500):
                    await conn.copy_records_to_table(
                        stream.table, records=batch, columns=list(stream.columns)
                    )
        counts = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in CONTRACT_TABLES}
        cross = {name: await conn.fetchval(sql) for name, sql in CROSS_TENANT_SQL.items()}
        steps = await conn.fetchval(
            "SELECT count(*) FROM workflows, jsonb_array_elements(definition->'nodes') n "
            "WHERE n->>'type' = 'agent'"
        )
        duplicate_emails = await conn.fetchval("SELECT count(*) - count(DISTINCT email) FROM users")
        deleted = await conn.fetchval(
            "SELECT count(*) FROM agents WHERE deleted_at IS NOT NULL AND status = 'deleted'"
        )
    finally:
        await conn.close()
    return {"counts": counts, "cross": cross, "steps": steps, "dups": duplicate_emails, "deleted": deleted,
            "fingerprint": ds.fingerprint()}


@pytest.mark.parametrize("id_kind", ["uuid", "integer"])
def test_rows_copy_into_the_reference_schema_and_stay_inside_their_tenants(
    id_kind: str, platform_db: DatabaseTarget, platform_db_int: DatabaseTarget
) -> None:
    target = platform_db if id_kind == "uuid" else platform_db_int
    ids: IdSpace = UuidIds("r3k9x2ab") if id_kind == "uuid" else IntegerIds(dict.fromkeys(CONTRACT_TABLES, 1))
    first = asyncio.run(_load_and_check(target.asyncpg_url, ids, "r3k9x2ab"))
    assert first["counts"] == SCALES["medium"].as_dict()
    assert first["cross"] == dict.fromkeys(CROSS_TENANT_SQL, 0)
    assert first["steps"] > 0 and first["dups"] == 0 and first["deleted"] > 0
    if id_kind == "uuid":
        # a second run with the same seed coexists (unique columns are namespaced) and shares the fingerprint
        second = asyncio.run(_load_and_check(target.asyncpg_url, UuidIds("s4m0y3cd"), "s4m0y3cd"))
        assert second["counts"] == {t: 2 * n for t, n in SCALES["medium"].as_dict().items()}
        assert second["dups"] == 0 and second["cross"] == dict.fromkeys(CROSS_TENANT_SQL, 0)
        assert second["fingerprint"] == first["fingerprint"]


class _PlainIds:
    """An IdSpace with only ``id()`` (no fast paths), returning text that needs JSON escaping."""

    def id(self, table: str, index: int) -> object:
        return f'{table}"{index}\\'


def test_a_minimal_id_space_works_and_workflow_json_stays_valid() -> None:
    ds = Dataset(_spec(), ["h"] * 16)
    ids = _PlainIds()
    assert isinstance(ids, IdSpace)
    rows = {s.table: [r for b in s.batches(ids) for r in b] for s in ds.streams}
    agent_ids = {r[0] for r in rows["agents"]}
    referenced = [
        node["agent_id"]
        for r in rows["workflows"]
        for node in json.loads(r[6])["nodes"]
        if node["type"] == "agent"
    ]
    assert referenced and set(referenced) <= agent_ids
    assert ds.fingerprint() == compute_fingerprint(_spec())
