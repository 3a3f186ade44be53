"""Row builders: pure functions of (seed, table, index) that turn pooled values into COPY-ready rows.

Each builder makes the rows ``[lo, hi)`` of one table.  Every random choice of row ``i``
comes from splitmix64 of ``(table key, i)`` — a few integer operations, no ``random.Random``
and no Faker per row — so any row can be rebuilt alone and generation stays fast.  Rows
belong to tenants in contiguous index blocks (``offsets``); every reference (an agent's
creator, a workflow step's agent) is drawn from the SAME tenant's block of the referenced
table, so references never cross tenants.

Alongside the rows a builder appends the row's *canonical* form to ``canon`` (a list of
ints): tenant index, referenced row indices, the pool entries picked and the time slots —
the row with ids, the namespace and password hashes abstracted.  The fingerprint hashes
that (``fingerprint.py``); the pooled strings themselves are covered by ``Pools.digest``.

Timestamps come from a fixed table of 65,536 instants between ``EPOCH`` and ``ANCHOR``
(seconds-exact, jittered): never ``now()``, and a lookup instead of a datetime per row.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from ..schema.concepts import CONTRACT_TABLES, VOCABULARIES
from .pools import EMAIL_DOMAIN, EMBEDDING_MODELS, MAX_TOKENS_CHOICES, MODEL_CATALOGUE, Pools
from .scales import allocate
from .v1values import COLLECTION_EMBEDDINGS, PLAN_LIMITS, V1Catalogue

__all__ = [
    "ANCHOR",
    "EPOCH",
    "EXTRA_FIELDS",
    "FIELDS",
    "OPTIONAL_COLUMNS",
    "TABLE_COLUMNS",
    "TENANT_SLOT_RANGE",
    "TIME_SLOTS",
    "USER_CANON_WIDTH",
    "IdAccess",
    "IdFn",
    "RowContext",
    "agent_deleted",
    "build_rows",
    "mix64",
    "row_hash",
    "second_hash",
    "segments",
    "table_key",
    "time_table",
]

IdFn = Callable[[int], object]
BlockFn = Callable[[str, int, int], Sequence[object]]

TABLE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "tenants": ("id", "name", "slug", "settings", "status", "created_at"),
    "users": ("id", "tenant_id", "email", "username", "hashed_password", "full_name", "role",
              "is_active", "status", "created_at"),
    "agents": ("id", "tenant_id", "created_by", "name", "slug", "description", "system_prompt",
               "model_provider", "model_name", "temperature", "max_tokens", "status", "created_at",
               "updated_at", "deleted_at"),
    "workflows": ("id", "tenant_id", "created_by", "name", "slug", "description", "definition", "status",
                  "created_at"),
    "collections": ("id", "tenant_id", "name", "slug", "description", "embedding_model", "status",
                    "created_at"),
    "mcp_servers": ("id", "tenant_id", "name", "slug", "transport", "url", "command", "args", "config",
                    "status", "created_at"),
}
#: Fields the builders append when a table is *extended* (its live table wants values the guide's
#: columns do not carry: the v1 dialect's, or any schema that has such columns).
EXTRA_FIELDS: Mapping[str, tuple[str, ...]] = {
    "tenants": ("plan_type", "email", "contact_name", "max_agents", "max_requests_per_day",
                "max_tokens_per_month", "settings_v1", "extra_metadata", "updated_at"),
    "users": ("first_name", "last_name", "role_v1", "email_verified", "updated_at"),
    "agents": ("status_v1", "capabilities", "tools", "timeout_seconds", "max_iterations", "memory_enabled",
               "version", "tags", "config", "extra_metadata"),
    "workflows": ("steps", "triggers", "version", "timeout_seconds", "max_retries", "retry_strategy", "status_v1",
                  "tags", "category", "extra_metadata", "execution_count", "success_count", "failure_count",
                  "updated_at"),
    "collections": ("embedding_model_v1", "embedding_dimensions", "chunk_size", "chunk_overlap", "visibility",
                    "document_count", "chunk_count", "config", "extra_metadata", "updated_at"),
    "mcp_servers": ("server_type", "config_v1", "description", "status_v1", "version", "category", "author",
                    "tools", "resources", "prompts", "env_vars", "health_status", "visibility",
                    "total_executions", "successful_executions", "failed_executions", "extra_metadata",
                    "updated_at"),
}
#: Every field a builder can make, in tuple order: the guide's columns, then the extra fields.
FIELDS: Mapping[str, tuple[str, ...]] = {t: (*TABLE_COLUMNS[t], *EXTRA_FIELDS[t]) for t in TABLE_COLUMNS}
#: Columns the live schema may lack (the contract does not name them, or only assumes them);
#: the orchestrator drops these when missing instead of failing.
OPTIONAL_COLUMNS: Mapping[str, frozenset[str]] = {
    "tenants": frozenset({"settings", "created_at"}),
    "users": frozenset({"role", "username", "full_name", "created_at"}),
    "agents": frozenset({"created_by", "updated_at"}),
    "workflows": frozenset({"created_by", "slug", "description", "created_at"}),
    "collections": frozenset({"description", "embedding_model", "created_at"}),
    "mcp_servers": frozenset({"slug", "args", "config", "created_at"}),
}
#: Ints per user in ``canon``: (tenant, first, last, password slot, role, active, created slot).
USER_CANON_WIDTH = 7

EPOCH = datetime(2022, 1, 1, tzinfo=UTC)
ANCHOR = datetime(2025, 6, 1, tzinfo=UTC)
TIME_SLOTS = 1 << 16
_SLOT_SECONDS = int((ANCHOR - EPOCH).total_seconds()) // TIME_SLOTS
#: Every tenant exists for at least ~180 days before ANCHOR.
TENANT_SLOT_RANGE = TIME_SLOTS - (180 * 86_400) // _SLOT_SECONDS
#: Slots kept free after an agent's creation for its update (< 2,048) and deletion (< 1,025 more).
_AGENT_HEADROOM = 2048 + 1025

_M = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
_SALTS = {name: (k + 1) * 0x632BE59BD9B4E019 & _M
          for k, name in enumerate((*CONTRACT_TABLES, "refs", "tenant_created", "tenant_names"))}


def mix64(x: int) -> int:
    """splitmix64 of ``x``: a cheap, well-mixed 64-bit hash."""
    z = (x + _GOLDEN) & _M
    z = ((z ^ (z >> 30)) * _C1) & _M
    z = ((z ^ (z >> 27)) * _C2) & _M
    return z ^ (z >> 31)


def row_hash(key: int, index: int) -> int:
    """Row ``index``'s 64-bit draw under ``key`` (what the builders compute inline, for speed)."""
    return mix64(key + (index - 1) * _GOLDEN)


