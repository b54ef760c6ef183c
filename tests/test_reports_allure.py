"""Allure results written from a conformance record carry the same verdicts."""

from __future__ import annotations

import json
from pathlib import Path

from reports.allure import write_allure

RESULTS = [
    {"clause": "complete.done", "level": "MUST", "status": "PASS", "message": "3 checks", "repro": None},
    {"clause": "complete.repeat", "level": "MUST", "status": "FAIL", "message": "expected InvalidState, got ok",
     "repro": "state = Machine()\nstate.complete(lease=l1)\nstate.complete(lease=l1)"},
    {"clause": "checksum.type", "level": "MUST", "status": "NA", "message": "API 6.5 < 6.7", "repro": None},
    {"clause": "lock.power-on", "level": "MUST", "status": "XFAIL", "message": "vcsim does not lock", "repro": "x"},
]


def test_one_allure_result_per_clause_with_mapped_status(tmp_path: Path) -> None:
    write_allure(tmp_path, RESULTS, {"target": "https://127.0.0.1:8989/sdk"})
    written = [json.loads(p.read_text()) for p in tmp_path.glob("*-result.json")]
    by_name = {r["name"]: r for r in written}
    assert set(by_name) == {r["clause"] for r in RESULTS}
    assert by_name["complete.done"]["status"] == "passed"
    assert by_name["complete.repeat"]["status"] == "failed"
    assert "state.complete(lease=l1)" in by_name["complete.repeat"]["statusDetails"]["trace"]
    assert by_name["checksum.type"]["status"] == "skipped"
    assert by_name["lock.power-on"]["statusDetails"]["known"] is True
    labels = {(l["name"], l["value"]) for l in by_name["complete.repeat"]["labels"]}
    assert ("feature", "complete") in labels and ("severity", "critical") in labels
    assert ("suite", "https://127.0.0.1:8989/sdk") in labels
