"""Values of the platform's code (the v1 dialect) that the row builders pick from.

Built once per seed from the same pools as the guide's values (``pools.build_pools``),
so the guide's data and its fingerprint do not change: plan limits, agent capability,
tool and tag lists, workflow ``steps`` templates derived from the same DAG shapes (an
``agent`` step for each agent node — the same agents the guide's DAG names — an
``mcp_tool`` or ``http`` step for each tool node, ``conditional`` for condition nodes,
``parallel`` for siblings), triggers, and per MCP entry its v1 transport, tools and
metadata.  Everything is pre-rendered JSON text, so a row costs string formatting only.

Shapes follow what the platform's API itself stores: every step carries all eighteen
keys of its step model (null when unused); tools are ``{name, description, inputSchema}``.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .pools import EMAIL_DOMAIN, McpEntry, Pools

__all__ = [
    "COLLECTION_EMBEDDINGS",
    "PLAN_LIMITS",
    "McpV1",
    "StepTemplate",
    "V1Catalogue",
    "v1_catalogue",
]

#: plan_type → (max_agents, max_requests_per_day, max_tokens_per_month); the model's defaults for free.
PLAN_LIMITS: dict[str, tuple[int, int, int]] = {
    "free": (3, 1_000, 100_000),
    "starter": (10, 10_000, 1_000_000),
    "pro": (50, 100_000, 10_000_000),
    "enterprise": (500, 1_000_000, 100_000_000),
}
#: (model, dimensions, weight): the pairs the platform's code knows (OpenAI and sentence-transformers).
COLLECTION_EMBEDDINGS: tuple[tuple[str, int, int], ...] = (
    ("text-embedding-3-small", 1536, 10), ("text-embedding-3-large", 3072, 3),
    ("text-embedding-ada-002", 1536, 2), ("all-MiniLM-L6-v2", 384, 4), ("all-mpnet-base-v2", 768, 2),
    ("multi-qa-MiniLM-L6-cos-v1", 384, 1), ("paraphrase-multilingual-MiniLM-L12-v2", 384, 1),
)
STEP_KEYS = ("type", "name", "agent_id", "server_id", "tool_name", "input", "output_mapping", "condition",
             "if_true", "if_false", "steps", "wait_for", "method", "url", "headers", "body", "max_retries",
             "priority")
_CAPABILITIES = ("chat", "reasoning", "retrieval", "summarization", "classification", "code", "planning",
                 "translation", "extraction", "tool_use")
_AGENT_TOOLS = ("web_search", "vector_search", "sql_query", "http_request", "send_email", "create_ticket",
                "update_crm", "calculator", "calendar_lookup", "file_reader")
_TAGS = ("production", "beta", "internal", "customer-facing", "support", "sales", "finance", "ops",
         "experimental", "high-priority", "pii", "eu")
_CATEGORIES = ("support", "sales", "operations", "finance", "engineering", "marketing", "hr", "compliance")
_MCP_CATEGORIES = {"filesystem": "system", "github": "code", "postgres": "data", "memory": "system",
                   "slack": "api", "puppeteer": "api", "fetch": "api", "git": "code", "time": "system",
                   "sqlite": "data", "everything": "system", "docs-search": "data"}
#: MCP tools per server kind: (name, description, required string argument).
_MCP_TOOLS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "filesystem": (("read_file", "Read a file", "path"), ("write_file", "Write a file", "path"),
                   ("list_directory", "List a directory", "path")),
    "github": (("search_repositories", "Search repositories", "query"),
               ("create_issue", "Open an issue", "title"), ("get_file_contents", "Read a file", "path")),
    "postgres": (("query", "Run a read-only SQL query", "sql"),),
    "memory": (("create_entities", "Store entities", "name"), ("search_nodes", "Search memory", "query")),
    "slack": (("post_message", "Post a message", "text"), ("list_channels", "List channels", "cursor")),
    "puppeteer": (("navigate", "Open a page", "url"), ("screenshot", "Take a screenshot", "name")),
    "fetch": (("fetch", "Fetch a URL", "url"),),
    "git": (("git_status", "Show the status", "repo_path"), ("git_log", "Show the log", "repo_path")),
    "time": (("get_current_time", "Current time in a zone", "timezone"),),
    "sqlite": (("read_query", "Run a SELECT", "query"), ("list_tables", "List tables", "schema")),
    "everything": (("echo", "Echo a message", "message"), ("add", "Add numbers", "a")),
    "docs-search": (("search_docs", "Search the documentation", "query"),),
    "search": (("search", "Search the index", "query"), ("get_document", "Fetch a document", "id")),
    "crm": (("find_contact", "Find a contact", "email"), ("update_contact", "Update a contact", "id")),
    "tickets": (("create_ticket", "Open a ticket", "title"), ("get_ticket", "Read a ticket", "id")),
    "billing": (("get_invoice", "Read an invoice", "id"), ("list_invoices", "List invoices", "customer")),
    "calendar": (("find_slot", "Find a free slot", "attendee"), ("book", "Book a meeting", "slot")),
    "wiki": (("search_pages", "Search pages", "query"), ("get_page", "Read a page", "id")),
    "analytics": (("run_report", "Run a report", "report"),),
    "inventory": (("check_stock", "Check stock", "sku"), ("reserve", "Reserve items", "sku")),
}
_SLOT_RE = re.compile(r'"@@A@@"|"@@M@@"')
_VERSIONS = ("1.0.0", "1.0.0", "1.0.1", "1.1.0", "1.2.0", "1.2.3", "2.0.0", "2.1.0")


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass(frozen=True)
class StepTemplate:
    """A ``steps`` list with ``%s`` slots; ``slots`` names them in text order ("a" agent id, "m" server id
    then tool name)."""

    text: str
    slots: str


@dataclass(frozen=True)
class McpV1:
    """The v1 side of one pooled MCP entry."""

    server_type: str
    url_suffix: str  # appended to the tenant's host for remote servers ("" for stdio)
    url_scheme: str  # "https://search", "wss://crm" (remote only)
    fixed_url: str | None
    config_json: str  # stdio: the whole config; remote: what follows the url key ("," + more keys + "}")
    tool_names: tuple[str, ...]
    tools_json: str
    description: str
    category: str
    author: str
    env_json: str


@dataclass(frozen=True)
class V1Catalogue:
    steps: tuple[tuple[StepTemplate, StepTemplate, StepTemplate, StepTemplate], ...]  # per shape: [agents][servers]
    triggers: tuple[str, ...]
    capabilities: tuple[str, ...]
    agent_tools: tuple[str, ...]
    tags: tuple[str, ...]
    agent_configs: tuple[str, ...]
    metadata: tuple[str, ...]
    categories: tuple[str, ...]
    versions: tuple[str, ...]
    mcp: tuple[McpV1, ...]


def _step(**given: object) -> dict[str, object]:
    step: dict[str, object] = dict.fromkeys(STEP_KEYS)
    step.update(given)
    return step


def _tool_step(j: int, name: str, tool: str, use_mcp: bool) -> dict[str, object]:
    if use_mcp:
        return _step(type="mcp_tool", name=name, server_id="@@M@@", tool_name="@@T@@",
                     input={"query": "{{input.query}}"}, max_retries=2)
    return _step(type="http", name=name, method="POST", url=f"https://{tool.replace('_', '-')}.{EMAIL_DOMAIN}/v1/run",
                 headers={"Content-Type": "application/json"}, body={"step": j + 1, "input": "{{input}}"})


def _steps_templates(doc: dict[str, object], rng: random.Random) -> tuple[StepTemplate, ...]:
    """The four variants (with/without agents × with/without servers) of one DAG's steps list."""
    nodes: list[dict[str, object]] = doc["nodes"]  # type: ignore[assignment]
    edges: list[dict[str, str]] = doc["edges"]  # type: ignore[assignment]
    parents: dict[str, list[str]] = {}
    for e in edges:
        parents.setdefault(e["to"], []).append(e["from"])
    use_mcp = [rng.random() < 0.6 for _ in nodes]
    out = []
    for agents in (True, False):
        for servers in (True, False):
            steps: list[dict[str, object]] = []
            k = 0
            while k < len(nodes):
                group = [nodes[k]]
                key = parents.get(str(nodes[k]["id"]))
                while (k + len(group) < len(nodes) and len(group) < 3 and key is not None and len(key) == 1
                       and parents.get(str(nodes[k + len(group)]["id"])) == key):
                    group.append(nodes[k + len(group)])
                rendered = [_render(n, k + g, agents, servers and use_mcp[k + g]) for g, n in enumerate(group)]
                if len(rendered) > 1:
                    steps.append(_step(type="parallel", name=f"Parallel {k + 1}", steps=rendered, wait_for="all"))
                else:
                    steps.append(rendered[0])
                k += len(group)
            text = _dumps(steps).replace("%", "%%")
            slots = "".join("a" if m.group(0) == '"@@A@@"' else "m" for m in _SLOT_RE.finditer(text))
            text = text.replace('"@@A@@"', "%s").replace('"@@M@@"', "%s").replace('"@@T@@"', "%s")
            out.append(StepTemplate(text, slots))
    return tuple(out)


