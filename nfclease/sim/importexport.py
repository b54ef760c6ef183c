"""OVF import and export: the OvfManager's methods, ImportVApp and the Export* methods that open leases.

Import creates the VMs (and vApp) first and hands the lease the devices to
fill; export hands it the existing disks to read. What the lease then does
is :mod:`nfclease.sim.leases`; the bytes are :mod:`nfclease.sim.nfc`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyVmomi import vim, vmodl

from nfclease.sim import ovfparse
from nfclease.sim.inventory import Inventory
from nfclease.sim.leases import Device, Lease, LeaseManager
from nfclease.sim.soap import SoapError
from nfclease.sim.world import Disk, Folder, MObject, Session, Task, VirtualApp, VirtualMachine, World, not_found
from nfclease.vmdk import ContentPattern, StreamOptimizedDisk

#: (VM, its name in the spec, its VirtualDisk specs, its extra file hrefs): what one imported VM receives.
ImportPlan = list[tuple[VirtualMachine, str, list[Any], list[str]]]


def adopt_disks(lease: Lease) -> None:
    """After Complete the uploaded files are the VMs' disks; missing ones read as zeros."""
    for device in lease.devices:
        if device.disk and not device.complete:
            device.path.unlink(missing_ok=True)


#: rasd:ResourceSubType of an OVF ethernet item -> the vim NIC it becomes.
NIC_TYPES = {"vmxnet3": "VirtualVmxnet3", "e1000": "VirtualE1000", "e1000e": "VirtualE1000e",
             "vmxnet2": "VirtualVmxnet2", "vmxnet": "VirtualVmxnet", "pcnet32": "VirtualPCNet32"}


def _nic_specs(system: Any, networks: dict[str, Any]) -> list[Any]:
    """One add spec per OVF NIC, on the inventory network its OVF network maps to (None: left out)."""
    specs = []
    for index, nic in enumerate(system.nics):
        network = networks.get(nic.network)
        if network is None:
            continue
        device_type = getattr(vim.vm.device, NIC_TYPES.get(nic.kind.lower(), "VirtualE1000"))
        specs.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=device_type(
            key=-(300 + index), addressType="generated", wakeOnLanEnabled=True,
            backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network.name,
                                                                         network=network.ref),
            connectable=vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True,
                                                               connected=False))))
    return specs


def _system_spec(system: Any, file_items: list[Any], networks: dict[str, Any] | None = None) -> Any:
    """The VirtualMachineImportSpec of one OVF virtual system; its file items appended to ``file_items``."""
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
    devices += _nic_specs(system, networks or {})
    config = vim.vm.ConfigSpec(name=system.name, deviceChange=devices, extraConfig=extra or None,
                               numCPUs=system.cpus or 1, memoryMB=system.memory_mb or 64,
                               guestId=system.guest_id or "otherGuest64", annotation=system.annotation or None)
    return vim.VirtualMachineImportSpec(configSpec=config)


def _import_systems(spec: Any) -> list[Any]:
    """The VirtualMachineImportSpecs of an import spec, or InvalidArgument naming what is wrong."""
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
    return systems


