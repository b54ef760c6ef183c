"""The simulator's vim25 methods: one handler per SOAP method, by wsdl name.

:class:`Service` owns the world (inventory, sessions, leases) and answers a
decoded :class:`~nfclease.sim.soap.SoapRequest`. A handler is the method
named like the wsdl operation (``HttpNfcLeaseProgress``), called with the
session, the ``_this`` object and the arguments; what it returns is
serialised with the method's declared result type. Raising
:class:`~nfclease.sim.soap.SoapError` answers with that fault. Methods pyVmomi
knows but the simulator does not implement get ``NotImplemented``.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import queue
import shutil
import ssl
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyVmomi import SoapAdapter, VmomiSupport, vim, vmodl
from pyVmomi.VmomiSupport import ManagedObject

from nfclease.sim import ovfparse
from nfclease.sim.leases import Device, Lease, LeaseManager
from nfclease.sim.soap import FetchInfo, SoapError, SoapRequest, moref
from nfclease.sim.world import (
    ClusterComputeResource, Datacenter, Datastore, Disk, Folder, HostSystem, MObject, ResourcePool,
    Session, Snapshot, Task, VirtualApp, VirtualMachine, World, not_found, now_utc, type_matches,
)
from nfclease.vmdk import ContentPattern, StreamChecker, StreamOptimizedDisk, VmdkError

NO_SESSION_METHODS = {"RetrieveServiceContent", "Login", "CurrentTime", "LoginByToken", "LoginExtensionByCertificate"}


class SimpleMO(MObject):
    """A managed object with fixed properties (managers, ServiceInstance)."""

    def __init__(self, world: World, type_name: str, moid: str, props: dict[str, Any] | None = None) -> None:
        self.type_name = type_name
        self.fixed = props or {}
        super().__init__(world, moid)

    def properties(self):
        return {k: (v if callable(v) else (lambda v=v: v)) for k, v in self.fixed.items()}


class View(MObject):
    type_name = "ContainerView"

    def __init__(self, world: World, container: MObject, types: list[Any], recursive: bool, session: str) -> None:
        super().__init__(world)
        self.container, self.types, self.recursive, self.session = container, types, recursive, session

    def properties(self):
        def members():
            candidates = (self.world.walk(self.container) if self.recursive
                          else self.container.children())
            members = {o.moid: o.ref for o in candidates if o is not self.container
                       and (not self.types or any(isinstance(o.ref, t) for t in self.types))}
            return list(members.values())
        return {"view": members, "container": lambda: self.container.ref,
                "type": lambda: [t._wsdlName for t in self.types], "recursive": lambda: self.recursive}


class Filter(MObject):
    type_name = "PropertyFilter"

    def __init__(self, world: World, spec: Any, partial: bool, session: Session) -> None:
        super().__init__(world)
        self.spec, self.partial, self.session = spec, partial, session
        self.last: dict[str, dict[str, str]] = {}
        self.values: dict[str, dict[str, Any]] = {}

    def properties(self):
        return {"spec": lambda: self.spec, "partialUpdates": lambda: self.partial}


def declared_type(obj: MObject, path: str) -> type:
    """The pyVmomi type a property path of ``obj`` is declared with."""
    try:
        info = type(obj.ref)._GetPropertyInfo(path.split(".")[0])
        typ = info.type
        for part in path.split(".")[1:]:
            typ = typ._GetPropertyInfo(part).type
        return typ
    except (AttributeError, KeyError):
        return object


def in_version(obj: MObject, path: str, version: str) -> bool:
    """Whether the property ``path`` of ``obj`` exists in API ``version`` (undeclared ones: yes)."""
    try:
        info = type(obj.ref)._GetPropertyInfo(path.split(".")[0])
    except (AttributeError, KeyError):
        return True
    return VmomiSupport.IsChildVersion(version, info.version)


def typed(value: Any, typ: type) -> Any:
    """Give plain Python values the vim types the serializer needs (arrays, enums)."""
    if isinstance(value, list) and isinstance(typ, type) and issubclass(typ, list):
        return typ(value)
    if isinstance(value, str) and isinstance(typ, type) and issubclass(typ, VmomiSupport.Enum):
        return getattr(typ, value, value)
    return value


class VmOperations:
    """Power, destroy, relocate and snapshot: refused while a lease covers the VM."""

    def _task(self: Any, description: str, entity: MObject) -> Task:
        return Task(self.world, description, entity, description.split(".")[-1])

    def PowerOnVM_Task(self: Any, session, this, host=None):
        self.leases.check_unlocked(this, "PowerOn")
        task = self._task("VirtualMachine.powerOn", this)
        if this.power_state == "poweredOn":
            task.fail(vim.fault.InvalidPowerState(requestedState="poweredOn", existingState="poweredOn",
                                                  msg="The virtual machine is already powered on"))
        else:
            this.power_state = "poweredOn"
            task.succeed(None)
        return task.ref

    def PowerOffVM_Task(self: Any, session, this):
        task = self._task("VirtualMachine.powerOff", this)
        if this.power_state == "poweredOff":
            task.fail(vim.fault.InvalidPowerState(requestedState="poweredOff", existingState="poweredOff",
                                                  msg="The virtual machine is already powered off"))
        else:
            this.power_state = "poweredOff"
            task.succeed(None)
        return task.ref

    def Destroy_Task(self: Any, session, this):
        if isinstance(this, VirtualApp):
            for vm in this.vms:
                self.leases.check_unlocked(vm, "Destroy")
        elif isinstance(this, VirtualMachine):
            self.leases.check_unlocked(this, "Destroy")
        else:
            raise SoapError(vmodl.fault.NotSupported(), f"the simulator destroys only VMs and vApps, not {this}")
        task = self._task(f"{this.type_name}.destroy", this)
        self._destroy_entity(this)
        task.succeed(None)
        return task.ref

    def RelocateVM_Task(self: Any, session, this, spec, priority=None):
        self.leases.check_unlocked(this, "Relocate")
        task = self._task("VirtualMachine.relocate", this)
        if spec.host is not None:
            host = self.world.resolve(spec.host, HostSystem)
            this.host = host
        if spec.pool is not None:
            pool = self.world.resolve(spec.pool, ResourcePool)
            if this in this.pool.vms:
                this.pool.vms.remove(this)
            pool.vms.append(this)
            this.pool = pool
        task.succeed(None)
        return task.ref

    def CreateSnapshot_Task(self: Any, session, this, name, description=None, memory=False, quiesce=False):
        self.leases.check_unlocked(this, "CreateSnapshot")
        task = self._task("VirtualMachine.createSnapshot", this)
        snapshot = Snapshot(self.world, this, name, description or "")
        this.snapshots.append(snapshot)
        task.succeed(snapshot.ref)
        return task.ref

    def RemoveSnapshot_Task(self: Any, session, this, removeChildren, consolidate=None):
        task = self._task("VirtualMachineSnapshot.remove", this.vm)
        if this in this.vm.snapshots:
            this.vm.snapshots.remove(this)
        self.world.unregister(this)
        task.succeed(None)
        return task.ref



class Service(VmOperations):
    """All SOAP methods of the simulator."""

    def __init__(self, config: Any, storage: Path, version: str) -> None:
        self.config = config
        self.storage = storage
        self.version = version
        self.world = World()
        self.sessions: dict[str, Session] = {}
        self.leases = LeaseManager(self.world, config, storage)
        self.leases.remove_created = self._remove_created
        self.leases.adopt_disks = self._adopt_disks
        self._build_inventory()

    # ------------------------------------------------------------------ inventory
    def _build_inventory(self) -> None:
        w = self.world
        about = vim.AboutInfo(
            name="nfclease simulator", fullName=f"nfclease embedded simulator {self.config.product_version}",
            vendor="nfclease",
            version=self.config.product_version, build="1", osType="linux-x64", productLineId="vpx",
            apiType="VirtualCenter", apiVersion=VmomiSupport.versionIdMap[self.version],
            instanceUuid=str(uuid.uuid4()), licenseProductName="nfclease", licenseProductVersion="1.0")
        self.root = Folder(w, "Datacenters", ["Folder", "Datacenter"], moid="group-d1")
        managers = {
            "propertyCollector": ("PropertyCollector", "propertyCollector"),
            "viewManager": ("ViewManager", "ViewManager"),
            "sessionManager": ("SessionManager", "SessionManager"),
            "searchIndex": ("SearchIndex", "SearchIndex"),
            "ovfManager": ("OvfManager", "OvfManager"),
            "taskManager": ("TaskManager", "TaskManager"),
        }
        self.managers = {}
        for field_name, (type_name, moid) in managers.items():
            self.managers[field_name] = SimpleMO(w, type_name, moid)
        self.managers["taskManager"].fixed["recentTask"] = lambda: [t.ref for t in w.recent_tasks]
        self.managers["sessionManager"].fixed["currentSession"] = lambda: None
        self.content = vim.ServiceInstanceContent(
            rootFolder=self.root.ref, about=about,
            **{name: mo.ref for name, mo in self.managers.items()})
        self.service_instance = SimpleMO(w, "ServiceInstance", "ServiceInstance",
                                         {"content": self.content, "serverClock": now_utc,
                                          "capability": vim.Capability(provisioningSupported=True,
                                                                       multiHostSupported=True,
                                                                       userShellAccessSupported=False)})
        dc = self.root.add(Datacenter(w, "DC0"))
        ds_dir = self.storage / "LocalDS_0"
        ds_dir.mkdir(parents=True, exist_ok=True)
        self.datastore = dc.datastore_folder.add(Datastore(w, "LocalDS_0", ds_dir))
        self.leases.datastore_key = self.datastore.moid
        cluster = dc.host_folder.add(ClusterComputeResource(w, "DC0_C0"))
        for index in range(2):
            host = HostSystem(w, None, f"DC0_C0_H{index}")
            host.parent = cluster
            cluster.hosts.append(host)
        self.datacenter, self.cluster, self.pool = dc, cluster, cluster.pool
        for index in range(4):
            self._new_vm(f"DC0_C0_RP0_VM{index}", dc.vm_folder, self.pool,
                         [(self.config.disk_capacity, ContentPattern("sequence" if index % 2 == 0 else "random",
                                                                     seed=f"VM{index}"))])
        vapp = VirtualApp(w, "DC0_VAPP0", dc.vm_folder)
        vapp.parent = self.pool
        self.pool.pools.append(vapp)
        dc.vm_folder.entries.append(vapp)
        self._new_vm("DC0_VAPP0_VM0", None, vapp,
                     [(self.config.disk_capacity, ContentPattern("sparse", seed="VAPP0"))])
        first = self.world.all_of(VirtualMachine)[0]
        first.snapshots.append(Snapshot(w, first, "snap0", "made by the simulator at start"))

    def _new_vm(self, name: str, folder: Folder | None, pool: ResourcePool,
                disks: list[tuple[int, ContentPattern | None]]) -> VirtualMachine:
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

    def _destroy_entity(self, obj: MObject) -> None:
        """Remove a VM or vApp (and its VMs) from the inventory and the datastore."""
        if isinstance(obj, VirtualApp):
            for vm in list(obj.vms):
                self._destroy_entity(vm)
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

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, request: SoapRequest, session_key: str | None) -> tuple[Any, type, Session | None]:
        """Run a request; return (result, declared result type, new session if Login)."""
        with self.world.lock:
            session = self.sessions.get(session_key or "")
            if request.method not in NO_SESSION_METHODS and session is None:
                raise SoapError(vim.fault.NotAuthenticated(object=request.this, privilegeId="System.View"),
                                "The session is not authenticated.")
            this = self._resolve_this(request.this, session)
            if isinstance(request.info, FetchInfo):
                prop = request.args.get("prop", "")
                self._check_version(this, prop)
                value = this.get(prop)
                typ = declared_type(this, prop)
                return typed(value, typ), typ, None
            handler = getattr(self, request.method, None)
            if handler is None:
                raise SoapError(vmodl.fault.NotImplemented(),
                                f"{request.method} is not implemented by the nfclease simulator")
            if not isinstance(this.ref, request.info.type):
                raise SoapError(vmodl.fault.MethodNotFound(receiver=this.ref, method=request.method),
                                f"{this.type_name} has no method {request.method}")
        if request.method == "HttpNfcLeaseGetManifest" and isinstance(this, Lease):
            for device in list(this.devices):  # an exact manifest: wait for stored bytes to be hashed
                device.hashed.wait(MANIFEST_HASH_WAIT)
                algorithm = device.wanted.get("type")
                if algorithm:
                    device.checksum(algorithm)  # asked for after the transfer: hash now, outside the lock
        if request.method in self.LONG_POLL:
            result = handler(session, this, **request.args)
        else:
            with self.world.lock:
                result = handler(session, this, **request.args)
        new_session = result if isinstance(result, vim.UserSession) else None
        return result, request.info.result, new_session

    LONG_POLL = {"WaitForUpdates", "WaitForUpdatesEx"}

    def _check_version(self, obj: MObject, path: str) -> None:
        """A property added after the advertised API version does not exist (InvalidProperty)."""
        if not in_version(obj, path, self.version):
            raise SoapError(vmodl.query.InvalidProperty(name=path),
                            f"{obj.type_name} has no property {path!r} in API version "
                            f"{VmomiSupport.versionIdMap[self.version]}")

    def _resolve_this(self, ref: ManagedObject, session: Session | None) -> MObject:
        obj = self.world.resolve(ref)
        if isinstance(obj, Lease) and session is not None and obj.session_key != session.key:
            raise not_found(ref, "the lease belongs to another session")
        return obj

    # ------------------------------------------------------------------ ServiceInstance / sessions
    def RetrieveServiceContent(self, session, this):
        return self.content

    def CurrentTime(self, session, this):
        return now_utc()

    def Login(self, session, this, userName, password, locale=None):
        cfg = self.config
        if not userName or not password or (cfg.username is not None and
                                            (userName, password) != (cfg.username, cfg.password)):
            raise SoapError(vim.fault.InvalidLogin(), "Cannot complete login due to an incorrect user name or password.")
        key = str(uuid.uuid4())
        new = Session(key, userName)
        self.sessions[key] = new
        return vim.UserSession(key=key, userName=userName, fullName=userName, loginTime=new.login_time,
                               lastActiveTime=now_utc(), locale=locale or "en", messageLocale="en",
                               extensionSession=False, ipAddress="127.0.0.1", userAgent="", callCount=0)

    def Logout(self, session, this):
        self.sessions.pop(session.key, None)
        for flt in list(session.filters):
            self.world.unregister(flt)

    def SessionIsActive(self, session, this, sessionID, userName):
        found = self.sessions.get(sessionID)
        return bool(found and found.user == userName)

    # ------------------------------------------------------------------ inventory queries
    def FindByInventoryPath(self, session, this, inventoryPath):
        node: MObject = self.root
        for part in [p for p in inventoryPath.strip("/").split("/") if p]:
            matches = [c for c in node.children() if c.name == part]
            if not matches:
                return None
            node = matches[0]
        return node.ref

    def FindChild(self, session, this, entity, name):
        parent = self.world.resolve(entity)
        return next((c.ref for c in parent.children() if c.name == name), None)

    def CreateContainerView(self, session, this, container, type=None, recursive=False):
        view = View(self.world, self.world.resolve(container), list(type or []), recursive, session.key)
        return view.ref

    def DestroyView(self, session, this):
        self.world.unregister(this)

    # ------------------------------------------------------------------ property collector
    def _selected(self, obj_spec: Any, named: dict[str, Any]) -> list[MObject]:
        found: dict[str, MObject] = {}
        seen: set[tuple[str, int]] = set()

        def visit(obj: MObject, selections: list[Any], skip: bool) -> None:
            if not skip:
                found.setdefault(obj.moid, obj)
            for selection in selections or []:
                spec = selection if isinstance(selection, vmodl.query.PropertyCollector.TraversalSpec) \
                    else named.get(selection.name)
                if spec is None or not isinstance(obj.ref, spec.type):
                    continue
                if (obj.moid, id(spec)) in seen:
                    continue
                seen.add((obj.moid, id(spec)))
                try:
                    value = obj.get(spec.path)
                except SoapError:
                    continue
                for ref in value if isinstance(value, list) else [value]:
                    child = self.world.objects.get(getattr(ref, "_moId", None))
                    if child is not None:
                        visit(child, spec.selectSet, bool(spec.skip))

        start = self.world.resolve(obj_spec.obj)
        visit(start, obj_spec.selectSet, bool(obj_spec.skip))
        return list(found.values())

    def _named_specs(self, spec: Any) -> dict[str, Any]:
        named: dict[str, Any] = {}

        def collect(selections: list[Any]) -> None:
            for selection in selections or []:
                if isinstance(selection, vmodl.query.PropertyCollector.TraversalSpec):
                    if selection.name and selection.name not in named:
                        named[selection.name] = selection
                        collect(selection.selectSet)
        for obj_spec in spec.objectSet:
            collect(obj_spec.selectSet)
        return named

    def _paths(self, obj: MObject, spec: Any) -> list[str]:
        paths: list[str] = []
        for prop_spec in spec.propSet:
            if isinstance(obj.ref, prop_spec.type):
                if prop_spec.all:
                    paths.extend(p for p in obj.properties() if in_version(obj, p, self.version))
                else:
                    paths.extend(prop_spec.pathSet or [])
        return list(dict.fromkeys(paths))

    def _values(self, spec: Any) -> dict[str, tuple[MObject, dict[str, Any]]]:
        out: dict[str, tuple[MObject, dict[str, Any]]] = {}
        named = self._named_specs(spec)
        for obj_spec in spec.objectSet:
            for obj in self._selected(obj_spec, named):
                paths = self._paths(obj, spec)
                props = obj.properties()  # one instant for all of the object's paths
                values = {}
                for path in paths:
                    self._check_version(obj, path)
                    values[path] = typed(obj.get(path, props), declared_type(obj, path))
                out[obj.moid] = (obj, values)
        return out

    def RetrievePropertiesEx(self, session, this, specSet, options=None):
        objects = []
        for spec in specSet:
            for obj, values in self._values(spec).values():
                objects.append(vmodl.query.PropertyCollector.ObjectContent(
                    obj=obj.ref, propSet=[vmodl.DynamicProperty(name=k, val=v)
                                          for k, v in values.items() if v is not None]))
        return vmodl.query.PropertyCollector.RetrieveResult(objects=objects) if objects else None

    def RetrieveProperties(self, session, this, specSet):
        result = self.RetrievePropertiesEx(session, this, specSet)
        return result.objects if result else []

    def ContinueRetrievePropertiesEx(self, session, this, token):
        raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="token"), "no such token")

    def CreateFilter(self, session, this, spec, partialUpdates):
        flt = Filter(self.world, spec, partialUpdates, session)
        session.filters.append(flt)
        return flt.ref

    def DestroyPropertyFilter(self, session, this):
        if this in this.session.filters:
            this.session.filters.remove(this)
        self.world.unregister(this)

    def _updates(self, session: Session) -> list[Any]:
        PC = vmodl.query.PropertyCollector
        filter_updates = []
        for flt in session.filters:
            try:
                current = self._values(flt.spec)
            except SoapError:
                current = {}
            object_updates = []
            for moid, (obj, values) in current.items():
                prints = {k: repr(v) for k, v in values.items()}
                before = flt.last.get(moid)
                if before is None:
                    changes = [PC.Change(name=k, op="assign", val=v) for k, v in values.items()]
                    object_updates.append(PC.ObjectUpdate(kind="enter", obj=obj.ref, changeSet=changes))
                else:
                    changes = [PC.Change(name=k, op="assign", val=values[k])
                               for k in values if before.get(k) != prints[k]]
                    if changes:
                        object_updates.append(PC.ObjectUpdate(kind="modify", obj=obj.ref, changeSet=changes))
                flt.last[moid] = prints
            for moid in [m for m in flt.last if m not in current]:
                del flt.last[moid]
                object_updates.append(PC.ObjectUpdate(kind="leave", obj=moref("ManagedEntity", moid)))
            if object_updates:
                filter_updates.append(PC.FilterUpdate(filter=flt.ref, objectSet=object_updates))
        return filter_updates

    def WaitForUpdatesEx(self, session, this, version=None, options=None):
        max_wait = getattr(options, "maxWaitSeconds", None) if options else None
        deadline = time.monotonic() + (max_wait if max_wait is not None else 3600)
        with self.world.changed:
            while True:
                seen = self.world.generation
                updates = self._updates(session)
                if updates:
                    next_version = str(int(version or 0) + 1) if (version or "0").isdigit() else "1"
                    return vmodl.query.PropertyCollector.UpdateSet(version=next_version, filterSet=updates)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or session.key not in self.sessions:
                    return None
                while self.world.generation == seen and remaining > 0:
                    self.world.changed.wait(min(remaining, 1.0))
                    remaining = deadline - time.monotonic()

    def WaitForUpdates(self, session, this, version=None):
        while True:
            result = self.WaitForUpdatesEx(session, this, version, None)
            if result is not None:
                return result

    def CheckForUpdates(self, session, this, version=None):
        options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=0)
        return self.WaitForUpdatesEx(session, this, version, options)

    def CancelWaitForUpdates(self, session, this):
        self.world.touch()

    # ------------------------------------------------------------------ OVF and import
    def CreateImportSpec(self, session, this, ovfDescriptor, resourcePool, datastore, cisp):
        package = ovfparse.parse(ovfDescriptor, cisp.entityName if cisp else None)
        result = vim.OvfManager.CreateImportSpecResult(error=package.errors or None,
                                                       warning=package.warnings or None)
        if package.errors:
            return result
        file_items = []
        child_specs = []
        for system in package.systems:
            devices: list[Any] = [vim.vm.device.VirtualDeviceSpec(
                operation="add", device=vim.vm.device.VirtualLsiLogicController(key=-100, busNumber=0,
                                                                                  sharedBus="noSharing"))]
            for unit, disk in enumerate(system.disks):
                devices.append(vim.vm.device.VirtualDeviceSpec(
                    operation="add", fileOperation="create",
                    device=vim.vm.device.VirtualDisk(
                        key=-(200 + unit), controllerKey=-100, unitNumber=unit,
                        capacityInKB=max(1, disk.capacity // 1024), capacityInBytes=disk.capacity,
                        backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent",
                                                                               fileName=""))))
                if disk.file is not None:
                    file_items.append(vim.OvfManager.FileItem(
                        deviceId=f"/{system.name}/VirtualLsiLogicController0:{unit}", path=disk.file.href,
                        size=disk.file.size, cimType=17, create=False))
            extra = []
            for ovf_file in system.files:
                extra.append(vim.option.OptionValue(key=f"nfclease.file.{ovf_file.href}", value=ovf_file.href))
                file_items.append(vim.OvfManager.FileItem(
                    deviceId=f"/{system.name}/{ovf_file.href}", path=ovf_file.href, size=ovf_file.size,
                    cimType=0, create=True))
            config = vim.vm.ConfigSpec(name=system.name, deviceChange=devices, extraConfig=extra or None,
                                       numCPUs=1, memoryMB=64, guestId="otherGuest64")
            child_specs.append(vim.VirtualMachineImportSpec(configSpec=config))
        if package.is_vapp:
            spec = vim.vApp.VAppImportSpec(name=package.name, child=child_specs,
                                      vAppConfigSpec=vim.vApp.VAppConfigSpec(),
                                      resourcePoolSpec=vim.ResourceConfigSpec(
                                          cpuAllocation=vim.ResourceAllocationInfo(),
                                          memoryAllocation=vim.ResourceAllocationInfo()))
        else:
            spec = child_specs[0]
        result.importSpec = spec
        result.fileItem = file_items
        return result

    def ParseDescriptor(self, session, this, ovfDescriptor, pdp):
        package = ovfparse.parse(ovfDescriptor)
        return vim.OvfManager.ParseDescriptorResult(
            error=package.errors or None, defaultEntityName=package.name,
            approximateDownloadSize=0, approximateFlatDeploymentSize=sum(
                d.capacity for s in package.systems for d in s.disks))

    def ImportVApp(self, session, this, spec, folder=None, host=None):
        if isinstance(spec, vim.VirtualMachineImportSpec):
            systems = [spec]
        elif isinstance(spec, vim.vApp.VAppImportSpec):
            systems = [c for c in (spec.child or []) if isinstance(c, vim.VirtualMachineImportSpec)]
        else:
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="spec"),
                            "spec must be a VirtualMachineImportSpec or VAppImportSpec")
        if not systems or any(s.configSpec is None or not s.configSpec.name for s in systems):
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="spec.configSpec.name"),
                            "every virtual machine of the import spec needs configSpec.name")
        vm_folder = self.world.resolve(folder) if folder is not None else self.datacenter.vm_folder
        if not isinstance(vm_folder, Folder):
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="folder"), f"{folder} is not a Folder")
        created: list[MObject] = []
        plan: list[tuple[VirtualMachine, str, list[Any], list[str]]] = []
        if isinstance(spec, vim.vApp.VAppImportSpec):
            vapp = VirtualApp(self.world, spec.name, vm_folder)
            vapp.parent = this
            this.pools.append(vapp)
            vm_folder.add(vapp)
            entity, owner_folder, owner_pool = vapp, None, vapp
            created.append(vapp)
        else:
            entity, owner_folder, owner_pool = None, vm_folder, this
        for system in systems:
            config = system.configSpec
            disks = [c.device for c in (config.deviceChange or [])
                     if isinstance(c.device, vim.vm.device.VirtualDisk)]
            files = [o.value for o in (config.extraConfig or []) if str(o.key).startswith("nfclease.file.")]
            vm = self._new_vm(config.name, owner_folder, owner_pool,
                              [((d.capacityInKB or 0) * 1024, None) for d in disks])
            created.append(vm)
            plan.append((vm, config.name, disks, files))
            entity = entity or vm
        task = Task(self.world, "ResourcePool.ImportVAppLRO", entity, "ImportVApp")

        def devices(lease: Lease) -> list[Device]:
            out = []
            for vm, name, disks, files in plan:
                for unit, disk in enumerate(disks):
                    unit_number = disk.unitNumber if disk.unitNumber is not None else unit
                    out.append(Device(
                        key=vm.device_key(unit), import_key=f"/{name}/VirtualLsiLogicController0:{unit_number}",
                        name=f"disk-{len(out)}.vmdk", disk=True,
                        path=vm.disks[unit].path, capacity_kb=disk.capacityInKB or 0,
                        target_id=vm.disks[unit].path.name))
                for href in files:
                    out.append(Device(key=f"/{vm.moid}/{href}", import_key=f"/{name}/{href}",
                                      name=Path(href).name or f"file-{len(out)}", disk=False,
                                      path=self.datastore.directory / vm.moid / Path(href).name,
                                      target_id=Path(href).name))
            return out

        lease = self.leases.new_lease(session_key=session.key, kind="import", entity=entity,
                                      covered=[p[0] for p in plan], task=task, devices=devices,
                                      created=created)
        return lease.ref

    def _remove_created(self, lease: Lease) -> None:
        for obj in reversed(lease.created):
            self._destroy_entity(obj)

    def _adopt_disks(self, lease: Lease) -> None:
        """After Complete the uploaded files are the VMs' disks; missing ones read as zeros."""
        for device in lease.devices:
            if device.disk and not device.complete:
                device.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ export
    def _export(self, session: Session, entity: MObject, vms: list[VirtualMachine],
                disks: list[tuple[VirtualMachine, int, Disk]], description: str) -> Any:
        for vm in vms:
            if vm.power_state == "poweredOn":
                raise SoapError(vim.fault.InvalidPowerState(requestedState="poweredOff", existingState="poweredOn"),
                                f"{vm.name} is powered on; export needs it powered off")
            self.leases.check_unlocked(vm, "Export")
        task = Task(self.world, description, entity, description.split(".")[-1])
        lease_dir = self.storage / "exports"

        def devices(lease: Lease) -> list[Device]:
            out = []
            for position, (vm, unit, disk) in enumerate(disks):
                if not disk.path.exists():  # imported without an upload: an all-zero disk
                    disk.path.parent.mkdir(parents=True, exist_ok=True)
                    with disk.path.open("wb") as out_file:
                        for chunk in StreamOptimizedDisk(disk.capacity, ContentPattern("zero")).iter_chunks():
                            out_file.write(chunk)
                out.append(Device(key=vm.device_key(unit), import_key=vm.device_key(unit),
                                  name=f"disk-{position}.vmdk", disk=True, path=disk.path,
                                  capacity_kb=disk.capacity // 1024,
                                  target_id=f"{vm.name}-disk{unit}.vmdk"))
            return out

        lease_dir.mkdir(exist_ok=True)
        lease = self.leases.new_lease(session_key=session.key, kind="export", entity=entity, covered=vms,
                                      task=task, devices=devices, created=[])
        return lease.ref

    def ExportVm(self, session, this):
        return self._export(session, this, [this], [(this, i, d) for i, d in enumerate(this.disks)],
                            "VirtualMachine.exportVmLRO")

    def ExportVApp(self, session, this):
        vms = list(this.vms)
        return self._export(session, this, vms, [(vm, i, d) for vm in vms for i, d in enumerate(vm.disks)],
                            "VirtualApp.exportVAppLRO")

    def ExportSnapshot(self, session, this):
        vm = this.vm
        if vm.moid not in self.world.objects:
            raise not_found(vm.ref)
        # the task and HttpNfcLeaseInfo.entity are ManagedEntity: the snapshot's VM, not the snapshot
        return self._export(session, vm, [vm], [(vm, i, d) for i, d in enumerate(this.disks)],
                            "VirtualMachineSnapshot.exportSnapshotLRO")

    # ------------------------------------------------------------------ HttpNfcLease
    def HttpNfcLeaseProgress(self, session, this, percent):
        this.progress(percent)

    def HttpNfcLeaseComplete(self, session, this):
        this.complete()

    def HttpNfcLeaseAbort(self, session, this, fault=None):
        this.abort(fault)

    def HttpNfcLeaseGetManifest(self, session, this):
        return this.manifest()

    def HttpNfcLeaseSetManifestChecksumType(self, session, this, deviceUrlsToChecksumTypes=None):
        this.set_checksum_types(deviceUrlsToChecksumTypes or [])

    def HttpNfcLeasePullFromUrls_Task(self, session, this, files=None):
        lease: Lease = this
        lease.check_live("HttpNfcLeasePullFromUrls_Task", expired_fault=False)
        if lease.state != "ready":
            raise SoapError(vim.fault.InvalidState(), "HttpNfcLeasePullFromUrls_Task: the lease is not ready")
        if lease.kind != "import":
            raise SoapError(vim.fault.InvalidState(),
                            "HttpNfcLeasePullFromUrls_Task: pull mode is for import leases "
                            "(capabilities.pullModeSupported is false)")
        files = files or []
        if len(files) != len(lease.devices):
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="files"),
                            f"{len(files)} source files for {len(lease.devices)} device URLs: "
                            "give one per device URL")
        by_import_key = {d.import_key: d for d in lease.devices}
        unknown = [f.targetDeviceId for f in files if f.targetDeviceId not in by_import_key]
        if unknown:
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="files.targetDeviceId"),
                            f"no device URL has importKey {unknown[0]!r}")
        lease.mode = "pull"
        task = Task(self.world, "HttpNfcLease.pullFromUrls", lease.entity, "PullFromUrls")
        pairs = [(f, by_import_key[f.targetDeviceId]) for f in files]
        threading.Thread(target=self._pull, args=(lease, task, pairs), daemon=True,
                         name=f"pull-{lease.moid[-8:]}").start()
        self.world.touch()
        return task.ref

    def _pull(self, lease: Lease, task: Task, pairs: list[tuple[Any, Device]]) -> None:
        try:
            total = len(pairs)
            for index, (source, device) in enumerate(pairs):
                self._pull_one(lease, source, device)
                with self.world.lock:
                    task.set_progress(int(100 * (index + 1) / total))
            with self.world.lock:
                task.succeed(None)
        except SoapError as exc:
            with self.world.lock:
                task.fail(exc.fault)
        except Exception as exc:  # never leave the task running
            with self.world.lock:
                task.fail(vmodl.fault.SystemError(reason=str(exc), msg=f"pull failed: {exc}"))

    def _pull_one(self, lease: Lease, source: Any, device: Device) -> None:
        url = urlsplit(source.url)
        http_fault = lambda code, text: SoapError(  # noqa: E731
            vim.fault.HttpFault(statusCode=code, statusMessage=text), f"pulling {source.url}: {code} {text}")
        if url.scheme not in ("http", "https") or not url.hostname:
            raise http_fault(400, "the source URL must be http or https")
        try:
            if not ipaddress.ip_address(url.hostname).is_loopback:
                raise http_fault(403, "the simulator pulls only from loopback addresses")
        except ValueError:
            if url.hostname != "localhost":
                raise http_fault(403, "the simulator pulls only from loopback addresses") from None
        port = url.port or (443 if url.scheme == "https" else 80)
        if url.scheme == "https":
            context = ssl.create_default_context()
            if source.sslThumbprint:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(url.hostname, port, context=context,
                                                                           timeout=30)
        else:
            conn = http.client.HTTPConnection(url.hostname, port, timeout=30)
        headers = {kv.key: kv.value for kv in (source.httpHeaders or [])}
        try:
            conn.connect()
            if url.scheme == "https":
                der = conn.sock.getpeercert(binary_form=True)
                pem = ssl.DER_cert_to_PEM_cert(der)
                from nfclease.sim.tls import thumbprint
                actual = thumbprint(pem.encode())
                if source.sslThumbprint and source.sslThumbprint.upper() not in (actual, thumbprint(pem.encode(), "sha256")):
                    raise SoapError(vim.fault.SSLVerifyFault(selfSigned=True, thumbprint=actual),
                                    f"{source.url}: certificate thumbprint {actual} does not match "
                                    f"{source.sslThumbprint}")
            conn.request("GET", url.path + (f"?{url.query}" if url.query else ""), headers=headers)
            response = conn.getresponse()
            if response.status >= 400:
                raise http_fault(response.status, response.reason)
            self.receive(lease, device, response, response.length)
        except ssl.SSLCertVerificationError as exc:
            actual = ""
            try:
                actual = _peer_thumbprint(url.hostname, port)
            except OSError:
                pass
            raise SoapError(vim.fault.SSLVerifyFault(selfSigned=True, thumbprint=actual),
                            f"{source.url}: certificate not trusted ({exc.verify_message}); "
                            f"pass its sslThumbprint {actual}") from None
        except OSError as exc:
            raise http_fault(503, f"cannot reach the source: {exc}") from None
        finally:
            conn.close()

    # ------------------------------------------------------------------ NFC data path
    def receive(self, lease: Lease, device: Device, body: Any, length: int | None,
                chunk_size: int = 1 << 20) -> int:
        """Store a device's bytes from ``body`` (``readinto``), then hash them; return the count.

        Used by uploads (POST/PUT) and pulls. A disk must be a streamOptimized
        VMDK: its structure is walked as it arrives (:class:`StreamChecker`),
        so garbage is refused (400) at its first sector and a truncated stream
        when it ends.

        Bodies of more than :data:`PIPELINE_MIN` bytes are written by a
        :class:`_StoreBehind` thread while this one reads (and decrypts) the
        next chunk; the stored bytes are hashed afterwards
        (:meth:`Device.hash_stored`). Chunks are read into a few buffers that
        go round, never into fresh memory: see :class:`_Store` for why fresh
        pages are dear.
        """
        checker = StreamChecker() if device.disk else None
        device.busy, device.complete = True, False
        received = 0
        delay = self.config.delay
        try:
            device.path.parent.mkdir(parents=True, exist_ok=True)
            with device.path.open("wb") as out:
                pipelined = length is None or length > PIPELINE_MIN
                store_class = _StoreBehind if pipelined else _Store
                store = store_class(out, chunk_size)
                try:
                    while length is None or received < length:
                        want = chunk_size if length is None else min(chunk_size, length - received)
                        buffer = store.buffer()
                        got = _read_into(body, buffer, want)
                        if not got:
                            store.give_back(buffer)
                            break
                        if checker is not None:
                            try:
                                checker.feed(memoryview(buffer)[:got])
                            except VmdkError as exc:
                                store.give_back(buffer)
                                raise NfcError(400, f"{device.name}: not a streamOptimized VMDK: {exc}") from None
                        store.put(buffer, got)
                        received += got
                        if delay:
                            time.sleep(delay * got / (1 << 20))
                finally:
                    store.close()  # waits for what is queued; raises its write error, if any
            if length is not None and received < length:
                raise NfcError(400, f"{device.name}: body ended after {received} of {length} bytes")
            if checker is not None:
                try:
                    checker.finish()
                except VmdkError as exc:
                    raise NfcError(400, f"{device.name}: {exc}") from None
            with self.world.lock:
                device.bytes_transferred = received
                device.hashes, device.sha1 = {}, None
                device.complete = True
                device.hash_stored(self.world.lock)
                if lease.mode == "pull" and lease.state == "ready":
                    lease.renew()
            return received
        finally:
            device.busy = False


