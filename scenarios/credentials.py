"""Reading a run's credentials pool (``credentials.csv``) and its manifest (``manifest.json``).

Both are written by ``provision up`` under ``<state_dir>/runs/<run_id>/`` (see the
team's interface notes).  The pool is read once, on the Locust master or the local
runner, and validated strictly: a missing, empty or truncated file, a row without an
email or password, or an email listed twice ends the run before any load with one
sentence (``CredentialsError``, exit code 12).  Rows flagged inactive (an ``is_active``,
``active`` or ``status`` column, if a pool carries one) never enter the pool.

Nothing here ever puts a password into a message or a ``repr``.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentic_loadkit.provisioning.errors import CredentialsError, RunNotFound
from agentic_loadkit.provisioning.runs.poolfile import find_run_dir
from agentic_loadkit.provisioning.target.statedir import default_state_dir, runs_dir

__all__ = [
    "REQUIRED_COLUMNS",
    "Account",
    "PoolSource",
    "TenantCatalog",
    "TenantObjects",
    "load_accounts",
    "load_catalog",
    "resolve_pool_source",
]

REQUIRED_COLUMNS = ("email", "password", "tenant_id", "tenant_slug", "user_id", "role")
_MANDATORY_VALUES = ("email", "password", "tenant_id", "user_id")
_FALSE = {"false", "f", "0", "no", "n", "inactive"}
_KINDS = ("agents", "workflows", "collections", "mcp_servers")


@dataclass(frozen=True)
class Account:
    """One provisioned, active user; ``password`` never shows in ``repr``."""

    email: str
    password: str = field(repr=False)
    tenant_id: str
    tenant_slug: str
    user_id: str
    role: str

    def to_wire(self) -> dict[str, str]:
        return {
            "email": self.email,
            "password": self.password,
            "tenant_id": self.tenant_id,
            "tenant_slug": self.tenant_slug,
            "user_id": self.user_id,
            "role": self.role,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Account:
        return cls(**{k: str(data.get(k, "")) for k in REQUIRED_COLUMNS})


@dataclass(frozen=True)
class TenantObjects:
    """Ids of one tenant's objects, as the manifest lists them (never soft-deleted ones)."""

    tenant_id: str
    slug: str = ""
    agents: tuple[str, ...] = ()
    workflows: tuple[str, ...] = ()
    collections: tuple[str, ...] = ()
    mcp_servers: tuple[str, ...] = ()


@dataclass(frozen=True)
class TenantCatalog:
    """What the manifest says about a run: its id and each tenant's object ids."""

    run_id: str | None = None
    tenants: dict[str, TenantObjects] = field(default_factory=dict)

    def objects_of(self, tenant_id: str) -> TenantObjects:
        return self.tenants.get(tenant_id) or TenantObjects(tenant_id)


@dataclass(frozen=True)
class PoolSource:
    """Where a pool comes from: the CSV and, when present, the manifest beside it."""

    credentials: Path
    manifest: Path | None


def _is_inactive(row: dict[str, str]) -> bool:
    for column in ("is_active", "active"):
        value = row.get(column)
        if value is not None and value.strip().lower() in _FALSE:
            return True
    status = row.get("status")
    return status is not None and status.strip() != "" and status.strip().lower() != "active"


