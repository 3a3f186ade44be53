"""Locust event listeners that wire the scenarios together (imported once by the locustfile).

* ``init_command_line_parser``: the scenarios' options (``options.py``).
* ``init``: validate options (one sentence and exit 2 on a bad value), attach or detach
  the profile shape, choose the default user classes, load the credentials pool and the
  baseline on the master/local runner (exit 12 on a bad pool), then, when the host is
  known, discover the platform's dialect (routes file over it) and warm it up (exit 16
  when it does not answer; ``api_setup.py``); install the pool client on workers, and
  ``/metrics`` on the web UI.
* ``test_start`` (master/local): discover and warm up now if the host was set in the web
  UI (or changed); refuse early a run that needs more accounts than the pool holds
  (``--pool-exhausted fail``); warn when the rate limit seen is below the planned load;
  start scraping the platform's ``/metrics``.  ``test_stop``: the last scrape.
* ``quitting`` (master/local, registered first so that it runs last, after the master
  has collected the workers' final reports): the gate's verdict, the results JSON and
  the process exit code.  ``quit``: the gate's table, printed after Locust's summary.

Exit codes: 0 pass; 3 gate breach; 12 credentials pool failure; 16 the platform did not
answer the warm-up; 2 bad option or a scenario bug (an exception in user code); Locust's
own codes otherwise (``--no-gate``).
"""

from __future__ import annotations

import logging
import sys
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any

import gevent
import locust
from agentic_loadkit.provisioning._version import __version__
from agentic_loadkit.provisioning.errors import CredentialsError, InputError, ProvisionError
from agentic_loadkit.provisioning.runs.poolfile import CredentialRow, read_credentials
from locust import events
from locust import log as locust_log
from locust.env import Environment
from locust.runners import WorkerRunner

from .api_setup import ApiSetup, check_preflight, metrics_scraper, prepare_api
from .credentials import PoolSource, TenantCatalog, load_catalog, resolve_pool_source
from .gate import EXIT_BREACH, EXIT_PASS, Check, collect_figures, evaluate, render_table, resource_checks
from .metrics import install_metrics
from .options import ScenarioOptions, add_options
from .platform_metrics import PlatformMetricsScraper, PlatformResources
from .pool import PoolBroker, broker_for, install_pool_master, install_pool_worker
from .results import Baseline, build_results, compare_with_baseline, load_baseline, write_results
from .routes import Routes, load_routes
from .shapes import LoadProfile, ProfileShape, resolve_profile

__all__ = ["EXIT_SCENARIO_ERROR", "RunState", "fail_run", "run_state"]

log = logging.getLogger(__name__)

EXIT_SCENARIO_ERROR = 2
SCENARIO_CLASSES = ("AgenticPlatformUser", "ReadOnlyUser", "TenantIsolationProbe")
DEFAULT_CLASSES = ("AgenticPlatformUser",)


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


_STATES: weakref.WeakKeyDictionary[Environment, RunState] = weakref.WeakKeyDictionary()


def run_state(environment: Environment) -> RunState | None:
    return _STATES.get(environment)


def _exit_with(exc: ProvisionError) -> None:
    sys.stderr.write(f"error: {exc.message}\n")
    sys.stderr.flush()
    sys.exit(exc.exit_code)


def fail_run(environment: Environment, message: str, exit_code: int = CredentialsError.exit_code) -> None:
    """Stop the test because it cannot be run as asked (the pool ran dry); idempotent."""
    state = _STATES.get(environment)
    if state is None or state.stopping:
        return
    state.stopping = True
    state.failure = message
    environment.process_exit_code = exit_code
    log.error(message)
    runner = environment.runner

    def stop() -> None:
        if runner is None:
            return
        if getattr(environment.parsed_options, "headless", False):
            runner.quit()
        else:
            runner.stop()

    gevent.spawn(stop)


