"""The reference model, judged on hand-built event sequences (no target).

Each test writes the events a session would emit -- with explicit monotonic
times, so expiry verdicts are exact -- and asserts the clause verdicts. The
catalogue, the table and the generated CLAUSES.md are checked here too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nfclease.conformance import table as T
from nfclease.conformance.clauses import BY_ID, CLAUSES, NOTES, SPEC
from nfclease.conformance.expectations import (
    Expectation,
    ExpectationError,
    apply_expectations,
    load_expectations,
    parse_expectations,
)
from nfclease.conformance.gen_clauses import OUTPUT, render
from nfclease.conformance.model import Model
from nfclease.conformance.offline import check_history
from nfclease.conformance.vmodl import declared_faults, method_since
from nfclease.events import Event, EventStream, HistoryWriter

SPEC_DIR = Path(__file__).resolve().parents[1] / "conformance" / "spec"
KEY = "/vm-1/VirtualLsiLogicController0:0/disk-0"
IMPORT_KEY = "/VM0/disk-0"
SHA1 = "ab" * 20
SHA256 = "cd" * 32

ISSUE_IDS = """state.initial state.init-progress state.ready-info state.error-property state.task-running
timeout.expires timeout.renewed timeout.faults progress.accepted progress.transfer-progress progress.range
complete.done complete.repeat abort.error abort.fault-reported abort.repeat abort.after-complete
release.transfers import.cleanup lock.power-on lock.destroy lock.migrate manifest.entries manifest.state
checksum.type checksum.invalid checksum.state pull.capabilities pull.transfer pull.count pull.http-fault
pull.state transfer.upload transfer.download transfer.thumbprint faults.declared""".split()


# --------------------------------------------------------------- builders
class Script:
    """Builds events the way a LeaseSession would emit them, on a fake monotonic clock."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.events: list[Event] = []

    def call(self, call: str, lease: str | None = "L1", args: dict[str, Any] | None = None, *,
             value: Any = None, fault: str | None = None, outcome: str | None = None,
             message: str | None = None, duration: float = 0.01) -> Event:
        outcome = outcome or ("fail" if fault else "ok")
        if fault and message is None and outcome == "fail":
            message = f"{fault.rsplit('.', 1)[-1]}: refused"
        e = Event(call=call, lease=lease, args=args or {}, outcome=outcome, value=value, fault=fault,
                  message=message, start=self.t, end=self.t + duration, seq=len(self.events) + 1)
        self.t += duration + 0.001
        self.events.append(e)
        return e

    def sleep(self, seconds: float) -> None:
        self.call("Sleep", None, {"seconds": seconds}, duration=seconds)

    # the usual calls
    def acquire(self, kind: str = "export-vm", lease: str = "L1", entity: str = "vm-1") -> None:
        args = {"kind": kind, "entity": "DC0/vm/DC0_C0_RP0_VM0" if kind != "import" else "DC0/host/DC0_C0/Resources",
                "disks": 1}
        self.call("Acquire", lease, args, value={"moid": f"session[x]{lease}", "entity": entity, "task": "task-1"})

    def read(self, state: str = "ready", lease: str = "L1", *, kind: str = "export-vm", tp: int = 0,
             error: str | None = None, timeout: int = 2, mode: str = "pushOrGet", pull: bool = False,
             entity: str = "vm-1", info: bool | None = None, v67: bool = True) -> Event:
        value: dict[str, Any] = {"state": state, "initializeProgress": 100 if state != "initializing" else 10,
                                 "error": error}
        if v67:
            value.update(transferProgress=tp, mode=mode,
                         capabilities={"pullModeSupported": pull, "corsSupported": False})
        if info if info is not None else state == "ready":
            device = {"key": KEY, "importKey": IMPORT_KEY if kind == "import" else "",
                      "url": "https://*/nfc/ticket/disk-0.vmdk", "sslThumbprint": "AA:BB:CC", "disk": True}
            value["info"] = {"leaseTimeout": timeout, "entity": entity, "totalDiskCapacityInKB": 1024,
                             "deviceUrl": [device]}
        return self.call("Read", lease, value=value)

    def ready_export(self, lease: str = "L1") -> None:
        self.acquire("export-vm", lease)
        self.read("ready", lease)


def verdicts(events: list[Event], api_version: str | None = "8.0", **kw: Any):
    model = Model(api_version=api_version, **kw)
    return model.feed_all(events)


def status(v, clause_id: str) -> str:
    return v[clause_id].status


