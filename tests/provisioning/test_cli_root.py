"""The CLI's root behaviour: help everywhere, version, one-line errors, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from agentic_loadkit.cli import app as cli
from agentic_loadkit.provisioning import __version__
from typer.testing import CliRunner

runner = CliRunner()


def _commands(app: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import typer.main

    group = typer.main.get_command(app)  # type: ignore[arg-type]
    found: list[tuple[str, ...]] = []

    def walk(cmd: object, path: tuple[str, ...]) -> None:
        found.append(path)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*path, name))

    walk(group, prefix)
    return found


def test_version() -> None:
    result = runner.invoke(cli.app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_every_command_has_help() -> None:
    commands = _commands(cli.app)
    assert ("db", "status") in commands and ("platform", "init") in commands
    for path in commands:
        result = runner.invoke(cli.app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


@pytest.mark.parametrize(
    ("url", "code", "needle"),
    [
        ("postgresql://postgres:pw@127.0.0.1:1/nope", 5, "127.0.0.1:1"),
        ("mysql://root@127.0.0.1/db", 2, "only PostgreSQL URLs"),
        ("postgresql://u:pw@db.invalid:5432/x", 4, "db.invalid"),
        ("postgresql://u:pw@127.0.0.1:notaport/x", 2, "non-numeric port"),
    ],
)
def test_bad_database_urls_give_one_sentence(url: str, code: int, needle: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentic_loadkit.cli", "platform", "init", "--database-url", url],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr and "pw@" not in proc.stderr + proc.stdout


def test_debug_shows_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentic_loadkit.cli", "--debug", "platform", "init",
         "--database-url", "postgresql://postgres@127.0.0.1:1/nope"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 5
    assert "Traceback" in proc.stderr


def test_db_status_when_not_running(tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["--state-dir", str(tmp_path / "st"), "db", "status"])
    assert result.exit_code == 3
    assert "not running" in result.output
