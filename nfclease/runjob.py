"""``nfclease run``: the main job -- conformance, a short load run, and one report page.

1. Reach the target (by default start the embedded simulator) and run the
   conformance suite at the profile (``ci`` by default): the direct per-clause
   sequences, then the state machine; every call judged by the reference model.
2. A short, bounded load run in a child process (``nfclease load``:
   import-upload and export-download, a few users, a few seconds; every byte
   verified). A child, because Locust patches the standard library on import.
3. Into DIR: ``results.json``, ``junit.xml``, ``history.jsonl`` (conformance),
   ``load.json`` and Locust's reports (load), ``allure-results/``, and
   ``report.html`` with its Markdown twin ``report.md``.
4. Print the headline: clauses PASS/FAIL/NA/XFAIL/XPASS, MB/s, Progress p95,
   and where the report is.

Exit status as ``nfclease conform``: 0 when every clause is PASS, NA or XFAIL
and the load run moved every byte intact; 1 otherwise; 2 when the target or
the command line cannot be used (one line says why and what to do).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Iterator

from nfclease.usage import fail, one_line_errors

PROG = "nfclease run"
DEFAULT_REPORT = "nfclease-report"
LOAD_SCENARIOS = ("import-upload", "export-download")
LOAD_DISK_MIB = 32  # big enough that a transfer outlasts a few keepalive periods: Progress is measured
LOAD_KEEPALIVE = 0.1  # Progress every 0.1 s while a disk moves (govmomi: 2 s), so its latency is measured
LOAD_GRACE = 180.0  # seconds a load child may take beyond its duration (start, login, reports)
EXAMPLE = textwrap.dedent("""\
    examples:
      nfclease run                                   # the embedded simulator, ci profile, 10 s of load
      nfclease run --target vcsim --expectations vcsim-0.24 --report vcsim-report/
      GOVC_URL=https://user:pass@vc.example/sdk nfclease run --profile smoke --thumbprint AB:CD:...
    then open DIR/report.html (or: nfclease report DIR1 DIR2 --out both.html)""")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nfclease.sim.options import add_sim_arguments
    from nfclease.targetargs import add_export_vm_argument, add_lab_arguments
    from nfclease.usage import TARGET_HELP, describe

    describe(parser, ("The main job: start the embedded simulator (or use --target), run the conformance "
                          "suite at a profile and a short load run, and write results.json, load.json, "
                          "history.jsonl, JUnit, Allure results and one HTML report into --report."),
             EXAMPLE)
    parser.add_argument("--target", default=None, help=TARGET_HELP)
    parser.add_argument("--profile", default="ci", choices=["smoke", "ci", "thorough"],
                        help="how much the state machine explores (default ci: >= 3000 steps)")
    parser.add_argument("--report", default=DEFAULT_REPORT, metavar="DIR",
                        help=f"directory for every record and report.html (default ./{DEFAULT_REPORT}/)")
    parser.add_argument("--expectations", help="known deviations of this target: a name in "
                                                "conformance/expectations/ (vcsim-0.24) or a YAML file")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random, printed)")
    parser.add_argument("--load-duration", default="10s",
                        help="length of the load run (default 10s; 0 skips it)")
    parser.add_argument("--load-users", type=int, default=2, help="simulated users of the load run (default 2)")
    parser.add_argument("--insecure", action="store_true", help="do not verify the target's TLS certificate")
    parser.add_argument("--thumbprint", help="pin the target's certificate (SHA-1 or SHA-256 thumbprint)")
    parser.add_argument("--allow-expiry", action="store_true",
                        help="on a real target, also wait for leases to expire (takes leaseTimeout each)")
    add_sim_arguments(parser)
    add_lab_arguments(parser)
    add_export_vm_argument(parser)
    one_line_errors(parser)


def run(args: argparse.Namespace) -> int:
    """The main job; see the module's docstring for what it writes and its exit status."""
    from rich.console import Console

    from nfclease.conformance.cli import TargetUnavailable, execute, prepare
    from nfclease.conformance.expectations import ExpectationError
    from nfclease.conformance.context import PROFILES
    from nfclease.load.duration import parse_duration
    from nfclease.reports.results import exit_code

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)  # a log keeps whole lines
    try:
        seconds = parse_duration(args.load_duration)
        if seconds < 0 or args.load_users < 1:
            raise ValueError("--load-duration must be >= 0 and --load-users >= 1")
        spec, expectations, source = prepare(args)
        report = Path(args.report)
        report.mkdir(parents=True, exist_ok=True)
    except ExpectationError as exc:
        return fail(PROG, f"{exc}; fix the file or leave out --expectations")
    except (ValueError, OSError) as exc:
        return fail(PROG, str(exc))
    profile = PROFILES[args.profile]
    seed = args.seed if args.seed is not None else random.randrange(2 ** 31)
    console.print(f"[bold]nfclease run[/]: target {spec.display_url}, profile {profile.name} "
                  f"(>= {profile.steps} steps), seed {seed}; report in {report}/")
    try:
        with progress_bars(console) as watcher:
            done = execute(spec, args, profile=profile, seed=seed, report=report, expectations=expectations,
                           source=source, watcher=watcher)
    except TargetUnavailable as exc:
        return fail(PROG, str(exc))
    (report / "load.json").unlink(missing_ok=True)  # an earlier run's figures must not pass for this one's
    if seconds > 0 and importlib.util.find_spec("locust") is None:
        console.print("[yellow]load skipped: Locust is not installed (pip install 'nfclease[load]')[/]")
        seconds = 0
    load_problem = run_load(args, spec, report, seconds, console) if seconds > 0 else None
    try:
        write_artefacts(report, done)
    except ImportError as exc:  # a plain install: the records are written, the pages need nfclease[report]
        console.print(f"[yellow]no allure results or report.html ({exc.name} missing): "
                      "pip install 'nfclease[report]'[/]")
    headline(console, done, report, load_problem)
    failed = exit_code(done.results) or bool(done.broke) or bool(load_problem)
    return 1 if failed else 0


