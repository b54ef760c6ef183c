"""Running real, unmodified clients (govc, Ansible) against a target from the tests.

``build/govc`` comes from ``tools/build-govc`` (Debian's govmomi 0.24.2
source), ``build/ansible`` from ``tools/fetch-ansible-collections`` (PyPI's
``ansible``: community.vmware) with ansible-core from the test extras; tests
skip with that reason when one is absent. Every run is bounded in time, gets
a clean environment (no GOVC_* or ANSIBLE_* of the user's) and verifies TLS
against the target's certificate.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
from pyVim.connect import SmartConnect

from nfclease.sim import SimConfig, Simulator
from nfclease.vcsim import find_vcsim, run_vcsim

REPO = Path(__file__).resolve().parent.parent
GOVC = REPO / "build" / "govc"
NO_GOVC = "no build/govc: run tools/build-govc (Debian golang-go, golang-github-kr-pretty-dev, dpkg-dev)"
COLLECTIONS = REPO / "build" / "ansible"
NO_ANSIBLE = ("no Ansible: run tools/fetch-ansible-collections (community.vmware from PyPI's ansible) and "
              "pip install ansible-core (the test extras; Python >= 3.11)")
POOL = "/DC0/host/DC0_C0/Resources"  # vcsim has two pools, so clients must be told


@dataclass
class Endpoint:
    """Where a client connects: the SDK URL (no credentials) and the PEM to verify TLS against."""

    name: str
    url: str
    cafile: str
    username: str = "user"
    password: str = "pass"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 443


@pytest.fixture(scope="module", params=["sim", "vcsim"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    """The embedded simulator, then vcsim (skipped without build/vcsim)."""
    if request.param == "sim":
        with Simulator(SimConfig(lease_timeout=300, init_seconds=0.1)) as sim:
            yield Endpoint("sim", sim.url, sim.cafile)
    else:
        if find_vcsim() is None:
            pytest.skip("no vcsim binary: run tools/build-vcsim")
        with run_vcsim() as vc:
            yield Endpoint("vcsim", vc.url, str(vc.cafile))


def vcsim_lacks(endpoint: Endpoint, reason: str, failed: bool) -> None:
    """On vcsim, a known deviation: check that it still happens (``failed``), then xfail with the reason."""
    if endpoint.name == "vcsim":
        assert failed, f"vcsim no longer deviates ({reason}): drop the expected failure"
        pytest.xfail(reason)


def pyvmomi(endpoint: Endpoint) -> Any:
    """An unmodified pyVmomi session on ``endpoint``, TLS verified."""
    parts = urlsplit(endpoint.url)
    return SmartConnect(host=parts.hostname, port=parts.port, user=endpoint.username, pwd=endpoint.password,
                        sslContext=ssl.create_default_context(cafile=endpoint.cafile))


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> "Run":
        assert self.returncode == 0, f"{' '.join(self.argv)} exited {self.returncode}:\n{self.stderr}{self.stdout}"
        return self


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOVC_", "ANSIBLE_"))}
    env.update(HOME=str(home), GOVMOMI_HOME=str(home))
    return env


def _run(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Run:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL, cwd=cwd)
    return Run(argv, done.returncode, done.stdout, done.stderr)


def govc_available() -> bool:
    return GOVC.is_file() and os.access(GOVC, os.X_OK)


def govc(endpoint: Endpoint, *args: str, home: Path, timeout: float = 120.0) -> Run:
    """``govc ARGS`` against ``endpoint``; returns the finished run (never raises on a non-zero exit)."""
    parts = urlsplit(endpoint.url)
    env = _clean_env(home)
    env.update(GOVC_URL=f"{parts.scheme}://{parts.netloc}{parts.path}", GOVC_USERNAME=endpoint.username,
               GOVC_PASSWORD=endpoint.password, GOVC_TLS_CA_CERTS=endpoint.cafile)
    return _run([str(GOVC), *args], env, home, timeout)


def ansible_available() -> bool:
    try:
        import ansible  # noqa: F401
    except ImportError:
        return False
    return (COLLECTIONS / "ansible_collections" / "community" / "vmware").is_dir()


def ansible_playbook(endpoint: Endpoint, tasks: list[dict[str, Any]], home: Path,
                     timeout: float = 300.0) -> Run:
    """Run ``tasks`` as a localhost playbook, the vmware modules' connection set to ``endpoint``.

    TLS is verified (``validate_certs: true``) against the endpoint's
    certificate through ``SSL_CERT_FILE``; the modules run in this Python
    (which has pyVmomi).
    """
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": tasks, "module_defaults": {
        "group/community.vmware.vmware": {"hostname": "127.0.0.1", "port": endpoint.port,
                                          "username": endpoint.username, "password": endpoint.password,
                                          "validate_certs": True}}}]
    playbook = home / "playbook.yml"
    playbook.write_text(json.dumps(play, indent=1))  # JSON is YAML
    env = _clean_env(home)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
               ANSIBLE_HOME=str(home / ".ansible"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               SSL_CERT_FILE=endpoint.cafile, REQUESTS_CA_BUNDLE=endpoint.cafile, ANSIBLE_DEPRECATION_WARNINGS="0")
    argv = [sys.executable, "-m", "ansible.cli.playbook", "-i", "localhost,", "-c", "local", str(playbook)]
    return _run(argv, env, home, timeout)