def second_hash(h: int) -> int:
    """A second 64-bit draw derived from the first (one more multiply-xorshift round)."""
    z = ((h ^ (h >> 29)) * _C1) & _M
    return z ^ (z >> 32)


def table_key(seed: int, table: str) -> int:
    """The per-(seed, table) key of the row draws."""
    return mix64((seed & _M) ^ _SALTS[table])


def agent_deleted(h2: int, threshold: int) -> bool:
    """Whether an agent whose second draw is ``h2`` is soft-deleted (the builder's own test)."""
    return (h2 & 0xFFFFF) < threshold


@lru_cache(maxsize=1)
def time_table() -> tuple[datetime, ...]:
    """The 65,536 instants rows take their timestamps from (ascending, seed-independent)."""
    step = _SLOT_SECONDS
    return tuple(EPOCH + timedelta(seconds=k * step + mix64(k ^ 0x7157) % step) for k in range(TIME_SLOTS))


def _weighted_table(weights: Sequence[int], size: int) -> tuple[int, ...]:
    """A ``size``-entry lookup table of choice indices, in proportion to the weights."""
    parts = allocate(size, [float(w) for w in weights], minimum=1)
    return tuple(k for k, n in enumerate(parts) for _ in range(n))


_MODELS = tuple(MODEL_CATALOGUE[k][:2] for k in _weighted_table([w for *_, w in MODEL_CATALOGUE], 128))
_MAX_TOKENS = tuple(MAX_TOKENS_CHOICES[k][0] for k in _weighted_table([w for _, w in MAX_TOKENS_CHOICES], 64))
_EMBEDDINGS = tuple(EMBEDDING_MODELS[k][0] for k in _weighted_table([w for _, w in EMBEDDING_MODELS], 64))
#: Temperatures (two decimals): mostly 0.7, the rest spread over 0.00..1.00.
_TEMPERATURES = tuple(x / 100 for x in (70,) * 80 + (
    0, 0, 5, 10, 15, 20, 20, 20, 25, 30, 30, 30, 35, 40, 45, 50, 50, 50, 50, 55, 60, 60, 65, 75,
    80, 80, 80, 85, 90, 90, 95, 100, 100, 30, 50, 20, 0, 100, 60, 40, 30, 50, 20, 80, 90, 10, 70, 70))