#: Bodies up to this size are hashed and written inline (no thread for a small file).
PIPELINE_MIN = 4 << 20
#: Longest GetManifest waits for an upload's bytes to be hashed (a 4 GiB disk takes ~3 s).
MANIFEST_HASH_WAIT = 120.0
#: Chunks read ahead of the store thread: bounds the memory an upload holds.
PIPELINE_DEPTH = 4
#: Every DROP_EVERY bytes stored, the stored bytes up to DROP_WINDOW behind are dropped from the page cache.
DROP_EVERY = 8 << 20
DROP_WINDOW = 64 << 20


class _Store:
    """Hash a chunk, write it, and keep the page cache from filling up with it.

    Writing into the page cache allocates a fresh page per 4 KiB; on a VM
    whose free memory goes back to the host that is the dearest part of an
    upload (measured on the 2-core benchmark VM: ~3 ms of system time per MiB,
    more than TLS and SHA-1 together). Asking the kernel to drop what is
    written (``POSIX_FADV_DONTNEED``, which also starts its writeback) once it
    is on disk recycles a small set of pages instead, and a 4 GiB upload no
    longer leaves 4 GiB of cache behind. The last ``DROP_WINDOW`` bytes stay
    cached. Not every platform has ``posix_fadvise``; there, nothing is dropped.
    """

    def __init__(self, out: Any, chunk_size: int) -> None:
        self.out = out
        self.written = 0
        self.dropped_at = 0
        self._buffer = bytearray(chunk_size)
        try:
            self.fd: int | None = out.fileno() if hasattr(os, "posix_fadvise") else None
        except (OSError, ValueError, AttributeError):
            self.fd = None

    def buffer(self) -> bytearray:
        """A buffer to read the next chunk into (the same one, in this synchronous store)."""
        return self._buffer

    def give_back(self, buffer: bytearray) -> None:
        """Return a buffer that was not :meth:`put` (nothing to do here)."""

    def put(self, buffer: bytearray, length: int) -> None:
        self._store(memoryview(buffer)[:length])

    def _store(self, chunk: memoryview) -> None:
        self.out.write(chunk)
        self.written += len(chunk)
        if self.fd is not None and self.written - self.dropped_at >= DROP_EVERY:
            start = max(0, self.written - DROP_WINDOW)
            self.out.flush()
            try:
                os.posix_fadvise(self.fd, start, self.written - start, os.POSIX_FADV_DONTNEED)
            except OSError:
                self.fd = None  # a file system that cannot: keep writing, stop asking
            self.dropped_at = self.written

    def close(self) -> None:
        pass


