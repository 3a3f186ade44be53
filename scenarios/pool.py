"""The credentials pool: one provisioned account per live simulated user, across all workers.

Why a broker on the master: the master spreads users unevenly over workers (locust
#3209), worker indexes change on reconnect, and a worker learns the worker count only
at ``test_start`` - so slicing the pool by ``worker_index`` gives duplicate logins.
Instead the pool is loaded once, on the master (or the local runner), and

* a user's ``on_start`` asks for an account: locally a direct call, on a worker a
  ``loadkit_pool_checkout`` message to the master, and the user greenlet waits (a
  gevent ``AsyncResult`` with ``--pool-timeout``) for the ``loadkit_pool_lease`` reply;
* ``on_stop`` hands it back (``loadkit_pool_checkin``).

The master handles one message at a time, so no account is ever leased twice at once.
A lease that arrives for a user that is gone (killed while waiting, timed out) is handed
straight back by the worker.  Accounts held by a worker that vanished (killed, its host
lost) are reclaimed as soon as Locust's master drops that worker from its workers: Locust
re-dispatches the lost users to the survivors in the same step, so every checkout that
finds the pool dry first reclaims the accounts of dropped workers (and a timer does it
every second besides).  A worker that is only *missing* (no heartbeat for a few seconds)
keeps its accounts: it may come back, and its users still hold them; Locust gives its
users to others only once it drops it (about a minute later, when the worker has also
stopped itself for want of the master's heartbeat).  Leases carry what a worker needs - the account, the
tenant's object ids from the manifest (and, for isolation probes, other tenants' ids) and
the routes - so worker hosts need no files.  Leases carry passwords: keep the master's
port (5557) on a trusted network.

When the pool runs dry, ``--pool-exhausted`` decides: ``fail`` (default) stops the test
with exit code 12 and a sentence saying how many accounts were needed; ``reuse`` hands
out the least-shared account again, and counts every such lease.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gevent
from agentic_loadkit.provisioning.errors import CredentialsError
from agentic_loadkit.provisioning.runs.poolfile import CredentialRow
from gevent.event import AsyncResult
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from .credentials import TenantCatalog
from .routes import Routes

__all__ = [
    "CHECKIN_MESSAGE",
    "CHECKOUT_MESSAGE",
    "LEASE_MESSAGE",
    "POLICIES",
    "Lease",
    "LocalPoolClient",
    "PoolBroker",
    "PoolClient",
    "PoolSnapshot",
    "WorkerPoolClient",
    "broker_for",
    "install_pool_master",
    "install_pool_worker",
    "interleave_by_tenant",
    "pool_client_for",
]

log = logging.getLogger(__name__)

CHECKOUT_MESSAGE = "loadkit_pool_checkout"
LEASE_MESSAGE = "loadkit_pool_lease"
CHECKIN_MESSAGE = "loadkit_pool_checkin"
POLICIES = ("fail", "reuse")
LOCAL_HOLDER = "local"
"""The holder name of the local runner's (and the master's own) users."""
RECLAIM_INTERVAL_S = 1.0
"""How often the master looks for accounts held by workers it dropped (besides every dry checkout)."""
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

    def holders_of(self, email: str) -> dict[str, int]:
        return dict(self._holders.get(email, {}))

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


class PoolClient(Protocol):
    """What a user needs: an account at start, and a way to give it back."""

    def checkout(self, *, probe: bool = False) -> Lease: ...

    def checkin(self, lease: Lease) -> None: ...


ExhaustedCallback = Callable[[PoolBroker], None]


class LocalPoolClient:
    """The local runner's (and the master's own) client: direct calls into the broker."""

    def __init__(self, broker: PoolBroker, on_exhausted: ExhaustedCallback, holder: str = LOCAL_HOLDER) -> None:
        self.broker = broker
        self._on_exhausted = on_exhausted
        self._holder = holder

    def checkout(self, *, probe: bool = False) -> Lease:
        lease = self.broker.checkout(self._holder, probe=probe)
        if lease is None:
            self._on_exhausted(self.broker)
            raise CredentialsError("The credentials pool is exhausted.")
        return lease

    def checkin(self, lease: Lease) -> None:
        self.broker.checkin(lease.account.email, self._holder)


class WorkerPoolClient:
    """A worker's client: asks the master over Locust's custom messages and waits for the reply."""

    def __init__(self, runner: WorkerRunner, timeout: Callable[[], float]) -> None:
        self._runner = runner
        self._timeout_of = timeout  # read per checkout: the master's --pool-timeout arrives with the spawn
        self._pending: dict[int, AsyncResult] = {}
        self._ids = itertools.count(1)
        runner.register_message(LEASE_MESSAGE, self._on_lease)

    def checkout(self, *, probe: bool = False) -> Lease:
        rid = next(self._ids)
        timeout = self._timeout_of()
        result: AsyncResult = AsyncResult()
        self._pending[rid] = result
        reply: dict[str, Any] | None = None
        try:
            self._runner.send_message(CHECKOUT_MESSAGE, {"rid": rid, "probe": probe})
            reply = result.get(timeout=timeout)
        except gevent.Timeout:
            raise CredentialsError(
                f"No account came from the Locust master within {timeout:g} s (--pool-timeout)."
            ) from None
        finally:
            self._pending.pop(rid, None)
            if reply is None and result.ready() and result.successful():
                self._hand_back(result.value)  # the reply won a race against a kill: return its account
        if not reply or not reply.get("lease"):
            raise CredentialsError(str((reply or {}).get("error") or "The credentials pool is exhausted."))
        return Lease.from_wire(reply["lease"])

    def checkin(self, lease: Lease) -> None:
        self._runner.send_message(CHECKIN_MESSAGE, {"email": lease.account.email})

    def _hand_back(self, reply: Any) -> None:
        if isinstance(reply, dict) and reply.get("lease"):
            self._runner.send_message(CHECKIN_MESSAGE, {"email": reply["lease"]["account"]["email"]})

    def _on_lease(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        data = msg.data or {}
        rid = data.get("rid")
        waiting = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if waiting is None:
            self._hand_back(data)  # the user that asked is gone
        else:
            waiting.set(data)


_CLIENTS: weakref.WeakKeyDictionary[Environment, PoolClient] = weakref.WeakKeyDictionary()
_BROKERS: weakref.WeakKeyDictionary[Environment, PoolBroker] = weakref.WeakKeyDictionary()


def pool_client_for(environment: Environment) -> PoolClient:
    """The pool client installed for this environment (by the scenarios' init hook)."""
    client = _CLIENTS.get(environment)
    if client is None:
        raise CredentialsError("No credentials pool is installed; run the scenarios through scenarios/locustfile.py.")
    return client


def broker_for(environment: Environment) -> PoolBroker | None:
    """The broker, on the master or local runner (``None`` on workers)."""
    return _BROKERS.get(environment)


def install_pool_master(environment: Environment, broker: PoolBroker, on_exhausted: ExhaustedCallback) -> None:
    """Install the broker on the master or the local runner (and the message handlers on a master)."""
    _BROKERS[environment] = broker
    runner = environment.runner
    _CLIENTS[environment] = LocalPoolClient(broker, on_exhausted)
    if not isinstance(runner, MasterRunner):
        return
    master: MasterRunner = runner

    def reclaim() -> None:
        for holder, released in broker.release_vanished(set(master.clients)).items():
            log.warning("Reclaimed %d account(s) held by worker %s, which Locust dropped.", released, holder)

    def on_checkout(environment: Environment, msg: Any, **_kw: Any) -> None:
        data = msg.data or {}
        if broker.free == 0:
            reclaim()  # Locust re-dispatches a dropped worker's users at once: take its accounts back first
        lease = broker.checkout(msg.node_id, probe=bool(data.get("probe")))
        reply: dict[str, Any] = {"rid": data.get("rid"), "lease": lease.to_wire() if lease else None}
        if lease is None:
            reply["error"] = "The credentials pool is exhausted."
        master.send_message(LEASE_MESSAGE, reply, client_id=msg.node_id)
        if lease is None:
            on_exhausted(broker)

    def on_checkin(environment: Environment, msg: Any, **_kw: Any) -> None:
        email = (msg.data or {}).get("email")
        if isinstance(email, str):
            broker.checkin(email, msg.node_id)

    def reclaim_from_vanished_workers() -> None:
        while True:
            gevent.sleep(RECLAIM_INTERVAL_S)
            reclaim()

    master.register_message(CHECKOUT_MESSAGE, on_checkout)
    master.register_message(CHECKIN_MESSAGE, on_checkin)
    master.greenlet.spawn(reclaim_from_vanished_workers)


def install_pool_worker(environment: Environment) -> None:
    """Install the message-based client on a worker."""
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)

    def timeout() -> float:
        value = getattr(environment.parsed_options, "pool_timeout", None)
        return float(value) if value else 60.0

    _CLIENTS[environment] = WorkerPoolClient(runner, timeout)
