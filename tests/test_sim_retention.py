"""Released leases stay answerable for a while, then are forgotten.

The spec's InvalidState answers need a lease to outlive Complete/Abort; real
servers delete it soon after (ManagedObjectNotFound, FIELD-NOTES). Retention
keeps both, and keeps a churn run's memory bounded.
"""

from __future__ import annotations

import time

import pytest
from pyVmomi import vim, vmodl

from nfclease.sim import SimConfig, Simulator
from tests.conftest import connect, find_vm, wait_for


@pytest.fixture(scope="module")
def short_retention_sim():
    with Simulator(SimConfig(lease_timeout=5, init_seconds=0.05, release_retention=0.5,
                             max_released_leases=3)) as sim:
        yield sim


def _ready_export(si: vim.ServiceInstance, name: str) -> vim.HttpNfcLease:
    lease = find_vm(si, name).ExportVm()
    wait_for(lambda: lease.state == "ready", what="lease ready")
    return lease


def test_released_lease_answers_invalid_state_then_is_forgotten(short_retention_sim) -> None:
    si = connect(short_retention_sim)
    lease = _ready_export(si, "DC0_C0_RP0_VM1")
    lease.HttpNfcLeaseComplete()
    with pytest.raises(vim.fault.InvalidState):
        lease.HttpNfcLeaseComplete()
    time.sleep(0.8)
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        lease.HttpNfcLeaseComplete()


def test_released_leases_beyond_the_cap_are_forgotten_oldest_first(short_retention_sim) -> None:
    si = connect(short_retention_sim)
    leases = []
    for _ in range(5):
        lease = _ready_export(si, "DC0_C0_RP0_VM2")
        lease.HttpNfcLeaseAbort()
        leases.append(lease)
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        leases[0].HttpNfcLeaseAbort()
    with pytest.raises(vim.fault.InvalidState):
        leases[-1].HttpNfcLeaseAbort()
    service = short_retention_sim.service
    assert len(service.leases.by_ticket) <= 3 + 1
