"""Foreign keys of the loaded tables checked once, set-based, after the load instead of per row.

Why: PostgreSQL checks a foreign key with an AFTER ROW trigger that runs one lookup per
inserted row (``RI_FKey_check_ins``): in a bulk load of tables with foreign keys those
triggers take a large share of the server's CPU.  pg_restore and
logical replication avoid the same cost by loading with the triggers off; the toolkit
does what they do, and then proves the result with one anti-join per foreign key over
the run's rows, which costs milliseconds.

``session_replication_role = replica`` turns off, for the loading sessions only, every
trigger that is not marked ``ENABLE ALWAYS``/``REPLICA``.  That is safe only when the
foreign-key triggers are the only triggers on the loaded tables, so ``plan_fk_checks``
takes the fast path only when:

- every enabled trigger on the loaded tables is one of PostgreSQL's own referential
  integrity triggers (a platform trigger, a deferrable unique constraint's recheck or a
  constraint trigger would otherwise silently not fire);
- no foreign key of theirs is ``MATCH FULL`` (the check below is ``MATCH SIMPLE``'s);
- the role may set the parameter (superuser, or ``GRANT SET ON PARAMETER
  session_replication_role`` on PostgreSQL 15+).

Otherwise the load keeps the per-row triggers (``auto`` says why in a progress event).
The run's parents are its own tenants and users, committed before any child row and
protected from ``provision down`` by the run's advisory lock, so the row locks the
triggers would have taken protect nothing the run needs.  A violation found afterwards
fails the run, which deletes its rows like any other failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..errors import DatabaseRefused, ProvisioningFailed
from ..schema.reflect import TablePlan
from ..target.identifiers import qualified_name, quote_identifier

__all__ = [
    "FK_CHECK_MODES",
    "REPLICA_ROLE",
    "REPLICA_ROLE_LOCAL",
    "FkCheckPlan",
    "ForeignKey",
    "plan_fk_checks",
    "verify_foreign_keys",
]


FK_CHECK_MODES: tuple[str, ...] = ("auto", "per-row", "after-load")
REPLICA_ROLE = "SET session_replication_role = replica"
REPLICA_ROLE_LOCAL = "SET LOCAL session_replication_role = replica"  # until the end of the transaction

# PostgreSQL's own referential-integrity trigger functions (child and parent side).
_RI_FUNCTIONS = (
    "RI_FKey_check_ins", "RI_FKey_check_upd",
    "RI_FKey_noaction_del", "RI_FKey_noaction_upd", "RI_FKey_restrict_del", "RI_FKey_restrict_upd",
    "RI_FKey_cascade_del", "RI_FKey_cascade_upd", "RI_FKey_setnull_del", "RI_FKey_setnull_upd",
    "RI_FKey_setdefault_del", "RI_FKey_setdefault_upd",
)  # fmt: skip


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key of a loaded table: ``child_columns`` of ``table`` refer to ``parent``."""

    table: str  # contract name of the child table
    name: str
    child_columns: tuple[str, ...]
    parent_schema: str
    parent_name: str
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class FkCheckPlan:
    """How the load checks foreign keys: ``after_load`` (set-based) or per row, and why."""

    after_load: bool
    keys: tuple[ForeignKey, ...] = ()
    reason: str = ""  # why the per-row triggers stay on (empty when after_load)

    @property
    def mode(self) -> str:
        return "after-load" if self.after_load else "per-row"


async def _foreign_keys(conn: asyncpg.Connection, plans: Mapping[str, TablePlan]) -> tuple[list[ForeignKey], str]:
    """The loaded tables' foreign keys, and the first reason (if any) they cannot be checked after the load."""
    by_name = {(p.schema, p.name): t for t, p in plans.items()}
    rows = await conn.fetch(
        """
        SELECT cn.nspname AS schema, c.relname AS name, k.conname, k.confmatchtype::text AS match,
               pn.nspname AS parent_schema, pc.relname AS parent_name,
               ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, o)
                     JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o) AS cols,
               ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, o)
                     JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.o) AS pcols
        FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
        JOIN pg_class pc ON pc.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE k.contype = 'f' AND (cn.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
        ORDER BY 1, 2, 3
        """,
        [s for s, _ in by_name],
        [n for _, n in by_name],
    )
    keys, reason = [], ""
    for r in rows:
        if r["match"] == "f" and len(r["cols"]) > 1 and not reason:
            reason = f"foreign key {r['conname']} of {r['schema']}.{r['name']} is MATCH FULL"
        keys.append(
            ForeignKey(
                table=by_name[(r["schema"], r["name"])],
                name=r["conname"],
                child_columns=tuple(r["cols"]),
                parent_schema=r["parent_schema"],
                parent_name=r["parent_name"],
                parent_columns=tuple(r["pcols"]),
            )
        )
    return keys, reason


