"""``nfclease selftest``: the kill matrix judges each deviation by the clauses its run FAILs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nfclease.conformance.clauses import BY_ID
from nfclease.conformance.selftest import CONTROL, EXPECTED, Row, check_mapping, judge_run
from nfclease.sim.deviations import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]


def test_every_deviation_has_expected_clauses_that_exist() -> None:
    check_mapping()
    assert set(EXPECTED) == set(CATALOGUE)
    assert all(c in BY_ID for clauses in EXPECTED.values() for c in clauses)


def _finished_run(tmp_path: Path, fails: dict[str, int]) -> Path:
    """A child run's files as ``nfclease conform`` writes them: FAIL clause -> the event that failed it."""
    results = [{"clause": c, "level": "MUST", "status": "FAIL", "message": f"event #{seq} L1.Complete: boom",
                "repro": "# lease L1\nL1 = Acquire()\nL1.Complete()  <-- FAIL"} for c, seq in fails.items()]
    results.append({"clause": "state.initial", "level": "MUST", "status": "PASS", "message": "ok", "repro": None})
    (tmp_path / "results.json").write_text(json.dumps({"run_info": {}, "results": results, "summary": {}}))
    history = [{"seq": seq, "start": 100.0 + seq, "end": 100.5 + seq} for seq in range(1, 12)]
    (tmp_path / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
    return tmp_path


@pytest.mark.parametrize("fails, verdict", [
    ({"complete.repeat": 7, "abort.repeat": 3}, "killed"),
    ({"abort.repeat": 3}, "misnamed"),
    ({}, "survived"),
])
def test_a_deviation_is_killed_only_under_an_expected_clause(tmp_path: Path, fails: dict[str, int],
                                                             verdict: str) -> None:
    row = judge_run(Row("complete_twice_ok", "complete-abort", ["complete.repeat"]), _finished_run(tmp_path, fails))
    assert row.verdict == verdict and row.flagged == sorted(fails)
    if verdict == "killed":  # the first FAIL of an expected clause: event #7, 6 calls after the Target record
        assert (row.steps, row.seconds, row.repro_calls) == (6, 6.5, 2)
    else:
        assert not row.ok and row.steps is None


def test_the_undeviated_run_must_have_no_fail(tmp_path: Path) -> None:
    assert judge_run(Row(CONTROL, "-", []), _finished_run(tmp_path, {})).verdict == "clean"
    assert judge_run(Row(CONTROL, "-", []), _finished_run(tmp_path, {"state.initial": 2})).verdict == "false-fail"


def _selftest(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nfclease", "selftest", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_an_unknown_deviation_is_refused_in_one_line() -> None:
    bad = _selftest("--only", "complete_twice", "--report", "/nonexistent/never-written")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    assert "did you mean complete_twice_ok" in bad.stderr


@pytest.mark.slow
def test_the_kill_matrix_at_smoke_kills_every_deviation_under_its_clause(tmp_path: Path) -> None:
    """CI's kill matrix: the whole catalogue at the smoke profile, in one invocation, and the undeviated run clean."""
    done = _selftest("--profile", "smoke", "--report", str(tmp_path), "--seed", "1", timeout=1200)
    record = json.loads((tmp_path / "selftest.json").read_text())
    rows = {r["deviation"]: r for r in record["rows"]}
    failing = {name: (r["verdict"], r["flagged"], r["detail"]) for name, r in rows.items()
               if r["verdict"] not in ("killed", "clean")}
    assert done.returncode == 0 and not failing, failing
    broke = {name: r["detail"] for name, r in rows.items() if "broke off" in r["detail"]}
    assert not broke, broke  # a wrong server must get verdicts, never crash the suite
    assert (record["killed"], record["total"], record["profile"]) == (len(CATALOGUE), len(CATALOGUE), "smoke")
    assert rows[CONTROL]["verdict"] == "clean" and rows[CONTROL]["flagged"] == []
    for name in CATALOGUE:
        row = rows[name]
        assert set(row["expected"]) & set(row["flagged"]), row
        assert row["steps"] > 0 and row["seconds"] > 0 and 1 <= row["repro_calls"] <= row["steps"], row
    assert f"killed {len(CATALOGUE)}/{len(CATALOGUE)}" in done.stdout
    assert sum(f["total"] for f in record["families"].values()) == len(CATALOGUE)
    table = (tmp_path / "selftest.md").read_text()
    assert "| complete_twice_ok | complete-abort | complete.repeat |" in table
