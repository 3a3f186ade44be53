"""Where the scenarios' credentials pool comes from, and what its manifest says about each tenant.

The pool's format and its rules belong to ``provisioning.runs.poolfile``, which reads
the CSV (``read_credentials``) and the manifest (``read_manifest``) for the scenarios as
for the ``credentials`` command.  The pool is read once, on the Locust master or the
local runner; any fault ends the run before any load with one sentence
(``CredentialsError``, exit code 12).  This module only finds the files (``--credentials``
or the newest ready run) and turns the manifest into a ``TenantCatalog``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agentic_loadkit.provisioning.errors import CredentialsError, RunNotFound
from agentic_loadkit.provisioning.runs.poolfile import MANIFEST_FILE, credentials_path, find_run_dir, read_manifest
from agentic_loadkit.provisioning.target.statedir import default_state_dir, runs_dir

__all__ = ["PoolSource", "TenantCatalog", "TenantObjects", "load_catalog", "resolve_pool_source"]

_KINDS = ("agents", "workflows", "collections", "mcp_servers")


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


def _ids(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(str(v) for v in value)


def load_catalog(path: Path | None) -> TenantCatalog:
    """The manifest's run id and object ids per tenant; an empty catalog when there is no manifest."""
    if path is None or not Path(path).exists():
        return TenantCatalog()
    doc = read_manifest(Path(path).parent)
    tenants: dict[str, TenantObjects] = {}
    for item in doc.get("tenants", []):
        tid = str(item["id"])
        tenants[tid] = TenantObjects(tid, str(item.get("slug", "")), *(_ids(item.get(k)) for k in _KINDS))
    return TenantCatalog(run_id=str(doc["run_id"]), tenants=tenants)


def resolve_pool_source(credentials: str | None, state_dir: str | None) -> PoolSource:
    """``--credentials`` (a CSV or a run directory), else the newest ready run in the state directory."""
    if credentials:
        path = Path(credentials)
        directory = path if path.is_dir() else path.parent
        manifest = directory / MANIFEST_FILE
        csv_path = credentials_path(path) if path.is_dir() else path
        return PoolSource(csv_path, manifest if manifest.exists() else None)
    base = Path(state_dir) if state_dir else default_state_dir()
    try:
        run_dir = find_run_dir(base)
    except RunNotFound:
        raise CredentialsError(
            f"No ready run was found under {runs_dir(base)}; run `provision up` first or pass --credentials PATH."
        ) from None
    return PoolSource(credentials_path(run_dir), run_dir / MANIFEST_FILE)
