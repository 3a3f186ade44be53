"""Fixtures for the deployment files: docker-compose (merged with ``docker-compose config``,
which needs no Docker engine) and a YAML loader.

YAML: PyYAML when the test environment has it; otherwise the PyYAML that
docker-compose itself runs on (a dependency of Debian's ``docker-compose`` package),
through docker-compose's own interpreter.  No Python dependency is added for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

__all__: list[str] = []  # fixtures only; test modules do not import conftest

REPO = Path(__file__).resolve().parents[2]
PLATFORM_COMPOSE = REPO / "fixtures" / "compose" / "docker-compose.yml"
OVERRIDE = REPO / "docker-compose.override.yml"
COMPOSE_FILES = (PLATFORM_COMPOSE, OVERRIDE)
# Variables the compose files interpolate; cleared so that the caller's shell cannot
# change what the tests see.
_COMPOSE_VARS_PREFIXES = (
    "PROVISION_", "LOADKIT_", "POSTGRES_", "LOCUST_", "RATE_LIMIT_", "COMPOSE_", "DOCKER_",
)


def find_docker_compose(path: str | None = None) -> str:
    """The docker-compose executable, or a test FAILURE (not a skip) saying how to get it."""
    found = shutil.which("docker-compose", path=path)
    if found is None:
        pytest.fail(
            "docker-compose is not installed, so the compose override cannot be checked: "
            "install Debian's package (apt-get install -y --no-install-recommends docker-compose).",
            pytrace=False,
        )
    return found


def compose_env(**overrides: str) -> dict[str, str]:
    """A controlled environment for docker-compose: no inherited compose variables, no
    Docker engine reachable (DOCKER_HOST names a socket that does not exist)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_COMPOSE_VARS_PREFIXES)}
    env.update(
        DOCKER_HOST="unix:///nonexistent/agentic-loadkit-test/docker.sock",
        COMPOSE_PROJECT_NAME="loadkit-test",
        LOADKIT_SRC=str(REPO),
    )
    env.update(overrides)
    return env


def run_compose_config(
    files: tuple[Path, ...] = COMPOSE_FILES, *extra_args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f A -f B config [extra]``: validates, merges and interpolates."""
    args = [find_docker_compose()]
    for f in files:
        args += ["-f", str(f)]
    args += ["config", *extra_args]
    return subprocess.run(
        args, capture_output=True, text=True, timeout=60, check=False,
        env=env if env is not None else compose_env(),
    )


def _compose_python() -> str:
    """The interpreter docker-compose runs on (its script's shebang)."""
    first = Path(find_docker_compose()).read_text(errors="replace").splitlines()[0]
    interpreter = first.removeprefix("#!").strip().split()[0] if first.startswith("#!") else ""
    if not interpreter or not os.access(interpreter, os.X_OK):
        pytest.fail(f"Cannot find the Python interpreter of docker-compose (first line {first!r}).",
                    pytrace=False)
    return interpreter


@pytest.fixture(scope="session")
def load_yaml() -> Callable[[str], Any]:
    """A YAML 1.1 loader (PyYAML's safe_load), returning plain Python data."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        pass
    else:
        return yaml.safe_load  # type: ignore[no-any-return]

    interpreter = _compose_python()
    script = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"

    def load(text: str) -> Any:
        proc = subprocess.run([interpreter, "-c", script], input=text, capture_output=True, text=True,
                              timeout=30, check=False)
        if proc.returncode != 0:
            raise ValueError(f"YAML did not parse: {proc.stderr.strip().splitlines()[-1:]}")
        return json.loads(proc.stdout)

    return load


@pytest.fixture(scope="session")
def merged_compose(load_yaml: Callable[[str], Any]) -> dict[str, Any]:
    """The platform's sample compose file merged with the toolkit's override."""
    proc = run_compose_config()
    assert proc.returncode == 0, f"docker-compose config failed: {proc.stderr.strip()}"
    data = load_yaml(proc.stdout)
    assert isinstance(data, dict)
    return data


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole:
            keyword, _, rest = whole.partition(" ")
            instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


@pytest.fixture(scope="session")
def dockerfile() -> list[tuple[str, str]]:
    """The repository's Dockerfile as (INSTRUCTION, arguments) pairs."""
    return _dockerfile_instructions((REPO / "Dockerfile").read_text())


@pytest.fixture(scope="session")
def dockerfile_env(dockerfile: list[tuple[str, str]]) -> dict[str, str]:
    """Variables set by the Dockerfile's ENV instructions (KEY=value form)."""
    env: dict[str, str] = {}
    for keyword, args in dockerfile:
        if keyword == "ENV":
            for item in args.split():
                key, eq, value = item.partition("=")
                if eq:
                    env[key] = value
    return env


@pytest.fixture(scope="session")
def compose() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_compose_config`` as a fixture (test modules do not import conftest)."""
    return run_compose_config


@pytest.fixture(scope="session")
def compose_environment() -> Callable[..., dict[str, str]]:
    """``compose_env`` as a fixture."""
    return compose_env


@pytest.fixture(scope="session")
def docker_compose_lookup() -> Callable[[str | None], str]:
    """``find_docker_compose`` as a fixture."""
    return find_docker_compose
