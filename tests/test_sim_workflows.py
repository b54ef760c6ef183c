"""The client workflows of FIELD-NOTES against the embedded simulator.

Real sockets, unmodified pyvmomi (TLS verified against ``sim.cafile``), NFC
transfers by http.client, curl and requests. The fixture's lease timeout is
2 s, so every wait here is short and bounded.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from pyVmomi import vim, vmodl

from conftest import (
    STREAM_VMDK, content_sha1, connect, disk_bytes, download, find, find_vm, lease_task, nfc_url,
    start_import, upload_disk, upload_file, wait_for, wait_ready, wait_task,
)
from nfclease.vmdk import ContentPattern, StreamOptimizedDisk

MiB = 1 << 20


class KeepAlive(threading.Thread):
    """govmomi-style lease updater: Progress every ``interval`` s, stop for good on the first error."""

    def __init__(self, lease: vim.HttpNfcLease, interval: float = 0.4) -> None:
        super().__init__(daemon=True, name="keepalive")
        self.lease, self.interval = lease, interval
        self.percent = 0
        self.calls = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        for _ in range(1000):  # bounded: 1000 * interval at most
            try:
                self.lease.HttpNfcLeaseProgress(self.percent)
                self.calls += 1
            except BaseException as exc:  # noqa: BLE001 - recorded and asserted by the test
                self.error = exc
                return
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        assert not self.is_alive()


def export_and_download(si, sim, vm, expect_disks: int) -> list[bytes]:
    lease = vm.ExportVm()
    info = wait_ready(lease)
    assert len(info.deviceUrl) == expect_disks
    streams = []
    for url in info.deviceUrl:
        got = download(sim, url.url)
        assert got.status == 200
        streams.append(got.data)
    lease.HttpNfcLeaseComplete()
    assert lease.state == "done"
    return streams


# -- deploy-OVF-style import ---------------------------------------------------------------

def test_deploy_ovf_import_with_keepalive_then_export_byte_for_byte(si, sim):
    disks = [StreamOptimizedDisk(1 * MiB, ContentPattern("random", seed="deploy-a")),
             StreamOptimizedDisk(2 * MiB, ContentPattern("sparse", seed="deploy-b"))]
    nvram = hashlib.sha256(b"nvram").digest() * 8  # 256 bytes of a non-disk file
    imp = start_import(si, [d.capacity for d in disks], [len(nvram)])
    lease = imp.lease

    # initializing first, initializeProgress rising to 100 in ready
    assert lease.state in ("initializing", "ready")
    info = wait_ready(lease)
    assert lease.initializeProgress == 100
    assert lease.error is None
    assert info.leaseTimeout == 2
    assert info.totalDiskCapacityInKB == sum(d.capacity for d in disks) // 1024

    # fileItem.deviceId <-> deviceUrl.importKey, as ovftool / govc match them
    by_import_key = {u.importKey: u for u in info.deviceUrl}
    assert len(by_import_key) == len(info.deviceUrl) == 3
    assert {fi.deviceId for fi in imp.result.fileItem} == set(by_import_key)
    for url in info.deviceUrl:
        assert url.sslThumbprint == sim.thumbprint
        assert url.url.startswith(f"https://127.0.0.1:{sim.port}/nfc/")

    keepalive = KeepAlive(lease)
    keepalive.start()
    sent = {}
    try:
        disk_iter = iter(disks)
        for item in imp.result.fileItem:
            url = by_import_key[item.deviceId]
            item_ovf = imp.package.by_href(item.path)
            assert item_ovf is not None
            if url.disk:
                disk = next(disk_iter)
                assert item_ovf.capacity == disk.capacity
                reply = upload_disk(sim, url.url, disk)
                assert reply.status == 200, reply.body
                sent[url.key] = disk
            else:
                assert item.create is True and item.size == len(nvram)
                reply = upload_file(sim, url.url, nvram)
                assert reply.status in (200, 201), reply.body
                sent[url.key] = nvram
            keepalive.percent = int(100 * len(sent) / len(info.deviceUrl))
        # the transfer finished early: the lease must outlive leaseTimeout while kept alive
        ready_since = time.monotonic()
        wait_for(lambda: time.monotonic() - ready_since > info.leaseTimeout + 0.3 and keepalive.calls >= 5,
                 timeout=6, what="keepalive past leaseTimeout")
        assert lease.state == "ready"
        assert lease.transferProgress == 100
    finally:
        keepalive.stop()
    assert keepalive.error is None, keepalive.error

    manifest = {e.key: e for e in lease.HttpNfcLeaseGetManifest()}
    assert set(manifest) == set(sent)
    for key, what in sent.items():
        data = disk_bytes(what) if isinstance(what, StreamOptimizedDisk) else what
        assert manifest[key].size == len(data)
        assert manifest[key].sha1 == hashlib.sha1(data).hexdigest()
        assert manifest[key].disk is isinstance(what, StreamOptimizedDisk)

    lease.HttpNfcLeaseComplete()
    assert lease.state == "done"
    assert lease.error is None
    vm = find_vm(si, imp.package.name)
    assert vm is not None and vm.name == imp.package.name
    task = lease_task(si, vm, "ResourcePool.ImportVAppLRO")
    task_info = wait_task(task)
    assert task_info.state == "success", task_info.error
    assert task_info.result == vm

    # the imported VM's disks come back byte for byte, in order
    streams = export_and_download(si, sim, vm, expect_disks=2)
    assert [hashlib.sha1(s).hexdigest() for s in streams] == [d.sha1 for d in disks]
    assert streams[0] == disk_bytes(disks[0])
    assert content_sha1(streams[1]) == disks[1].pattern.sha1(disks[1].capacity)


# -- export with integrity check ---------------------------------------------------------

def test_export_vm_download_matches_manifest_sha1_and_sha256(si, sim):
    vm = find_vm(si, "DC0_C0_RP0_VM1")
    lease = vm.ExportVm()
    info = wait_ready(lease)
    assert info.entity == vm
    (url,) = info.deviceUrl
    assert url.disk is True and url.fileSize is None
    assert lease.capabilities.pullModeSupported is False
    lease.HttpNfcLeaseSetManifestChecksumType([vim.KeyValue(key=url.key, value="sha256")])
    got = download(sim, url.url)
    assert got.status == 200
    (entry,) = lease.HttpNfcLeaseGetManifest()
    assert entry.key == url.key
    assert (entry.sha1, entry.size) == (got.sha1, got.size)
    assert (entry.checksumType, entry.checksum) == ("sha256", got.sha256)
    # totalDiskCapacityInKB is the capacity, not the stream size; the content is the VM's known pattern
    capacity = info.totalDiskCapacityInKB * 1024
    assert content_sha1(got.data) == ContentPattern("random", seed="VM1").sha1(capacity)
    lease.HttpNfcLeaseProgress(100)
    assert lease.transferProgress == 100
    lease.HttpNfcLeaseComplete()
    task_info = wait_task(lease_task(si, vm, "VirtualMachine.exportVmLRO"))
    assert task_info.state == "success"


def test_export_vapp(si, sim):
    vapp = find(si, "DC0/vm/DC0_VAPP0")
    assert isinstance(vapp, vim.VirtualApp)
    lease = vapp.ExportVApp()
    info = wait_ready(lease)
    assert info.entity == vapp
    (url,) = info.deviceUrl
    got = download(sim, url.url)
    assert got.status == 200
    (entry,) = lease.HttpNfcLeaseGetManifest()
    assert (entry.sha1, entry.size) == (got.sha1, got.size)
    assert content_sha1(got.data) == ContentPattern("sparse", seed="VAPP0").sha1(info.totalDiskCapacityInKB * 1024)
    lease.HttpNfcLeaseComplete()
    assert wait_task(lease_task(si, vapp, "VirtualApp.exportVAppLRO")).state == "success"


def test_export_snapshot(si, sim):
    vm = find_vm(si, "DC0_C0_RP0_VM2")
    task_info = wait_task(vm.CreateSnapshot_Task(name="nfclease-test", description="", memory=False,
                                                 quiesce=False))
    assert task_info.state == "success", task_info.error
    snapshot = task_info.result
    assert isinstance(snapshot, vim.vm.Snapshot)
    assert vm.snapshot.currentSnapshot == snapshot
    lease = snapshot.ExportSnapshot()
    info = wait_ready(lease)
    assert info.entity == vm  # HttpNfcLeaseInfo.entity is a ManagedEntity: the snapshot's VM
    (url,) = info.deviceUrl
    got = download(sim, url.url)
    assert got.status == 200
    assert content_sha1(got.data) == ContentPattern("sequence", seed="VM2").sha1(info.totalDiskCapacityInKB * 1024)
    (entry,) = lease.HttpNfcLeaseGetManifest()
    assert (entry.sha1, entry.size) == (got.sha1, got.size)
    lease.HttpNfcLeaseComplete()
    assert lease.state == "done"


def test_export_snapshot_made_at_start(si, sim):
    vm = find_vm(si, "DC0_C0_RP0_VM0")
    snap = next(t.snapshot for t in vm.snapshot.rootSnapshotList if t.name == "snap0")
    lease = snap.ExportSnapshot()
    info = wait_ready(lease)
    got = download(sim, info.deviceUrl[0].url)
    assert content_sha1(got.data) == ContentPattern("sequence", seed="VM0").sha1(info.totalDiskCapacityInKB * 1024)
    lease.HttpNfcLeaseComplete()


# -- abort and cleanup --------------------------------------------------------------------

def test_abort_with_fault_fails_the_task_and_removes_the_import(si, sim):
    imp = start_import(si, [1 * MiB], [64])
    lease = imp.lease
    info = wait_ready(lease)
    vm = find_vm(si, imp.package.name)
    assert vm is not None
    disk_url = next(u for u in info.deviceUrl if u.disk)
    assert upload_disk(sim, disk_url.url, StreamOptimizedDisk(1 * MiB, "random")).status == 200
    task = lease_task(si, vm, "ResourcePool.ImportVAppLRO")
    assert task.info.state == "running"  # the task runs while the lease is held

    cause = vim.fault.FileNotFound(file="disk.vmdk", msg="the client lost its source file")
    lease.HttpNfcLeaseAbort(cause)
    assert lease.state == "error"
    assert isinstance(lease.error, vim.fault.FileNotFound)
    assert lease.error.msg == "the client lost its source file"
    assert lease.error.file == "disk.vmdk"
    assert lease.info is None
    task_info = wait_task(task)
    assert task_info.state == "error"
    assert isinstance(task_info.error, vim.fault.FileNotFound)
    assert task_info.error.msg == cause.msg
    # every object the import created is gone
    assert find_vm(si, imp.package.name) is None
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        vm.name  # noqa: B018 - reading the property is the check
    assert vm not in find(si, "DC0/vm").childEntity
    # and the device URLs no longer accept data
    assert upload_disk(sim, disk_url.url, StreamOptimizedDisk(1 * MiB, "zero")).status == 403


def test_abort_without_fault_still_sets_error(si):
    imp = start_import(si, [1 * MiB])
    wait_ready(imp.lease)
    imp.lease.HttpNfcLeaseAbort()
    assert imp.lease.state == "error"
    assert isinstance(imp.lease.error, vmodl.MethodFault)
    assert find_vm(si, imp.package.name) is None


def test_abort_during_initializing(sim):
    # a slow-initialising simulator, so the lease is certainly still initializing
    from nfclease.sim import SimConfig, Simulator
    with Simulator(SimConfig(lease_timeout=2, init_seconds=1.0)) as slow:
        si = connect(slow)
        imp = start_import(si, [1 * MiB])
        assert imp.lease.state == "initializing"
        assert 0 <= imp.lease.initializeProgress < 100
        assert imp.lease.info is None
        imp.lease.HttpNfcLeaseAbort()
        assert imp.lease.state == "error"
        assert find_vm(si, imp.package.name) is None


# -- timeout -------------------------------------------------------------------------------

def test_lease_times_out_without_progress(si):
    imp = start_import(si, [1 * MiB])
    lease = imp.lease
    info = wait_ready(lease)
    ready_seen = time.monotonic()
    vm = find_vm(si, imp.package.name)
    task = lease_task(si, vm, "ResourcePool.ImportVAppLRO")
    # watch the task only: the lease must expire by itself, without being polled
    task_info = wait_task(task, timeout=info.leaseTimeout + 3)
    elapsed = time.monotonic() - ready_seen
    assert info.leaseTimeout - 0.3 <= elapsed <= info.leaseTimeout + 1.0, elapsed
    assert task_info.state == "error"
    assert isinstance(task_info.error, vim.fault.Timedout)
    assert lease.state == "error"
    assert isinstance(lease.error, vim.fault.Timedout)
    assert find_vm(si, imp.package.name) is None


def test_progress_keeps_the_lease_alive_past_the_timeout(si, sim):
    vm = find_vm(si, "DC0_C0_RP0_VM3")
    lease = vm.ExportVm()
    info = wait_ready(lease)
    start = time.monotonic()
    for percent in range(0, 100, 12):  # 9 renewals, 0.3 s apart: 2.7 s > leaseTimeout
        lease.HttpNfcLeaseProgress(percent)
        time.sleep(0.3)
        assert lease.state == "ready", lease.error
    assert time.monotonic() - start > info.leaseTimeout + 0.5
    assert download(sim, info.deviceUrl[0].url, keep=False).status == 200
    lease.HttpNfcLeaseComplete()
    assert lease.state == "done"


# -- other clients ---------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("expect", ["100-continue", ""])
def test_curl_uploads_a_disk(si, sim, tmp_path: Path, expect: str):
    disk = StreamOptimizedDisk(2 * MiB, ContentPattern("random", seed=f"curl{expect}"))
    source = tmp_path / "disk.vmdk"
    disk.write_to(source)
    imp = start_import(si, [disk.capacity])
    info = wait_ready(imp.lease)
    (url,) = info.deviceUrl
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--verbose", "--cacert", sim.cafile, "--max-time", "30",
         "-X", "POST", "-H", f"Content-Type: {STREAM_VMDK}", "-H", f"Expect: {expect}",
         "--data-binary", f"@{source}", "--output", str(tmp_path / "reply"), "--write-out", "%{http_code}",
         nfc_url(sim, url.url)],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "200", result.stderr
    sent_expect = "> Expect: 100-continue" in result.stderr
    assert sent_expect is bool(expect)
    assert ("< HTTP/1.1 100 Continue" in result.stderr) is bool(expect)
    (entry,) = imp.lease.HttpNfcLeaseGetManifest()
    assert (entry.size, entry.sha1) == (disk.size, disk.sha1)
    imp.lease.HttpNfcLeaseComplete()
    assert imp.lease.state == "done"


def test_requests_with_explicit_verify(si, sim, tmp_path: Path):
    """requests honours REQUESTS_CA_BUNDLE (set on this machine) over ``verify=True``/``False``;
    only an explicit path wins, so the simulator's certificate is passed as ``verify=sim.cafile``."""
    disk = StreamOptimizedDisk(1 * MiB, ContentPattern("sequence", seed="requests"))
    source = tmp_path / "disk.vmdk"
    disk.write_to(source)
    imp = start_import(si, [disk.capacity])
    info = wait_ready(imp.lease)
    url = nfc_url(sim, info.deviceUrl[0].url)
    with requests.Session() as session:
        # the default trust store (REQUESTS_CA_BUNDLE or certifi) does not know the simulator: verified TLS fails
        with pytest.raises(requests.exceptions.SSLError):
            session.post(url, data=b"", timeout=10)
        with source.open("rb") as body:  # a file: requests sends Content-Length, not chunks
            reply = session.post(url, data=body, headers={"Content-Type": STREAM_VMDK},
                                 verify=sim.cafile, timeout=30)
        assert reply.status_code == 200, reply.text
        assert "received" in reply.text
        (entry,) = imp.lease.HttpNfcLeaseGetManifest()
        assert (entry.size, entry.sha1) == (disk.size, disk.sha1)
        imp.lease.HttpNfcLeaseComplete()
        vm = find_vm(si, imp.package.name)
        export = vm.ExportVm()
        info = wait_ready(export)
        got = session.get(nfc_url(sim, info.deviceUrl[0].url), verify=sim.cafile, timeout=30)
        assert got.status_code == 200
        assert hashlib.sha1(got.content).hexdigest() == disk.sha1
        export.HttpNfcLeaseComplete()
