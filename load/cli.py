"""``nfclease load``: headless Locust runs with reports and the regression gate.

::

    nfclease load [--target sim|vcsim|URL] [--scenario NAME[:WEIGHT] ...] [--users N]
                  [--spawn-rate R] [--duration 30s] [--workers N] [--report DIR]
                  [--step-shape] [--repeat N] [--save-baseline FILE]
                  [--baseline FILE [--tolerance 10%]] [--disk-mib S]

* ``--target sim`` (default) starts the embedded simulator in this process
  with a 3 s lease timeout (``--lease-timeout``), so timeout-probe takes
  seconds; workers in other processes reach it over loopback by URL and its
  CA file. ``vcsim`` starts govmomi's simulator; a URL is any vCenter/ESXi
  (credentials in the URL or ``GOVC_USERNAME``/``GOVC_PASSWORD``).
* ``--workers N``: a Locust master here plus N local ``locust --worker``
  processes. On several machines use Locust directly (see load/README.md):
  ``locust -f load/locustfile.py --master ...`` on one host and
  ``locust -f load/locustfile.py --worker --master-host HOST`` on the others.
* Scenario knobs: ``--disk-mib``, ``--disks``, ``--keepalive``, ``--held-leases``; the rest through
  ``NFCLEASE_LOAD_OPTIONS="probe_poll=0.01,max_hold_seconds=30"``
  (any :class:`nfclease.load.scenarios.LoadOptions` field).
* In DIR: ``load.json``, ``locust_*.csv``, ``locust.html``, ``load.png``.
* Gate: ``--repeat N`` runs N times and uses medians (spread reported);
  ``--save-baseline FILE`` stores them, ``--baseline FILE`` compares (see
  :mod:`nfclease.load.gate`) and exits 1 on a regression. A run that corrupted bytes
  also exits 1.
"""

from __future__ import annotations

import locust  # noqa: F401  (gevent's monkey-patching first, before any socket or SSL context exists)

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from nfclease.load.duration import parse_duration  # noqa: F401  (nfclease load --duration; re-exported)
from nfclease.load.figures import MB
from nfclease.load.gate import Baseline, combine, compare, parse_tolerance, print_table, regressions
from nfclease.load.report import plot, write_load_json, write_locust_reports
from nfclease.load.runner import RunResult, RunSpec, run_load
from nfclease.load.scenarios import LoadOptions, parse_selection, selection_help
from nfclease.load.knee import describe_knee
from nfclease.load.shapes import StepShape, doubling_steps

OPTIONS_ENV = "NFCLEASE_LOAD_OPTIONS"


def options_from(args: argparse.Namespace, env: dict[str, str] | None = None) -> LoadOptions:
    """LoadOptions from the command line and ``NFCLEASE_LOAD_OPTIONS`` (``name=value,...``)."""
    env = os.environ if env is None else env
    options = LoadOptions(disk_mib=float(getattr(args, "disk_mib", 8) or 8))
    for flag in ("disks", "keepalive", "held_leases"):
        if getattr(args, flag, None) is not None:
            setattr(options, flag, type(getattr(options, flag))(getattr(args, flag)))
    known = {f.name: f for f in fields(LoadOptions)}
    for item in (env.get(OPTIONS_ENV) or "").split(","):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if name not in known or name in ("cafile", "thumbprint", "insecure"):
            raise ValueError(f"{OPTIONS_ENV}: unknown option {name!r}")
        current = getattr(options, name)
        if isinstance(current, bool):
            setattr(options, name, value.strip().lower() in ("1", "true", "yes", "on"))
        else:
            setattr(options, name, type(current)(value.strip()))
    return options


@dataclass
class LoadTarget:
    """How users reach the target: URL (no credentials), credentials, trust, and what it is."""

    host: str
    username: str | None
    password: str | None
    cafile: str | None
    thumbprint: str | None
    insecure: bool
    display: str
    lease_timeout: float | None = None


