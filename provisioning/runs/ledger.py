"""The run ledger: what each run made, kept in the target database itself.

The ledger lives in its own schema (``provisioning`` by default) so that it travels with
the data it describes: ``provision down`` trusts only the ledger, never name patterns,
and still works when the state directory is gone.

Tables:

- ``runs``: one row per run (id, label, scale, seed, status, counts, fingerprint,
  toolkit version, times, the platform table names it used, error);
- ``run_tenants``: the run's tenant ids (as text, so UUID and integer keys both fit).

Both tables carry ``LEDGER_MARKER`` as their comment, so that a ``runs`` table someone else
keeps in a schema of that name is never taken for the ledger (``ledger_state`` refuses it);
a ledger made before the marker is recognised by its exact columns and marked by ``up``.

Statuses: ``provisioning`` → ``ready`` | ``failed``; then ``tearing_down`` → ``removed``.
A run in ``provisioning`` or ``tearing_down`` whose advisory lock nobody holds was
left by a crashed process (see ``run_is_live``).

Locks are session-level advisory locks on the connection doing the work:
``(LOCK_CLASS, hashtext(run_id))`` per run.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import asyncpg

from ..errors import ConcurrentOperation, RunNotFound, SchemaMismatch

__all__ = [
    "DEFAULT_LEDGER_SCHEMA",
    "LEDGER_FORMAT",
    "LEDGER_MARKER",
    "LOCK_CLASS",
    "RunRecord",
    "RunStatus",
    "acquire_run_lock",
    "create_run",
    "ensure_ledger",
    "find_run",
    "forget_removed_runs",
    "forget_run",
    "latest_run",
    "ledger_exists",
    "ledger_state",
    "list_runs",
    "new_run_id",
    "record_tenants",
    "release_run_lock",
    "run_is_live",
    "run_tenant_ids",
    "set_status",
]

DEFAULT_LEDGER_SCHEMA = "provisioning"
LOCK_CLASS = 0x4C4B  # "LK": the toolkit's advisory-lock class id
RunStatus = Literal["provisioning", "ready", "failed", "tearing_down", "removed"]
_ALPHABET = string.ascii_lowercase + string.digits


def new_run_id() -> str:
    """A short random token; also the run's namespace in emails and slugs (``r`` + 7 chars)."""
    return "r" + "".join(secrets.choice(_ALPHABET) for _ in range(7))


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    label: str | None
    scale: str
    seed: int
    status: RunStatus
    counts: dict[str, int]
    fingerprint: str | None
    toolkit_version: str
    created_at: datetime
    updated_at: datetime
    error: str | None = None
    tenant_count: int = 0
    settings: dict[str, Any] = field(default_factory=dict)


def _q(schema: str) -> str:
    # the ledger schema name is validated to a plain identifier before use
    if not schema.replace("_", "").isalnum() or schema[0].isdigit():
        raise ValueError(f"invalid ledger schema name {schema!r}")
    return f'"{schema}"'


LEDGER_FORMAT = 1
LEDGER_MARKER = f"agentic-loadkit run ledger, format {LEDGER_FORMAT}"  # COMMENT ON both tables
# the exact columns of each ledger table (format_type spelling): how a ledger made before the
# marker existed is recognised (and then marked); anything else in the schema is someone else's
_COLUMNS = {
    "runs": {
        "run_id": "text", "label": "text", "scale": "text", "seed": "bigint", "status": "text",
        "counts": "jsonb", "fingerprint": "text", "toolkit_version": "text", "settings": "jsonb",
        "error": "text", "created_at": "timestamp with time zone", "updated_at": "timestamp with time zone",
        "ready_at": "timestamp with time zone", "removed_at": "timestamp with time zone",
    },
    "run_tenants": {"run_id": "text", "tenant_id": "text"},
}
LedgerState = Literal["absent", "ours", "unmarked"]


async def _table_state(conn: asyncpg.Connection, schema: str, table: str) -> str:
    """'absent', 'ours' (marked), 'unmarked' (our exact columns, no marker) or 'foreign'."""
    row = await conn.fetchrow(
        "SELECT c.oid::bigint AS oid, c.relkind::text AS kind, obj_description(c.oid, 'pg_class') AS comment "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
        schema, table,
    )
    if row is None:
        return "absent"
    if row["kind"] != "r":
        return "foreign"
    if row["comment"] == LEDGER_MARKER:
        return "ours"
    if row["comment"]:
        return "foreign"
    cols = await conn.fetch(
        "SELECT attname::text AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
        "WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped",
        row["oid"],
    )
    return "unmarked" if {r["name"]: r["type"] for r in cols} == _COLUMNS[table] else "foreign"


