"""Rules of DEVELOPERS.md and ARCHITECTURE.md that code can check.

The simulator is the thing under test: if it imported the conformance table
or model, a PASS would only prove the table agrees with itself. Beyond that,
every module has a layer (:data:`LAYERS`, the table in ARCHITECTURE.md) and
imports only from its own layer or those below; no two modules import each
other, directly or round a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN_FOR_SIM = ("conformance", "strategies", "load", "reports")
PACKAGES = ("nfclease", "conformance", "load", "reports", "strategies")

#: The layers, lowest first: a module imports only from its own layer or below.
ORDER = ("ground", "simulator", "launcher", "client", "records", "domain", "faces")
#: Module (or package) -> layer; the longest matching name wins. A new ``nfclease.*`` module must find
#: its place here; a new module of conformance/, load/, reports/ or strategies/ takes its package's layer.
LAYERS: dict[str, str] = {
    # ground: the event record and its names, disk images, child processes, redaction, usage errors
    "nfclease": "ground", "nfclease.events": "ground", "nfclease.vocabulary": "ground",
    "nfclease.vmdk": "ground", "nfclease.vmdkformat": "ground", "nfclease.vmdkread": "ground",
    "nfclease.child": "ground", "nfclease.redaction": "ground",
    "nfclease.usage": "ground",
    # the simulator: implements the spec in its own code
    "nfclease.sim": "simulator",
    # the launcher: the only code that starts the simulator or vcsim
    "nfclease.launcher": "launcher", "nfclease.vcsim": "launcher",
    # the client: reaching a target, one lease's calls as events, NFC transfers, OVF, TLS
    "nfclease.target": "client", "nfclease.session": "client", "nfclease.transfer": "client",
    "nfclease.nfcconn": "client", "nfclease.nfcbody": "client",
    "nfclease.callrecord": "client", "nfclease.sessiontransfer": "client",
    "nfclease.targetinventory": "client", "nfclease.targetcleanup": "client",
    "nfclease.ovf": "client", "nfclease.lifecycle": "client", "nfclease.trust": "client",
    "nfclease.targetargs": "client", "nfclease.soaptap": "client", "nfclease.refclient": "client",
    # report records and strategies
    "nfclease.reports.results": "records", "nfclease.strategies": "records",
    # the two jobs: conformance and load
    "nfclease.conformance": "domain", "nfclease.load": "domain",
    # faces: command lines, the pytest plugin, the locustfile, the report pages
    "nfclease.cli": "faces", "nfclease.__main__": "faces", "nfclease.sim_cli": "faces",
    "nfclease.runjob": "faces", "nfclease.doctor": "faces", "nfclease.clean": "faces",
    "nfclease.conformance.cli": "faces", "nfclease.conformance.plugin": "faces", "nfclease.conformance.selftest": "faces",
    "nfclease.conformance.clients": "faces", "nfclease.conformance.judge_client": "faces", "nfclease.conformance.offline": "faces",
    "nfclease.conformance.gen_clauses": "faces", "nfclease.load.cli": "faces", "nfclease.load.locustfile": "faces",
    "nfclease.load.harness": "faces", "nfclease.reports": "faces",
}


def installed_as() -> dict[str, str]:
    """Top-level folder -> the package it is installed as (pyproject's ``package-dir``; itself if unmapped)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: no mapping can be read, folders are packages
        return {package: package for package in PACKAGES}
    with (ROOT / "pyproject.toml").open("rb") as handle:
        mapping = tomllib.load(handle).get("tool", {}).get("setuptools", {}).get("package-dir", {})
    names = {folder: name for name, folder in mapping.items() if name}
    return {package: names.get(package, package) for package in PACKAGES}


def _modules() -> dict[str, Path]:
    """Every module of the project (tests excepted), by the dotted name it is imported as."""
    names = installed_as()
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name.startswith("test_"):
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([names[package], *parts[1:]])] = path
    return found


def _layer(module: str) -> str | None:
    """The layer of ``module``: its own entry or its package's (``nfclease`` mixes layers: no default)."""
    match = max((name for name in LAYERS if module == name or (module.startswith(name + ".") and name != "nfclease")),
                key=len, default=None)
    return LAYERS[match] if match is not None else None


