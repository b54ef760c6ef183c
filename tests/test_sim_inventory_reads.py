"""What clients read of the inventory: every property, consistent values, the collector and search methods.

Driven with unmodified pyVmomi over real sockets; the disk-file checks look
at the simulator's datastore directory, where the NFC transfers write.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from pyVim.connect import Disconnect
from pyVmomi import vim, vmodl

from conftest import connect, envelope, soap_login, soap_post
from nfclease.sim import SimConfig, Simulator

PC = vmodl.query.PropertyCollector
TYPES = [vim.VirtualMachine, vim.VirtualApp, vim.ResourcePool, vim.ClusterComputeResource, vim.HostSystem,
         vim.Datastore, vim.Folder, vim.Datacenter, vim.Network]


@pytest.fixture(scope="module")
def inv_sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(lease_timeout=300, init_seconds=0.0)) as sim:
        yield sim


@pytest.fixture(scope="module")
def inv_si(inv_sim: Simulator) -> Iterator[Any]:
    si = connect(inv_sim)
    yield si
    Disconnect(si)


def objects_of(si: Any, kind: Any) -> list[Any]:
    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [kind], True)
    try:
        return list(view.view)
    finally:
        view.Destroy()


def datastore_file(sim: Simulator, datastore_path: str) -> Path:
    """The file a ``[LocalDS_0] dir/file`` path names in the simulator's storage."""
    match = re.fullmatch(r"\[([^\]]+)\] (.+)", datastore_path)
    assert match, datastore_path
    return Path(sim.service.inventory.datastore.directory) / match.group(2)


def test_every_declared_property_of_every_type_is_readable(inv_si: Any) -> None:
    for kind in TYPES:
        objects = objects_of(inv_si, kind)
        assert objects, f"no {kind._wsdlName} in the inventory"
        spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=o) for o in objects],
                             propSet=[PC.PropertySpec(type=kind, all=True)])
        contents = inv_si.content.propertyCollector.RetrieveContents([spec])
        assert len(contents) == len(objects)
        for obj in objects:  # each declared property, one Fetch at a time: never InvalidProperty
            for prop in kind._GetPropertyList():
                getattr(obj, prop.name)


def test_vm_disks_match_the_disk_files(inv_sim: Simulator, inv_si: Any) -> None:
    for vm in objects_of(inv_si, vim.VirtualMachine):
        config, layout, summary = vm.config, vm.layoutEx, vm.summary
        disks = [d for d in config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
        assert disks and summary.config.numVirtualDisks == len(disks)
        files = {f.name: f for f in layout.file}
        assert sorted(d.backing.fileName for d in disks) == sorted(files)
        controllers = {d.key: d for d in config.hardware.device if isinstance(d, vim.vm.device.VirtualSCSIController)}
        for disk in disks:
            path = datastore_file(inv_sim, disk.backing.fileName)
            assert path.is_file(), f"{vm.name}: {disk.backing.fileName} has no file"
            assert files[disk.backing.fileName].size == path.stat().st_size
            assert disk.capacityInBytes == disk.capacityInKB * 1024
            assert disk.key in controllers[disk.controllerKey].device
            assert disk.backing.datastore == vm.datastore[0]
        committed = sum(f.size for f in layout.file)
        assert vm.storage.perDatastoreUsage[0].committed == committed == summary.storage.committed
        assert summary.config.vmPathName == config.files.vmPathName and summary.config.uuid == config.uuid
        assert summary.runtime.powerState == vm.runtime.powerState
        assert vm.guest.guestState == ("running" if vm.runtime.powerState == "poweredOn" else "notRunning")
        nics = [d for d in config.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]
        assert [n.backing.network for n in nics] == list(vm.network)


def test_infrastructure_values_agree(inv_si: Any) -> None:
    vms = objects_of(inv_si, vim.VirtualMachine)
    (datastore,) = objects_of(inv_si, vim.Datastore)
    committed = sum(vm.storage.perDatastoreUsage[0].committed for vm in vms)
    assert datastore.summary.capacity - datastore.summary.freeSpace == committed
    assert sorted(v._moId for v in datastore.vm) == sorted(v._moId for v in vms)
    for host in objects_of(inv_si, vim.HostSystem):
        assert sorted(v._moId for v in host.vm) == sorted(v._moId for v in vms if v.runtime.host == host)
        assert host.summary.hardware.uuid == host.hardware.systemInfo.uuid
    (cluster,) = objects_of(inv_si, vim.ClusterComputeResource)
    assert cluster.summary.numHosts == len(cluster.host)
    for pool in objects_of(inv_si, vim.ResourcePool):
        assert all(vm.resourcePool == pool for vm in pool.vm)
    (vapp,) = objects_of(inv_si, vim.VirtualApp)
    assert all(vm.parentVApp == vapp for vm in vapp.vm)


def test_search_index(inv_si: Any) -> None:
    index = inv_si.content.searchIndex
    vm = index.FindByInventoryPath("DC0/vm/DC0_C0_RP0_VM0")
    datacenter = index.FindByInventoryPath("DC0")
    assert index.FindByUuid(None, vm.config.uuid, True) == vm
    assert index.FindByUuid(datacenter, vm.config.instanceUuid, True, True) == vm
    assert index.FindByUuid(None, "00000000-0000-0000-0000-000000000000", True) is None
    host = index.FindByInventoryPath("DC0/host/DC0_C0/DC0_C0_H0")
    assert list(index.FindAllByUuid(None, host.hardware.systemInfo.uuid, False)) == [host]
    assert index.FindByDatastorePath(datacenter, vm.config.files.vmPathName) == vm
    assert index.FindChild(datacenter.vmFolder, "DC0_C0_RP0_VM0") == vm
    assert index.FindChild(datacenter.vmFolder, "no such VM") is None


def test_sessions_see_their_own_current_session(inv_sim: Simulator, inv_si: Any) -> None:
    other = connect(inv_sim, user="someone-else")
    try:
        assert other.content.sessionManager.currentSession.userName == "someone-else"
        assert inv_si.content.sessionManager.currentSession.userName == "user"
        keys = {s.key for s in inv_si.content.sessionManager.sessionList}
        assert other.content.sessionManager.currentSession.key in keys
    finally:
        Disconnect(other)


def vm_spec(view: Any, paths: list[str]) -> Any:
    return PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[
        PC.TraversalSpec(type=vim.view.ContainerView, path="view")])],
        propSet=[PC.PropertySpec(type=vim.VirtualMachine, pathSet=paths)])


