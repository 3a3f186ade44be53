"""The credentials pool of a run: ``<state_dir>/runs/<run_id>/credentials.csv`` + ``manifest.json``.

This module is the one owner of the pool's format: ``provision up`` writes it here, and
the ``credentials`` command and the Locust scenarios read it here, with one set of rules.

- ``credentials.csv`` (0600): a header starting ``email,password,tenant_id,tenant_slug,
  user_id,role``, one row per *active* user of the run.  A hand-made pool may add columns
  after those six; a row flagged inactive by an ``is_active``, ``active`` or ``status``
  column never enters the pool.
- ``manifest.json`` (0600), written last: its presence means the run is ready.  It names
  the CSV (``credentials``) and lists, per tenant, ids of objects the scenarios may fetch.

A pool is refused with one sentence (``CredentialsError``) when it is missing, not UTF-8,
empty, truncated (its last line has no newline), not CSV (a field over the csv module's
size limit), when its header is wrong, a row has the wrong number of fields or an empty
email, password, tenant id or user id, or an email is listed twice (case folded: logins
match emails without regard to case), and when it holds no active row.

Directories are 0700 and files 0600 whatever the umask (``statedir`` helpers create
them with explicit modes and replace files atomically).  This module never puts a
password into a message or a ``repr``; ``export`` writes them only where the user asked.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import CredentialsError, InputError, RunNotFound
from ..target.statedir import ensure_private_dir, ensure_state_dir, runs_dir, write_private_file

__all__ = [
    "CREDENTIALS_FILE",
    "CSV_HEADER",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "CredentialRow",
    "credentials_path",
    "export_credentials",
    "find_run_dir",
    "read_credentials",
    "read_manifest",
    "remove_run_dir",
    "run_dir",
    "write_credentials",
    "write_manifest",
]

CREDENTIALS_FILE = "credentials.csv"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
CSV_HEADER = ("email", "password", "tenant_id", "tenant_slug", "user_id", "role")
_MANDATORY_VALUES = ("email", "password", "tenant_id", "user_id")
_FALSE = {"false", "f", "0", "no", "n", "inactive"}


@dataclass(frozen=True)
class CredentialRow:
    """One active user of a run: what a simulated user logs in with."""

    email: str
    password: str
    tenant_id: str
    tenant_slug: str
    user_id: str
    role: str

    def __repr__(self) -> str:  # never show the password
        return f"CredentialRow(email={self.email!r}, tenant_slug={self.tenant_slug!r}, role={self.role!r})"

    def as_tuple(self) -> tuple[str, ...]:
        return (self.email, self.password, self.tenant_id, self.tenant_slug, self.user_id, self.role)

    def as_dict(self) -> dict[str, str]:
        """The row keyed by the CSV header (the JSON export and the Locust messages carry this)."""
        return dict(zip(CSV_HEADER, self.as_tuple(), strict=True))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CredentialRow:
        return cls(*(str(data.get(column, "")) for column in CSV_HEADER))


def run_dir(state_dir: Path, run_id: str) -> Path:
    return runs_dir(state_dir) / run_id


def _prepare_run_dir(state_dir: Path, run_id: str) -> Path:
    ensure_state_dir(Path(state_dir))
    ensure_private_dir(runs_dir(state_dir))
    return ensure_private_dir(run_dir(state_dir, run_id))


def write_credentials(state_dir: Path, run_id: str, rows: Iterable[CredentialRow]) -> Path:
    """Write the run's ``credentials.csv`` (0600, in a 0700 directory); return its path."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    count = 0
    for row in rows:
        writer.writerow(row.as_tuple())
        count += 1
    if count == 0:
        raise CredentialsError(f"Run {run_id} has no active user, so its credentials pool would be empty.")
    directory = _prepare_run_dir(state_dir, run_id)
    return write_private_file(directory / CREDENTIALS_FILE, buf.getvalue())


