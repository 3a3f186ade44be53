"""``python -m agentic_loadkit.cli`` (and the ``provision`` script) runs the CLI.

The import of the CLI itself is guarded: a Ctrl-C in the first half second, while typer,
rich and the commands are still being imported, is one line and exit 130, not a traceback.
"""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from .app import main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted.\n")
        raise SystemExit(130) from None
    main()


if __name__ == "__main__":
    run()