async def ledger_state(conn: asyncpg.Connection, schema: str = DEFAULT_LEDGER_SCHEMA) -> LedgerState:
    """Whether ``schema`` holds this toolkit's ledger; ``SchemaMismatch`` when it holds tables of
    the same names that are not (someone else's ``runs``): those are never read, written or deleted."""
    states = {t: await _table_state(conn, schema, t) for t in _COLUMNS}
    if all(v == "absent" for v in states.values()):
        return "absent"
    if all(v == "ours" for v in states.values()):
        return "ours"
    if all(v in ("ours", "unmarked") for v in states.values()):
        return "unmarked"
    odd = next(t for t, v in states.items() if v in ("foreign", "absent"))
    what = "lacks the table" if states[odd] == "absent" else "has a table"
    raise SchemaMismatch(
        f"The schema {schema!r} {what} {odd!r} that is not this toolkit's run ledger (no '{LEDGER_MARKER}' "
        "marker and not its columns); nothing was read, written or deleted there: drop or rename that schema's "
        "tables if they are a broken ledger, or keep the ledger elsewhere.",
        table=f"{schema}.{odd}",
    )


async def ledger_exists(conn: asyncpg.Connection, schema: str = DEFAULT_LEDGER_SCHEMA) -> bool:
    """True when this toolkit's ledger is there (marked, or unmarked from before the marker)."""
    return await ledger_state(conn, schema) != "absent"


async def ensure_ledger(conn: asyncpg.Connection, schema: str = DEFAULT_LEDGER_SCHEMA) -> None:
    """Create the ledger schema and tables if missing, or mark an unmarked one of ours (idempotent,
    safe under concurrency); refuse tables of those names that are not the ledger."""
    s = _q(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", LOCK_CLASS)
        state = await ledger_state(conn, schema)
        if state == "ours":
            return
        if state == "unmarked":  # made by a version before the marker: recognised by its columns
            with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():  # a role that does not own the tables may use them unmarked
                    await _mark(conn, s)
            return
        await conn.execute(
            f"""
            CREATE SCHEMA IF NOT EXISTS {s};
            CREATE TABLE {s}.runs (
                run_id          text PRIMARY KEY,
                label           text,
                scale           text NOT NULL,
                seed            bigint NOT NULL,
                status          text NOT NULL CHECK (status IN
                                  ('provisioning','ready','failed','tearing_down','removed')),
                counts          jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                fingerprint     text,
                toolkit_version text NOT NULL,
                settings        jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                error           text,
                created_at      timestamptz NOT NULL DEFAULT now(),
                updated_at      timestamptz NOT NULL DEFAULT now(),
                ready_at        timestamptz,
                removed_at      timestamptz
            );
            CREATE TABLE {s}.run_tenants (
                run_id    text NOT NULL REFERENCES {s}.runs(run_id) ON DELETE CASCADE,
                tenant_id text NOT NULL,
                PRIMARY KEY (run_id, tenant_id)
            );
            CREATE INDEX IF NOT EXISTS run_tenants_tenant_idx ON {s}.run_tenants (tenant_id);
            """
        )
        await _mark(conn, s)


async def _mark(conn: asyncpg.Connection, s: str) -> None:
    for table in _COLUMNS:
        await conn.execute(f"COMMENT ON TABLE {s}.{table} IS '{LEDGER_MARKER}'")


async def create_run(
    conn: asyncpg.Connection,
    *,
    run_id: str,
    scale: str,
    seed: int,
    counts: dict[str, int],
    toolkit_version: str,
    label: str | None = None,
    settings: dict[str, Any] | None = None,
    schema: str = DEFAULT_LEDGER_SCHEMA,
) -> None:
    """Insert the run in status ``provisioning`` (commit it before writing platform rows)."""
    await conn.execute(
        f"INSERT INTO {_q(schema)}.runs (run_id, label, scale, seed, status, counts, toolkit_version, settings) "
        "VALUES ($1, $2, $3, $4, 'provisioning', $5::jsonb, $6, $7::jsonb)",
        run_id, label, scale, seed, json.dumps(counts), toolkit_version, json.dumps(settings or {}),
    )


async def record_tenants(
    conn: asyncpg.Connection, run_id: str, tenant_ids: Iterable[Any], schema: str = DEFAULT_LEDGER_SCHEMA
) -> None:
    """Record tenant ids for a run; must commit before (or with) any row of those tenants."""
    await conn.executemany(
        f"INSERT INTO {_q(schema)}.run_tenants (run_id, tenant_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        [(run_id, str(t)) for t in tenant_ids],
    )


async def set_status(
    conn: asyncpg.Connection,
    run_id: str,
    status: RunStatus,
    *,
    fingerprint: str | None = None,
    counts: dict[str, int] | None = None,
    error: str | None = None,
    schema: str = DEFAULT_LEDGER_SCHEMA,
) -> None:
    await conn.execute(
        f"""UPDATE {_q(schema)}.runs SET status = $2, updated_at = now(),
               fingerprint = COALESCE($3, fingerprint),
               counts = COALESCE($4::jsonb, counts),
               error = CASE WHEN $2 IN ('failed') THEN $5 ELSE error END,
               ready_at = CASE WHEN $2 = 'ready' THEN now() ELSE ready_at END,
               removed_at = CASE WHEN $2 = 'removed' THEN now() ELSE removed_at END
             WHERE run_id = $1""",
        run_id, status, fingerprint, json.dumps(counts) if counts is not None else None, error,
    )


def _record(row: asyncpg.Record) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"], label=row["label"], scale=row["scale"], seed=row["seed"], status=row["status"],
        counts=json.loads(row["counts"]) if isinstance(row["counts"], str) else dict(row["counts"]),
        fingerprint=row["fingerprint"], toolkit_version=row["toolkit_version"], created_at=row["created_at"],
        updated_at=row["updated_at"], error=row["error"], tenant_count=row["tenant_count"],
        settings=json.loads(row["settings"]) if isinstance(row["settings"], str) else dict(row["settings"]),
    )