@contextlib.contextmanager
def reach_target(args: argparse.Namespace) -> Iterator[LoadTarget]:
    """Start the simulator or vcsim when asked; yield how to reach the target."""
    target = getattr(args, "target", None) or os.environ.get("GOVC_URL") or "sim"
    if target in ("sim", "vcsim"):
        from nfclease import launcher
        from nfclease.sim.options import sim_config_from

        preset = sim_config_from(args, **launcher.PRESETS["load"]) if target == "sim" else "default"
        with launcher.start(target, preset) as started:
            yield LoadTarget(started.url, started.user, started.password, started.cafile,
                             args.thumbprint or (None if started.cafile else started.thumbprint), bool(args.insecure),
                             f"{target} ({started.url})", started.lease_timeout)
        return
    from nfclease.target import TargetSpec

    spec = TargetSpec.parse(target, insecure=bool(args.insecure) or None, thumbprint=args.thumbprint)
    yield LoadTarget(spec.url or "", spec.username, spec.password, spec.cafile, spec.thumbprint, spec.insecure,
                spec.display_url)


def _spec(reach: LoadTarget) -> Any:
    from nfclease.target import TargetSpec

    return TargetSpec.parse(reach.host, cafile=reach.cafile, thumbprint=reach.thumbprint,
                            insecure=reach.insecure or None, username=reach.username, password=reach.password)


def describe_target(reach: LoadTarget) -> dict[str, Any]:
    """run_info's target part (product, version, build, api_version), from one login."""
    from nfclease.target import open_target

    with open_target(_spec(reach)) as target:
        info = target.run_info()
    info["target"] = reach.display
    return info


def sweep_run(reach: LoadTarget, wait: float, errors: Any) -> None:
    """After the run: remove anything named with this run's prefix that a user or a worker process
    left (one that died cannot clean up), waiting at most ``wait`` s for its leases to lapse."""
    from nfclease import lifecycle
    from nfclease.clean import sweep
    from nfclease.ovf import run_prefix
    from nfclease.target import open_target

    with lifecycle.critical():
        try:
            with open_target(_spec(reach)) as target:
                left = sweep(target, run_prefix(), wait=wait)
        except Exception as exc:
            errors.print(f"nfclease load: the final sweep of {run_prefix()}* failed: {type(exc).__name__}: {exc}; "
                         "run `nfclease clean --target ... --yes`")
            return
    if left:
        errors.print(f"nfclease load: {len(left)} leftover(s) named {run_prefix()}* remain: "
                     + ", ".join(f"{item.kind} {item.name}" for item in left) + "; `nfclease clean` lists them")


class LiveProgress:
    """A rich progress line while a run is going (stderr; silent when not a terminal)."""

    def __init__(self, label: str, total: float) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                 console=Console(stderr=True), transient=False)
        self.task = self.progress.add_task(label, total=total, status="starting")

    def __enter__(self) -> "LiveProgress":
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def tick(self, live: dict[str, Any]) -> None:
        workers = f" workers {live['workers']}" if live.get("workers") else ""
        status = (f"users {live['users']}{workers}  req/s {live['rps']:.0f}  fail {live['failures']}  "
                  f"{live['mbps']:.1f} MB/s")
        self.progress.update(self.task, completed=min(live["elapsed"], live["total"]), status=status)


