"""What the scenarios' hooks know about this process's run, from ``init`` to ``quit``."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentic_loadkit.provisioning.runs.poolfile import CredentialRow

from .api_setup import ApiSetup
from .credentials import PoolSource, TenantCatalog
from .gate import Check
from .options import ScenarioOptions
from .platform_metrics import PlatformMetricsScraper
from .results import Baseline
from .routes import Routes
from .shapes import LoadProfile

__all__ = ["RunState"]


@dataclass
class RunState:
    """What the hooks know about this process's run."""

    options: ScenarioOptions
    routes: Routes = field(default_factory=Routes)
    source: PoolSource | None = None
    catalog: TenantCatalog = field(default_factory=TenantCatalog)
    profile: LoadProfile | None = None
    baseline: Baseline | None = None
    failure: str | None = None
    checks: list[Check] | None = None
    notes: list[str] = field(default_factory=list)
    stopping: bool = False
    first_account: CredentialRow | None = None
    api: ApiSetup | None = None
    scraper: PlatformMetricsScraper | None = None
