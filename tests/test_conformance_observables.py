"""Values the spec or FIELD-NOTES fix, checked on every event that carries them (conformance/observables.py).

Each test feeds the model what a wrong server would answer -- the deviations
``nfclease selftest`` switches on in the simulator -- and what a right one
answers: the first must FAIL the named clause, the second must not.
"""

from __future__ import annotations

from typing import Any

import pytest

from test_conformance_model import IMPORT_KEY, KEY, SHA1, Script, no_fails, status, verdicts

SOURCE_THUMB = "06:00:99:E7:B9:0C:B5:94:A8:F2:A5:12:54:37:99:FD:63:B2:43:3A"


def _import(s: Script, *, pull: bool = True) -> None:
    s.acquire("import", entity="vm-9")
    s.read("ready", kind="import", pull=pull, entity="vm-9")


@pytest.mark.parametrize("value, ok", [
    ({"status": 201, "bytes": 512, "sha1": SHA1}, True),
    ({"status": 204, "bytes": 512, "sha1": SHA1}, False),  # upload_status_204
    ({"status": 200, "bytes": 0, "sha1": SHA1}, False),  # expect_continue_final_first: body never read
])
def test_an_upload_succeeds_only_as_200_or_201_after_its_whole_body(value: dict[str, Any], ok: bool) -> None:
    s = Script()
    _import(s)
    s.call("Upload", args={"device": IMPORT_KEY, "variant": "whole", "size": 512}, value=value)
    assert status(verdicts(s.events), "transfer.upload") == ("PASS" if ok else "FAIL")


def test_an_import_manifest_must_list_every_device_whose_bytes_were_uploaded() -> None:
    s = Script()
    _import(s)
    s.call("Upload", args={"device": IMPORT_KEY, "variant": "whole", "size": 512},
           value={"status": 200, "bytes": 512, "sha1": SHA1})
    s.call("GetManifest", value=[])  # manifest_missing_entry
    v = verdicts(s.events)
    assert status(v, "manifest.entries") == "FAIL"
    assert "no entry for keys whose bytes were transferred" in v["manifest.entries"].message


@pytest.mark.parametrize("kind, claimed, outcome", [
    ("import", False, {"value": {"state": "success", "error": None}}),  # claims no pull, yet pulls
    ("export-vm", True, {"fault": "vim.fault.InvalidState"}),  # claims pull, yet refuses it
])
def test_capabilities_must_say_what_pull_from_urls_does(kind: str, claimed: bool, outcome: dict[str, Any]) -> None:
    s = Script()
    s.acquire(kind, entity="vm-9")
    s.read("ready", kind=kind, pull=claimed, entity="vm-9")
    s.call("PullFromUrls", args={"variant": "good", "files": [{"targetDeviceId": IMPORT_KEY, "url": "x"}]},
           **outcome)
    v = verdicts(s.events)
    assert status(v, "pull.capabilities") == "FAIL"
    assert "pullModeSupported is" in v["pull.capabilities"].message


def test_an_export_that_truthfully_refuses_pull_passes() -> None:
    s = Script()
    s.ready_export()
    s.call("PullFromUrls", args={"variant": "good", "files": [{"targetDeviceId": KEY, "url": "x"}]},
           fault="vim.fault.InvalidState")
    v = verdicts(s.events)
    no_fails(v)


@pytest.mark.parametrize("error, verdict", [
    ({"fault": "vim.fault.SSLVerifyFault", "message": "untrusted", "thumbprint": SOURCE_THUMB.lower()}, "PASS"),
    ({"fault": "vim.fault.SSLVerifyFault", "message": "untrusted", "thumbprint": ""}, "FAIL"),
    ({"fault": "vim.fault.HttpFault", "message": "refused"}, "FAIL"),
    (None, "FAIL"),  # pull_ssl_unverified: the task succeeded
])
def test_an_untrusted_pull_source_must_fail_with_ssl_verify_naming_its_certificate(error: Any, verdict: str) -> None:
    s = Script()
    _import(s)
    files = [{"targetDeviceId": IMPORT_KEY, "url": "https://127.0.0.1:1/src.vmdk", "served_thumbprint": SOURCE_THUMB}]
    s.call("PullFromUrls", args={"variant": "untrusted", "files": files},
           value={"state": "error" if error else "success", "error": error})
    assert status(verdicts(s.events), "pull.ssl-verify") == verdict


def test_a_fault_without_a_message_fails_faults_declared() -> None:
    s = Script()
    s.ready_export()
    s.call("Complete")
    s.call("Complete", fault="vim.fault.InvalidState", message="")  # fault_message_missing
    v = verdicts(s.events)
    assert status(v, "faults.declared") == "FAIL" and "carries no message" in v["faults.declared"].message


def test_a_transfer_the_client_refused_for_a_thumbprint_mismatch_fails_transfer_thumbprint_only() -> None:
    s = Script()
    s.ready_export()
    s.call("Download", args={"device": KEY}, fault="client.ThumbprintMismatch",
           message="the certificate served at https://127.0.0.1:1 does not have the lease's sslThumbprint AA:BB:CC")
    s.call("Complete")  # the lease was untouched: still ready, Complete works
    v = verdicts(s.events)
    assert status(v, "transfer.thumbprint") == "FAIL"
    assert [c for c, r in v.items() if r.status == "FAIL"] == ["transfer.thumbprint"]


def test_disk_device_urls_carry_no_file_size_and_manifest_disk_flags_match_them() -> None:
    s = Script()
    s.ready_export()
    s.call("GetManifest", value=[{"key": KEY, "sha1": "", "size": 0, "disk": False}])  # manifest_disk_flag_wrong
    v = verdicts(s.events)
    assert status(v, "manifest.entries") == "FAIL" and "disk flag" in v["manifest.entries"].message
    sized = Script()
    sized.acquire()
    event = sized.read("ready")
    event.value["info"]["deviceUrl"][0]["fileSize"] = 4 << 20  # disk_file_size
    v = verdicts(sized.events)
    assert status(v, "state.ready-info") == "FAIL" and "carry a fileSize" in v["state.ready-info"].message
