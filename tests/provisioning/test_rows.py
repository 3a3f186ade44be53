"""Generated rows: exact counts, references inside their tenant, uniqueness, realistic and safe values.

The invariants themselves live in ``row_invariants.py`` (shared with the hypothesis properties).
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from agentic_loadkit.provisioning.generate.dataset import (
    Dataset,
    GenerationSpec,
    IdSpace,
    IntegerIds,
    UuidIds,
)
from agentic_loadkit.provisioning.generate.scales import SCALES, ScaleCounts
from agentic_loadkit.provisioning.schema.concepts import CONTRACT_TABLES
from row_invariants import HASHES, check_invariants, generate


def _dataset(counts: ScaleCounts, *, seed: int = 11, namespace: str = "r3k9x2ab", **kw: Any) -> Dataset:
    spec = GenerationSpec(seed=seed, namespace=namespace, counts=counts, **kw)
    return Dataset(spec, HASHES[: spec.password_slots])


@pytest.mark.parametrize("scale", ["small", "medium"])
@pytest.mark.parametrize("id_kind", ["uuid", "integer"])
def test_every_invariant_holds_at_named_scales(scale: str, id_kind: str) -> None:
    ds = _dataset(SCALES[scale])
    ids: IdSpace
    if id_kind == "uuid":
        ids = UuidIds("r3k9x2ab")
    else:
        ids = IntegerIds({t: 100_000 * (k + 1) for k, t in enumerate(CONTRACT_TABLES)})
    check_invariants(ds, generate(ds, ids), ids)


@pytest.mark.parametrize(
    "counts",
    [
        ScaleCounts(1, 1, 0, 0, 0, 0),
        ScaleCounts(4, 4, 3, 9, 2, 1),  # fewer agents than tenants: some workflows have no agents to name
        ScaleCounts(2, 50, 400, 100, 0, 30),
    ],
)
def test_exact_counts_and_invariants_for_overridden_counts(counts: ScaleCounts) -> None:
    ds = _dataset(counts, skew=2.0)
    check_invariants(ds, generate(ds, UuidIds("r3k9x2ab"), batch_size=7), UuidIds("r3k9x2ab"))


def test_skew_makes_tenants_unequal_and_uniform_makes_them_equal() -> None:
    skewed = _dataset(SCALES["large"]).tenant_sizes()["agents"]
    assert max(skewed) > 10 * statistics.median(skewed)
    assert sum(skewed) == SCALES["large"].agents
    flat = _dataset(SCALES["large"], skew=None).tenant_sizes()
    for table, sizes in flat.items():
        assert max(sizes) - min(sizes) <= 1, table
    assert min(_dataset(SCALES["large"], skew=3.0).tenant_sizes()["users"]) >= 1


def test_rows_are_pure_functions_of_seed_and_index() -> None:
    ds = _dataset(SCALES["medium"])
    ids = UuidIds("r3k9x2ab")
    whole = generate(ds, ids)
    fresh = _dataset(SCALES["medium"])  # a new dataset, nothing generated before
    for stream in ds.streams:
        for i in (0, 1, stream.count // 2, stream.count - 1):
            (alone,) = fresh.build_range(stream.table, i, i + 1, ids)
            assert dict(zip(stream.columns, alone, strict=True)) == whole[stream.table][i]
        middle = fresh.build_range(stream.table, 3, stream.count - 3, ids)
        assert [dict(zip(stream.columns, r, strict=True)) for r in middle] == whole[stream.table][3:-3]
    other_seed = generate(_dataset(SCALES["medium"], seed=12), ids)
    for table in CONTRACT_TABLES:
        assert other_seed[table] != whole[table]


def test_namespace_changes_only_namespaced_columns() -> None:
    a = generate(_dataset(SCALES["small"], namespace="aaaa1111"), IntegerIds(dict.fromkeys(CONTRACT_TABLES, 1)))
    b = generate(_dataset(SCALES["small"], namespace="bbbb2222"), IntegerIds(dict.fromkeys(CONTRACT_TABLES, 1)))
    assert a["agents"] == b["agents"] and a["workflows"] == b["workflows"]
    for table, column in (("users", "email"), ("users", "username"), ("tenants", "slug")):
        renamed = [r[column].replace("aaaa1111", "bbbb2222") for r in a[table]]
        assert renamed == [r[column] for r in b[table]]
        assert renamed != [r[column] for r in a[table]]


def test_uuid_ids_are_valid_deterministic_and_blocks_match_single_ids() -> None:
    ids = UuidIds("r3k9x2ab")
    block = ids.id_block("agents", 4090, 8200)
    assert block == [ids.id("agents", i) for i in range(4090, 8200)]
    parsed = [uuid.UUID(x) for x in block]
    assert all(u.variant == uuid.RFC_4122 and u.version == 8 for u in parsed)
    assert str(parsed[0]) == block[0]
    assert UuidIds("r3k9x2ab").id("users", 5) == ids.id("users", 5) != UuidIds("other").id("users", 5)
    assert ids.id("users", 5) != ids.id("agents", 5)


def test_shares_of_inactive_users_and_deleted_agents_follow_the_spec() -> None:
    counts = ScaleCounts(5, 4_000, 8_000, 0, 0, 0)
    rows = generate(_dataset(counts, inactive_user_share=0.25, deleted_agent_share=0.1), UuidIds("r3k9x2ab"))
    inactive = sum(not r["is_active"] for r in rows["users"]) / len(rows["users"])
    deleted = sum(r["status"] == "deleted" for r in rows["agents"]) / len(rows["agents"])
    assert 0.22 < inactive < 0.28
    assert 0.085 < deleted < 0.115
    none = generate(_dataset(counts, inactive_user_share=0.0, deleted_agent_share=0.0), UuidIds("r3k9x2ab"))
    assert all(r["is_active"] for r in none["users"]) and all(r["deleted_at"] is None for r in none["agents"])


def _sequence_of(rows: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    return [r[key] for r in rows]


def test_values_vary_like_real_data() -> None:
    rows = generate(_dataset(SCALES["medium"]), UuidIds("r3k9x2ab"))
    agents = rows["agents"]
    assert len(set(_sequence_of(agents, "model_name"))) >= 8
    temps = _sequence_of(agents, "temperature")
    assert 0.5 < temps.count(0.7) / len(temps) < 0.8
    prompts = [len(p) for p in _sequence_of(agents, "system_prompt")]
    assert min(prompts) < 500 and max(prompts) > 1_500
    assert len(set(_sequence_of(rows["users"], "full_name"))) > 300
    assert len({r["transport"] for r in rows["mcp_servers"]}) == 3
    assert len(set(_sequence_of(rows["tenants"], "name"))) == 20