def no_fails(v) -> None:
    failed = {k: x.message for k, x in v.items() if x.status == "FAIL"}
    assert not failed, failed


# ------------------------------------------------------- catalogue, table
def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.mark.skipif(not (SPEC_DIR / "HttpNfcLease.txt").exists(), reason="conformance/spec not present")
def test_every_quote_is_verbatim_in_its_document():
    docs = {SPEC: _norm((SPEC_DIR / "HttpNfcLease.txt").read_text()),
            NOTES: _norm((SPEC_DIR / "FIELD-NOTES.md").read_text())}
    for c in CLAUSES:
        assert c.sources, c.id
        for s in c.sources:
            assert _norm(s.text) in docs[s.doc], f"{c.id}: {s.text!r} is not in {s.doc}"


def test_catalogue_keeps_the_issue_ids_and_is_well_formed():
    assert set(ISSUE_IDS) <= set(BY_ID)
    assert len(BY_ID) == len(CLAUSES)
    for c in CLAUSES:
        assert c.level in ("MUST", "SHOULD")
        assert re.fullmatch(r"\d+\.\d+", c.since)
        assert c.level in c.sentence or "accepted and reported" in c.sentence or "MUST NOT" in c.sentence, c.id


def test_table_is_total_and_names_only_catalogued_clauses():
    for state in T.STATES:
        for case, call in T.CALLS.items():
            if state == T.DELETED and call.entity:
                continue
            row = T.TABLE[state][case]
            for c in row.clauses + (row.fault_clauses or ()):
                assert c in BY_ID, (state, case, c)
    covered = {c for rows in T.TABLE.values() for r in rows.values() for c in r.clauses + (r.fault_clauses or ())}
    for c in CLAUSES:
        assert c.id in covered or c.how, f"{c.id} is checked by no table row and has no model check"


def test_observe_rows_only_name_should_clauses():
    for state, rows in T.TABLE.items():
        for case, r in rows.items():
            if r.expect.observe:
                assert all(BY_ID[c].level == "SHOULD" for c in r.clauses), (state, case)


def test_declared_faults_come_from_pyvmomi():
    assert set(declared_faults("Complete")) == {"vim.fault.Timedout", "vim.fault.InvalidState"}
    assert declared_faults("Progress") == ("vim.fault.Timedout",)
    assert "vim.fault.HttpFault" in declared_faults("PullFromUrls")
    assert method_since("GetManifest") == "4.1" and method_since("PullFromUrls") == "6.7"


def test_clauses_md_is_generated_from_catalogue_and_table():
    assert OUTPUT.read_text(encoding="utf-8") == render(), "run: python -m nfclease.conformance.gen_clauses"


# ---------------------------------------------------------- happy paths
def test_a_correct_export_session_passes():
    s = Script()
    s.ready_export()
    s.call("Progress", args={"percent": 50})
    s.read("ready", tp=50)
    s.call("Download", args={"device": KEY}, value={"status": 200, "bytes": 1000, "sha1": SHA1, "thumbprint": "aa:bb:cc"})
    s.call("GetManifest", value=[{"key": KEY, "sha1": SHA1.upper(), "size": 1000, "disk": True}])
    s.call("TaskInfo", value={"state": "running", "error": None, "result": None})
    s.call("PowerOn", None, {"vm": "vm-1"}, value={"state": "error", "error": "vim.fault.InvalidState"})
    s.call("Complete")
    s.call("Complete", fault="vim.fault.InvalidState")
    s.call("Abort", fault="vim.fault.InvalidState")
    s.call("TaskInfo", value={"state": "success", "error": None, "result": None})
    s.read("done")
    s.call("Download", args={"device": KEY}, fault="http.404")
    s.call("PowerOn", None, {"vm": "vm-1"}, value={"state": "success", "error": None})
    v = verdicts(s.events)
    no_fails(v)
    for c in ("state.initial", "state.ready-info", "progress.accepted", "progress.transfer-progress",
              "transfer.download", "transfer.thumbprint", "manifest.entries", "state.task-running",
              "lock.power-on", "complete.done", "complete.repeat", "abort.after-complete",
              "release.transfers", "faults.declared", "pull.capabilities"):
        assert status(v, c) == "PASS", (c, v[c].message)
    assert status(v, "pull.transfer") == "NA"
    assert v["pull.transfer"].message == "not exercised by this run"