def _render(node: dict[str, object], j: int, agents: bool, mcp: bool) -> dict[str, object]:
    name = str(node["name"])
    if node["type"] == "agent" and agents:
        return _step(type="agent", name=name, agent_id="@@A@@", input={"message": "{{input.message}}"},
                     output_mapping={"result": f"step_{j + 1}"})
    if node["type"] == "condition":
        return _step(type="conditional", name=name, condition="output.confidence >= 0.8",
                     if_true={"type": "http", "name": f"{name} (yes)", "method": "POST",
                              "url": f"https://hooks.{EMAIL_DOMAIN}/approve"},
                     if_false={"type": "http", "name": f"{name} (no)", "method": "POST",
                               "url": f"https://hooks.{EMAIL_DOMAIN}/review"})
    return _tool_step(j, name, str(node.get("tool", "http_request")), mcp)




def _mcp_v1(e: McpEntry, rng: random.Random) -> McpV1:
    kind = e.name if e.transport == "stdio" else e.name.split("-", 1)[0]
    tools = _MCP_TOOLS.get(kind, (("run", "Run the tool", "input"),))
    tools_json = _dumps([{"name": n, "description": d,
                          "inputSchema": {"type": "object", "properties": {a: {"type": "string"}}, "required": [a]}}
                         for n, d, a in tools])
    config = json.loads(e.config_json)
    env = config.pop("env", {})
    if e.transport == "stdio":
        server_type, scheme, suffix, fixed = "stdio", "", "", None
        config_json = _dumps(config)
    else:
        websocket = e.transport == "streamable_http"
        server_type = "websocket" if websocket else "sse"
        scheme = e.url_scheme_service.replace("https://", "wss://") if websocket else e.url_scheme_service
        suffix = f".{EMAIL_DOMAIN}{'/ws' if websocket else e.url_path}"
        fixed = None
        if e.fixed_url:
            fixed = e.fixed_url.replace("http://", "ws://").replace("/mcp", "/ws") if websocket else e.fixed_url
        inner = _dumps(config)[1:]
        config_json = inner if inner == "}" else "," + inner
    return McpV1(server_type, suffix, scheme, fixed, config_json, tuple(n for n, _, _ in tools), tools_json,
                 f"MCP server for {kind.replace('-', ' ')}", _MCP_CATEGORIES.get(kind, "api"),
                 rng.choice(("Anthropic", "Platform Team", "Data Team", "Integrations")), _dumps(env))


