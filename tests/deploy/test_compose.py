"""docker-compose.override.yml, merged over a sample of the platform's own compose file.

No Docker engine runs here: ``docker-compose config`` validates, merges and
interpolates the files without one (DOCKER_HOST names a socket that does not exist),
and these tests read the merged result.  Images are not built and nothing is started.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agentic_loadkit.provisioning.dburl import is_loopback_host, parse_database_url

__all__: list[str] = []

REPO = Path(__file__).resolve().parents[2]
TOOLKIT_SERVICES = ("provision", "locust-master", "locust-worker", "provision-down")
VOLUME = "loadkit-state"
COMPOSE_FILES = (REPO / "fixtures" / "compose" / "docker-compose.yml", REPO / "docker-compose.override.yml")

Compose = Callable[..., subprocess.CompletedProcess[str]]


def _volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Named-volume mounts of a service as {target: source[:mode]} (v1 prints short syntax)."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            mode = ":ro" if entry.get("read_only") else ""
            mounts[entry["target"]] = f"{entry['source']}{mode}"
        else:
            source, target, *mode = entry.split(":")
            mounts[target] = source + (f":{mode[0]}" if mode and mode[0] == "ro" else "")
    return mounts


def _option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def test_merged_services(merged_compose: dict[str, Any]) -> None:
    services = merged_compose["services"]
    assert set(services) == {"api", "db", "prometheus", "grafana", *TOOLKIT_SERVICES}
    # the platform's own services survive the merge untouched where we did not add anything
    assert services["db"]["image"] == "postgres:16"
    assert services["db"]["environment"]["POSTGRES_DB"] == "agentic_db"
    assert services["api"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["api"]["image"] == "agentic-platform:latest"
    # the override adds a readiness check to api and turns its rate limiter off for load tests
    assert "/health/ready" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["api"]["environment"]["RATE_LIMIT_ENABLED"] == "false"
    assert VOLUME in merged_compose["volumes"]


def test_toolkit_services_build_the_repository_image(merged_compose: dict[str, Any]) -> None:
    services = merged_compose["services"]
    for name in TOOLKIT_SERVICES:
        assert services[name]["image"] == "agentic-loadkit:latest", name
        assert Path(services[name]["build"]["context"]) == REPO, name
    assert (REPO / "Dockerfile").is_file()


def test_provision_runs_up_against_db_into_the_volume(merged_compose: dict[str, Any]) -> None:
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
    assert provision["depends_on"]["db"] == {"condition": "service_healthy"}
    assert provision["depends_on"]["api"] == {"condition": "service_healthy"}
    assert provision.get("restart", "no") == "no"

    env = provision["environment"]
    target = parse_database_url(env["DATABASE_URL"])
    assert target.hosts == (("db", 5432),)
    assert (target.user, target.database) == ("postgres", "agentic_db")
    # `db` is not loopback, so the guard would refuse it; the override allows it explicitly
    assert not is_loopback_host("db", resolve=False)
    assert env["PROVISION_ALLOW_REMOTE"] == "1"


def test_locust_master_reads_the_pool_and_serves_8089(merged_compose: dict[str, Any]) -> None:
    services = merged_compose["services"]
    master = services["locust-master"]
    assert master["entrypoint"] == ["locust"]
    command = master["command"]
    assert "--master" in command
    assert _option(command, "--host") == "http://api:8000"
    assert _option(command, "--web-port") == "8089"
    assert {"published": 8089, "target": 8089} in master["ports"]
    # the pool is read from the volume provision wrote (read-only), found via PROVISION_STATE_DIR
    state_dir = master["environment"]["PROVISION_STATE_DIR"]
    assert state_dir == _option(services["provision"]["command"], "--state-dir")
    assert _volume_mounts(master)[state_dir] == f"{VOLUME}:ro"
    assert master["depends_on"]["provision"] == {"condition": "service_completed_successfully"}
    assert master["depends_on"]["api"] == {"condition": "service_healthy"}


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
    assert worker["depends_on"] == {"locust-master": {"condition": "service_started"}}


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
    state_dir = _option(command, "--state-dir")
    assert _volume_mounts(down)[state_dir] == VOLUME
    assert down["environment"]["PROVISION_ALLOW_REMOTE"] == "1"
    assert parse_database_url(down["environment"]["DATABASE_URL"]).hosts == (("db", 5432),)
    assert down["depends_on"] == {"db": {"condition": "service_healthy"}}
    # only provision-down is behind a profile: the rest start with a plain `up`
    assert [n for n, s in services.items() if s.get("profiles")] == ["provision-down"]


def test_profiles_listed(compose: Compose) -> None:
    proc = compose(COMPOSE_FILES, "--profiles")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["teardown"]


def test_scale_and_seed_come_from_the_environment(
    compose: Compose, compose_environment: Callable[..., dict[str, str]], load_yaml: Callable[[str], Any]
) -> None:
    env = compose_environment(PROVISION_SCALE="medium", PROVISION_SEED="7", POSTGRES_PASSWORD="s3cret")
    proc = compose(env=env)
    assert proc.returncode == 0, proc.stderr
    services = load_yaml(proc.stdout)["services"]
    command = services["provision"]["command"]
    assert (_option(command, "--scale"), _option(command, "--seed")) == ("medium", "7")
    assert parse_database_url(services["provision"]["environment"]["DATABASE_URL"]).password == "s3cret"
    assert services["db"]["environment"]["POSTGRES_PASSWORD"] == "s3cret"


def test_config_really_validates_dependencies(compose: Compose, tmp_path: Path) -> None:
    """A platform file without `db` makes the merge fail: `config` checks what it merges."""
    broken = COMPOSE_FILES[0].read_text().replace("  db:\n", "  database:\n")
    platform = tmp_path / "docker-compose.yml"
    platform.write_text(broken)
    proc = compose((platform, COMPOSE_FILES[1]))
    assert proc.returncode != 0
    assert "db" in proc.stderr


def test_missing_docker_compose_fails_the_test(
    docker_compose_lookup: Callable[[str | None], str], tmp_path: Path
) -> None:
    with pytest.raises(pytest.fail.Exception, match="docker-compose is not installed"):
        docker_compose_lookup(str(tmp_path))