def test_a_correct_import_with_checksum_and_abort_passes():
    s = Script()
    s.acquire("import", entity="vm-9")
    s.read("ready", kind="import", entity="vm-9")
    s.call("SetManifestChecksumType", args={"mapping": {KEY: "sha256"}})
    s.call("Upload", args={"device": IMPORT_KEY, "variant": "whole", "size": 512},
           value={"status": 201, "bytes": 512, "sha1": SHA1, "sha256": SHA256})
    s.call("GetManifest", value=[{"key": KEY, "sha1": SHA1, "size": 512, "disk": True,
                                  "checksum": SHA256, "checksumType": "sha256"}])
    s.call("SetManifestChecksumType", args={"mapping": {"no-such-key": "sha256"}}, fault="vmodl.fault.InvalidArgument")
    s.call("Abort", args={"fault": "vim.fault.RequestCanceled"})
    s.call("TaskInfo", value={"state": "error", "error": "vim.fault.RequestCanceled", "entityExists": False})
    s.call("PowerOn", "L1", {"vm": "vm-9"}, fault="vmodl.fault.ManagedObjectNotFound")
    s.call("Abort", fault="vim.fault.InvalidState")
    s.call("SetManifestChecksumType", args={"mapping": {KEY: "sha1"}}, fault="vim.fault.InvalidState")
    v = verdicts(s.events)
    no_fails(v)
    for c in ("transfer.upload", "checksum.type", "checksum.invalid", "manifest.entries", "abort.error",
              "abort.fault-reported", "import.cleanup", "abort.repeat", "checksum.state"):
        assert status(v, c) == "PASS", (c, v[c].message)


# ------------------------------------------------------ deliberate bugs
def test_complete_twice_succeeding_fails_complete_repeat_with_expected_and_observed():
    s = Script()
    s.ready_export()
    s.call("Complete")
    s.call("Complete")
    v = verdicts(s.events)
    assert status(v, "complete.repeat") == "FAIL"
    msg = v["complete.repeat"].message
    assert "expected InvalidState" in msg and "observed ok" in msg and "#4" in msg
    repro = v["complete.repeat"].result().repro
    assert repro is not None and repro.count("L1.Complete()") == 2 and "<-- FAIL complete.repeat" in repro
    assert status(v, "complete.done") == "PASS"


def test_progress_clearly_after_the_timeout_that_succeeds_fails_timeout_expires():
    s = Script()
    s.ready_export()
    s.call("Progress", args={"percent": 10})
    s.sleep(5.0)  # leaseTimeout 2 s, tolerance 0.5 s
    s.call("Progress", args={"percent": 20})
    v = verdicts(s.events)
    assert status(v, "timeout.expires") == "FAIL"
    assert "must have expired" in v["timeout.expires"].message
    assert "observed ok" in v["timeout.expires"].message


def test_expiry_as_specified_passes_timeout_clauses():
    s = Script()
    s.ready_export()
    s.call("Progress", args={"percent": 10})
    s.sleep(5.0)
    s.call("Progress", args={"percent": 20}, fault="vim.fault.Timedout")
    s.read("error", error="vim.fault.Timedout", tp=10)
    s.call("Complete", fault="vim.fault.Timedout")
    s.call("Abort", fault="vim.fault.Timedout")
    s.call("GetManifest", fault="vim.fault.Timedout")
    s.call("TaskInfo", value={"state": "error", "error": "vim.fault.Timedout"})
    s.call("PowerOn", None, {"vm": "vm-1"}, value={"state": "success"})
    v = verdicts(s.events)
    no_fails(v)
    for c in ("timeout.expires", "timeout.faults", "timeout.task", "lock.power-on", "state.error-property"):
        assert status(v, c) == "PASS", c


def test_expired_error_must_be_timedout_and_the_object_must_remain():
    s = Script()
    s.ready_export()
    s.sleep(5.0)
    s.read("error", error="vim.fault.InvalidState")
    s.call("Complete", fault="vmodl.fault.ManagedObjectNotFound")
    v = verdicts(s.events)
    assert status(v, "timeout.expires") == "FAIL"
    assert "Timedout" in v["timeout.expires"].message
    assert status(v, "timeout.faults") == "FAIL"


@pytest.mark.parametrize("outcome", ["ok", "timedout"])
def test_inside_the_tolerance_window_either_outcome_passes_and_is_adopted(outcome):
    s = Script()
    s.ready_export()
    s.call("Progress", args={"percent": 10})
    s.sleep(1.9)  # between T - w and T + w
    if outcome == "ok":
        s.call("Progress", args={"percent": 20})
        s.call("Complete")  # adopted alive: Complete must now work
    else:
        s.call("Progress", args={"percent": 20}, fault="vim.fault.Timedout")
        s.call("Complete", fault="vim.fault.Timedout")  # adopted expired: no resurrection
    v = verdicts(s.events)
    no_fails(v)
    assert status(v, "timeout.expires") in ("PASS", "NA")


