"""The suite against govmomi's vcsim 0.24 with its expectations file (marker ``vcsim``).

Green while vcsim is what it is: every deviation listed is seen again (XFAIL,
with its repro in results.json) and nothing else fails. Without the file the
same deviations are plain FAILs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nfclease.conformance.expectations import load_expectations
from nfclease.vcsim import find_vcsim
from nfclease.reports.results import read_results

from test_conformance_cli import conform

pytestmark = [pytest.mark.vcsim,
              pytest.mark.skipif(find_vcsim() is None, reason="no vcsim binary: run tools/build-vcsim")]

EXPECTED_FAIL = sorted(c for c, e in load_expectations("vcsim-0.24").items() if e.status == "FAIL")


def test_vcsim_with_its_expectations_exits_0_and_its_deviations_are_real(tmp_path: Path) -> None:
    report = tmp_path / "with"
    proc = conform("--target", "vcsim", "--profile", "smoke", "--seed", "3", "--report", str(report),
                   "--expectations", "vcsim-0.24", timeout=120)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    data = read_results(report)
    assert data["run_info"]["api_version"] == "6.5" and "vCenter" in data["run_info"]["product"]
    by_clause = {r["clause"]: r for r in data["results"]}
    for clause in EXPECTED_FAIL:
        assert by_clause[clause]["status"] == "XFAIL", by_clause[clause]
        assert "<-- FAIL " + clause in by_clause[clause]["repro"], by_clause[clause]
    assert data["summary"]["FAIL"] == 0 and data["summary"]["XPASS"] == 0
    assert data["summary"]["XFAIL"] == len(EXPECTED_FAIL)
    # its 30000 s leaseTimeout does not fit the smoke budget: skipped, and the results say why
    assert "beyond the smoke profile's expiry budget" in by_clause["timeout.expires"]["message"]
    assert "ExportVm answered vmodl.fault.MethodNotFound" in by_clause["api.implemented"]["message"]


def test_vcsim_without_expectations_fails_exactly_the_listed_clauses(tmp_path: Path) -> None:
    report = tmp_path / "without"
    proc = conform("--target", "vcsim", "--profile", "smoke", "--seed", "4", "--report", str(report), timeout=120)
    assert proc.returncode == 1, (proc.stdout + proc.stderr)[-6000:]
    failed = sorted(r["clause"] for r in read_results(report)["results"] if r["status"] == "FAIL")
    assert failed == EXPECTED_FAIL
