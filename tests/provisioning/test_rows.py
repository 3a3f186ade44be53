"""Generated rows: exact counts, references inside their tenant, uniqueness, realistic and safe values.

``check_invariants`` is shared with the hypothesis properties (test_generators_properties.py).
"""

from __future__ import annotations

import json
import re
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from agentic_loadkit.provisioning.generate.dataset import (
    TABLE_COLUMNS,
    Dataset,
    GenerationSpec,
    IdSpace,
    IntegerIds,
    UuidIds,
)
from agentic_loadkit.provisioning.generate.pools import MAX_TOKENS_CHOICES, MODEL_CATALOGUE, RESERVED_DOMAIN_SUFFIXES
from agentic_loadkit.provisioning.generate.rows import ANCHOR, EPOCH
from agentic_loadkit.provisioning.generate.scales import SCALES, ScaleCounts
from agentic_loadkit.provisioning.schema.concepts import CONTRACT_TABLES as TABLES

Rows = dict[str, list[dict[str, Any]]]
HASHES = [f"$2b$04$slot{k:02d}" + "x" * 45 for k in range(16)]
URL_RE = re.compile(r"[a-z][a-z0-9+.-]*://[^\s\"',]+")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9.-]+)")


def generate(dataset: Dataset, ids: IdSpace, batch_size: int = 50_000) -> Rows:
    """Every row of every table, as dicts keyed by contract column names."""
    out: Rows = {}
    for stream in dataset.streams:
        assert stream.columns == TABLE_COLUMNS[stream.table] and stream.columns[0] == "id"
        out[stream.table] = [
            dict(zip(stream.columns, row, strict=True))
            for batch in stream.batches(ids, batch_size)
            for row in batch
        ]
    return out