async def _other_trigger(conn: asyncpg.Connection, plans: Mapping[str, TablePlan]) -> str:
    """The first enabled trigger on a loaded table that is not a referential-integrity one, or ''."""
    row = await conn.fetchrow(
        """
        SELECT n.nspname, c.relname, t.tgname
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_proc f ON f.oid = t.tgfoid
        WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest($1::text[], $2::text[]))
          AND t.tgenabled <> 'D' AND NOT (t.tgisinternal AND f.proname = ANY($3::text[]))
        ORDER BY 1, 2, 3 LIMIT 1
        """,
        [p.schema for p in plans.values()],
        [p.name for p in plans.values()],
        list(_RI_FUNCTIONS),
    )
    return "" if row is None else f"table {row['nspname']}.{row['relname']} has trigger {row['tgname']}"


async def _may_set_replica(conn: asyncpg.Connection) -> bool:
    try:
        await conn.execute(REPLICA_ROLE)
    except asyncpg.InsufficientPrivilegeError:
        return False
    await conn.execute("RESET session_replication_role")
    return True


async def plan_fk_checks(
    conn: asyncpg.Connection, plans: Mapping[str, TablePlan], mode: str = "auto"
) -> FkCheckPlan:
    """Decide how the load checks foreign keys (see the module docstring); ``conn`` is idle.

    ``after-load`` raises ``DatabaseRefused`` when the fast path is not possible;
    ``auto`` falls back to the per-row triggers and gives the reason.
    """
    if mode not in FK_CHECK_MODES:
        raise ValueError(f"mode must be one of {FK_CHECK_MODES}, not {mode!r}")
    if mode == "per-row":
        return FkCheckPlan(False, reason="asked for (--foreign-key-checks per-row)")
    keys, reason = await _foreign_keys(conn, plans)
    if not keys:
        return FkCheckPlan(False, reason="the loaded tables have no foreign keys")
    reason = reason or await _other_trigger(conn, plans)
    if not reason and not await _may_set_replica(conn):
        reason = "the role may not set session_replication_role (superuser or GRANT SET ON PARAMETER needed)"
    if reason:
        if mode == "after-load":
            raise DatabaseRefused(f"Foreign keys cannot be checked after the load: {reason}.")
        return FkCheckPlan(False, reason=reason)
    return FkCheckPlan(True, tuple(keys))


def _violations_sql(key: ForeignKey, plan: TablePlan) -> str:
    child = plan.qualified
    parent = qualified_name(key.parent_schema, key.parent_name)
    cols = [quote_identifier(c) for c in key.child_columns]
    pcols = [quote_identifier(c) for c in key.parent_columns]
    not_null = " AND ".join(f"c.{c} IS NOT NULL" for c in cols)
    join = " AND ".join(f"p.{p} = c.{c}" for c, p in zip(cols, pcols, strict=True))
    return (
        f"SELECT count(*) FROM {child} AS c WHERE c.{quote_identifier(plan.tenant_column)} "
        f"= ANY($1::{plan.tenant_array_type}) AND {not_null} "
        f"AND NOT EXISTS (SELECT 1 FROM {parent} AS p WHERE {join})"
    )


async def verify_foreign_keys(
    conn: asyncpg.Connection, checks: FkCheckPlan, plans: Mapping[str, TablePlan], tenant_ids: Sequence[Any]
) -> None:
    """Count the run's rows that break a foreign key; raise ``ProvisioningFailed`` naming the first.

    Runs on ``conn`` in whatever transaction it is in (the load's own one when the load
    is a single transaction).
    """
    for key in checks.keys:
        plan = plans[key.table]
        bad = await conn.fetchval(_violations_sql(key, plan), list(tenant_ids))
        if bad:
            raise ProvisioningFailed(
                f"{bad} row(s) of {plan.schema}.{plan.name} break foreign key {key.name} "
                f"(checked after the load)",
                table=key.table,
            )
