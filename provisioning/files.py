"""Reading the small TOML inputs (profiles, schema maps) with a size limit.

Why a limit: a path such as ``/dev/zero`` or a multi-gigabyte file given by mistake would
otherwise be read whole into memory before anything could say it is wrong.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

__all__ = ["MAX_INPUT_BYTES", "read_input_text"]

MAX_INPUT_BYTES = 1024 * 1024


def read_input_text(path: Path, name: str, *, limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of ``path``; ``name`` starts each sentence ("Profile p", "The schema map p")."""
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"{name} does not exist.") from None
    except IsADirectoryError:
        raise InputError(f"{name} is a directory, not a TOML file.") from None
    except OSError as exc:
        raise InputError(f"{name} cannot be read ({exc.strerror or type(exc).__name__}).") from None
    if len(raw) > limit:
        raise InputError(f"{name} is larger than {limit // 1024} KiB; a TOML input file is expected.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text.") from None