def _on_pool_exhausted(environment: Environment, broker: PoolBroker) -> None:
    need = broker.exhausted_need or broker.size + 1
    fail_run(
        environment,
        f"The credentials pool ran dry: it holds {broker.size} accounts but the test needed at least {need} "
        f"at once (one per simulated user); provision more users or pass --pool-exhausted reuse.",
    )


def _configure_shape(environment: Environment, state: RunState, worker: bool) -> None:
    shape = environment.shape_class
    opts = state.options
    if opts.load_profile is None or worker:
        environment.shape_class = None  # plain --users/--spawn-rate/--run-time, as in Locust
        return
    if not isinstance(shape, ProfileShape):
        raise InputError("--load-profile needs the scenarios' locustfile (scenarios/locustfile.py).")
    ns = environment.parsed_options
    run_time = getattr(ns, "run_time", None)
    state.profile = resolve_profile(
        opts.load_profile,
        time_scale=opts.time_scale,
        users=getattr(ns, "num_users", None),
        spawn_rate=getattr(ns, "spawn_rate", None),
        run_time=float(run_time) if run_time else None,
    )
    shape.profile = state.profile
    if run_time and ns is not None:
        ns.run_time = None  # the shape ends the run itself; Locust's timer would start after the shape
    p = state.profile
    log.info("Load profile %s: %d users for %.0f s (%s).", p.name, p.peak_users, p.duration_s, p.description)


def _choose_user_classes(environment: Environment, opts: ScenarioOptions, worker: bool) -> None:
    available = environment.available_user_classes or {}
    classes = environment.user_classes
    from .users import TenantIsolationProbe

    if worker:
        # a worker must be able to run whatever the master dispatches
        for name in SCENARIO_CLASSES:
            cls = available.get(name)
            if cls is not None and cls not in classes:
                classes.append(cls)  # type: ignore[arg-type]
        return
    named = getattr(environment.parsed_options, "user_classes", None) or []
    if not named:
        chosen = [c for c in classes if c.__name__ in DEFAULT_CLASSES or c.__name__ not in SCENARIO_CLASSES]
        if chosen:
            classes[:] = chosen
    if opts.isolation_probes:
        TenantIsolationProbe.fixed_count = opts.isolation_probes
        if TenantIsolationProbe not in classes:
            classes.append(TenantIsolationProbe)


def _setup(environment: Environment) -> None:
    opts = ScenarioOptions.from_namespace(environment.parsed_options)
    state = RunState(opts)
    worker = isinstance(environment.runner, WorkerRunner)
    _configure_shape(environment, state, worker)
    _choose_user_classes(environment, opts, worker)
    _STATES[environment] = state
    if worker:
        install_pool_worker(environment)
        return
    ns = environment.parsed_options
    if getattr(ns, "headless", False) and not environment.host:
        raise InputError("No platform URL was given: pass --host, e.g. --host http://127.0.0.1:8000.")
    load_routes(opts.routes)  # a bad routes file is exit 2 before anything else
    if opts.baseline:
        state.baseline = load_baseline(opts.baseline)
    state.source = resolve_pool_source(opts.credentials, opts.state_dir)
    accounts = read_credentials(state.source.credentials)
    state.catalog = load_catalog(state.source.manifest)
    state.first_account = accounts[0]
    if environment.host:
        _prepare_api(state, environment.host)
    broker = PoolBroker(accounts, catalog=state.catalog, routes=state.routes, policy=opts.pool_exhausted)
    install_pool_master(environment, broker, lambda b: _on_pool_exhausted(environment, b))
    install_metrics(environment)
    log.info(
        "Credentials pool: %d accounts of %d tenants from %s (run %s), --pool-exhausted %s.",
        broker.size,
        len({a.tenant_id for a in accounts}),
        state.source.credentials,
        state.catalog.run_id or "unknown",
        opts.pool_exhausted,
    )


def _prepare_api(state: RunState, host: str) -> None:
    assert state.first_account is not None
    state.api = prepare_api(host, state.options, state.first_account)
    state.routes = state.api.routes


