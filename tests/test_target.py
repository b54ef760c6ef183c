"""Targets and lease sessions: spec parsing, TLS policy, and real runs against vcsim.

No mocks: the vcsim tests start govmomi's simulator (``build/vcsim``, made by
``tools/build-vcsim``) and drive it with unmodified pyVmomi through
:func:`open_target` and :class:`LeaseSession`, checking the events the
contract in DEVELOPERS.md asks for.
"""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nfclease.events import Event, EventStream, HistoryWriter, read_history
from nfclease.redaction import redact
from nfclease.target import TargetSpec, make_ssl_context, normalize_thumbprint, open_target

# -- TargetSpec ---------------------------------------------------------------------

GOVC = {
    "GOVC_URL": "vc.example.com",
    "GOVC_USERNAME": "administrator@vsphere.local",
    "GOVC_PASSWORD": "s3cr3t:p@ss/word",
    "GOVC_INSECURE": "1",
    "GOVC_DATACENTER": "DC1",
    "GOVC_DATASTORE": "vsanDatastore",
    "GOVC_RESOURCE_POOL": "Cluster/Resources/rp1",
    "GOVC_FOLDER": "nfclease",
    "GOVC_HOST": "Cluster/esx1.example.com",
}


def test_sim_and_vcsim_ignore_govc_placement() -> None:
    for name in ("sim", "vcsim"):
        spec = TargetSpec.parse(name, env=GOVC)
        assert spec.kind == name
        assert spec.datacenter is None and spec.username is None and not spec.insecure
        assert spec.display_url == name


def test_default_is_govc_url_then_sim() -> None:
    assert TargetSpec.parse(None, env={}).kind == "sim"
    spec = TargetSpec.parse(None, env=GOVC)
    assert spec.kind == "url"
    assert (spec.host, spec.port, spec.path) == ("vc.example.com", 443, "/sdk")
    assert spec.username == "administrator@vsphere.local"
    assert spec.password == "s3cr3t:p@ss/word"
    assert spec.insecure is True
    assert (spec.datacenter, spec.datastore, spec.resource_pool, spec.folder, spec.esx_host) == (
        "DC1", "vsanDatastore", "Cluster/Resources/rp1", "nfclease", "Cluster/esx1.example.com")
    assert spec.url == "https://vc.example.com:443/sdk"


def test_url_credentials_win_over_env_and_are_decoded() -> None:
    spec = TargetSpec.parse("https://alice:p%40ss%3Aw@vc:8443/sdk", env=GOVC)
    assert (spec.username, spec.password, spec.port) == ("alice", "p@ss:w", 8443)
    spec = TargetSpec.parse("https://alice:pw@vc/sdk", env={}, username="bob", password="other")
    assert (spec.username, spec.password) == ("bob", "other")


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("TRUE", True), ("yes", True),
                                             ("0", False), ("false", False), ("", False)])
def test_govc_insecure(value: str, expected: bool) -> None:
    assert TargetSpec.parse("https://vc/sdk", env={"GOVC_INSECURE": value}).insecure is expected


def test_explicit_tls_options_win_over_env() -> None:
    spec = TargetSpec.parse("https://vc/sdk", env={"GOVC_INSECURE": "1", "GOVC_TLS_CA_CERTS": "/env/ca.pem"},
                            insecure=False, cafile="/my/ca.pem")
    assert spec.insecure is False and spec.cafile == "/my/ca.pem"
    assert TargetSpec.parse("https://vc/sdk", env={"GOVC_TLS_CA_CERTS": "/env/ca.pem"}).cafile == "/env/ca.pem"


def test_url_forms() -> None:
    assert TargetSpec.parse("vc.example.com:9443", env={}).url == "https://vc.example.com:9443/sdk"
    assert TargetSpec.parse("https://vc.example.com/", env={}).path == "/sdk"
    assert TargetSpec.parse("https://[::1]:8989/sdk", env={}).url == "https://[::1]:8989/sdk"
    for bad in ("ftp://vc/sdk", "http://vc/sdk"):  # the SDK is https only
        with pytest.raises(ValueError):
            TargetSpec.parse(bad, env={})


def test_password_never_in_display_url_or_repr() -> None:
    spec = TargetSpec.parse(None, env=GOVC)
    for text in (spec.display_url, str(spec), repr(spec)):
        assert "s3cr3t" not in text
    assert spec.display_url == "https://administrator%40vsphere.local:***@vc.example.com:443/sdk"


