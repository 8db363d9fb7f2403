"""The web app never needs torch: DESIGN.md's promise that `pip install .` serves the web app,
and that a web process does not pay the seconds and gigabytes of importing the ML stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "transformers", "trl", "datasets", "peft", "accelerate"}


def test_no_module_under_app_names_the_ml_stack() -> None:
    offenders = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                for name in names
                if name.split(".")[0] in HEAVY
            ]
    assert offenders == []


def test_importing_the_app_and_cli_loads_no_ml_module() -> None:
    code = (
        "import sys, app.main, app.cli, app.services.runs, worker.tasks\n"
        "app.main.create_app\n"
        f"print(sorted(m for m in {sorted(HEAVY)!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
