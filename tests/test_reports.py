"""The run records: results.json shape, JUnit, the terminal table, the matrix.

results.json is read by other tools, so its keys are asserted exactly; a
password in the target URL must not survive into any file.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest

from nfclease.conformance.clauses import CLAUSES
from nfclease.conformance.model import Model
from nfclease.reports.results import ClauseResult
from nfclease.conformance.offline import main as check_history_main
from nfclease.events import Event, HistoryWriter
from nfclease.reports.page import build_report, render
from nfclease.reports.results import (
    RunInfo,
    exit_code,
    print_results,
    read_results,
    results_record,
    write_junit,
    write_results,
)

SECRET = "hunter2"
TARGET = f"https://root:{SECRET}@127.0.0.1:8989/sdk?password={SECRET}&insecure=1"


def sample_results() -> list[ClauseResult]:
    return [
        ClauseResult("complete.done", "MUST", "PASS", "3 checks passed"),
        ClauseResult("complete.repeat", "MUST", "FAIL", "event #4 L1.Complete: expected InvalidState; observed ok",
                     "L1 = Acquire(kind='export-vm')\nL1.Complete()\nL1.Complete()  # <-- FAIL"),
        ClauseResult("pull.transfer", "MUST", "NA", "applies from vSphere API 6.7; the target speaks 6.5"),
        ClauseResult("abort.repeat", "MUST", "XFAIL", "expected failure: vendor bug 12"),
        ClauseResult("abort.error", "MUST", "XPASS", "expected to FAIL (old bug) but PASSED"),
        ClauseResult("state.initial", "MUST", "FAIL", f"login to {TARGET} failed", None),
    ]


def run_info() -> RunInfo:
    return RunInfo(target=TARGET, product="nfclease-sim", version="0.1.0", build="1", api_version="8.0",
                   profile="ci", seed=42, duration_s=12.34567)


def test_results_json_has_exactly_the_documented_shape(tmp_path):
    path = write_results(tmp_path / "report", sample_results(), run_info())
    assert path == tmp_path / "report" / "results.json"
    data = json.loads(path.read_text())
    assert list(data) == ["run_info", "results", "summary"]
    assert list(data["run_info"]) == ["target", "product", "version", "build", "api_version", "profile", "seed",
                                      "duration_s"]
    assert data["run_info"]["seed"] == 42 and data["run_info"]["duration_s"] == 12.346
    for r in data["results"]:
        assert list(r) == ["clause", "level", "status", "message", "repro"]
    assert data["summary"] == {"PASS": 1, "FAIL": 2, "NA": 1, "XFAIL": 1, "XPASS": 1}
    assert data["results"][1]["repro"].startswith("L1 = Acquire")
    assert data["results"][0]["repro"] is None
    assert read_results(tmp_path / "report") == data


def test_a_password_in_the_target_never_reaches_a_record(tmp_path):
    write_results(tmp_path, sample_results(), run_info())
    write_junit(tmp_path / "junit.xml", sample_results(), run_info())
    for name in ("results.json", "junit.xml"):
        text = (tmp_path / name).read_text()
        assert SECRET not in text, name
        assert "root:***@127.0.0.1" in text, name
    record = results_record(sample_results(), {"target": TARGET})
    assert SECRET not in json.dumps(record)


def test_run_info_rejects_keys_the_format_does_not_have():
    with pytest.raises(TypeError, match="unknown keys \\['password'\\]"):
        results_record([], {"target": "sim", "password": SECRET})


def test_junit_has_one_testcase_per_clause_with_the_right_kind(tmp_path):
    path = write_junit(tmp_path / "junit.xml", sample_results(), run_info())
    suite = ET.parse(path).getroot()
    assert suite.get("tests") == "6" and suite.get("failures") == "3" and suite.get("skipped") == "2"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert len(cases) == 6
    assert cases["complete.done"].find("*") is None
    assert cases["complete.repeat"].find("failure") is not None
    assert "L1.Complete()" in cases["complete.repeat"].find("failure").text
    assert cases["abort.error"].find("failure").get("type") == "XPASS"
    assert cases["pull.transfer"].find("skipped").get("message").startswith("NA: applies from")
    assert "vendor bug 12" in cases["abort.repeat"].find("skipped").get("message")


def test_exit_code_is_zero_only_for_pass_na_xfail():
    ok = [r for r in sample_results() if r.status in ("PASS", "NA", "XFAIL")]
    assert exit_code(ok) == 0
    assert exit_code(sample_results()) == 1
    assert exit_code([ClauseResult("abort.error", "MUST", "XPASS", "")]) == 1


def test_the_terminal_table_lists_every_clause_and_the_repro():
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, record=True)
    print_results(sample_results(), console=console)
    text = console.export_text()
    for r in sample_results():
        assert r.clause in text
    assert "FAIL 2" in text and "complete.repeat repro" in text
    assert SECRET not in text


def test_report_puts_targets_side_by_side(tmp_path):
    write_results(tmp_path / "sim", sample_results(), run_info())
    other = [ClauseResult("complete.repeat", "MUST", "XFAIL", "vcsim: Complete twice succeeds")]
    write_results(tmp_path / "vcsim", other, {"target": "vcsim", "product": "vcsim", "version": "0.24",
                                              "api_version": "8.0.1.0"})
    report = build_report([tmp_path / "sim", tmp_path / "vcsim"])
    assert [r.label for r in report.runs] == ["sim", "vcsim"]
    assert [c for c, _ in report.clauses][: len(CLAUSES)] == [c.id for c in CLAUSES]
    page, md = render(report)
    assert "| `complete.repeat` | MUST | **FAIL** | XFAIL |" in md
    assert "| `pull.transfer` | MUST | NA | - |" in md
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "<link" not in page
    assert 'class="cell s-FAIL"' in page and "#cf222e" in page and "vcsim: Complete twice succeeds" in page
    assert SECRET not in page and SECRET not in md


def test_check_history_cli_writes_the_records(tmp_path, capsys):
    history = tmp_path / "history.jsonl"
    writer = HistoryWriter(history)
    t = 10.0
    for seq, (call, value) in enumerate([
        ("Acquire", {"moid": "lease-1", "entity": "vm-1", "task": "task-1"}),
        ("Read", {"state": "ready", "initializeProgress": 100, "error": None,
                  "info": {"leaseTimeout": 300, "entity": "vm-1", "deviceUrl": [{"key": "d0", "url": "https://*/d0"}]}}),
        ("Complete", None),
        ("Complete", None),
    ], 1):
        args = {"kind": "export-vm"} if call == "Acquire" else {}
        writer(Event(call, "L1", args, "ok", value, start=t, end=t + 0.01, seq=seq))
        t += 0.02
    writer.close()
    code = check_history_main([str(history), "--api-version", "6.5", "--report", str(tmp_path / "out")])
    assert code == 1
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    by_clause = {r["clause"]: r for r in data["results"]}
    assert by_clause["complete.repeat"]["status"] == "FAIL"
    assert by_clause["pull.mode"]["status"] == "NA"
    assert data["run_info"]["api_version"] == "6.5"
    assert (tmp_path / "out" / "junit.xml").exists()
    assert "complete.repeat" in capsys.readouterr().out
    expectations = tmp_path / "known.yaml"
    expectations.write_text("complete.repeat: {status: FAIL, reason: known}\n")
    assert check_history_main([str(history), "--api-version", "6.5", "--expectations", str(expectations),
                               "--json"]) == 0
    assert check_history_main([str(tmp_path / "missing.jsonl")]) == 2


def test_results_from_a_model_serialise():
    model = Model(api_version="8.0")
    record = results_record(model.verdicts.results(), {"target": "sim"})
    assert len(record["results"]) == len(CLAUSES)
    assert record["summary"]["NA"] == len(CLAUSES)