_ROLES = VOCABULARIES[("users", "role")]
_ROLES_V1 = VOCABULARIES[("users", "role_v1")]
_PLANS_V1 = tuple(p for p, n in zip(VOCABULARIES[("tenants", "plan_type")], (6, 5, 3, 2), strict=True)
                  for _ in range(n))
_EMBEDDINGS_V1 = tuple(COLLECTION_EMBEDDINGS[k][:2]
                       for k in _weighted_table([w for *_, w in COLLECTION_EMBEDDINGS], 64))
_AGENT_TIMEOUTS = (60, 120, 300, 300, 300, 600, 900, 1800)
_AGENT_ITERATIONS = (5, 10, 10, 10, 15, 20, 25, 50)
_WF_TIMEOUTS = (300, 600, 900, 1800, 3600, 3600, 3600, 7200)
_WF_RETRIES = (0, 1, 2, 3, 3, 3, 5, 10)
_WF_STRATEGIES = ("exponential",) * 5 + ("linear", "linear", "none")
_WF_STATUS = ("draft", "draft", "archived") + ("active",) * 13
_CHUNK_SIZES = (256, 512, 512, 512, 800, 1000, 1024, 2048)
_CHUNK_OVERLAP_PERCENT = (0, 10, 10, 12, 15, 20, 20, 25)
_VISIBILITY = ("private",) * 11 + ("shared",) * 3 + ("public",) * 2
_COLLECTION_CONFIGS = tuple(
    json.dumps({"distance_metric": "cosine", "top_k": k, "similarity_threshold": s}, separators=(",", ":"))
    for k in (3, 5, 8, 10) for s in (0.5, 0.6, 0.7, 0.75)
)
_MCP_STATUS = ("inactive",) * 6 + ("ready",) * 4 + ("running",) * 4 + ("unhealthy", "stopped")
_MCP_HEALTH = {"ready": "healthy", "running": "healthy", "unhealthy": "unhealthy"}
_TENANT_METADATA = '{"provisioned_by":"agentic-loadkit"}'
_PLANS = ("starter", "team", "business", "enterprise")
_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")


@dataclass(frozen=True)
class RowContext:
    """What every builder of one run shares: seed, namespace, pools and the tenant layout."""

    seed: int
    namespace: str
    pools: Pools
    offsets: Mapping[str, Sequence[int]]  # per table: n_tenants + 1 cumulative row counts
    tenant_slots: Sequence[int]  # per tenant: its creation time slot
    password_hashes: Sequence[str]
    inactive_threshold: int  # share of inactive users, in units of 2**-20
    deleted_threshold: int  # share of soft-deleted agents, in units of 2**-20
    extended: frozenset[str] = frozenset()  # tables whose rows carry EXTRA_FIELDS too
    v1: V1Catalogue | None = None  # set when any table is extended

    def tenant_pick(self, t: int) -> int:
        """Which company names tenant ``t`` (a permutation: distinct for the first 256 tenants)."""
        return (t * 167 + table_key(self.seed, "tenant_names")) & 255

    def tenant_name(self, t: int) -> str:
        name = self.pools.companies[self.tenant_pick(t)]
        return name if t < 256 else f"{name} {t // 256 + 1}"

    def tenant_host(self, t: int) -> str:
        """The tenant's DNS label (a company slug: shared by some tenants, never used alone as a key)."""
        return self.pools.company_slugs[self.tenant_pick(t)]

    def tenant_slug(self, t: int) -> str:
        return f"{self.tenant_host(t)}-{self.namespace}-{t}"


