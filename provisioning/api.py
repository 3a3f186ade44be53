"""The toolkit's async API: one name per thing a command does (alembic's ``command.py``).

The ``provision`` CLI (``agentic_loadkit.cli``) and the demo call these and nothing deeper;
each command imports this module when it runs, so that ``provision --help`` imports none
of the stages.  The stages below (``target``, ``schema``, ``generate``, ``up``, ``down``,
``runs``) are where the work lives.
"""

from __future__ import annotations

from .down.history import forget_history
from .down.model import DownPlan, DownResult, DownSettings
from .down.plan import plan_down
from .down.teardown import provision_down
from .generate.passwords import DEFAULT_BCRYPT_COST, DEFAULT_PASSWORD_COUNT
from .generate.scales import DEFAULT_SKEW, parse_skew
from .runs.ledger import run_tenant_ids
from .runs.listing import RunList, RunStatusReport, list_runs, run_status, run_summary
from .runs.poolfile import export_credentials
from .schema.schemamap import load_schema_map
from .target.embedded import EmbeddedPostgres
from .target.resolve import ResolvedDatabase, connect, resolve_database
from .target.statedir import default_state_dir, ensure_state_dir
from .target.url import DatabaseTarget, mask_text, mask_url, parse_database_url
from .up.plan import PlannedTable, UpPlan, plan_up
from .up.provision import provision_up
from .up.settings import DEFAULT_STREAMS, UpResult, UpSettings, prepare_run

__all__ = [
    "DEFAULT_BCRYPT_COST",
    "DEFAULT_PASSWORD_COUNT",
    "DEFAULT_SKEW",
    "DEFAULT_STREAMS",
    "DatabaseTarget",
    "DownPlan",
    "DownResult",
    "DownSettings",
    "EmbeddedPostgres",
    "PlannedTable",
    "ResolvedDatabase",
    "RunList",
    "RunStatusReport",
    "UpPlan",
    "UpResult",
    "UpSettings",
    "connect",
    "default_state_dir",
    "ensure_state_dir",
    "export_credentials",
    "forget_history",
    "list_runs",
    "load_schema_map",
    "mask_text",
    "mask_url",
    "parse_database_url",
    "parse_skew",
    "plan_down",
    "plan_up",
    "prepare_run",
    "provision_down",
    "provision_up",
    "resolve_database",
    "run_status",
    "run_summary",
    "run_tenant_ids",
]