def test_retrieve_properties_ex_pages_with_continue(inv_si: Any) -> None:
    content = inv_si.content
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    everything = content.propertyCollector.RetrieveContents([vm_spec(view, ["name"])])
    result = content.propertyCollector.RetrievePropertiesEx([vm_spec(view, ["name"])], PC.RetrieveOptions(maxObjects=2))
    pages = [len(result.objects)]
    names = [o.propSet[0].val for o in result.objects]
    for _ in range(10):
        if not result.token:
            break
        result = content.propertyCollector.ContinueRetrievePropertiesEx(result.token)
        pages.append(len(result.objects))
        names += [o.propSet[0].val for o in result.objects]
    assert sorted(names) == sorted(o.propSet[0].val for o in everything) and len(names) >= 5
    assert max(pages) == 2 and not result.token
    with pytest.raises(vmodl.fault.InvalidArgument):
        content.propertyCollector.ContinueRetrievePropertiesEx("no-such-token")
    view.Destroy()


def test_created_collectors_and_update_versions(inv_si: Any) -> None:
    content = inv_si.content
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    collector = content.propertyCollector.CreatePropertyCollector()
    collector.CreateFilter(vm_spec(view, ["name", "runtime.powerState"]), True)
    assert len(collector.filter) == 1 and not content.propertyCollector.filter  # its own filters only
    no_wait = PC.WaitOptions(maxWaitSeconds=0)
    first = collector.WaitForUpdatesEx("", no_wait)
    assert first.version and all(o.kind == "enter" for o in first.filterSet[0].objectSet)
    assert collector.WaitForUpdatesEx(first.version, no_wait) is None  # nothing changed since
    again = collector.WaitForUpdatesEx("", no_wait)  # "" asks for everything again
    assert len(again.filterSet[0].objectSet) == len(first.filterSet[0].objectSet)
    vm = content.searchIndex.FindByInventoryPath("DC0/vm/DC0_C0_RP0_VM3")
    vm.PowerOnVM_Task()
    changed = collector.WaitForUpdatesEx(again.version, PC.WaitOptions(maxWaitSeconds=5))
    assert changed.version != again.version
    (update,) = changed.filterSet[0].objectSet
    assert update.obj == vm and update.kind == "modify"
    assert [(c.name, c.val) for c in update.changeSet] == [("runtime.powerState", "poweredOn")]
    vm.PowerOffVM_Task()
    collector.DestroyPropertyCollector()
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        collector.WaitForUpdatesEx("", no_wait)
    with pytest.raises(vmodl.fault.InvalidArgument):
        content.propertyCollector.DestroyPropertyCollector()
    view.Destroy()


def test_references_in_any_type_slots_are_typed_managed_object_reference(inv_sim: Simulator, inv_si: Any) -> None:
    """Go's strict decoder knows ManagedObjectReference, not pyVmomi's ``ManagedObject``."""
    vm = inv_si.content.searchIndex.FindByInventoryPath("DC0/vm/DC0_C0_RP0_VM0")
    inner = ("<specSet><propSet><type>VirtualMachine</type><pathSet>parent</pathSet><pathSet>datastore</pathSet>"
             f'</propSet><objectSet><obj type="VirtualMachine">{vm._moId}</obj></objectSet></specSet>')
    reply = soap_post(inv_sim, envelope("RetrieveProperties", "PropertyCollector", "propertyCollector", inner),
                      soap_login(inv_sim))
    assert reply.status == 200, reply.body[:500]
    assert b'xsi:type="ManagedObjectReference" type="Folder"' in reply.body
    assert b'xsi:type="ArrayOfManagedObjectReference"' in reply.body
    assert b'"ManagedObject"' not in reply.body and b"ArrayOfManagedObject\"" not in reply.body