class _StoreBehind(_Store):
    """A :class:`_Store` in its own thread, fed through a bounded queue.

    Reading a chunk from a TLS socket (decryption) and storing the previous
    one then run at the same time: SSL reads and file writes release the GIL. ``PIPELINE_DEPTH + 1``
    buffers go round between the reader and this thread, so memory stays
    bounded whatever the size and no chunk lands in fresh pages. A write error
    stops the storing (later chunks are discarded, never block the reader) and
    is raised to the reader by the next :meth:`put` or :meth:`close`.
    """

    def __init__(self, out: Any, chunk_size: int) -> None:
        super().__init__(out, chunk_size)
        self.free: queue.Queue[bytearray] = queue.Queue()
        self.free.put(self._buffer)
        for _ in range(PIPELINE_DEPTH):
            self.free.put(bytearray(chunk_size))
        self.queue: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="nfclease-sim-store", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            buffer, length = item
            if self.error is None:
                try:
                    self._store(memoryview(buffer)[:length])
                except BaseException as exc:  # noqa: BLE001 -- handed to the reader
                    self.error = exc
            self.free.put(buffer)

    def buffer(self) -> bytearray:
        if self.error is not None:
            raise self.error
        return self.free.get()

    def give_back(self, buffer: bytearray) -> None:
        self.free.put(buffer)

    def put(self, buffer: bytearray, length: int) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((buffer, length))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _read_into(body: Any, buffer: bytearray, want: int) -> int:
    """Fill ``buffer[:want]`` from ``body``; fewer bytes only at the end of the body."""
    view = memoryview(buffer)[:want]
    got = 0
    while got < want:
        count = body.readinto(view[got:])
        if not count:
            break
        got += count
    return got


class NfcError(Exception):
    """An NFC request answered with an HTTP error status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _peer_thumbprint(host: str, port: int) -> str:
    from nfclease.sim.tls import thumbprint
    pem = ssl.get_server_certificate((host, port))
    return thumbprint(pem.encode())

