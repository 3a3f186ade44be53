"""The foreign-key graph below the tenants table, reflected from real schemas (and built by hand)."""

from __future__ import annotations

import asyncpg
import pytest
from agentic_loadkit.provisioning.down.sql import path_label
from agentic_loadkit.provisioning.errors import SchemaMismatch
from agentic_loadkit.provisioning.schema.fkgraph import Edge, ForeignKeyGraph, TableRef, build_graph
from agentic_loadkit.provisioning.schema.fkreflect import reflect_graph
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.reference_platform.schema import TABLE_NAMES
from teardown_helpers import VARIANT_SQL, execute, run

REFERENCE = set(TABLE_NAMES)


def reflect(target: DatabaseTarget, **kw: str) -> ForeignKeyGraph:
    async def go() -> ForeignKeyGraph:
        conn = await asyncpg.connect(target.asyncpg_url)
        try:
            return await reflect_graph(conn, **kw)
        finally:
            await conn.close()

    return run(go())


def assert_children_first(graph: ForeignKeyGraph) -> None:
    position = {t.table: i for i, t in enumerate(graph.tables)}
    for e in graph.edges:
        if not e.is_self and e not in graph.cycle_breaks:
            assert position[e.child] < position[e.parent], e.display
    assert graph.tables[-1].table == graph.tenants or graph.cycle_breaks


@pytest.fixture(scope="module")
def variant(db_factory) -> DatabaseTarget:  # type: ignore[no-untyped-def]
    target = db_factory.new(schema="uuid")
    execute(target, VARIANT_SQL)
    execute(target, "CREATE SCHEMA provisioning; CREATE TABLE provisioning.run_tenants (run_id text, tenant_id text)")
    return target


@pytest.mark.parametrize("id_kind", ["uuid", "integer"])
def test_reference_schema(id_kind: str, platform_db: DatabaseTarget, platform_db_int: DatabaseTarget) -> None:
    graph = reflect(platform_db if id_kind == "uuid" else platform_db_int)
    assert {t.table.name for t in graph.tables} == REFERENCE
    assert graph.tenant_key == "id" and graph.tenant_key_type == ("uuid" if id_kind == "uuid" else "bigint")
    assert_children_first(graph)
    paths = {t.table.name: [path_label(p) for p in t.paths] for t in graph.tables}
    assert paths["documents"] == ["documents.collection_id → collections.tenant_id → tenants"]
    assert paths["audit_events"] == ["audit_events.tenant_id → tenants"]
    assert paths["tenants"] == ["tenant id"]
    assert paths["conversations"][0] == "conversations.tenant_id → tenants"
    assert {
        "conversations.agent_id → agents.tenant_id → tenants",
        "conversations.user_id → users.tenant_id → tenants",
    } <= set(paths["conversations"])
    assert graph.tenant_column_tables == (TableRef("public", "audit_events"),)
    assert graph.unindexed == () and graph.warnings == () and graph.cycle_breaks == ()
    assert any("audit_events" in n for n in graph.notes)


def test_unindexed_foreign_key_is_found(db_factory) -> None:  # type: ignore[no-untyped-def]
    target = db_factory.new(schema="integer")
    execute(target, "DROP INDEX ix_conversations_agent_id")
    graph = reflect(target)
    assert [e.display for e in graph.unindexed] == ["conversations(agent_id) → agents(id)"]
    assert any("No index on conversations(agent_id)" in w for w in graph.warnings)


def test_a_composite_index_covers_a_foreign_key_only_by_its_leading_columns(db_factory) -> None:  # type: ignore[no-untyped-def]
    target = db_factory.new(schema="uuid")
    execute(target, "DROP INDEX ix_agents_created_by; CREATE INDEX ix_agents_name_created ON agents (name, created_by)")
    assert [e.display for e in reflect(target).unindexed] == ["agents(created_by) → users(id)"]
    execute(target, "CREATE INDEX ix_agents_created_name ON agents (created_by, name)")
    assert reflect(target).unindexed == ()


