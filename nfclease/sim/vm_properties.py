"""What a client reads of a simulated VM: config, summary, runtime, guest, storage, layout.

Every value is derived from the VM's own state (its disks, NICs, CPUs,
memory, power state), so the views agree with each other and with the files
on the simulated datastore: ``config.hardware.device`` holds one VirtualDisk
per disk file (backing ``[LocalDS_0] vm-7/NAME-0.vmdk``, the file the NFC
transfers read and write), ``layoutEx`` and ``storage`` count those files'
real sizes, ``summary`` repeats ``config`` and ``runtime``. Built with
pyVmomi's types (required members filled) so strict decoders accept them.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import TYPE_CHECKING, Any, Callable

from pyVmomi import vim

from nfclease.sim.filled import filled

if TYPE_CHECKING:
    from nfclease.sim.world import Disk, VirtualMachine

Device = vim.vm.device
#: Device keys vSphere gives a new VM's standard devices (the same on every VM).
PCI, IDE0, IDE1, PS2, SIO, VIDEO, KEYBOARD, POINTER, SCSI = 100, 200, 201, 300, 400, 500, 600, 700, 1000
DISK_KEY, NIC_KEY = 2000, 4000
SCSI_RESERVED_UNIT = 7  # the controller's own unit number on its bus
GUEST_NAMES = {"otherGuest64": "Other (64-bit)", "otherGuest": "Other (32-bit)",
               "otherLinux64Guest": "Other Linux (64-bit)", "ubuntu64Guest": "Ubuntu Linux (64-bit)"}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def disk_unit(index: int) -> int:
    """SCSI unit number of the ``index``-th disk (unit 7 is the controller's)."""
    return index if index < SCSI_RESERVED_UNIT else index + 1


def datastore_path(vm: "VirtualMachine", file_name: str) -> str:
    """``[LocalDS_0] vm-7/FILE``: where ``file_name`` of the VM lives on its datastore."""
    return f"[{vm.datastore.name}] {vm.moid}/{file_name}"


def file_size(disk: "Disk") -> int:
    try:
        return disk.path.stat().st_size
    except OSError:
        return 0


def mac_address(vm: "VirtualMachine", index: int) -> str:
    """A stable VMware-OUI MAC for the VM's ``index``-th NIC."""
    digest = hashlib.sha1(f"{vm.uuid}/{index}".encode()).digest()
    return "00:50:56:%02x:%02x:%02x" % (digest[0] & 0x3F, digest[1], digest[2])


def guest_full_name(guest_id: str) -> str:
    return GUEST_NAMES.get(guest_id, guest_id)


def _network(vm: "VirtualMachine", name: str) -> Any:
    return next((o for o in vm.world.objects.values() if o.type_name == "Network" and o.name == name), None)


def _disk(vm: "VirtualMachine", index: int, disk: "Disk") -> Any:
    return filled(
        Device.VirtualDisk, key=DISK_KEY + index, controllerKey=SCSI, unitNumber=disk_unit(index),
        capacityInKB=max(1, disk.capacity // 1024), capacityInBytes=disk.capacity,
        deviceInfo=vim.Description(label=disk.label, summary=f"{disk.capacity // 1024:,} KB"),
        backing=filled(Device.VirtualDisk.FlatVer2BackingInfo, fileName=datastore_path(vm, disk.path.name),
                       datastore=vm.datastore.ref, diskMode="persistent", thinProvisioned=True,
                       split=False, writeThrough=False, uuid=_disk_uuid(vm, index)))


def _disk_uuid(vm: "VirtualMachine", index: int) -> str:
    digest = hashlib.sha1(f"{vm.uuid}/disk{index}".encode()).hexdigest()
    return f"6000C29{digest[:1]}-{digest[1:5]}-{digest[5:9]}-{digest[9:13]}-{digest[13:25]}"


def _nic(vm: "VirtualMachine", index: int, network_name: str) -> Any:
    network = _network(vm, network_name)
    connected = vm.power_state == "poweredOn"
    return filled(
        getattr(Device, vm.nic_kind, Device.VirtualVmxnet3), key=NIC_KEY + index, controllerKey=PCI, unitNumber=7 + index,
        deviceInfo=vim.Description(label=f"Network adapter {index + 1}", summary=network_name),
        backing=filled(Device.VirtualEthernetCard.NetworkBackingInfo, deviceName=network_name,
                       network=network.ref if network is not None else None),
        connectable=filled(Device.VirtualDevice.ConnectInfo, startConnected=True, allowGuestControl=True,
                           connected=connected, status="ok"),
        addressType="generated", macAddress=mac_address(vm, index), wakeOnLanEnabled=True)


def devices(vm: "VirtualMachine") -> list[Any]:
    """``config.hardware.device``: the standard devices, the SCSI controller, the disks, the NICs."""
    disks = [_disk(vm, i, d) for i, d in enumerate(vm.disks)]
    nics = [_nic(vm, i, n) for i, n in enumerate(vm.nics)]
    label = lambda text: vim.Description(label=text, summary=text)  # noqa: E731
    return [
        filled(Device.VirtualIDEController, key=IDE0, busNumber=0, deviceInfo=label("IDE 0")),
        filled(Device.VirtualIDEController, key=IDE1, busNumber=1, deviceInfo=label("IDE 1")),
        filled(Device.VirtualPS2Controller, key=PS2, busNumber=0, device=[KEYBOARD, POINTER],
               deviceInfo=label("PS2 controller 0")),
        filled(Device.VirtualPCIController, key=PCI, busNumber=0, device=[VIDEO, SCSI] + [n.key for n in nics],
               deviceInfo=label("PCI controller 0")),
        filled(Device.VirtualSIOController, key=SIO, busNumber=0, deviceInfo=label("SIO controller 0")),
        filled(Device.VirtualKeyboard, key=KEYBOARD, controllerKey=PS2, unitNumber=0, deviceInfo=label("Keyboard")),
        filled(Device.VirtualPointingDevice, key=POINTER, controllerKey=PS2, unitNumber=1,
               deviceInfo=label("Pointing device"),
               backing=filled(Device.VirtualPointingDevice.DeviceBackingInfo, deviceName="",
                              hostPointingDevice="autodetect", useAutoDetect=False)),
        filled(Device.VirtualVideoCard, key=VIDEO, controllerKey=PCI, unitNumber=0, videoRamSizeInKB=4096,
               numDisplays=1, useAutoDetect=False, enable3DSupport=False, use3dRenderer="automatic",
               deviceInfo=label("Video card ")),
        filled(Device.VirtualLsiLogicController, key=SCSI, controllerKey=PCI, unitNumber=3, busNumber=0,
               sharedBus="noSharing", scsiCtlrUnitNumber=SCSI_RESERVED_UNIT, hotAddRemove=True,
               device=[d.key for d in disks], deviceInfo=label("SCSI controller 0")),
        *disks,
        *nics,
    ]


def config(vm: "VirtualMachine", disks: list["Disk"] | None = None) -> Any:
    """``config``: VirtualMachineConfigInfo (``disks`` overrides the VM's, for a snapshot's config)."""
    if disks is not None and disks is not vm.disks:
        saved, vm.disks = vm.disks, disks
        try:
            return config(vm)
        finally:
            vm.disks = saved
    allocation = lambda shares: filled(vim.ResourceAllocationInfo, reservation=0, expandableReservation=False,  # noqa: E731
                                       limit=-1, shares=vim.SharesInfo(shares=shares, level="normal"))
    return filled(
        vim.vm.ConfigInfo, name=vm.name, uuid=vm.uuid, instanceUuid=vm.instance_uuid, version="vmx-13",
        guestId=vm.guest_id, guestFullName=guest_full_name(vm.guest_id), template=False,
        changeVersion=vm.modified.isoformat(), modified=vm.modified, createDate=vm.created,
        annotation=vm.annotation, firmware="bios", alternateGuestName="",
        files=vim.vm.FileInfo(vmPathName=datastore_path(vm, f"{vm.name}.vmx"),
                              snapshotDirectory=f"[{vm.datastore.name}] {vm.moid}/",
                              suspendDirectory=f"[{vm.datastore.name}] {vm.moid}/",
                              logDirectory=f"[{vm.datastore.name}] {vm.moid}/"),
        hardware=filled(vim.vm.VirtualHardware, numCPU=vm.num_cpu, numCoresPerSocket=1, memoryMB=vm.memory_mb,
                        virtualICH7MPresent=False, virtualSMCPresent=False, device=devices(vm)),
        cpuAllocation=allocation(1000 * vm.num_cpu), memoryAllocation=allocation(10 * vm.memory_mb),
        tools=filled(vim.vm.ToolsConfigInfo, toolsVersion=0, afterPowerOn=True, afterResume=True,
                     beforeGuestStandby=True, beforeGuestShutdown=True, syncTimeWithHost=False),
        flags=filled(vim.vm.FlagInfo), defaultPowerOps=filled(
            vim.vm.DefaultPowerOpInfo, powerOffType="soft", suspendType="hard", resetType="soft",
            defaultPowerOffType="soft", defaultSuspendType="hard", defaultResetType="soft", standbyAction="checkpoint"),
        extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in vm.extra_config.items()],
        datastoreUrl=[vim.vm.ConfigInfo.DatastoreUrlPair(name=vm.datastore.name,
                                                          url=str(vm.datastore.directory))],
        swapPlacement="inherit", memoryHotAddEnabled=False, cpuHotAddEnabled=False, cpuHotRemoveEnabled=False,
        changeTrackingEnabled=False)


def runtime(vm: "VirtualMachine") -> Any:
    return filled(
        vim.vm.RuntimeInfo, connectionState="connected", powerState=vm.power_state,
        host=vm.host.ref if vm.host else None, bootTime=vm.boot_time,
        faultToleranceState="notConfigured", toolsInstallerMounted=False, numMksConnections=0,
        recordReplayState="inactive", onlineStandby=False, consolidationNeeded=False,
        maxCpuUsage=2000 * vm.num_cpu, maxMemoryUsage=vm.memory_mb, paused=False, snapshotInBackground=False,
        device=[vim.vm.DeviceRuntimeInfo(key=NIC_KEY + i, runtimeState=vim.vm.DeviceRuntimeInfo.VirtualEthernetCardRuntimeState(
            vmDirectPathGen2Active=False)) for i in range(len(vm.nics))])


def guest(vm: "VirtualMachine") -> Any:
    """``guest``: no VMware Tools in a simulated guest, so no IP address, and the state follows the power."""
    running = vm.power_state == "poweredOn"
    return filled(
        vim.vm.GuestInfo, guestState="running" if running else "notRunning",
        toolsStatus="toolsNotInstalled", toolsVersionStatus="guestToolsNotInstalled",
        toolsVersionStatus2="guestToolsNotInstalled", toolsRunningStatus="guestToolsNotRunning",
        toolsVersion="0", guestId=vm.guest_id, guestFullName=guest_full_name(vm.guest_id),
        guestFamily="otherGuestFamily", appHeartbeatStatus="appStatusGray", appState="none",
        guestOperationsReady=False, interactiveGuestOperationsReady=False, guestStateChangeSupported=False,
        net=[filled(vim.vm.GuestInfo.NicInfo, network=n, macAddress=mac_address(vm, i), connected=running,
                    deviceConfigId=NIC_KEY + i) for i, n in enumerate(vm.nics)] if running else [],
        disk=[], screen=vim.vm.GuestInfo.ScreenInfo(width=0, height=0))


def storage_usage(vm: "VirtualMachine") -> tuple[int, int]:
    """(committed, uncommitted) bytes: the disk files as stored, and what thin disks may still grow by."""
    committed = sum(file_size(d) for d in vm.disks)
    uncommitted = max(0, sum(d.capacity for d in vm.disks) - committed)
    return committed, uncommitted


def storage(vm: "VirtualMachine") -> Any:
    committed, uncommitted = storage_usage(vm)
    return vim.vm.StorageInfo(timestamp=_now(), perDatastoreUsage=[vim.vm.StorageInfo.UsageOnDatastore(
        datastore=vm.datastore.ref, committed=committed, uncommitted=uncommitted, unshared=committed)])


def layout_ex(vm: "VirtualMachine") -> Any:
    files, disk_layouts = [], []
    for index, disk in enumerate(vm.disks):
        files.append(vim.vm.FileLayoutEx.FileInfo(
            key=index, name=datastore_path(vm, disk.path.name), type="diskDescriptor", size=file_size(disk),
            uniqueSize=file_size(disk), accessible=True))
        disk_layouts.append(vim.vm.FileLayoutEx.DiskLayout(
            key=DISK_KEY + index, chain=[vim.vm.FileLayoutEx.DiskUnit(fileKey=[index])]))
    return vim.vm.FileLayoutEx(file=files, disk=disk_layouts, timestamp=_now())


def layout(vm: "VirtualMachine") -> Any:
    return vim.vm.FileLayout(configFile=[], logFile=[], disk=[
        vim.vm.FileLayout.DiskLayout(key=DISK_KEY + i, diskFile=[datastore_path(vm, d.path.name)])
        for i, d in enumerate(vm.disks)])


def summary(vm: "VirtualMachine") -> Any:
    committed, uncommitted = storage_usage(vm)
    running = vm.power_state == "poweredOn"
    return filled(
        vim.vm.Summary, vm=vm.ref, runtime=runtime(vm), overallStatus="green",
        guest=filled(vim.vm.Summary.GuestSummary, guestId=vm.guest_id, guestFullName=guest_full_name(vm.guest_id),
                     toolsStatus="toolsNotInstalled", toolsVersionStatus="guestToolsNotInstalled",
                     toolsVersionStatus2="guestToolsNotInstalled", toolsRunningStatus="guestToolsNotRunning"),
        config=filled(vim.vm.Summary.ConfigSummary, name=vm.name, template=False,
                      vmPathName=datastore_path(vm, f"{vm.name}.vmx"), memorySizeMB=vm.memory_mb,
                      numCpu=vm.num_cpu, numEthernetCards=len(vm.nics), numVirtualDisks=len(vm.disks),
                      uuid=vm.uuid, instanceUuid=vm.instance_uuid, guestId=vm.guest_id,
                      guestFullName=guest_full_name(vm.guest_id), annotation=vm.annotation),
        storage=vim.vm.Summary.StorageSummary(committed=committed, uncommitted=uncommitted, unshared=committed,
                                              timestamp=_now()),
        quickStats=filled(vim.vm.Summary.QuickStats, guestHeartbeatStatus="gray", overallCpuUsage=0,
                          guestMemoryUsage=0, hostMemoryUsage=vm.memory_mb if running else 0,
                          uptimeSeconds=0))


def capability() -> Any:
    supported = {"snapshotOperationsSupported", "multipleSnapshotsSupported", "snapshotConfigSupported",
                 "poweredOffSnapshotsSupported", "revertToSnapshotSupported", "multipleCoresPerSocketSupported",
                 "bootOptionsSupported", "diskSharesSupported"}
    return filled(vim.vm.Capability, **{name: True for name in supported})


def properties(vm: "VirtualMachine") -> dict[str, Callable[[], Any]]:
    """The VirtualMachine properties beyond ManagedEntity's, by name."""
    parent_vapp = vm.pool if vm.pool is not None and vm.pool.type_name == "VirtualApp" else None
    return {
        "config": lambda: config(vm),
        "runtime": lambda: runtime(vm),
        "guest": lambda: guest(vm),
        "summary": lambda: summary(vm),
        "storage": lambda: storage(vm),
        "layoutEx": lambda: layout_ex(vm),
        "layout": lambda: layout(vm),
        "capability": capability,
        "resourcePool": lambda: vm.pool.ref if vm.pool else None,
        "parentVApp": lambda: parent_vapp.ref if parent_vapp is not None else None,
        "resourceConfig": lambda: filled(vim.ResourceConfigSpec, entity=vm.ref),
        "datastore": lambda: [vm.datastore.ref],
        "network": lambda: [n.ref for n in (_network(vm, name) for name in dict.fromkeys(vm.nics)) if n is not None],
        "guestHeartbeatStatus": lambda: "gray",
    }
