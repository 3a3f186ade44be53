"""The schema map: how the contract's names map onto a live platform whose names differ.

Real platforms drift from the platform contract: a table is called ``organisations``
instead of ``tenants``, a column ``password_hash`` instead of ``hashed_password``, or a
column the toolkit does not know must hold a fixed value.  Rather than code changes,
``provision up --schema-map FILE.toml`` takes a small TOML file::

    schema = "public"            # the PostgreSQL schema of the platform tables
    tenant_column = "tenant_id"  # the tenant column teardown looks for in tables without a FK

    [tables.tenants]
    name = "organisations"

    [tables.users]
    name = "accounts"
    columns = { tenant_id = "org_id", hashed_password = "password_hash" }

    [tables.users.values]        # keys are column names as they are in the database
    status = "active"

    [tables.agents]
    skip = ["system_prompt"]     # a column the toolkit knows, left to the database's default

    [tables.users.vocab]         # values the toolkit writes, renamed (column names as in the database)
    role = { member = "user" }

Every name is validated as a plain SQL identifier here and, wherever it reaches SQL,
quoted (``target.identifiers.quote_identifier``): never pasted raw.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import read_input_text
from .concepts import CONTRACT_TABLES

__all__ = [
    "DEFAULT_SCHEMA",
    "DEFAULT_TENANT_COLUMN",
    "SchemaMap",
    "TableMap",
    "load_schema_map",
    "parse_schema_map",
    "validate_identifier",
]

DEFAULT_SCHEMA = "public"
DEFAULT_TENANT_COLUMN = "tenant_id"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1


def validate_identifier(name: object, what: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise ``InputError`` naming ``what``."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InputError(
            f"The {what} {name!r} is not a valid SQL identifier (letters, digits, '_' or '$', "
            "not starting with a digit)."
        )
    if len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        raise InputError(
            f"The {what} {name!r} is longer than PostgreSQL's {_MAX_IDENTIFIER_BYTES}-byte limit."
        )
    return name


@dataclass(frozen=True)
class TableMap:
    """One contract table's live name, column renames, pinned values, skipped columns and value renames."""

    name: str
    columns: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    skip: tuple[str, ...] = ()
    vocab: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def column(self, contract_column: str) -> str:
        return self.columns.get(contract_column, contract_column)


@dataclass(frozen=True)
class SchemaMap:
    """The whole map; tables absent from the file keep their contract names."""

    schema: str = DEFAULT_SCHEMA
    tenant_column: str = DEFAULT_TENANT_COLUMN
    tables: Mapping[str, TableMap] = field(default_factory=dict)

    def table(self, contract_table: str) -> TableMap:
        return self.tables.get(contract_table) or TableMap(name=contract_table)

    def table_name(self, contract_table: str) -> str:
        return self.table(contract_table).name

    def column_name(self, contract_table: str, contract_column: str) -> str:
        return self.table(contract_table).column(contract_column)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (stored with the run in the ledger)."""
        return {
            "schema": self.schema,
            "tenant_column": self.tenant_column,
            "tables": {
                t: {
                    "name": m.name,
                    "columns": dict(m.columns),
                    "values": {k: _jsonable(v) for k, v in m.values.items()},
                    "skip": list(m.skip),
                    "vocab": {k: dict(v) for k, v in m.vocab.items()},
                }
                for t, m in self.tables.items()
            },
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def load_schema_map(path: Path | None) -> SchemaMap:
    """Read and validate a TOML schema map; ``None`` gives the identity map."""
    if path is None:
        return SchemaMap()
    path = Path(path)
    text = read_input_text(path, f"The schema map {path}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"The schema map {path} is not valid TOML ({exc}).") from None
    return parse_schema_map(data, source=str(path))


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InputError(
            f"The {where} has unknown key {unknown[0]!r}; allowed keys are {', '.join(sorted(allowed))}."
        )


def parse_schema_map(data: Mapping[str, Any], *, source: str = "schema map") -> SchemaMap:
    """Validate an already-parsed map (a dict as ``tomllib`` returns it)."""
    where = f"schema map {source}" if source != "schema map" else "schema map"
    _check_keys(data, {"schema", "tenant_column", "tables"}, where)
    schema = validate_identifier(data.get("schema", DEFAULT_SCHEMA), f"schema name in the {where}")
    tenant_column = validate_identifier(
        data.get("tenant_column", DEFAULT_TENANT_COLUMN), f"tenant column in the {where}"
    )
    raw_tables = data.get("tables", {})
    if not isinstance(raw_tables, Mapping):
        raise InputError(f"The 'tables' entry of the {where} must be a table of tables.")
    tables: dict[str, TableMap] = {}
    live_names: dict[str, str] = {}
    for contract, spec in raw_tables.items():
        if contract not in CONTRACT_TABLES:
            raise InputError(
                f"The {where} names unknown table {contract!r}; the toolkit writes "
                f"{', '.join(CONTRACT_TABLES)}."
            )
        if not isinstance(spec, Mapping):
            raise InputError(f"The entry tables.{contract} of the {where} must be a table.")
        _check_keys(spec, {"name", "columns", "values", "skip", "vocab"}, f"entry tables.{contract} of the {where}")
        name = validate_identifier(spec.get("name", contract), f"table name for {contract!r} in the {where}")
        if name in live_names:
            raise InputError(
                f"The {where} maps both {live_names[name]!r} and {contract!r} to table {name!r}."
            )
        live_names[name] = contract
        columns = _parse_columns(spec.get("columns", {}), contract, where)
        values = spec.get("values", {})
        if not isinstance(values, Mapping):
            raise InputError(f"The entry tables.{contract}.values of the {where} must be a table.")
        for col in values:
            validate_identifier(col, f"pinned column of {contract!r} in the {where}")
        skip = spec.get("skip", [])
        if not isinstance(skip, list):
            raise InputError(f"The entry tables.{contract}.skip of the {where} must be a list of column names.")
        for col in skip:
            validate_identifier(col, f"skipped column of {contract!r} in the {where}")
        vocab = _parse_vocab(spec.get("vocab", {}), contract, where)
        tables[contract] = TableMap(name=name, columns=columns, values=dict(values), skip=tuple(skip), vocab=vocab)
    return SchemaMap(schema=schema, tenant_column=tenant_column, tables=tables)


def _parse_columns(raw: Any, contract: str, where: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise InputError(f"The entry tables.{contract}.columns of the {where} must be a table of renames.")
    columns: dict[str, str] = {}
    seen: dict[str, str] = {}
    for src, dst in raw.items():
        validate_identifier(src, f"column of {contract!r} in the {where}")
        validate_identifier(dst, f"new name of column {contract}.{src} in the {where}")
        if dst in seen:
            raise InputError(
                f"The {where} maps both {contract}.{seen[dst]} and {contract}.{src} to column {dst!r}."
            )
        seen[dst] = src
        columns[src] = dst
    return columns


def _parse_vocab(raw: Any, contract: str, where: str) -> dict[str, dict[str, str]]:
    if not isinstance(raw, Mapping):
        raise InputError(f"The entry tables.{contract}.vocab of the {where} must be a table of value renames.")
    out: dict[str, dict[str, str]] = {}
    for col, mapping in raw.items():
        validate_identifier(col, f"vocabulary column of {contract!r} in the {where}")
        if not isinstance(mapping, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
        ):
            raise InputError(
                f"The entry tables.{contract}.vocab.{col} of the {where} must map values to values, "
                'e.g. { member = "user" }.'
            )
        out[col] = dict(mapping)
    return out
