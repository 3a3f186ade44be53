"""The credentials pool: one provisioned account per live simulated user, across all workers.

Why a broker on the master: the master spreads users unevenly over workers, worker
indexes change on reconnect, and a worker learns the worker count only
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
stopped itself for want of the master's heartbeat).  The books themselves (leases,
policies) are ``broker.py``'s.  Leases carry passwords: keep the master's port (5557)
on a trusted network.

When the pool runs dry, ``--pool-exhausted`` decides: ``fail`` (default) stops the test
with exit code 12 and a sentence saying how many accounts were needed; ``reuse`` shares
accounts and counts it.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import gevent
from agentic_loadkit.provisioning.errors import CredentialsError
from gevent.event import AsyncResult
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from .broker import LOCAL_HOLDER, Lease, PoolBroker

__all__ = [
    "CHECKIN_MESSAGE",
    "CHECKOUT_MESSAGE",
    "LEASE_MESSAGE",
    "LocalPoolClient",
    "PoolClient",
    "WorkerPoolClient",
    "broker_for",
    "install_pool_master",
    "install_pool_worker",
    "pool_client_for",
]

log = logging.getLogger(__name__)

CHECKOUT_MESSAGE = "loadkit_pool_checkout"
LEASE_MESSAGE = "loadkit_pool_lease"
CHECKIN_MESSAGE = "loadkit_pool_checkin"
RECLAIM_INTERVAL_S = 1.0
"""How often the master looks for accounts held by workers it dropped (besides every dry checkout)."""


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