class ImportExport:
    """OvfManager, ImportVApp and Export*: the methods that open HttpNfcLeases."""

    def __init__(self, world: World, leases: LeaseManager, inventory: Inventory, storage: Path) -> None:
        self.world = world
        self.leases = leases
        self.inventory = inventory
        self.storage = storage

    # ------------------------------------------------------------------ OvfManager
    def CreateImportSpec(self, session: Session, this: MObject, ovfDescriptor: str, resourcePool: Any,
                         datastore: Any, cisp: Any) -> Any:
        package = ovfparse.parse(ovfDescriptor, cisp.entityName if cisp else None)
        result = vim.OvfManager.CreateImportSpecResult(error=package.errors or None,
                                                       warning=package.warnings or None)
        if package.errors:
            return result
        file_items: list[Any] = []
        networks = self._network_mapping(package, cisp, result)
        child_specs = [_system_spec(system, file_items, networks) for system in package.systems]
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

    def _network_mapping(self, package: Any, cisp: Any, result: Any) -> dict[str, Any]:
        """OVF network name -> inventory Network: the client's mapping, else the same name, else the first."""
        available = [o for o in self.world.objects.values() if o.type_name == "Network"]
        mapping: dict[str, Any] = {}
        for pair in (getattr(cisp, "networkMapping", None) or []):
            mapping[pair.name] = self.world.resolve(pair.network)
        wanted = dict.fromkeys([*package.networks, *(n.network for s in package.systems for n in s.nics)])
        for name in wanted:
            if name in mapping:
                continue
            same = next((n for n in available if n.name == name), None)
            if same is None and available:
                same = available[0]
                result.warning = [*(result.warning or []), vim.fault.OvfNetworkMappingNotSupported(
                    msg=f"OVF network {name!r} is not in the inventory: its NICs are put on {same.name!r}")]
            if same is not None:
                mapping[name] = same
        return mapping

    def CreateDescriptor(self, session: Session, this: MObject, obj: Any, cdp: Any) -> Any:
        from nfclease.sim.ovfwrite import create_descriptor
        entity = self.world.resolve(obj)
        if not isinstance(entity, (VirtualMachine, VirtualApp)):
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="obj"),
                            f"the simulator describes VMs and vApps, not {entity.type_name}")
        return create_descriptor(entity, cdp)

    def ParseDescriptor(self, session: Session, this: MObject, ovfDescriptor: str, pdp: Any) -> Any:
        package = ovfparse.parse(ovfDescriptor)
        return vim.OvfManager.ParseDescriptorResult(
            error=package.errors or None, defaultEntityName=package.name,
            approximateDownloadSize=0, approximateFlatDeploymentSize=sum(
                d.capacity for s in package.systems for d in s.disks))

    # ------------------------------------------------------------------ import
    def ImportVApp(self, session: Session, this: Any, spec: Any, folder: Any = None, host: Any = None) -> Any:
        systems = _import_systems(spec)
        vm_folder = self.world.resolve(folder) if folder is not None else self.inventory.datacenter.vm_folder
        if not isinstance(vm_folder, Folder):
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="folder"), f"{folder} is not a Folder")
        created: list[MObject] = []
        plan: ImportPlan = []
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
            vm = self.inventory.new_vm(config.name, owner_folder, owner_pool,
                                       [((d.capacityInKB or 0) * 1024, None) for d in disks])
            self._configure(vm, config)
            created.append(vm)
            plan.append((vm, config.name, disks, files))
            entity = entity or vm
        task = Task(self.world, "ResourcePool.ImportVAppLRO", entity, "ImportVApp")
        lease = self.leases.new_lease(session_key=session.key, kind="import", entity=entity,
                                      covered=[p[0] for p in plan], task=task,
                                      devices=lambda lease: self._import_devices(plan), created=created)
        return lease.ref

    def _configure(self, vm: VirtualMachine, config: Any) -> None:
        """The imported VM's hardware and settings, as the import spec's configSpec says."""
        vm.num_cpu = config.numCPUs or vm.num_cpu
        vm.memory_mb = config.memoryMB or vm.memory_mb
        vm.guest_id = config.guestId or vm.guest_id
        vm.annotation = config.annotation or ""
        nics = [c.device for c in (config.deviceChange or [])
                if isinstance(c.device, vim.vm.device.VirtualEthernetCard)]
        vm.nics = [self._network_name(nic.backing) for nic in nics]
        vm.nics = [name for name in vm.nics if name]
        if nics:
            vm.nic_kind = type(nics[0])._wsdlName

    def _network_name(self, backing: Any) -> str | None:
        network = getattr(backing, "network", None)
        if network is not None:
            found = self.world.objects.get(getattr(network, "_moId", None))
            if found is not None:
                return found.name
        return getattr(backing, "deviceName", None)

    def _import_devices(self, plan: ImportPlan) -> list[Device]:
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
                                  path=self.inventory.datastore.directory / vm.moid / Path(href).name,
                                  target_id=Path(href).name))
        return out

    # ------------------------------------------------------------------ export
    def _export(self, session: Session, entity: MObject, vms: list[VirtualMachine],
                disks: list[tuple[VirtualMachine, int, Disk]], description: str) -> Any:
        for vm in vms:
            if vm.power_state == "poweredOn":
                raise SoapError(vim.fault.InvalidPowerState(requestedState="poweredOff", existingState="poweredOn"),
                                f"{vm.name} is powered on; export needs it powered off")
            self.leases.check_unlocked(vm, "Export")
        task = Task(self.world, description, entity, description.split(".")[-1])
        (self.storage / "exports").mkdir(exist_ok=True)
        lease = self.leases.new_lease(session_key=session.key, kind="export", entity=entity, covered=vms,
                                      task=task, devices=lambda lease: _export_devices(disks), created=[])
        return lease.ref

    def ExportVm(self, session: Session, this: VirtualMachine) -> Any:
        return self._export(session, this, [this], [(this, i, d) for i, d in enumerate(this.disks)],
                            "VirtualMachine.exportVmLRO")

    def ExportVApp(self, session: Session, this: VirtualApp) -> Any:
        vms = list(this.vms)
        return self._export(session, this, vms, [(vm, i, d) for vm in vms for i, d in enumerate(vm.disks)],
                            "VirtualApp.exportVAppLRO")

    def ExportSnapshot(self, session: Session, this: Any) -> Any:
        vm = this.vm
        if vm.moid not in self.world.objects:
            raise not_found(vm.ref)
        # the task and HttpNfcLeaseInfo.entity are ManagedEntity: the snapshot's VM, not the snapshot
        return self._export(session, vm, [vm], [(vm, i, d) for i, d in enumerate(this.disks)],
                            "VirtualMachineSnapshot.exportSnapshotLRO")


def _export_devices(disks: list[tuple[VirtualMachine, int, Disk]]) -> list[Device]:
    """One device per disk to export; a disk imported without an upload is written as all zeros first."""
    out = []
    for position, (vm, unit, disk) in enumerate(disks):
        if not disk.path.exists():
            disk.path.parent.mkdir(parents=True, exist_ok=True)
            with disk.path.open("wb") as out_file:
                for chunk in StreamOptimizedDisk(disk.capacity, ContentPattern("zero")).iter_chunks():
                    out_file.write(chunk)
        out.append(Device(key=vm.device_key(unit), import_key=vm.device_key(unit),
                          name=f"disk-{position}.vmdk", disk=True, path=disk.path,
                          capacity_kb=disk.capacity // 1024,
                          target_id=f"{vm.name}-disk{unit}.vmdk"))
    return out