def test_no_resurrection_after_an_observed_expiry():
    s = Script()
    s.ready_export()
    s.sleep(1.9)
    s.call("Progress", args={"percent": 20}, fault="vim.fault.Timedout")
    s.call("Complete")
    v = verdicts(s.events)
    assert status(v, "timeout.faults") == "FAIL"


def test_an_early_expiry_fails_timeout_alive():
    s = Script()
    s.ready_export()
    s.call("Progress", args={"percent": 10})
    s.sleep(0.5)
    s.call("Progress", args={"percent": 20}, fault="vim.fault.Timedout")
    v = verdicts(s.events)
    assert status(v, "timeout.alive") == "FAIL"
    assert "must be alive" in v["timeout.alive"].message


def test_renewals_keep_the_lease_alive_and_a_server_ignoring_them_fails_timeout_renewed():
    good, bad = Script(), Script()
    for s in (good, bad):
        s.ready_export()
        for i in range(4):
            s.sleep(1.0)
            s.call("Progress", args={"percent": 10 * i})
    good.sleep(1.0)
    good.call("Progress", args={"percent": 50})
    bad.sleep(1.0)
    bad.call("Progress", args={"percent": 50}, fault="vim.fault.Timedout")
    ok, broken = verdicts(good.events), verdicts(bad.events)
    no_fails(ok)
    assert status(ok, "timeout.renewed") == "PASS"
    assert status(broken, "timeout.renewed") == "FAIL"


def test_lease_deleted_after_complete_is_an_accepted_deviation_that_must_persist():
    s = Script()
    s.ready_export()
    s.call("Complete")
    s.call("Complete", fault="vmodl.fault.ManagedObjectNotFound")
    s.call("GetManifest", fault="vmodl.fault.ManagedObjectNotFound")
    v = verdicts(s.events)
    no_fails(v)
    assert status(v, "complete.repeat") == "PASS"
    assert "ManagedObjectNotFound" in v["complete.repeat"].message
    s.call("Abort", fault="vim.fault.InvalidState")  # the object came back
    v = verdicts(s.events)
    assert status(v, "release.deleted") == "FAIL"


def test_blocked_operations_refused_while_held():
    s = Script()
    s.ready_export()
    s.call("Destroy", None, {"vm": "vm-1"}, value={"state": "success"})
    v = verdicts(s.events)
    assert status(v, "lock.destroy") == "FAIL"
    assert "ready" in v["lock.destroy"].message


def test_import_cleanup_fails_when_the_imported_vm_survives_abort():
    s = Script()
    s.acquire("import", entity="vm-9")
    s.read("ready", kind="import", entity="vm-9")
    s.call("Abort")
    s.call("PowerOn", None, {"vm": "vm-9"}, value={"state": "success"})
    v = verdicts(s.events)
    assert status(v, "import.cleanup") == "FAIL"


def test_abort_fault_must_reach_the_task():
    s = Script()
    s.ready_export()
    s.call("Abort", args={"fault": "vim.fault.RequestCanceled"})
    s.call("TaskInfo", value={"state": "error", "error": "vim.fault.Timedout"})
    v = verdicts(s.events)
    assert status(v, "abort.fault-reported") == "FAIL"


def test_undeclared_fault_or_missing_message_fails_faults_declared():
    s = Script()
    s.ready_export()
    s.call("Complete")
    s.call("Progress", args={"percent": 10}, fault="vim.fault.InvalidState")  # Progress declares only Timedout
    v = verdicts(s.events)
    assert status(v, "faults.declared") == "FAIL"
    assert "not declared by Progress" in v["faults.declared"].message
    assert status(v, "progress.after-release") == "PASS"  # observe: the outcome is reported, not judged
    assert "Progress@done -> vim.fault.InvalidState" in v["progress.after-release"].message
    s2 = Script()
    s2.ready_export()
    s2.call("Complete")
    s2.call("Complete", fault="vim.fault.InvalidState", message="")
    assert status(verdicts(s2.events), "faults.declared") == "FAIL"


