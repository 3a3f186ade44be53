"""The v1 dialect's extra fields of a row (``EXTRA_FIELDS``), appended when a table is *extended*.

Each draws from its row's hash (a further round of it), so the guide's fields of a row do
not change whether or not the row is extended.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from .pools import EMAIL_DOMAIN
from .rowbase import (
    AGENT_ITERATIONS,
    AGENT_TIMEOUTS,
    C2,
    MASK64,
    MCP_HEALTH,
    MCP_STATUS,
    PLANS_V1,
    REGIONS,
    TENANT_METADATA,
    VISIBILITY,
    WF_RETRIES,
    WF_STATUS,
    WF_STRATEGIES,
    WF_TIMEOUTS,
    IdAccess,
    RowContext,
    json_id,
    mix64,
    row_hash,
    second_hash,
    table_key,
)
from .v1values import PLAN_LIMITS, V1Catalogue

__all__ = ["agent_extras", "mcp_extras", "tenant_extras", "workflow_extras"]


def tenant_extras(ctx: RowContext, t: int, h: int, region: int, created: datetime) -> tuple:
    pools = ctx.pools
    plan = PLANS_V1[(h >> 10) & 15]
    f, l_ = (h >> 14) & 255, (h >> 22) & 255
    settings = json.dumps({"region": REGIONS[region], "timezone": "UTC",
                           "features": {"rag": bool(h >> 8 & 1) or plan in ("pro", "enterprise"),
                                        "mcp": bool(h >> 9 & 1) or plan == "enterprise"}}, separators=(",", ":"))
    email = f"{pools.first_ascii[f]}.{pools.last_ascii[l_]}@{ctx.namespace}.{ctx.tenant_host(t)}.{EMAIL_DOMAIN}"
    return (plan, email, f"{pools.first_names[f]} {pools.last_names[l_]}", *PLAN_LIMITS[plan], settings,
            TENANT_METADATA, created)


def agent_extras(ctx: RowContext) -> Callable[[int, bool], tuple]:
    """The v1 fields of an agent, from a third draw of its row (``h2`` is its second)."""
    cat = ctx.v1
    assert cat is not None
    caps, tools, tags, configs, meta, versions = (cat.capabilities, cat.agent_tools, cat.tags, cat.agent_configs,
                                                  cat.metadata, cat.versions)

    def extras(h2: int, deleted: bool) -> tuple:
        z = ((h2 ^ (h2 >> 31)) * C2) & MASK64
        h3 = z ^ (z >> 29)
        status = "archived" if deleted else ("inactive" if (h3 & 31) < 3 else "active")
        return (status, caps[(h3 >> 5) & 63], tools[(h3 >> 11) & 63], AGENT_TIMEOUTS[(h3 >> 17) & 7],
                AGENT_ITERATIONS[(h3 >> 20) & 7], ((h3 >> 23) & 3) != 0, versions[(h3 >> 25) & 7],
                tags[(h3 >> 28) & 63], configs[(h3 >> 34) & 63], meta[(h3 >> 40) & 63])

    return extras


def workflow_extras(ctx: RowContext, acc: IdAccess) -> Callable[[int, int, int, list[str] | None, datetime], tuple]:
    """The v1 fields of a workflow: its ``steps`` list (the DAG's agents, plus same-tenant MCP servers and
    one of each server's own tools) and the rest, from a separate draw of the row."""
    cat = ctx.v1
    assert cat is not None
    server_offsets, mcp_key, mcp = ctx.offsets["mcp_servers"], table_key(ctx.seed, "mcp_servers"), cat.mcp
    templates, triggers, tags, meta, versions = cat.steps, cat.triggers, cat.tags, cat.metadata, cat.versions
    categories = cat.categories

    def extras(t: int, h: int, shape: int, agents: list[str] | None, created: datetime) -> tuple:
        s0, ns = server_offsets[t], server_offsets[t + 1] - server_offsets[t]
        template = templates[shape][(0 if agents is not None else 2) + (0 if ns else 1)]
        if template.slots:
            fill: list[str] = []
            next_agent = iter(agents or ())
            servers = acc.tenant_block("mcp_servers", t) if ns else ()
            z = h ^ 0x5BD1E995
            for kind in template.slots:
                if kind == "a":
                    q = next(next_agent)
                    fill.append(q if q[0] == '"' else f'"{q}"')  # the step model's agent_id is a string
                    continue
                z = mix64(z)
                local = (z * ns) >> 64
                tools = mcp[row_hash(mcp_key, s0 + local) & 255].tool_names
                sid = json_id(servers[local])
                fill.append(sid if sid[0] == '"' else f'"{sid}"')
                fill.append(f'"{tools[(z >> 8) % len(tools)]}"')
            steps = template.text % tuple(fill)
        else:
            steps = template.text % ()
        h3 = mix64(h ^ 0x2545F4914F6CDD1D)
        status = WF_STATUS[h3 & 15]
        if status == "draft":
            runs = failures = 0
        else:
            runs = (h3 >> 4) % 2000
            failures = runs * ((h3 >> 16) & 15) // 100
        return (steps, triggers[(h3 >> 29) & 63], versions[(h3 >> 35) & 7], WF_TIMEOUTS[(h3 >> 20) & 7],
                WF_RETRIES[(h3 >> 23) & 7], WF_STRATEGIES[(h3 >> 26) & 7], status, tags[(h3 >> 38) & 63],
                categories[(h3 >> 44) & 7], meta[(h3 >> 47) & 63], runs, runs - failures, failures, created)

    return extras


def mcp_extras(cat: V1Catalogue, h: int, host: str, created: datetime) -> tuple:
    v = cat.mcp[h & 255]
    if v.server_type == "stdio":
        config = v.config_json
    else:
        config = f'{{"url":"{v.fixed_url or f"{v.url_scheme}.{host}{v.url_suffix}"}"{v.config_json}'
    h2 = second_hash(h)
    status = MCP_STATUS[h2 & 15]
    total = 0 if status == "inactive" else (h2 >> 4) % 5000
    failed = total * ((h2 >> 17) & 7) // 100
    return (v.server_type, config, v.description, status, cat.versions[(h2 >> 24) & 7], v.category, v.author,
            v.tools_json, "[]", "[]", v.env_json, MCP_HEALTH.get(status), VISIBILITY[(h2 >> 20) & 15],
            total, total - failed, failed, cat.metadata[(h2 >> 27) & 63], created)
