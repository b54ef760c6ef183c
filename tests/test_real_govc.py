"""govc, unchanged, against the simulator and against vcsim (the peer).

govc (built by tools/build-govc from Debian's govmomi 0.24.2 source) sends
every SOAP body chunked and decodes answers with Go's strict XML decoder. Each
operation runs against both targets; what vcsim does not do is an xfail with
the reason (strict, so the list stays true). Every import is exported again
and its disks compared byte for byte with what was imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim

from conftest import wait_ready, wait_task
from ovfsample import Sample, write_ova, write_sample
from realclients import NO_GOVC, POOL, Endpoint, endpoint, govc, govc_available, pyvmomi, vcsim_lacks  # noqa: F401

pytestmark = pytest.mark.skipif(not govc_available(), reason=NO_GOVC)

MiB = 1 << 20
NO_EXPORT = "vcsim 0.24 has no VirtualMachine.ExportVm (MethodNotFound)"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return write_sample(tmp_path_factory.mktemp("ovf"), "govc-import", [2 * MiB, 1 * MiB])


def export_and_compare(endpoint: Endpoint, vm_name: str, sample: Sample, home: Path) -> None:
    """``govc export.ovf`` the VM, then compare each exported disk byte for byte with the imported one."""
    out = home / f"export-{vm_name}"
    run = govc(endpoint, "export.ovf", "-vm", vm_name, str(out), home=home)
    vcsim_lacks(endpoint, NO_EXPORT, run.returncode != 0 and "ExportVm" in run.stderr)
    run.check()
    exported = sorted((out / vm_name).glob("*.vmdk"))
    assert len(exported) == len(sample.disks), exported
    for source, copy in zip(sample.disks, exported):
        assert copy.read_bytes() == source.read_bytes(), f"{copy.name} differs from the imported {source.name}"
    descriptor = (out / vm_name / f"{vm_name}.ovf").read_text()
    assert "<VirtualSystem" in descriptor and all(p.name in descriptor for p in exported)


def test_govc_about(endpoint: Endpoint, tmp_path: Path) -> None:
    about = json.loads(govc(endpoint, "about", "-json", home=tmp_path).check().stdout)["About"]
    assert about["ApiType"] == "VirtualCenter" and about["ApiVersion"]


def test_govc_ls(endpoint: Endpoint, tmp_path: Path) -> None:
    listed = set(govc(endpoint, "ls", home=tmp_path).check().stdout.split())
    assert {"/DC0/vm", "/DC0/host", "/DC0/datastore", "/DC0/network"} <= listed
    vms = govc(endpoint, "ls", "/DC0/vm", home=tmp_path).check().stdout.split()
    assert "/DC0/vm/DC0_C0_RP0_VM0" in vms
    hosts = govc(endpoint, "ls", "-t", "HostSystem", "/DC0/host/DC0_C0", home=tmp_path).check().stdout.split()
    assert "/DC0/host/DC0_C0/DC0_C0_H0" in hosts


def test_govc_vm_info(endpoint: Endpoint, tmp_path: Path) -> None:
    text = govc(endpoint, "vm.info", "-r", "DC0_C0_RP0_VM0", home=tmp_path).check().stdout
    assert "Path:" in text and "/DC0/vm/DC0_C0_RP0_VM0" in text and "Network:" in text
    every = json.loads(govc(endpoint, "vm.info", "-json", "DC0_C0_RP0_VM0", home=tmp_path).check().stdout)
    vm = every["VirtualMachines"][0]
    disks = [d for d in vm["Config"]["Hardware"]["Device"] if "CapacityInKB" in d]
    assert disks and all(d["Backing"]["FileName"].startswith("[") for d in disks)
    assert vm["Summary"]["Config"]["NumVirtualDisks"] == len(disks)
    assert "GuestState" in vm["Guest"] and vm["Runtime"]["PowerState"] in ("poweredOff", "poweredOn")
    assert vm["Datastore"] and vm["ResourcePool"]["Type"] == "ResourcePool"


def test_govc_import_ovf_then_export_ovf(endpoint: Endpoint, sample: Sample, tmp_path: Path) -> None:
    govc(endpoint, "import.ovf", "-ds", "LocalDS_0", "-pool", POOL, "-name", "govc-ovf", str(sample.ovf),
         home=tmp_path).check()
    info = json.loads(govc(endpoint, "vm.info", "-json", "govc-ovf", home=tmp_path).check().stdout)
    config = info["VirtualMachines"][0]["Config"]
    assert config["Hardware"]["NumCPU"] == sample.cpus and config["Hardware"]["MemoryMB"] == sample.memory_mb
    nics = [d for d in config["Hardware"]["Device"] if "MacAddress" in d]
    assert [n["Backing"]["DeviceName"] for n in nics] == [sample.network]
    disks = [d for d in config["Hardware"]["Device"] if "CapacityInKB" in d]
    assert [d["CapacityInKB"] * 1024 for d in disks] == sample.capacities
    export_and_compare(endpoint, "govc-ovf", sample, tmp_path)


def test_govc_import_ova_then_export_ovf(endpoint: Endpoint, sample: Sample, tmp_path: Path) -> None:
    ova = write_ova(sample, tmp_path / "sample.ova")
    govc(endpoint, "import.ova", "-ds", "LocalDS_0", "-pool", POOL, "-name", "govc-ova", str(ova),
         home=tmp_path).check()
    export_and_compare(endpoint, "govc-ova", sample, tmp_path)


def test_govc_power_on_refused_while_a_lease_is_held(endpoint: Endpoint, sample: Sample, tmp_path: Path) -> None:
    si = pyvmomi(endpoint)
    try:
        pool = si.content.searchIndex.FindByInventoryPath(POOL.lstrip("/"))
        datacenter = si.content.searchIndex.FindByInventoryPath("DC0")
        params = vim.OvfManager.CreateImportSpecParams(entityName="govc-held")
        spec = si.content.ovfManager.CreateImportSpec(sample.ovf.read_text(), pool, datacenter.datastore[0], params)
        lease = pool.ImportVApp(spec.importSpec, datacenter.vmFolder)
        wait_ready(lease)
        refused = govc(endpoint, "vm.power", "-on", "govc-held", home=tmp_path)
        lease.HttpNfcLeaseComplete()
        vcsim_lacks(endpoint, "vcsim 0.24 powers on a VM that an import lease holds", refused.returncode == 0)
        assert refused.returncode != 0 and "HttpNfcLease" in refused.stderr, refused.stderr
        govc(endpoint, "vm.power", "-on", "govc-held", home=tmp_path).check()  # released: it powers on
        vm = si.content.searchIndex.FindByInventoryPath("DC0/vm/govc-held")
        assert vm.runtime.powerState == "poweredOn"
    finally:
        Disconnect(si)


def every_object(si: Any) -> list[Any]:
    """The inventory's objects, the ServiceInstance and its managers."""
    content = si.content
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ManagedEntity], True)
    objects = [content.rootFolder, *view.view]
    view.Destroy()
    managers = [content.propertyCollector, content.viewManager, content.sessionManager, content.searchIndex,
                content.ovfManager, content.taskManager]
    return [si, *objects, *managers]


