"""Row builders that write binary COPY tuples directly: the rows of ``rows``, already encoded.

Why: the values of a row come from pools built once, so most of a row's bytes are known
before the run.  Each pool value is encoded once per stream into its field (4-byte length
+ payload, ``copyfields``' encoding for the live column's kind); a row is then a handful of
lookups into those tuples, and a batch one ``bytes.join``, where the tuple path builds a
Python tuple per row that asyncpg then encodes value by value.  Only what differs per row
is encoded per row: the row's own id, a numbered slug, the agent's system prompt (written
as its pooled pieces behind one length) and a workflow's definition.

A builder draws exactly as its tuple twin in ``rows`` does and appends the same canonical
ints, so the fingerprint does not depend on the path; the tests compare the two paths'
bytes.  ``encoded_builder`` returns None when it cannot write a table: no builder for it,
extended rows, a column kind it does not take, or a pool value the kind's encoder refuses;
the caller then streams tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from ..target.copyfields import I8, LEN, NULL, PG_EPOCH, US, field_for_kind, fields_of
from .rowbase import (
    AGENT_HEADROOM,
    C1,
    C2,
    EMBEDDINGS,
    EPOCH,
    GOLDEN,
    MASK64,
    MAX_TOKENS,
    MODELS,
    TABLE_COLUMNS,
    TEMPERATURES,
    TIME_SLOTS,
    IdAccess,
    RowContext,
    row_hash,
    segments,
    table_key,
    time_offsets,
    time_table,
)
from .rows import workflow_agents

__all__ = ["EncodedBuilder", "encoded_builder"]

#: Rows ``[lo, hi)`` of one table as binary COPY tuples (no header), canonical ints appended to ``canon``
#: (the ``IdAccess`` must give keys of the Python type the builder was made for).
EncodedBuilder = Callable[[int, int, IdAccess, list[int]], bytes]
Field = Callable[[Any], bytes]
#: What precedes the UTF-8 of a string in each kind's payload (jsonb's version byte).
_TEXT_PREFIX = {"text": b"", "json": b"", "jsonb": b"\x01"}
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, AttributeError)


class _Unsupported(Exception):
    """A column this path cannot write; the caller streams tuples instead."""


class _Columns:
    """The live kinds of one table's columns, by field name, and the fields of values in those kinds."""

    def __init__(self, table: str, kinds: Sequence[str]) -> None:
        self.kinds = dict(zip(TABLE_COLUMNS[table], kinds, strict=True))

    def field(self, name: str) -> Field:
        encode = field_for_kind(self.kinds[name])
        if encode is None:
            raise _Unsupported(name)
        return encode

    def pool(self, name: str, values: Sequence[Any]) -> tuple[bytes, ...]:
        """Each value's field (None → NULL), made once."""
        encode = self.field(name)
        try:
            return tuple(NULL if v is None else encode(v) for v in values)
        except _ENCODE_ERRORS as exc:
            raise _Unsupported(name) from exc

    def times(self, name: str) -> tuple[bytes, ...]:
        return _time_fields(self.kinds[name])

    def text(self, name: str) -> None:
        """Require a plain-text kind for a column whose strings are assembled per row."""
        if self.kinds[name] != "text":
            raise _Unsupported(name)


@lru_cache(maxsize=4)
def _time_fields(kind: str) -> tuple[bytes, ...]:
    """The time table's fields in a column of ``kind``: for timestamptz straight from the seconds
    (microseconds since 2000-01-01 UTC, as the encoder computes them), else through the encoder."""
    if kind == "timestamptz":
        base, pack = (EPOCH - PG_EPOCH) // US, I8.pack
        return tuple(pack(8, base + s * 1_000_000) for s in time_offsets())
    encode = field_for_kind(kind)
    if encode is None:
        raise _Unsupported(kind)
    try:
        return tuple(encode(t) for t in time_table())
    except _ENCODE_ERRORS as exc:
        raise _Unsupported(kind) from exc


class _Ids:
    """Fields of primary keys: own blocks, and each tenant's block of referenced keys, encoded once."""

    def __init__(self, ctx: RowContext, columns: _Columns, id_columns: dict[str, str], acc: IdAccess) -> None:
        self._offsets = ctx.offsets
        self._encode = {table: columns.field(name) for table, name in id_columns.items()}
        self._kinds = {table: columns.kinds[name] for table, name in id_columns.items()}
        self._cache: dict[str, tuple[int, Sequence[bytes]]] = {}
        for table in id_columns:  # every key of a table is of one Python type: the first tells
            try:
                self.one(acc, table, 0)
            except _ENCODE_ERRORS as exc:
                raise _Unsupported(table) from exc

    def block(self, acc: IdAccess, table: str, lo: int, hi: int) -> list[bytes]:
        try:
            return fields_of(self._kinds[table], acc.block(table, lo, hi))
        except _ENCODE_ERRORS as exc:
            raise _Unsupported(table) from exc

    def one(self, acc: IdAccess, table: str, index: int) -> bytes:
        return self._encode[table](acc.fns[table](index))

    def tenant_block(self, acc: IdAccess, table: str, t: int) -> Sequence[bytes]:
        cached = self._cache.get(table)
        if cached is None or cached[0] != t:
            offsets = self._offsets[table]
            cached = (t, self.block(acc, table, offsets[t], offsets[t + 1]))
            self._cache[table] = cached
        return cached[1]


