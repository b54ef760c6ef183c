"""``nfclease conform`` end to end against the embedded simulator (real sockets, real pyVmomi).

The ci profile must leave every clause PASS, or NA with a reason, run at
least 3000 machine steps, and stay inside its bound (the subprocess is killed
after 60 s); its history must replay offline to the same verdicts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nfclease.conformance.expectations import load_expectations
from nfclease.conformance.offline import check_history
from nfclease.reports.results import read_results

ROOT = Path(__file__).resolve().parents[1]


def conform(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "COLUMNS": "160"}
    for name in ("GOVC_URL", "GOVC_USERNAME", "GOVC_PASSWORD"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "nfclease", "conform", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_conform_ci_profile_against_the_simulator(tmp_path: Path) -> None:
    report = tmp_path / "report"
    proc = conform("--profile", "ci", "--report", str(report), "--seed", "20261127", timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    data = read_results(report)
    info = data["run_info"]
    print(f"nfclease conform --profile ci: {info['duration_s']} s; {data['summary']}")
    assert info["profile"] == "ci" and info["seed"] == 20261127
    assert info["api_version"] and info["product"].startswith("nfclease embedded simulator")
    assert info["target"].startswith("https://127.0.0.1:") and "@" not in info["target"]
    steps = int(re.search(r"(\d+) machine steps", out).group(1))
    assert steps >= 3000, out[-2000:]
    for r in data["results"]:
        assert r["status"] in ("PASS", "NA"), r
        if r["status"] == "NA":  # a reason, not just "not exercised"
            assert r["message"] and "not exercised" not in r["message"], r
    assert data["summary"]["PASS"] >= len(data["results"]) - 2
    # the history replays offline to the same verdicts
    history = report / "history.jsonl"
    first = json.loads(history.read_text().splitlines()[0])
    assert first["call"] == "Target" and first["value"]["api_version"] == info["api_version"]
    offline = check_history(history).statuses()
    assert offline == {r["clause"]: r["status"] for r in data["results"]}
    suite = ET.parse(report / "junit.xml").getroot()
    assert suite.get("tests") == str(len(data["results"])) and suite.get("failures") == "0"


def test_a_deviation_that_disappears_is_xpass_and_fails_the_run(tmp_path: Path) -> None:
    """vcsim's expectations against the simulator, which has none of its deviations: XPASS, exit 1."""
    report = tmp_path / "report"
    proc = conform("--profile", "smoke", "--report", str(report), "--seed", "7",
                   "--expectations", "vcsim-0.24", timeout=60)
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-4000:]
    data = read_results(report)
    expected_fail = {c for c, e in load_expectations("vcsim-0.24").items() if e.status == "FAIL"}
    statuses = {r["clause"]: r["status"] for r in data["results"]}
    assert {statuses[c] for c in expected_fail} == {"XPASS"}, statuses
    assert data["summary"]["XPASS"] == len(expected_fail) and data["summary"]["FAIL"] == 0
    assert "XPASS" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--expectations", "no-such-target"], "no expectations file"),
    (["--target", "http://127.0.0.1:1/sdk"], "https URL"),
])
def test_unusable_expectations_or_target_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    proc = conform(*args, "--report", str(tmp_path), timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