class _LazyIds:
    """Ids of a block too large to cache, computed on access."""

    def __init__(self, fn: IdFn, start: int) -> None:
        self._fn, self._start = fn, start

    def __getitem__(self, local: int) -> object:
        return self._fn(self._start + local)


class IdAccess:
    """Primary keys for one stream: blocks of own ids, and each tenant's block of referenced ids.

    Referenced blocks (a tenant's users, say) are cached for the current tenant only, and
    only up to ``cache_limit`` ids, so memory stays bounded at any scale.
    """

    def __init__(self, fns: Mapping[str, IdFn], block: BlockFn, offsets: Mapping[str, Sequence[int]],
                 cache_limit: int = 65_536) -> None:
        self.fns, self.block, self._offsets, self._limit = fns, block, offsets, cache_limit
        self._cache: dict[str, tuple[int, Sequence[object]]] = {}

    def tenant_block(self, table: str, t: int) -> Sequence[object]:
        """Ids of tenant ``t``'s rows of ``table``, indexed from 0 within the tenant."""
        cached = self._cache.get(table)
        if cached is not None and cached[0] == t:
            return cached[1]
        lo, hi = self._offsets[table][t], self._offsets[table][t + 1]
        ids = self.block(table, lo, hi) if hi - lo <= self._limit else _LazyIds(self.fns[table], lo)
        self._cache[table] = (t, ids)  # type: ignore[assignment]
        return ids  # type: ignore[return-value]


def segments(offsets: Sequence[int], lo: int, hi: int) -> Iterator[tuple[int, int, int]]:
    """(tenant, start, stop) for each tenant block that overlaps rows ``[lo, hi)``."""
    t = bisect_right(offsets, lo) - 1
    while lo < hi:
        stop = min(offsets[t + 1], hi)
        if stop > lo:
            yield t, lo, stop
        lo = stop
        t += 1


def _tenant_extras(ctx: RowContext, t: int, h: int, region: int, created: datetime) -> tuple:
    pools = ctx.pools
    plan = _PLANS_V1[(h >> 10) & 15]
    f, l_ = (h >> 14) & 255, (h >> 22) & 255
    settings = json.dumps({"region": _REGIONS[region], "timezone": "UTC",
                           "features": {"rag": bool(h >> 8 & 1) or plan in ("pro", "enterprise"),
                                        "mcp": bool(h >> 9 & 1) or plan == "enterprise"}}, separators=(",", ":"))
    email = f"{pools.first_ascii[f]}.{pools.last_ascii[l_]}@{ctx.namespace}.{ctx.tenant_host(t)}.{EMAIL_DOMAIN}"
    return (plan, email, f"{pools.first_names[f]} {pools.last_names[l_]}", *PLAN_LIMITS[plan], settings,
            _TENANT_METADATA, created)


def _tenants(ctx: RowContext, lo: int, hi: int, acc: IdAccess, canon: list[int]) -> list[tuple]:
    key, times = table_key(ctx.seed, "tenants"), time_table()
    ext = "tenants" in ctx.extended
    rows = []
    for t, tid in zip(range(lo, hi), acc.block("tenants", lo, hi), strict=True):
        h = row_hash(key, t)
        plan, region = h & 3, (h >> 2) % len(_REGIONS)
        settings = json.dumps({
            "plan": _PLANS[plan], "region": _REGIONS[region], "max_users": (250, 1000, 5000, 50000)[plan],
            "features": {"rag": bool(h >> 8 & 1) or plan >= 2, "mcp": bool(h >> 9 & 1) or plan == 3},
        }, separators=(",", ":"))
        slot = ctx.tenant_slots[t]
        row: tuple = (tid, ctx.tenant_name(t), ctx.tenant_slug(t), settings, "active", times[slot])
        if ext:
            row += _tenant_extras(ctx, t, h, region, times[slot])
        rows.append(row)
        canon.extend((t, ctx.tenant_pick(t), h & 1023, slot))
    return rows