@settings(max_examples=300, deadline=None)
@given(user=st.text(min_size=1, max_size=20), password=st.text(min_size=1, max_size=30))
def test_display_url_redacts_any_password(user: str, password: str) -> None:
    spec = TargetSpec.parse("https://vc.invalid/sdk", env={}, username=user, password=password)
    shown = spec.display_url
    assert shown.endswith(":***@vc.invalid:443/sdk")
    assert "://" in shown and shown.count("***") >= 1
    assert shown.rsplit(":***@", 1)[0].count(":") == 1  # nothing of the password before the mask


def test_thumbprints() -> None:
    assert normalize_thumbprint("AB:" * 19 + "CD") == ("sha1", "ab" * 19 + "cd")
    assert normalize_thumbprint("0" * 64)[0] == "sha256"
    for bad in ("xyz", "ab:cd", "0" * 41):
        with pytest.raises(ValueError):
            normalize_thumbprint(bad)
    with pytest.raises(ValueError):
        TargetSpec.parse("https://vc/sdk", env={}, thumbprint="nope")


def test_ssl_context_policy(tmp_path: Path) -> None:
    verified = make_ssl_context()
    assert verified.verify_mode == ssl.CERT_REQUIRED and verified.check_hostname
    insecure = make_ssl_context(insecure=True)
    assert insecure.verify_mode == ssl.CERT_NONE
    pinned = make_ssl_context(thumbprint="00" * 20)
    assert pinned.verify_mode == ssl.CERT_NONE  # the pin replaces CA trust...
    assert pinned.sslsocket_class is not ssl.SSLContext.sslsocket_class  # ...and is checked at handshake


# -- OVF descriptors and outcome classification (pure) ----------------------------------

def test_import_ovf_descriptor() -> None:
    import xml.etree.ElementTree as ET

    from nfclease.ovf import build_import_ovf

    first, second = build_import_ovf([1 << 20] * 20, [8192, 100]), build_import_ovf([512])
    assert first.name != second.name and first.name.startswith("nfclease-")
    root = ET.fromstring(first.descriptor)
    ns = {"ovf": "http://schemas.dmtf.org/ovf/envelope/1",
          "rasd": "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
          "vmw": "http://www.vmware.com/schema/ovf"}
    attr = "{http://schemas.dmtf.org/ovf/envelope/1}"
    files = root.findall("ovf:References/ovf:File", ns)
    assert len(files) == 22 and len({f.get(attr + "id") for f in files}) == 22
    disks = root.findall("ovf:DiskSection/ovf:Disk", ns)
    assert [int(d.get(attr + "capacity")) for d in disks] == [1 << 20] * 20
    items = root.findall("ovf:VirtualSystem/ovf:VirtualHardwareSection/ovf:Item", ns)
    kinds = [i.findtext("rasd:ResourceType", namespaces=ns) for i in items]
    assert kinds.count("6") == 2 and kinds.count("17") == 20 and kinds.count("15") == 1  # 2 SCSI, 20 disks, 1 ISO
    units = [i.findtext("rasd:AddressOnParent", namespaces=ns) for i in items
             if i.findtext("rasd:ResourceType", namespaces=ns) == "17"]
    assert "7" not in units[:15]  # unit 7 is the SCSI controller's own
    extra = root.find("ovf:VirtualSystem/ovf:VirtualHardwareSection/vmw:ExtraConfig", ns)
    assert extra is not None and extra.get("{http://www.vmware.com/schema/ovf}key") == "nvram"
    assert first.by_href(first.files[0].href) == first.files[0]
    for bad in ([0], [1000], [-512]):
        with pytest.raises(ValueError):
            build_import_ovf(bad)


