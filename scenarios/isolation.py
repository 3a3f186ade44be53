"""The tenant-isolation probe: a simulated user that tries to reach other tenants' objects.

It extends ``AgenticBaseUser`` (``users.py``) like the guide's users: it logs in with
its own pooled account, and its lease carries a sample of other tenants' agent and
workflow ids (the pool's ``probe`` checkout).  Any answer but 404/403 for them, or a
list of its own tenant that shows one of them, is a failure starting with
``ISOLATION_BREACH``, which the gate counts on its own line.
"""

from __future__ import annotations

import random
import time
from typing import Any

from locust.exception import StopUser

from .dialects import rate_limit_refusal
from .figures import ISOLATION_BREACH, ISOLATION_PREFIX
from .users import FRESH_TOKEN_REFUSED, AgenticBaseUser, warn_once

__all__ = ["TenantIsolationProbe"]


class TenantIsolationProbe(AgenticBaseUser):
    """Requests other tenants' objects and fails on any answer but 404/403.

    Its requests are named ``[isolation] ...``; a breach is a failure whose message starts
    with "tenant isolation breached", and the gate gets a line "tenant isolation breaches = 0".
    It also checks that lists never contain another tenant's ids.  Run it with
    ``--isolation-probes N`` (N users beside the others) or by naming the class.
    """

    probe = True

    def on_start(self) -> None:
        super().on_start()
        lease = self.lease
        self._foreign_agents = list(lease.foreign_agents) if lease else []
        self._foreign_workflows = list(lease.foreign_workflows) if lease else []
        self._foreign = set(self._foreign_agents) | set(self._foreign_workflows)
        if lease and not self._foreign:
            warn_once("The manifest lists no other tenant's objects: the isolation probe has nothing to probe.")

    def probe_foreign_agent(self) -> None:
        if self._foreign_agents:
            r = self.routes
            path = r.agent_path(random.choice(self._foreign_agents))
            self.call("GET", path, ISOLATION_PREFIX + r.agent, expect=(403, 404), breach_on=(200,))

    def probe_foreign_workflow(self) -> None:
        if self._foreign_workflows:
            r = self.routes
            path = r.workflow_path(random.choice(self._foreign_workflows))
            self.call("GET", path, ISOLATION_PREFIX + r.workflow, expect=(403, 404), breach_on=(200,))

    def probe_own_lists(self) -> None:
        r = self.routes
        if self._auth is None:
            if self.lease is None:
                raise StopUser()
            if time.monotonic() < self._next_login_at or not self.login(relogin=True):
                return
        for path, key in ((r.agents, r.agents_key), (r.workflows, r.workflows_key)):
            with self._request("GET", path, ISOLATION_PREFIX + path, headers=self._auth) as resp:
                self._judge_list(resp, key, path)

    def _judge_list(self, resp: Any, key: str, path: str) -> None:
        if resp.problem:
            resp.failure(resp.problem)
            return
        if resp.status_code != 200:
            if resp.status_code == 401 and self.lease is not None and self._token_accepted:
                resp.success()  # token expired: log in again, the next probe counts
                self.login(relogin=True)
            elif resp.status_code == 401:
                resp.failure(FRESH_TOKEN_REFUSED)
                self._back_off()
            elif refusal := rate_limit_refusal(resp.status_code, resp.headers, path):
                resp.failure(refusal)
            elif resp.status_code:
                resp.failure(f"HTTP {resp.status_code}")
            return
        try:
            items = resp.json().get(key, [])
            leaked = [i for i in items if isinstance(i, dict) and str(i.get("id")) in self._foreign]
        except (ValueError, TypeError, AttributeError):
            resp.failure("HTTP 200 with a body that is not the expected JSON")
            return
        if leaked:
            resp.failure(f"{ISOLATION_BREACH}: {path} listed another tenant's object")
        else:
            resp.success()

    tasks = {  # type: ignore[assignment]  # noqa: RUF012
        probe_foreign_agent: 3,
        probe_foreign_workflow: 1,
        probe_own_lists: 1,
    }
