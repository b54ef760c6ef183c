"""``nfclease clients``: run real clients, unchanged, against the simulator under every scenario, and grade them.

    nfclease clients                                   # nfclease's own client, and govc if built
    nfclease clients --clients my-clients.yaml --report out/ --scenario baseline --scenario eof-upload

For each client of the YAML file and each client scenario
(``nfclease sim --list-scenarios``), the embedded simulator switches to the
scenario, records the client's sessions into ``out/runs/<client>/<scenario>-<op>/``,
runs the client's command line (bounded by its timeout, killed after), and
the client judge grades what was recorded: every client clause, plus whether
the client ended as a correct client does in that scenario. ``out/`` receives
``clients.json``, ``matrix.md`` and ``matrix.html`` (client x clause, client x
scenario, and the evidence). Exit status: 0 when the run happened (verdicts are
in the report), 2 for a bad invocation or clients file.

The clients file (YAML)::

    clients:
      myclient:
        about: what it is
        requires: "{govc}"            # skipped, with the reason, when this path does not exist
        import: ["{python}", "deploy.py", "--host", "{host}", "--port", "{port}", "--ovf", "{ovf}"]
        export: "mytool export --vm {vm} --out {workdir}/out"   # a list, or a string split like a shell
        env: {MY_PASSWORD: "{password}"}
        timeout: 60                   # seconds before the client is killed (a hang)

Placeholders: ``{python}`` ``{url}`` ``{host}`` ``{port}`` ``{user}``
``{password}`` ``{cafile}`` ``{thumbprint}`` ``{ovf}`` (an OVF package with a
1 MiB streamOptimized disk) ``{vmdk}`` (that disk) ``{ovf_unsized}`` (the same without ``ovf:size``)
``{ovf_dir}`` ``{name}`` (a fresh VM name)
``{vm}`` (inventory path of a VM to export) ``{vm_name}`` ``{workdir}`` (an
empty directory per run) ``{govc}`` (``build/govc``) ``{repo}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from nfclease.conformance.client_judge import judge, judge_outcome, load_sessions
from nfclease.usage import describe

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIENTS = REPO / "conformance" / "clients.yaml"
EXPORT_SCENARIOS = ("baseline", "star-hosts", "bad-thumbprint", "error-while-waiting")
EXPORT_VM = "DC0/vm/DC0_C0_RP0_VM1"
SIM_USER, SIM_PASSWORD = "clientlab", "not-a-secret"
OUTPUT_TAIL = 2000


@dataclass
class ClientSpec:
    """One client of the clients file."""

    name: str
    about: str = ""
    commands: dict[str, list[str]] = field(default_factory=dict)  # operation -> argv template
    env: dict[str, str] = field(default_factory=dict)
    requires: str = ""
    timeout: float = 60.0


def load_clients(path: Path) -> list[ClientSpec]:
    """The clients of a YAML file; a malformed one is a ValueError naming the client and what is wrong."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read the clients file: {exc}") from None
    entries = data.get("clients") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"{path}: expected a mapping 'clients:' of name -> {{import/export command}}")
    specs = []
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: client {name!r} is not a mapping")
        commands = {}
        for operation in ("import", "export"):
            command = entry.get(operation)
            if command is not None:
                commands[operation] = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not commands:
            raise ValueError(f"{path}: client {name!r} has neither an 'import' nor an 'export' command")
        specs.append(ClientSpec(str(name), str(entry.get("about", "")), commands,
                                {str(k): str(v) for k, v in (entry.get("env") or {}).items()},
                                str(entry.get("requires", "")), float(entry.get("timeout", 60))))
    return specs