def _numbered(values: Sequence[str]) -> tuple[tuple[bytes, int], ...]:
    """``value + "-"`` as UTF-8 and its length: the head of a numbered slug."""
    return tuple((b, len(b)) for b in (f"{v}-".encode() for v in values))


def _agents(ctx: RowContext, kinds: Sequence[str], acc: IdAccess) -> EncodedBuilder:
    cols, pools = _Columns("agents", kinds), ctx.pools
    ids = _Ids(ctx, cols, {"agents": "id", "tenants": "tenant_id", "users": "created_by"}, acc)
    names, descs = cols.pool("name", pools.agent_names), cols.pool("description", pools.agent_descriptions)
    cols.text("slug")
    cols.text("system_prompt")
    slugs = _numbered(pools.agent_slugs)
    name_text = tuple(n.encode() for n in pools.agent_names)
    bodies = tuple(b.encode() for b in pools.prompt_bodies)
    models = tuple(p + m for p, m in zip(cols.pool("model_provider", [p for p, _ in MODELS]),
                                         cols.pool("model_name", [m for _, m in MODELS]), strict=True))
    temps, max_tokens = cols.pool("temperature", TEMPERATURES), cols.pool("max_tokens", MAX_TOKENS)
    active, deleted_status = cols.pool("status", ("active", "deleted"))
    created_f, updated_f, deleted_f = cols.times("created_at"), cols.times("updated_at"), cols.times("deleted_at")
    threshold, key = ctx.deleted_threshold, table_key(ctx.seed, "agents")
    offsets, user_offsets = ctx.offsets["agents"], ctx.offsets["users"]
    head, you_are, lp = len(TABLE_COLUMNS["agents"]).to_bytes(2, "big"), b"You are ", LEN.pack

    def build(lo: int, hi: int, acc: IdAccess, canon: list[int]) -> bytes:
        out: list[bytes] = []
        add, extend = out.extend, canon.extend
        for t, a, b in segments(offsets, lo, hi):
            tid, number_base = ids.one(acc, "tenants", t), offsets[t] - 1
            creators = ids.tenant_block(acc, "users", t)
            u0, un = user_offsets[t], user_offsets[t + 1] - user_offsets[t]
            intro = f", an AI assistant working for {ctx.tenant_name(t)}.\n\n".encode()
            fixed = 8 + len(intro)
            ts = ctx.tenant_slots[t]
            room = TIME_SLOTS - AGENT_HEADROOM - ts
            for aid, i in zip(ids.block(acc, "agents", a, b), range(a, b), strict=True):
                z = (key + i * GOLDEN) & MASK64
                z = ((z ^ (z >> 30)) * C1) & MASK64
                z = ((z ^ (z >> 27)) * C2) & MASK64
                h = z ^ (z >> 31)
                z = ((h ^ (h >> 29)) * C1) & MASK64
                h2 = z ^ (z >> 32)
                n, d, p, m = h & 1023, (h >> 10) & 1023, (h >> 20) & 2047, (h >> 31) & 127
                tp, mt = (h >> 38) & 127, (h >> 45) & 63
                c = ((h2 >> 47) * un) >> 17
                created = ts + (((h2 >> 20) & 0xFFFF) * room >> 16)
                updated = created + ((h2 >> 36) & 0x7FF) if (h >> 51) & 1 else created
                slug, slug_len = slugs[n]
                number = str(i - number_base).encode()
                name, body = name_text[n], bodies[p]
                if (h2 & 0xFFFFF) < threshold:
                    deleted = updated + 1 + ((h >> 52) & 0x3FF)
                    status, deleted_at = deleted_status, deleted_f[deleted]
                else:
                    deleted, status, deleted_at = -1, active, NULL
                add((head, aid, tid, creators[c], names[n], lp(slug_len + len(number)), slug, number, descs[d],
                     lp(fixed + len(name) + len(body)), you_are, name, intro, body, models[m], temps[tp],
                     max_tokens[mt], status, created_f[created], updated_f[updated], deleted_at))
                extend((t, u0 + c, n, d, p, m, tp, mt, created, updated, deleted))
        return b"".join(out)

    return build


