"""``provision down`` through the CLI: summaries, JSON, dry runs, exit codes, and up → down end to end."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from agentic_loadkit.cli import app as cli
from agentic_loadkit.provisioning.down.teardown import DownSettings, forget_history
from agentic_loadkit.provisioning.errors import InputError
from agentic_loadkit.provisioning.runs import ledger
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from teardown_helpers import (
    TABLES,
    checksum,
    execute,
    fetchval,
    foreign_conversation,
    owned_counts,
    residue,
    run_status,
    seed_foreign,
    seed_run,
)
from typer.testing import CliRunner

runner = CliRunner()


def invoke(state: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(cli.app, ["--state-dir", str(state), *args], env=env)


def one_error_line(res: Any, code: int, *, after_progress: bool = False) -> str:
    """The one-sentence error (the only stderr line, or the last one after progress lines)."""
    assert res.exit_code == code, res.output
    lines = res.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:] and "Traceback" not in res.output, res.stderr
    assert after_progress or len(lines) == 1, res.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def foreign(platform_db: DatabaseTarget) -> list[str]:
    return seed_foreign(platform_db, tag="rcliothr", tenants=2)


def test_down_json_then_nothing_to_do(platform_db: DatabaseTarget, foreign: list[str], tmp_path: Path) -> None:
    before = checksum(platform_db)
    seeded = seed_run(platform_db, tenants=2)
    (tmp_path / "runs" / seeded.run_id).mkdir(parents=True)
    res = invoke(tmp_path, "down", seeded.run_id, "--database-url", platform_db.url, "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    (r,) = data["runs"]
    assert r["run_id"] == seeded.run_id and r["removed"] and r["rows"] == seeded.rows
    assert r["total_rows"] == sum(seeded.rows.values()) and r["credentials_removed"]
    assert data["nothing_to_do"] is False and res.stderr == ""
    assert residue(platform_db, seeded.tenant_ids) == {} and checksum(platform_db) == before
    assert not (tmp_path / "runs" / seeded.run_id).exists()

    again = invoke(tmp_path, "down", seeded.run_id, "--database-url", platform_db.url)
    assert again.exit_code == 0, again.output
    assert again.stdout.strip() == f"nothing to do: run {seeded.run_id} is already removed."


def test_down_summary_quiet_and_newest_run(platform_db: DatabaseTarget, foreign: list[str], tmp_path: Path) -> None:
    older = seed_run(platform_db)
    newer = seed_run(platform_db)
    res = invoke(tmp_path, "down", "--database-url", platform_db.url)  # no id: the newest run
    assert res.exit_code == 0, res.output
    assert f"run {newer.run_id} removed (was ready)" in res.stdout
    for table in TABLES:
        assert table in res.stdout and f"  {table}: " in res.stderr  # summary row, progress line
    assert "rows/s" in res.stdout
    assert residue(platform_db, newer.tenant_ids) == {} and owned_counts(platform_db, older.tenant_ids) == older.rows
    quiet = invoke(tmp_path, "down", older.run_id, "--database-url", platform_db.url, "--quiet")
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""
    assert residue(platform_db, older.tenant_ids) == {} and run_status(platform_db, older.run_id) == "removed"


def test_dry_run_shows_every_table_and_writes_nothing(platform_db: DatabaseTarget, tmp_path: Path) -> None:
    seeded = seed_run(platform_db, tenants=2)
    everything = checksum(platform_db, exclude=())
    res = invoke(tmp_path, "down", seeded.run_id, "--database-url", platform_db.url, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "nothing will be deleted" in res.stdout and f"would delete {sum(seeded.rows.values())} rows" in res.stdout
    text = re.sub(r"[\s│]+", " ", res.stdout)  # table cells wrap at the console's width
    audit = seeded.rows["audit_events"]
    assert f"audit_events {audit} audit_events.tenant_id → tenants [tenant column, no foreign key]" in text
    assert "documents.collection_id → collections.tenant_id → tenants" in text
    js = invoke(tmp_path, "down", seeded.run_id, "--database-url", platform_db.url, "--dry-run", "--json")
    plan = json.loads(js.stdout)
    assert plan["dry_run"] and {t["table"]: t["rows"] for t in plan["runs"][0]["tables"]} == seeded.rows
    assert plan["tenant_column_tables"] == ["audit_events"]
    assert checksum(platform_db, exclude=()) == everything and run_status(platform_db, seeded.run_id) == "ready"
    invoke(tmp_path, "down", seeded.run_id, "--database-url", platform_db.url, "--quiet")


def test_dry_run_exits_9_on_cross_tenant_references(
    platform_db: DatabaseTarget, foreign: list[str], tmp_path: Path
) -> None:
    seeded = seed_run(platform_db)
    conv = foreign_conversation(platform_db, seeded, foreign[0])  # a foreign tenant's, with one of the run's agents
    res = invoke(tmp_path, "down", seeded.run_id, "--database-url", platform_db.url, "--dry-run")
    assert "1 cross-tenant rows" in re.sub(r"[\s│]+", " ", res.stdout)
    line = one_error_line(res, 9)
    assert "conversations" in line
    real = invoke(tmp_path, "down", seeded.run_id, "--database-url", platform_db.url)
    assert "Nothing was deleted" in one_error_line(real, 9, after_progress=True)
    assert owned_counts(platform_db, seeded.tenant_ids)["agents"] == seeded.rows["agents"]
    execute(platform_db, "DELETE FROM conversations WHERE id = $1", conv)
    assert invoke(tmp_path, "down", seeded.run_id, "--database-url", platform_db.url, "--quiet").exit_code == 0


def test_refusals_have_one_sentence_and_exit_codes(
    platform_db: DatabaseTarget, db_factory: Any, tmp_path: Path
) -> None:
    seed_run(platform_db)
    before = checksum(platform_db, exclude=())
    assert "rnotknown" in one_error_line(invoke(tmp_path, "down", "rnotknown", "--database-url", platform_db.url), 7)
    bare = db_factory.new(schema="uuid")
    assert "no run ledger" in one_error_line(invoke(tmp_path, "down", "--database-url", bare.url), 7)
    assert "no run ledger" in one_error_line(invoke(tmp_path, "down", "--all", "--database-url", bare.url), 7)
    both = invoke(tmp_path, "down", "rsomerun", "--all", "--database-url", platform_db.url)
    assert "not both" in one_error_line(both, 2)
    remote = invoke(tmp_path, "down", "--database-url", "postgresql://u:s3cret-pw@db.staging.invalid/agentic_db")
    assert "loopback" in one_error_line(remote, 4) and "s3cret-pw" not in remote.output
    nomap = invoke(tmp_path, "down", "--database-url", platform_db.url, "--schema-map", str(tmp_path / "no.toml"))
    assert "does not exist" in one_error_line(nomap, 2)
    assert checksum(platform_db, exclude=()) == before


def test_a_second_down_of_the_same_run_is_refused(platform_db: DatabaseTarget, tmp_path: Path) -> None:
    seeded = seed_run(platform_db)

    async def hold_and_invoke() -> Any:
        holder = await asyncpg.connect(platform_db.asyncpg_url)
        try:
            await ledger.acquire_run_lock(holder, seeded.run_id)  # another down (or up) of this run
            return await asyncio.to_thread(invoke, tmp_path, "down", seeded.run_id, "--database-url", platform_db.url)
        finally:
            await holder.close()

    res = asyncio.run(hold_and_invoke())
    assert "right now" in one_error_line(res, 10)
    assert owned_counts(platform_db, seeded.tenant_ids) == seeded.rows
    assert invoke(tmp_path, "down", seeded.run_id, "--database-url", platform_db.url, "--quiet").exit_code == 0


def test_all_forget_and_runs_prune(db_factory: Any, tmp_path: Path) -> None:
    target = db_factory.new(schema="integer")
    seed_foreign(target, tag="other")
    before = checksum(target)
    a, b, c = (seed_run(target) for _ in range(3))
    res = invoke(tmp_path, "down", a.run_id, "--database-url", target.url, "--forget", "--json")
    assert json.loads(res.stdout)["runs"][0]["forgotten"] and run_status(target, a.run_id) is None
    res = invoke(tmp_path, "down", "--all", "--database-url", target.url, "--json")
    assert [r["run_id"] for r in json.loads(res.stdout)["runs"]] == [b.run_id, c.run_id]
    assert checksum(target) == before
    pruned = invoke(tmp_path, "runs", "--prune", "--json", "--database-url", target.url)
    assert pruned.exit_code == 0, pruned.output
    assert sorted(json.loads(pruned.stdout)["pruned"]) == sorted([b.run_id, c.run_id])
    assert fetchval(target, "SELECT count(*) FROM provisioning.runs") == 0


def test_forget_without_a_run_names_the_option_the_cli_offers(platform_db: DatabaseTarget, tmp_path: Path) -> None:
    """Neither a run nor ``all_runs``: the refusal points at ``provision runs --prune``, which exists."""
    with pytest.raises(InputError) as refused:
        asyncio.run(forget_history(DownSettings(database_url=platform_db.url, state_dir=tmp_path)))
    message = str(refused.value)
    assert "'provision runs --prune'" in message and "--removed" not in message, message
    runs_help = invoke(tmp_path, "runs", "--help")
    assert runs_help.exit_code == 0 and "--prune" in runs_help.output, runs_help.output


def test_up_then_down_end_to_end(db_factory: Any, tmp_path: Path) -> None:
    """A real ``provision up``, the platform's own rows on top, look-alike foreign data, then ``down``."""
    target = db_factory.new(schema="uuid")
    seed_foreign(target, tag="rbefore0")
    up = invoke(tmp_path, "up", "--database-url", target.url, "--bcrypt-cost", "4", "--set", "agents=90", "--json")
    assert up.exit_code == 0, up.output
    made = json.loads(up.stdout)
    run_id = made["run_id"]
    tenant_ids = [
        r["tenant_id"]
        for r in asyncio.run(_fetch(target, "SELECT tenant_id FROM provisioning.run_tenants WHERE run_id = $1", run_id))
    ]
    # foreign tenants that copy the run's slugs and email local parts
    execute(
        target,
        "INSERT INTO tenants (name, slug) SELECT name || ' copy', slug FROM tenants WHERE id::text = ANY($1::text[])",
        tenant_ids,
    )
    execute(
        target,
        "INSERT INTO users (tenant_id, email, username, hashed_password) "
        "SELECT (SELECT id FROM tenants WHERE name LIKE '% copy' LIMIT 1), split_part(email, '@', 1) || '@copy.test', "
        "username, hashed_password FROM users WHERE tenant_id::text = ANY($1::text[]) LIMIT 20",
        tenant_ids,
    )
    foreign_before = checksum(target, exclude=tenant_ids)
    # what the platform makes inside the run's tenants while under load
    execute(
        target,
        "INSERT INTO conversations (tenant_id, agent_id, user_id) SELECT a.tenant_id, a.id, a.created_by "
        "FROM agents a WHERE a.tenant_id::text = ANY($1::text[]) AND a.created_by IS NOT NULL",
        tenant_ids,
    )
    execute(
        target,
        "INSERT INTO audit_events (tenant_id, user_id, action) SELECT tenant_id, id, 'login' FROM users "
        "WHERE tenant_id::text = ANY($1::text[])",
        tenant_ids,
    )
    execute(
        target,
        "INSERT INTO documents (collection_id, title) SELECT id, 'doc' FROM collections "
        "WHERE tenant_id::text = ANY($1::text[])",
        tenant_ids,
    )
    assert Path(made["credentials_path"]).is_file()

    res = invoke(tmp_path, "down", "--database-url", target.url, "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["runs"][0]["rows"]
    assert {k: rows[k] for k in made["counts"]} == made["counts"]
    assert rows["conversations"] > 0 and rows["audit_events"] > 0 and rows["documents"] > 0
    assert residue(target, tenant_ids) == {} and checksum(target) == foreign_before
    assert not Path(made["credentials_path"]).parent.exists() and run_status(target, run_id) == "removed"


async def _fetch(target: DatabaseTarget, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(target.asyncpg_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()
