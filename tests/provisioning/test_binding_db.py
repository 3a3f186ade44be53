"""Binding the concepts to live schemas that are neither dialect: a dry run that lists every mismatch of
an odd schema at once (text and JSON), name-aware fills, and the schema map's skip, value vocabulary
and the refusal of a pin that would silently win over a rename."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from agentic_loadkit.cli import app as cli
from agentic_loadkit.provisioning.errors import InputError
from agentic_loadkit.provisioning.generate.binding import plan_tables
from agentic_loadkit.provisioning.schema.reflect import reflect_tables
from agentic_loadkit.provisioning.schema.schemamap import parse_schema_map
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.reference_platform.schema import create_schema
from typer.testing import CliRunner
from up_helpers import fetch, fetchval, run, sql, up

runner = CliRunner()

ODD = (
    "ALTER TABLE odd.users DROP COLUMN password_hash",
    "ALTER TABLE odd.users ALTER COLUMN email_verified TYPE text",
    "ALTER TABLE odd.agents ADD CONSTRAINT agents_status_ck CHECK (status IN ('enabled', 'disabled'))",
    "ALTER TABLE odd.mcp_servers ADD COLUMN handle text NOT NULL UNIQUE",
    "ALTER TABLE odd.agents DROP COLUMN tags",
    "ALTER TABLE odd.tenants ADD COLUMN seat_count int NOT NULL, ADD COLUMN billing_email text NOT NULL, "
    "ADD COLUMN tier text NOT NULL CHECK (tier IN ('gold', 'silver'))",
    "ALTER TABLE odd.workflows ADD COLUMN visibility varchar(20) NOT NULL",
)


@pytest.fixture(scope="module")
def target(db_factory: Any) -> DatabaseTarget:
    t: DatabaseTarget = db_factory.new()
    for name in ("odd", "vocab"):
        asyncio.run(create_schema(t.asyncpg_url, "uuid", schema=name, dialect="v1"))
    for statement in ODD:
        run(sql(t, statement))
    run(sql(t, "ALTER TABLE vocab.users ADD CONSTRAINT users_role_ck CHECK (role IN ('admin', 'member', 'viewer'))"))
    return t


def _map(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "map.toml"
    path.write_text(text)
    return path


def _dry_run(target: DatabaseTarget, tmp_path: Path, map_text: str, *extra: str) -> Any:
    return runner.invoke(cli.app, ["--state-dir", str(tmp_path / "state"), "up", "--dry-run", "--database-url",
                                   target.url, "--schema-map", str(_map(tmp_path, map_text)), *extra])


def test_dry_run_lists_every_mismatch_of_an_odd_schema_in_one_run(target: DatabaseTarget, tmp_path: Path) -> None:
    res = _dry_run(target, tmp_path, 'schema = "odd"\n', "--json")
    assert res.exit_code == 6, res.output
    plan = json.loads(res.stdout)
    messages = [p["message"] for p in plan["problems"]]
    assert len(messages) >= 4
    assert any("odd.users has no column for the password hash" in m and "hashed_password | password_hash" in m
               for m in messages)
    assert any("odd.users.email_verified is TEXT" in m and "a boolean" in m for m in messages)
    assert any("odd.agents.status allows only enabled, disabled" in m for m in messages)
    assert any("odd.mcp_servers.handle is NOT NULL and unique" in m for m in messages)
    tables = {t["table"]: t for t in plan["tables"]}
    filled = {w["column"]: w["note"] for w in tables["tenants"]["written"] if w["source"] == "filled"}
    assert set(filled) == {"seat_count", "billing_email", "tier"}
    assert "CHECK" in filled["tier"] and "reserved" in filled["billing_email"]
    assert [f["value"] for f in plan["filled_columns"] if f["column"] == "visibility"] == ["'private'"]
    assert {"concept": "tags", "looked_for": "tags", "reason": "absent"} in tables["agents"]["skipped"]
    assert plan["total_rows"] == sum(plan["counts"].values()) and plan["total_bytes"] > 0
    assert fetchval(target, "SELECT count(*) FROM odd.tenants") == 0  # a dry run writes nothing
    text = _dry_run(target, tmp_path, 'schema = "odd"\n')
    assert text.exit_code == 6
    assert f"{len(messages)} problem(s)" in text.stdout and "skip   tags" in text.stdout


def test_up_refuses_an_odd_schema_with_every_problem_in_one_sentence(target: DatabaseTarget, tmp_path: Path) -> None:
    res = runner.invoke(cli.app, ["--state-dir", str(tmp_path / "s"), "up", "--database-url", target.url,
                                  "--bcrypt-cost", "4", "--schema-map", str(_map(tmp_path, 'schema = "odd"\n'))])
    assert res.exit_code == 6
    assert "password hash" in res.stderr and "And 3 more" in res.stderr and "Traceback" not in res.output
    assert fetchval(target, "SELECT count(*) FROM odd.tenants") == 0


def test_vocab_and_skip_make_a_checked_schema_fit(target: DatabaseTarget, tmp_path: Path) -> None:
    refused = _dry_run(target, tmp_path, 'schema = "vocab"\n', "--json")
    assert refused.exit_code == 6 and "vocab.users.role allows only admin, member, viewer" in refused.stdout
    smap = _map(tmp_path, 'schema = "vocab"\n[tables.users.vocab]\nrole = { user = "member" }\n'
                '[tables.agents]\nskip = ["system_prompt"]\n')
    result = up(target, tmp_path / "state", schema_map=smap, seed=3)
    roles = {r[0] for r in run(fetch(target, "SELECT DISTINCT role FROM vocab.users"))}
    assert roles <= {"admin", "member", "viewer"} and "member" in roles
    assert fetchval(target, "SELECT count(*) FROM vocab.agents WHERE system_prompt IS NOT NULL") == 0
    assert fetchval(target, "SELECT count(*) FROM vocab.agents") == result.counts["agents"]
    with open(result.credentials_path) as fh:
        pool = fh.read()
    assert ",member\n" in pool, pool  # the pool shows the role as the database holds it


def test_a_pin_may_not_win_over_a_rename_onto_the_same_column(target: DatabaseTarget, tmp_path: Path) -> None:
    data = {"schema": "vocab", "tables": {"users": {"columns": {"is_active": "email_verified"},
                                                    "values": {"email_verified": True}}}}
    live = run(reflect_tables(target, parse_schema_map(data)))
    with pytest.raises(InputError, match=r"both renames users\.is_active onto column 'email_verified'"):
        plan_tables(live, parse_schema_map(data))
    res = _dry_run(target, tmp_path, 'schema = "vocab"\n[tables.users]\ncolumns = { is_active = "email_verified" }\n'
                   '[tables.users.values]\nemail_verified = true\n')
    assert res.exit_code == 2 and "keep one of the two" in res.stdout


def test_vocab_of_a_value_the_toolkit_never_writes_is_refused(target: DatabaseTarget) -> None:
    data = {"schema": "vocab", "tables": {"users": {"vocab": {"role": {"member": "user"}}}}}
    live = run(reflect_tables(target, parse_schema_map(data)))
    with pytest.raises(InputError, match=r"renames value .member. of vocab\.users\.role.*writes admin, user, viewer"):
        plan_tables(live, parse_schema_map(data))
