"""govmomi's vcsim as a peer target: it starts, speaks verified TLS, and hands
out an import lease to unmodified pyvmomi.

Needs build/vcsim (``sh tools/build-vcsim``, from Debian's golang-go and
golang-github-vmware-govmomi-dev) or $NFCLEASE_VCSIM; skipped without it.
These talk to pyvmomi directly on purpose: they check the peer and the
helper that runs it, not the lease rules (those go through nfclease.session).
"""

from __future__ import annotations

import hashlib
import ssl
import stat
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

from nfclease.ovf import build_import_ovf
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from nfclease.vcsim import VcsimError, VcsimProcess, find_vcsim, run_vcsim, thumbprint_of

_NO_VCSIM = (
    "no vcsim binary: run tools/build-vcsim (apt-get install golang-go "
    "golang-github-vmware-govmomi-dev) or set $NFCLEASE_VCSIM"
)
_skip_without_vcsim = pytest.mark.skipif(find_vcsim() is None, reason=_NO_VCSIM)

F = TypeVar("F", bound=Callable[..., Any])


def needs_vcsim(test: F) -> F:
    """``@pytest.mark.vcsim``, skipped with a reason when the binary is absent."""
    return pytest.mark.vcsim(_skip_without_vcsim(test))  # type: ignore[no-any-return]



@pytest.fixture(scope="module")
def vcsim() -> Iterator[VcsimProcess]:
    if find_vcsim() is None:
        pytest.skip(_NO_VCSIM)
    with run_vcsim() as vc:
        yield vc


@pytest.fixture
def si(vcsim: VcsimProcess) -> Iterator[vim.ServiceInstance]:
    # TLS verified against the certificate vcsim wrote (-cert-out).
    conn = SmartConnect(
        host=vcsim.host, port=vcsim.port, user=vcsim.username, pwd=vcsim.password, sslContext=vcsim.ssl_context()
    )
    try:
        yield conn
    finally:
        Disconnect(conn)


@needs_vcsim
def test_url_and_certificate(vcsim: VcsimProcess) -> None:
    assert vcsim.url == f"https://127.0.0.1:{vcsim.port}/sdk"
    assert vcsim.cafile is not None
    served = ssl.get_server_certificate((vcsim.host, vcsim.port), timeout=10)
    der = ssl.PEM_cert_to_DER_cert(served)
    assert der == ssl.PEM_cert_to_DER_cert(vcsim.cafile.read_text())
    assert vcsim.thumbprint == thumbprint_of(der)
    assert vcsim.thumbprint == ":".join(f"{b:02X}" for b in hashlib.sha1(der).digest())


@needs_vcsim
def test_tls_is_really_verified(vcsim: VcsimProcess) -> None:
    # With only the system's trust store the handshake is refused: the
    # verified connections in the other tests are not a formality.
    with pytest.raises(ssl.SSLCertVerificationError):
        SmartConnect(
            host=vcsim.host,
            port=vcsim.port,
            user=vcsim.username,
            pwd=vcsim.password,
            sslContext=ssl.create_default_context(),
        )


@needs_vcsim
def test_about(si: vim.ServiceInstance) -> None:
    about = si.content.about
    assert about.apiType == "VirtualCenter"
    assert about.apiVersion.split(".")[0].isdigit()
    # pyvmomi negotiated a version the server lists (vimServiceVersions.xml).
    assert si._stub.version.startswith("vim.version.")


@needs_vcsim
def test_import_vapp_lease_ready(si: vim.ServiceInstance) -> None:
    content = si.RetrieveContent()
    dc = content.rootFolder.childEntity[0]
    cluster = next(e for e in dc.hostFolder.childEntity if isinstance(e, vim.ClusterComputeResource))
    pool, ds = cluster.resourcePool, dc.datastore[0]
    name = f"peer-{time.monotonic_ns()}"

    package = build_import_ovf([1 << 20], name=name)
    result = content.ovfManager.CreateImportSpec(
        package.descriptor, pool, ds, vim.OvfManager.CreateImportSpecParams(entityName=name)
    )
    assert not result.error, result.error
    assert [f.path for f in result.fileItem] == [package.disks[0].href]

    lease = pool.ImportVApp(result.importSpec, dc.vmFolder)
    try:
        deadline = time.monotonic() + 30
        while lease.state == vim.HttpNfcLease.State.initializing and time.monotonic() < deadline:
            time.sleep(0.1)
        assert lease.state == vim.HttpNfcLease.State.ready
        info = lease.info
        assert len(info.deviceUrl) == 1
        device = info.deviceUrl[0]
        assert device.disk is True
        assert device.importKey == result.fileItem[0].deviceId
        assert device.url.startswith("https://") and device.url.endswith("/disk-0.vmdk")
        assert info.entity is not None and info.entity.name == name
    finally:
        lease.HttpNfcLeaseAbort()


@needs_vcsim
def test_credentials_are_enforced() -> None:
    with run_vcsim(username="alice", password="s3cret") as vc:
        with pytest.raises(vim.fault.InvalidLogin):
            SmartConnect(host=vc.host, port=vc.port, user="user", pwd="pass", sslContext=vc.ssl_context())
        conn = SmartConnect(host=vc.host, port=vc.port, user="alice", pwd="s3cret", sslContext=vc.ssl_context())
        Disconnect(conn)


@needs_vcsim
def test_stopped_on_exit() -> None:
    """Judged by outcome: the process is gone, its port refuses, its files are removed.

    Whether vcsim had installed its SIGTERM handler yet (exit 0) or died of
    the signal (-15) depends on how loaded the machine is, so either is fine;
    what matters is that nothing is left behind.
    """
    import socket
    from urllib.parse import urlsplit

    with run_vcsim() as vc:
        proc = vc._proc
        cafile = vc.cafile
        port = urlsplit(vc.url).port
        assert proc is not None and proc.poll() is None
    assert proc.returncode is not None, "vcsim is still running after the context exited"
    assert cafile is not None and not cafile.exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


# -- the helper, without vcsim ------------------------------------------------


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-vcsim"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_vcsim_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NFCLEASE_VCSIM", str(tmp_path / "absent"))
    assert find_vcsim() is None
    fake = _script(tmp_path, "exit 0")
    monkeypatch.setenv("NFCLEASE_VCSIM", str(fake))
    assert find_vcsim() == fake


def test_start_failure_carries_stderr(tmp_path: Path) -> None:
    fake = _script(tmp_path, "echo 'vcsim: model: boom' >&2; exit 3")
    with pytest.raises(VcsimError, match=r"exited \(3\)[\s\S]*model: boom"):
        VcsimProcess(fake).start()


def test_start_wait_is_bounded(tmp_path: Path) -> None:
    fake = _script(tmp_path, "echo 'vcsim: stuck' >&2; exec sleep 30")
    started = time.monotonic()
    with pytest.raises(VcsimError, match=r"no URL within 0.5 s[\s\S]*stuck"):
        VcsimProcess(fake, start_timeout=0.5).start()
    assert time.monotonic() - started < 10