def test_outcome_classification() -> None:
    from pyVmomi import vim

    from nfclease.session import attempt, classify
    from nfclease.target import WaitTimeout
    from nfclease.transfer import NfcHttpError, NfcTransportError

    assert classify(vim.fault.InvalidState(msg="done already")) == ("fail", "vim.fault.InvalidState", "done already")
    assert classify(NfcHttpError(404, "no ticket"))[:2] == ("fail", "http.404")
    assert classify(NfcTransportError(ConnectionResetError(), request_sent=True))[:2] == (
        "info", "net.ConnectionResetError")
    assert classify(NfcTransportError(ConnectionRefusedError(), request_sent=False))[:2] == (
        "fail", "net.ConnectionRefusedError")
    assert classify(TimeoutError("read timed out"))[:2] == ("info", "net.TimeoutError")
    assert classify(WaitTimeout("still initializing"))[:2] == ("info", "client.WaitTimeout")
    with pytest.raises(RuntimeError):
        attempt(lambda: 1)  # not a session call: no event to return
    with pytest.raises(ZeroDivisionError):
        attempt(lambda: 1 / 0)  # failed before any call was recorded: propagates


# -- against vcsim ------------------------------------------------------------------

def _vcsim_available() -> bool:
    try:
        from nfclease.vcsim import find_vcsim
    except ImportError:
        return False
    return find_vcsim() is not None


needs_vcsim = pytest.mark.skipif(not _vcsim_available(), reason="no build/vcsim (run: sh tools/build-vcsim)")


@pytest.fixture
def events(tmp_path: Path) -> Iterator[tuple[EventStream, list[Event], Path]]:
    seen: list[Event] = []
    history = tmp_path / "history.jsonl"
    writer = HistoryWriter(history)
    yield EventStream([seen.append, writer]), seen, history
    writer.close()


def _check_event(event: Event) -> None:
    assert event.outcome in ("ok", "fail", "info")
    assert event.start <= event.end
    json.loads(event.to_json())  # JSON-able, as the history needs
    if event.outcome == "ok":
        assert event.fault is None
    else:
        assert event.fault and event.message and event.value is None


@pytest.mark.vcsim
@needs_vcsim
def test_vcsim_import_upload_progress_complete(events: tuple[EventStream, list[Event], Path]) -> None:
    from nfclease.session import acquire_import, attempt

    stream, seen, history = events
    with open_target("vcsim") as target:
        assert target.ssl_context.verify_mode == ssl.CERT_REQUIRED  # vcsim's certificate is trusted, not ignored
        assert target.api_version == target.about.api_version == "6.5"
        assert "vcsim" not in target.display_url and target.display_url.startswith("https://127.0.0.1:")
        placement = target.placement
        assert placement.datacenter.name == "DC0" and placement.datastore is not None

        session = acquire_import(target, stream, disks=[1 << 20, 2 << 20])
        assert session.handle == "L1"
        ready = session.wait_ready(timeout=10)
        assert ready["state"] == "ready"
        devices = ready["info"]["deviceUrl"]
        assert len(devices) == 2 and all(d["importKey"] for d in devices)
        assert any(d["url"].startswith("https://*/") for d in devices)  # vcsim is ESXi-style
        results = [session.upload(i) for i in range(len(devices))]
        assert all(r.status == 200 for r in results)
        session.progress(100)
        session.complete()
        again = attempt(session.complete)  # vcsim forgets a completed lease
        entity = ready["info"]["entity"]

    # exactly one event per call, in the vocabulary's names and shapes
    calls = [e.call for e in seen]
    assert calls == ["Acquire", "WaitReady", "Upload", "Upload", "Progress", "Complete", "Complete"]
    assert {e.lease for e in seen} == {"L1"}
    for event in seen:
        _check_event(event)
    acquire = seen[0]
    assert acquire.args["kind"] == "import" and acquire.args["disks"] == [1 << 20, 2 << 20]
    assert acquire.args["files"] == 0 and acquire.args["entity"].startswith("nfclease-")
    assert set(acquire.value) == {"moid", "entity", "task"} and acquire.value["moid"] == redact(session.moid)
    wait = seen[1]
    assert wait.args == {"timeout": 10} and wait.value == redact(ready)  # the record masks NFC tickets
    assert set(wait.value) == {"state", "initializeProgress", "error", "info"}  # 6.5: no 6.7 members
    for upload, result in zip(seen[2:4], results):
        assert upload.args["variant"] == "whole" and upload.args["size"] == result.bytes
        assert upload.value == {"status": 200, "bytes": result.bytes, "sha1": result.sha1}
    assert seen[4].args == {"percent": 100} and seen[4].value is None
    assert seen[5].outcome == "ok" and seen[5].args == {}
    assert again.event is seen[6] and again.event.outcome == "fail"
    assert again.event.fault == "vmodl.fault.ManagedObjectNotFound"
    assert [e.seq for e in seen] == sorted(e.seq for e in seen)
    assert [e.call for e in read_history(history)] == calls

    # the imported VM was destroyed when the target closed (vcsim still runs until the with ends)
    assert any(line.startswith(f"destroyed {entity}") for line in target.cleanup_log)


