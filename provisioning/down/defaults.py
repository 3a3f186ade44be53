"""The defaults of ``DownSettings`` that ``provision down --help`` shows.

Kept apart from ``model.py`` (which imports the ledger and the schema map), so that the
command line can state them without importing the teardown's stack.
"""

from __future__ import annotations

__all__ = ["DEFAULT_BATCH_TENANTS", "DEFAULT_JOBS"]

DEFAULT_BATCH_TENANTS = 10
"""Tenants per delete transaction."""
DEFAULT_JOBS = 2
"""Connections deleting batches of the same table side by side."""
