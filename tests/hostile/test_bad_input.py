"""Bad input, tried systematically: every case expects ONE sentence on stderr (``error: ...``), a
documented non-zero exit code (``provisioning/errors.py``, the ``cli/up.py``/``cli/down.py`` docstrings),
no traceback, and nothing written: no ledger row, no platform row (the foreign-data checksum is
unchanged), no file in the state directory.

The commands run in this process (typer's ``CliRunner``: the same app, option parsing and error
mapping as the ``provision`` script, without a Python start-up per case); the real-process paths
are exercised by every other module of this suite.

Bad input to the Locust side (unknown load profile, a host refusing connections, a pool smaller
than the peak user count, a missing/empty/duplicate pool) is tried in ``tests/scenarios``
(``test_locust_conditions.py::test_bad_input_is_one_sentence_and_an_exit_code``,
``::test_a_platform_that_refuses_connections_fails_the_gate_with_a_hint``,
``test_locust_runs.py::test_pool_exhaustion_fails_the_run_and_reuse_is_counted``) and not repeated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from agentic_loadkit.cli import app as cli
from agentic_loadkit.provisioning.runs import ledger
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from hostile_db import HostileDb, PrivateServer, Roles, make_hostile_db
from hostile_support import checksum, fetchval, files_under, run
from typer.testing import CliRunner

runner = CliRunner()
ENV: dict[str, str | None] = {
    "DATABASE_URL": None,
    "PROVISION_ALLOW_REMOTE": None,
    "PROVISION_STATE_DIR": None,
    "PROVISION_DEBUG": None,
    "PGHOST": None,
}
HEADER = "email,password,tenant_id,tenant_slug,user_id,role\n"
MANIFEST = json.dumps({"format": 1, "run_id": "rfake001", "created_at": "2026-01-01T00:00:00+00:00"})
WRONG_PASSWORD_ROLE = "hostile_pw"
SECRET = "HOSTILE-SECRET-7f3a"  # in bad URLs: must never be printed


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # {db} {empty} {ro} {wrongpw} {tmp} are filled in per test
    code: int
    needle: str
    files: dict[str, str | bytes] = field(default_factory=dict)  # written under {tmp} first


def up(*args: str, db: str = "{db}") -> tuple[str, ...]:
    cost = () if "--bcrypt-cost" in args else ("--bcrypt-cost", "4")
    return ("up", "--database-url", db, *cost, *args)


def pool(content: str | bytes | None) -> dict[str, str | bytes]:
    """A ready-looking run ``rfake001`` in the state directory, whose credentials file is ``content``."""
    files: dict[str, str | bytes] = {"state/runs/rfake001/manifest.json": MANIFEST}
    if content is not None:
        files["state/runs/rfake001/credentials.csv"] = content
    return files


MAP = "map.toml"
PROFILE = "profile.toml"

CASES = [
    # scales and counts
    Case("scale-unknown", up("--scale", "huge"), 2, "Unknown scale 'huge'"),
    Case("scale-empty", up("--scale", ""), 2, "Unknown scale ''"),
    Case("scale-sql", up("--scale", "small; DROP TABLE tenants"), 2, "Unknown scale"),
    Case("count-negative", up("--set", "agents=-5"), 2, "negative"),
    Case("count-zero-tenants", up("--set", "tenants=0"), 2, "at least one tenant"),
    Case("count-zero-users", up("--set", "users=0"), 2, "every tenant needs at least one user"),
    Case("count-huge", up("--set", "agents=999999999999"), 2, "above the limit"),
    Case("count-huge-tenants", up("--set", "tenants=200001"), 2, "above the limit"),
    Case("count-float", up("--set", "agents=1.5"), 2, "not a whole number"),
    Case("count-exponent", up("--set", "agents=1e6"), 2, "not a whole number"),
    Case("count-word", up("--set", "agents=ten"), 2, "not a whole number"),
    Case("count-unicode-digits", up("--set", "agents=\u0661\u0662"), 2, "not a whole number"),
    Case("count-empty", up("--set", "agents="), 2, "not a whole number"),
    Case("count-no-equals", up("--set", "agents"), 2, "key=value"),
    Case("count-unknown", up("--set", "robots=3"), 2, "Unknown count 'robots'"),
    Case("seed-negative", up("--seed", "-1"), 2, "seed"),
    Case("seed-word", up("--seed", "abc"), 2, "--seed"),
    Case("bcrypt-low", up("--bcrypt-cost", "3"), 2, "bcrypt cost"),
    Case("bcrypt-high", up("--bcrypt-cost", "32"), 2, "bcrypt cost"),
    Case("password-count-zero", up("--password-count", "0"), 2, "password count"),
    Case("password-count-70000", up("--password-count", "70000"), 2, "above the limit of 1_024"),
    Case("password-count-1e9", up("--password-count", "1000000000"), 2, "above the limit"),
    Case("profile-dev-zero", up("--profile", "/dev/zero"), 2, "larger than 1024 KiB"),
    Case("map-dev-zero", up("--schema-map", "/dev/zero"), 2, "larger than 1024 KiB"),
    Case("down-map-dev-zero", ("down", "--database-url", "{db}", "--schema-map", "/dev/zero"), 2, "larger than"),
    Case("profile-big", up("--profile", "{tmp}/profile.toml"), 2, "larger than", {PROFILE: "# x\n" * 300_000}),
    Case("skew-word", up("--skew", "abc"), 2, "neither a number nor 'uniform'"),
    Case("skew-nan", up("--skew", "nan"), 2, "between 0 and"),
    Case("skew-and-uniform", up("--skew", "2", "--uniform"), 2, "either --skew or --uniform"),
    Case("label-escape-codes", up("--label", "ci\x1b[2J"), 2, "label"),
    Case("streams-zero", up("--streams", "0"), 2, "streams"),
    Case("unknown-option", up("--scael", "small"), 2, "--scael"),
    # TOML profiles
    Case("profile-missing", up("--profile", "{tmp}/nope.toml"), 2, "does not exist"),
    Case("profile-malformed", up("--profile", "{tmp}/profile.toml"), 2, "not valid TOML", {PROFILE: "[counts\n"}),
    Case("profile-binary", up("--profile", "{tmp}/profile.toml"), 2, "not UTF-8", {PROFILE: b"\xff\xfe\x00\x81"}),
    Case("profile-directory", up("--profile", "{tmp}"), 2, "is a directory"),
    Case("profile-unknown-key", up("--profile", "{tmp}/profile.toml"), 2, "'colour'", {PROFILE: 'colour = "red"\n'}),
    Case(
        "profile-negative", up("--profile", "{tmp}/profile.toml"), 2, "negative", {PROFILE: "[counts]\nagents = -1\n"}
    ),
    Case(
        "profile-float",
        up("--profile", "{tmp}/profile.toml"),
        2,
        "not a whole number",
        {PROFILE: "[counts]\nagents = 1.5\n"},
    ),
    Case(
        "profile-string",
        up("--profile", "{tmp}/profile.toml"),
        2,
        "not a whole number",
        {PROFILE: '[counts]\nagents = "many"\n'},
    ),
    Case(
        "profile-unknown-scale",
        up("--profile", "{tmp}/profile.toml"),
        2,
        "Unknown scale 'galactic'",
        {PROFILE: 'scale = "galactic"\n'},
    ),
    Case(
        "profile-counts-scalar", up("--profile", "{tmp}/profile.toml"), 2, "must be a table", {PROFILE: "counts = 5\n"}
    ),
    # schema maps
    Case("map-missing", up("--schema-map", "{tmp}/nomap.toml"), 2, "does not exist"),
    Case("map-malformed", up("--schema-map", "{tmp}/map.toml"), 2, "not valid TOML", {MAP: "[tables\n"}),
    Case("map-unknown-key", up("--schema-map", "{tmp}/map.toml"), 2, "unknown key 'colour'", {MAP: 'colour = "x"\n'}),
    Case(
        "map-unknown-contract-table",
        up("--schema-map", "{tmp}/map.toml"),
        2,
        "unknown table 'robots'",
        {MAP: '[tables.robots]\nname = "r"\n'},
    ),
    Case(
        "map-missing-table",
        up("--schema-map", "{tmp}/map.toml"),
        6,
        "organisations",
        {MAP: '[tables.tenants]\nname = "organisations"\n'},
    ),
    Case(
        "map-missing-column",
        up("--schema-map", "{tmp}/map.toml"),
        6,
        "pw_hash",
        {MAP: '[tables.users]\ncolumns = { hashed_password = "pw_hash" }\n'},
    ),
    Case("map-missing-schema", up("--schema-map", "{tmp}/map.toml"), 6, "'nowhere'", {MAP: 'schema = "nowhere"\n'}),
    Case(
        "map-sql-in-table-name",
        up("--schema-map", "{tmp}/map.toml"),
        2,
        "not a valid SQL identifier",
        {MAP: '[tables.users]\nname = "users; DROP TABLE agents"\n'},
    ),
    Case(
        "map-quote-in-table-name",
        up("--schema-map", "{tmp}/map.toml"),
        2,
        "not a valid SQL identifier",
        {MAP: '[tables.users]\nname = "users\\""\n'},
    ),
    Case(
        "map-nul-in-table-name",
        up("--schema-map", "{tmp}/map.toml"),
        2,
        "not a valid SQL identifier",
        {MAP: '[tables.users]\nname = "users\\u0000"\n'},
    ),
    Case(
        "map-sql-in-column",
        up("--schema-map", "{tmp}/map.toml"),
        2,
        "not a valid SQL identifier",
        {MAP: '[tables.agents]\ncolumns = { name = "name\\" text); DROP TABLE users; --" }\n'},
    ),
    Case(
        "map-sql-in-schema",
        up("--schema-map", "{tmp}/map.toml"),
        2,
        "not a valid SQL identifier",
        {MAP: 'schema = "public; DROP SCHEMA public CASCADE"\n'},
    ),
    Case(
        "map-sql-in-tenant-column",
        up("--schema-map", "{tmp}/map.toml"),
        2,
        "not a valid SQL identifier",
        {MAP: 'tenant_column = "tenant_id OR 1=1"\n'},
    ),
    Case(
        "map-sql-in-pinned-column",
        up("--schema-map", "{tmp}/map.toml"),
        2,
        "not a valid SQL identifier",
        {MAP: '[tables.agents.values]\n"x; DROP TABLE users" = 1\n'},
    ),
    Case(
        "map-pinned-value-of-wrong-type",
        up("--schema-map", "{tmp}/map.toml"),
        2,
        "temperature",
        {MAP: '[tables.agents.values]\ntemperature = "hot"\n'},
    ),
    # database URLs and targets
    Case("url-malformed", up(db="not a url"), 2, "malformed"),
    Case("url-scheme", up(db="mysql://root:pw@127.0.0.1/db"), 2, "only PostgreSQL URLs"),
    Case("url-port-word", up(db="postgresql://postgres@127.0.0.1:abc/db"), 2, "non-numeric port"),
    Case("url-port-range", up(db="postgresql://postgres@127.0.0.1:99999/db"), 2, "outside 1-65535"),
    Case("url-ipv6-unclosed", up(db="postgresql://postgres@[::1/db"), 2, "malformed"),
    # forms on which two URL parsers could disagree: refused before the guard, never echoed (the
    # user info may hold a password with an unencoded '@' or ':')
    Case("url-two-ats-hosts", up(db="postgresql://postgres@0.0.0.0:5432,@127.0.0.1:5432/db"), 2, "more than one '@'"),
    Case("url-two-ats-password", up(db=f"postgresql://postgres:ab@cd:{SECRET}@127.0.0.1:5432/db"), 2, "%40"),
    Case("url-trailing-dot-localhost", up(db="postgresql://postgres@localhost./db"), 2, "ending with a dot"),
    Case("url-trailing-dot-ip", up(db="postgresql://postgres@127.0.0.1./db"), 2, "ending with a dot"),
    Case("url-trailing-dot-name", up(db="postgresql://postgres@vm.:5432/db"), 2, "ending with a dot"),
    Case("url-empty-host-entry", up(db="postgresql://postgres@127.0.0.1:5432,,127.0.0.1/db"), 2, "empty entry"),
    Case("url-trailing-comma", up(db="postgresql://postgres@127.0.0.1,/db"), 2, "empty entry"),
    Case("url-leading-comma", up(db="postgresql://postgres@,127.0.0.1/db"), 2, "empty entry"),
    Case("url-query-empty-host", up(db="postgresql://postgres@/db?host=/tmp,,/tmp"), 2, "empty entry"),
    Case("url-ipv6-unbracketed", up(db="postgresql://postgres@::1/db"), 2, "without brackets"),
    Case("url-ipv6-zone", up(db="postgresql://postgres@[fe80::1%25lo]/db"), 2, "malformed"),
    Case("url-ipv6-not-v6", up(db="postgresql://postgres@[127.0.0.1]/db"), 2, "not an IPv6"),
    Case("url-percent-host", up(db="postgresql://postgres@%31%32%37.0.0.1/db"), 2, "percent-encoded"),
    Case("url-unicode-host", up(db="postgresql://postgres@l\u043ecalhost/db"), 2, "not a host name"),
    Case("url-unicode-port", up(db="postgresql://postgres@127.0.0.1:\uff15\uff14\uff13\uff12/db"), 2, "non-numeric"),
    Case("url-plus-port", up(db="postgresql://postgres@127.0.0.1:+5432/db"), 2, "non-numeric"),
    Case("url-empty-port", up(db="postgresql://postgres@127.0.0.1:/db"), 2, "non-numeric"),
    Case("url-hosts-twice", up(db="postgresql://postgres@127.0.0.1/db?host=/tmp"), 2, "hosts both"),
    Case("url-hostaddr", up(db="postgresql://postgres@localhost/db?hostaddr=127.0.0.1"), 2, "hostaddr"),
    Case("url-service", up(db="postgresql://postgres@/db?service=hostile"), 2, "service"),
    Case("url-servicefile", up(db="postgresql://postgres@/db?servicefile=/tmp/x"), 2, "service"),
    Case("url-option-twice", up(db="postgresql://postgres@127.0.0.1/db?sslmode=disable&sslmode=require"), 2, "twice"),
    Case("url-host-option-twice", up(db="postgresql://postgres@/db?host=/tmp&host=10.0.0.1"), 2, "twice"),
    Case("url-ports-twice", up(db="postgresql://postgres@127.0.0.1:5432/db?port=5433"), 2, "ports both"),
    Case("url-ports-mismatch", up(db="postgresql://postgres@127.0.0.1,localhost/db?port=1,2,3"), 2, "3 ports"),
    Case("url-user-twice", up(db="postgresql://postgres@127.0.0.1/db?user=other"), 2, "user twice"),
    Case("url-database-twice", up(db="postgresql://postgres@127.0.0.1/db?dbname=other"), 2, "database name twice"),
    Case("url-fragment", up(db=f"postgresql://postgres:{SECRET}#x@127.0.0.1/db"), 2, "'#'"),
    Case("url-newline", up(db="postgresql://postgres@127.0.0.1\n.evil.example/db"), 2, "whitespace"),
    Case("url-tab-in-host", up(db="postgresql://postgres@127.0.0.1\t/db"), 2, "whitespace"),
    Case("url-query-no-equals", up(db="postgresql://postgres@127.0.0.1/db?sslmode"), 2, "key=value"),
    Case("url-no-scheme-secret", up(db=f"postgres:{SECRET}@127.0.0.1:5432/db"), 2, "no '://'"),
    Case("url-scheme-secret", up(db=f"{SECRET}://postgres@127.0.0.1/db"), 2, "unknown scheme"),
    Case("url-slash-in-password", up(db=f"postgresql://postgres:ab/{SECRET}@127.0.0.1/db"), 2, "URL"),
    Case("url-empty", up(db=""), 2, "is empty"),
    Case("url-unreachable", up(db="postgresql://postgres@127.0.0.1:1/db"), 5, "Cannot reach PostgreSQL at 127.0.0.1:1"),
    Case("url-unknown-database", up(db="{nodb}"), 5, "does not exist"),
    Case("url-missing-socket-dir", up(db="postgresql://postgres@/db?host=/nonexistent-hostile"), 5, "Cannot reach"),
    Case("url-unknown-role", up(db="{norole}"), 5, "nosuchrole_hostile"),
    Case("url-wrong-password", up(db="{wrongpw}"), 5, "refused the password"),
    Case("read-only-user", up("--quiet", db="{ro}"), 15, "permission denied"),
    # not quiet: no "run <id>, scale ..." line may appear for a run the ledger refused to record
    Case("read-only-user-not-quiet", up(db="{ro}"), 15, "permission denied"),
    Case("database-without-platform-tables", up(db="{empty}"), 6, "no table public.tenants"),
    Case("platform-init-read-only-user", ("platform", "init", "--database-url", "{ro_empty}"), 15, "permission"),
    Case("platform-init-id-kind", ("platform", "init", "--database-url", "{empty}", "--id-kind", "x"), 2, "--id-kind"),
    # runs
    Case("down-unknown-run", ("down", "rnothere", "--database-url", "{db}"), 7, "knows no run 'rnothere'"),
    Case("down-sql-run-id", ("down", "r1'; DROP TABLE tenants; --", "--database-url", "{db}"), 7, "knows no run"),
    Case("down-no-ledger", ("down", "--database-url", "{empty}"), 7, "no run ledger"),
    Case("down-run-and-all", ("down", "rnothere", "--all", "--database-url", "{db}"), 2, "not both"),
    Case("down-map-missing", ("down", "--database-url", "{db}", "--schema-map", "{tmp}/nomap.toml"), 2, "not exist"),
    Case("down-batch-zero", ("down", "--database-url", "{db}", "--batch-tenants", "0"), 2, "--batch-tenants"),
    Case("down-unreachable", ("down", "--database-url", "postgresql://postgres@127.0.0.1:1/x"), 5, "Cannot reach"),
    Case("status-unknown-run", ("status", "rnothere", "--database-url", "{db}"), 7, "knows no run 'rnothere'"),
    Case("status-no-ledger", ("status", "--database-url", "{empty}"), 7, "no run"),
    Case("runs-unreachable", ("runs", "--database-url", "postgresql://postgres@127.0.0.1:1/x"), 5, "Cannot reach"),
    Case("credentials-unknown-run", ("credentials", "rnothere"), 7, "rnothere"),
    Case("credentials-path-traversal", ("credentials", "../../etc"), 2, "is not a run id"),
    Case("credentials-format", ("credentials", "rfake001", "--format", "xml"), 2, "'csv' or 'json'", pool(HEADER)),
    # credentials files
    Case("credentials-file-missing", ("credentials", "rfake001"), 12, "has no credentials.csv", pool(None)),
    Case("credentials-file-empty", ("credentials", "rfake001"), 12, "header", pool("")),
    Case("credentials-file-header-only", ("credentials", "rfake001"), 12, "has a header but no accounts", pool(HEADER)),
    Case(
        "credentials-file-truncated",
        ("credentials", "rfake001"),
        12,
        "is truncated: its last line is incomplete",
        pool(HEADER + "a@x.test,pw-a,t1,one,u1,member\nb@x.test,pw-b,t1,o"),
    ),
    Case(
        "credentials-file-duplicates",
        ("credentials", "rfake001"),
        12,
        "twice",
        pool(HEADER + "a@x.test,pw-a,t1,one,u1,member\na@x.test,pw-b,t1,one,u2,member\n"),
    ),
    Case("credentials-file-binary", ("credentials", "rfake001"), 12, "credentials", pool(b"\xff\xfe\x00garbage")),
    Case(
        "manifest-garbage",
        ("credentials", "rfake001"),
        12,
        "manifest",
        {"state/runs/rfake001/manifest.json": "{", "state/runs/rfake001/credentials.csv": HEADER},
    ),
]


@pytest.fixture(scope="module")
def targets(
    db_factory: Any, private_pg: PrivateServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The databases every case points at: one with foreign data and an empty ledger, one without tables."""
    db: HostileDb = make_hostile_db(db_factory.new(schema="uuid"))

    async def make_ledger() -> None:
        import asyncpg

        conn = await asyncpg.connect(db.target.asyncpg_url)
        try:
            await ledger.ensure_ledger(conn)
        finally:
            await conn.close()

    run(make_ledger())
    empty: DatabaseTarget = db_factory.new()
    roles = Roles()
    ro = roles.create(db.target, password="ro-secret-1", read_only=True)
    ro_empty = roles.create(empty, password="ro-secret-1", read_only=True)
    try:
        yield {
            "hostile": db,
            "empty": empty,
            "{db}": db.url,
            "{empty}": empty.url,
            "{ro}": ro.url,
            "{ro_empty}": ro_empty.url,
            "{nodb}": db.target.with_database("no_such_db_hostile").url,
            "{norole}": db.url.replace("://postgres@", "://nosuchrole_hostile@", 1),
            "{wrongpw}": private_pg.wrong_password_url(WRONG_PASSWORD_ROLE),
        }
    finally:
        roles.drop_all()


