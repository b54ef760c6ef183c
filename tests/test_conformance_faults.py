"""A deliberately misbehaving simulator (``SimConfig.deviations``): the right clause FAILs, with a short repro.

The direct sequences find each deviation deterministically, and the repro in
the result is the lease's calls up to the failing one. The state machine
finds one too, and Hypothesis shrinks it to a program of a few rules.
"""

from __future__ import annotations

from typing import Any

import pytest

from nfclease.conformance.explain import finalize
from nfclease.conformance.context import RunContext
from nfclease.conformance.machine import FailedClause, run_machine
from nfclease.conformance.sequences import run_sequences
from nfclease.sim import SimConfig
from nfclease.target import open_target
from nfclease.reports.results import exit_code

#: deviation -> (the clause it breaks, the direct sequences that show it)
DEVIATIONS = {
    "complete_twice_ok": ("complete.repeat", ["release"]),
    "no_timeout": ("timeout.expires", ["expiry"]),
    "manifest_wrong_sha1": ("manifest.entries", ["import"]),
    "locks_ignored": ("lock.power-on", ["import"]),
}


def faulty(fault: str) -> SimConfig:
    return SimConfig(lease_timeout=1.0, init_seconds=0.05, disk_capacity=256 * 1024, deviations=(fault,))


@pytest.mark.parametrize("fault", DEVIATIONS)
def test_deviation_fails_its_clause_with_a_short_repro(fault: str) -> None:
    clause, sequences = DEVIATIONS[fault]
    with open_target("sim", sim_config=faulty(fault)) as target:
        ctx = RunContext(target)
        try:
            run_sequences(ctx, sequences)
        finally:
            ctx.close()
        results = {r.clause: r for r in finalize(ctx)}
    result = results[clause]
    assert result.status == "FAIL", result
    lines = result.repro.splitlines()
    assert len(lines) <= 25, result.repro
    assert lines[0].startswith("# lease L") and f"<-- FAIL {clause}" in lines[-1], result.repro
    assert exit_code(results.values()) == 1


def test_the_correct_simulator_passes_the_same_sequences() -> None:
    with open_target("sim", sim_config=SimConfig(lease_timeout=1.0, init_seconds=0.05)) as target:
        ctx = RunContext(target)
        try:
            run_sequences(ctx, ["release", "import"])
        finally:
            ctx.close()
    assert not [r for r in finalize(ctx) if r.status == "FAIL"]


def test_the_machine_shrinks_a_deviation_to_a_short_program() -> None:
    with open_target("sim", sim_config=faulty("complete_twice_ok")) as target:
        ctx = RunContext(target, raise_on_fail=True, sleep_budget=0.0)
        try:
            with pytest.raises(FailedClause) as caught:
                run_machine(ctx, "smoke", seed=1, steps=3000, step_count=10, shrink=True, shrink_seconds=4.0)
        finally:
            ctx.close()
    error: Any = caught.value
    assert str(error).startswith("complete.repeat [MUST] FAILED")
    assert "expected: InvalidState or ManagedObjectNotFound" in str(error) and "observed: ok" in str(error)
    program = [line for line in getattr(error, "__notes__", []) if line.startswith(("state", "leases_"))]
    print("\n".join(program))
    assert program[0] == "state = LeaseMachine()" and program[-1] == "state.teardown()"
    rules = [line for line in program if "lease_properties" not in line]
    assert sum(".complete(lease=" in line for line in rules) == 2 and len(rules) <= 8, program
