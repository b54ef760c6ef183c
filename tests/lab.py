"""A shared 'lab' for the safety tests: one long-lived ``nfclease sim`` child with a password and a
300 s lease timeout (a held lease stays held for the whole test), inspected from outside with
plain pyVmomi, and helpers to run ``nfclease`` commands against it and interrupt them."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from nfclease import child

ROOT = Path(__file__).resolve().parents[1]
USER = "lab-user"
PASSWORD = "Lab-Pa55word-7f3e"


@dataclass
class LabSim:
    """The running simulator child: its URL (no credentials), CA file and process."""

    url: str
    cafile: str
    thumbprint: str
    proc: subprocess.Popen[bytes]

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 443

    @property
    def target(self) -> str:
        """The URL with credentials, as a user passes it to ``--target``."""
        return self.url.replace("https://", f"https://{USER}:{PASSWORD}@")

    def env(self, run_id: str | None = None, **extra: str) -> dict[str, str]:
        """An environment trusting the simulator's CA (as GOVC_TLS_CA_CERTS), with a known run id."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVC_") and k != "NFCLEASE_RUN_ID"}
        env.update({"PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                    "GOVC_TLS_CA_CERTS": self.cafile, **extra})
        if run_id:
            env["NFCLEASE_RUN_ID"] = run_id
        return env

    def connect(self) -> Any:
        """A separate pyVmomi session (the inspector), TLS verified against the simulator's CA."""
        return SmartConnect(host="127.0.0.1", port=self.port, user=USER, pwd=PASSWORD,
                            sslContext=ssl.create_default_context(cafile=self.cafile))


def start_lab_sim(*extra: str) -> LabSim:
    proc = subprocess.Popen([sys.executable, "-m", "nfclease", "sim", "--port", "0", "--username", USER,
                             "--password", PASSWORD, "--lease-timeout", "300", "--init-seconds", "0.05", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        url, note = child.read_lines(proc, 2, 60, RuntimeError)
    except BaseException:
        child.stop(proc, 5)
        raise
    cafile = note.split("certificate ", 1)[1].split(" ", 1)[0]
    thumbprint = note.split("thumbprint ", 1)[1].split(";", 1)[0]
    return LabSim(url, cafile, thumbprint, proc)


@dataclass
class Inventory:
    """What the inspector sees: entity names, snapshot names, running import/export tasks."""

    entities: list[str]
    snapshots: list[str]
    running: list[str]

    def named(self, prefix: str) -> list[str]:
        return [n for n in self.entities + self.snapshots if n.startswith(prefix)]


def inspect(lab: LabSim) -> Inventory:
    si = lab.connect()
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine, vim.VirtualApp],
                                                       True)
        entities, snapshots = [], []
        for obj in view.view:
            entities.append(obj.name)
            if isinstance(obj, vim.VirtualMachine) and obj.snapshot is not None:
                stack = list(obj.snapshot.rootSnapshotList)
                for _ in range(1000):
                    if not stack:
                        break
                    node = stack.pop()
                    snapshots.append(node.name)
                    stack.extend(node.childSnapshotList or [])
        view.DestroyView()
        running = [f"{t.info.descriptionId} {t.info.entityName}" for t in content.taskManager.recentTask or []
                   if t.info.state in ("queued", "running")]
        return Inventory(entities, snapshots, running)
    finally:
        Disconnect(si)


def nfclease(lab: LabSim, *args: str, run_id: str | None = None, timeout: float = 120,
             **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nfclease", *args], cwd=ROOT, env=lab.env(run_id, **env),
                          capture_output=True, text=True, timeout=timeout)


def interrupt_when(proc: subprocess.Popen[Any], ready: Callable[[], bool], signum: int,
                   timeout: float = 90.0) -> None:
    """Send ``signum`` to ``proc`` once ``ready()`` holds (bounded: fails if it never does)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):
        if ready():
            proc.send_signal(signum)
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before the moment to interrupt it")
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    raise AssertionError(f"the moment to send {signal.Signals(signum).name} never came in {timeout:g} s")


def history_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []


def lab_fixture() -> Iterator[LabSim]:
    lab = start_lab_sim()
    try:
        yield lab
    finally:
        child.stop(lab.proc, 10)