def _workflows(ctx: RowContext, kinds: Sequence[str], acc: IdAccess) -> EncodedBuilder:
    cols, pools = _Columns("workflows", kinds), ctx.pools
    ids = _Ids(ctx, cols, {"workflows": "id", "tenants": "tenant_id", "users": "created_by"}, acc)
    names, descs = cols.pool("name", pools.workflow_names), cols.pool("description", pools.workflow_descriptions)
    cols.text("slug")
    slugs = _numbered(pools.workflow_slugs)
    prefix = _TEXT_PREFIX.get(cols.kinds["definition"])
    if prefix is None:
        raise _Unsupported("definition")
    shapes = pools.workflow_shapes
    agentless = cols.pool("definition", [s.agentless for s in shapes])
    (active,), created_f = cols.pool("status", ("active",)), cols.times("created_at")
    key, picks = table_key(ctx.seed, "workflows"), (table_key(ctx.seed, "agents"), ctx.deleted_threshold)
    offsets, user_offsets, agent_offsets = ctx.offsets["workflows"], ctx.offsets["users"], ctx.offsets["agents"]
    head, lp = len(TABLE_COLUMNS["workflows"]).to_bytes(2, "big"), LEN.pack

    def build(lo: int, hi: int, acc: IdAccess, canon: list[int]) -> bytes:
        out: list[bytes] = []
        add = out.extend
        for t, a, b in segments(offsets, lo, hi):
            tid, number_base = ids.one(acc, "tenants", t), offsets[t] - 1
            creators = ids.tenant_block(acc, "users", t)
            u0, un = user_offsets[t], user_offsets[t + 1] - user_offsets[t]
            a0, na = agent_offsets[t], agent_offsets[t + 1] - agent_offsets[t]
            agent_ids = acc.tenant_block("agents", t) if na else ()
            ts = ctx.tenant_slots[t]
            room = TIME_SLOTS - ts
            for wid, i in zip(ids.block(acc, "workflows", a, b), range(a, b), strict=True):
                h = row_hash(key, i)
                n, d, s = h & 255, (h >> 8) & 255, (h >> 16) & 255
                c = ((h >> 24) & 0xFFFFFF) * un >> 24
                created = ts + ((h >> 48) * room >> 16)
                shape = shapes[s]
                if na and shape.agent_slots:
                    refs, quoted = workflow_agents(h, shape.agent_slots, picks, a0, na, agent_ids)
                    text = (shape.template % tuple(quoted)).encode()
                    definition = lp(len(prefix) + len(text))
                else:
                    definition, text, refs = agentless[s], b"", []
                slug, slug_len = slugs[n]
                number = str(i - number_base).encode()
                add((head, wid, tid, creators[c], names[n], lp(slug_len + len(number)), slug, number, descs[d],
                     definition, text and prefix, text, active, created_f[created]))
                canon.extend((t, u0 + c, n, d, s, created, len(refs), *refs))
        return b"".join(out)

    return build


def _collections(ctx: RowContext, kinds: Sequence[str], acc: IdAccess) -> EncodedBuilder:
    cols, pools = _Columns("collections", kinds), ctx.pools
    ids = _Ids(ctx, cols, {"collections": "id", "tenants": "tenant_id"}, acc)
    names = cols.pool("name", pools.collection_names)
    descs = cols.pool("description", pools.collection_descriptions)
    cols.text("slug")
    slugs = _numbered(pools.collection_slugs)
    embeddings = cols.pool("embedding_model", EMBEDDINGS)
    (active,), created_f = cols.pool("status", ("active",)), cols.times("created_at")
    key, offsets = table_key(ctx.seed, "collections"), ctx.offsets["collections"]
    head, lp = len(TABLE_COLUMNS["collections"]).to_bytes(2, "big"), LEN.pack

    def build(lo: int, hi: int, acc: IdAccess, canon: list[int]) -> bytes:
        out: list[bytes] = []
        add = out.extend
        for t, a, b in segments(offsets, lo, hi):
            tid, number_base = ids.one(acc, "tenants", t), offsets[t] - 1
            ts = ctx.tenant_slots[t]
            room = TIME_SLOTS - ts
            for cid, i in zip(ids.block(acc, "collections", a, b), range(a, b), strict=True):
                h = row_hash(key, i)
                n, d, e = h & 511, (h >> 9) & 511, (h >> 18) & 63
                created = ts + ((h >> 48) * room >> 16)
                slug, slug_len = slugs[n]
                number = str(i - number_base).encode()
                add((head, cid, tid, names[n], lp(slug_len + len(number)), slug, number, descs[d], embeddings[e],
                     active, created_f[created]))
                canon.extend((t, n, d, e, created))
        return b"".join(out)

    return build


_BUILDERS: dict[str, Callable[[RowContext, Sequence[str], IdAccess], EncodedBuilder]] = {
    "agents": _agents,
    "workflows": _workflows,
    "collections": _collections,
}


def encoded_builder(ctx: RowContext, table: str, kinds: Sequence[str], acc: IdAccess) -> EncodedBuilder | None:
    """A builder of ``table``'s rows as COPY tuples for columns of these kinds (``TABLE_COLUMNS`` order),
    or None when this path cannot write them (see the module's docstring)."""
    make = _BUILDERS.get(table)
    if make is None or table in ctx.extended or len(kinds) != len(TABLE_COLUMNS[table]):
        return None
    try:
        return make(ctx, kinds, acc)
    except _Unsupported:
        return None
