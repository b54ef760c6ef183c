"""``nfclease conform``: the conformance run, from target to results.json.

    nfclease conform [--target sim|vcsim|URL] [--profile smoke|ci|thorough]
                     [--expectations FILE] [--report DIR] [--seed N]

1. Opens the target (the simulator is started with a short lease timeout, 2 s
   unless ``--lease-timeout``; vcsim is started from ``build/vcsim``).
2. Runs the direct per-clause sequences (``nfclease.conformance.sequences.SEQUENCES``),
   then the Hypothesis state machine in collecting mode until the profile's
   step count (several seeded Hypothesis runs, bounded in wall-clock time).
   Every call is an event judged by one reference model and written to
   ``DIR/history.jsonl`` (``nfclease check-history`` replays it to the same
   verdicts).
3. Applies the expectations file (known deviations: FAIL -> XFAIL; a listed
   deviation that PASSes -> XPASS, which fails the run), prints the per-clause
   table, writes ``DIR/results.json`` and ``DIR/junit.xml``.

Exit status: 0 when every clause is PASS, NA or XFAIL; 1 otherwise (or when
the run broke off); 2 when the target or the expectations cannot be used.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence


@contextlib.contextmanager
def open_conformance_target(spec: Any, args: argparse.Namespace) -> Iterator[Any]:
    """The run's target; ``sim`` is started in a child process (client and server on two cores)."""
    from nfclease.target import open_target

    if spec.kind != "sim":
        with open_target(spec, task_timeout=120.0) as target:
            yield target
        return
    with open_target(spec, sim_config=sim_config(args), where="process", task_timeout=120.0) as target:
        yield target


def sim_config(args: argparse.Namespace) -> Any:
    """The simulator's config for a conformance run: the launcher's ``conformance`` preset, and the options."""
    from nfclease.launcher import PRESETS
    from nfclease.sim.options import sim_config_from

    return sim_config_from(args, **PRESETS["conformance"])


class TargetUnavailable(Exception):
    """The target could not be started, reached or logged into (exit status 2); the text says why."""


@dataclass
class ConformanceRun:
    """What one conformance run judged, and how it went."""

    results: list[Any]
    info: Any  # nfclease.reports.results.RunInfo
    notes: list[str]
    steps: int
    broke: str | None  # why the run broke off, if it did


class Watcher:
    """Hooks for showing a run's progress (``nfclease run`` draws bars); the default shows nothing."""

    def sequences(self, names: list[str]) -> Iterator[str]:
        yield from names

    @contextlib.contextmanager
    def machine(self, ctx: Any, steps: int) -> Iterator[None]:
        yield


def execute(spec: Any, args: argparse.Namespace, *, profile: Any, seed: int, report: Path,
            expectations: dict[str, Any] | None = None, source: str = "",
            watcher: Watcher | None = None) -> ConformanceRun:
    """Run the sequences and the machine against ``spec``; write results.json, junit.xml and
    history.jsonl into ``report``. Raises :class:`TargetUnavailable` when the target cannot be used."""
    from nfclease.conformance.expectations import apply_expectations
    from nfclease.conformance.context import RunContext
    from nfclease.conformance.explain import finalize
    from nfclease.conformance.machine import run_machine
    from nfclease.conformance.sequences import SEQUENCES, run_sequences
    from nfclease.usage import target_problem
    from nfclease.reports.results import RunInfo, write_junit, write_results

    watcher = watcher or Watcher()
    allow_expiry = True if getattr(args, "allow_expiry", False) else None  # None: the budget decides
    expiry_budget = getattr(args, "expiry_budget", None)
    started = time.monotonic()
    broke: str | None = None
    steps = 0
    try:
        with open_conformance_target(spec, args) as target:
            ctx = RunContext(target, history=report / "history.jsonl", allow_expiry=allow_expiry, kind=spec.kind,
                             sleep_budget=profile.sleep_budget, raise_on_fail=False,
                             expiry_budget=profile.expiry_budget if expiry_budget is None else expiry_budget,
                             expiry_budget_source=("the budget --expiry-budget gives" if expiry_budget is not None
                                                   else f"the {profile.name} profile's expiry budget"),
                             export_vms=getattr(args, "export_vm", None) or ())
            try:
                for name in watcher.sequences(list(SEQUENCES)):
                    run_sequences(ctx, [name])
                with watcher.machine(ctx, profile.steps):
                    steps = run_machine(ctx, profile, seed)
            except Exception as exc:  # the run broke off: report what was judged, and why it stopped
                broke = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            finally:
                ctx.close()
            info = RunInfo(**target.run_info(), profile=profile.name, seed=seed)
            results = finalize(ctx)
            notes = list(ctx.notes)
    except Exception as exc:  # the target could not be started or reached
        raise TargetUnavailable(target_problem(exc, spec.display_url)) from exc
    info.duration_s = time.monotonic() - started
    if expectations:
        results = apply_expectations(results, expectations, source)
    write_results(report, results, info)
    write_junit(report / "junit.xml", results, info)
    return ConformanceRun(results, info, notes, steps, broke)