def _lists(rng: random.Random, words: Sequence[str], count: int, most: int) -> tuple[str, ...]:
    return tuple(_dumps(rng.sample(list(words), rng.randint(1, most))) for _ in range(count))


def _triggers(rng: random.Random) -> str:
    out: list[dict[str, object]] = [{"type": "manual", "enabled": True, "config": {}}]
    roll = rng.random()
    if roll < 0.35:
        out.append({"type": "schedule", "enabled": rng.random() < 0.9,
                    "config": {"cron": rng.choice(("0 * * * *", "*/15 * * * *", "0 9 * * 1-5", "0 2 * * *")),
                               "timezone": "UTC"}})
    elif roll < 0.6:
        out.append({"type": "webhook", "enabled": True, "config": {"path": f"/hooks/{rng.randrange(10**6):06d}"}})
    elif roll < 0.8:
        out.append({"type": "event", "enabled": True,
                    "config": {"event": rng.choice(("document.created", "ticket.opened", "agent.completed"))}})
    return _dumps(out)


_CACHE: dict[tuple[int, bytes], V1Catalogue] = {}


def _catalogue(seed: int, pools: Pools) -> V1Catalogue:
    rng = random.Random(f"v1/{seed}")
    steps = []
    for shape in pools.workflow_shapes:
        doc = json.loads(shape.template % (('"@@A@@"',) * shape.agent_slots))
        steps.append(_steps_templates(doc, rng))
    configs = tuple(_dumps({"response_format": rng.choice(("markdown", "text", "json")),
                            "max_context_messages": rng.choice((10, 20, 50)),
                            "retry_on_error": rng.random() < 0.7}) for _ in range(64))
    return V1Catalogue(
        steps=tuple(steps),  # type: ignore[arg-type]
        triggers=tuple(_triggers(rng) for _ in range(64)),
        capabilities=_lists(rng, _CAPABILITIES, 64, 4),
        agent_tools=_lists(rng, _AGENT_TOOLS, 64, 4),
        tags=_lists(rng, _TAGS, 64, 3),
        agent_configs=configs,
        metadata=tuple(_dumps({"owner_team": c, "cost_center": f"cc-{rng.randrange(1000, 9999)}"})
                       for c in (_CATEGORIES * 8)[:64]),
        categories=_CATEGORIES,
        versions=_VERSIONS,
        mcp=tuple(_mcp_v1(e, rng) for e in pools.mcp_entries),
    )


def v1_catalogue(seed: int, pools: Pools) -> V1Catalogue:
    """The v1 catalogue of ``seed`` (cached per process, a few per seed)."""
    key = (seed, pools.digest)
    cat = _CACHE.get(key)
    if cat is None:
        if len(_CACHE) >= 8:
            _CACHE.clear()
        cat = _CACHE[key] = _catalogue(seed, pools)
    return cat
