"""Property-based tests (hypothesis) of the schema-map parser, the part of the input that reaches SQL
as identifiers.  (The profile parser, overrides, apportionment and the generators' invariants have
theirs in ``tests/provisioning/test_generators_properties.py``.)

- any valid map parses to exactly what it says, and survives the round trip through the ledger
  (``as_dict`` → ``parse_schema_map``, which is how ``down`` reads the map a run was made with);
- any TOML text, and any nested structure, either parses or fails with ONE ``InputError`` sentence,
  never another exception;
- an accepted identifier can never carry SQL: no quote, semicolon, whitespace, NUL or comment, at
  most 63 bytes, and SQLAlchemy's quoting of it is the name between double quotes.
"""

from __future__ import annotations

import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
from agentic_loadkit.provisioning.errors import InputError
from agentic_loadkit.provisioning.schema.schemamap import (
    CONTRACT_TABLES,
    SchemaMap,
    load_schema_map,
    parse_schema_map,
    validate_identifier,
)
from agentic_loadkit.provisioning.target.identifiers import quote_identifier
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

QUICK = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")

identifiers = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_$]{0,30}\Z")
scalars = st.one_of(st.integers(-(2**31), 2**31), st.booleans(), st.text(max_size=20), st.floats(allow_nan=False))


@st.composite
def valid_maps(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if draw(st.booleans()):
        data["schema"] = draw(identifiers)
    if draw(st.booleans()):
        data["tenant_column"] = draw(identifiers)
    chosen = draw(st.lists(st.sampled_from(CONTRACT_TABLES), unique=True))
    names = draw(st.lists(identifiers, min_size=len(chosen), max_size=len(chosen), unique=True))
    tables: dict[str, Any] = {}
    for contract, name in zip(chosen, names, strict=True):
        spec: dict[str, Any] = {"name": name}
        sources = draw(st.lists(identifiers, unique=True, max_size=4))
        targets = draw(st.lists(identifiers, unique=True, min_size=len(sources), max_size=len(sources)))
        if sources:
            spec["columns"] = dict(zip(sources, targets, strict=True))
        values = draw(st.dictionaries(identifiers, scalars, max_size=3))
        if values:
            spec["values"] = values
        tables[contract] = spec
    keep_empty: bool = draw(st.booleans())
    if tables or keep_empty:
        data["tables"] = tables
    return data


@QUICK
@given(data=valid_maps())
def test_any_valid_map_parses_to_exactly_what_it_says_and_round_trips(data: dict[str, Any]) -> None:
    m = parse_schema_map(data)
    assert m.schema == data.get("schema", "public")
    assert m.tenant_column == data.get("tenant_column", "tenant_id")
    for contract in CONTRACT_TABLES:
        spec = data.get("tables", {}).get(contract)
        assert m.table_name(contract) == (spec["name"] if spec else contract)
        for src, dst in (spec or {}).get("columns", {}).items():
            assert m.column_name(contract, src) == dst
        assert m.column_name(contract, "some_unmapped_column_") == (spec or {}).get("columns", {}).get(
            "some_unmapped_column_", "some_unmapped_column_"
        )
    again = parse_schema_map(m.as_dict(), source="stored with run rtest0001")
    assert again.as_dict() == m.as_dict() and isinstance(again, SchemaMap)


@QUICK
@given(text=st.text(max_size=200))
def test_any_toml_text_parses_or_gives_one_input_error_sentence(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "map.toml"
        path.write_text(text, encoding="utf-8")
        try:
            load_schema_map(path)
        except InputError as exc:
            assert "\n" not in exc.message, exc.message
            assert exc.message.startswith("The schema map ")


json_like = st.recursive(
    st.one_of(scalars, st.none()),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from([*CONTRACT_TABLES, "name", "columns", "values", "tables",
                                                   "schema", "tenant_column"]), st.text(max_size=8)),
                        children, max_size=4),
    ),
    max_leaves=12,
)


@QUICK
@given(data=st.dictionaries(st.sampled_from(["schema", "tenant_column", "tables", "x"]), json_like, max_size=3))
def test_any_structure_parses_or_gives_one_input_error(data: dict[str, Any]) -> None:
    try:
        m = parse_schema_map(data)
    except InputError as exc:
        assert "\n" not in exc.message and exc.message.endswith((".", "?")), exc.message
        return
    # whatever was accepted is made of plain identifiers only
    names = [m.schema, m.tenant_column]
    for t in m.tables.values():
        names += [t.name, *t.columns.keys(), *t.columns.values(), *t.values.keys()]
    assert all(PLAIN.match(n) and len(n.encode()) <= 63 for n in names), names


@QUICK
@given(name=st.text(max_size=80))
def test_accepted_identifiers_cannot_carry_sql(name: str) -> None:
    try:
        accepted = validate_identifier(name, "test name")
    except InputError as exc:
        assert "\n" not in exc.message and "test name" in exc.message
        assert not (PLAIN.match(name) and len(name.encode()) <= 63)
        return
    assert accepted == name and PLAIN.match(name) and len(name.encode()) <= 63
    assert not any(c in name for c in "\"'; \t\n\x00-/*")
    assert quote_identifier(name) == f'"{name}"'


@pytest.mark.parametrize(
    "text",
    [
        '[tables.users]\nname = "users; DROP TABLE agents"\n',
        '[tables.users]\nname = "a\\"b"\n',
        '[tables.users]\nname = "users\\u0000"\n',
        '[tables.users]\nname = "ｕsers"\n',  # a full-width letter: looks plain, is not
        '[tables.users]\nname = "user name"\n',
        '[tables.users]\nname = "1users"\n',
        '[tables.users]\nname = ""\n',
        f'[tables.users]\nname = "{"u" * 64}"\n',
        '[tables.users.columns]\nemail = "email --"\n',
        '[tables.users.values]\n"status\\u0000" = "x"\n',
        'schema = "public\\"; DROP SCHEMA x; --"\n',
    ],
)
def test_hostile_identifiers_in_toml_are_refused(text: str, tmp_path: Path) -> None:
    tomllib.loads(text)  # valid TOML: the refusal is the map's own
    path = tmp_path / "map.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_schema_map(path)
    assert "\n" not in info.value.message
