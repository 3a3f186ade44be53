"""The credentials pool on disk: exact format, private modes whatever the umask, reading back, export."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

import pytest
from agentic_loadkit.provisioning.errors import CredentialsError, InputError, RunNotFound, StateDirUnsafe
from agentic_loadkit.provisioning.runs.poolfile import (
    CSV_HEADER,
    CredentialRow,
    export_credentials,
    find_run_dir,
    read_credentials,
    read_manifest,
    write_credentials,
    write_manifest,
)


def _rows(n: int, prefix: str = "u") -> list[CredentialRow]:
    return [
        CredentialRow(
            f"{prefix}{i}@r1.acme.example.com", f"pw{i:04d}Secret", "t1", "acme-r1-0", f"id{i}", "member"
        )
        for i in range(n)
    ]


def _manifest(run_id: str, created_at: str) -> dict[str, object]:
    return {
        "format": 1,
        "run_id": run_id,
        "label": None,
        "scale": "small",
        "seed": 1,
        "fingerprint": "f" * 64,
        "toolkit_version": "0.1.0",
        "created_at": created_at,
        "target": "postgresql://u:***@127.0.0.1/x",
        "counts": {},
        "credentials": "credentials.csv",
        "tenants": [],
    }


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_pool_files_are_private_under_umask_000(tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = os.umask(0)
    try:
        creds = write_credentials(state, "r1", _rows(3))
        manifest = write_manifest(state, "r1", _manifest("r1", "2025-01-01T00:00:00+00:00"))
    finally:
        os.umask(old)
    assert _mode(state / "runs") == 0o700
    assert _mode(state / "runs" / "r1") == 0o700
    assert _mode(creds) == 0o600 and _mode(manifest) == 0o600
    assert not _mode(state) & stat.S_IWOTH
    lines = creds.read_text().splitlines()
    assert lines[0] == "email,password,tenant_id,tenant_slug,user_id,role"
    assert len(lines) == 4
    assert read_credentials(creds.parent) == _rows(3)
    assert read_manifest(creds.parent)["run_id"] == "r1"


def test_repr_never_shows_a_password() -> None:
    row = _rows(1)[0]
    assert row.password not in repr(row)


def test_empty_pool_refused(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="no active user"):
        write_credentials(tmp_path, "r1", [])
    assert not (tmp_path / "runs" / "r1" / "credentials.csv").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("email,password\nx,y\n", "does not start with the header"),
        (",".join(CSV_HEADER) + "\n", "has a header but no accounts"),
        (",".join(CSV_HEADER) + "\na,b,c\n", "has 3 fields"),
        (",".join(CSV_HEADER) + "\na,b,c,d,e,f\na,x,c,d,e,f\n", "lists a twice"),
    ],
)
def test_malformed_pools_are_refused(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "credentials.csv").write_text(content)
    with pytest.raises(CredentialsError, match=needle):
        read_credentials(tmp_path)


# -- rules the scenarios' reader had and this one lacked, before the two became one ----------------


def _pool(directory: Path, body: str, header: str = ",".join(CSV_HEADER)) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "credentials.csv").write_text(header + "\n" + body)
    return directory


def test_a_truncated_pool_is_refused(tmp_path: Path) -> None:
    # six fields on the last line, but no newline: the writer's last row never got to the disk whole
    _pool(tmp_path, "a@x.test,pw-a,t1,one,u1,member\nb@x.test,pw-b,t1,one,u2,mem")
    with pytest.raises(CredentialsError, match="is truncated: its last line is incomplete"):
        read_credentials(tmp_path)


def test_emails_differing_only_in_case_are_duplicates(tmp_path: Path) -> None:
    _pool(tmp_path, "a@x.test,pw-a,t1,one,u1,member\nA@X.test,pw-b,t1,one,u2,member\n")
    with pytest.raises(CredentialsError, match=r"lists A@X.test twice \(lines 2 and 3\)"):
        read_credentials(tmp_path)


def test_an_empty_password_is_refused(tmp_path: Path) -> None:
    _pool(tmp_path, "a@x.test,,t1,one,u1,member\n")
    with pytest.raises(CredentialsError, match="has an empty password at line 2"):
        read_credentials(tmp_path)


def test_a_field_over_the_csv_size_limit_is_one_sentence(tmp_path: Path) -> None:
    _pool(tmp_path, "a@x.test,pw-a,t1,one,u1," + "x" * 200_000 + "\n")
    with pytest.raises(CredentialsError, match="cannot be read as CSV"):
        read_credentials(tmp_path)


def test_inactive_rows_of_a_hand_made_pool_are_left_out(tmp_path: Path) -> None:
    body = "a@x.test,pw-a,t1,one,u1,member,true\nb@x.test,pw-b,t1,one,u2,member,false\n"
    _pool(tmp_path, body, header=",".join(CSV_HEADER) + ",is_active")
    assert [row.email for row in read_credentials(tmp_path)] == ["a@x.test"]


def test_the_manifest_names_the_pool_file(tmp_path: Path) -> None:
    write_credentials(tmp_path, "r1", _rows(1))
    directory = tmp_path / "runs" / "r1"
    (directory / "credentials.csv").rename(directory / "pool.csv")
    write_manifest(tmp_path, "r1", {**_manifest("r1", "2025-01-01T00:00:00+00:00"), "credentials": "pool.csv"})
    assert read_credentials(directory) == _rows(1)


def test_a_manifest_whose_tenants_are_not_a_list_is_refused(tmp_path: Path) -> None:
    write_manifest(tmp_path, "r1", {**_manifest("r1", "2025-01-01T00:00:00+00:00"), "tenants": {"t1": {}}})
    with pytest.raises(CredentialsError, match="a 'tenants' list"):
        read_manifest(tmp_path / "runs" / "r1")


def test_newest_ready_run_is_found_by_manifest_time(tmp_path: Path) -> None:
    for run_id, created in (
        ("rold", "2025-01-01T00:00:00+00:00"),
        ("rnew", "2025-03-01T00:00:00+00:00"),
        ("rmid", "2025-02-01T00:00:00+00:00"),
    ):
        write_credentials(tmp_path, run_id, _rows(1, run_id))
        write_manifest(tmp_path, run_id, _manifest(run_id, created))
    write_credentials(tmp_path, "rnotready", _rows(1))  # no manifest: not ready, never chosen
    assert find_run_dir(tmp_path).name == "rnew"
    assert find_run_dir(tmp_path, "rold").name == "rold"
    with pytest.raises(RunNotFound):
        find_run_dir(tmp_path, "rnotready")
    with pytest.raises(InputError):
        find_run_dir(tmp_path, "../etc")


def test_no_run_at_all(tmp_path: Path) -> None:
    with pytest.raises(RunNotFound, match="no ready run"):
        find_run_dir(tmp_path)


def test_export_csv_and_json(tmp_path: Path) -> None:
    write_credentials(tmp_path, "r1", _rows(2))
    write_manifest(tmp_path, "r1", _manifest("r1", "2025-01-01T00:00:00+00:00"))
    run, text = export_credentials(tmp_path, format="csv")
    assert run == "r1"
    assert isinstance(text, str)
    assert list(csv.reader(io.StringIO(text)))[1][1] == "pw0000Secret"
    out = tmp_path / "export.json"
    old = os.umask(0)
    try:
        _, written = export_credentials(tmp_path, "r1", format="json", output=out)
    finally:
        os.umask(old)
    assert written == out and _mode(out) == 0o600
    data = json.loads(out.read_text())
    assert data["run_id"] == "r1" and data["count"] == 2
    assert data["credentials"][1] == dict(zip(CSV_HEADER, _rows(2)[1].as_tuple(), strict=True))
    with pytest.raises(InputError, match="'csv' or 'json'"):
        export_credentials(tmp_path, "r1", format="xml")


def test_symlinked_run_dir_refused(tmp_path: Path) -> None:
    (tmp_path / "state" / "runs").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "state" / "runs" / "r1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StateDirUnsafe):
        write_credentials(tmp_path / "state", "r1", _rows(1))
    assert not (tmp_path / "elsewhere" / "credentials.csv").exists()
