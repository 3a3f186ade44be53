"""The ``locust`` command line of the tests, built in one place.

Every Locust run of the tests is a subprocess of the ``locust`` console script next to
this interpreter, given the scenarios' locustfile (or a test's own one that wraps it).
This module imports nothing of the test folders, so helper modules of any folder can
use it.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["LOCUST", "LOCUSTFILE", "REPO", "locust_argv"]

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = REPO / "scenarios" / "locustfile.py"
LOCUST = str(Path(sys.executable).with_name("locust"))


def locust_argv(*args: str, locustfile: Path = LOCUSTFILE, results: Path | None = None) -> list[str]:
    """``locust -f LOCUSTFILE ARGS`` (then ``--results-json RESULTS`` when given), ready for ``subprocess``."""
    argv = [LOCUST, "-f", str(locustfile), *args]
    if results is not None:
        argv += ["--results-json", str(results)]
    return argv
