"""The CLI registers its commands without importing the stacks behind them.

``provision --help`` and ``--version`` must not pay for SQLAlchemy, asyncpg, Faker or the
event loop: each command imports what it needs when it runs.  Checked in a fresh
interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import typer.main
from agentic_loadkit.cli import app as cli
from agentic_loadkit.demo.settings import DemoSettings
from agentic_loadkit.provisioning.api import DownSettings

HEAVY = ("sqlalchemy", "asyncpg", "faker", "asyncio", "agentic_loadkit.provisioning.up.provision")

PROBE = """
import json, sys
from agentic_loadkit.cli import app as cli
import typer.main
group = typer.main.get_command(cli.app)
print(json.dumps({"commands": sorted(group.commands), "loaded": sorted(sys.modules)}))
"""


def test_registering_the_commands_imports_no_heavy_stack() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    probe = json.loads(out)
    assert {"up", "down", "demo", "db", "platform", "runs", "status", "credentials"} <= set(probe["commands"])
    loaded = [m for m in probe["loaded"] if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert loaded == []


def test_help_runs_without_the_heavy_stack() -> None:
    code = (
        "import sys\n"
        "from agentic_loadkit.cli.app import main\n"
        "sys.argv = ['provision', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {list(HEAVY)!r} if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert "up " in proc.stdout and "down " in proc.stdout  # the help lists the commands
    assert "LOADED []" in proc.stdout


def _defaults(command: str) -> dict[str, object]:
    params = typer.main.get_command(cli.app).commands[command].params  # type: ignore[attr-defined]
    return {p.name: p.default for p in params}


def test_help_defaults_are_the_settings_defaults() -> None:
    # the CLI states these defaults without importing the settings' modules
    down = _defaults("down")
    assert (down["batch_tenants"], down["jobs"]) == (DownSettings.batch_tenants, DownSettings.jobs)
    demo = _defaults("demo")
    assert (demo["time_scale"], demo["bcrypt_cost"]) == (DemoSettings.time_scale, DemoSettings.bcrypt_cost)
