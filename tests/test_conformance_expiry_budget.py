"""Expiry checks wherever they are cheap, and unimplemented methods judged, not NA.

Whether a run waits for leases to expire is decided from the advertised
``info.leaseTimeout`` and the profile's budget, never from the kind of target:
a URL target with a short timeout gets the timeout clauses judged by default,
and one whose timeout does not fit gets NA with the reason. A call the
target's advertised API version has, answered MethodNotFound, FAILs
``api.implemented``.
"""

from __future__ import annotations

import math

import pytest

from nfclease.conformance.explain import finalize
from nfclease.conformance.expiry import ExpiryPolicy
from nfclease.conformance.context import PROFILES, RunContext
from nfclease.conformance.sequences import run_sequences
from nfclease.conformance.model import default_tolerance
from nfclease.sim import SimConfig
from nfclease.target import open_target

from test_conformance_cli import conform
from test_conformance_model import Script, status, verdicts


def test_the_budget_decides_from_the_advertised_timeout() -> None:
    smoke = ExpiryPolicy(PROFILES["smoke"].expiry_budget, budget_source="the smoke profile's expiry budget")
    assert smoke.decide(2.0, default_tolerance).run
    vcenter = smoke.decide(300.0, default_tolerance)
    assert not vcenter.run and "leaseTimeout 300 s" in vcenter.reason and "expiry budget of 10 s" in vcenter.reason
    assert ExpiryPolicy(PROFILES["thorough"].expiry_budget).decide(300.0, default_tolerance).run
    assert ExpiryPolicy(0.0, forced=True).decide(30000.0, default_tolerance).run  # --allow-expiry
    assert not ExpiryPolicy(math.inf, forced=False).decide(1.0, default_tolerance).run
    unknown = smoke.decide(None, default_tolerance)
    assert not unknown.run and "no ready lease showed info.leaseTimeout" in unknown.reason


@pytest.mark.parametrize("budget, judged", [(20.0, True), (1.0, False)])
def test_a_url_target_gets_expiry_checked_when_it_fits_and_a_reason_when_not(budget: float, judged: bool) -> None:
    with open_target("sim", sim_config=SimConfig(lease_timeout=1.0, init_seconds=0.02,
                                                 disk_capacity=64 * 1024)) as target:
        ctx = RunContext(target, kind="url", expiry_budget=budget)  # as a vendor's server reached by URL
        try:
            run_sequences(ctx, ["import", "expiry"])
        finally:
            ctx.close()
        results = {r.clause: r for r in finalize(ctx)}
    assert not [r for r in results.values() if r.status == "FAIL"], results
    notes = " ".join(ctx.notes)
    if judged:
        for clause in ("timeout.expires", "timeout.alive", "timeout.faults"):
            assert results[clause].status == "PASS", results[clause]
        assert "expiry: checked: leaseTimeout 1 s" in notes
        assert "advertised leaseTimeout 1 s" in notes and "error at +" in notes, notes
    else:
        for clause in ("timeout.expires", "timeout.renewed", "timeout.faults"):
            assert results[clause].status == "NA"
            assert "expiry not checked: leaseTimeout 1 s" in results[clause].message, results[clause]
            assert "beyond this run's expiry budget of 1 s" in results[clause].message
        assert "expiry: skipped: leaseTimeout 1 s" in notes


def test_a_negative_expiry_budget_is_a_usage_error(tmp_path) -> None:
    proc = conform("--expiry-budget", "-1", "--report", str(tmp_path), timeout=60)
    assert proc.returncode == 2 and "--expiry-budget -1" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------- unimplemented
def test_an_acquire_answered_method_not_found_fails_api_implemented_with_a_repro() -> None:
    s = Script()
    s.call("Acquire", "L1", {"kind": "export-vm", "entity": "vm-1"}, fault="vmodl.fault.MethodNotFound")
    s.ready_export("L2")
    s.call("GetManifest", "L2", value=[])
    v = verdicts(s.events, api_version="6.5")
    assert status(v, "api.implemented") == "FAIL"
    assert "ExportVm answered vmodl.fault.MethodNotFound" in v["api.implemented"].message
    assert "L1 = Acquire(" in v["api.implemented"].repro and "<-- FAIL api.implemented" in v["api.implemented"].repro


def test_a_lease_method_answered_method_not_found_fails_and_implemented_calls_pass() -> None:
    s = Script()
    s.ready_export()
    s.call("Progress", args={"percent": 10})
    s.call("GetManifest", fault="vmodl.fault.MethodNotFound")
    v = verdicts(s.events, api_version="6.5")
    assert status(v, "api.implemented") == "FAIL" and status(v, "manifest.entries") == "FAIL"
    assert "HttpNfcLeaseGetManifest answered" in v["api.implemented"].message
    good = Script()
    good.ready_export()
    good.call("Progress", args={"percent": 10})
    assert status(verdicts(good.events, api_version="6.5"), "api.implemented") == "PASS"


def test_methods_the_advertised_version_lacks_are_not_judged_unimplemented() -> None:
    s = Script()
    s.call("Acquire", "L1", {"kind": "export-snapshot", "entity": "snap-1"}, fault="vmodl.fault.MethodNotFound")
    s.ready_export("L2")
    s.call("GetManifest", "L2", fault="vmodl.fault.MethodNotFound")
    s.call("Progress", "L2", args={"percent": 10}, fault="net.ConnectionError")
    v = verdicts(s.events, api_version="4.0")
    # ExportSnapshot is 5.5, GetManifest 4.1, and a lost Progress says nothing: only ExportVm's Acquire counts
    assert status(v, "api.implemented") == "PASS" and v["api.implemented"].passes == 1