class RichWatcher:
    """Progress bars for the clause sequences and the machine's steps (nothing when not a terminal)."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def sequences(self, names: list[str]) -> Iterator[str]:
        task = self.progress.add_task("clause sequences", total=len(names), status="")
        for name in names:
            self.progress.update(task, status=name)
            yield name
            self.progress.advance(task)
        self.progress.update(task, status="done")

    @contextlib.contextmanager
    def machine(self, ctx: Any, steps: int) -> Iterator[None]:
        task = self.progress.add_task("state-machine steps", total=steps, status="")
        start, stop = ctx.steps, threading.Event()

        def poll() -> None:
            while not stop.wait(0.2):
                done = ctx.steps - start
                self.progress.update(task, completed=min(done, steps))

        thread = threading.Thread(target=poll, name="nfclease-run-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=2)
            done = ctx.steps - start
            self.progress.update(task, total=max(steps, done), completed=done)


@contextlib.contextmanager
def progress_bars(console: Any) -> Iterator[RichWatcher]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console,
                        disable=not console.is_terminal)
    with progress:
        yield RichWatcher(progress)


def load_command(args: argparse.Namespace, spec: Any, report: Path, seconds: float) -> tuple[list[str], dict[str, str]]:
    """``nfclease load`` for the short run, and its environment (a URL's credentials travel there,
    never on a command line other users can read)."""
    command = [sys.executable, "-m", "nfclease", "load", "--users", str(args.load_users),
               "--spawn-rate", str(args.load_users), "--duration", f"{seconds:g}s", "--report", str(report),
               "--disk-mib", str(LOAD_DISK_MIB), "--keepalive", str(LOAD_KEEPALIVE)]
    for scenario in LOAD_SCENARIOS:
        command += ["--scenario", scenario]
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if spec.kind in ("sim", "vcsim"):
        command += ["--target", spec.kind]
    elif args.target:
        env["GOVC_URL"] = args.target
    if args.insecure:
        command.append("--insecure")
    if args.thumbprint:
        command += ["--thumbprint", args.thumbprint]
    if spec.kind == "sim":
        for flag in ("lease_timeout", "init_seconds", "api_version", "delay"):
            if getattr(args, flag, None) is not None:
                command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        if args.star_hosts:
            command.append("--star-hosts")
        if getattr(args, "deviate", None):
            command += ["--deviate", ",".join(args.deviate)]
        if getattr(args, "vendor", None):
            command += ["--vendor", args.vendor]
    return command, env


def run_load(args: argparse.Namespace, spec: Any, report: Path, seconds: float, console: Any) -> str | None:
    """The short load run in a child process; returns what went wrong, or None."""
    command, env = load_command(args, spec, report, seconds)
    console.print(f"[bold]load[/]: {', '.join(LOAD_SCENARIOS)}, {args.load_users} users, {seconds:g} s "
                  f"(log in {report / 'load.log'})")
    with (report / "load.log").open("w", encoding="utf-8") as log:
        stderr = None if console.is_terminal and sys.stderr.isatty() else log  # its progress bar, on a terminal
        try:
            child = subprocess.run(command, stdout=log, stderr=stderr, env=env, timeout=seconds + LOAD_GRACE)
        except subprocess.TimeoutExpired:
            return f"the load run did not end within {seconds + LOAD_GRACE:g} s"
    corrupted = _load_figures(report).get("bytes_corrupted") or 0
    if corrupted:
        return f"the load run found {corrupted} bytes corrupted (see load.log)"
    if child.returncode != 0:
        tail = (report / "load.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
        return f"the load run failed (exit {child.returncode}): {' '.join(tail)}"
    return None


def write_artefacts(report: Path, done: Any) -> None:
    """Allure results and the HTML page (with its Markdown twin) from the run's records."""
    from nfclease.reports.allure import write_allure_run
    from nfclease.reports.page import build_report, write_report

    write_allure_run(report / "allure-results", done.results, done.info.to_dict())
    write_report(build_report([report], title="nfclease run: HttpNfcLease conformance and load"),
                 report / "report.html")