@pytest.mark.vcsim
@needs_vcsim
def test_vcsim_failures_become_events(events: tuple[EventStream, list[Event], Path]) -> None:
    from nfclease.session import acquire_export_vm, acquire_import, attempt

    stream, seen, _ = events
    with open_target("vcsim") as target:
        session = acquire_import(target, stream, disks=[1 << 20])
        session.wait_ready(10)
        garbage = attempt(session.upload, 0, "garbage")  # vcsim discards whatever arrives
        manifest = attempt(session.get_manifest)
        task = attempt(session.task_info)
        session.abort()
        export = attempt(acquire_export_vm, target, stream)
    assert garbage.ok and garbage.event.args["variant"] == "garbage"
    assert manifest.event.outcome == "fail" and manifest.event.fault == "vmodl.fault.MethodNotFound"
    assert task.event.outcome == "info" and task.event.fault == "client.NoTask"  # vcsim has no lease task
    assert export.result is None and export.event.call == "Acquire" and export.event.lease == "L2"
    assert export.event.fault == "vmodl.fault.MethodNotFound"
    for event in seen:
        _check_event(event)


@pytest.mark.vcsim
@needs_vcsim
def test_url_target_tls_verify_pin_and_opt_out(tmp_path: Path) -> None:
    from nfclease.vcsim import run_vcsim

    with run_vcsim() as vc:
        def spec(**tls: Any) -> TargetSpec:
            return TargetSpec.parse(vc.url, env={}, username="user", password="secret-pw", **tls)

        with open_target(spec(cafile=str(vc.cafile))) as target:
            assert target.about.api_version == "6.5"
            assert "secret-pw" not in target.display_url and ":***@" in target.display_url
        with open_target(spec(thumbprint=vc.thumbprint)) as target:
            assert target.api_version == "6.5"
        with open_target(spec(insecure=True)) as target:
            assert target.ssl_context.verify_mode == ssl.CERT_NONE
        with pytest.raises(ssl.SSLCertVerificationError):
            with open_target(spec()):  # system CAs do not know vcsim's certificate
                pass
        with pytest.raises(ssl.SSLCertVerificationError):
            with open_target(spec(thumbprint="AA:" * 19 + "AA")):
                pass


# -- against the embedded simulator ---------------------------------------------------

def _sim_available() -> bool:
    try:
        from nfclease.sim import Simulator  # noqa: F401
    except ImportError:
        return False
    return True


needs_sim = pytest.mark.skipif(not _sim_available(), reason="nfclease.sim is not importable")
SIM = {"lease_timeout": 1.0, "init_seconds": 0.2}


@needs_sim
def test_sim_import_keepalive_manifest_checksum_complete(events: tuple[EventStream, list[Event], Path]) -> None:
    from nfclease.session import acquire_import, attempt

    stream, seen, _ = events
    with open_target("sim", sim_config=SIM) as target:
        assert target.ssl_context.verify_mode == ssl.CERT_REQUIRED  # the generated CA, trusted explicitly
        session = acquire_import(target, stream, disks=[1 << 20, 2 << 20], files=1)
        ready = session.wait_ready(timeout=10)
        assert ready["state"] == "ready" and ready["initializeProgress"] == 100
        assert {"transferProgress", "mode", "capabilities"} <= set(ready)  # API 9.0 has the 6.7 members
        devices = session.device_urls()
        assert [bool(d.disk) for d in devices] == [True, True, False]
        session.set_manifest_checksum_type({devices[0].key: "sha256"})
        with session.keep_alive(interval=0.2) as keeper:
            sent = [session.upload(d, sha256=True) for d in devices]
            session.sleep(2.5)  # over twice the lease timeout: alive only because of the keepalive
            assert session.read()["state"] == "ready"
        assert keeper.error is None and keeper.calls >= 5
        blocked = attempt(session.power_on)
        manifest = {e.key: e for e in session.get_manifest()}
        session.complete()
        task = session.task_info()
        after = session.power_on()
        entity = ready["info"]["entity"]
    assert [r.status for r in sent] == [200, 200, 201]
    for device, result in zip(devices, sent):
        assert manifest[device.key].sha1 == result.sha1 and manifest[device.key].size == result.bytes
    assert manifest[devices[0].key].checksumType == "sha256"
    assert manifest[devices[0].key].checksum == sent[0].sha256
    assert blocked.event.outcome == "fail" and blocked.event.args == {"vm": entity}
    assert task.state == "success" and after.state == "success"
    assert any(line.startswith(f"destroyed {entity}") for line in target.cleanup_log)
    progress = [e for e in seen if e.call == "Progress"]
    assert len(progress) == keeper.calls and all(e.outcome == "ok" for e in progress)
    assert all(0 <= e.args["percent"] <= 100 for e in progress) and progress[-1].args["percent"] == 100
    for event in seen:
        _check_event(event)
        assert event.lease == "L1"


