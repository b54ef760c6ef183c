"""Allure results written from a conformance record carry the same verdicts."""

from __future__ import annotations

import json
from pathlib import Path

from nfclease.reports.allure import write_allure

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


def test_a_run_directory_has_labels_environment_and_categories(tmp_path: Path) -> None:
    from nfclease.reports.allure import write_allure_run

    info = {"target": "https://root:hunter2@127.0.0.1:8989/sdk", "product": "vcsim", "version": "6.5.0",
            "build": "5973321", "api_version": "6.5", "profile": "ci", "seed": 3}
    write_allure_run(tmp_path, RESULTS, info)
    written = {r["name"]: r for r in (json.loads(p.read_text()) for p in tmp_path.glob("*-result.json"))}
    labels = {(l["name"], l["value"]) for l in written["complete.repeat"]["labels"]}
    assert {("clause", "complete.repeat"), ("level", "MUST"), ("api_version", "6.5")} <= labels
    assert ("target", "https://root:***@127.0.0.1:8989/sdk") in labels
    environment = (tmp_path / "environment.properties").read_text()
    assert "product=vcsim" in environment and "build=5973321" in environment and "suite=nfclease " in environment
    categories = [c["name"] for c in json.loads((tmp_path / "categories.json").read_text())]
    assert categories[0].startswith("Target errors") and "Conformance violations" in categories
    assert "Suite errors" in categories and any(c.startswith("Expected deviations") for c in categories)
    assert all("hunter2" not in p.read_text() for p in tmp_path.iterdir())