def summary_table(figures: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="load figures (MB = 10^6 bytes)")
    for column in ("scenario", "MB/s", "transfers", "verified MB", "corrupted", "leases", "expired",
                   "ready p95 s", "SOAP p95 ms", "timeout err p50/max ms"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    rows = list(figures.get("scenarios", {}).items()) + [("aggregate", figures.get("aggregate", {}))]
    for name, fig in rows:
        if not fig:
            continue
        timeout = fig.get("timeout_accuracy") or {}
        err = timeout.get("error_s") or {}
        abs_err = timeout.get("abs_error_s") or {}
        table.add_row(
            name, f"{fig.get('throughput_mbps', 0):.1f}", str(fig.get("transfers", 0)),
            f"{fig.get('bytes_verified', 0) / MB:.1f}", str(fig.get("bytes_corrupted", 0)),
            str(fig.get("leases_acquired", 0)), str(fig.get("leases_expired", 0)),
            str((fig.get("time_to_ready_s") or {}).get("p95", "-")),
            str((fig.get("soap_latency_all_ms") or {}).get("p95", "-")),
            f"{err['p50'] * 1000:+.1f}/{abs_err['max'] * 1000:.1f}" if err.get("count") else "-")
    console.print(table)


def _run_once(args: argparse.Namespace, reach: LoadTarget, selection: dict[str, int], duration: float,
              options: LoadOptions, report_dir: Path, index: int, repeat: int) -> RunResult:
    """One of the ``--repeat`` runs, with its live progress line."""
    shape = None
    if args.step_shape:
        steps = doubling_steps(args.users)
        shape = StepShape(steps, duration / len(steps), args.spawn_rate)
    spec = RunSpec(host=reach.host, selection=selection, users=args.users, spawn_rate=args.spawn_rate,
                   duration=duration, workers=args.workers, options=options, username=reach.username,
                   password=reach.password, shape=shape, report_dir=report_dir)
    label = f"run {index + 1}/{repeat}" if repeat > 1 else "load"
    progress = LiveProgress(f"{label} {','.join(selection)}", shape.total_seconds if shape else duration)
    spec.on_tick = progress.tick
    with progress:
        return run_load(spec)


def _report(args: argparse.Namespace, results: list[RunResult], run_info: dict[str, Any], selection: dict[str, int],
            baseline: Any, tolerance: float, report_dir: Path, display: str, console: Any) -> int:
    """load.json, Locust's reports, the plot, the tables and the gate; the exit status."""
    last, repeat = results[-1], len(results)
    metrics = combine(r.summary for r in results)
    extra: dict[str, Any] = {"repeats": {"runs": repeat, "metrics": {n: m.as_dict() for n, m in sorted(metrics.items())}}}
    if last.knee is not None:
        extra["knee"] = {k: v for k, v in last.knee.items() if k != "windows"}
    rc = 0
    rows = None
    if baseline is not None:
        rows = compare(baseline, metrics, tolerance)
        extra["gate"] = {"baseline": str(args.baseline), "tolerance": tolerance,
                         "rows": [r.as_dict() for r in rows], "regressions": len(regressions(rows))}
    write_load_json(report_dir / "load.json", run_info, last.summary, extra)
    write_locust_reports(last.environment, report_dir)
    plot(last.summary.get("series") or {}, report_dir / "load.png",
         title=f"{','.join(selection)} - {args.users} users - {display}", knee=last.knee)
    summary_table(last.summary, console)
    if last.knee is not None:
        console.print(describe_knee(last.knee))
    if args.save_baseline:
        Baseline(metrics, run_info).save(args.save_baseline)
        console.print(f"baseline saved to {args.save_baseline} ({repeat} run(s), medians)")
    if rows is not None:
        print_table(rows, console, title=f"regression gate vs {args.baseline} (tolerance {tolerance * 100:g}% "
                                         f"+ half the observed spread)")
        if regressions(rows):
            console.print(f"[bold red]{len(regressions(rows))} regression(s)[/]")
            rc = 1
        else:
            console.print("[green]no regression[/]")
    corrupted = last.summary.get("aggregate", {}).get("bytes_corrupted", 0)
    if corrupted:
        console.print(f"[bold red]{corrupted} bytes corrupted[/]")
        rc = 1
    console.print(f"reports in {report_dir}/ (load.json, locust_stats.csv, locust.html, load.png)")
    return rc


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from nfclease.targetargs import export_to_environment

    export_to_environment(args)  # --datacenter, --ca-file ... win over GOVC_*, in the workers too
    console = Console(width=None if sys.stdout.isatty() else 160)
    errors = Console(stderr=True)
    try:
        selection = parse_selection(args.scenario)
        duration = parse_duration(args.duration)
        tolerance = parse_tolerance(args.tolerance)
        options = options_from(args)
        repeat = max(1, int(args.repeat))
        if args.users < 1 or args.spawn_rate <= 0 or duration <= 0 or args.workers < 0:
            raise ValueError("users >= 1, spawn rate > 0, duration > 0 and workers >= 0, please")
        baseline = Baseline.load(args.baseline) if args.baseline else None
    except (ValueError, OSError) as exc:
        errors.print(f"nfclease load: {exc}")
        return 2
    report_dir = Path(args.report)
    try:
        with reach_target(args) as reach:
            options.cafile = reach.cafile or ""
            options.thumbprint = reach.thumbprint or ""
            options.insecure = reach.insecure
            try:
                target_info = describe_target(reach)
            except Exception as exc:
                errors.print(f"nfclease load: cannot reach {reach.display}: {type(exc).__name__}: {exc}")
                return 2
            results = [_run_once(args, reach, selection, duration, options, report_dir, index, repeat)
                       for index in range(repeat)]
            # a worker that died left its imports: wait out its leases (about leaseTimeout) and remove them
            sweep_run(reach, wait=(reach.lease_timeout or 300.0) + 10.0, errors=errors)
            last = results[-1]
            run_info = {**target_info, "scenario": ",".join(f"{k}:{v}" for k, v in selection.items()),
                        "users": args.users, "spawn_rate": args.spawn_rate, "workers": args.workers,
                        "duration": duration, "duration_s": round(last.seconds, 3), "repeat": repeat,
                        "step_shape": bool(args.step_shape), "options": {
                            k: v for k, v in options.__dict__.items() if k not in ("cafile", "thumbprint")},
                        "lease_timeout": reach.lease_timeout, "profile": None, "seed": None,
                        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        errors.print(f"nfclease load: {type(exc).__name__}: {exc}")
        return 2

    return _report(args, results, run_info, selection, baseline, tolerance, report_dir, reach.display, console)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nfclease load``'s options (and the simulator's, for ``--target sim``)."""
    from nfclease.sim.options import add_sim_arguments
    from nfclease.targetargs import add_lab_arguments
    from nfclease.usage import TARGET_HELP

    parser.add_argument("--target", default=None, help=TARGET_HELP)
    parser.add_argument("--scenario", action="append", default=None, help=selection_help())
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--spawn-rate", type=float, default=4.0)
    parser.add_argument("--duration", default="30s")
    parser.add_argument("--workers", type=int, default=0, help="run a Locust master with N local worker processes")
    parser.add_argument("--report", default="nfclease-load")
    parser.add_argument("--save-baseline", help="write this run's figures as a baseline file")
    parser.add_argument("--baseline", help="compare with a baseline file and fail on a regression")
    parser.add_argument("--tolerance", default="10%", help="allowed regression against the baseline")
    parser.add_argument("--repeat", type=int, default=1, help="repeat the run and use medians (noise)")
    parser.add_argument("--step-shape", action="store_true", help="step users up to find the knee")
    parser.add_argument("--disk-mib", type=float, default=8, help="capacity of each imported disk (MiB)")
    parser.add_argument("--disks", type=int, default=None, help="disks per import (default 1)")
    parser.add_argument("--keepalive", type=float, default=None,
                        help="seconds between Progress calls (default 2, as govmomi)")
    parser.add_argument("--held-leases", type=int, default=None, help="keepalive scenario: leases each user holds")
    parser.add_argument("--insecure", action="store_true", help="do not verify the target's TLS certificate")
    parser.add_argument("--thumbprint", help="pin the target's certificate (SHA-1 or SHA-256 thumbprint)")
    add_sim_arguments(parser)
    add_lab_arguments(parser)


def main(argv: list[str] | None = None) -> int:
    """``python -m nfclease.load.cli`` = ``nfclease load``."""
    parser = argparse.ArgumentParser(prog="nfclease load", description="Run Locust load scenarios against a target.")
    add_arguments(parser)
    return run(parser.parse_args(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    raise SystemExit(main())