def _users(ctx: RowContext, lo: int, hi: int, acc: IdAccess, canon: list[int]) -> list[tuple]:
    pools = ctx.pools
    firsts, fa, lasts, la = pools.first_names, pools.first_ascii, pools.last_names, pools.last_ascii
    hashes, n_slots = ctx.password_hashes, len(ctx.password_hashes)
    threshold, ns = ctx.inactive_threshold, ctx.namespace
    key, times = table_key(ctx.seed, "users"), time_table()
    offsets = ctx.offsets["users"]
    ext = "users" in ctx.extended
    rows: list[tuple] = []
    append, extend = rows.append, canon.extend
    for t, a, b in segments(offsets, lo, hi):
        tid, first_row = acc.fns["tenants"](t), offsets[t]
        domain = f"@{ns}.{ctx.tenant_host(t)}.{EMAIL_DOMAIN}"
        ts = ctx.tenant_slots[t]
        room = TIME_SLOTS - ts
        for uid, i in zip(acc.block("users", a, b), range(a, b), strict=True):
            z = (key + i * _GOLDEN) & _M
            z = ((z ^ (z >> 30)) * _C1) & _M
            z = ((z ^ (z >> 27)) * _C2) & _M
            h = z ^ (z >> 31)
            f, l_ = h & 255, (h >> 8) & 255
            slot = ((h >> 16) & 0xFFFF) % n_slots
            if i == first_row:  # every tenant keeps an active admin
                role, active = 0, True
            else:
                r = (h >> 32) & 127
                role = 0 if r < 10 else (2 if r < 30 else 1)
                active = ((h >> 40) & 0xFFFFF) >= threshold
            created = ts + ((second_hash(h) >> 48) * room >> 16)
            local = f"{fa[f]}.{la[l_]}.{i}"
            row: tuple = (uid, tid, local + domain, f"{local}.{ns}", hashes[slot], f"{firsts[f]} {lasts[l_]}",
                   _ROLES[role], active, "active" if active else "inactive", times[created])
            if ext:
                row += (firsts[f], lasts[l_], _ROLES_V1[role], active and (h >> 60) != 0, times[created])
            append(row)
            extend((t, f, l_, slot, role, active, created))
    return rows


def _agents(ctx: RowContext, lo: int, hi: int, acc: IdAccess, canon: list[int]) -> list[tuple]:
    pools = ctx.pools
    names, slugs, descs = pools.agent_names, pools.agent_slugs, pools.agent_descriptions
    bodies = pools.prompt_bodies
    models, max_tokens, temps = _MODELS, _MAX_TOKENS, _TEMPERATURES
    threshold = ctx.deleted_threshold
    key, times = table_key(ctx.seed, "agents"), time_table()
    offsets, user_offsets = ctx.offsets["agents"], ctx.offsets["users"]
    extras = _agent_extras(ctx) if "agents" in ctx.extended else None
    rows: list[tuple] = []
    append, extend = rows.append, canon.extend
    for t, a, b in segments(offsets, lo, hi):
        tid, number_base = acc.fns["tenants"](t), offsets[t] - 1
        creators = acc.tenant_block("users", t)
        u0, un = user_offsets[t], user_offsets[t + 1] - user_offsets[t]
        intro = f", an AI assistant working for {ctx.tenant_name(t)}.\n\n"
        ts = ctx.tenant_slots[t]
        room = TIME_SLOTS - _AGENT_HEADROOM - ts  # updates and deletes come after creation, before ANCHOR
        for aid, i in zip(acc.block("agents", a, b), range(a, b), strict=True):
            z = (key + i * _GOLDEN) & _M
            z = ((z ^ (z >> 30)) * _C1) & _M
            z = ((z ^ (z >> 27)) * _C2) & _M
            h = z ^ (z >> 31)
            z = ((h ^ (h >> 29)) * _C1) & _M
            h2 = z ^ (z >> 32)
            n, d, p, m = h & 1023, (h >> 10) & 1023, (h >> 20) & 2047, (h >> 31) & 127
            tp, mt = (h >> 38) & 127, (h >> 45) & 63
            c = ((h2 >> 47) * un) >> 17
            created = ts + (((h2 >> 20) & 0xFFFF) * room >> 16)
            updated = created + ((h2 >> 36) & 0x7FF) if (h >> 51) & 1 else created
            name = names[n]
            provider, model = models[m]
            if (h2 & 0xFFFFF) < threshold:
                deleted = updated + 1 + ((h >> 52) & 0x3FF)
                row: tuple = (aid, tid, creators[c], name, f"{slugs[n]}-{i - number_base}", descs[d],
                       f"You are {name}{intro}{bodies[p]}", provider, model, temps[tp], max_tokens[mt],
                       "deleted", times[created], times[updated], times[deleted])
            else:
                deleted = -1
                row = (aid, tid, creators[c], name, f"{slugs[n]}-{i - number_base}", descs[d],
                       f"You are {name}{intro}{bodies[p]}", provider, model, temps[tp], max_tokens[mt],
                       "active", times[created], times[updated], None)
            append(row if extras is None else row + extras(h2, deleted >= 0))
            extend((t, u0 + c, n, d, p, m, tp, mt, created, updated, deleted))
    return rows


