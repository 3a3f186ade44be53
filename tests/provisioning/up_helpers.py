"""Helpers shared by the ``provision up`` tests (imported, not a conftest: the folder is shared)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from agentic_loadkit.provisioning.progress import ProgressCallback, null_progress
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.provisioning.up.provision import UpResult, UpSettings, provision_up
from dbtools import fetch_async as fetch
from dbtools import fetchval, run

TABLES = ("tenants", "users", "agents", "workflows", "collections", "mcp_servers")

# A trigger that makes the n-th agent row fail (or sleep): errors and interruptions mid-load.
FAIL_TRIGGER = """
CREATE SEQUENCE IF NOT EXISTS {schema}.agent_rows_seen;
CREATE OR REPLACE FUNCTION {schema}.agent_row_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('{schema}.agent_rows_seen') = {nth} THEN
    {action};
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER agent_row_gate BEFORE INSERT ON {schema}.agents
  FOR EACH ROW EXECUTE FUNCTION {schema}.agent_row_gate();
"""


def install_gate(target: DatabaseTarget, nth: int, action: str, schema: str = "public") -> None:
    run(sql(target, FAIL_TRIGGER.format(schema=schema, nth=nth, action=action)))


def remove_gate(target: DatabaseTarget, schema: str = "public") -> None:
    run(
        sql(
            target,
            f"DROP TRIGGER IF EXISTS agent_row_gate ON {schema}.agents; "
            f"DROP SEQUENCE IF EXISTS {schema}.agent_rows_seen;",
        )
    )


def up(
    target: DatabaseTarget, state_dir: Path, progress: ProgressCallback = null_progress, **kw: Any
) -> UpResult:
    kw.setdefault("bcrypt_cost", 4)
    return run(provision_up(UpSettings(database_url=target.url, state_dir=state_dir, **kw), progress))


async def sql(target: DatabaseTarget, statement: str, *args: Any) -> None:
    conn = await asyncpg.connect(target.asyncpg_url)
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.close()


def run_counts(
    target: DatabaseTarget,
    run_id: str,
    schema: str = "public",
    names: dict[str, tuple[str, str]] | None = None,
) -> dict[str, int]:
    """Rows per contract table that belong to the run's tenants (per the ledger)."""
    names = names or {t: (t, "id" if t == "tenants" else "tenant_id") for t in TABLES}
    out = {}
    for table, (name, column) in names.items():
        out[table] = int(
            fetchval(
                target,
                f'SELECT count(*) FROM "{schema}"."{name}" WHERE "{column}"::text IN '
                "(SELECT tenant_id FROM provisioning.run_tenants WHERE run_id = $1)",
                run_id,
            )
        )
    return out


def total_rows(target: DatabaseTarget, schema: str = "public") -> dict[str, int]:
    return {t: int(fetchval(target, f'SELECT count(*) FROM "{schema}"."{t}"')) for t in TABLES}


def run_row(target: DatabaseTarget, run_id: str) -> asyncpg.Record:
    return run(fetch(target, "SELECT * FROM provisioning.runs WHERE run_id = $1", run_id))[0]
