"""docker-compose.override.yml, merged by Docker Compose v2 over our stand-ins for the platform's file.

Two stand-ins reproduce the two dialects' structure (``fixtures/compose/``): v1's (the
platform's code: ``postgres``, ``redis``, ``api``, all on ``agentic-network`` only, database
``agentic_platform``) and the guide's (``api``, ``db``, database ``agentic_db``, the default
network).  No Docker engine runs here: ``docker-compose config`` validates, merges and
interpolates without one (DOCKER_HOST names a socket that does not exist), and these
tests read the merged result.  Images are not built and nothing is started.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agentic_loadkit.provisioning.target.guard import is_loopback_host
from agentic_loadkit.provisioning.target.url import parse_database_url

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[2]
TOOLKIT_SERVICES = ("provision", "locust-master", "locust-worker", "provision-down")
VOLUME = "loadkit-state"
V1 = REPO / "fixtures" / "compose" / "docker-compose.v1.yml"
GUIDE = REPO / "fixtures" / "compose" / "docker-compose.guide.yml"
OVERRIDE = REPO / "docker-compose.override.yml"

Compose = Callable[..., subprocess.CompletedProcess[str]]


def _volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Named-volume mounts of a service as {target: source[:ro]} (v2 prints the long syntax)."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes", []):
        mode = ":ro" if entry.get("read_only") else ""
        mounts[entry["target"]] = f"{entry['source']}{mode}"
    return mounts


def _ports(service: dict[str, Any]) -> set[tuple[int, int]]:
    """(target, published) pairs; v2 prints ``published`` as a string."""
    return {(int(p["target"]), int(p["published"])) for p in service.get("ports", [])}


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: dep["condition"] for name, dep in (service.get("depends_on") or {}).items()}


def _option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def test_v1_file_merges_onto_the_platforms_network(merged_compose: dict[str, Any]) -> None:
    services = merged_compose["services"]
    assert set(services) == {"api", "postgres", "redis", *TOOLKIT_SERVICES}
    # the platform's own services keep their shape: api waits for its database and redis
    assert _depends(services["api"]) == {"postgres": "service_healthy", "redis": "service_healthy"}
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "agentic_platform"
    for name in ("api", "postgres", "redis"):
        assert set(services[name]["networks"]) == {"agentic-network"}, name
    # ... and every toolkit service is on that network too, so `api` and `postgres` resolve
    for name in TOOLKIT_SERVICES:
        assert "agentic-network" in services[name]["networks"], name
    # the healthcheck is /health: v1's /health/ready answers 500, and nothing would ever start
    probe = " ".join(services["api"]["healthcheck"]["test"])
    assert "/health'" in probe and "/health/ready" not in probe
    assert VOLUME in merged_compose["volumes"]


def test_v1_dependencies_and_database(merged_compose: dict[str, Any]) -> None:
    services = merged_compose["services"]
    provision = services["provision"]
    assert _depends(provision) == {"api": "service_healthy"}  # api itself waits for postgres' healthcheck
    assert _depends(services["locust-master"]) == {"provision": "service_completed_successfully",
                                                   "api": "service_healthy"}
    assert _depends(services["locust-worker"]) == {"locust-master": "service_started"}
    assert _depends(services["provision-down"]) == {"api": "service_started"}
    for name in ("provision", "provision-down"):
        target = parse_database_url(services[name]["environment"]["DATABASE_URL"])
        assert target.hosts == (("postgres", 5432),), name
        assert (target.user, target.database) == ("postgres", "agentic_platform"), name
        # `postgres` is not loopback, so the guard would refuse it; the override allows it explicitly
        assert services[name]["environment"]["PROVISION_ALLOW_REMOTE"] == "1"
    assert not is_loopback_host("postgres", resolve=False)
    assert _option(services["locust-master"]["command"], "--host") == "http://api:8000"


def test_guide_file_merges_with_its_variables(merged_guide_compose: dict[str, Any]) -> None:
    services = merged_guide_compose["services"]
    assert set(services) == {"api", "db", "prometheus", "grafana", *TOOLKIT_SERVICES}
    assert services["db"]["environment"]["POSTGRES_DB"] == "agentic_db"
    assert _depends(services["api"]) == {"db": "service_healthy"}
    # the guide's services sit on the default network; the toolkit's join it
    assert set(services["api"]["networks"]) == {"default"}
    for name in TOOLKIT_SERVICES:
        assert "default" in services[name]["networks"], name
    for name in ("provision", "provision-down"):
        target = parse_database_url(services[name]["environment"]["DATABASE_URL"])
        assert target.hosts == (("db", 5432),) and target.database == "agentic_db", name
    assert services["api"]["environment"]["RATE_LIMIT_ENABLED"] == "false"  # the guide's limiter has a switch


def test_toolkit_services_build_the_repository_image(merged_compose: dict[str, Any]) -> None:
    services = merged_compose["services"]
    for name in TOOLKIT_SERVICES:
        assert services[name]["image"] == "agentic-loadkit:latest", name
        assert Path(services[name]["build"]["context"]) == REPO, name
    assert (REPO / "Dockerfile").is_file()


def test_provision_runs_up_into_the_volume(merged_compose: dict[str, Any]) -> None:
    provision = merged_compose["services"]["provision"]
    command = provision["command"]
    state_dir = _option(command, "--state-dir")
    assert command[command.index("up") - 2 : command.index("up")] == ["--state-dir", state_dir], (
        "--state-dir is the root option, before the command"
    )
    assert _option(command, "--scale") == "small"
    assert _option(command, "--seed") == "1"
    assert "--json" in command
    assert _volume_mounts(provision)[state_dir] == VOLUME
    assert provision.get("restart", "no") == "no"


def test_locust_master_reads_the_pool_and_serves_8089(merged_compose: dict[str, Any]) -> None:
    services = merged_compose["services"]
    master = services["locust-master"]
    assert master["entrypoint"] == ["locust"]
    command = master["command"]
    assert "--master" in command
    assert _option(command, "--web-port") == "8089"
    assert (8089, 8089) in _ports(master)
    # the pool is read from the volume provision wrote (read-only), found via PROVISION_STATE_DIR
    state_dir = master["environment"]["PROVISION_STATE_DIR"]
    assert state_dir == _option(services["provision"]["command"], "--state-dir")
    assert _volume_mounts(master)[state_dir] == f"{VOLUME}:ro"


def test_locust_workers_are_scalable_and_need_no_pool(merged_compose: dict[str, Any]) -> None:
    worker = merged_compose["services"]["locust-worker"]
    assert worker["entrypoint"] == ["locust"]
    command = worker["command"]
    assert "--worker" in command
    assert _option(command, "--master-host") == "locust-master"
    # `--scale locust-worker=N` needs no fixed container name and no published port
    assert "container_name" not in worker
    assert "ports" not in worker
    assert not worker.get("volumes"), "workers must not mount the credentials pool"


def test_paths_are_the_images(merged_compose: dict[str, Any], dockerfile_env: dict[str, str]) -> None:
    services = merged_compose["services"]
    for name in ("locust-master", "locust-worker"):
        assert _option(services[name]["command"], "-f") == dockerfile_env["LOCUST_LOCUSTFILE"], name
    master_state_dir = services["locust-master"]["environment"]["PROVISION_STATE_DIR"]
    assert dockerfile_env["PROVISION_STATE_DIR"] == master_state_dir


def test_provision_down_is_a_teardown_profile(merged_compose: dict[str, Any]) -> None:
    services = merged_compose["services"]
    down = services["provision-down"]
    assert down["profiles"] == ["teardown"]
    command = down["command"]
    assert "down" in command and "--all" in command
    assert _volume_mounts(down)[_option(command, "--state-dir")] == VOLUME
    # only provision-down is behind a profile: the rest start with a plain `up`
    assert [n for n, s in services.items() if s.get("profiles")] == ["provision-down"]


def test_profiles_listed(compose: Compose) -> None:
    proc = compose((V1, OVERRIDE), "--profiles")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["teardown"]


def test_names_come_from_the_environment(
    compose: Compose, compose_environment: Callable[..., dict[str, str]], load_yaml: Callable[[str], Any]
) -> None:
    env = compose_environment(PROVISION_SCALE="medium", PROVISION_SEED="7", POSTGRES_PASSWORD="s3cret",
                              PLATFORM_DB_HOST="pg", PLATFORM_DB_NAME="platform", PLATFORM_API_HOST="web",
                              PLATFORM_API_PORT="9000")
    proc = compose((V1, OVERRIDE), env=env)
    assert proc.returncode == 0, proc.stderr
    services = load_yaml(proc.stdout)["services"]
    command = services["provision"]["command"]
    assert (_option(command, "--scale"), _option(command, "--seed")) == ("medium", "7")
    target = parse_database_url(services["provision"]["environment"]["DATABASE_URL"])
    assert (target.password, target.hosts, target.database) == ("s3cret", (("pg", 5432),), "platform")
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"
    assert _option(services["locust-master"]["command"], "--host") == "http://web:9000"


def test_config_really_validates_dependencies(compose: Compose, tmp_path: Path) -> None:
    """A platform file without `api` makes the merge fail: `config` checks what it merges."""
    broken = V1.read_text().replace("  api:\n", "  backend:\n")
    platform = tmp_path / "docker-compose.yml"
    platform.write_text(broken)
    proc = compose((platform, OVERRIDE))
    assert proc.returncode != 0
    assert "api" in proc.stderr


def test_missing_compose_binary_fails_the_test(
    docker_compose_lookup: Callable[[Path | None], str], tmp_path: Path
) -> None:
    with pytest.raises(pytest.fail.Exception, match="Docker Compose v2 is not installed"):
        docker_compose_lookup(tmp_path)