_SELECT = """SELECT r.*, (SELECT count(*) FROM {s}.run_tenants t WHERE t.run_id = r.run_id) AS tenant_count
             FROM {s}.runs r"""


async def find_run(conn: asyncpg.Connection, run_id: str, schema: str = DEFAULT_LEDGER_SCHEMA) -> RunRecord:
    """The run, or ``RunNotFound`` when the ledger (or the run) does not exist."""
    if not await ledger_exists(conn, schema):
        raise RunNotFound(f"This database has no run ledger, so it knows no run {run_id!r}.", run_id=run_id)
    row = await conn.fetchrow(_SELECT.format(s=_q(schema)) + " WHERE r.run_id = $1", run_id)
    if row is None:
        raise RunNotFound(f"The ledger of this database knows no run {run_id!r}.", run_id=run_id)
    return _record(row)


async def list_runs(
    conn: asyncpg.Connection, *, statuses: Sequence[str] | None = None, schema: str = DEFAULT_LEDGER_SCHEMA
) -> list[RunRecord]:
    """All runs, newest first (empty when there is no ledger)."""
    if not await ledger_exists(conn, schema):
        return []
    sql = _SELECT.format(s=_q(schema))
    if statuses:
        rows = await conn.fetch(sql + " WHERE r.status = ANY($1::text[]) ORDER BY r.created_at DESC", list(statuses))
    else:
        rows = await conn.fetch(sql + " ORDER BY r.created_at DESC")
    return [_record(r) for r in rows]


async def latest_run(
    conn: asyncpg.Connection, *, statuses: Sequence[str] | None = None, schema: str = DEFAULT_LEDGER_SCHEMA
) -> RunRecord:
    runs = await list_runs(conn, statuses=statuses, schema=schema)
    if not runs:
        which = f" in status {', '.join(statuses)}" if statuses else ""
        raise RunNotFound(f"The ledger of this database has no run{which}.")
    return runs[0]


async def run_tenant_ids(conn: asyncpg.Connection, run_id: str, schema: str = DEFAULT_LEDGER_SCHEMA) -> list[str]:
    rows = await conn.fetch(
        f"SELECT tenant_id FROM {_q(schema)}.run_tenants WHERE run_id = $1 ORDER BY tenant_id", run_id
    )
    return [r["tenant_id"] for r in rows]


async def forget_run(conn: asyncpg.Connection, run_id: str, schema: str = DEFAULT_LEDGER_SCHEMA) -> None:
    """Delete a run's history (only for runs already ``removed``; callers check)."""
    await conn.execute(f"DELETE FROM {_q(schema)}.runs WHERE run_id = $1", run_id)


async def forget_removed_runs(conn: asyncpg.Connection, schema: str = DEFAULT_LEDGER_SCHEMA) -> list[str]:
    """Delete the history of every ``removed`` run (``runs --prune``); returns their ids."""
    if not await ledger_exists(conn, schema):
        return []
    rows = await conn.fetch(
        f"DELETE FROM {_q(schema)}.runs WHERE status = 'removed' RETURNING run_id"
    )
    return sorted(r["run_id"] for r in rows)


async def acquire_run_lock(conn: asyncpg.Connection, run_id: str, *, wait: bool = False) -> None:
    """Take the run's session-level advisory lock on ``conn``, or refuse if another process has it."""
    if wait:
        await conn.execute("SELECT pg_advisory_lock($1, hashtext($2))", LOCK_CLASS, run_id)
        return
    got = await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_CLASS, run_id)
    if not got:
        raise ConcurrentOperation(
            f"Another provision process is working on run {run_id!r} right now; wait for it to finish and try again.",
            run_id=run_id,
        )


async def release_run_lock(conn: asyncpg.Connection, run_id: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1, hashtext($2))", LOCK_CLASS, run_id)


async def run_is_live(conn: asyncpg.Connection, run_id: str) -> bool:
    """True when some session holds the run's advisory lock (an ``up`` or ``down`` is working on it)."""
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                   AND classid = $1::int::oid AND objid = hashtext($2)::oid AND objsubid = 2)""",
            LOCK_CLASS, run_id,
        )
    )
