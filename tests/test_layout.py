"""The code keeps the team's size rules: small modules, short functions, a short provisioning top.

A module of one concern fits in 400 lines and a function in 60 (counted from its ``def`` line
to its last line, decorators excluded); ``provisioning/`` holds at most twelve entries at its
top, the rest living in its stage packages.  The rules are read from the source files with
``ast``, so they hold for every module, imported or not.  The import layers (pyproject's
``[tool.importlinter]``) are checked too where import-linter is installed (the dev extra).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("provisioning", "cli", "demo", "scenarios", "fixtures/platform")
MAX_PROVISIONING_TOP_ENTRIES = 12
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    found = [p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))]
    return [p for p in found if "__pycache__" not in p.parts]


def _long_functions(path: Path) -> list[str]:
    """``name (N lines)`` of every function or method in ``path`` longer than the limit."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                out.append(f"{node.name} ({length} lines)")
    return out


def _relative(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_the_packages_have_modules() -> None:
    modules = {_relative(p).split("/")[0] for p in _modules()}
    assert modules == {p.split("/")[0] for p in PACKAGES}


def test_provisioning_top_has_at_most_twelve_entries() -> None:
    entries = sorted(p.name for p in (REPO / "provisioning").iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_PROVISIONING_TOP_ENTRIES, entries


@pytest.mark.parametrize("path", _modules(), ids=_relative)
def test_module_is_at_most_400_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_relative(path)} has {lines} lines"


@pytest.mark.parametrize("path", _modules(), ids=_relative)
def test_functions_are_at_most_60_lines(path: Path) -> None:
    assert _long_functions(path) == [], _relative(path)


def test_the_import_layers_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        pytest.skip("import-linter is not installed (it comes with the dev extra)")
    proc = subprocess.run(
        [str(REPO / ".ci" / "import-names"), str(lint_imports), "--no-cache", str(REPO / "pyproject.toml")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout, proc.stdout[-6000:]
