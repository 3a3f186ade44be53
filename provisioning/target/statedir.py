"""The state directory (default ``.provision/`` in the working directory).

It holds the embedded database's data directory (``pgdata/``) and each run's
credentials pool (``runs/<run-id>/``).  Because it holds passwords it must not be a
symlink to elsewhere nor writable by others; run directories are 0700 and their
files 0600 whatever the umask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import StateDirUnsafe

__all__ = ["default_state_dir", "ensure_private_dir", "ensure_state_dir", "runs_dir", "write_private_file"]

ENV_STATE_DIR = "PROVISION_STATE_DIR"


def default_state_dir(env: dict[str, str] | None = None) -> Path:
    value = (env if env is not None else os.environ).get(ENV_STATE_DIR)
    return Path(value) if value else Path.cwd() / ".provision"


def _check_existing(path: Path) -> None:
    if path.is_symlink():
        raise StateDirUnsafe(f"The state directory {path} is a symlink; refusing to keep credentials there.")
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirUnsafe(f"The state directory {path} exists and is not a directory.")
    if st.st_mode & stat.S_IWOTH:
        raise StateDirUnsafe(f"The state directory {path} is world-writable; refusing to keep credentials there.")


_VIRTUAL = (Path("/proc"), Path("/sys"), Path("/dev"))


def ensure_state_dir(path: Path) -> Path:
    """Create the state directory if needed (0711: the embedded server's own user must
    traverse it to reach its data directory), or check an existing one, and its ``runs/``:
    everything that makes credentials unsafe is refused here, before any write elsewhere."""
    path = Path(path)
    resolved = path.resolve()
    virtual = [v for v in _VIRTUAL if resolved == v or v in resolved.parents]
    if virtual:
        raise StateDirUnsafe(
            f"The state directory {path} is under {virtual[0]}, a kernel file system; "
            "give a directory on a real disk with --state-dir."
        )
    try:
        if path.exists() or path.is_symlink():
            _check_existing(path)
        else:
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o711)
        runs = runs_dir(path)
        if runs.is_symlink():
            raise StateDirUnsafe(f"The runs directory {runs} is a symlink; refusing to keep credentials there.")
        if runs.exists() and not runs.is_dir():
            raise StateDirUnsafe(f"The runs directory {runs} exists and is not a directory.")
    except OSError as exc:
        raise StateDirUnsafe(
            f"The state directory {path} cannot be used ({exc.strerror or type(exc).__name__}); "
            "give another one with --state-dir."
        ) from None
    return path


def runs_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "runs"


def ensure_private_dir(path: Path) -> Path:
    """Create (or tighten) a directory to mode 0700, independent of the umask."""
    path = Path(path)
    if path.is_symlink():
        raise StateDirUnsafe(f"{path} is a symlink; refusing to keep credentials there.")
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private_file(path: Path, data: str | bytes) -> Path:
    """Write a file created with mode 0600 (never briefly wider), replacing it atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        payload = data.encode() if isinstance(data, str) else data
        os.write(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path