def _agent_extras(ctx: RowContext) -> Callable[[int, bool], tuple]:
    """The v1 fields of an agent, from a third draw of its row (``h2`` is its second)."""
    cat = ctx.v1
    assert cat is not None
    caps, tools, tags, configs, meta, versions = (cat.capabilities, cat.agent_tools, cat.tags, cat.agent_configs,
                                                  cat.metadata, cat.versions)

    def extras(h2: int, deleted: bool) -> tuple:
        z = ((h2 ^ (h2 >> 31)) * _C2) & _M
        h3 = z ^ (z >> 29)
        status = "archived" if deleted else ("inactive" if (h3 & 31) < 3 else "active")
        return (status, caps[(h3 >> 5) & 63], tools[(h3 >> 11) & 63], _AGENT_TIMEOUTS[(h3 >> 17) & 7],
                _AGENT_ITERATIONS[(h3 >> 20) & 7], ((h3 >> 23) & 3) != 0, versions[(h3 >> 25) & 7],
                tags[(h3 >> 28) & 63], configs[(h3 >> 34) & 63], meta[(h3 >> 40) & 63])

    return extras


def _quoted(q: object) -> str:
    return f'"{q}"' if type(q) is str and q.isascii() and q.isprintable() and '"' not in q and "\\" not in q \
        else _json_id(q)


