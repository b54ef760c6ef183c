"""Ansible's community.vmware modules, unchanged, against the simulator and against vcsim (the peer).

One playbook per target, on localhost: ``vmware_deploy_ovf`` imports an OVF
(CPUs, memory, a NIC, two disks), ``vmware_guest_info`` reads the VM back,
``vmware_export_ovf`` exports it. Each task records its result (errors
ignored, so one failing module does not hide the others); the tests then
judge each module's result and compare the exported disks byte for byte
with the imported ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ovfsample import Sample, write_sample
from realclients import (  # noqa: F401
    NO_ANSIBLE, Endpoint, Run, ansible_available, ansible_playbook, endpoint, vcsim_lacks,
)

pytestmark = pytest.mark.skipif(not ansible_available(), reason=NO_ANSIBLE)

MiB = 1 << 20
VM = "ansible-import"


@dataclass
class PlaybookResults:
    run: Run
    sample: Sample
    export_dir: Path
    results: dict[str, Any]


@pytest.fixture(scope="module")
def played(endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> PlaybookResults:
    home = tmp_path_factory.mktemp(f"ansible-{endpoint.name}")
    sample = write_sample(home / "ovf", "ansible-sample", [2 * MiB, 1 * MiB], cpus=2, memory_mb=96)
    export_dir = home / "export"
    export_dir.mkdir()
    results = home / "results.json"
    connection = {"datacenter": "DC0"}
    tasks = [
        {"name": "deploy", "community.vmware.vmware_deploy_ovf": {
            **connection, "cluster": "DC0_C0", "datastore": "LocalDS_0", "name": VM, "ovf": str(sample.ovf),
            "networks": {sample.network: "VM Network"}, "power_on": False, "wait_for_ip_address": False},
         "register": "deploy", "ignore_errors": True},
        {"name": "info", "community.vmware.vmware_guest_info": {**connection, "name": VM, "schema": "summary"},
         "register": "info", "ignore_errors": True},
        {"name": "export", "community.vmware.vmware_export_ovf": {
            **connection, "name": VM, "export_dir": str(export_dir)},
         "register": "export", "ignore_errors": True},
        {"name": "results", "ansible.builtin.copy": {
            "dest": str(results), "content": "{{ {'deploy': deploy, 'info': info, 'export': export} | to_json }}"}},
    ]
    run = ansible_playbook(endpoint, tasks, home)
    assert results.exists(), f"the playbook did not finish:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    return PlaybookResults(run, sample, export_dir, json.loads(results.read_text()))


def module_result(played: PlaybookResults, task: str) -> dict[str, Any]:
    result = played.results[task]
    assert not result.get("failed"), f"{task}: {result.get('msg')}\n{played.run.stdout[-2000:]}"
    return result


def failed_with(played: PlaybookResults, task: str, text: str) -> bool:
    result = played.results[task]
    return bool(result.get("failed")) and text in str(result.get("msg"))


def test_ansible_vmware_deploy_ovf(endpoint: Endpoint, played: PlaybookResults) -> None:
    vcsim_lacks(endpoint, "vcsim 0.24's device URLs are https://*/nfc/... without its port: the module uploads "
                "to port 443", failed_with(played, "deploy", "Connection refused"))
    result = module_result(played, "deploy")
    assert result["changed"] and result["instance"]["hw_name"] == VM


def test_ansible_vmware_guest_info(endpoint: Endpoint, played: PlaybookResults) -> None:
    vcsim_lacks(endpoint, "vcsim 0.24 panics on the module's inventory reads (index out of range) and "
                "drops the connection", failed_with(played, "info", "Remote end closed connection"))
    instance = module_result(played, "info")["instance"]
    sample = played.sample
    assert instance["hw_name"] == VM and instance["hw_power_status"] == "poweredOff"
    assert instance["hw_processor_count"] == sample.cpus and instance["hw_memtotal_mb"] == sample.memory_mb
    assert instance["hw_datastores"] == ["LocalDS_0"]
    assert instance["hw_eth0"]["summary"] == "VM Network" and instance["hw_eth0"]["macaddress"]


def test_ansible_vmware_export_ovf_gives_back_the_imported_disks(endpoint: Endpoint, played: PlaybookResults) -> None:
    vcsim_lacks(endpoint, "vcsim 0.24 panics on the module's inventory reads (and has no ExportVm)",
                failed_with(played, "export", "Remote end closed connection"))
    module_result(played, "export")
    exported = sorted((played.export_dir / VM).glob("*.vmdk"))
    assert len(exported) == len(played.sample.disks), exported
    for source, copy in zip(played.sample.disks, exported):
        assert copy.read_bytes() == source.read_bytes(), f"{copy.name} differs from the imported {source.name}"
    descriptor = (played.export_dir / VM / f"{VM}.ovf").read_text()
    assert all(p.name in descriptor for p in exported) and "<rasd:Connection>VM Network" in descriptor
