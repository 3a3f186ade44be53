"""What every row builder shares: the columns, the hash draws, the time table, the choice tables, the context.

Every random choice of row ``i`` comes from splitmix64 of ``(table key, i)`` — a few
integer operations, no ``random.Random`` and no Faker per row — so any row can be rebuilt
alone and generation stays fast.  Rows belong to tenants in contiguous index blocks
(``offsets``); ``IdAccess`` gives each tenant's block of referenced ids, so references
never cross tenants.

Timestamps come from a fixed table of 65,536 instants between ``EPOCH`` and ``ANCHOR``
(seconds-exact, jittered): never ``now()``, and a lookup instead of a datetime per row.
The tuple builders (``rows``) and the binary-COPY builders (``rowbytes``) both draw from
what is defined here, so the two make the same rows.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from ..schema.concepts import CONTRACT_TABLES, VOCABULARIES
from .pools import EMBEDDING_MODELS, MAX_TOKENS_CHOICES, MODEL_CATALOGUE, Pools
from .scales import allocate
from .v1values import COLLECTION_EMBEDDINGS, V1Catalogue

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
    "json_id",
    "mix64",
    "row_hash",
    "second_hash",
    "segments",
    "table_key",
    "time_offsets",
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
SLOT_SECONDS = int((ANCHOR - EPOCH).total_seconds()) // TIME_SLOTS
#: Every tenant exists for at least ~180 days before ANCHOR.
TENANT_SLOT_RANGE = TIME_SLOTS - (180 * 86_400) // SLOT_SECONDS
#: Slots kept free after an agent's creation for its update (< 2,048) and deletion (< 1,025 more).
AGENT_HEADROOM = 2048 + 1025

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
C1 = 0xBF58476D1CE4E5B9
C2 = 0x94D049BB133111EB
_SALTS = {name: (k + 1) * 0x632BE59BD9B4E019 & MASK64
          for k, name in enumerate((*CONTRACT_TABLES, "refs", "tenant_created", "tenant_names"))}


def mix64(x: int) -> int:
    """splitmix64 of ``x``: a cheap, well-mixed 64-bit hash."""
    z = (x + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * C1) & MASK64
    z = ((z ^ (z >> 27)) * C2) & MASK64
    return z ^ (z >> 31)


def row_hash(key: int, index: int) -> int:
    """Row ``index``'s 64-bit draw under ``key`` (what the builders compute inline, for speed)."""
    return mix64(key + (index - 1) * GOLDEN)


def second_hash(h: int) -> int:
    """A second 64-bit draw derived from the first (one more multiply-xorshift round)."""
    z = ((h ^ (h >> 29)) * C1) & MASK64
    return z ^ (z >> 32)


def table_key(seed: int, table: str) -> int:
    """The per-(seed, table) key of the row draws."""
    return mix64((seed & MASK64) ^ _SALTS[table])


def agent_deleted(h2: int, threshold: int) -> bool:
    """Whether an agent whose second draw is ``h2`` is soft-deleted (the builder's own test)."""
    return (h2 & 0xFFFFF) < threshold


@lru_cache(maxsize=1)
def time_table() -> tuple[datetime, ...]:
    """The 65,536 instants rows take their timestamps from (ascending, seed-independent)."""
    return tuple(EPOCH + timedelta(seconds=s) for s in time_offsets())


@lru_cache(maxsize=1)
def time_offsets() -> tuple[int, ...]:
    """``time_table()`` as whole seconds after ``EPOCH``."""
    step = SLOT_SECONDS
    return tuple(k * step + mix64(k ^ 0x7157) % step for k in range(TIME_SLOTS))


def _weighted_table(weights: Sequence[int], size: int) -> tuple[int, ...]:
    """A ``size``-entry lookup table of choice indices, in proportion to the weights."""
    parts = allocate(size, [float(w) for w in weights], minimum=1)
    return tuple(k for k, n in enumerate(parts) for _ in range(n))


MODELS = tuple(MODEL_CATALOGUE[k][:2] for k in _weighted_table([w for *_, w in MODEL_CATALOGUE], 128))
MAX_TOKENS = tuple(MAX_TOKENS_CHOICES[k][0] for k in _weighted_table([w for _, w in MAX_TOKENS_CHOICES], 64))
EMBEDDINGS = tuple(EMBEDDING_MODELS[k][0] for k in _weighted_table([w for _, w in EMBEDDING_MODELS], 64))
#: Temperatures (two decimals): mostly 0.7, the rest spread over 0.00..1.00.
TEMPERATURES = tuple(x / 100 for x in (70,) * 80 + (
    0, 0, 5, 10, 15, 20, 20, 20, 25, 30, 30, 30, 35, 40, 45, 50, 50, 50, 50, 55, 60, 60, 65, 75,
    80, 80, 80, 85, 90, 90, 95, 100, 100, 30, 50, 20, 0, 100, 60, 40, 30, 50, 20, 80, 90, 10, 70, 70))
ROLES = VOCABULARIES[("users", "role")]
ROLES_V1 = VOCABULARIES[("users", "role_v1")]
PLANS_V1 = tuple(p for p, n in zip(VOCABULARIES[("tenants", "plan_type")], (6, 5, 3, 2), strict=True)
                  for _ in range(n))
EMBEDDINGS_V1 = tuple(COLLECTION_EMBEDDINGS[k][:2]
                       for k in _weighted_table([w for *_, w in COLLECTION_EMBEDDINGS], 64))
AGENT_TIMEOUTS = (60, 120, 300, 300, 300, 600, 900, 1800)
AGENT_ITERATIONS = (5, 10, 10, 10, 15, 20, 25, 50)
WF_TIMEOUTS = (300, 600, 900, 1800, 3600, 3600, 3600, 7200)
WF_RETRIES = (0, 1, 2, 3, 3, 3, 5, 10)
WF_STRATEGIES = ("exponential",) * 5 + ("linear", "linear", "none")
WF_STATUS = ("draft", "draft", "archived") + ("active",) * 13
CHUNK_SIZES = (256, 512, 512, 512, 800, 1000, 1024, 2048)
CHUNK_OVERLAP_PERCENT = (0, 10, 10, 12, 15, 20, 20, 25)
VISIBILITY = ("private",) * 11 + ("shared",) * 3 + ("public",) * 2
COLLECTION_CONFIGS = tuple(
    json.dumps({"distance_metric": "cosine", "top_k": k, "similarity_threshold": s}, separators=(",", ":"))
    for k in (3, 5, 8, 10) for s in (0.5, 0.6, 0.7, 0.75)
)
MCP_STATUS = ("inactive",) * 6 + ("ready",) * 4 + ("running",) * 4 + ("unhealthy", "stopped")
MCP_HEALTH = {"ready": "healthy", "running": "healthy", "unhealthy": "unhealthy"}
TENANT_METADATA = '{"provisioned_by":"agentic-loadkit"}'
PLANS = ("starter", "team", "business", "enterprise")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")


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


def json_id(value: object) -> str:
    """An id as a JSON value: a number for integer keys, a string otherwise (UUID text needs no escaping)."""
    if type(value) is str:
        if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            return f'"{value}"'
        return json.dumps(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return json.dumps(str(value))


def segments(offsets: Sequence[int], lo: int, hi: int) -> Iterator[tuple[int, int, int]]:
    """(tenant, start, stop) for each tenant block that overlaps rows ``[lo, hi)``."""
    t = bisect_right(offsets, lo) - 1
    while lo < hi:
        stop = min(offsets[t + 1], hi)
        if stop > lo:
            yield t, lo, stop
        lo = stop
        t += 1