def _json_id(value: object) -> str:
    """An id as a JSON value: a number for integer keys, a string otherwise (UUID text needs no escaping)."""
    if type(value) is str:
        if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            return f'"{value}"'
        return json.dumps(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(str(value))


def _workflows(ctx: RowContext, lo: int, hi: int, acc: IdAccess, canon: list[int]) -> list[tuple]:
    """Workflows whose DAG steps name agents of the same tenant, skipping soft-deleted agents.

    Step ``s`` of workflow ``i`` draws agent ``(z_s * n_agents) >> 64`` of its tenant's block,
    ``z_s`` a chain of draws from the row's hash; a soft-deleted pick moves to the next agent
    of the block (at most 8 tries).
    """
    pools = ctx.pools
    names, slugs, descs = pools.workflow_names, pools.workflow_slugs, pools.workflow_descriptions
    shapes = pools.workflow_shapes
    key, times = table_key(ctx.seed, "workflows"), time_table()
    agent_key, threshold = table_key(ctx.seed, "agents"), ctx.deleted_threshold
    offsets, user_offsets = ctx.offsets["workflows"], ctx.offsets["users"]
    agent_offsets = ctx.offsets["agents"]
    steps_for = _workflow_steps(ctx, acc) if "workflows" in ctx.extended else None
    rows = []
    for t, a, b in segments(offsets, lo, hi):
        tid, number_base = acc.fns["tenants"](t), offsets[t] - 1
        creators = acc.tenant_block("users", t)
        u0, un = user_offsets[t], user_offsets[t + 1] - user_offsets[t]
        a0, na = agent_offsets[t], agent_offsets[t + 1] - agent_offsets[t]
        agent_ids = acc.tenant_block("agents", t) if na else ()
        probes = min(na, 8)
        ts = ctx.tenant_slots[t]
        room = TIME_SLOTS - ts
        for wid, i in zip(acc.block("workflows", a, b), range(a, b), strict=True):
            h = row_hash(key, i)
            n, d, s = h & 255, (h >> 8) & 255, (h >> 16) & 255
            c = ((h >> 24) & 0xFFFFFF) * un >> 24
            created = ts + ((h >> 48) * room >> 16)
            shape = shapes[s]
            if na and shape.agent_slots:
                refs, quoted = [], []
                z = h
                for _ in range(shape.agent_slots):
                    z = ((z ^ (z >> 29)) * _C1) & _M
                    z ^= z >> 32
                    local = (z * na) >> 64
                    # inline agent_deleted(second_hash(row_hash(agent_key, a0 + local))): skip deleted agents
                    for _ in range(probes):
                        x = (agent_key + (a0 + local) * _GOLDEN) & _M
                        x = ((x ^ (x >> 30)) * _C1) & _M
                        x = ((x ^ (x >> 27)) * _C2) & _M
                        x ^= x >> 31
                        x = ((x ^ (x >> 29)) * _C1) & _M
                        if ((x ^ (x >> 32)) & 0xFFFFF) >= threshold:
                            break
                        local = local + 1 if local + 1 < na else 0
                    refs.append(a0 + local)
                    q = agent_ids[local]
                    quoted.append(f'"{q}"' if type(q) is str and q.isascii() and q.isprintable()
                                  and '"' not in q and "\\" not in q else _json_id(q))
                definition = shape.template % tuple(quoted)
            else:
                definition, refs = shape.agentless, []
            row: tuple = (wid, tid, creators[c], names[n], f"{slugs[n]}-{i - number_base}", descs[d],
                   definition, "active", times[created])
            if steps_for is not None:
                row += steps_for(t, h, s, quoted if na and shape.agent_slots else None, times[created])
            rows.append(row)
            canon.extend((t, u0 + c, n, d, s, created, len(refs), *refs))
    return rows


def _workflow_steps(ctx: RowContext, acc: IdAccess) -> Callable[[int, int, int, list[str] | None, datetime], tuple]:
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
                sid = _quoted(servers[local])
                fill.append(sid if sid[0] == '"' else f'"{sid}"')
                fill.append(f'"{tools[(z >> 8) % len(tools)]}"')
            steps = template.text % tuple(fill)
        else:
            steps = template.text % ()
        h3 = mix64(h ^ 0x2545F4914F6CDD1D)
        status = _WF_STATUS[h3 & 15]
        if status == "draft":
            runs = failures = 0
        else:
            runs = (h3 >> 4) % 2000
            failures = runs * ((h3 >> 16) & 15) // 100
        return (steps, triggers[(h3 >> 29) & 63], versions[(h3 >> 35) & 7], _WF_TIMEOUTS[(h3 >> 20) & 7],
                _WF_RETRIES[(h3 >> 23) & 7], _WF_STRATEGIES[(h3 >> 26) & 7], status, tags[(h3 >> 38) & 63],
                categories[(h3 >> 44) & 7], meta[(h3 >> 47) & 63], runs, runs - failures, failures, created)

    return extras


def _collections(ctx: RowContext, lo: int, hi: int, acc: IdAccess, canon: list[int]) -> list[tuple]:
    pools = ctx.pools
    names, slugs, descs = pools.collection_names, pools.collection_slugs, pools.collection_descriptions
    key, times = table_key(ctx.seed, "collections"), time_table()
    offsets = ctx.offsets["collections"]
    ext = "collections" in ctx.extended
    meta = ctx.v1.metadata if ctx.v1 is not None else ()
    rows = []
    for t, a, b in segments(offsets, lo, hi):
        tid, number_base = acc.fns["tenants"](t), offsets[t] - 1
        ts = ctx.tenant_slots[t]
        room = TIME_SLOTS - ts
        for cid, i in zip(acc.block("collections", a, b), range(a, b), strict=True):
            h = row_hash(key, i)
            n, d, e = h & 511, (h >> 9) & 511, (h >> 18) & 63
            created = ts + ((h >> 48) * room >> 16)
            row: tuple = (cid, tid, names[n], f"{slugs[n]}-{i - number_base}", descs[d], _EMBEDDINGS[e],
                   "active", times[created])
            if ext:
                h2 = second_hash(h)
                model, dims = _EMBEDDINGS_V1[h2 & 63]
                size = _CHUNK_SIZES[(h2 >> 6) & 7]
                row += (model, dims, size, size * _CHUNK_OVERLAP_PERCENT[(h2 >> 9) & 7] // 100,
                        _VISIBILITY[(h2 >> 12) & 15], 0, 0, _COLLECTION_CONFIGS[(h2 >> 16) & 15],
                        meta[(h2 >> 20) & 63], times[created])
            rows.append(row)
            canon.extend((t, n, d, e, created))
    return rows


def _mcp_servers(ctx: RowContext, lo: int, hi: int, acc: IdAccess, canon: list[int]) -> list[tuple]:
    entries = ctx.pools.mcp_entries
    key, times = table_key(ctx.seed, "mcp_servers"), time_table()
    offsets = ctx.offsets["mcp_servers"]
    ext = "mcp_servers" in ctx.extended
    cat = ctx.v1
    rows = []
    for t, a, b in segments(offsets, lo, hi):
        tid, number_base = acc.fns["tenants"](t), offsets[t] - 1
        host = ctx.tenant_host(t)
        ts = ctx.tenant_slots[t]
        room = TIME_SLOTS - ts
        for mid, i in zip(acc.block("mcp_servers", a, b), range(a, b), strict=True):
            h = row_hash(key, i)
            e = entries[h & 255]
            created = ts + ((h >> 48) * room >> 16)
            name = f"{e.name}-{i - number_base}"
            if e.transport == "stdio":
                url = None
            else:
                url = e.fixed_url or f"{e.url_scheme_service}.{host}.{EMAIL_DOMAIN}{e.url_path}"
            row: tuple = (mid, tid, name, name, e.transport, url, e.command, e.args_json, e.config_json,
                   "active", times[created])
            if ext:
                assert cat is not None
                row += _mcp_extras(cat, h, host, times[created])
            rows.append(row)
            canon.extend((t, h & 255, created))
    return rows


def _mcp_extras(cat: V1Catalogue, h: int, host: str, created: datetime) -> tuple:
    v = cat.mcp[h & 255]
    if v.server_type == "stdio":
        config = v.config_json
    else:
        config = f'{{"url":"{v.fixed_url or f"{v.url_scheme}.{host}{v.url_suffix}"}"{v.config_json}'
    h2 = second_hash(h)
    status = _MCP_STATUS[h2 & 15]
    total = 0 if status == "inactive" else (h2 >> 4) % 5000
    failed = total * ((h2 >> 17) & 7) // 100
    return (v.server_type, config, v.description, status, cat.versions[(h2 >> 24) & 7], v.category, v.author,
            v.tools_json, "[]", "[]", v.env_json, _MCP_HEALTH.get(status), _VISIBILITY[(h2 >> 20) & 15],
            total, total - failed, failed, cat.metadata[(h2 >> 27) & 63], created)


_BUILDERS: Mapping[str, Callable[[RowContext, int, int, IdAccess, list[int]], list[tuple]]] = {
    "tenants": _tenants,
    "users": _users,
    "agents": _agents,
    "workflows": _workflows,
    "collections": _collections,
    "mcp_servers": _mcp_servers,
}


def build_rows(ctx: RowContext, table: str, lo: int, hi: int, acc: IdAccess, canon: list[int]) -> list[tuple]:
    """Rows ``[lo, hi)`` of ``table`` in ``TABLE_COLUMNS[table]`` order, followed by ``EXTRA_FIELDS[table]``
    when the table is extended; canonical ints go to ``canon``."""
    return _BUILDERS[table](ctx, lo, hi, acc, canon)