def _start_of_test(environment: Environment, state: RunState, broker: PoolBroker, need: int) -> None:
    """Discovery (if the web UI set the host), the pre-flight warning and the platform scraper."""
    host = environment.host or ""
    if host and (state.api is None or state.api.host != host):
        try:
            _prepare_api(state, host)
        except ProvisionError as exc:
            fail_run(environment, exc.message, exc.exit_code)
            return
        broker.routes = state.routes
    if state.api is not None:
        opts = state.options
        check_preflight(
            state.api, users=need, wait_mean_s=(opts.wait_min + opts.wait_max) / 2,
            user_classes=environment.user_classes,
        )
    if state.scraper is None and host:
        state.scraper = metrics_scraper(host, state.options)
        if state.scraper is not None:
            state.scraper.start()


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_kw: Any) -> None:
    add_options(parser)


@events.init.add_listener
def _on_init(environment: Environment, **_kw: Any) -> None:
    try:
        _setup(environment)
    except ProvisionError as exc:
        _exit_with(exc)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kw: Any) -> None:
    state = _STATES.get(environment)
    broker = broker_for(environment)
    if state is None or broker is None or environment.runner is None:
        return
    if state.stopping and environment.process_exit_code == CredentialsError.exit_code:
        # a new test from the web UI after the pool ran dry: judge it afresh
        state.stopping, state.failure, environment.process_exit_code = False, None, None
    need = state.profile.peak_users if state.profile else environment.runner.target_user_count
    broker.planned_users = need
    if need > broker.size and broker.policy == "fail":
        fail_run(
            environment,
            f"The credentials pool holds {broker.size} accounts but the test needs {need} at its peak "
            f"(one per simulated user); provision more users or pass --pool-exhausted reuse.",
        )
        return
    _start_of_test(environment, state, broker, need)


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_kw: Any) -> None:
    state = _STATES.get(environment)
    if state is not None and state.scraper is not None:
        state.scraper.stop()


def _resources(state: RunState) -> PlatformResources:
    if state.scraper is not None:
        return state.scraper.resources()
    return PlatformResources.off("--platform-metrics off" if state.options.platform_metrics else "no test started")


def _rate_limit_note(figures: Any, api: ApiSetup | None) -> str:
    limits = sorted({x for r in figures.rate_limited_endpoints for x in r.limits if x != "not given"})
    statuses = sorted(figures.rate_limit_statuses)
    shown = ", ".join(f"HTTP {c}" for c in statuses) or "refusals"
    head = (
        f"{figures.rate_limited} answers were refused by the platform's rate limiter ({shown}, "
        f"X-RateLimit-Limit {', '.join(limits) or 'not given'}): they measure the limiter, not the API"
    )
    v1_like = (api is not None and api.discovery.dialect == "v1") or any(c != 429 for c in statuses)
    if v1_like:
        return (
            head + "; this platform's limiter (v1) counts per client IP and path, is always on and cannot be "
            "turned off by configuration (RATE_LIMIT_ENABLED is read by nothing): load it from several source "
            "addresses, or run a build of the platform under test with its limiter patched out."
        )
    return head + "; run the platform with RATE_LIMIT_ENABLED=false (or higher RATE_LIMIT_PER_MINUTE/_PER_HOUR)."


def _notes(state: RunState, figures: Any, broker: PoolBroker | None, exceptions: int, host: str | None) -> list[str]:
    notes: list[str] = []
    if state.api is not None and state.options.gate:  # under the table; with --no-gate it is in the log
        notes.append(state.api.discovery.line)
        notes.extend(state.api.warnings)
    if figures.rate_limited:
        notes.append(_rate_limit_note(figures, state.api))
    if figures.totals.requests + (figures.logins.requests if figures.logins else 0) > 0 and not any(
        e.requests > e.failures for e in figures.endpoints
    ):
        notes.append(f"No request succeeded: is the platform at {host} up and reachable?")
    if broker is not None and broker.reclaimed:
        notes.append(
            f"{broker.reclaimed} leases were taken back from Locust workers that vanished, "
            f"and their accounts handed out again."
        )
    if broker is not None and broker.reused:
        notes.append(
            f"The pool was short: {broker.reused} leases shared an account already in use "
            f"(--pool-exhausted reuse); those sessions were not distinct."
        )
    if figures.isolation_breaches:
        notes.append(
            f"{figures.isolation_breaches} answers gave a user another tenant's object: tenant isolation is broken."
        )
    if exceptions:
        notes.append(f"{exceptions} exceptions were raised in the scenario code (see the log): exit code 2.")
    if state.failure:
        notes.append(state.failure)
    if state.options.gate:
        notes.extend(n for n in _resource_notes(state) if n)
    return notes


