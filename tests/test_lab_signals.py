"""SIGINT and SIGTERM at several moments of a conformance run and of a load run (local and with 2
Locust workers) leave nothing with the run's prefix and no held lease on the (shared, inspected)
simulator, and the command exits 128 + the signal number."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
from pyVim.connect import Disconnect

from lab import PASSWORD, ROOT, LabSim, history_lines, inspect, interrupt_when, lab_fixture, start_lab_sim
from nfclease import child

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab() -> Iterator[LabSim]:
    yield from lab_fixture()


class Watcher:
    """One inspector session polling the simulator's running import/export tasks for a prefix."""

    def __init__(self, lab: LabSim, prefix: str) -> None:
        self.si = lab.connect()
        self.prefix = prefix

    def lease_held(self) -> bool:
        tasks = self.si.RetrieveContent().taskManager.recentTask or []
        return any(t.info.state == "running" and str(t.info.entityName or "").startswith(self.prefix) for t in tasks)

    def close(self) -> None:
        Disconnect(self.si)


def _start(lab: LabSim, run_id: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "nfclease", *args, "--target", lab.target], cwd=ROOT,
                            env=lab.env(run_id), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _assert_nothing_left(lab: LabSim, run_id: str, proc: subprocess.Popen[str], signum: int) -> None:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, out[-3000:]
    prefix = f"nfclease-{run_id}-"
    seen = inspect(lab)
    assert seen.named(prefix) == [], (seen.named(prefix), out[-3000:])
    assert seen.running == [], (seen.running, out[-3000:])
    assert "Traceback" not in out, out[-3000:]


def _moments(report: Path, watcher: Watcher) -> dict[str, Callable[[], bool]]:
    return {
        "lease-held": watcher.lease_held,
        "first-upload": lambda: any('"call": "Upload"' in line for line in history_lines(report / "history.jsonl")),
        "mid-run": lambda: len(history_lines(report / "history.jsonl")) >= 120 and watcher.lease_held(),
    }


def _interrupt(lab: LabSim, run_id: str, args: list[str], moment: Callable[[Watcher], Callable[[], bool]],
               signum: int) -> subprocess.Popen[str]:
    """Start ``nfclease ARGS``, send ``signum`` at the moment, return the (still running) process."""
    watcher = Watcher(lab, f"nfclease-{run_id}-")
    try:
        proc = _start(lab, run_id, *args)
        try:
            interrupt_when(proc, moment(watcher), signum)
        except BaseException:
            proc.kill()
            raise
    finally:
        watcher.close()
    return proc


@pytest.mark.parametrize("signum,moment", [
    (signal.SIGINT, "lease-held"), (signal.SIGTERM, "lease-held"),
    (signal.SIGTERM, "first-upload"), (signal.SIGINT, "mid-run")])
def test_conformance_run_interrupted_leaves_nothing(lab: LabSim, tmp_path: Path, signum: int, moment: str) -> None:
    run_id = f"sig-c-{uuid.uuid4().hex[:6]}"
    args = ["conform", "--profile", "ci", "--report", str(tmp_path), "--seed", "7"]
    proc = _interrupt(lab, run_id, args, lambda watcher: _moments(tmp_path, watcher)[moment], signum)
    _assert_nothing_left(lab, run_id, proc, signum)


@pytest.mark.parametrize("signum,workers", [(signal.SIGINT, 0), (signal.SIGTERM, 0), (signal.SIGTERM, 2),
                                            (signal.SIGINT, 2)])
def test_load_run_interrupted_leaves_nothing(lab: LabSim, tmp_path: Path, signum: int, workers: int) -> None:
    run_id = f"sig-l{workers}-{uuid.uuid4().hex[:6]}"
    args = ["load", "--scenario", "import-upload", "--scenario", "keepalive", "--users", "4", "--duration", "60s",
            "--disk-mib", "2", "--report", str(tmp_path), "--workers", str(workers)]
    proc = _interrupt(lab, run_id, args, lambda watcher: watcher.lease_held, signum)
    _assert_nothing_left(lab, run_id, proc, signum)
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):  # worker logs, Locust CSV: no password
        assert PASSWORD.encode() not in path.read_bytes(), path


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc: the Locust workers of a master)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_locust_worker_killed_mid_run_leaves_nothing_once_its_leases_lapse(tmp_path: Path) -> None:
    """SIGKILL: the worker cannot clean up; the master's final sweep waits for its leases (4 s here)."""
    lab = start_lab_sim("--lease-timeout", "4", "--deviate", "import_not_cleaned_on_timeout")  # only a sweep helps
    try:
        run_id = f"kill-{uuid.uuid4().hex[:6]}"
        watcher = Watcher(lab, f"nfclease-{run_id}-")
        proc = _start(lab, run_id, "load", "--scenario", "keepalive", "--users", "4", "--duration", "8s",
                      "--disk-mib", "2", "--report", str(tmp_path), "--workers", "2")
        try:
            interrupt_when(proc, lambda: watcher.lease_held() and len(_children(proc.pid)) >= 2, signal.SIGCONT)
            os.kill(_children(proc.pid)[0], signal.SIGKILL)
            out, _ = proc.communicate(timeout=120)
        finally:
            watcher.close()
            if proc.poll() is None:
                proc.kill()
        prefix = f"nfclease-{run_id}-"
        seen = inspect(lab)
        assert seen.named(prefix) == [] and seen.running == [], (seen, out[-3000:])
    finally:
        child.stop(lab.proc, 10)