def test_govc_reads_every_property_of_every_object(endpoint: Endpoint, tmp_path: Path) -> None:
    """``govc object.collect -json`` (all properties, Go's strict decoding) of every kind of object."""
    si = pyvmomi(endpoint)
    try:
        vm = si.content.searchIndex.FindByInventoryPath("DC0/vm/DC0_C0_RP0_VM1")
        task = vm.CreateSnapshot_Task("read-me", "", False, False)
        extra = [task, wait_task(task).result]  # a task and a snapshot
        if endpoint.name == "sim":  # vcsim 0.24 has no ExportVm
            extra.append(vm.ExportVm())
            wait_ready(extra[-1])
        failures, kinds = [], set()
        for obj in [*every_object(si), *extra]:
            ref = f"{obj._wsdlName}:{obj._moId}"
            kinds.add(obj._wsdlName)
            run = govc(endpoint, "object.collect", "-json", ref, home=tmp_path)
            changes = json.loads(run.stdout) if run.returncode == 0 else []
            if run.returncode != 0 or (isinstance(obj, vim.ManagedEntity) and not changes):
                failures.append(f"{ref}: {run.stderr.strip()[:300]}")
        for lease in extra[2:]:
            lease.HttpNfcLeaseComplete()
        expected = {"VirtualMachine", "ResourcePool", "ClusterComputeResource", "HostSystem", "Datastore",
                    "Folder", "Datacenter", "Network", "Task", "VirtualMachineSnapshot"}
        if endpoint.name == "sim":  # vcsim's default inventory has no vApp
            expected |= {"VirtualApp", "HttpNfcLease"}
        assert expected <= kinds
        assert not failures, "\n".join(failures)
    finally:
        Disconnect(si)
