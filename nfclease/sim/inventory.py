"""The simulator's inventory: the ServiceInstance, its managers, one datacenter, and how to search it.

:class:`Inventory` builds the objects a fresh vCenter-like simulator shows
(``DC0`` with a two-host cluster, four VMs, a vApp, a snapshot), creates and
destroys VMs for the other handlers (import, destroy), and answers the
ServiceInstance, SearchIndex and ViewManager methods.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

from pyVmomi import VmomiSupport, vim

from nfclease.sim.leases import Lease
from nfclease.sim.world import (
    ClusterComputeResource, Datacenter, Datastore, Disk, Folder, HostSystem, MObject, Network, ResourcePool,
    Session, Snapshot, VirtualApp, VirtualMachine, World, now_utc,
)
from nfclease.vmdk import ContentPattern, StreamOptimizedDisk

#: ServiceInstanceContent field -> (managed object type, moid) of the managers the simulator has.
MANAGERS = {
    "propertyCollector": ("PropertyCollector", "propertyCollector"),
    "viewManager": ("ViewManager", "ViewManager"),
    "sessionManager": ("SessionManager", "SessionManager"),
    "searchIndex": ("SearchIndex", "SearchIndex"),
    "ovfManager": ("OvfManager", "OvfManager"),
    "taskManager": ("TaskManager", "TaskManager"),
}


class SimpleMO(MObject):
    """A managed object with fixed properties (managers, ServiceInstance)."""

    def __init__(self, world: World, type_name: str, moid: str, props: dict[str, Any] | None = None) -> None:
        self.type_name = type_name
        self.fixed = props or {}
        super().__init__(world, moid)

    def properties(self) -> dict[str, Callable[[], Any]]:
        return {k: (v if callable(v) else (lambda v=v: v)) for k, v in self.fixed.items()}


class View(MObject):
    type_name = "ContainerView"

    def __init__(self, world: World, container: MObject, types: list[Any], recursive: bool, session: str) -> None:
        super().__init__(world)
        self.container, self.types, self.recursive, self.session = container, types, recursive, session

    def properties(self) -> dict[str, Callable[[], Any]]:
        def members() -> list[Any]:
            candidates = (self.world.walk(self.container) if self.recursive
                          else self.container.children())
            members = {o.moid: o.ref for o in candidates if o is not self.container
                       and (not self.types or any(isinstance(o.ref, t) for t in self.types))}
            return list(members.values())
        return {"view": members, "container": lambda: self.container.ref,
                "type": lambda: [t._wsdlName for t in self.types], "recursive": lambda: self.recursive}


class Inventory:
    """The inventory objects and the methods that read or grow it."""

    def __init__(self, world: World, config: Any, storage: Path, version: str) -> None:
        self.world = world
        self.config = config
        self.storage = storage
        self.version = version
        self._build_service_instance()
        self._build_datacenter()

    # ------------------------------------------------------------------ building
    def _build_service_instance(self) -> None:
        w = self.world
        about = vim.AboutInfo(
            name="nfclease simulator", fullName=f"nfclease embedded simulator {self.config.product_version}",
            vendor="nfclease",
            version=self.config.product_version, build="1", osType="linux-x64", productLineId="vpx",
            apiType="VirtualCenter", apiVersion=VmomiSupport.versionIdMap[self.version],
            instanceUuid=str(uuid.uuid4()), licenseProductName="nfclease", licenseProductVersion="1.0")
        self.root = Folder(w, "Datacenters", ["Folder", "Datacenter"], moid="group-d1")
        self.managers = {}
        for field_name, (type_name, moid) in MANAGERS.items():
            self.managers[field_name] = SimpleMO(w, type_name, moid)
        self.managers["taskManager"].fixed["recentTask"] = lambda: [t.ref for t in w.recent_tasks]
        self.managers["viewManager"].fixed["viewList"] = self._caller_views
        self.content = vim.ServiceInstanceContent(
            rootFolder=self.root.ref, about=about,
            **{name: mo.ref for name, mo in self.managers.items()})
        self.service_instance = SimpleMO(w, "ServiceInstance", "ServiceInstance",
                                         {"content": self.content, "serverClock": now_utc,
                                          "capability": vim.Capability(provisioningSupported=True,
                                                                       multiHostSupported=True,
                                                                       userShellAccessSupported=False)})

    def _build_datacenter(self) -> None:
        w = self.world
        dc = self.root.add(Datacenter(w, "DC0"))
        ds_dir = self.storage / "LocalDS_0"
        ds_dir.mkdir(parents=True, exist_ok=True)
        self.datastore = dc.datastore_folder.add(Datastore(w, "LocalDS_0", ds_dir))
        self.network = dc.network_folder.add(Network(w, None, "VM Network"))
        cluster = dc.host_folder.add(ClusterComputeResource(w, "DC0_C0"))
        for index in range(2):
            host = HostSystem(w, None, f"DC0_C0_H{index}")
            host.parent = cluster
            cluster.hosts.append(host)
        self.datacenter, self.cluster, self.pool = dc, cluster, cluster.pool
        for index in range(4):
            self.new_vm(f"DC0_C0_RP0_VM{index}", dc.vm_folder, self.pool,
                        [(self.config.disk_capacity, ContentPattern("sequence" if index % 2 == 0 else "random",
                                                                    seed=f"VM{index}"))])
        vapp = VirtualApp(w, "DC0_VAPP0", dc.vm_folder)
        vapp.parent = self.pool
        self.pool.pools.append(vapp)
        dc.vm_folder.entries.append(vapp)
        self.new_vm("DC0_VAPP0_VM0", None, vapp,
                    [(self.config.disk_capacity, ContentPattern("sparse", seed="VAPP0"))])
        first = self.world.all_of(VirtualMachine)[0]
        first.snapshots.append(Snapshot(w, first, "snap0", "made by the simulator at start"))

    def new_vm(self, name: str, folder: Folder | None, pool: ResourcePool,
               disks: list[tuple[int, ContentPattern | None]]) -> VirtualMachine:
        """A VM in ``pool`` (and ``folder``) with disks of the given capacity, written when a pattern is given."""
        vm = VirtualMachine(self.world, name, pool, self.cluster.hosts[0], self.datastore)
        vm_dir = self.datastore.directory / vm.moid
        vm_dir.mkdir(parents=True, exist_ok=True)
        for index, (capacity, pattern) in enumerate(disks):
            path = vm_dir / f"{name}-{index}.vmdk"
            if pattern is not None:
                stream = StreamOptimizedDisk(capacity, pattern)
                with path.open("wb") as out:
                    for chunk in stream.iter_chunks():
                        out.write(chunk)
            vm.disks.append(Disk(path, capacity, f"Hard disk {index + 1}"))
        if folder is not None:
            folder.add(vm)
        else:
            vm.parent = pool
        pool.vms.append(vm)
        return vm

    def destroy_entity(self, obj: MObject) -> None:
        """Remove a VM or vApp (and its VMs) from the inventory and the datastore."""
        if isinstance(obj, VirtualApp):
            for vm in list(obj.vms):
                self.destroy_entity(vm)
            if obj in self.pool.pools:
                self.pool.pools.remove(obj)
            obj.folder.remove(obj)
        elif isinstance(obj, VirtualMachine):
            if isinstance(obj.parent, Folder):
                obj.parent.remove(obj)
            if obj.pool and obj in obj.pool.vms:
                obj.pool.vms.remove(obj)
            for snap in obj.snapshots:
                self.world.unregister(snap)
            shutil.rmtree(self.datastore.directory / obj.moid, ignore_errors=True)
        self.world.unregister(obj)

    def remove_created(self, lease: Lease) -> None:
        """Undo an import in error: destroy what it created, newest first."""
        for obj in reversed(lease.created):
            self.destroy_entity(obj)

    # ------------------------------------------------------------------ ServiceInstance
    def RetrieveServiceContent(self, session: Session | None, this: MObject) -> Any:
        return self.content

    def CurrentTime(self, session: Session | None, this: MObject) -> Any:
        return now_utc()

    # ------------------------------------------------------------------ inventory queries
    def FindByInventoryPath(self, session: Session, this: MObject, inventoryPath: str) -> Any:
        node: MObject = self.root
        for part in [p for p in inventoryPath.strip("/").split("/") if p]:
            matches = [c for c in node.children() if c.name == part]
            if not matches:
                return None
            node = matches[0]
        return node.ref

    def _caller_views(self) -> list[Any]:
        session = self.world.current_session()
        return [v.ref for v in self.world.all_of(View) if session is not None and v.session == session.key]

    def _vms_in(self, datacenter: Any) -> list[VirtualMachine]:
        vms = self.world.all_of(VirtualMachine)
        if datacenter is not None and self.world.resolve(datacenter) is not self.datacenter:
            return []
        return vms

    def FindAllByUuid(self, session: Session, this: MObject, uuid: str, vmSearch: bool, datacenter: Any = None,
                      instanceUuid: bool | None = None) -> list[Any]:
        wanted = uuid.lower()
        if not vmSearch:
            from nfclease.sim.infra_properties import host_uuid
            return [h.ref for h in self.world.all_of(HostSystem) if host_uuid(h) == wanted]
        return [vm.ref for vm in self._vms_in(datacenter)
                if (vm.instance_uuid if instanceUuid else vm.uuid).lower() == wanted]

    def FindByUuid(self, session: Session, this: MObject, uuid: str, vmSearch: bool, datacenter: Any = None,
                   instanceUuid: bool | None = None) -> Any:
        found = self.FindAllByUuid(session, this, uuid, vmSearch, datacenter, instanceUuid)
        return found[0] if found else None

    def FindByDatastorePath(self, session: Session, this: MObject, datacenter: Any, path: str) -> Any:
        from nfclease.sim.vm_properties import datastore_path
        return next((vm.ref for vm in self._vms_in(datacenter)
                     if datastore_path(vm, f"{vm.name}.vmx") == path), None)

    def FindByIp(self, session: Session, this: MObject, ip: str, vmSearch: bool, datacenter: Any = None) -> Any:
        return None  # no guest has VMware Tools, so none reports an IP address

    def FindByDnsName(self, session: Session, this: MObject, dnsName: str, vmSearch: bool,
                      datacenter: Any = None) -> Any:
        return None  # no guest has VMware Tools, so none reports a host name

    def FindAllByIp(self, session: Session, this: MObject, ip: str, vmSearch: bool, datacenter: Any = None) -> Any:
        return []

    def FindAllByDnsName(self, session: Session, this: MObject, dnsName: str, vmSearch: bool,
                         datacenter: Any = None) -> Any:
        return []

    def FindChild(self, session: Session, this: MObject, entity: Any, name: str) -> Any:
        parent = self.world.resolve(entity)
        return next((c.ref for c in parent.children() if c.name == name), None)

    def CreateContainerView(self, session: Session, this: MObject, container: Any, type: Any = None,
                            recursive: bool = False) -> Any:
        view = View(self.world, self.world.resolve(container), list(type or []), recursive, session.key)
        return view.ref

    def DestroyView(self, session: Session, this: MObject) -> None:
        self.world.unregister(this)
