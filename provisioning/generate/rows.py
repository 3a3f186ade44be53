"""Row builders: pure functions of (seed, table, index) that turn pooled values into COPY-ready rows.

Each builder makes the rows ``[lo, hi)`` of one table as tuples (the draws, context and
choice tables are ``rowbase``'s; the v1 dialect's extra fields are ``rowsv1``'s).  Every
reference (an agent's creator, a workflow step's agent) is drawn from the SAME tenant's
block of the referenced table, so references never cross tenants.

Alongside the rows a builder appends the row's *canonical* form to ``canon`` (a list of
ints): tenant index, referenced row indices, the pool entries picked and the time slots —
the row with ids, the namespace and password hashes abstracted.  The fingerprint hashes
that (``fingerprint.py``); the pooled strings themselves are covered by ``Pools.digest``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from .pools import EMAIL_DOMAIN
from .rowbase import (
    AGENT_HEADROOM,
    C1,
    C2,
    CHUNK_OVERLAP_PERCENT,
    CHUNK_SIZES,
    COLLECTION_CONFIGS,
    EMBEDDINGS,
    EMBEDDINGS_V1,
    GOLDEN,
    MASK64,
    MAX_TOKENS,
    MODELS,
    PLANS,
    REGIONS,
    ROLES,
    ROLES_V1,
    TEMPERATURES,
    TIME_SLOTS,
    VISIBILITY,
    IdAccess,
    RowContext,
    json_id,
    row_hash,
    second_hash,
    segments,
    table_key,
    time_table,
)
from .rowsv1 import agent_extras, mcp_extras, tenant_extras, workflow_extras

__all__ = ["build_rows", "workflow_agents"]




def _tenants(ctx: RowContext, lo: int, hi: int, acc: IdAccess, canon: list[int]) -> list[tuple]:
    key, times = table_key(ctx.seed, "tenants"), time_table()
    ext = "tenants" in ctx.extended
    rows = []
    for t, tid in zip(range(lo, hi), acc.block("tenants", lo, hi), strict=True):
        h = row_hash(key, t)
        plan, region = h & 3, (h >> 2) % len(REGIONS)
        settings = json.dumps({
            "plan": PLANS[plan], "region": REGIONS[region], "max_users": (250, 1000, 5000, 50000)[plan],
            "features": {"rag": bool(h >> 8 & 1) or plan >= 2, "mcp": bool(h >> 9 & 1) or plan == 3},
        }, separators=(",", ":"))
        slot = ctx.tenant_slots[t]
        row: tuple = (tid, ctx.tenant_name(t), ctx.tenant_slug(t), settings, "active", times[slot])
        if ext:
            row += tenant_extras(ctx, t, h, region, times[slot])
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
            z = (key + i * GOLDEN) & MASK64
            z = ((z ^ (z >> 30)) * C1) & MASK64
            z = ((z ^ (z >> 27)) * C2) & MASK64
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
                   ROLES[role], active, "active" if active else "inactive", times[created])
            if ext:
                row += (firsts[f], lasts[l_], ROLES_V1[role], active and (h >> 60) != 0, times[created])
            append(row)
            extend((t, f, l_, slot, role, active, created))
    return rows


def _agents(ctx: RowContext, lo: int, hi: int, acc: IdAccess, canon: list[int]) -> list[tuple]:
    pools = ctx.pools
    names, slugs, descs = pools.agent_names, pools.agent_slugs, pools.agent_descriptions
    bodies = pools.prompt_bodies
    models, max_tokens, temps = MODELS, MAX_TOKENS, TEMPERATURES
    threshold = ctx.deleted_threshold
    key, times = table_key(ctx.seed, "agents"), time_table()
    offsets, user_offsets = ctx.offsets["agents"], ctx.offsets["users"]
    extras = agent_extras(ctx) if "agents" in ctx.extended else None
    rows: list[tuple] = []
    append, extend = rows.append, canon.extend
    for t, a, b in segments(offsets, lo, hi):
        tid, number_base = acc.fns["tenants"](t), offsets[t] - 1
        creators = acc.tenant_block("users", t)
        u0, un = user_offsets[t], user_offsets[t + 1] - user_offsets[t]
        intro = f", an AI assistant working for {ctx.tenant_name(t)}.\n\n"
        ts = ctx.tenant_slots[t]
        room = TIME_SLOTS - AGENT_HEADROOM - ts  # updates and deletes come after creation, before ANCHOR
        for aid, i in zip(acc.block("agents", a, b), range(a, b), strict=True):
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





def workflow_agents(h: int, slots: int, picks: tuple[int, int], a0: int, na: int,
                    agent_ids: Sequence[object]) -> tuple[list[int], list[str]]:
    """The agents of a workflow's DAG steps: (row indices, ids as JSON values).

    Step ``s`` of a workflow whose hash is ``h`` draws agent ``(z_s * na) >> 64`` of its tenant's
    block (rows ``a0 ..``), ``z_s`` a chain of draws from ``h``; a soft-deleted pick (``picks``:
    the agents' table key and deletion threshold) moves to the next agent of the block (at most 8 tries).
    """
    agent_key, threshold = picks
    probes = min(na, 8)
    refs, quoted = [], []
    z = h
    for _ in range(slots):
        z = ((z ^ (z >> 29)) * C1) & MASK64
        z ^= z >> 32
        local = (z * na) >> 64
        # inline agent_deleted(second_hash(row_hash(agent_key, a0 + local))): skip deleted agents
        for _ in range(probes):
            x = (agent_key + (a0 + local) * GOLDEN) & MASK64
            x = ((x ^ (x >> 30)) * C1) & MASK64
            x = ((x ^ (x >> 27)) * C2) & MASK64
            x ^= x >> 31
            x = ((x ^ (x >> 29)) * C1) & MASK64
            if ((x ^ (x >> 32)) & 0xFFFFF) >= threshold:
                break
            local = local + 1 if local + 1 < na else 0
        refs.append(a0 + local)
        q = agent_ids[local]
        quoted.append(f'"{q}"' if type(q) is str and q.isascii() and q.isprintable()
                      and '"' not in q and "\\" not in q else json_id(q))
    return refs, quoted


def _workflows(ctx: RowContext, lo: int, hi: int, acc: IdAccess, canon: list[int]) -> list[tuple]:
    """Workflows whose DAG steps name agents of the same tenant, skipping soft-deleted agents.

    The steps' agents are ``workflow_agents``'s picks.
    """
    pools = ctx.pools
    names, slugs, descs = pools.workflow_names, pools.workflow_slugs, pools.workflow_descriptions
    shapes = pools.workflow_shapes
    key, times = table_key(ctx.seed, "workflows"), time_table()
    picks = (table_key(ctx.seed, "agents"), ctx.deleted_threshold)
    offsets, user_offsets = ctx.offsets["workflows"], ctx.offsets["users"]
    agent_offsets = ctx.offsets["agents"]
    steps_for = workflow_extras(ctx, acc) if "workflows" in ctx.extended else None
    rows = []
    for t, a, b in segments(offsets, lo, hi):
        tid, number_base = acc.fns["tenants"](t), offsets[t] - 1
        creators = acc.tenant_block("users", t)
        u0, un = user_offsets[t], user_offsets[t + 1] - user_offsets[t]
        a0, na = agent_offsets[t], agent_offsets[t + 1] - agent_offsets[t]
        agent_ids = acc.tenant_block("agents", t) if na else ()
        ts = ctx.tenant_slots[t]
        room = TIME_SLOTS - ts
        for wid, i in zip(acc.block("workflows", a, b), range(a, b), strict=True):
            h = row_hash(key, i)
            n, d, s = h & 255, (h >> 8) & 255, (h >> 16) & 255
            c = ((h >> 24) & 0xFFFFFF) * un >> 24
            created = ts + ((h >> 48) * room >> 16)
            shape = shapes[s]
            if na and shape.agent_slots:
                refs, quoted = workflow_agents(h, shape.agent_slots, picks, a0, na, agent_ids)
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
            row: tuple = (cid, tid, names[n], f"{slugs[n]}-{i - number_base}", descs[d], EMBEDDINGS[e],
                   "active", times[created])
            if ext:
                h2 = second_hash(h)
                model, dims = EMBEDDINGS_V1[h2 & 63]
                size = CHUNK_SIZES[(h2 >> 6) & 7]
                row += (model, dims, size, size * CHUNK_OVERLAP_PERCENT[(h2 >> 9) & 7] // 100,
                        VISIBILITY[(h2 >> 12) & 15], 0, 0, COLLECTION_CONFIGS[(h2 >> 16) & 15],
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
                row += mcp_extras(cat, h, host, times[created])
            rows.append(row)
            canon.extend((t, h & 255, created))
    return rows



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

