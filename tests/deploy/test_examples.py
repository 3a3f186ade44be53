"""The deployment examples: GitHub Actions workflow, CI shell script, Prometheus scrape
snippet, Grafana dashboard, Dockerfile and .dockerignore.

Static checks (they parse, they hold what they promise), the CI script's own
configuration errors and its exit code when provisioning fails (real runs of the
script and of ``provision``), and that every option the examples pass exists in the
real ``provision`` and ``locust`` command lines.  The script's full run against the
reference platform is an end-to-end test of its own.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agentic_loadkit.provisioning.errors import RemoteTargetRefused

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "ci" / "github-actions.yml"
SCRIPT = REPO / "examples" / "ci" / "loadtest.sh"
DASHBOARD = REPO / "examples" / "grafana" / "locust-dashboard.json"
SCRAPE = REPO / "examples" / "prometheus" / "scrape.yml"
BIN = Path(sys.executable).parent  # the virtualenv's provision and locust

METRICS = {
    "locust_requests_total",
    "locust_failures_total",
    "locust_requests_per_second",
    "locust_response_time_milliseconds",
    "locust_users",
    "loadkit_pool_accounts",
}
METRIC_LABELS = {"method", "name", "quantile", "state"}


# ---- GitHub Actions ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow(load_yaml: Callable[[str], Any]) -> dict[str, Any]:
    data = load_yaml(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    jobs = workflow["jobs"]
    assert len(jobs) == 1
    (job,) = jobs.values()
    return list(job["steps"])


def _index(steps: list[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool], what: str) -> int:
    found = [i for i, step in enumerate(steps) if predicate(step)]
    assert len(found) == 1, f"expected one step that {what}, found {len(found)}"
    return found[0]


def test_workflow_shape(workflow: dict[str, Any]) -> None:
    # PyYAML reads the key `on` as YAML 1.1's boolean true
    triggers = next(workflow[k] for k in ("on", True, "true") if k in workflow)
    assert "pull_request" in triggers and "workflow_dispatch" in triggers
    (job,) = workflow["jobs"].values()
    assert isinstance(job["timeout-minutes"], int)
    postgres = job["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert postgres["env"]["POSTGRES_DB"] == "agentic_db"
    assert "pg_isready" in postgres["options"]
    assert "127.0.0.1:5432/agentic_db" in job["env"]["DATABASE_URL"]


def test_workflow_steps_and_always_teardown(workflow: dict[str, Any]) -> None:
    steps = _steps(workflow)
    run = lambda step: step.get("run", "")  # noqa: E731
    checkout = _index(steps, lambda s: str(s.get("uses", "")).startswith("actions/checkout@"), "checks out")
    init = _index(steps, lambda s: "provision platform init" in run(s), "creates the reference schema")
    up = _index(steps, lambda s: "provision up" in run(s), "provisions")
    load = _index(steps, lambda s: re.search(r"^\s*locust ", run(s), re.M) is not None, "runs Locust")
    upload = _index(steps, lambda s: str(s.get("uses", "")).startswith("actions/upload-artifact@"), "uploads")
    down = _index(steps, lambda s: "provision down" in run(s), "tears down")
    assert checkout < init < up < load < upload < down

    locust = run(steps[load])
    for flag in ("--headless", "--results-json", "--baseline", "--html"):
        assert flag in locust, flag
    for index in (upload, down):
        assert "always()" in steps[index].get("if", ""), steps[index].get("name")
    for index in (checkout, init, up, load):
        assert "if" not in steps[index]
    # the report and the figures are written where the artifact step uploads from
    assert '"$OUT_DIR/report.html"' in locust and '"$OUT_DIR/results.json"' in locust
    assert steps[upload]["with"]["path"].startswith("${{ env.OUT_DIR }}")
    # the credentials pool lives outside the uploaded directory
    assert any('PROVISION_STATE_DIR=$RUNNER_TEMP' in run(s) for s in steps)


def test_workflow_run_blocks_are_valid_bash(workflow: dict[str, Any]) -> None:
    for step in _steps(workflow):
        script = step.get("run")
        if script is None:
            continue
        assert "${{" not in script, "expressions in run blocks are injection-prone; use env"
        proc = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{step.get('name')}: {proc.stderr}"


# ---- the CI shell script ----------------------------------------------------------------------


def test_script_syntax_and_mode() -> None:
    proc = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert os.access(SCRIPT, os.X_OK)
    text = SCRIPT.read_text()
    assert re.search(r"^trap teardown EXIT$", text, re.M)
    assert '"$PROVISION" down "$run_id"' in text


def _script_env(tmp_path: Path, **values: str) -> dict[str, str]:
    inherited = {"HOST", "DATABASE_URL", "RUN_TIME", "LOAD_PROFILE", "TIME_SCALE", "BASELINE", "SET",
                 "LOCUST_ARGS", "PROVISION_ALLOW_REMOTE", "PROVISION_STATE_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in inherited}
    locustfile = tmp_path / "locustfile.py"
    locustfile.write_text("# stands in for the scenarios' locustfile: this run fails before Locust\n")
    env.update(
        HOST="http://127.0.0.1:9",
        DATABASE_URL="postgresql://postgres@127.0.0.1:5432/agentic_db",
        PROVISION=str(BIN / "provision"),
        LOCUST=str(BIN / "locust"),
        LOCUSTFILE=str(locustfile),
        OUT_DIR=str(tmp_path / "out"),
        TMPDIR=str(tmp_path),
    )
    env.update(values)
    return env


def _run_script(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT)], env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"HOST": ""}, "HOST is not set"),
        ({"DATABASE_URL": ""}, "DATABASE_URL is not set"),
        ({"RUN_TIME": "10s", "LOAD_PROFILE": "light"}, "not both"),
        ({"PROVISION": "no-such-provision-command"}, "is not on PATH"),
        ({"LOCUSTFILE": "/nonexistent/locustfile.py"}, "does not exist"),
    ],
)
def test_script_configuration_errors(tmp_path: Path, change: dict[str, str], message: str) -> None:
    proc = _run_script(_script_env(tmp_path, **change), tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    # checked before anything is made: no output directory, no state directory
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("loadkit-state.*"))


def test_script_exits_with_provisions_code_and_leaves_nothing(tmp_path: Path) -> None:
    """A refused (non-loopback) database: `provision up` fails before any connection, the
    script exits with provision's code, never starts Locust, and removes its state dir."""
    env = _script_env(tmp_path, DATABASE_URL="postgresql://postgres@platform-db.invalid:5432/agentic_db")
    proc = _run_script(env, tmp_path)
    assert proc.returncode == RemoteTargetRefused.exit_code, proc.stderr
    assert "Refusing" in proc.stderr
    assert "provision up failed" in proc.stderr
    assert "loadtest: locust " not in proc.stderr
    assert not list(tmp_path.glob("loadkit-state.*"))