def _load_figures(report: Path) -> dict[str, Any]:
    try:
        return json.loads((report / "load.json").read_text(encoding="utf-8")).get("aggregate") or {}
    except (OSError, ValueError):
        return {}


def headline(console: Any, done: Any, report: Path, load_problem: str | None) -> None:
    """The summary people read: clause counts, MB/s, Progress p95, what failed, where the report is."""
    from nfclease.reports.results import STATUSES, summary

    counts = summary(done.results)
    styles = {"PASS": "green", "FAIL": "bold red", "NA": "dim", "XFAIL": "yellow", "XPASS": "bold magenta"}
    clauses = "  ".join(f"[{styles[s]}]{s} {counts[s]}[/]" for s in STATUSES)
    figures = _load_figures(report)
    progress = ((figures.get("soap_latency_ms") or {}).get("HttpNfcLeaseProgress") or {}).get("p95")
    mbps = figures.get("throughput_mbps")
    load = (f"{mbps:.1f} MB/s, Progress p95 {progress:.1f} ms" if mbps is not None and progress is not None
            else f"{mbps:.1f} MB/s, no Progress call measured" if mbps is not None
            else "skipped" if not (report / "load.json").exists() else "no load figures")
    errors = figures.get("errors") or {}
    if errors:
        load += f"; {sum(errors.values())} calls failed (" + ", ".join(
            f"{name} x{count}" for name, count in sorted(errors.items(), key=lambda e: -e[1])[:3]) + ")"
    for r in done.results:
        if r.status in ("FAIL", "XPASS"):
            console.print(f"{r.status} {r.clause}: {r.message}", style="red", markup=False)
    if done.broke:
        console.print(f"[bold red]the conformance run broke off:[/] {done.broke}")
    if load_problem:
        console.print(f"[bold red]load:[/] {load_problem}")
    info = done.info
    console.print(f"[bold]{info.product}[/] (API {info.api_version}), {info.profile} profile, "
                  f"{done.steps} steps in {info.duration_s:.0f} s: {clauses}")
    console.print(f"load: {load}")
    console.print(f"report: {(report / 'report.html').resolve()}")
