"""The Hypothesis state machine against the target of ``--nfclease-target`` (default: the simulator).

A FAIL judgement makes a rule raise; Hypothesis shrinks the run and prints the
shortest failing sequence as a program (``state = LeaseMachine()``,
``leases_0 = state.acquire_import(disks=1, file=False)``, ...), below the
clause, what was expected and what was observed.
"""

from __future__ import annotations

import importlib.metadata

from nfclease.conformance.machine import run_machine

# nfclease's entry point registers the plugin once the package is installed
# (tools/test does); otherwise name it here, so the fixtures exist.
pytest_plugins = [] if "nfclease" in {ep.name for ep in importlib.metadata.entry_points(group="pytest11")} \
    else ["nfclease.conformance.plugin"]


def test_lease_state_machine(nfclease_run, nfclease_profile, nfclease_seed) -> None:
    steps = run_machine(nfclease_run, nfclease_profile, seed=nfclease_seed, shrink=True)
    assert steps > 0
