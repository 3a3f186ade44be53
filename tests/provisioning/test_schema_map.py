"""The TOML schema map: renames, pinned values, validation of every identifier, one-sentence errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from agentic_loadkit.provisioning.errors import InputError
from agentic_loadkit.provisioning.schema.schemamap import (
    SchemaMap,
    load_schema_map,
    parse_schema_map,
)
from agentic_loadkit.provisioning.target.identifiers import qualified_name, quote_identifier

GOOD = """
schema = "acme"
tenant_column = "org_id"

[tables.tenants]
name = "organisations"

[tables.users]
name = "accounts"
columns = { tenant_id = "org_id", hashed_password = "password_hash" }

[tables.users.values]
status = "active"
"""


def test_a_full_map_is_read(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text(GOOD)
    m = load_schema_map(path)
    assert (m.schema, m.tenant_column) == ("acme", "org_id")
    assert m.table_name("tenants") == "organisations"
    assert m.table_name("agents") == "agents"  # unmapped tables keep their contract name
    assert m.column_name("users", "hashed_password") == "password_hash"
    assert m.column_name("users", "email") == "email"
    assert dict(m.table("users").values) == {"status": "active"}
    # what up stores in the ledger parses back to the same map
    assert parse_schema_map(m.as_dict()) == m


def test_no_map_is_the_contract() -> None:
    m = load_schema_map(None)
    assert m == SchemaMap()
    assert (m.schema, m.tenant_column, m.table_name("mcp_servers")) == ("public", "tenant_id", "mcp_servers")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('colour = "blue"', "unknown key 'colour'"),
        ('[tables.widgets]\nname = "w"', "unknown table 'widgets'"),
        ('[tables.agents]\nname = "agents; DROP TABLE users"', "not a valid SQL identifier"),
        ('[tables.agents]\nname = "1agents"', "not a valid SQL identifier"),
        ('schema = "pub lic"', "not a valid SQL identifier"),
        ('[tables.agents]\nname = "' + "a" * 64 + '"', "63-byte limit"),
        (
            '[tables.agents]\nname = "x"\n[tables.users]\nname = "x"',
            "maps both 'agents' and 'users' to table 'x'",
        ),
        ('[tables.users]\ncolumns = { email = "login", username = "login" }', "to column 'login'"),
        ('[tables.users]\ncolumns = { email = "lo\\"gin" }', "not a valid SQL identifier"),
        ("[tables.users]\ncolour = 1", "unknown key 'colour'"),
        ('[tables.users]\ncolumns = "email"', "must be a table of renames"),
        ("tables = 3", "must be a table of tables"),
        ("[tables.users\n", "not valid TOML"),
    ],
)
def test_bad_maps_are_one_sentence(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "map.toml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_schema_map(path)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_map_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_schema_map(tmp_path / "nope.toml")


def test_identifiers_are_always_quoted_by_sqlalchemy() -> None:
    assert quote_identifier("agents") == '"agents"'
    assert quote_identifier("Select") == '"Select"'
    assert quote_identifier('we"ird') == '"we""ird"'  # embedded quotes are doubled, never closed
    assert qualified_name("acme", "bots") == '"acme"."bots"'