def load_accounts(path: Path) -> list[Account]:
    """The pool's active accounts, in file order; raises ``CredentialsError`` with one sentence."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise CredentialsError(
            f"The credentials file {path} does not exist; run `provision up` first or pass --credentials."
        ) from None
    except IsADirectoryError:
        raise CredentialsError(f"The credentials path {path} is a directory without a credentials.csv.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"The credentials file {path} cannot be read ({exc.__class__.__name__}).") from None
    if not text.strip():
        raise CredentialsError(f"The credentials file {path} is empty: it holds no accounts.")
    if not text.endswith("\n"):
        raise CredentialsError(f"The credentials file {path} is truncated: its last line is incomplete.")
    try:
        return _parse_accounts(path, text)
    except csv.Error as exc:  # e.g. a field over the csv module's limit (128 KiB): no pool has such a field
        raise CredentialsError(f"The credentials file {path} cannot be read as CSV ({exc}).") from None


def _parse_accounts(path: Path, text: str) -> list[Account]:
    reader = csv.reader(text.splitlines())
    header = [h.strip() for h in next(reader)]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CredentialsError(
            f"The credentials file {path} lacks the column(s) {', '.join(missing)}; "
            f"its header must be {','.join(REQUIRED_COLUMNS)}."
        )
    accounts: list[Account] = []
    first_line: dict[str, int] = {}
    rows = 0
    for line_no, values in enumerate(reader, start=2):
        if not values or all(not v.strip() for v in values):
            continue
        rows += 1
        if len(values) != len(header):
            raise CredentialsError(
                f"The credentials file {path} is truncated or malformed at line {line_no}: "
                f"expected {len(header)} fields, found {len(values)}."
            )
        row = dict(zip(header, values, strict=True))
        empty = [c for c in _MANDATORY_VALUES if not row[c].strip()]
        if empty:
            raise CredentialsError(f"The credentials file {path} has an empty {empty[0]} at line {line_no}.")
        email = row["email"].strip()
        key = email.lower()
        if key in first_line:
            raise CredentialsError(
                f"The credentials file {path} lists the email {email} twice (lines {first_line[key]} and {line_no})."
            )
        first_line[key] = line_no
        if _is_inactive(row):
            continue
        accounts.append(
            Account(
                email=email,
                password=row["password"],
                tenant_id=row["tenant_id"].strip(),
                tenant_slug=row["tenant_slug"].strip(),
                user_id=row["user_id"].strip(),
                role=row["role"].strip(),
            )
        )
    if rows == 0:
        raise CredentialsError(f"The credentials file {path} is empty: it has a header but no accounts.")
    if not accounts:
        raise CredentialsError(f"The credentials file {path} holds no active account ({rows} inactive rows).")
    return accounts


def _ids(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value)


def load_catalog(path: Path | None) -> TenantCatalog:
    """The manifest's run id and object ids per tenant; an empty catalog when there is no manifest."""
    if path is None:
        return TenantCatalog()
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return TenantCatalog()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CredentialsError(f"The manifest {path} is not readable JSON ({exc.__class__.__name__}).") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tenants", []), list):
        raise CredentialsError(f"The manifest {path} does not have the documented shape (a 'tenants' list).")
    tenants: dict[str, TenantObjects] = {}
    for item in doc.get("tenants", []):
        if not isinstance(item, dict) or "id" not in item:
            raise CredentialsError(f"The manifest {path} has a tenant entry without an 'id'.")
        tid = str(item["id"])
        tenants[tid] = TenantObjects(tid, str(item.get("slug", "")), *(_ids(item.get(k)) for k in _KINDS))
    run_id = doc.get("run_id")
    return TenantCatalog(run_id=str(run_id) if run_id is not None else None, tenants=tenants)


def _manifest_credentials_name(run_dir: Path) -> str:
    try:
        doc = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        name = doc.get("credentials") if isinstance(doc, dict) else None
    except (OSError, ValueError):
        name = None
    if isinstance(name, str) and name and os.sep not in name and name not in (".", ".."):
        return name
    return "credentials.csv"


def resolve_pool_source(credentials: str | None, state_dir: str | None) -> PoolSource:
    """``--credentials`` (a CSV or a run directory), else the newest ready run in the state directory."""
    if credentials:
        path = Path(credentials)
        if path.is_dir():
            manifest = path / "manifest.json"
            csv_path = path / _manifest_credentials_name(path)
            return PoolSource(csv_path, manifest if manifest.exists() else None)
        manifest = path.parent / "manifest.json"
        return PoolSource(path, manifest if manifest.exists() else None)
    base = Path(state_dir) if state_dir else default_state_dir()
    try:
        run_dir = find_run_dir(base)
    except RunNotFound:
        raise CredentialsError(
            f"No ready run was found under {runs_dir(base)}; run `provision up` first or pass --credentials PATH."
        ) from None
    return PoolSource(run_dir / _manifest_credentials_name(run_dir), run_dir / "manifest.json")
