"""allure-pytest on the conformance tests: steps per call, a failing step with its SOAP exchange, labels,
environment and categories -- against a simulator that deviates, reached by URL with a password that must
appear nowhere in the Allure directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nfclease.sim import SimConfig, Simulator

ROOT = Path(__file__).resolve().parents[1]
SECRET = "Allure-S3cret-pw"


def steps_of(item: dict) -> list[dict]:
    out = []
    for step in item.get("steps") or []:
        out += [step] + steps_of(step)
    return out


@pytest.mark.slow
def test_allure_results_of_a_deviating_target(tmp_path: Path) -> None:
    allure = tmp_path / "allure"
    config = SimConfig(username="alice", password=SECRET, deviations=("complete_twice_ok",), lease_timeout=2.0,
                       init_seconds=0.03)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with Simulator(config) as sim:
        child = subprocess.run(
            [sys.executable, "-m", "pytest", "conformance/test_clauses.py", "-k", "complete or lock", "-q",
             "-p", "no:cacheprovider", "--alluredir", str(allure), "--nfclease-thumbprint", sim.thumbprint,
             "--nfclease-target", f"https://alice:{SECRET}@127.0.0.1:{sim.port}/sdk"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == 1, child.stdout[-3000:]  # complete.repeat FAILs
    results = {r["name"]: r for r in (json.loads(p.read_text()) for p in allure.glob("*-result.json"))}
    repeat = results["test_clause[complete.repeat]"]
    assert repeat["status"] == "failed"
    labels = {(label["name"], label["value"]) for label in repeat["labels"]}
    assert {("clause", "complete.repeat"), ("level", "MUST"), ("api_version", "9.0.0.0")} <= labels
    assert ("target", f"https://alice:***@127.0.0.1:{sim.port}/sdk") in labels
    verdict = [s for s in steps_of(repeat) if s["name"] == "complete.repeat: FAIL"]
    assert verdict and verdict[0]["status"] == "failed" and verdict[0]["attachments"]
    calls = [s for r in results.values() for s in steps_of(r) if "Complete()" in s["name"]]
    assert calls and all({"call", "arguments", "observed", "expected", "verdict"} <= {p["name"] for p in s["parameters"]}
                         for s in calls)
    failing = [s for s in calls if s["status"] == "failed"]
    assert failing, "the second Complete was not a failed step"
    soap = [(allure / a["source"]).read_text() for s in failing for a in s.get("attachments") or []]
    assert soap and any("HttpNfcLeaseComplete" in text and "--- response 200 ---" in text for text in soap)
    assert all("Cookie: ***" in text for text in soap)
    environment = (allure / "environment.properties").read_text()
    assert "product=nfclease embedded simulator" in environment and "suite=nfclease" in environment
    assert json.loads((allure / "categories.json").read_text())[0]["name"].startswith("Target errors")
    for path in allure.iterdir():
        assert SECRET not in path.read_text(errors="replace"), path.name
