"""The credentials pool's books: which account is free, which is held by whom, and the leases.

Pure bookkeeping, no Locust messaging: the master (or the local runner) owns one
``PoolBroker`` and every checkout and checkin goes through it, one at a time, so no
account is ever leased twice at once.  ``pool.py`` carries the requests to it from the
users, locally or over Locust's messages from the workers.

A lease carries what a worker needs - the account, the tenant's object ids from the
manifest (and, for isolation probes, other tenants' ids) and the routes - so worker
hosts need no files.  When the pool runs dry, the policy decides: ``fail`` makes
``checkout`` return ``None`` (the caller stops the test and says how many accounts were
needed); ``reuse`` hands out the least-shared account again, and counts every such lease.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentic_loadkit.provisioning.runs.poolfile import CredentialRow

from .credentials import TenantCatalog
from .routes import Routes

__all__ = [
    "FOREIGN_SAMPLE",
    "LOCAL_HOLDER",
    "POLICIES",
    "Lease",
    "PoolBroker",
    "PoolSnapshot",
    "interleave_by_tenant",
]

log = logging.getLogger(__name__)

POLICIES = ("fail", "reuse")
LOCAL_HOLDER = "local"
"""The holder name of the local runner's (and the master's own) users."""
FOREIGN_SAMPLE = 40
"""How many of other tenants' ids (per kind) an isolation probe receives."""


