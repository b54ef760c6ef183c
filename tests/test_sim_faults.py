"""Every fault clause of the lease spec, the blocking of covered VMs, version
gating, ESXi-style ``*`` hosts and the NFC HTTP status codes, against the
embedded simulator with unmodified pyvmomi and real sockets.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from dataclasses import dataclass, field
from typing import Iterator
from urllib.parse import urlsplit

import pytest
from pyVim.connect import Disconnect
from pyVmomi import VmomiSupport, vim, vmodl

from conftest import (
    STREAM_VMDK, connect, disk_bytes, download, envelope, find, find_vm, lease_task, nfc_connection,
    nfc_request, nfc_url, soap_fault, soap_login, soap_post, ssl_context, start_import, upload_disk,
    upload_file, wait_ready, wait_state, wait_task,
)
from nfclease.ovf import build_import_ovf
from nfclease.sim import SimConfig, Simulator
from nfclease.sim.tls import generate_self_signed, server_context, thumbprint
from nfclease.vmdk import ContentPattern, StreamOptimizedDisk

MiB = 1 << 20
PC = vmodl.query.PropertyCollector


def ready_import(si, disks=(1 * MiB,), files=()):
    imp = start_import(si, list(disks), list(files))
    wait_ready(imp.lease)
    return imp


# -- Complete / Abort ---------------------------------------------------------------------

def test_complete_twice_is_invalid_state(si):
    lease = ready_import(si).lease
    lease.HttpNfcLeaseComplete()
    with pytest.raises(vim.fault.InvalidState):
        lease.HttpNfcLeaseComplete()
    assert lease.state == "done"


def test_complete_after_abort_is_invalid_state(si):
    lease = ready_import(si).lease
    lease.HttpNfcLeaseAbort()
    with pytest.raises(vim.fault.InvalidState):
        lease.HttpNfcLeaseComplete()
    assert lease.state == "error"


def test_abort_after_abort_is_invalid_state(si):
    lease = ready_import(si).lease
    lease.HttpNfcLeaseAbort(vmodl.fault.SystemError(reason="first", msg="first"))
    with pytest.raises(vim.fault.InvalidState):
        lease.HttpNfcLeaseAbort(vmodl.fault.SystemError(reason="second", msg="second"))
    assert lease.error.reason == "first"  # the first cause stays


def test_abort_after_complete_is_invalid_state(si):
    lease = ready_import(si).lease
    lease.HttpNfcLeaseComplete()
    with pytest.raises(vim.fault.InvalidState):
        lease.HttpNfcLeaseAbort()
    assert lease.state == "done" and lease.error is None


def test_get_manifest_after_complete_and_after_abort_is_invalid_state(si):
    done, aborted = ready_import(si).lease, ready_import(si).lease
    done.HttpNfcLeaseComplete()
    aborted.HttpNfcLeaseAbort()
    for lease in (done, aborted):
        with pytest.raises(vim.fault.InvalidState):
            lease.HttpNfcLeaseGetManifest()


# -- Progress ------------------------------------------------------------------------------

@pytest.mark.parametrize("percent", [150, 101, -1])
def test_progress_out_of_range_is_invalid_argument(si, percent):
    lease = ready_import(si).lease
    lease.HttpNfcLeaseProgress(40)
    with pytest.raises(vmodl.fault.InvalidArgument) as caught:
        lease.HttpNfcLeaseProgress(percent)
    assert caught.value.invalidProperty == "percent"
    assert lease.transferProgress == 40  # not taken
    for edge in (0, 100):
        lease.HttpNfcLeaseProgress(edge)
        assert lease.transferProgress == edge
    lease.HttpNfcLeaseAbort()


# -- after expiry ----------------------------------------------------------------------------

@dataclass
class Expired:
    import_lease: vim.HttpNfcLease
    export_lease: vim.HttpNfcLease
    import_name: str


@pytest.fixture(scope="module")
def expired(si) -> Expired:
    """An import and an export lease left to time out (one wait for both)."""
    imp = ready_import(si)
    export = find_vm(si, "DC0_C0_RP0_VM1").ExportVm()
    wait_ready(export)
    for lease in (imp.lease, export):
        assert wait_state(lease, ("error",), timeout=5) == "error"
    return Expired(imp.lease, export, imp.package.name)


@pytest.mark.parametrize("call", ["Complete", "Abort", "Progress", "GetManifest"])
@pytest.mark.parametrize("which", ["import_lease", "export_lease"])
def test_calls_after_expiry_are_timedout(expired, call, which):
    lease = getattr(expired, which)
    method = getattr(lease, f"HttpNfcLease{call}")
    with pytest.raises(vim.fault.Timedout):
        method(50) if call == "Progress" else method()
    assert lease.state == "error"
    assert isinstance(lease.error, vim.fault.Timedout)


def test_expired_import_is_removed_and_vm_unblocked(si, expired):
    assert find_vm(si, expired.import_name) is None
    vm = find_vm(si, "DC0_C0_RP0_VM1")
    # the export lease is released: a new export of the same VM is allowed
    lease = vm.ExportVm()
    wait_ready(lease)
    lease.HttpNfcLeaseComplete()


def test_set_checksum_type_and_pull_after_expiry_are_invalid_state(expired):
    # the page names only InvalidState for these two
    with pytest.raises(vim.fault.InvalidState):
        expired.import_lease.HttpNfcLeaseSetManifestChecksumType([])
    with pytest.raises(vim.fault.InvalidState):
        expired.import_lease.HttpNfcLeasePullFromUrls_Task([])


# -- SetManifestChecksumType -----------------------------------------------------------------

def test_set_checksum_type_refuses_unknown_key_and_algorithm(si, sim):
    vm = find_vm(si, "DC0_C0_RP0_VM2")
    lease = vm.ExportVm()
    info = wait_ready(lease)
    key = info.deviceUrl[0].key
    with pytest.raises(vmodl.fault.InvalidArgument):
        lease.HttpNfcLeaseSetManifestChecksumType([vim.KeyValue(key="/no/such/device", value="sha1")])
    with pytest.raises(vmodl.fault.InvalidArgument):
        lease.HttpNfcLeaseSetManifestChecksumType([vim.KeyValue(key=key, value="md5")])
    # a refused mapping changes nothing: still plain sha1 entries
    got = download(sim, info.deviceUrl[0].url, keep=False)
    (entry,) = lease.HttpNfcLeaseGetManifest()
    assert entry.sha1 == got.sha1 and entry.checksumType is None
    lease.HttpNfcLeaseSetManifestChecksumType([vim.KeyValue(key=key, value="sha1")])
    (entry,) = lease.HttpNfcLeaseGetManifest()
    assert (entry.checksumType, entry.checksum) == ("sha1", got.sha1)
    lease.HttpNfcLeaseAbort()
    with pytest.raises(vim.fault.InvalidState):
        lease.HttpNfcLeaseSetManifestChecksumType([vim.KeyValue(key=key, value="sha256")])


# -- PullFromUrls_Task -------------------------------------------------------------------------

@dataclass
class Source:
    """A local HTTP(S) server holding one VMDK stream; records the headers it was sent."""

    disk: StreamOptimizedDisk
    data: bytes
    http_url: str = ""
    https_url: str = ""
    https_thumbprint: str = ""
    seen_headers: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Iterator[Source]:
    disk = StreamOptimizedDisk(1 * MiB, ContentPattern("random", seed="pull"))
    src = Source(disk, disk_bytes(disk))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            src.seen_headers.append(dict(self.headers.items()))
            if self.path != "/disk.vmdk":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(src.data)))
            self.end_headers()
            self.wfile.write(src.data)

        def log_message(self, *args):
            pass

    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    secure = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    cert, key = generate_self_signed(tmp_path_factory.mktemp("pull-cert"), "pull-source")
    secure.socket = server_context(cert, key).wrap_socket(secure.socket, server_side=True)
    src.http_url = f"http://127.0.0.1:{plain.server_address[1]}/disk.vmdk"
    src.https_url = f"https://127.0.0.1:{secure.server_address[1]}/disk.vmdk"
    src.https_thumbprint = thumbprint(cert.read_bytes())
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
               for s in (plain, secure)]
    for t in threads:
        t.start()
    yield src
    for s in (plain, secure):
        s.shutdown()
        s.server_close()


def pull_files(lease, url, **kw):
    info = lease.info
    return [vim.HttpNfcLease.SourceFile(targetDeviceId=d.importKey, url=url, create=False, **kw)
            for d in info.deviceUrl]


def test_pull_from_http_source(si, source):
    imp = ready_import(si, [source.disk.capacity])
    lease = imp.lease
    assert lease.capabilities.pullModeSupported is True
    assert lease.mode == "pushOrGet"
    before = len(source.seen_headers)
    files = pull_files(lease, source.http_url, httpHeaders=[vim.KeyValue(key="X-Nfclease-Test", value="pull-1")])
    info = wait_task(lease.HttpNfcLeasePullFromUrls_Task(files))
    assert info.state == "success", info.error
    assert lease.mode == "pull"
    assert source.seen_headers[before].get("X-Nfclease-Test") == "pull-1"  # httpHeaders honoured
    (entry,) = lease.HttpNfcLeaseGetManifest()
    assert entry.sha1 == hashlib.sha1(source.data).hexdigest() == source.disk.sha1
    assert entry.size == len(source.data)
    lease.HttpNfcLeaseComplete()
    assert wait_task(lease_task(si, find_vm(si, imp.package.name), "ResourcePool.ImportVAppLRO")).state == "success"


@pytest.mark.parametrize("count", [0, 2])
def test_pull_with_wrong_file_count_is_invalid_argument(si, source, count):
    lease = ready_import(si).lease
    key = lease.info.deviceUrl[0].importKey
    files = [vim.HttpNfcLease.SourceFile(targetDeviceId=key, url=source.http_url, create=False)] * count
    with pytest.raises(vmodl.fault.InvalidArgument):
        lease.HttpNfcLeasePullFromUrls_Task(files)
    assert lease.mode == "pushOrGet"
    lease.HttpNfcLeaseAbort()


def test_pull_from_unreachable_source_fails_with_http_fault(si):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lease = ready_import(si).lease
    info = wait_task(lease.HttpNfcLeasePullFromUrls_Task(pull_files(lease, f"http://127.0.0.1:{port}/x.vmdk")))
    assert info.state == "error"
    assert isinstance(info.error, vim.fault.HttpFault)
    lease.HttpNfcLeaseAbort()


def test_pull_https_without_thumbprint_is_ssl_verify_fault(si, source):
    lease = ready_import(si, [source.disk.capacity]).lease
    info = wait_task(lease.HttpNfcLeasePullFromUrls_Task(pull_files(lease, source.https_url)))
    assert info.state == "error"
    assert isinstance(info.error, vim.fault.SSLVerifyFault)
    assert info.error.thumbprint == source.https_thumbprint
    # the client retries with the thumbprint the fault carried
    info = wait_task(lease.HttpNfcLeasePullFromUrls_Task(
        pull_files(lease, source.https_url, sslThumbprint=info.error.thumbprint)))
    assert info.state == "success", info.error
    (entry,) = lease.HttpNfcLeaseGetManifest()
    assert entry.sha1 == source.disk.sha1
    lease.HttpNfcLeaseComplete()


def test_pull_https_with_wrong_thumbprint_is_ssl_verify_fault(si, source):
    lease = ready_import(si, [source.disk.capacity]).lease
    wrong = ":".join(["AB"] * 20)
    info = wait_task(lease.HttpNfcLeasePullFromUrls_Task(pull_files(lease, source.https_url, sslThumbprint=wrong)))
    assert info.state == "error"
    assert isinstance(info.error, vim.fault.SSLVerifyFault)
    assert info.error.thumbprint == source.https_thumbprint
    lease.HttpNfcLeaseAbort()


def test_pull_on_aborted_lease_is_invalid_state(si, source):
    lease = ready_import(si).lease
    files = pull_files(lease, source.http_url)
    lease.HttpNfcLeaseAbort()
    with pytest.raises(vim.fault.InvalidState):
        lease.HttpNfcLeasePullFromUrls_Task(files)


# -- covered VMs are blocked while the lease is held --------------------------------------------

def test_power_destroy_relocate_refused_while_export_held(si):
    vm = find_vm(si, "DC0_C0_RP0_VM3")
    hosts = find(si, "DC0/host/DC0_C0").host
    home = vm.runtime.host
    other = next(h for h in hosts if h != home)
    lease = vm.ExportVm()
    with pytest.raises(vim.fault.TaskInProgress):  # already while initializing
        vm.PowerOnVM_Task()
    wait_ready(lease)
    with pytest.raises(vim.fault.TaskInProgress):
        vm.PowerOnVM_Task()
    with pytest.raises(vim.fault.TaskInProgress):
        vm.Destroy_Task()
    with pytest.raises(vim.fault.TaskInProgress):
        vm.RelocateVM_Task(spec=vim.vm.RelocateSpec(host=other))
    with pytest.raises((vim.fault.TaskInProgress, vim.fault.InvalidState)):
        vm.ExportVm()  # a second lease on a busy VM
    assert vm.runtime.powerState == "poweredOff" and vm.runtime.host == home
    assert find_vm(si, "DC0_C0_RP0_VM3") == vm

    lease.HttpNfcLeaseComplete()
    assert wait_task(vm.RelocateVM_Task(spec=vim.vm.RelocateSpec(host=other))).state == "success"
    assert vm.runtime.host == other
    assert wait_task(vm.RelocateVM_Task(spec=vim.vm.RelocateSpec(host=home))).state == "success"
    assert wait_task(vm.PowerOnVM_Task()).state == "success"
    assert vm.runtime.powerState == "poweredOn"
    try:
        with pytest.raises(vim.fault.InvalidPowerState):
            vm.ExportVm()
    finally:
        assert wait_task(vm.PowerOffVM_Task()).state == "success"


def test_power_on_allowed_after_error(si):
    vm = find_vm(si, "DC0_C0_RP0_VM2")
    lease = vm.ExportVm()
    wait_ready(lease)
    with pytest.raises(vim.fault.TaskInProgress):
        vm.PowerOnVM_Task()
    lease.HttpNfcLeaseAbort()
    assert wait_task(vm.PowerOnVM_Task()).state == "success"
    assert wait_task(vm.PowerOffVM_Task()).state == "success"


def test_imported_vm_blocked_while_held_destroyable_after_done(si):
    imp = ready_import(si)
    vm = find_vm(si, imp.package.name)
    for operation in (vm.PowerOnVM_Task, vm.Destroy_Task):
        with pytest.raises(vim.fault.TaskInProgress):
            operation()
    imp.lease.HttpNfcLeaseComplete()
    assert wait_task(vm.Destroy_Task()).state == "success"
    assert find_vm(si, imp.package.name) is None


# -- sessions -------------------------------------------------------------------------------------

def test_lease_of_another_session_is_not_found(si, sim):
    lease = ready_import(si).lease
    other = connect(sim, user="someone-else", pwd="x")
    try:
        foreign = vim.HttpNfcLease(lease._moId, other._stub)
        with pytest.raises(vmodl.fault.ManagedObjectNotFound):
            foreign.HttpNfcLeaseProgress(10)
        with pytest.raises(vmodl.fault.ManagedObjectNotFound):
            foreign.HttpNfcLeaseComplete()
        with pytest.raises(vmodl.fault.ManagedObjectNotFound):
            foreign.state  # noqa: B018
    finally:
        Disconnect(other)
    assert lease.state == "ready"  # untouched by the other session
    lease.HttpNfcLeaseAbort()


# -- OVF descriptors --------------------------------------------------------------------------------

def _broken_descriptors() -> dict[str, str]:
    good = build_import_ovf([1 * MiB], name="broken").descriptor
    file_line = next(line for line in good.splitlines() if "<File " in line)
    return {
        "not-xml": good[: len(good) // 2],
        "not-an-envelope": "<?xml version='1.0'?><Catalog/>",
        "no-virtual-system": good.split("<VirtualSystem")[0] + "</Envelope>",
        "disk-without-file": good.replace(file_line, ""),
        "bad-capacity": good.replace(f'ovf:capacity="{1 * MiB}"', 'ovf:capacity="lots"'),
    }


@pytest.mark.parametrize("case", sorted(_broken_descriptors()))
def test_broken_descriptor_gets_errors_not_a_spec(si, case):
    descriptor = _broken_descriptors()[case]
    pool = find(si, "DC0/host/DC0_C0/Resources")
    datastore = find(si, "DC0").datastore[0]
    result = si.content.ovfManager.CreateImportSpec(descriptor, pool, datastore,
                                                    vim.OvfManager.CreateImportSpecParams(entityName="broken"))
    assert result.error, f"{case}: no error reported"
    assert all(isinstance(e, vim.fault.OvfFault) and e.msg for e in result.error)
    assert result.importSpec is None


# -- older API versions -------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["6.5", "4.1"])
def old_sim(request) -> Iterator[Simulator]:
    with Simulator(SimConfig(lease_timeout=2, init_seconds=0.05, api_version=request.param)) as running:
        yield running


def test_old_api_version_has_no_67_lease_members(old_sim):
    version = old_sim.config.api_version
    si = connect(old_sim)
    try:
        assert VmomiSupport.versionIdMap[si._stub.version] == version  # pyvmomi negotiated it
        assert si.content.about.apiVersion == version
        vm = find_vm(si, "DC0_C0_RP0_VM0")
        lease = vm.ExportVm()
        info = wait_ready(lease)
        pc = si.content.propertyCollector

        def retrieve(**prop):
            spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=lease)],
                                 propSet=[PC.PropertySpec(type=vim.HttpNfcLease, **prop)])
            return pc.RetrieveContents([spec])

        (content,) = retrieve(all=True)
        assert {p.name for p in content.propSet} == {"state", "initializeProgress", "info"}
        for member in ("transferProgress", "mode", "capabilities"):
            with pytest.raises(vmodl.query.InvalidProperty):  # the server says so, not just pyvmomi
                retrieve(pathSet=[member])
        # methods added in 6.7: refused by the server (raw SOAP, so pyvmomi cannot pre-empt it)
        cookie = soap_login(old_sim, version)
        for method in ("HttpNfcLeaseSetManifestChecksumType", "HttpNfcLeasePullFromUrls_Task"):
            reply = soap_post(old_sim, envelope(method, "HttpNfcLease", "x"), cookie, version)
            assert reply.status == 500
            assert soap_fault(reply)[0] == "MethodNotFound"
        with pytest.raises(vmodl.fault.MethodNotFound):
            lease.HttpNfcLeaseSetManifestChecksumType([])
        # GetManifest is 4.1: there in both
        got = download(old_sim, info.deviceUrl[0].url, keep=False)
        (entry,) = lease.HttpNfcLeaseGetManifest()
        assert entry.sha1 == got.sha1
        lease.HttpNfcLeaseComplete()
        assert lease.state == "done"
    finally:
        Disconnect(si)


# -- ESXi-style device URLs ----------------------------------------------------------------------------

def test_star_hosts_are_replaced_by_the_client():
    with Simulator(SimConfig(lease_timeout=2, init_seconds=0.05, star_hosts=True)) as star:
        si = connect(star)
        try:
            imp = ready_import(si)
            (url,) = imp.lease.info.deviceUrl
            parts = urlsplit(url.url)
            assert parts.hostname == "*" and parts.port == star.port
            assert url.sslThumbprint == star.thumbprint
            replaced = nfc_url(star, url.url)
            assert urlsplit(replaced).netloc == f"127.0.0.1:{star.port}"
            disk = StreamOptimizedDisk(1 * MiB, "sequence")
            assert upload_disk(star, replaced, disk).status == 200
            (entry,) = imp.lease.HttpNfcLeaseGetManifest()
            assert entry.sha1 == disk.sha1
            imp.lease.HttpNfcLeaseComplete()
        finally:
            Disconnect(si)


# -- NFC HTTP ----------------------------------------------------------------------------------------------

@pytest.fixture
def nfc_import(si):
    """A ready import lease with one disk and one non-disk file; aborted afterwards if still held."""
    imp = ready_import(si, [1 * MiB], [32])
    info = imp.lease.info
    disk = next(u for u in info.deviceUrl if u.disk)
    file = next(u for u in info.deviceUrl if not u.disk)
    yield imp.lease, disk.url, file.url
    if imp.lease.state == "ready":
        imp.lease.HttpNfcLeaseAbort()


def test_non_vmdk_disk_body_is_400_with_a_message(sim, nfc_import):
    lease, disk_url, _ = nfc_import
    reply = nfc_request(sim, "POST", disk_url, b"this is not a VMDK" * 100, {"Content-Type": STREAM_VMDK})
    assert reply.status == 400
    assert b"not a streamOptimized VMDK" in reply.body


def test_post_to_a_non_disk_device_is_405(sim, nfc_import):
    _, _, file_url = nfc_import
    reply = nfc_request(sim, "POST", file_url, b"x" * 32, {"Content-Type": "application/octet-stream"})
    assert reply.status == 405
    assert b"PUT" in reply.body


def test_put_of_a_file_then_overwrite(sim, nfc_import):
    _, _, file_url = nfc_import
    assert upload_file(sim, file_url, b"a" * 32).status == 201
    assert upload_file(sim, file_url, b"b" * 32).status == 200
    reply = nfc_request(sim, "PUT", file_url, b"c" * 32)  # no Overwrite: t on an existing file
    assert reply.status == 412


def test_missing_content_length_is_411(sim, nfc_import):
    _, disk_url, _ = nfc_import
    reply = nfc_request(sim, "POST", disk_url, None, {"Content-Type": STREAM_VMDK})
    assert reply.status == 411 and reply.body
    reply = nfc_request(sim, "POST", disk_url, None,
                        {"Content-Type": STREAM_VMDK, "Transfer-Encoding": "gzip", "Content-Length": None})
    assert reply.status == 400 and b"gzip" in reply.body


def test_upload_after_complete_is_403(si, sim):
    imp = ready_import(si)
    url = imp.lease.info.deviceUrl[0].url
    imp.lease.HttpNfcLeaseComplete()
    reply = upload_disk(sim, url, StreamOptimizedDisk(1 * MiB, "zero"))
    assert reply.status == 403 and b"done" in reply.body


def test_download_after_complete_is_403(si, sim):
    lease = find_vm(si, "DC0_C0_RP0_VM0").ExportVm()
    url = wait_ready(lease).deviceUrl[0].url
    lease.HttpNfcLeaseComplete()
    assert download(sim, url).status == 403


def test_unknown_ticket_is_404(sim, nfc_import):
    _, disk_url, _ = nfc_import
    base = urlsplit(nfc_url(sim, disk_url))
    bogus = base._replace(path="/nfc/" + "A" * 32 + "/disk-0.vmdk").geturl()
    assert upload_disk(sim, bogus, StreamOptimizedDisk(1 * MiB, "zero")).status == 404
    assert download(sim, bogus).status == 404
    wrong_device = base._replace(path=base.path.rsplit("/", 1)[0] + "/disk-9.vmdk").geturl()
    assert nfc_request(sim, "POST", wrong_device, b"", {"Content-Type": STREAM_VMDK}).status == 404


def test_wrong_direction_is_405(si, sim, nfc_import):
    _, disk_url, _ = nfc_import
    assert download(sim, disk_url).status == 405  # GET on an import lease
    lease = find_vm(si, "DC0_C0_RP0_VM0").ExportVm()
    url = wait_ready(lease).deviceUrl[0].url
    assert upload_disk(sim, url, StreamOptimizedDisk(1 * MiB, "zero")).status == 405
    lease.HttpNfcLeaseComplete()


def test_keep_alive_two_requests_on_one_connection(sim, nfc_import):
    lease, disk_url, file_url = nfc_import
    conn = nfc_connection(sim)
    try:
        first = upload_file(sim, file_url, b"1" * 32, conn=conn)
        sock = conn.sock
        assert first.status == 201 and sock is not None
        assert (first.headers.get("Connection") or "").lower() != "close"
        disk = StreamOptimizedDisk(1 * MiB, "random")
        second = upload_disk(sim, disk_url, disk, conn=conn)
        assert second.status == 200
        assert conn.sock is sock  # the same TCP connection served both
        # and a refused request does not break it either (small body drained)
        third = nfc_request(sim, "POST", file_url, b"x" * 32, {"Content-Type": "application/octet-stream"},
                            conn=conn)
        assert third.status == 405 and conn.sock is sock
    finally:
        conn.close()
    manifest = {e.disk: e for e in lease.HttpNfcLeaseGetManifest()}
    assert manifest[True].sha1 == disk.sha1


def test_expect_100_continue_refusal_comes_before_the_body(sim, nfc_import):
    """A refused upload with ``Expect: 100-continue`` gets its final status, not 100, so no body is sent."""
    _, disk_url, _ = nfc_import
    bogus = urlsplit(nfc_url(sim, disk_url))._replace(path="/nfc/unknown-ticket/disk-0.vmdk")
    raw = socket.create_connection(("127.0.0.1", sim.port), timeout=10)
    with ssl_context(sim).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall((f"POST {bogus.path} HTTP/1.1\r\nHost: 127.0.0.1:{sim.port}\r\n"
                     f"Content-Type: {STREAM_VMDK}\r\nContent-Length: 1048576\r\n"
                     "Expect: 100-continue\r\n\r\n").encode())
        status_line = tls.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 404"), status_line
