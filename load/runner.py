"""Run a load test headless: Locust's local runner, or a master with local worker processes.

:func:`run_load` is what ``nfclease load`` and the tests call. With
``workers=0`` the users run in this process (Locust ``LocalRunner``); with
``workers=N`` this process is a real Locust master (bound to 127.0.0.1, a
free port) and N ``locust --worker`` processes are started on the same
locustfile; the master aggregates Locust's stats and the workers ship their
figures with every stats report (:func:`nfclease.load.users.attach`).

Workers reach the target by URL: for an in-process simulator that is its
loopback URL plus its CA file (a Locust option, forwarded by the master);
credentials go to worker processes through their environment
(``NFCLEASE_LOAD_USERNAME`` / ``NFCLEASE_LOAD_PASSWORD``), never on a
command line or in a Locust message.

The run is bounded: spawning, the run itself (``duration`` or the shape's
steps), the graceful stop (``stop_timeout``), the wait for workers to
connect and to exit all have deadlines; worker processes still alive after
that are terminated, then killed, by their own process handles.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gevent
from locust.env import Environment
from locust.runners import STATE_STOPPED, WORKER_REPORT_INTERVAL, MasterRunner

from nfclease.load.figures import Figures
from nfclease.ovf import RUN_ID_ENV, run_id
from nfclease.load.scenarios import LoadOptions
from nfclease.load.knee import find_knee
from nfclease.load.shapes import StepShape
from nfclease.load.users import PASSWORD_ENV, USERNAME_ENV, LoadContext, attach, user_classes

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RunSpec:
    """One headless run."""

    host: str                               # the target's SDK URL, no credentials in it
    selection: dict[str, int]               # scenario -> weight
    users: int = 4
    spawn_rate: float = 4.0
    duration: float = 30.0
    workers: int = 0
    options: LoadOptions = field(default_factory=LoadOptions)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    shape: StepShape | None = None
    stop_timeout: float = 10.0
    worker_start_timeout: float = 60.0
    report_dir: Path | None = None          # live CSV history is written here during the run
    on_tick: Callable[[dict[str, Any]], None] | None = None
    on_environment: Callable[[Environment], None] | None = None   # called once the runner exists


@dataclass
class RunResult:
    environment: Environment
    figures: Figures
    summary: dict[str, Any]
    started: float
    ended: float
    workers: int
    knee: dict[str, Any] | None = None
    worker_logs: list[Path] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def _parsed_options(spec: RunSpec) -> argparse.Namespace:
    """Locust's default options plus ours (``nfc_*``: forwarded by a master to its workers)."""
    from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments

    parser = get_empty_argument_parser()
    setup_parser_arguments(parser)
    ns = parser.parse_args([])
    ns.headless = True
    ns.host = spec.host
    for key, value in spec.options.as_locust_args().items():
        setattr(ns, key, value)
    return ns


def _worker_env(spec: RunSpec) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault(RUN_ID_ENV, run_id())  # the workers' imports carry this run's prefix (nfclease clean)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if spec.username:
        env[USERNAME_ENV] = spec.username
    if spec.password:
        env[PASSWORD_ENV] = spec.password
    return env


def _start_workers(spec: RunSpec, port: int, log_dir: Path) -> tuple[list[subprocess.Popen[bytes]], list[Path]]:
    procs, logs = [], []
    for index in range(spec.workers):
        log_path = log_dir / f"worker-{index + 1}.log"
        handle = log_path.open("wb")
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
                   "--master-host", "127.0.0.1", "--master-port", str(port), "--loglevel", "WARNING"]
        procs.append(subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=_worker_env(spec), cwd=str(REPO_ROOT)))
        handle.close()
        logs.append(log_path)
    return procs, logs


def _stop_workers(procs: list[subprocess.Popen[bytes]], timeout: float = 1.0) -> None:
    """Wait (bounded) for worker processes to leave, then terminate, then kill them (by handle).

    A worker told to stop sleeps ``stop_timeout`` in its message loop before
    it reads "quit"; by then its users are stopped and its figures and stats
    reported, so a SIGTERM (Locust's own graceful shutdown) loses nothing.
    """
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _live(environment: Environment, previous: dict[str, Any], started: float, spec: RunSpec) -> dict[str, Any]:
    stats = environment.runner.stats  # type: ignore[union-attr]
    moved = sum(entry.total_content_length for (name, method), entry in stats.entries.items() if method == "NFC")
    now = time.monotonic()
    last_t, last_bytes, rate = previous.get("t", started), previous.get("bytes", 0), previous.get("mbps", 0.0)
    if now - last_t >= 1.0 and moved != last_bytes:
        rate = (moved - last_bytes) / 1e6 / (now - last_t)
        last_t, last_bytes = now, moved
    elif now - last_t >= 5.0:
        rate, last_t = 0.0, now
    return {"t": last_t, "bytes": last_bytes, "mbps": rate, "elapsed": now - started,
            "users": environment.runner.user_count, "requests": stats.total.num_requests,  # type: ignore[union-attr]
            "failures": stats.total.num_failures, "rps": stats.total.current_rps,
            "total": spec.shape.total_seconds if spec.shape else spec.duration,
            "workers": environment.runner.worker_count if isinstance(environment.runner, MasterRunner) else 0}


