"""No undo and no teardown deletes a row the run did not make, and nothing else is taken for the ledger.

- integer keys with foreign tenants inserted with explicit ids ahead of the sequence (the run's
  block must start above them), and a foreign tenant inserted into the run's block while the run
  waits (its tenants' COPY fails; the undo may delete only the tenants the ledger committed);
- tenant columns without a foreign key whose type does not fit the tenants key (``legacy_notes``
  holding '1'…'20' beside integer tenant ids, a uuid column beside integer ids, an integer column
  beside uuid ids): left alone, and said so by ``down --dry-run``;
- a ``provisioning`` schema holding someone else's ``runs`` (and ``run_tenants``) tables: refused
  by every command with one sentence (exit 6), never written or deleted; a ledger made before the
  marker existed is recognised by its exact columns and marked.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from agentic_loadkit.provisioning.runs import ledger
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from hostile_support import (
    Holder,
    assert_one_sentence,
    checksum,
    execute,
    fetch,
    fetchval,
    ledger_tenants,
    provision,
    residue,
    run,
    run_status,
    seed_foreign,
    spawn,
    wait_for,
    waiting_on,
)

UP = ("--bcrypt-cost", "4", "--set", "tenants=3", "--set", "users=9", "--set", "agents=12", "--json")


def _up(state: Path, db: DatabaseTarget, *extra: str) -> tuple[int, str, str]:
    res = provision(state, "up", "--database-url", db.url, *UP, *extra)
    return res.returncode, res.stdout, res.stderr


def _run_id(stdout: str) -> str:
    import json

    return str(json.loads(stdout)["run_id"])


async def _explicit_tenant(conn: asyncpg.Connection, tid: int, tag: str) -> None:
    """A foreign tenant with an explicit id (not drawn from the sequence), two users and two agents."""
    await conn.execute(
        "INSERT INTO tenants (id, name, slug, status) VALUES ($1, $2, $3, 'active')", tid, f"Explicit {tag}",
        f"explicit-{tag}",
    )
    for i in range(2):
        uid = await conn.fetchval(
            "INSERT INTO users (tenant_id, email, username, hashed_password, full_name) "
            "VALUES ($1, $2, $3, '$2b$04$' || repeat('x', 53), 'Explicit') RETURNING id",
            tid, f"u{i}.{tag}@explicit.example.com", f"u{i}-{tag}",
        )
        await conn.execute(
            "INSERT INTO agents (tenant_id, created_by, name, slug, system_prompt) VALUES ($1, $2, 'A', $3, 'p')",
            tid, uid, f"explicit-{tag}-a{i}",
        )


def _add_explicit(db: DatabaseTarget, *ids: int) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(db.asyncpg_url)
        try:
            for tid in ids:
                await _explicit_tenant(conn, tid, str(tid))
        finally:
            await conn.close()

    run(go())


def _explicit_rows(db: DatabaseTarget, ids: list[int]) -> int:
    return int(
        fetchval(
            db,
            "SELECT (SELECT count(*) FROM tenants WHERE id = ANY($1)) + (SELECT count(*) FROM users WHERE "
            "tenant_id = ANY($1)) + (SELECT count(*) FROM agents WHERE tenant_id = ANY($1))",
            ids,
        )
    )


def _make_ledger(db: DatabaseTarget) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(db.asyncpg_url)
        try:
            await ledger.ensure_ledger(conn)
        finally:
            await conn.close()

    run(go())


def test_explicit_ids_ahead_of_the_sequence_are_never_the_runs(db_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = db_factory.new(schema="integer")
    seed_foreign(db)  # tenants 1..3 from the sequence
    _add_explicit(db, 4, 5, 6, 8, 9)  # ahead of the sequence: the next ids it would hand out
    baseline = checksum(db)
    code, out, err = _up(tmp_path / "state", db)
    assert code == 0, err
    run_id = _run_id(out)
    ours = [int(t) for t in ledger_tenants(db, run_id)]
    assert len(ours) == 3 and min(ours) > 9, ours  # the block starts above every id in the table
    assert checksum(db) == baseline and _explicit_rows(db, [4, 5, 6, 8, 9]) == 25
    res = provision(tmp_path / "state", "down", run_id, "--database-url", db.url)
    assert res.returncode == 0, res.stderr
    assert residue(db, [str(t) for t in ours]) == {} and checksum(db) == baseline


def test_a_failed_tenants_copy_undoes_only_what_the_ledger_committed(db_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A foreign tenant lands in the run's block while the run waits; the run's tenants COPY then fails
    on tenants_pkey.  Before the fix the undo deleted that tenant, its users and agents 'by tenant id'."""
    db = db_factory.new(schema="integer")
    seed_foreign(db)
    _make_ledger(db)
    with Holder(db) as holder:
        holder.begin("LOCK TABLE provisioning.run_tenants IN SHARE MODE")  # the up waits after its reservation
        proc = spawn(tmp_path / "state", "up", "--database-url", db.url, *UP)
        wait_for(lambda: waiting_on(db, "provision-up", "provisioning.run_tenants"), "the up waits", proc)
        last = int(fetchval(db, "SELECT last_value FROM tenants_id_seq"))
        intruder = last - 1  # inside the run's block of 3
        _add_explicit(db, intruder)
        baseline = checksum(db)
    _, err = proc.communicate(timeout=120)
    assert_one_sentence(err, proc.returncode, 8, "tenants_pkey")
    assert _explicit_rows(db, [intruder]) == 5, "the undo deleted a tenant the run never inserted"
    assert checksum(db) == baseline
    assert fetchval(db, "SELECT count(*) FROM provisioning.run_tenants") == 0
    assert fetchval(db, "SELECT count(*) FROM tenants WHERE id BETWEEN $1 AND $2", last - 2, last) == 1