def make_package(directory: Path, name: str = "clientlab", sized: bool = True) -> Path:
    """An OVF package with one 1 MiB streamOptimized disk, as deploy tools expect on disk.

    ``sized``: the descriptor's File element carries ``ovf:size`` (what export
    tools write); without it (the attribute is optional) a client learns no size
    from CreateImportSpec's fileItem.
    """
    from nfclease.ovf import build_import_ovf
    from nfclease.vmdk import ContentPattern, StreamOptimizedDisk

    directory.mkdir(parents=True, exist_ok=True)
    disk = StreamOptimizedDisk(1 << 20, ContentPattern("random", name))
    package = build_import_ovf([1 << 20], name=name, disk_sizes=[disk.size] if sized else None)
    ovf = directory / f"{name}.ovf"
    ovf.write_text(package.descriptor, encoding="utf-8")
    with (directory / package.disks[0].href).open("wb") as out:
        for chunk in disk:
            out.write(chunk)
    return ovf


def _fill(template: str, values: dict[str, str]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"placeholder {exc} in {template!r} is unknown; see `nfclease clients --help`") from None


def run_one(spec: ClientSpec, operation: str, values: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run one client command, bounded; return exit status, seconds, whether it was killed, output tails."""
    argv = [_fill(a, values) for a in spec.commands[operation]]
    env = {**os.environ, **{k: _fill(v, values) for k, v in spec.env.items()}}
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=values["workdir"],
                            start_new_session=True)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_family(proc.pid)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # something the client left still holds its output: give it up
            proc.stdout.close(), proc.stderr.close()  # type: ignore[union-attr]
            out, err = b"", b"(output lost: a process the client started still holds it)"
    return {"exit": None if timed_out else proc.returncode, "timed_out": timed_out,
            "seconds": round(time.monotonic() - started, 2),
            "stdout": out.decode("utf-8", "replace")[-OUTPUT_TAIL:],
            "stderr": err.decode("utf-8", "replace")[-OUTPUT_TAIL:]}


def _kill_family(pid: int) -> None:
    """Kill a client that overran its time, and every process it started, by id.

    Its own process group goes first; descendants that left it (Ansible runs
    its module in a new session) are found before and killed one by one, or
    they would go on talking to the simulator during the next runs.
    """
    import psutil

    try:
        family = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        family = []
    os.killpg(pid, signal.SIGKILL)  # the client's own process group, started by run_one
    for child in family:
        try:
            child.kill()
        except psutil.Error:
            pass


def _values(sim: Any, ovf: Path, workdir: Path, run_name: str) -> dict[str, str]:
    return {"python": sys.executable, "url": sim.url, "host": "127.0.0.1", "port": str(sim.port),
            "user": SIM_USER, "password": SIM_PASSWORD, "cafile": sim.cafile, "thumbprint": sim.thumbprint,
            "ovf": str(ovf), "ovf_dir": str(ovf.parent), "ovf_unsized": str(ovf.parent / "unsized.ovf"),
            "vmdk": str(next(ovf.parent.glob(f"{ovf.stem}-*.vmdk"), ovf.with_suffix(".vmdk"))),
            "name": run_name, "vm": EXPORT_VM,
            "vm_name": EXPORT_VM.rsplit("/", 1)[-1], "workdir": str(workdir), "govc": str(REPO / "build" / "govc"),
            "repo": str(REPO)}


def run_client(sim: Any, spec: ClientSpec, scenarios: Sequence[str], report: Path, ovf: Path) -> dict[str, Any]:
    """Every run of one client: per scenario and operation, the judged recording."""
    cells = []
    for scenario in scenarios:
        for operation in spec.commands:
            if operation == "export" and scenario not in EXPORT_SCENARIOS:
                continue
            run_dir = report / "runs" / spec.name / f"{scenario}-{operation}"
            workdir = run_dir / "work"
            workdir.mkdir(parents=True, exist_ok=True)
            sim.lab.switch.switch(scenario)
            sim.lab.recorder.redirect(run_dir)
            values = _values(sim, ovf, workdir, f"{spec.name}-{scenario}-{operation}".replace("_", "-"))
            result = run_one(spec, operation, values, spec.timeout)
            time.sleep(0.2)  # let the simulator finish writing the last records
            sessions = load_sessions(sorted(run_dir.glob("session-*.jsonl")))
            verdicts = judge(sessions)
            outcome = judge_outcome(sessions, result["exit"], result["timed_out"])
            cells.append({"scenario": scenario, "operation": operation, **result, "sessions": len(sessions),
                          "verdicts": [v.to_dict() for v in verdicts], "outcome": outcome.to_dict()})
            print(f"  {spec.name:12} {scenario:22} {operation:6} exit {result['exit']} "
                  f"{'(killed) ' if result['timed_out'] else ''}{result['seconds']:6.1f} s  outcome "
                  f"{outcome.status}  failed: {', '.join(v.clause for v in verdicts if v.status == 'FAIL') or '-'}",
                  flush=True)
    return {"about": spec.about, "cells": cells, "clauses": summarise(cells)}


def summarise(cells: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per clause over all runs of a client: FAIL if any run failed it, PASS if any passed, else NA."""
    out: dict[str, dict[str, Any]] = {}
    for cell in cells:
        where = f"{cell['scenario']}/{cell['operation']}"
        for verdict in cell["verdicts"]:
            entry = out.setdefault(verdict["clause"], {"status": "NA", "failed_in": [], "evidence": []})
            if verdict["status"] == "FAIL":
                entry["status"] = "FAIL"
                entry["failed_in"].append(where)
                entry["evidence"].append(f"{where}: {verdict['evidence'][0]}")
            elif verdict["status"] == "PASS" and entry["status"] == "NA":
                entry["status"] = "PASS"
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    text = (__doc__ or "").replace("``", "")
    describe(parser, text.split("\n\n")[0], text.split("\n\n", 1)[1])
    parser.add_argument("--clients", type=Path, default=DEFAULT_CLIENTS, help="the clients YAML file")
    parser.add_argument("--client", action="append", default=None, help="only this client (repeatable)")
    parser.add_argument("--scenario", action="append", default=None,
                        help="only this scenario (repeatable; default all: nfclease sim --list-scenarios)")
    parser.add_argument("--report", type=Path, default=Path("nfclease-clients"), help="output directory")


def run(args: argparse.Namespace) -> int:
    from nfclease.launcher import start
    from nfclease.sim import SimConfig
    from nfclease.sim.scenarios import CATALOGUE, validate_scenario
    from nfclease.reports.client_matrix import write_matrix

    try:
        specs = load_clients(args.clients)
        scenarios = [validate_scenario(s) for s in (args.scenario or CATALOGUE)]
    except ValueError as exc:
        print(f"nfclease clients: {exc}", file=sys.stderr)
        return 2
    unknown = set(args.client or ()) - {s.name for s in specs}
    if unknown:
        print(f"nfclease clients: no client {sorted(unknown)[0]!r} in {args.clients}", file=sys.stderr)
        return 2
    chosen = [s for s in specs if not args.client or s.name in args.client]
    report = args.report
    report.mkdir(parents=True, exist_ok=True)
    ovf = make_package(report / "package")
    make_package(report / "package", "unsized", sized=False)
    results: dict[str, Any] = {"scenarios": {n: CATALOGUE[n].describe() for n in scenarios}, "clients": {},
                               "skipped": {}}
    config = SimConfig(username=SIM_USER, password=SIM_PASSWORD, record=str(report / "runs"))
    with start("sim", config) as reach:
        sim = reach.server
        for spec in chosen:
            required = _fill(spec.requires, _values(sim, ovf, report, spec.name)) if spec.requires else ""
            if required and not Path(required).exists():
                results["skipped"][spec.name] = f"{required} does not exist"
                print(f"  {spec.name:12} skipped: {required} does not exist", flush=True)
                continue
            results["clients"][spec.name] = run_client(sim, spec, scenarios, report, ovf)
    (report / "clients.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    write_matrix(results, report)
    print(f"wrote {report / 'matrix.md'}, {report / 'matrix.html'} and {report / 'clients.json'}")
    return 0