def _project_imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``module`` imports at run time (anywhere in it; ``if TYPE_CHECKING:`` excepted)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    typing_only = {id(sub) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for sub in ast.walk(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(filter(None, (owner(alias.name) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                name = owner(full) if full in modules else owner(base)
                if name:
                    found.add(name)
    found.discard(module)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _project_imports(name, path, modules) for name, path in modules.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a layer above its own, and every module without a layer."""
    problems = []
    for module, imported in sorted(graph.items()):
        layer = _layer(module)
        if layer is None:
            problems.append(f"{module} has no layer: add it to LAYERS (and ARCHITECTURE.md)")
            continue
        for other in sorted(imported):
            other_layer = _layer(other)
            if other_layer is not None and ORDER.index(other_layer) > ORDER.index(layer):
                problems.append(f"{module} ({layer}) imports {other} ({other_layer})")
    return problems


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other, directly or round a circle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_module_imports_only_its_own_layer_or_below() -> None:
    problems = upward_imports(_graph())
    assert not problems, "layering (see ARCHITECTURE.md):\n" + "\n".join(problems)


def test_no_import_cycles() -> None:
    cycles = import_cycles(_graph())
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_layer_checks_would_catch_a_violation() -> None:
    """The checks themselves: an upward import and a circle, made up, are both reported."""
    graph = {"nfclease.sim.world": {"nfclease.conformance.model"}, "nfclease.conformance.model": {"nfclease.sim.world"},
             "nfclease.brand_new": set()}
    assert any("nfclease.sim.world (simulator) imports nfclease.conformance.model (domain)" in p
               for p in upward_imports(graph))
    assert any("nfclease.brand_new has no layer" in p for p in upward_imports(graph))
    assert import_cycles(graph) == [["nfclease.conformance.model", "nfclease.sim.world"]]


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
    forbidden = {installed_as()[package] for package in FORBIDDEN_FOR_SIM}
    for path in sim_files:
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, "the simulator must implement the spec in its own code:\n" + "\n".join(offenders)


def test_model_never_talks_to_a_target() -> None:
    """The reference model is pure: no pyVim connection, no sockets, no simulator."""
    offenders = []
    for name in ("model.py", "judging.py", "checks.py", "verdicts.py", "state.py", "table.py", "clauses.py",
                 "offline.py", "client_clauses.py", "client_judge.py"):
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


def test_no_file_cites_a_design_doc_the_repo_lacks() -> None:
    """The records' formats and the layers are in ARCHITECTURE.md; nothing cites a DESIGN.md."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if (ROOT / "DESIGN.md").exists():
        return
    citing = [name for name in tracked if name.endswith((".py", ".md", ".toml", ".txt", ".yaml"))
              and name != "tests/test_layout.py" and "DESIGN.md" in (ROOT / name).read_text(encoding="utf-8")]
    assert not citing, f"these cite DESIGN.md, which the repository lacks: {citing}"
    assert (ROOT / "ARCHITECTURE.md").exists()


def test_every_package_folder_is_installed() -> None:
    """Each folder with an ``__init__.py`` is a package pyproject installs (by find patterns or by name)."""
    import fnmatch

    try:
        import tomllib
    except ImportError:
        pytest.skip("tomllib needs Python 3.11")
    with (ROOT / "pyproject.toml").open("rb") as handle:
        setuptools = tomllib.load(handle).get("tool", {}).get("setuptools", {})
    names = installed_as()
    packages = {".".join([names[top.parts[0]], *top.parts[1:]])
                for package in PACKAGES for top in
                (p.parent.relative_to(ROOT) for p in (ROOT / package).rglob("__init__.py"))}
    listed = set(setuptools.get("packages") or [])
    patterns = (setuptools.get("packages", {}) if isinstance(setuptools.get("packages"), dict) else {}) \
        .get("find", {}).get("include", [])
    missing = sorted(p for p in packages if p not in listed and not any(fnmatch.fnmatch(p, pat) for pat in patterns))
    assert not missing, f"not installed by pyproject.toml: {missing}"