def _resource_notes(state: RunState) -> list[str | None]:
    if state.scraper is None:
        return []
    res = state.scraper.resources()
    return [res.db_pool_pct.note, res.memory_bytes.note, res.cpu_pct.note, state.scraper.slow_note()]


def _meta(environment: Environment, state: RunState, broker: PoolBroker | None) -> dict[str, Any]:
    opts = state.options
    return {
        "tool": "agentic-loadkit",
        "toolkit_version": __version__,
        "locust_version": locust.__version__,
        "run_id": state.catalog.run_id,
        "credentials": str(state.source.credentials) if state.source else None,
        "host": environment.host,
        "load_profile": state.profile.name if state.profile else None,
        "time_scale": opts.time_scale if state.profile else None,
        "user_classes": [c.__name__ for c in environment.user_classes],
        "wait_time_s": [opts.wait_min, opts.wait_max],
        "pool": asdict(broker.snapshot()) if broker else None,
        "baseline": str(state.baseline.path) if state.baseline else None,
        "failure": state.failure,
        "api": state.api.as_dict() if state.api else None,
        "platform_metrics": _resources(state).as_dict(),
    }


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_kw: Any) -> None:
    state = _STATES.get(environment)
    runner = environment.runner
    if state is None or runner is None:
        return
    crashed = bool(locust_log.unhandled_greenlet_exception)
    exceptions = sum(int(e.get("count", 0)) for e in runner.exceptions.values())
    if isinstance(runner, WorkerRunner):
        if environment.process_exit_code is None:
            environment.process_exit_code = EXIT_SCENARIO_ERROR if crashed or exceptions else 0
        return
    broker = broker_for(environment)
    figures = collect_figures(environment.stats, state.routes.login_names)
    checks: list[Check] = evaluate(figures, state.options.targets) if state.options.gate else []
    if state.options.gate and not state.failure:
        checks += resource_checks(_resources(state), state.options.targets)
    if state.options.gate and state.baseline is not None:
        checks += compare_with_baseline(figures, state.baseline, state.options.max_regression)
    if state.failure:
        code: int | None = environment.process_exit_code or CredentialsError.exit_code
    elif crashed or exceptions:
        code = EXIT_SCENARIO_ERROR
    elif not state.options.gate:
        code = None
    else:
        code = EXIT_BREACH if any(c.passed is False for c in checks) else EXIT_PASS
    state.notes = _notes(state, figures, broker, exceptions, environment.host)
    state.checks = checks if state.options.gate else None
    if code is not None:
        environment.process_exit_code = code
    if state.options.results_json:
        doc = build_results(figures, checks, meta=_meta(environment, state, broker), exit_code=code or 0)
        try:
            path = write_results(state.options.results_json, doc)
            log.info("Results written to %s.", path)
        except OSError as exc:
            log.error("The results file %s could not be written (%s).", state.options.results_json, exc.strerror)


@events.quit.add_listener
def _on_quit(exit_code: int, **_kw: Any) -> None:
    """The gate's table, with the exit code the process really returns (Locust's own, from ``quit``)."""
    for state in list(_STATES.values()):
        if state.checks is not None:
            table = render_table(state.checks, notes=state.notes, exit_code=exit_code)
        else:
            table = "\n".join(f"note: {n}" for n in state.notes)
        state.checks, state.notes = None, []
        if table:
            sys.stdout.write("\n" + table + "\n")
            sys.stdout.flush()
