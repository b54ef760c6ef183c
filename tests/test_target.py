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
    with pytest.raises(ValueError):
        TargetSpec.parse("ftp://vc/sdk", env={})


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
    assert set(acquire.value) == {"moid", "entity", "task"} and acquire.value["moid"] == session.moid
    wait = seen[1]
    assert wait.args == {"timeout": 10} and wait.value == ready
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