@dataclass(frozen=True)
class Lease:
    """An account handed to one user, with the ids it may use and the routes to call."""

    account: CredentialRow
    agents: tuple[str, ...] = ()
    workflows: tuple[str, ...] = ()
    foreign_agents: tuple[str, ...] = ()
    foreign_workflows: tuple[str, ...] = ()
    reused: bool = False
    routes: Routes = field(default_factory=Routes)

    def to_wire(self) -> dict[str, Any]:
        return {
            "account": self.account.as_dict(),
            "agents": list(self.agents),
            "workflows": list(self.workflows),
            "foreign_agents": list(self.foreign_agents),
            "foreign_workflows": list(self.foreign_workflows),
            "reused": self.reused,
            "routes": self.routes.to_wire(),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Lease:
        return cls(
            account=CredentialRow.from_dict(data["account"]),
            agents=tuple(data.get("agents", ())),
            workflows=tuple(data.get("workflows", ())),
            foreign_agents=tuple(data.get("foreign_agents", ())),
            foreign_workflows=tuple(data.get("foreign_workflows", ())),
            reused=bool(data.get("reused", False)),
            routes=Routes.from_wire(data.get("routes", {})),
        )


@dataclass(frozen=True)
class PoolSnapshot:
    """The pool's books at one moment (for /metrics, the gate's table and the results JSON)."""

    size: int
    in_use: int
    free: int
    peak_in_use: int
    """Most accounts that had a live holder at one moment (never above ``size``)."""
    checkouts: int
    reused: int
    policy: str
    exhausted_need: int | None
    peak_leases: int = 0
    """Most live leases at one moment (above ``peak_in_use`` only when ``reuse`` shared accounts)."""
    reclaimed: int = 0
    """Leases taken back from workers that vanished."""


def interleave_by_tenant(accounts: Sequence[CredentialRow]) -> list[CredentialRow]:
    """Order accounts round-robin over tenants, so that load spreads across tenants from the first user."""
    by_tenant: dict[str, deque[CredentialRow]] = {}
    for account in accounts:
        by_tenant.setdefault(account.tenant_id, deque()).append(account)
    queues = list(by_tenant.values())
    ordered: list[CredentialRow] = []
    while queues:
        for queue in list(queues):
            ordered.append(queue.popleft())
            if not queue:
                queues.remove(queue)
    return ordered


class PoolBroker:
    """The master's (or local runner's) books: which account is free, which is held by whom.

    Pure bookkeeping, no Locust: ``checkout`` returns ``None`` when the pool is dry under
    the ``fail`` policy (the caller stops the test); ``checkin`` returns an account.
    """

    def __init__(
        self,
        accounts: Sequence[CredentialRow],
        *,
        catalog: TenantCatalog | None = None,
        routes: Routes | None = None,
        policy: str = "fail",
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
        self.accounts = {a.email: a for a in accounts}
        self.catalog = catalog or TenantCatalog()
        self.routes = routes or Routes()
        self.policy = policy
        self._free: deque[str] = deque(a.email for a in interleave_by_tenant(accounts))
        self._holders: dict[str, Counter[str]] = {}
        self._foreign: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self.peak_in_use = 0
        self.peak_leases = 0
        self.reclaimed = 0
        self.checkouts = 0
        self.reused = 0
        self.exhausted_need: int | None = None
        self.planned_users = 0
        self._live = 0

    @property
    def size(self) -> int:
        return len(self.accounts)

    @property
    def in_use(self) -> int:
        return len(self._holders)

    @property
    def free(self) -> int:
        return len(self._free)

    @property
    def leases(self) -> int:
        """Live leases; above ``in_use`` only when the ``reuse`` policy shares accounts."""
        return self._live

    def snapshot(self) -> PoolSnapshot:
        return PoolSnapshot(
            self.size,
            self.in_use,
            self.free,
            self.peak_in_use,
            self.checkouts,
            self.reused,
            self.policy,
            self.exhausted_need,
            self.peak_leases,
            self.reclaimed,
        )

    def checkout(self, holder: str, *, probe: bool = False) -> Lease | None:
        reused = False
        if self._free:
            email = self._free.popleft()
        elif self.policy == "reuse" and self._holders:
            email = min(self._holders, key=lambda e: sum(self._holders[e].values()))
            reused = True
            self.reused += 1
        else:
            self.exhausted_need = max(self.exhausted_need or 0, self._live + 1, self.planned_users)
            return None
        self._holders.setdefault(email, Counter())[holder] += 1
        self.checkouts += 1
        self._live += 1
        self.peak_in_use = max(self.peak_in_use, len(self._holders))
        self.peak_leases = max(self.peak_leases, self._live)
        return self._lease(self.accounts[email], probe=probe, reused=reused)

    def checkin(self, email: str, holder: str) -> bool:
        """Take an account back from ``holder``; False if it did not hold it (a stale or duplicate checkin)."""
        holders = self._holders.get(email)
        if not holders or holders[holder] <= 0:
            log.debug("ignoring a checkin of an account %s does not hold", holder)
            return False
        holders[holder] -= 1
        self._live -= 1
        if holders[holder] == 0:
            del holders[holder]
        if not holders:
            del self._holders[email]
            self._free.append(email)
        return True

    def release_holder(self, holder: str) -> int:
        """Take back every account ``holder`` holds (a worker that vanished); returns how many."""
        released = 0
        for email in [e for e, c in self._holders.items() if holder in c]:
            for _ in range(self._holders[email][holder]):
                self.checkin(email, holder)
                released += 1
        self.reclaimed += released
        return released

    def release_vanished(self, present: set[str], keep: frozenset[str] = frozenset({LOCAL_HOLDER})) -> dict[str, int]:
        """Take back the accounts of every holder not in ``present`` (the master's workers); per holder, how many."""
        released: dict[str, int] = {}
        for holder in self.holder_ids() - present - keep:
            count = self.release_holder(holder)
            if count:
                released[holder] = count
        return released

    def holder_ids(self) -> set[str]:
        return {h for c in self._holders.values() for h in c}

    def _lease(self, account: CredentialRow, *, probe: bool, reused: bool) -> Lease:
        own = self.catalog.objects_of(account.tenant_id)
        foreign_agents: tuple[str, ...] = ()
        foreign_workflows: tuple[str, ...] = ()
        if probe:
            foreign_agents, foreign_workflows = self._foreign_ids(account.tenant_id)
        return Lease(account, own.agents, own.workflows, foreign_agents, foreign_workflows, reused, self.routes)

    def _foreign_ids(self, tenant_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        cached = self._foreign.get(tenant_id)
        if cached is None:
            others = [t for tid, t in self.catalog.tenants.items() if tid != tenant_id]
            agents = list(itertools.islice((a for t in others for a in t.agents), FOREIGN_SAMPLE))
            workflows = list(itertools.islice((w for t in others for w in t.workflows), FOREIGN_SAMPLE))
            cached = (tuple(agents), tuple(workflows))
            self._foreign[tenant_id] = cached
        return cached