def test_manifest_must_match_the_bytes_transferred():
    s = Script()
    s.ready_export()
    s.call("Download", args={"device": KEY}, value={"status": 200, "bytes": 1000, "sha1": SHA1})
    s.call("GetManifest", value=[{"key": KEY, "sha1": "00" * 20, "size": 1000, "disk": True}])
    v = verdicts(s.events)
    assert status(v, "manifest.entries") == "FAIL"
    assert "sha1" in v["manifest.entries"].message


def test_checksum_type_must_be_sha256_after_asking_for_it():
    s = Script()
    s.ready_export()
    s.call("SetManifestChecksumType", args={"mapping": {KEY: "sha256"}})
    s.call("GetManifest", value=[{"key": KEY, "sha1": SHA1, "size": 1, "disk": True, "checksumType": "sha1",
                                  "checksum": SHA1}])
    assert status(verdicts(s.events), "checksum.type") == "FAIL"


def test_error_property_set_iff_error_and_first_read_never_done():
    s = Script()
    s.acquire()
    s.read("done")
    s.read("done", error="vim.fault.Timedout")
    v = verdicts(s.events)
    assert status(v, "state.initial") == "FAIL"
    assert status(v, "state.error-property") == "FAIL"


def test_out_of_range_progress_accepted_fails_the_should_clause():
    s = Script()
    s.ready_export()
    s.call("Progress", args={"percent": 150})
    s.read("ready", tp=150)
    v = verdicts(s.events)
    assert status(v, "progress.range") == "FAIL" and v["progress.range"].clause.level == "SHOULD"
    assert status(v, "progress.transfer-range") != "FAIL"  # not a cascade of the SHOULD


def test_pull_mode():
    s = Script()
    s.acquire("import", entity="vm-9")
    s.read("ready", kind="import", pull=True, entity="vm-9")
    s.call("PullFromUrls", args={"variant": "unreachable", "files": [{"targetDeviceId": IMPORT_KEY, "url": "x"}]},
           value={"state": "error", "error": "vim.fault.HttpFault"})
    s.read("ready", kind="import", pull=True, entity="vm-9")
    s.call("PullFromUrls", args={"variant": "good", "files": [
        {"targetDeviceId": IMPORT_KEY, "url": "https://127.0.0.1/src.vmdk", "sha1": SHA1, "size": 64}]},
        value={"state": "success", "error": None})
    s.read("ready", kind="import", pull=True, mode="pull", entity="vm-9")
    s.call("GetManifest", value=[{"key": KEY, "sha1": SHA1, "size": 64, "disk": True}])
    v = verdicts(s.events)
    no_fails(v)
    for c in ("pull.http-fault", "pull.transfer", "pull.mode", "pull.capabilities"):
        assert status(v, c) == "PASS", (c, v[c].message)


def test_unknown_outcomes_are_never_judged():
    s = Script()
    s.ready_export()
    s.call("Complete", outcome="info", fault="net.ConnectionResetError")
    s.call("Complete", fault="vim.fault.InvalidState")  # whether the first one landed is unknown
    v = verdicts(s.events)
    no_fails(v)


# ------------------------------------------------------------ versions
def test_version_gating_makes_later_clauses_na_not_fail():
    s = Script()
    s.acquire()
    s.read("ready", v67=False)  # a 6.5 server has no transferProgress/mode/capabilities
    s.call("Progress", args={"percent": 10})
    s.read("ready", v67=False)
    s.call("SetManifestChecksumType", args={"mapping": {KEY: "sha256"}}, fault="vmodl.fault.MethodNotFound")
    v = verdicts(s.events, api_version="6.5")
    no_fails(v)
    for c in ("pull.capabilities", "progress.transfer-progress", "checksum.type", "release.invalid-state"):
        assert status(v, c) == "NA"
        assert "applies from vSphere API 6.7; the target speaks 6.5" in v[c].message
    assert status(v, "progress.accepted") == "PASS"
    # the same events on a target claiming 6.7 are a FAIL: members missing
    assert status(verdicts(s.events, api_version="6.7"), "pull.capabilities") == "FAIL"


def test_methods_newer_than_the_target_are_not_judged():
    s = Script()
    s.ready_export()
    s.call("GetManifest", fault="vmodl.fault.MethodNotFound")
    v = verdicts(s.events, api_version="4.0")
    assert status(v, "manifest.entries") == "NA"
    assert status(v, "faults.declared") == "NA"