def prepare(args: argparse.Namespace) -> tuple[Any, dict[str, Any], str]:
    """The target spec, the expectations and their source file, from the command line.

    Raises ValueError/OSError/ExpectationError naming what is wrong."""
    from nfclease.conformance.expectations import expectations_path, load_expectations
    from nfclease.target import TargetSpec
    from nfclease.targetargs import export_to_environment

    export_to_environment(args)  # --datacenter, --ca-file ... win over GOVC_* here and in child processes
    expectations = load_expectations(args.expectations) if getattr(args, "expectations", None) else {}
    source = str(expectations_path(args.expectations)) if expectations else ""
    spec = TargetSpec.parse(getattr(args, "target", None), insecure=True if getattr(args, "insecure", False) else None,
                            thumbprint=getattr(args, "thumbprint", None))
    expiry_budget = getattr(args, "expiry_budget", None)
    if expiry_budget is not None and not expiry_budget >= 0:
        raise ValueError(f"--expiry-budget {expiry_budget:g} is not a number of seconds >= 0 "
                         "(0 never waits for expiry)")
    return spec, expectations, source


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nfclease.conformance.expectations import ExpectationError
    from nfclease.conformance.context import PROFILES
    from nfclease.usage import fail
    from nfclease.reports.results import exit_code, print_results

    console = Console()
    profile = PROFILES[getattr(args, "profile", None) or "smoke"]
    seed = args.seed if getattr(args, "seed", None) is not None else random.randrange(2 ** 31)
    report = Path(getattr(args, "report", None) or "nfclease-report")
    try:
        spec, expectations, source = prepare(args)
    except (ExpectationError, ValueError, OSError) as exc:
        return fail("nfclease conform", str(exc))
    console.print(f"nfclease conform: target [bold]{spec.display_url}[/], profile {profile.name} "
                  f"(>= {profile.steps} steps), seed {seed}, report {report}/")
    try:
        done = execute(spec, args, profile=profile, seed=seed, report=report, expectations=expectations,
                       source=source)
    except TargetUnavailable as exc:
        return fail("nfclease conform", str(exc))
    info = done.info
    print_results(done.results, console=console,
                  title=f"HttpNfcLease conformance: {info.product} (API {info.api_version})")
    for note in done.notes:
        console.print(f"[dim]note: {note}[/]")
    console.print(f"{done.steps} machine steps + direct sequences in {info.duration_s:.1f} s; "
                  f"seed {seed} (--seed {seed} replays the same programs); wrote {report}/results.json, "
                  f"{report}/junit.xml, {report}/history.jsonl")
    if done.broke:
        console.print(f"[bold red]the run broke off: {done.broke}[/]")
        return 1
    return exit_code(done.results)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nfclease conform``'s options (and the simulator's, for ``--target sim``)."""
    from nfclease.sim.options import add_sim_arguments
    from nfclease.targetargs import add_export_vm_argument, add_lab_arguments
    from nfclease.usage import TARGET_HELP

    parser.add_argument("--target", default=None, help=TARGET_HELP)
    parser.add_argument("--profile", default="smoke", choices=["smoke", "ci", "thorough"])
    parser.add_argument("--expectations", help="YAML file of known deviations of this target")
    parser.add_argument("--report", default="nfclease-report", help="directory for results.json and JUnit XML")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random, printed)")
    parser.add_argument("--insecure", action="store_true", help="do not verify the target's TLS certificate")
    parser.add_argument("--thumbprint", help="pin the target's certificate")
    add_export_vm_argument(parser)
    parser.add_argument("--allow-expiry", action="store_true",
                        help="wait for leases to expire whatever the advertised leaseTimeout (about twice it); "
                             "by default the expiry checks run when they fit the profile's expiry budget")
    parser.add_argument("--expiry-budget", type=float, default=None, metavar="SECONDS",
                        help="seconds the run may spend waiting for leases to expire (default: the profile's, "
                             "smoke 10, ci 30, thorough 900)")
    add_sim_arguments(parser)
    add_lab_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nfclease.conformance.cli`` = ``nfclease conform``."""
    parser = argparse.ArgumentParser(prog="nfclease conform", description="Run the conformance suite against a target.")
    add_arguments(parser)
    return run(parser.parse_args(list(argv) if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
