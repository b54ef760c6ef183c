"""``nfclease report``: the page and its Markdown twin from run directories written as the commands write them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nfclease.conformance.clauses import CLAUSES
from nfclease.reports.results import ClauseResult
from nfclease.load.report import write_load_json
from nfclease.cli import main
from nfclease.reports.chart import nice_max, throughput_chart
from nfclease.reports.page import build_report, read_run, render
from nfclease.reports.results import write_results

SECRET = "s3cret-pw"


def figures(mbps: float, progress_p95: float, runs: list[float] | None = None) -> tuple[dict, dict]:
    """load.json's body and its ``repeats`` for one run (or several, when ``runs`` gives each MB/s)."""
    values = runs or [mbps]
    aggregate = {"throughput_mbps": mbps, "transfers": 40, "bytes_transferred": 4 * 10 ** 8,
                 "bytes_verified": 4 * 10 ** 8, "bytes_corrupted": 0, "leases_expired": 0,
                 "soap_latency_ms": {"HttpNfcLeaseProgress": {"count": 200, "p95": progress_p95}},
                 "soap_latency_all_ms": {"count": 400, "p95": 20.0}, "time_to_ready_s": {"count": 40, "p95": 0.25}}
    scenario = dict(aggregate, throughput_mbps=mbps / 2)
    body = {"scenarios": {"import-upload": scenario, "export-download": scenario}, "aggregate": aggregate,
            "series": {"t": [0.0, 1.0, 2.0, 3.0], "mbps": {"aggregate": [mbps / 2, mbps, mbps, mbps / 3]}}}
    median = sorted(values)[len(values) // 2]
    spread = (max(values) - min(values)) / median
    repeats = {"runs": len(values), "metrics": {
        "throughput MB/s aggregate": {"median": median, "values": values, "spread": spread,
                                      "higher_is_better": True, "unit": "MB/s", "samples": 40},
        "p95 ms SOAP HttpNfcLeaseProgress": {"median": progress_p95, "values": [progress_p95] * len(values),
                                             "higher_is_better": False, "unit": "ms", "samples": 200}}}
    return body, {"repeats": repeats}


def write_run(directory: Path, statuses: dict[str, str], mbps: float | None = None, progress: float = 5.0,
              runs: list[float] | None = None, product: str = "nfclease embedded simulator 9.0.0") -> Path:
    results = [ClauseResult(c.id, c.level, statuses.get(c.id, "PASS"),
                            f"{c.id}: expected InvalidState; observed ok" if statuses.get(c.id) == "FAIL" else "ok",
                            f"L1 = Acquire(kind='export-vm')\nL1.Complete()  # <-- {c.id}"
                            if statuses.get(c.id) == "FAIL" else None) for c in CLAUSES]
    info = {"target": f"https://root:{SECRET}@127.0.0.1:8989/sdk", "product": product, "version": "9.0.0",
            "build": "1", "api_version": "9.0.0.0", "profile": "ci", "seed": 7, "duration_s": 3.0}
    write_results(directory, results, info)
    if mbps is not None:
        body, extra = figures(mbps, progress, runs)
        write_load_json(directory / "load.json", {"target": info["target"], "users": 2, "duration": 10.0}, body, extra)
    return directory


def exit_status(argv: list[str]) -> int:
    """``nfclease ARGV``'s exit status, whether the command returned it or argparse exited."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_every_clause_is_a_row_with_each_runs_status(tmp_path: Path) -> None:
    write_run(tmp_path / "good", {}, mbps=100.0)
    write_run(tmp_path / "bad", {"complete.repeat": "FAIL", "pull.mode": "NA", "lock.destroy": "XFAIL"}, mbps=80.0)
    page, md = render(build_report([tmp_path / "good", tmp_path / "bad"]))
    cells = dict(re.findall(r'<tr id="c-([\w.-]+)">(.*?)</tr>', page, re.S))
    assert set(cells) == {c.id for c in CLAUSES}
    statuses = {clause: re.findall(r'data-status="(\w*)"', row) for clause, row in cells.items()}
    assert statuses["complete.repeat"] == ["PASS", "FAIL"]
    assert statuses["pull.mode"] == ["PASS", "NA"] and statuses["lock.destroy"] == ["PASS", "XFAIL"]
    assert all(s == ["PASS", "PASS"] for c, s in statuses.items() if c not in ("complete.repeat", "pull.mode",
                                                                              "lock.destroy"))
    failing = cells["complete.repeat"]
    assert "expected InvalidState; observed ok" in failing  # the message shows, the repro is a click away
    assert '<details class="repro"><summary>repro (2 lines)</summary>' in failing and "L1.Complete()" in failing
    assert "| `complete.repeat` | MUST | PASS | **FAIL** |" in md and "| `lock.destroy` | MUST | PASS | XFAIL |" in md
    assert "<summary>bad: FAIL <code>complete.repeat</code></summary>" in md


def test_the_page_is_self_contained_and_leaks_no_secret(tmp_path: Path) -> None:
    write_run(tmp_path / "sim", {"complete.repeat": "FAIL"}, mbps=100.0)
    page, md = render(build_report([tmp_path / "sim"]))
    assert "<script" not in page and "<link" not in page and "<img" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page) and "@import" not in page
    assert "<svg" in page and "<polyline" in page
    assert SECRET not in page and SECRET not in md and "root:***@" in page


def test_baseline_shows_new_fail_new_pass_and_load_deltas_with_spread(tmp_path: Path) -> None:
    write_run(tmp_path / "base", {"abort.repeat": "FAIL"}, mbps=100.0, runs=[98.0, 100.0, 103.0])
    write_run(tmp_path / "new", {"complete.repeat": "FAIL"}, mbps=60.0, runs=[59.0, 60.0, 61.0])
    report = build_report([tmp_path / "new"], baseline=tmp_path / "base")
    change = report.changes[0]
    assert change.new_fail == ["complete.repeat"] and change.new_pass == ["abort.repeat"]
    rows = {row.name: row for row in change.load_rows}
    assert rows["throughput MB/s aggregate"].verdict == "REGRESSION"
    assert rows["p95 ms SOAP HttpNfcLeaseProgress"].verdict == "ok"
    page, md = render(report)
    assert "New FAIL" in page and "complete.repeat" in page and "REGRESSION" in page
    assert "**new**: new FAIL: complete.repeat; new PASS: abort.repeat" in md
    assert "| throughput MB/s aggregate | 100.00 | 60.00 | +40.0% | 5.0% / 3.3% |" in md


def test_the_chart_has_a_bar_per_run_and_scenario(tmp_path: Path) -> None:
    runs = [read_run(write_run(tmp_path / name, {}, mbps=mbps)) for name, mbps in (("a", 90.0), ("b", 45.0))]
    chart = throughput_chart(runs)
    assert [g.label for g in chart.groups] == ["export-download", "import-upload", "aggregate"]
    assert [[b.run for b in g.bars] for g in chart.groups] == [["a", "b"]] * 3
    aggregate = chart.groups[-1].bars
    assert aggregate[0].width == pytest.approx(2 * aggregate[1].width)
    assert len(chart.lines) == 2 and nice_max(90.0) == 100 and nice_max(101) == 150


def test_the_markdown_goes_to_the_github_step_summary(tmp_path: Path, monkeypatch, capsys) -> None:
    write_run(tmp_path / "sim", {}, mbps=100.0)
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["report", str(tmp_path / "sim"), "--out", str(tmp_path / "out" / "report.html")]) == 0
    assert (tmp_path / "out" / "report.html").exists()
    twin = (tmp_path / "out" / "report.md").read_text()
    assert summary.read_text() == "earlier step\n" + twin
    assert "report.html" in capsys.readouterr().out


@pytest.mark.parametrize("argv, says", [
    (["report", "{tmp}/nowhere", "--out", "{tmp}/r.html"], "no results.json or load.json there"),
    (["report", "{tmp}/broken", "--out", "{tmp}/r.html"], "cannot read the run"),
    (["report", "{tmp}/sim"], "the following arguments are required: --out"),
    (["report", "{tmp}/sim", "--out", "{tmp}/r.html", "--tolerance", "lots"], "is not a percentage"),
])
def test_a_bad_report_invocation_is_one_line_and_exit_2(tmp_path: Path, capsys, argv: list[str], says: str) -> None:
    write_run(tmp_path / "sim", {})
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    code = exit_status([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
