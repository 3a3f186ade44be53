"""The credentials pool of a run: ``<state_dir>/runs/<run_id>/credentials.csv`` + ``manifest.json``.

The format is fixed in ``/tmp/interfaces.md`` (the Locust scenarios read it):

- ``credentials.csv`` (0600): ``email,password,tenant_id,tenant_slug,user_id,role``, one
  row per *active* user of the run;
- ``manifest.json`` (0600), written last: its presence means the run is ready.

Directories are 0700 and files 0600 whatever the umask (``statedir`` helpers create
them with explicit modes and replace files atomically).  This module never prints a
password; ``export`` writes them only where the user asked (a file, or stdout).
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
from typing import Any, Literal

from ..errors import CredentialsError, InputError, RunNotFound
from ..target.statedir import ensure_private_dir, ensure_state_dir, runs_dir, write_private_file

__all__ = [
    "CREDENTIALS_FILE",
    "CSV_HEADER",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "CredentialRow",
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
ExportFormat = Literal["csv", "json"]


@dataclass(frozen=True)
class CredentialRow:
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
    return write_private_file(
        directory / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    )


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
    path = Path(directory) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CredentialsError(
            f"The run directory {directory} has no {MANIFEST_FILE}, so the run is not ready."
        ) from None
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"The manifest {path} cannot be read ({type(exc).__name__}).") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or "run_id" not in data:
        raise CredentialsError(f"The manifest {path} is not a format-{MANIFEST_FORMAT} provision manifest.")
    return data


def read_credentials(directory: Path) -> list[CredentialRow]:
    """The pool's rows; ``CredentialsError`` if the file is missing, malformed, empty or has duplicates."""
    path = Path(directory) / CREDENTIALS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CredentialsError(f"The run directory {directory} has no {CREDENTIALS_FILE}.") from None
    except UnicodeDecodeError:
        raise CredentialsError(f"The credentials file {path} is not UTF-8 text.") from None
    except OSError as exc:
        raise CredentialsError(
            f"The credentials file {path} cannot be read ({type(exc).__name__})."
        ) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != CSV_HEADER:
        raise CredentialsError(
            f"The credentials file {path} does not start with the header {','.join(CSV_HEADER)}."
        )
    rows: list[CredentialRow] = []
    seen: set[str] = set()
    for lineno, fields in enumerate(reader, start=2):
        if len(fields) != len(CSV_HEADER):
            raise CredentialsError(
                f"Line {lineno} of {path} has {len(fields)} fields instead of {len(CSV_HEADER)}."
            )
        row = CredentialRow(*fields)
        if row.email in seen:
            raise CredentialsError(f"The credentials file {path} lists {row.email} twice.")
        seen.add(row.email)
        rows.append(row)
    if not rows:
        raise CredentialsError(f"The credentials file {path} has no rows.")
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
                    "credentials": [dict(zip(CSV_HEADER, r.as_tuple(), strict=True)) for r in rows],
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