def _await_workers(runner: Any, procs: list[subprocess.Popen[bytes]], logs: list[Path], spec: RunSpec) -> None:
    """Wait (bounded) until every worker connected; a dead one, or the deadline, raises with their logs."""
    deadline = time.monotonic() + spec.worker_start_timeout
    while runner.worker_count < spec.workers:
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() >= deadline:
            tails = "\n".join(path.read_text(errors="replace")[-2000:] for path in logs)
            raise RuntimeError(f"{runner.worker_count}/{spec.workers} workers connected "
                               f"({len(dead)} exited):\n{tails}")
        gevent.sleep(0.1)


def _drive(runner: Any, environment: Any, spec: RunSpec) -> tuple[float, float]:
    """Start the users (or the shape), tick until the duration passed (bounded); return (started, ended)."""
    started = time.monotonic()
    if spec.shape is not None:
        runner.start_shape()
        total = spec.shape.total_seconds
    else:
        runner.start(spec.users, spawn_rate=spec.spawn_rate)
        total = spec.duration
    live: dict[str, Any] = {}
    for _ in range(int(total / 0.25) + 200):
        if time.monotonic() - started >= total + (5.0 if spec.shape else 0.0):
            break
        if spec.shape is not None and runner.state == STATE_STOPPED:
            break
        gevent.sleep(0.25)
        if spec.on_tick is not None:
            live = _live(environment, live, started, spec)
            spec.on_tick(live)
    return started, time.monotonic()


def run_load(spec: RunSpec) -> RunResult:
    """Run one load test as ``spec`` says; return its figures (bounded in time throughout)."""
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter, stats_history

    classes = user_classes(spec.selection)
    environment = Environment(user_classes=classes, host=spec.host, shape_class=spec.shape,
                              stop_timeout=spec.stop_timeout, parsed_options=_parsed_options(spec))
    context = attach(environment, LoadContext(options=spec.options if not spec.workers else None,
                                              cafile=spec.options.cafile or None,
                                              username=spec.username, password=spec.password))
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    tmp: tempfile.TemporaryDirectory[str] | None = None
    greenlets: list[gevent.Greenlet] = []
    csv_writer = None
    if spec.workers:
        runner = environment.create_master_runner("127.0.0.1", 0)
        log_dir = spec.report_dir
        if log_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="nfclease-load-")
            log_dir = Path(tmp.name)
        log_dir.mkdir(parents=True, exist_ok=True)
        procs, logs = _start_workers(spec, runner.server.port, log_dir)
    else:
        runner = environment.create_local_runner()
    if spec.on_environment is not None:
        spec.on_environment(environment)
    try:
        if spec.workers:
            _await_workers(runner, procs, logs, spec)
        if spec.report_dir is not None:
            spec.report_dir.mkdir(parents=True, exist_ok=True)
            csv_writer = StatsCSVFileWriter(environment, PERCENTILES_TO_REPORT, str(spec.report_dir / "locust"))
            greenlets.append(gevent.spawn(csv_writer.stats_writer))
        greenlets.append(gevent.spawn(stats_history, runner))
        started, ended = _drive(runner, environment, spec)
        runner.stop()
        if isinstance(runner, MasterRunner):
            gevent.sleep(WORKER_REPORT_INTERVAL + 0.5)  # the workers' last figures ride on a stats report
        summary = context.figures.summary()
        knee = None
        if spec.shape is not None:
            knee = find_knee(context.figures, spec.shape.windows())
            knee["windows"] = spec.shape.windows()
        return RunResult(environment, context.figures, summary, started, ended, spec.workers, knee, logs)
    finally:
        for greenlet in greenlets:
            greenlet.kill(block=True, timeout=5)
        if csv_writer is not None:
            csv_writer.close_files()
        try:
            runner.quit()
        finally:
            _stop_workers(procs)
            if tmp is not None:
                tmp.cleanup()
