"""Locust scenarios for the Agentic Platform: pooled accounts, the guide's mixes, profiles and gate.

Run them with ``locust -f scenarios/locustfile.py`` (see that file).  The modules:
``users`` (the simulated users' base and the guide's mixes), ``isolation`` (the tenant
isolation probe), ``broker`` (the pool's books) and ``pool`` (the pool across workers),
``credentials`` (where the pool comes from; its format is ``provisioning.runs.poolfile``'s),
``routes``, ``dialects``, ``discovery``, ``http_guard``, ``probe_http``, ``warmup`` and
``api_setup`` (what the platform answers to, and how), ``shapes`` (load profiles),
``figures``, ``gate``, ``results`` and ``report`` (what a run measured, its verdict, its
files and notes), ``metrics`` (Prometheus ``/metrics``) and ``platform_metrics`` (the
platform's), ``options``, ``runstate`` and ``hooks`` (Locust wiring).

Importing this package does not import Locust (which patches the standard library
through gevent); import the submodules you need.
"""

from __future__ import annotations

__all__: list[str] = []