@needs_sim
def test_sim_export_download_then_expiry(events: tuple[EventStream, list[Event], Path]) -> None:
    from nfclease.session import acquire_export_vm, attempt

    stream, seen, _ = events
    with open_target("sim", sim_config=SIM) as target:
        session = acquire_export_vm(target, stream)
        ready = session.wait_ready(timeout=10)
        downloads = [session.download(i) for i in range(len(ready["info"]["deviceUrl"]))]
        manifest = {e.key: e for e in session.get_manifest()}
        session.sleep(3.0)  # no renewal: well past the 1 s lease timeout
        state = session.read()
        late = attempt(session.progress, 50)
        keeper = session.keep_alive(interval=0.05)
        stopped_itself = keeper.wait(10)  # the first Progress fails: it stops for good, like govmomi's
        again = attempt(session.complete)
    for device, result in zip(ready["info"]["deviceUrl"], downloads):
        assert result.status == 200
        assert manifest[device["key"]].sha1 == result.sha1 and manifest[device["key"]].size == result.bytes
    assert state["state"] == "error" and state["error"]["fault"] == "vim.fault.Timedout"
    assert late.event.outcome == "fail" and late.event.fault == "vim.fault.Timedout"
    assert again.event.fault in ("vim.fault.Timedout", "vim.fault.InvalidState")
    assert stopped_itself and keeper.calls == 0 and type(keeper.error).__name__ == "vim.fault.Timedout"
    assert [e.call for e in seen].count("Progress") == 2  # the late one and the keepalive's only try
    assert seen[0].args == {"kind": "export-vm", "disks": [], "files": 0, "entity": ready["info"]["entity"]}
    for event in seen:
        _check_event(event)


@needs_sim
def test_sim_abort_fault_reaches_task_and_import_is_removed(events: tuple[EventStream, list[Event], Path]) -> None:
    from pyVmomi import vim

    from nfclease.session import LeaseSession, acquire_import, attempt

    stream, seen, _ = events
    with open_target("sim", sim_config=SIM) as target:
        session = acquire_import(target, stream, disks=[1 << 20])
        entity = session.wait_ready(timeout=10)["info"]["entity"]
        truncated = attempt(session.upload, 0, "truncated")
        pulled = session.pull_from_urls(
            [{"targetDeviceId": session.device_urls()[0].importKey, "url": "https://127.0.0.1:1/none.vmdk",
              "create": False}], variant="unreachable", timeout=30)
        session.abort("vim.fault.NoDiskSpace")
        task = session.task_info()
        other = LeaseSession.attach(target, stream, session.moid, si=target.new_session())
        foreign = attempt(other.progress, 10)
        gone = [vm for vm in target._all(target.content.rootFolder, vim.VirtualMachine) if vm._moId == entity]
    assert truncated.event.args["variant"] == "truncated" and truncated.event.outcome in ("ok", "fail")
    assert pulled.state == "error"
    assert task.state == "error" and type(task.error).__name__ == "vim.fault.NoDiskSpace"
    assert seen[-1] is foreign.event and foreign.event.lease == "L2" and foreign.event.outcome == "fail"
    assert gone == []
    pull = next(e for e in seen if e.call == "PullFromUrls")
    assert pull.outcome == "ok" and pull.value["state"] == "error" and pull.args["variant"] == "unreachable"
    for event in seen:
        _check_event(event)
