"""State directory safety and private file modes, under a permissive umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from agentic_loadkit.provisioning.errors import StateDirUnsafe
from agentic_loadkit.provisioning.target.statedir import ensure_private_dir, ensure_state_dir, write_private_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_files_and_dirs_ignore_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        d = ensure_private_dir(tmp_path / "runs" / "r1")
        f = write_private_file(d / "credentials.csv", "email,password\n")
    finally:
        os.umask(old)
    assert _mode(d) == 0o700
    assert _mode(f) == 0o600
    assert f.read_text() == "email,password\n"


def test_world_writable_state_dir_refused(tmp_path: Path) -> None:
    sd = tmp_path / "state"
    sd.mkdir()
    os.chmod(sd, 0o777)
    with pytest.raises(StateDirUnsafe, match="world-writable"):
        ensure_state_dir(sd)


def test_symlinked_state_dir_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(StateDirUnsafe, match="symlink"):
        ensure_state_dir(link)


def test_new_state_dir_created(tmp_path: Path) -> None:
    sd = ensure_state_dir(tmp_path / "a" / ".provision")
    assert sd.is_dir()
    assert not _mode(sd) & stat.S_IWOTH