def test_harder_schema(variant: DatabaseTarget) -> None:
    graph = reflect(variant)
    names = {t.table.display for t in graph.tables}
    assert {"collection_shares", "analytics.agent_stats", "usage_logs"} <= names
    assert "analytics.events" not in names  # a tenant column in another schema means something else
    assert any("analytics.events" in n and "leaves it alone" in n for n in graph.notes)
    assert not any(t.table.schema == "provisioning" for t in graph.tables)  # the ledger is never walked
    assert_children_first(graph)

    agents = graph.get("agents")
    assert [e.child_cols for e in agents.self_edges] == [("parent_id",)]
    assert any(p and p[0].is_self for p in agents.paths)  # rows pointing at a run agent

    (cut,) = graph.cycle_breaks  # users.default_agent_id ↔ agents.created_by, both nullable
    assert {cut.child.name, cut.parent.name} == {"users", "agents"} and cut.nullable
    assert any("cycle" in n for n in graph.notes)

    shares = graph.get("collection_shares")
    assert shares.paths[0][0].child_cols == ("collection_id", "tenant_id")
    assert shares.paths[0][0].parent_cols == ("id", "tenant_id")
    assert not shares.by_tenant_column  # its tenant_id is part of a declared foreign key

    logs = graph.get("usage_logs")
    assert logs.by_tenant_column and logs.paths[0][0].compare_as_text
    unindexed = {e.display for e in graph.unindexed}
    assert unindexed == {"analytics.agent_stats(agent_id) → agents(id)", "usage_logs(tenant_id) → tenants(id)"}


def test_tenant_column_and_tables_are_configurable(db_factory) -> None:  # type: ignore[no-untyped-def]
    target = db_factory.new(schema="uuid")
    execute(
        target,
        "CREATE SCHEMA platform; ALTER TABLE tenants SET SCHEMA platform; ALTER TABLE platform.tenants RENAME TO orgs; "
        "ALTER TABLE audit_events RENAME COLUMN tenant_id TO org_id; ALTER TABLE audit_events SET SCHEMA platform",
    )
    graph = reflect(target, tenants_schema="platform", tenants_table="orgs", tenant_column="org_id")
    assert graph.tenants == TableRef("platform", "orgs")
    assert graph.tenant_column_tables == (TableRef("platform", "audit_events"),)
    assert len(graph.tables) == 9
    with pytest.raises(SchemaMismatch, match=r"no tenants table public\.tenants"):
        reflect(target)


def _edge(child: str, parent: str, col: str, *, nullable: bool = False) -> Edge:
    return Edge(
        f"{child}_{col}_fkey", TableRef("public", child), TableRef("public", parent), (col,), ("id",), nullable=nullable
    )


def test_a_cycle_of_not_null_keys_is_reported() -> None:
    tenants = TableRef("public", "tenants")
    edges = [
        _edge("a", "tenants", "tenant_id"),
        _edge("b", "tenants", "tenant_id"),
        _edge("a", "b", "b_id"),
        _edge("b", "a", "a_id"),
    ]
    with pytest.raises(SchemaMismatch, match=r"a → b → a|b → a → b"):
        build_graph(tenants, "id", "uuid", edges)
    edges[2] = _edge("a", "b", "b_id", nullable=True)
    graph = build_graph(tenants, "id", "uuid", edges)
    assert graph.cycle_breaks == (edges[2],)
    assert [t.table.name for t in graph.tables] == ["b", "a", "tenants"]


def test_a_nullable_key_is_not_cut_when_it_is_the_only_way_to_a_tenant() -> None:
    tenants = TableRef("public", "tenants")
    edges = [_edge("a", "tenants", "tenant_id"), _edge("b", "a", "a_id", nullable=True), _edge("a", "b", "b_id")]
    with pytest.raises(SchemaMismatch):
        build_graph(tenants, "id", "uuid", edges)


def test_unrelated_tables_stay_out() -> None:
    tenants = TableRef("public", "tenants")
    edges = [
        _edge("users", "tenants", "tenant_id"),
        _edge("tags", "colors", "color_id"),
        _edge("users", "colors", "color_id"),
    ]
    graph = build_graph(tenants, "id", "uuid", edges)
    assert [t.table.name for t in graph.tables] == ["users", "tenants"]
    assert [e.parent.name for e in graph.edges] == ["tenants"]
