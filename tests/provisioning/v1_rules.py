"""The platform's rules for the v1 dialect's six entity tables, written from ``platform-contract.md`` and
the facts read from the platform's code (its models, request and response schemas), not from the
toolkit's generator.  ``violations`` reads every row of a run and checks every NOT NULL column (a
NOT NULL column without a rule is itself a violation) and the JSON columns the API's response
models validate (a wrong shape there makes the platform answer 500).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from agentic_loadkit.provisioning.target.url import DatabaseTarget
from dbtools import fetch

Rule = Callable[[Any, dict[str, Any]], bool]
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
SPECIAL_USE_TLDS = ("test", "local", "localhost", "invalid", "onion", "arpa")  # EmailStr refuses these
RESERVED_HOSTS = (".example.com", ".example.net", ".example.org", ".test", ".invalid", ".example")
#: (model, dimensions) pairs the platform's code knows (OpenAI and its local sentence-transformers).
EMBEDDING_PAIRS = {
    ("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072), ("text-embedding-ada-002", 1536),
    ("all-MiniLM-L6-v2", 384), ("all-mpnet-base-v2", 768), ("multi-qa-MiniLM-L6-cos-v1", 384),
    ("paraphrase-multilingual-MiniLM-L12-v2", 384),
}
PLAN_ORDER = ("free", "starter", "pro", "enterprise")
STEP_TYPES = {"agent", "mcp_tool", "parallel", "conditional", "http"}
TRIGGER_TYPES = {"manual", "schedule", "webhook", "event"}


def text(limit: int) -> Rule:
    return lambda v, _r: isinstance(v, str) and 0 < len(v) <= limit


def one_of(*values: str) -> Rule:
    return lambda v, _r: v in values


def positive(v: Any, _r: dict[str, Any]) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def count(v: Any, _r: dict[str, Any]) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def boolean(v: Any, _r: dict[str, Any]) -> bool:
    return isinstance(v, bool)


def present(v: Any, _r: dict[str, Any]) -> bool:
    return v is not None


def semver(v: Any, _r: dict[str, Any]) -> bool:
    return isinstance(v, str) and bool(SEMVER.match(v))


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def list_of_str(nullable: bool = True) -> Rule:
    def rule(v: Any, _r: dict[str, Any]) -> bool:
        if v is None:
            return nullable
        x = _json(v)
        return isinstance(x, list) and all(isinstance(e, str) for e in x)
    return rule


def list_of_objects(v: Any, _r: dict[str, Any]) -> bool:
    if v is None:
        return True
    x = _json(v)
    return isinstance(x, list) and all(isinstance(e, dict) for e in x)


def obj(v: Any, _r: dict[str, Any]) -> bool:
    return v is None or isinstance(_json(v), dict)


def login_email(v: Any, _r: dict[str, Any]) -> bool:
    if not isinstance(v, str) or v.count("@") != 1 or len(v) > 255:
        return False
    local, domain = v.split("@")
    return bool(local) and domain == domain.lower() and "." in domain and \
        domain.rsplit(".", 1)[1] not in SPECIAL_USE_TLDS


def reserved_url(v: Any, schemes: tuple[str, ...]) -> bool:
    m = re.match(r"^([a-z]+)://([^/:]+)", v) if isinstance(v, str) else None
    return bool(m) and m.group(1) in schemes and m.group(2).endswith(RESERVED_HOSTS)  # type: ignore[union-attr]


def bcrypt_hash(v: Any, _r: dict[str, Any]) -> bool:
    return isinstance(v, str) and v.startswith("$2b$") and len(v) == 60


def archived_iff_deleted(v: Any, r: dict[str, Any]) -> bool:
    return v in ("active", "inactive", "archived") and (v == "archived") == (r["deleted_at"] is not None)


def overlap(v: Any, r: dict[str, Any]) -> bool:
    return count(v, r) and v < r["chunk_size"]


def embedding(v: Any, r: dict[str, Any]) -> bool:
    return (r["embedding_model"], r["embedding_dimensions"]) in EMBEDDING_PAIRS


def executions(v: Any, r: dict[str, Any]) -> bool:
    return count(v, r) and r["successful_executions"] + r["failed_executions"] == r["total_executions"]


def workflow_counts(v: Any, r: dict[str, Any]) -> bool:
    return count(v, r) and r["success_count"] + r["failure_count"] <= r["execution_count"]


def mcp_tools(v: Any, _r: dict[str, Any]) -> bool:
    x = _json(v) if v is not None else []
    return isinstance(x, list) and all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("description"), str)
        and isinstance(t.get("inputSchema"), dict) for t in x)


def server_type(v: Any, r: dict[str, Any]) -> bool:
    if v == "stdio":
        return bool(r["command"]) and list_of_str(nullable=False)(r["args"], r)
    url = (_json(r["config"]) or {}).get("url")
    return (v == "sse" and reserved_url(url, ("http", "https"))) or \
        (v == "websocket" and reserved_url(url, ("ws", "wss")))


def triggers(v: Any, _r: dict[str, Any]) -> bool:
    if v is None:
        return True
    x = _json(v)
    return isinstance(x, list) and all(
        isinstance(t, dict) and t.get("type") in TRIGGER_TYPES and isinstance(t.get("enabled"), bool)
        and isinstance(t.get("config"), dict) for t in x)


V1_RULES: dict[str, dict[str, Rule]] = {
    "tenants": {
        "id": present, "name": text(255), "slug": text(100), "status": one_of("active"),
        "plan_type": one_of(*PLAN_ORDER), "email": lambda v, r: isinstance(v, str) and "@" in v and len(v) <= 255,
        "max_agents": positive, "max_requests_per_day": positive, "max_tokens_per_month": positive,
        "created_at": present, "updated_at": present, "settings": obj, "extra_metadata": obj,
    },
    "users": {
        "id": present, "tenant_id": present, "email": login_email, "password_hash": bcrypt_hash,
        "status": one_of("active", "inactive", "suspended"), "email_verified": boolean,
        "role": one_of("admin", "user", "viewer"), "created_at": present, "updated_at": present,
        "permissions": obj, "extra_metadata": obj,
    },
    "agents": {
        "id": present, "tenant_id": present, "name": text(255), "slug": text(100), "status": archived_iff_deleted,
        "model_provider": text(50), "model_name": text(100), "timeout_seconds": positive,
        "max_iterations": positive, "memory_enabled": boolean, "version": semver,
        "created_at": present, "updated_at": present,
        "capabilities": list_of_str(), "tools": list_of_str(), "tags": list_of_str(), "config": obj,
        "extra_metadata": obj,
        "temperature": lambda v, _r: v is None or 0 <= v <= 2, "max_tokens": lambda v, r: v is None or positive(v, r),
    },
    "workflows": {
        "id": present, "tenant_id": present, "name": text(255), "slug": text(100), "version": semver,
        "steps": lambda v, _r: isinstance(_json(v), list) and len(_json(v)) > 0 and list_of_objects(v, _r),
        "timeout_seconds": positive, "max_retries": lambda v, _r: isinstance(v, int) and 0 <= v <= 10,
        "retry_strategy": one_of("exponential", "linear", "none"), "status": one_of("draft", "active", "archived"),
        "execution_count": workflow_counts, "success_count": count, "failure_count": count,
        "created_at": present, "updated_at": present, "triggers": triggers, "tags": list_of_str(),
        "description": lambda v, _r: v is None or len(v) <= 1000,
    },
    "collections": {
        "id": present, "tenant_id": present, "name": text(255), "embedding_model": embedding,
        "embedding_dimensions": positive, "chunk_size": positive, "chunk_overlap": overlap,
        "visibility": one_of("private", "shared", "public"), "document_count": count, "chunk_count": count,
        "created_at": present, "updated_at": present, "config": obj, "extra_metadata": obj,
    },
    "mcp_servers": {
        "id": present, "tenant_id": present, "name": text(255), "slug": text(100), "server_type": server_type,
        "status": one_of("inactive", "starting", "ready", "running", "unhealthy", "stopped", "failed"),
        "version": semver, "visibility": one_of("private", "shared", "public"),
        "total_executions": executions, "successful_executions": count, "failed_executions": count,
        "created_at": present, "updated_at": present, "tools": mcp_tools, "resources": list_of_objects,
        "prompts": list_of_objects, "args": list_of_str(), "config": obj, "env_vars": obj,
        "health_status": lambda v, _r: v in (None, "healthy", "unhealthy"),
        "command": lambda v, _r: v is None or len(v) <= 500,
    },
}


def not_null_columns(target: DatabaseTarget, table: str) -> set[str]:
    return {r[0] for r in fetch(target, "SELECT column_name FROM information_schema.columns WHERE "
                                "table_schema = 'public' AND table_name = $1 AND is_nullable = 'NO'", table)}


def run_rows(target: DatabaseTarget, table: str, run_id: str) -> list[dict[str, Any]]:
    key = "id" if table == "tenants" else "tenant_id"
    return [dict(r) for r in fetch(
        target, f"SELECT * FROM {table} WHERE {key}::text IN "
        "(SELECT tenant_id FROM provisioning.run_tenants WHERE run_id = $1)", run_id)]


def _step_problems(step: dict[str, Any], tenant: Any, agents: dict[str, tuple[Any, bool]],
                   servers: dict[str, tuple[Any, set[str]]]) -> list[str]:
    kind = step.get("type")
    if kind not in STEP_TYPES or not isinstance(step.get("name"), str):
        return [f"step type/name {kind!r}"]
    if kind == "agent":
        a = agents.get(str(step.get("agent_id")))
        if not isinstance(step.get("agent_id"), str) or a is None or a[0] != tenant or a[1]:
            return [f"agent step names {step.get('agent_id')!r}: not a live agent of the tenant"]
    if kind == "mcp_tool":
        s = servers.get(str(step.get("server_id")))
        named = isinstance(step.get("server_id"), str) and s is not None
        if not named or s is None or s[0] != tenant or step.get("tool_name") not in s[1]:
            return [f"mcp_tool step names {step.get('server_id')!r}/{step.get('tool_name')!r}"]
    if kind == "parallel":
        nested = step.get("steps")
        if not isinstance(nested, list) or not nested:
            return ["parallel step without steps"]
        return [p for n in nested for p in _step_problems(n, tenant, agents, servers)]
    if kind == "conditional" and not isinstance(step.get("condition"), str):
        return ["conditional step without a condition"]
    if kind == "http" and not reserved_url(step.get("url"), ("https", "http")):
        return [f"http step to {step.get('url')!r}"]
    return []


def violations(target: DatabaseTarget, run_id: str) -> list[str]:
    """Every broken rule of the run's rows, as short texts (empty: all good)."""
    out: list[str] = []
    rows = {t: run_rows(target, t, run_id) for t in V1_RULES}
    for table, rules in V1_RULES.items():
        missing = not_null_columns(target, table) - set(rules)
        out.extend(f"{table}.{c}: NOT NULL column without a rule" for c in sorted(missing))
        for row in rows[table]:
            for col, rule in rules.items():
                if col in row and not rule(row[col], row):
                    out.append(f"{table}.{col} = {str(row[col])[:120]!r}")
    limits: dict[str, set[tuple[int, int, int]]] = {}
    for t in rows["tenants"]:
        limits.setdefault(t["plan_type"], set()).add(
            (t["max_agents"], t["max_requests_per_day"], t["max_tokens_per_month"]))
    ranked = [limits[p] for p in PLAN_ORDER if p in limits]
    singles = [next(iter(s)) for s in ranked if len(s) == 1]
    if len(singles) != len(ranked) or singles != sorted(singles):
        out.append(f"tenant limits do not follow the plan: {limits}")
    agents = {str(a["id"]): (a["tenant_id"], a["deleted_at"] is not None) for a in rows["agents"]}
    servers = {str(s["id"]): (s["tenant_id"], {t["name"] for t in _json(s["tools"]) or []})
               for s in rows["mcp_servers"]}
    for w in rows["workflows"]:
        steps = _json(w["steps"])
        for step in steps if isinstance(steps, list) and all(isinstance(x, dict) for x in steps) else ():
            out.extend(f"workflow {w['id']}: {p}" for p in _step_problems(step, w["tenant_id"], agents, servers))
    emails = [u["email"] for u in rows["users"]]
    if len(set(emails)) != len(emails):
        out.append("user emails are not unique (the platform's login looks up by email alone)")
    return out


def cross_tenant_references(target: DatabaseTarget) -> int:
    """Rows whose foreign key names a row of another tenant, over every FK between the six tables."""
    fks = fetch(target, """
        SELECT kcu.table_name AS child, kcu.column_name AS col, ccu.table_name AS parent
        FROM information_schema.table_constraints tc
        JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)
        JOIN information_schema.constraint_column_usage ccu USING (constraint_schema, constraint_name)
        WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = 'public'""")
    six = set(V1_RULES)
    bad = 0
    for fk in fks:
        if fk["child"] in six and fk["parent"] in six and fk["parent"] != "tenants":
            bad += int(fetch(target, f'SELECT count(*) FROM "{fk["child"]}" c JOIN "{fk["parent"]}" p '
                             f'ON c."{fk["col"]}" = p.id WHERE c.tenant_id <> p.tenant_id')[0][0])
    return bad