def _reserved(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host in ("example.com", "example.net", "example.org") or host.endswith(RESERVED_DOMAIN_SUFFIXES)


def _check_dag(definition: Mapping[str, Any]) -> list[Any]:
    """Assert ``definition`` is a DAG of steps; return the agent ids its steps name."""
    nodes = definition["nodes"]
    node_ids = [n["id"] for n in nodes]
    assert len(set(node_ids)) == len(node_ids) and definition["entry"] in node_ids
    children: dict[str, list[str]] = defaultdict(list)
    indegree = dict.fromkeys(node_ids, 0)
    for edge in definition["edges"]:
        assert edge["from"] in indegree and edge["to"] in indegree
        children[edge["from"]].append(edge["to"])
        indegree[edge["to"]] += 1
    ready = [n for n, d in indegree.items() if d == 0]
    seen = 0
    while ready:  # Kahn's algorithm: every node is reached iff there is no cycle
        node = ready.pop()
        seen += 1
        for child in children[node]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    assert seen == len(node_ids), "workflow definition has a cycle"
    return [n["agent_id"] for n in nodes if n["type"] == "agent"]


def check_invariants(dataset: Dataset, rows: Rows, ids: IdSpace) -> None:
    """Everything issue 3 promises about generated data, for any counts, seed and skew."""
    spec, counts = dataset.spec, dataset.spec.counts.as_dict()
    assert {t: len(r) for t, r in rows.items()} == counts
    sizes = dataset.tenant_sizes()
    assert {t: sum(s) for t, s in sizes.items()} == counts

    # primary keys: as the IdSpace says, unique
    for table, table_rows in rows.items():
        keys = [r["id"] for r in table_rows]
        assert keys == [ids.id(table, i) for i in range(len(table_rows))]
        assert len(set(keys)) == len(keys)

    tenant_index = {r["id"]: t for t, r in enumerate(rows["tenants"])}
    user_tenant = {r["id"]: tenant_index[r["tenant_id"]] for r in rows["users"]}
    agent_tenant = {r["id"]: tenant_index[r["tenant_id"]] for r in rows["agents"]}
    deleted_agents = {r["id"] for r in rows["agents"] if r["status"] == "deleted"}

    # every row belongs to one tenant, as tenant_of says; every reference stays inside it
    for table in TABLES[1:]:
        for i, r in enumerate(rows[table]):
            assert tenant_index[r["tenant_id"]] == dataset.tenant_of(table, i)
    for r in rows["agents"]:
        assert user_tenant[r["created_by"]] == agent_tenant[r["id"]]
    for r in rows["workflows"]:
        t = tenant_index[r["tenant_id"]]
        assert user_tenant[r["created_by"]] == t
        referenced = _check_dag(json.loads(r["definition"]))
        for agent in referenced:
            assert agent_tenant[agent] == t
        block = [rows["agents"][i]["id"] for i in dataset.tenant_range("agents", t)]
        if set(block) - deleted_agents and (len(block) <= 8 or spec.deleted_agent_share <= 0.1):
            assert not set(referenced) & deleted_agents  # the picker skips soft-deleted agents

    # unique columns: unique by construction, namespaced per run
    ns = spec.namespace
    emails = [r["email"] for r in rows["users"]]
    assert len(set(emails)) == len(emails)
    assert all(ns in e for e in emails)
    usernames = [r["username"] for r in rows["users"]]
    assert len(set(usernames)) == len(usernames)
    slugs = [r["slug"] for r in rows["tenants"]]
    assert len(set(slugs)) == len(slugs) and all(ns in s for s in slugs)
    for table in ("agents", "workflows", "collections", "mcp_servers"):
        pairs = [(r["tenant_id"], r["slug"]) for r in rows[table]]
        assert len(set(pairs)) == len(pairs), table

    # emails and URLs only on reserved names, wherever they appear
    for table_rows in rows.values():
        for r in table_rows:
            for value in r.values():
                if not isinstance(value, str):
                    continue
                for url in URL_RE.findall(value):
                    assert _reserved(urlsplit(url).hostname or ""), url
                for domain in EMAIL_RE.findall(value):
                    if "." in domain:
                        assert _reserved(domain), value

    # users: every tenant keeps an active user; inactive users are marked consistently
    active_per_tenant = Counter(user_tenant[r["id"]] for r in rows["users"] if r["is_active"])
    assert set(active_per_tenant) == set(range(spec.counts.tenants))
    for r in rows["users"]:
        assert r["status"] == ("active" if r["is_active"] else "inactive")
        assert r["hashed_password"] in HASHES[: spec.password_slots]
        assert r["role"] in ("admin", "member", "viewer")
    infos = list(dataset.users())
    assert [u.email for u in infos] == emails
    for u, r in zip(infos, rows["users"], strict=True):
        assert (u.role, u.is_active, u.tenant_index) == (r["role"], r["is_active"], user_tenant[r["id"]])
        assert r["hashed_password"] == HASHES[u.password_slot]

    # agents: real models, realistic settings, soft deletes consistent
    catalogue = {(p, m) for p, m, _ in MODEL_CATALOGUE}
    max_tokens = {v for v, _ in MAX_TOKENS_CHOICES}
    for i, r in enumerate(rows["agents"]):
        assert (r["model_provider"], r["model_name"]) in catalogue
        assert 0.0 <= r["temperature"] <= 1.0 and round(r["temperature"], 2) == r["temperature"]
        assert r["max_tokens"] in max_tokens and 256 <= r["max_tokens"] <= 8192
        assert 150 <= len(r["system_prompt"]) <= 2_100
        deleted = r["status"] == "deleted"
        assert deleted == (r["deleted_at"] is not None) == dataset.agent_is_deleted(i)
        assert r["status"] in ("active", "deleted")
        assert r["created_at"] <= r["updated_at"]
        if deleted:
            assert r["updated_at"] < r["deleted_at"]

    # MCP servers: fields match the transport
    for r in rows["mcp_servers"]:
        args = json.loads(r["args"])
        assert isinstance(args, list) and isinstance(json.loads(r["config"]), dict)
        if r["transport"] == "stdio":
            assert r["command"] and r["url"] is None
        else:
            assert r["transport"] in ("sse", "streamable_http")
            assert r["command"] is None and r["url"] and _reserved(urlsplit(r["url"]).hostname or "")

    # timestamps: aware, fixed window, children after their tenant
    tenant_created = [r["created_at"] for r in rows["tenants"]]
    for table, table_rows in rows.items():
        for r in table_rows:
            stamp: datetime = r["created_at"]
            assert stamp.tzinfo is not None and EPOCH <= stamp <= ANCHOR
            if table != "tenants":
                assert stamp >= tenant_created[tenant_index[r["tenant_id"]]]
    for r in rows["tenants"]:
        assert isinstance(json.loads(r["settings"]), dict) and r["status"] == "active"


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
        ids = IntegerIds({t: 100_000 * (k + 1) for k, t in enumerate(TABLES)})
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
    for table in TABLES:
        assert other_seed[table] != whole[table]


def test_namespace_changes_only_namespaced_columns() -> None:
    a = generate(_dataset(SCALES["small"], namespace="aaaa1111"), IntegerIds(dict.fromkeys(TABLES, 1)))
    b = generate(_dataset(SCALES["small"], namespace="bbbb2222"), IntegerIds(dict.fromkeys(TABLES, 1)))
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