# ---- Prometheus and Grafana -------------------------------------------------------------------


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


def test_grafana_dashboard_queries_the_toolkits_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 5
    variables = dashboard["templating"]["list"]
    assert {"name": "datasource", "type": "datasource", "query": "prometheus"}.items() <= variables[0].items()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert panel["targets"], panel["title"]
    exprs = _exprs(dashboard)
    used = {m for e in exprs for m in re.findall(r"\b(?:locust|loadkit)_[a-z_]+", e)}
    assert used == METRICS
    for e in exprs:
        for group in re.findall(r"\bby \(([^)]*)\)", e):
            assert {label.strip() for label in group.split(",")} <= METRIC_LABELS, e
        for label in re.findall(r"(\w+)=\"", e):
            assert label in METRIC_LABELS, e
    joined = "\n".join(exprs)
    assert 'locust_response_time_milliseconds{quantile="0.95"}' in joined
    assert 'loadkit_pool_accounts{state="in_use"}' in joined and 'loadkit_pool_accounts{state="free"}' in joined


def test_prometheus_scrape_targets_the_master(
    load_yaml: Callable[[str], Any], merged_compose: dict[str, Any]
) -> None:
    (job,) = load_yaml(SCRAPE.read_text())["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (target,) = [t for group in job["static_configs"] for t in group["targets"]]
    host, port = target.rsplit(":", 1)
    master = merged_compose["services"][host]  # the compose service of that name
    assert "--master" in master["command"]
    assert {(int(p["target"]), int(p["published"])) for p in master["ports"]} == {(int(port), int(port))}


# ---- Dockerfile and .dockerignore ---------------------------------------------------------


def _ignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [ln.strip().strip("/") for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _segments_match(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    if pattern[0] == "**":
        return any(_segments_match(pattern[1:], path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], pattern[0]) and _segments_match(pattern[1:], path[1:])


def _docker_ignores(path: str, patterns: list[str]) -> bool:
    """Docker's rule: a file is left out when it, or a directory above it, matches a pattern."""
    parts = path.split("/")
    return any(
        _segments_match(p.split("/"), parts[:i]) for p in patterns for i in range(1, len(parts) + 1)
    )


def test_dockerfile_builds_a_non_root_provision_image(dockerfile: list[tuple[str, str]],
                                                       dockerfile_env: dict[str, str]) -> None:
    keywords = [k for k, _ in dockerfile]
    assert keywords[0] == "FROM"
    base = re.fullmatch(r"python:3\.(\d+)(-slim)?(-\w+)?", dockerfile[0][1])
    assert base is not None and int(base.group(1)) >= 11, dockerfile[0][1]

    entrypoints = [json.loads(a) for k, a in dockerfile if k == "ENTRYPOINT"]
    assert entrypoints == [["provision"]]
    runs = " && ".join(a for k, a in dockerfile if k == "RUN")
    assert "pip install ." in runs
    assert "locust --version" in runs and "provision --version" in runs  # both on PATH at build time

    user_at = keywords.index("USER")
    assert dockerfile[user_at][1] not in {"root", "0", "0:0"}
    last_build_step = max(i for i, k in enumerate(keywords) if k in {"RUN", "COPY"})
    assert last_build_step < user_at < keywords.index("ENTRYPOINT")
    assert re.search(r"useradd .*\bloadkit\b", runs) and dockerfile[user_at][1] == "loadkit"
    exposed = {p for k, a in dockerfile if k == "EXPOSE" for p in a.split()}
    assert {"8089", "5557"} <= exposed

    # what pip needs is copied, to where LOCUST_LOCUSTFILE points
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    package_roots = {p.split("/")[0] for p in pyproject["tool"]["setuptools"]["package-dir"].values()}
    copies: dict[str, str] = {}
    workdir = "/"
    for keyword, args in dockerfile:
        if keyword == "WORKDIR":
            workdir = args
        if keyword == "COPY":
            *sources, dest = shlex.split(args)
            target = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
            for source in sources:
                copies[source.rstrip("/")] = target
    required = {"pyproject.toml", pyproject["project"]["readme"], *package_roots}
    assert required <= set(copies), required - set(copies)
    assert Path(dockerfile_env["LOCUST_LOCUSTFILE"]).parent == Path(copies["scenarios"])

    patterns = _ignore_patterns()
    for path in required:
        assert (REPO / path).exists(), path
        assert not _docker_ignores(path, patterns), path
    for path in ("cli/app.py", "scenarios/locustfile.py", "fixtures/compose/docker-compose.v1.yml"):
        assert not _docker_ignores(path, patterns), path
    for path in (".provision/runs/r1/credentials.csv", "sub/.provision/pgdata/PG_VERSION", ".git/HEAD",
                 ".env", "tests/conftest.py", "cli/__pycache__/app.cpython-311.pyc"):
        assert _docker_ignores(path, patterns), path


# ---- the options the examples use exist ---------------------------------------------------------

PROVISION_OPTIONS = {
    (): ["--state-dir"],
    ("up",): ["--scale", "--seed", "--json", "--set", "--bcrypt-cost"],
    ("down",): ["--json", "--all"],
    ("platform", "init"): [],
    ("platform", "serve"): ["--host", "--port", "--no-rate-limit"],
}
LOCUST_OPTIONS = [
    # Locust's own
    "--headless", "--host", "--html", "--csv", "--users", "--spawn-rate", "--run-time",
    "--master", "--worker", "--master-host", "--web-port",
    # added by the scenarios' locustfile
    "--credentials", "--load-profile", "--time-scale", "--results-json", "--baseline",
    "--max-regression",
]
EXAMPLE_TEXT = "\n".join(
    p.read_text() for p in (WORKFLOW, SCRIPT, REPO / "docker-compose.override.yml")
)


def _help(args: list[str]) -> str:
    env = dict(os.environ, COLUMNS="200", TERM="dumb", NO_COLOR="1")
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr.strip()[-500:]}"
    return proc.stdout


def _provision_options(path: tuple[str, ...]) -> set[str]:
    """The options of a ``provision`` (sub)command, read from the real typer app (typer
    0.2x vendors click, so groups are recognised by their ``commands``, not their class)."""
    import typer.main
    from agentic_loadkit.cli import app as cli

    command: Any = typer.main.get_command(cli.app)
    for name in path:
        sub = getattr(command, "commands", {}).get(name)
        assert sub is not None, f"provision has no command {' '.join(path)}"
        command = sub
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


@pytest.mark.parametrize("command", list(PROVISION_OPTIONS), ids=lambda c: " ".join(c) or "root")
def test_provision_options_used_by_the_examples_exist(command: tuple[str, ...]) -> None:
    assert re.search(r"provision\s+" + r"\s+".join(command), EXAMPLE_TEXT) or not command
    options = _provision_options(command)
    for option in PROVISION_OPTIONS[command]:
        assert option in EXAMPLE_TEXT, f"{option} is no longer used by the examples; update this table"
        assert option in options, f"provision {' '.join(command)} has no {option}"


# `locust -f F --help` does not load F, so its custom options never show there: load the
# locustfile the way Locust does, then print the parser's help with the options it added.
_LOCUST_HELP = """
import importlib.util, os, sys
from locust import argument_parser
path = sys.argv[1]
sys.path.insert(0, os.path.dirname(path))
spec = importlib.util.spec_from_file_location("locustfile", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
argument_parser.get_parser().print_help()
"""


def test_locust_options_used_by_the_examples_exist() -> None:
    text = _help([sys.executable, "-c", _LOCUST_HELP, str(REPO / "scenarios" / "locustfile.py")])
    for option in LOCUST_OPTIONS:
        assert option in EXAMPLE_TEXT, f"{option} is no longer used by the examples; update this table"
        assert re.search(rf"{re.escape(option)}\b", text), f"locust has no {option} with our locustfile"
