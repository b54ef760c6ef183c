"""``nfclease run`` against the simulator, a deviating simulator and vcsim, then ``nfclease report`` of the three.

The runs are the real command in a child process, as a user runs it (smoke
profile and a two-second load run, to keep CI short). The deviating
simulator is reached by URL with a password, so the password has every
chance to leak: no artefact of any run, nor the report, may contain it, an NFC
ticket or a session cookie.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from nfclease.conformance.clauses import CLAUSES
from nfclease.cli import main
from nfclease.sim import SimConfig, Simulator
from nfclease.vcsim import find_vcsim

pytestmark = [pytest.mark.slow, pytest.mark.vcsim]

ROOT = Path(__file__).resolve().parents[1]
SECRET = "Corr3ct-H0rse-Battery"
DEVIATION = ("complete_twice_ok", "complete.repeat")  # the deviation and the clause it breaks
LEAKS = [re.compile(re.escape(SECRET)), re.compile(r"/nfc/(?!\*\*\*)[^/\s\"']+/"),
         re.compile(r"vmware_soap_session\s*=\s*\\?\"?(?!\*\*\*)[^\"\\;\s*]+")]


def nfclease_run(argv: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "nfclease", "run", "--profile", "smoke", *argv], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    if find_vcsim() is None:
        pytest.skip("no vcsim binary: run tools/build-vcsim")
    root = tmp_path_factory.mktemp("runs")
    done = {"sim": nfclease_run(["--load-duration", "2s", "--report", str(root / "sim")])}
    config = SimConfig(username="alice", password=SECRET, deviations=(DEVIATION[0],), lease_timeout=2.0,
                       init_seconds=0.03)
    with Simulator(config) as deviating:
        done["deviating"] = nfclease_run(["--target", f"https://alice:{SECRET}@127.0.0.1:{deviating.port}/sdk",
                                          "--thumbprint", deviating.thumbprint, "--load-duration", "2s",
                                          "--report", str(root / "deviating")])
    done["vcsim"] = nfclease_run(["--target", "vcsim", "--expectations", "vcsim-0.24", "--load-duration", "0",
                                  "--report", str(root / "vcsim")])
    for name, child in done.items():
        (root / f"{name}.out").write_text(child.stdout + child.stderr, encoding="utf-8")
    yield {name: root / name for name in done} | {"_root": root, **{f"_{n}": c for n, c in done.items()}}


def statuses(run: Path) -> dict[str, str]:
    return {r["clause"]: r["status"] for r in json.loads((run / "results.json").read_text())["results"]}


def test_each_run_exits_as_its_verdicts_say_and_prints_the_headline(runs) -> None:
    for name in ("sim", "deviating", "vcsim"):
        child, verdicts = runs[f"_{name}"], statuses(runs[name])
        failing = any(s in ("FAIL", "XPASS") for s in verdicts.values())
        assert child.returncode == (1 if failing else 0), child.stdout + child.stderr
        assert "Traceback" not in child.stderr, child.stderr
        assert re.search(r"PASS \d+\s+FAIL \d+\s+NA \d+\s+XFAIL \d+", child.stdout), child.stdout
        assert f"report: {(runs[name] / 'report.html').resolve()}" in child.stdout.replace("\n", "")
    # Progress is sent every 0.1 s while a disk moves: a machine that moves 32 MiB faster has none to time
    assert re.search(r"load: [\d.]+ MB/s, (Progress p95 [\d.]+ ms|no Progress call measured)",
                     runs["_sim"].stdout), runs["_sim"].stdout
    assert runs["_sim"].returncode == 0 and "FAIL" not in statuses(runs["sim"]).values()
    assert statuses(runs["deviating"])[DEVIATION[1]] == "FAIL"
    assert "XFAIL" in statuses(runs["vcsim"]).values()


def test_each_run_writes_every_record(runs) -> None:
    for name in ("sim", "deviating", "vcsim"):
        for record in ("results.json", "junit.xml", "history.jsonl", "report.html", "report.md"):
            assert (runs[name] / record).is_file(), (name, record)
        allure = runs[name] / "allure-results"
        assert len(list(allure.glob("*-result.json"))) == len(statuses(runs[name]))
        environment = (allure / "environment.properties").read_text()
        assert "suite=nfclease" in environment and "api_version=" in environment
        assert "Conformance violations" in (allure / "categories.json").read_text()
    for name in ("sim", "deviating"):
        aggregate = json.loads((runs[name] / "load.json").read_text())["aggregate"]
        assert aggregate["bytes_corrupted"] == 0 and aggregate["transfers"] > 0


def test_the_report_shows_the_three_side_by_side(runs, capsys) -> None:
    out = runs["_root"] / "side-by-side" / "report.html"
    assert main(["report", str(runs["sim"]), str(runs["deviating"]), str(runs["vcsim"]), "--out", str(out)]) == 0
    page, md = out.read_text(), out.with_suffix(".md").read_text()
    rows = dict(re.findall(r'<tr id="c-([\w.-]+)">(.*?)</tr>', page, re.S))
    expected = {name: statuses(runs[name]) for name in ("sim", "deviating", "vcsim")}
    assert set(rows) >= {c.id for c in CLAUSES}
    for clause, row in rows.items():
        shown = re.findall(r'data-status="(\w*)"', row)
        assert shown == [expected[name].get(clause, "") for name in ("sim", "deviating", "vcsim")], clause
        line = next(l for l in md.splitlines() if l.startswith(f"| `{clause}` |"))
        assert [c.strip().strip("*") for c in line.split("|")[3:6]] == [s or "-" for s in shown], line
    failing_cell = rows[DEVIATION[1]]
    assert "<details" in failing_cell and "Complete" in failing_cell  # the repro, one click away
    assert page.count('<th class="clause">sim</th>') == 1 and "deviating" in page and "vcsim" in page
    assert "<polyline" in page and "MB/s per scenario" in page


def test_no_secret_in_any_artefact(runs) -> None:
    out = runs["_root"] / "side-by-side"
    if not out.exists():
        main(["report", str(runs["sim"]), str(runs["deviating"]), str(runs["vcsim"]),
              "--out", str(out / "report.html")])
    checked = 0
    for path in sorted(runs["_root"].rglob("*")):
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for leak in LEAKS:
            found = leak.search(text)
            assert found is None, f"{path.relative_to(runs['_root'])}: {found.group(0)!r}"
        checked += 1
    assert checked > 20