@pytest.mark.parametrize(
    ("kind", "column", "values"),
    [
        ("integer", "text", [str(i) for i in range(1, 41)]),  # the legacy_notes
        ("integer", "uuid", None),  # uuids beside integer keys
        ("uuid", "bigint", list(range(1, 41))),  # numbers beside uuid keys
        ("integer", "character varying(12)", [str(i) for i in range(1, 41)]),
    ],
    ids=["int-key-text-column", "int-key-uuid-column", "uuid-key-bigint-column", "int-key-varchar-column"],
)
def test_a_tenant_column_of_another_type_is_left_alone(
    kind: str, column: str, values: list[object] | None, db_factory, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    db = db_factory.new(schema=kind)
    seed_foreign(db)
    execute(db, f"CREATE TABLE legacy_notes (tenant_id {column}, note text)")
    if values is None:
        execute(db, "INSERT INTO legacy_notes SELECT gen_random_uuid(), 'n' FROM generate_series(1, 40)")
    else:
        for v in values:
            execute(db, "INSERT INTO legacy_notes VALUES ($1, 'n')", v)
    before = fetch(db, "SELECT tenant_id::text, note FROM legacy_notes ORDER BY 1")
    baseline = checksum(db)
    code, out, err = _up(tmp_path / "state", db)
    assert code == 0, err
    run_id = _run_id(out)
    plan = provision(tmp_path / "state", "down", run_id, "--dry-run", "--database-url", db.url)
    assert plan.returncode == 0, plan.stderr
    said = [line for line in plan.stderr.splitlines() if "legacy_notes" in line]
    assert said and "leaves it alone" in said[0], plan.stdout + plan.stderr
    assert "legacy_notes" not in plan.stdout  # not among the tables it would delete from
    res = provision(tmp_path / "state", "down", run_id, "--database-url", db.url)
    assert res.returncode == 0, res.stderr
    assert fetch(db, "SELECT tenant_id::text, note FROM legacy_notes ORDER BY 1") == before
    assert checksum(db) == baseline


def test_a_tenant_column_of_the_keys_type_is_listed_by_the_dry_run(db_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The other side of the decision: an integer tenant column without a foreign key in an integer
    schema is the platform's; the dry run names it before anything is deleted."""
    db = db_factory.new(schema="integer")
    seed_foreign(db)
    execute(db, "CREATE TABLE usage_counters (tenant_id bigint, n int)")
    code, out, err = _up(tmp_path / "state", db)
    assert code == 0, err
    run_id = _run_id(out)
    ours = ledger_tenants(db, run_id)
    foreign = fetchval(db, "SELECT min(id) FROM tenants")
    execute(db, "INSERT INTO usage_counters SELECT unnest($1::bigint[]), 1", [int(t) for t in ours])
    execute(db, "INSERT INTO usage_counters VALUES ($1, 2)", foreign)
    plan = provision(tmp_path / "state", "down", run_id, "--dry-run", "--database-url", db.url)
    assert "tables found by their tenant column (no foreign key): " in plan.stdout
    assert "usage_counters" in plan.stdout.split("tables found by their tenant column")[1]
    assert provision(tmp_path / "state", "down", run_id, "--database-url", db.url).returncode == 0
    assert fetch(db, "SELECT tenant_id, n FROM usage_counters") == [(foreign, 2)]


FOREIGN_LEDGER = """
CREATE SCHEMA provisioning;
CREATE TABLE provisioning.runs (run_id text PRIMARY KEY, status text, started timestamptz DEFAULT now());
CREATE TABLE provisioning.run_tenants (run_id text REFERENCES provisioning.runs, tenant_id text);
INSERT INTO provisioning.runs (run_id, status) VALUES ('nightly-1', 'removed'), ('nightly-2', 'ready');
INSERT INTO provisioning.run_tenants VALUES ('nightly-1', 'x'), ('nightly-2', 'y');
"""


@pytest.mark.parametrize(
    "setup",
    [
        FOREIGN_LEDGER,
        # our exact column names and types, but someone else's comment
        "CREATE SCHEMA provisioning; COMMENT ON SCHEMA provisioning IS 'ours';",
        # only a runs table
        "CREATE SCHEMA provisioning; CREATE TABLE provisioning.runs (run_id text PRIMARY KEY, status text); "
        "INSERT INTO provisioning.runs VALUES ('nightly-1', 'removed');",
        # a view named runs
        "CREATE SCHEMA provisioning; CREATE VIEW provisioning.runs AS SELECT 'nightly-1'::text AS run_id, "
        "'removed'::text AS status; CREATE TABLE provisioning.run_tenants (run_id text, tenant_id text);",
    ],
    ids=["platform-runs", "our-columns-their-comment", "runs-only", "runs-view"],
)
def test_someone_elses_provisioning_schema_is_never_the_ledger(
    setup: str, hostile_db, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    db = hostile_db.target
    execute(db, setup)
    if "COMMENT ON SCHEMA" in setup:  # build our exact tables, then mark them as someone else's
        _make_ledger(db)
        execute(db, "COMMENT ON TABLE provisioning.runs IS 'billing runs'")
        execute(db, "INSERT INTO provisioning.runs (run_id, scale, seed, status, toolkit_version) "
                    "VALUES ('nightly-1', 'x', 1, 'removed', 'x')")
    rows = "SELECT count(*) FROM provisioning.runs"
    before = fetchval(db, rows)
    state = tmp_path / "state"
    for args in [
        ("up", *UP),
        ("runs", "--prune"),
        ("down", "--all", "--forget"),
        ("down", "nightly-1", "--forget"),
        ("runs",),
        ("status", "nightly-2"),
    ]:
        res = provision(state, *args, "--database-url", db.url)
        assert_one_sentence(res.stderr, res.returncode, 6, "not this toolkit's run ledger")
        assert fetchval(db, rows) == before, args
    assert fetchval(db, "SELECT count(*) FROM tenants WHERE status = 'provisioning'") == 0
    hostile_db.assert_intact()


def test_a_ledger_from_before_the_marker_is_recognised_and_marked(hostile_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = hostile_db.target
    code, out, err = _up(tmp_path / "state", db)
    assert code == 0, err
    first = _run_id(out)
    # what the previous version left: the same tables without the comments
    execute(db, "COMMENT ON TABLE provisioning.runs IS NULL; COMMENT ON TABLE provisioning.run_tenants IS NULL")
    res = provision(tmp_path / "state", "runs", "--json", "--database-url", db.url)
    assert res.returncode == 0 and first in res.stdout, res.stderr  # read as ours, not marked by a reader
    marker = "SELECT obj_description('provisioning.runs'::regclass, 'pg_class')"
    assert fetchval(db, marker) is None
    code, out, err = _up(tmp_path / "state", db)
    assert code == 0, err
    assert fetchval(db, marker) == ledger.LEDGER_MARKER
    res = provision(tmp_path / "state", "down", "--all", "--database-url", db.url)
    assert res.returncode == 0, res.stderr
    assert run_status(db, first) == "removed" and run_status(db, _run_id(out)) == "removed"
    hostile_db.assert_intact()