def write_manifest(state_dir: Path, run_id: str, manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest.json`` (0600): call it last, its presence marks the run ready."""
    directory = _prepare_run_dir(state_dir, run_id)
    return write_private_file(directory / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=False) + "\n")


def remove_run_dir(state_dir: Path, run_id: str) -> bool:
    """Delete a run's pool directory (a failed ``up`` calls this); True when something was removed."""
    if runs_dir(state_dir).is_symlink():  # never reach through a symlinked runs/ (ensure_state_dir refuses it)
        return False
    path = run_dir(state_dir, run_id)
    if path.is_symlink():
        path.unlink()
        return True
    if path.is_dir():
        shutil.rmtree(path)
        return True
    return False


def read_manifest(directory: Path) -> dict[str, Any]:
    """The run's manifest; ``CredentialsError`` unless it is a format-1 manifest with a list of tenants."""
    path = Path(directory) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CredentialsError(
            f"The run directory {directory} has no {MANIFEST_FILE}, so the run is not ready."
        ) from None
    except OSError as exc:
        raise CredentialsError(f"The manifest {path} cannot be read ({type(exc).__name__}).") from None
    except ValueError as exc:
        raise CredentialsError(f"The manifest {path} is not readable JSON ({type(exc).__name__}).") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or "run_id" not in data:
        raise CredentialsError(f"The manifest {path} is not a format-{MANIFEST_FORMAT} provision manifest.")
    tenants = data.get("tenants", [])
    if not isinstance(tenants, list):
        raise CredentialsError(f"The manifest {path} does not have the documented shape (a 'tenants' list).")
    if any(not isinstance(item, dict) or "id" not in item for item in tenants):
        raise CredentialsError(f"The manifest {path} has a tenant entry without an 'id'.")
    return data


def credentials_path(directory: Path) -> Path:
    """The pool CSV of a run directory: the file its manifest names, else ``credentials.csv``."""
    directory = Path(directory)
    if not (directory / MANIFEST_FILE).exists():
        return directory / CREDENTIALS_FILE
    name = read_manifest(directory).get("credentials")
    if isinstance(name, str) and name and "/" not in name and "\\" not in name and name not in (".", ".."):
        return directory / name
    return directory / CREDENTIALS_FILE


def read_credentials(source: Path) -> list[CredentialRow]:
    """The pool's active rows, in file order; ``source`` is a run directory or the CSV file itself.

    ``CredentialsError`` with one sentence for every fault the module docstring lists.
    """
    source = Path(source)
    path = credentials_path(source) if source.is_dir() else source
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        where = (
            f"The run directory {source} has no {path.name}"
            if path != source
            else f"The credentials file {path} does not exist"
        )
        raise CredentialsError(f"{where}.") from None
    except IsADirectoryError:
        raise CredentialsError(f"The credentials path {path} is a directory, not a CSV file.") from None
    except UnicodeDecodeError:
        raise CredentialsError(f"The credentials file {path} is not UTF-8 text.") from None
    except OSError as exc:
        raise CredentialsError(f"The credentials file {path} cannot be read ({type(exc).__name__}).") from None
    if not text.strip():
        raise CredentialsError(f"The credentials file {path} is empty: it has no header and no accounts.")
    if not text.endswith("\n"):
        raise CredentialsError(f"The credentials file {path} is truncated: its last line is incomplete.")
    try:
        return _parse_rows(path, csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:  # e.g. a field over the csv module's limit (128 KiB): no pool has such a field
        raise CredentialsError(f"The credentials file {path} cannot be read as CSV ({exc}).") from None


def _check_header(path: Path, header: list[str]) -> None:
    if tuple(header[: len(CSV_HEADER)]) == CSV_HEADER:
        return
    missing = [c for c in CSV_HEADER if c not in header]
    lacks = f"; it lacks the column(s) {', '.join(missing)}" if missing else ""
    raise CredentialsError(f"The credentials file {path} does not start with the header {','.join(CSV_HEADER)}{lacks}.")


def _is_inactive(row: Mapping[str, str]) -> bool:
    for column in ("is_active", "active"):
        value = row.get(column)
        if value is not None and value.strip().lower() in _FALSE:
            return True
    status = row.get("status")
    return status is not None and status.strip() != "" and status.strip().lower() != "active"


def _parse_rows(path: Path, reader: Iterable[list[str]]) -> list[CredentialRow]:
    records = iter(reader)
    header = next(records)
    _check_header(path, header)
    rows: list[CredentialRow] = []
    first_line: dict[str, int] = {}
    count = 0
    for line_no, values in enumerate(records, start=2):
        count += 1
        if len(values) != len(header):
            raise CredentialsError(
                f"The credentials file {path} is truncated or malformed at line {line_no}: "
                f"it has {len(values)} fields instead of {len(header)}."
            )
        record = dict(zip(header, values, strict=True))
        empty = [c for c in _MANDATORY_VALUES if not record[c].strip()]
        if empty:
            raise CredentialsError(f"The credentials file {path} has an empty {empty[0]} at line {line_no}.")
        email = record["email"].strip()
        key = email.lower()
        if key in first_line:
            raise CredentialsError(
                f"The credentials file {path} lists {email} twice (lines {first_line[key]} and {line_no})."
            )
        first_line[key] = line_no
        if not _is_inactive(record):
            password = record["password"]
            rows.append(CredentialRow(email, password, *(record[c].strip() for c in CSV_HEADER[2:])))
    if count == 0:
        raise CredentialsError(f"The credentials file {path} is empty: it has a header but no accounts.")
    if not rows:
        raise CredentialsError(f"The credentials file {path} holds no active account ({count} inactive rows).")
    return rows


def _created_at(manifest: Mapping[str, Any]) -> datetime:
    try:
        value = datetime.fromisoformat(str(manifest["created_at"]))
    except (KeyError, ValueError):
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def find_run_dir(state_dir: Path, run_id: str | None = None) -> Path:
    """The pool directory of ``run_id``, or of the newest ready run (newest manifest ``created_at``)."""
    base = runs_dir(Path(state_dir))
    if run_id is not None:
        if not run_id or "/" in run_id or run_id in {".", ".."}:
            raise InputError(f"{run_id!r} is not a run id.")
        path = base / run_id
        if not (path / MANIFEST_FILE).is_file():
            raise RunNotFound(
                f"The state directory {state_dir} has no ready run {run_id!r}; a run's passwords are kept only "
                "there (the database holds their bcrypt hashes), so lost credentials can be regenerated only by "
                "a new run ('provision up').",
                run_id=run_id,
            )
        return path
    best: tuple[datetime, Path] | None = None
    if base.is_dir():
        for manifest in base.glob(f"*/{MANIFEST_FILE}"):
            try:
                created = _created_at(read_manifest(manifest.parent))
            except CredentialsError:
                continue
            if best is None or created > best[0]:
                best = (created, manifest.parent)
    if best is None:
        raise RunNotFound(f"The state directory {state_dir} holds no ready run; run 'provision up' first.")
    return best[1]


def export_credentials(
    state_dir: Path, run_id: str | None = None, *, format: str = "csv", output: Path | None = None
) -> tuple[str, str | Path]:
    """Export a run's pool as CSV or JSON; to ``output`` (0600) when given, else return the text.

    Returns ``(run_id, path_or_text)``.
    """
    if format not in ("csv", "json"):
        raise InputError(f"The export format must be 'csv' or 'json', not {format!r}.")
    directory = find_run_dir(state_dir, run_id)
    manifest = read_manifest(directory)
    rows = read_credentials(directory)
    if format == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(r.as_tuple() for r in rows)
        text = buf.getvalue()
    else:
        text = (
            json.dumps(
                {
                    "run_id": manifest["run_id"],
                    "label": manifest.get("label"),
                    "scale": manifest.get("scale"),
                    "count": len(rows),
                    "credentials": [r.as_dict() for r in rows],
                },
                indent=2,
            )
            + "\n"
        )
    if output is None:
        return str(manifest["run_id"]), text
    out = Path(output)
    if out.is_dir():
        raise InputError(f"The output path {out} is a directory.")
    if not out.parent.is_dir():
        raise InputError(f"The directory of the output path {out} does not exist.")
    return str(manifest["run_id"]), write_private_file(out, text)
