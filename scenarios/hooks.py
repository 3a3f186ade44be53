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
from typing import Any

import gevent
from agentic_loadkit.provisioning.errors import CredentialsError, InputError, ProvisionError
from agentic_loadkit.provisioning.runs.poolfile import read_credentials
from locust import events
from locust import log as locust_log
from locust.env import Environment
from locust.runners import WorkerRunner

from .api_setup import check_preflight, metrics_scraper, prepare_api
from .broker import PoolBroker
from .credentials import load_catalog, resolve_pool_source
from .figures import collect_figures
from .gate import EXIT_BREACH, EXIT_PASS, Check, evaluate, render_table, resource_checks
from .metrics import install_metrics
from .options import ScenarioOptions, add_options
from .pool import broker_for, install_pool_master, install_pool_worker
from .report import platform_resources, results_meta, run_notes
from .results import build_results, compare_with_baseline, load_baseline, write_results
from .routes import load_routes
from .runstate import RunState
from .shapes import ProfileShape, resolve_profile

__all__ = ["EXIT_SCENARIO_ERROR", "fail_run", "run_state"]

log = logging.getLogger(__name__)

EXIT_SCENARIO_ERROR = 2
SCENARIO_CLASSES = ("AgenticPlatformUser", "ReadOnlyUser", "TenantIsolationProbe")
DEFAULT_CLASSES = ("AgenticPlatformUser",)


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
    from .isolation import TenantIsolationProbe

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
        checks += resource_checks(platform_resources(state), state.options.targets)
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
    state.notes = run_notes(state, figures, broker, exceptions, environment.host)
    state.checks = checks if state.options.gate else None
    if code is not None:
        environment.process_exit_code = code
    if state.options.results_json:
        doc = build_results(figures, checks, meta=results_meta(environment, state, broker), exit_code=code or 0)
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
