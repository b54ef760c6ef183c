"""Zero false FAILs: 100 seeded runs of the state machine against the correct simulator.

A FAIL judgement raises inside the run (``raise_on_fail``), naming the clause,
expected vs observed and the lease's calls; none may occur. The simulator's
lease timeout is 1 s here so that expiry (and the tolerance window around it)
is part of what the seeds explore, within a small sleep budget.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from nfclease.conformance.context import RunContext
from nfclease.conformance.machine import run_machine
from nfclease.sim import SimConfig
from nfclease.target import open_target

SEEDS = range(100)
EXAMPLES = 3  # per seed; Hypothesis' first example is always its simplest one
STEPS = 6  # per example


@pytest.fixture(scope="module")
def ctx() -> Iterator[RunContext]:
    config = SimConfig(lease_timeout=1.0, init_seconds=0.02, disk_capacity=256 * 1024)
    with open_target("sim", sim_config=config) as target:
        run = RunContext(target, raise_on_fail=True, sleep_budget=6.0)
        yield run
        run.close()


def test_no_false_fail_across_100_seeds(ctx: RunContext) -> None:
    started = time.monotonic()
    for seed in SEEDS:
        run_machine(ctx, "smoke", seed=seed, steps=EXAMPLES * STEPS, step_count=STEPS, batch=EXAMPLES,
                    shrink=False)
    summary = ctx.model.verdicts.summary()
    na = sorted(c for c, status in ctx.model.verdicts.statuses().items() if status == "NA")
    print(f"{len(SEEDS)} seeds, {ctx.steps} steps in {time.monotonic() - started:.1f} s: {summary}; NA: {na}")
    assert summary["FAIL"] == 0
    assert ctx.steps >= len(SEEDS) * EXAMPLES * STEPS // 2
    assert summary["PASS"] >= 40  # the seeds together exercise most clauses
