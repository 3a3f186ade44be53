"""The invariants every generated dataset keeps, checked row by row: shared by the row tests
(``test_rows.py``) and the hypothesis properties (``test_generators_properties.py``).

``generate`` materialises every row of a dataset; ``check_invariants`` asserts exact counts,
references inside their tenant, uniqueness, and realistic, safe values.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from agentic_loadkit.provisioning.generate.dataset import (
    TABLE_COLUMNS,
    Dataset,
    IdSpace,
)
from agentic_loadkit.provisioning.generate.pools import MAX_TOKENS_CHOICES, MODEL_CATALOGUE, RESERVED_DOMAIN_SUFFIXES
from agentic_loadkit.provisioning.generate.rowbase import ANCHOR, EPOCH
from agentic_loadkit.provisioning.schema.concepts import CONTRACT_TABLES

__all__ = ["EMAIL_RE", "HASHES", "URL_RE", "Rows", "check_invariants", "generate"]

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
    for table in CONTRACT_TABLES[1:]:
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
