"""A run's logins and known objects: the credentials rows and the manifest, built from the dataset.

The dataset knows every user (email, password slot, tenant, role, active flag) and
which rows belong to which tenant, so the pool is rebuilt from it after the load, not
read back from the database.  Only active users enter the pool; the manifest lists, per
tenant, a few ids of objects the scenarios can fetch (never a soft-deleted agent).
Writing goes through ``credentials`` (0700/0600); the manifest is written last.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..generate.dataset import Dataset, IdSpace
from ..generate.passwords import PasswordSet
from ..runs.poolfile import MANIFEST_FORMAT, CredentialRow, run_dir, write_credentials, write_manifest
from ..schema.reflect import TablePlan
from ..target.copyload import Row, RowTransform

__all__ = [
    "MANIFEST_LIMITS",
    "PoolFiles",
    "build_pool_files",
    "credential_rows",
    "tenant_entries",
    "unique_password_hook",
]

MANIFEST_LIMITS: Mapping[str, int] = {"agents": 50, "workflows": 20, "collections": 20, "mcp_servers": 20}


def credential_rows(
    dataset: Dataset, ids: IdSpace, passwords: PasswordSet, *, unique: bool
) -> Iterator[CredentialRow]:
    """One row per active user; ``unique``: user ``i`` has password ``i``, else its slot's."""
    tenant_ids: dict[int, str] = {}
    for user in dataset.users():
        if not user.is_active:
            continue
        t = user.tenant_index
        if t not in tenant_ids:
            tenant_ids[t] = str(ids.id("tenants", t))
        password = passwords.passwords[user.index if unique else user.password_slot]
        yield CredentialRow(
            user.email,
            password,
            tenant_ids[t],
            dataset.tenant_slug(t),
            str(ids.id("users", user.index)),
            user.role,
        )


def _first_ids(dataset: Dataset, ids: IdSpace, table: str, tenant: int, limit: int) -> list[str]:
    out: list[str] = []
    for index in dataset.tenant_range(table, tenant):
        if len(out) >= limit:
            break
        if table == "agents" and dataset.agent_is_deleted(index):
            continue
        out.append(str(ids.id(table, index)))
    return out


def tenant_entries(dataset: Dataset, ids: IdSpace, active_users: Mapping[int, int]) -> list[dict[str, Any]]:
    entries = []
    for t in range(dataset.spec.counts.tenants):
        entry: dict[str, Any] = {
            "id": str(ids.id("tenants", t)),
            "slug": dataset.tenant_slug(t),
            "name": dataset.tenant_name(t),
            "active_users": active_users.get(t, 0),
        }
        for table, limit in MANIFEST_LIMITS.items():
            entry[table] = _first_ids(dataset, ids, table, t, limit)
        entries.append(entry)
    return entries


@dataclass(frozen=True)
class PoolFiles:
    """The credentials file (written) and the manifest (``write_manifest()``: call it last)."""

    run_id: str
    state_dir: Path
    run_dir: Path
    credentials_path: Path
    active_users: int
    manifest: Mapping[str, Any]

    def write_manifest(self) -> Path:
        return write_manifest(self.state_dir, self.run_id, self.manifest)


def build_pool_files(
    *,
    run_id: str,
    state_dir: Path,
    dataset: Dataset,
    ids: IdSpace,
    passwords: PasswordSet,
    unique: bool,
    manifest_base: Mapping[str, Any],
) -> PoolFiles:
    """Write ``credentials.csv`` now and prepare the manifest (format ``MANIFEST_FORMAT``, see ``runs.poolfile``)."""
    per_tenant: dict[int, int] = {}
    rows = list(credential_rows(dataset, ids, passwords, unique=unique))
    for user in dataset.users():
        if user.is_active:
            per_tenant[user.tenant_index] = per_tenant.get(user.tenant_index, 0) + 1
    path = write_credentials(state_dir, run_id, rows)
    manifest = {
        "format": MANIFEST_FORMAT,
        "run_id": run_id,
        **{
            k: manifest_base[k]
            for k in (
                "label",
                "scale",
                "seed",
                "fingerprint",
                "toolkit_version",
                "created_at",
                "target",
                "counts",
            )
        },
        "credentials": path.name,
        "tenants": tenant_entries(dataset, ids, per_tenant),
    }
    return PoolFiles(run_id, state_dir, run_dir(state_dir, run_id), path, len(rows), manifest)


def unique_password_hook(plan: TablePlan, hashes: Sequence[str]) -> Any:
    """For ``--unique-passwords``: a per-piece transform giving user ``i`` hash ``i``."""
    column = plan.concept_column("password_hash")
    pos = plan.position(column) if column else None

    def for_piece(piece: Any) -> RowTransform | None:
        if pos is None:
            return None
        counter = iter(range(piece.start, piece.stop))

        def replace(row: Row) -> Row:
            return (*row[:pos], hashes[next(counter)], *row[pos + 1 :])

        return replace

    return for_piece


def pending_hashes(run_id: str, slots: int) -> tuple[str, ...]:
    """Placeholders written as users' password hashes while bcrypt still runs.

    They are not bcrypt strings, so no login can match them; the run's tenants are on
    hold anyway until the run is ready.  ``apply_hashes`` replaces them.
    """
    return tuple(f"!pending-{run_id}-{k}" for k in range(slots))


async def apply_hashes(
    conn: Any,
    plan: TablePlan,
    column: str,
    tenant_ids: Sequence[Any],
    placeholders: Sequence[str],
    hashes: Sequence[str],
) -> int:
    """Swap every placeholder of the run's users for its real hash in one statement; return rows updated."""
    from ..target.identifiers import quote_identifier

    table, col, tenant = plan.qualified, quote_identifier(column), quote_identifier(plan.tenant_column)
    status = await conn.execute(
        f"UPDATE {table} SET {col} = h.hash FROM unnest($1::text[], $2::text[]) AS h(pending, hash) "
        f"WHERE {table}.{tenant} = ANY($3::{plan.tenant_array_type}) AND {table}.{col} = h.pending",
        list(placeholders),
        list(hashes[: len(placeholders)]),
        list(tenant_ids),
    )
    return int(str(status).split()[-1])