def _fill(value: str, targets: dict[str, Any], tmp: Path) -> str:
    for key, url in targets.items():
        if key.startswith("{"):
            value = value.replace(key, url)
    return value.replace("{tmp}", str(tmp))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, targets: dict[str, Any], tmp_path: Path) -> None:
    for name, content in case.files.items():
        path = (tmp_path / name).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    state = tmp_path / "state"
    before = files_under(state)
    args = [_fill(a, targets, tmp_path) for a in case.args]
    res = runner.invoke(cli.app, ["--state-dir", str(state), *args], env=ENV)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.exit_code == case.code, f"exit {res.exit_code}: {res.output[-2000:]} {res.exception!r}"
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert case.needle in lines[0], lines[0]
    assert lines[0].rstrip().endswith((".", "?")), lines[0]
    assert "Traceback" not in res.output and res.stdout == ""
    # nothing written: no ledger row, no platform row, no file
    db: HostileDb = targets["hostile"]
    ledger_rows = "SELECT (SELECT count(*) FROM provisioning.runs) + (SELECT count(*) FROM provisioning.run_tenants)"
    assert fetchval(db.target, ledger_rows) == 0
    assert checksum(db.target) == db.baseline
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
    assert fetchval(targets["empty"], tables) == 0
    assert files_under(state) == before
    for secret in ("ro-secret-1", "wrong-secret", "pw-a", "pw-b", ":pw@", SECRET):
        assert secret not in res.output


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 120 and len({c.id for c in CASES}) == len(CASES)
