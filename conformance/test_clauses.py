"""One direct test per clause: a fixed sequence of calls, judged by a fresh model.

Each clause maps to the direct sequence that exercises it
(``Clause.sequences``); a sequence runs once per session and
its verdicts serve every clause it covers. A clause must PASS, or be NA with
a reason (the target's API version, or what the target does not offer); a
clause the expectations list as a known deviation is an expected failure, and
one that passes anyway fails the test (XPASS).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, Callable

import pytest

from nfclease.conformance.clauses import CLAUSES
from nfclease.conformance.explain import explain_na
from nfclease.conformance.sequences import SEQUENCE_OF, run_sequences
from nfclease.conformance.model import Model
from nfclease.conformance.verdicts import ClauseVerdicts
from nfclease.reports.allure_steps import verdict_step

pytest_plugins = [] if "nfclease" in {ep.name for ep in importlib.metadata.entry_points(group="pytest11")} \
    else ["nfclease.conformance.plugin"]


@pytest.fixture(scope="session")
def direct_verdicts(nfclease_run: Any) -> Callable[[str], ClauseVerdicts]:
    cache: dict[str, ClauseVerdicts] = {}

    def verdicts(name: str) -> ClauseVerdicts:
        if name not in cache:
            own = Model(api_version=nfclease_run.api_version)
            nfclease_run.extra_models.append(own)
            try:
                run_sequences(nfclease_run, [name])
            finally:
                nfclease_run.extra_models.remove(own)
            cache[name] = own.verdicts
        return cache[name]

    return verdicts


@pytest.mark.parametrize("clause_id", [c.id for c in CLAUSES])
def test_clause(clause_id: str, direct_verdicts: Callable[[str], ClauseVerdicts], nfclease_run: Any,
                nfclease_expectations: dict[str, Any]) -> None:
    for name in SEQUENCE_OF[clause_id]:
        verdict = direct_verdicts(name)[clause_id]
        if verdict.status != "NA" or verdict.gate:
            break
    status, message = verdict.status, verdict.message
    if status == "NA":
        message = explain_na(clause_id, message, nfclease_run)
    verdict_step(clause_id, status, message, verdict.repro)  # an Allure step under allure-pytest
    expected = nfclease_expectations.get(clause_id)
    if expected is not None and expected.status == "FAIL":
        if status == "FAIL":
            pytest.xfail(f"known deviation: {expected.why()}")
        if status == "PASS":
            pytest.fail(f"XPASS: {clause_id} was expected to FAIL ({expected.why()}) but passed: {message}; "
                        "remove it from the expectations file")
    if status == "NA":
        assert message and "not exercised" not in message, f"{clause_id} is NA without a reason"
        pytest.skip(f"NA: {message}")
    assert status == "PASS", f"{clause_id} {status}: {message}\n{verdict.repro or ''}"
