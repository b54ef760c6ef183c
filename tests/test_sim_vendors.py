"""Simulated vendors: each exits 0 with its expectations file, and 1 without it, naming exactly those clauses."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nfclease.sim import SimConfig
from nfclease.sim.deviations import CATALOGUE
from nfclease.sim.vendors import VENDORS

ROOT = Path(__file__).resolve().parents[1]
EXPECTATIONS = ROOT / "conformance" / "expectations"


def test_a_vendor_bundles_known_deviations_and_its_settings() -> None:
    config = SimConfig(vendor="esxi-like", deviations=("no_timeout",))
    assert config.star_hosts and config.release_retention == 0.0
    assert config.deviations == ("no_timeout", *VENDORS["esxi-like"].deviations)
    for vendor in VENDORS.values():
        assert vendor.deviations and set(vendor.deviations) <= set(CATALOGUE)
        assert (EXPECTATIONS / f"{vendor.name}.yaml").exists(), vendor.name
    with pytest.raises(ValueError, match="unknown vendor 'esxi': did you mean esxi-like"):
        SimConfig(vendor="esxi")


def _conform(vendor: str, report: Path, *expectations: str) -> tuple[int, dict[str, str], str]:
    proc = subprocess.run([sys.executable, "-m", "nfclease", "conform", "--target", "sim", "--vendor", vendor,
                           "--profile", "smoke", "--seed", "2", "--report", str(report), *expectations],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    results = json.loads((report / "results.json").read_text())["results"]
    return proc.returncode, {r["clause"]: r["status"] for r in results}, proc.stdout


@pytest.mark.slow
def test_each_vendor_exits_0_with_its_expectations_and_1_without_naming_them(tmp_path: Path) -> None:
    jobs = {(name, with_file): (name, tmp_path / f"{name}-{with_file}",
                                *(["--expectations", name] if with_file else []))
            for name in VENDORS for with_file in (True, False)}
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        done = dict(zip(jobs, pool.map(lambda args: _conform(*args), jobs.values())))
    for name in VENDORS:
        listed = yaml.safe_load((EXPECTATIONS / f"{name}.yaml").read_text())
        expected_fails = {c for c, entry in listed.items() if entry["status"] == "FAIL"}
        code, statuses, out = done[(name, True)]
        assert code == 0, (name, {c: s for c, s in statuses.items() if s in ("FAIL", "XPASS")}, out[-2000:])
        assert {c for c, s in statuses.items() if s == "XFAIL"} == expected_fails, name
        code, statuses, out = done[(name, False)]
        assert code == 1, name
        assert {c for c, s in statuses.items() if s == "FAIL"} == expected_fails, (name, statuses)
        for clause in expected_fails:  # named in the table the user sees
            assert clause in out, (name, clause)
