"""Faults mid-run (a dropped connection, a stalled upload, a lease timing out while uploading) each end
as a categorised target error in ``load.json``, the lease aborted with a fault saying why, and the run
going on; nothing is left behind. The simulator's client lab injects the fault and records the
sessions; ``nfclease judge-client`` grades our own client from that record, independently."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from lab import inspect, nfclease, start_lab_sim
from nfclease import child

pytestmark = pytest.mark.slow

# scenario -> (error categories expected in load.json, seconds of load)
FAULTS = {
    "eof-upload": ({"Upload net."}, "5s"),
    "stall": ({"Upload net."}, "11s"),
    "timeout-mid-transfer": ({"Upload http.403"}, "5s"),
}


@pytest.mark.parametrize("scenario", sorted(FAULTS))
def test_a_fault_mid_upload_is_a_categorised_error_the_lease_aborted_the_run_going_on(
        tmp_path: Path, scenario: str) -> None:
    expected, duration = FAULTS[scenario]
    record = tmp_path / "record"
    lab = start_lab_sim("--scenario", scenario, "--record", str(record))
    try:
        run_id = f"fault-{uuid.uuid4().hex[:6]}"
        proc = nfclease(lab, "load", "--target", lab.target, "--scenario", "import-upload", "--users", "1",
                        "--duration", duration, "--disk-mib", "2", "--report", str(tmp_path / "load"),
                        run_id=run_id, timeout=180)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        figures = json.loads((tmp_path / "load" / "load.json").read_text())["aggregate"]
        errors = figures["errors"]
        for category in expected:
            assert any(name.startswith(category) for name in errors), errors
        assert figures["transfers_failed"] >= 2 and figures["leases_acquired"] >= 2, figures  # it went on
        aborts = figures["soap_latency_ms"].get("HttpNfcLeaseAbort", {}).get("count", 0)
        assert aborts == figures["leases_acquired"], figures  # every failed lease was aborted
        seen = inspect(lab)
        assert seen.named(f"nfclease-{run_id}-") == [] and seen.running == []
    finally:
        child.stop(lab.proc, 10)
    sessions = sorted(str(p) for p in record.glob("session-*.jsonl"))
    judged = nfclease(lab, "judge-client", *sessions, "--json", str(tmp_path / "judged.json"))
    verdicts = {r["clause"]: r["status"] for r in json.loads((tmp_path / "judged.json").read_text())}
    assert verdicts.get("client.abort-fault") == "PASS", judged.stdout[-3000:]
    assert "FAIL" not in verdicts.values(), judged.stdout[-3000:]
