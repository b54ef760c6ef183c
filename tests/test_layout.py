"""Rules of DEVELOPERS.md that code can check.

The simulator is the thing under test: if it imported the conformance table
or model, a PASS would only prove the table agrees with itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_FOR_SIM = ("conformance", "strategies", "load", "reports")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_simulator_never_imports_the_conformance_side() -> None:
    offenders = []
    sim_files = sorted((ROOT / "nfclease" / "sim").rglob("*.py"))
    assert sim_files, "nfclease/sim/ has no Python files"
    for path in sim_files:
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN_FOR_SIM:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "the simulator must implement the spec in its own code:\n" + "\n".join(offenders)


def test_model_never_talks_to_a_target() -> None:
    """The reference model is pure: no pyVim connection, no sockets, no simulator."""
    offenders = []
    for name in ("model.py", "table.py", "clauses.py", "offline.py", "client_clauses.py", "client_judge.py"):
        path = ROOT / "conformance" / name
        for imported in _imports(path):
            if imported.split(".")[0] in ("pyVim", "socket", "http", "ssl", "requests") or \
                    imported.startswith("nfclease.sim") or imported.startswith("nfclease.target"):
                offenders.append(f"conformance/{name} imports {imported}")
    assert not offenders, "\n".join(offenders)


def test_quick_start_has_exactly_two_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1]
    block = section.split("```", 2)[1]
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1].strip() in ci or "tools/test" in commands[1] and "tools/test" in ci