# --------------------------------------------------------- expectations
def test_expectations_turn_fail_into_xfail_and_stale_ones_into_xpass(tmp_path):
    s = Script()
    s.ready_export()
    s.call("Complete")
    s.call("Complete")
    results = verdicts(s.events).results()
    f = tmp_path / "vendor.yaml"
    f.write_text("complete.repeat:\n  status: FAIL\n  reason: Complete twice succeeds\n  link: https://example.org/1\n"
                 "complete.done:\n  status: FAIL\n  reason: was broken in 1.0\n"
                 "pull.transfer:\n  status: NA\n  reason: no pull mode\n")
    applied = {r.clause: r for r in apply_expectations(results, load_expectations(f), str(f))}
    assert applied["complete.repeat"].status == "XFAIL"
    assert "Complete twice succeeds" in applied["complete.repeat"].message
    assert applied["complete.repeat"].repro  # the deviation stays shown
    assert applied["complete.done"].status == "XPASS"
    assert f"remove complete.done from {f}" in applied["complete.done"].message
    assert applied["pull.transfer"].status == "NA" and "no pull mode" in applied["pull.transfer"].message


def test_expectations_name_unknown_clause_ids_and_missing_reasons():
    with pytest.raises(ExpectationError, match=r"'complete.repaet' \(did you mean 'complete.repeat'\?\)"):
        parse_expectations({"complete.repaet": {"status": "FAIL", "reason": "x"}})
    with pytest.raises(ExpectationError, match="needs a reason"):
        parse_expectations({"complete.repeat": {"status": "FAIL"}})
    with pytest.raises(ExpectationError, match="status 'MAYBE'"):
        parse_expectations({"complete.repeat": {"status": "MAYBE", "reason": "x"}})
    with pytest.raises(ExpectationError, match="unknown clause ids"):
        apply_expectations([], {"nope": Expectation("nope", "FAIL", "x")})
    with pytest.raises(ExpectationError, match="no expectations file"):
        load_expectations("no-such-target")


# -------------------------------------------------------------- offline
def test_check_history_gives_the_same_verdicts_as_online(tmp_path):
    s = Script()
    s.ready_export()
    s.call("Progress", args={"percent": 10})
    s.call("Complete")
    s.call("Complete")
    s.call("Download", args={"device": KEY}, value={"status": 200, "bytes": 3, "sha1": SHA1})
    s.acquire("import", lease="L2", entity="vm-9")
    s.read("ready", "L2", kind="import", entity="vm-9")
    s.sleep(5.0)
    s.call("Progress", "L2", {"percent": 5})
    online = Model(api_version="8.0")
    history = tmp_path / "history.jsonl"
    writer = HistoryWriter(history)
    stream = EventStream([online, writer])
    for e in s.events:
        stream.emit(Event(**{**e.__dict__, "args": {**e.args, "password": "hunter2"} if e.call == "Acquire" else e.args}))
    writer.close()
    assert "hunter2" not in history.read_text()
    offline = check_history(history, api_version="8.0")
    assert [r.to_dict() for r in offline.results()] == [r.to_dict() for r in online.verdicts.results()]
    assert offline["complete.repeat"].status == "FAIL" and offline["timeout.expires"].status == "FAIL"


def test_check_history_learns_the_api_version_from_a_target_record(tmp_path):
    history = tmp_path / "h.jsonl"
    writer = HistoryWriter(history)
    writer(Event("Target", value={"api_version": "6.5"}, seq=1))
    writer.close()
    assert check_history(history).api_version == "6.5"
    assert check_history(history)["pull.mode"].status == "NA"


# ------------------------------------------------------------ properties
CALLS = ["Read", "Progress", "Complete", "Abort", "GetManifest", "TaskInfo", "Download", "PowerOn", "Sleep"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(CALLS), max_size=25))
def test_histories_of_unknown_outcomes_never_fail(calls):
    s = Script()
    s.ready_export()
    for call in calls:
        if call == "Sleep":
            s.sleep(1.5)
        else:
            lease = None if call == "PowerOn" else "L1"
            s.call(call, lease, {"vm": "vm-1"} if call == "PowerOn" else {"percent": 1} if call == "Progress" else {},
                   outcome="info", fault="net.ReadTimeout")
    no_fails(verdicts(s.events))


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.sampled_from([0.3, 1.9, 2.2, 4.0]))
def test_verdicts_depend_on_time_differences_only(offset, gap):
    def run(start: float):
        s = Script(start)
        s.ready_export()
        s.call("Progress", args={"percent": 1})
        s.sleep(gap)
        s.call("Progress", args={"percent": 2})
        s.call("Complete")
        return verdicts(s.events).statuses()

    assert run(1000.0) == run(1000.0 + offset)
