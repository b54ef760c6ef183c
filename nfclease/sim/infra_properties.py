"""What a client reads of the simulated infrastructure: hosts, datastores, the cluster, pools, vApps.

Values are derived from the inventory so they agree: a host's ``vm`` and
``summary.quickStats`` count the VMs on it, the datastore's ``freeSpace`` is
its capacity less the bytes its VMs' disk files hold, the cluster's totals
add up its hosts, a pool's ``vm`` are the VMs ``resourcePool`` names. Built
with pyVmomi's types (required members filled) so strict decoders accept them.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import TYPE_CHECKING, Any, Callable

from pyVmomi import vim

from nfclease.sim.filled import filled
from nfclease.sim.vm_properties import storage_usage

if TYPE_CHECKING:
    from nfclease.sim.world import ClusterComputeResource, Datastore, HostSystem, MObject, ResourcePool

HOST_CPU_MHZ, HOST_CORES, HOST_MEMORY = 2000, 4, 4 << 30
DATASTORE_CAPACITY = 1 << 40
BOOT_TIME = datetime.datetime.now(datetime.timezone.utc)

Props = dict[str, Callable[[], Any]]


def _of_type(obj: "MObject", type_name: str) -> list[Any]:
    return [o for o in obj.world.objects.values() if o.type_name == type_name]


def _networks(obj: "MObject") -> list[Any]:
    return [n.ref for n in _of_type(obj, "Network")]


def host_uuid(host: "MObject") -> str:
    digest = hashlib.sha1(f"host/{host.moid}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _vms_on(host: "HostSystem") -> list[Any]:
    return [vm for vm in _of_type(host, "VirtualMachine") if vm.host is host]


def _about(host: "HostSystem") -> Any:
    return filled(vim.AboutInfo, name="VMware ESXi", fullName="VMware ESXi 8.0.0 build-1 (nfclease simulator)",
                  vendor="VMware, Inc.", version="8.0.0", build="1", osType="vmnix-x86", productLineId="embeddedEsx",
                  apiType="HostAgent", apiVersion="8.0.0.0", instanceUuid=host_uuid(host))


def host_properties(host: "HostSystem") -> Props:
    def runtime() -> Any:
        return filled(vim.host.RuntimeInfo, connectionState="connected", powerState="poweredOn",
                      inMaintenanceMode=False, inQuarantineMode=False, bootTime=BOOT_TIME, standbyMode="none")

    def hardware_summary() -> Any:
        return filled(vim.host.Summary.HardwareSummary, vendor="nfclease", model="simulated host",
                      uuid=host_uuid(host), memorySize=HOST_MEMORY, cpuModel="simulated CPU", cpuMhz=HOST_CPU_MHZ,
                      numCpuPkgs=1, numCpuCores=HOST_CORES, numCpuThreads=HOST_CORES, numNics=1, numHBAs=1)

    def summary() -> Any:
        running = [vm for vm in _vms_on(host) if vm.power_state == "poweredOn"]
        return filled(
            vim.host.Summary, host=host.ref, hardware=hardware_summary(), runtime=runtime(), overallStatus="green",
            rebootRequired=False, managementServerIp="127.0.0.1",
            config=filled(vim.host.Summary.ConfigSummary, name=host.name, port=443, vmotionEnabled=False,
                          faultToleranceEnabled=False, product=_about(host)),
            quickStats=filled(vim.host.Summary.QuickStats, overallCpuUsage=0, uptime=0,
                              overallMemoryUsage=sum(vm.memory_mb for vm in running)))

    def hardware() -> Any:
        return filled(vim.host.HardwareInfo, memorySize=HOST_MEMORY, smcPresent=False,
                      systemInfo=filled(vim.host.SystemInfo, vendor="nfclease", model="simulated host",
                                        uuid=host_uuid(host)),
                      cpuInfo=filled(vim.host.CpuInfo, numCpuPackages=1, numCpuCores=HOST_CORES,
                                     numCpuThreads=HOST_CORES, hz=HOST_CPU_MHZ * 1_000_000),
                      cpuPkg=[filled(vim.host.CpuPackage, index=0, vendor="intel", hz=HOST_CPU_MHZ * 1_000_000,
                                     busHz=100_000_000, description="simulated CPU",
                                     threadId=list(range(HOST_CORES)))])

    return {
        "runtime": runtime, "summary": summary, "hardware": hardware,
        "vm": lambda: [vm.ref for vm in _vms_on(host)],
        "datastore": lambda: [d.ref for d in _of_type(host, "Datastore")],
        "network": lambda: _networks(host),
        "capability": lambda: filled(vim.host.Capability, vmotionSupported=False, maxRunningVMs=0,
                                     maxSupportedVMs=0, maxSupportedVcpus=0),
        "configManager": lambda: vim.host.ConfigManager(),
    }


def datastore_properties(datastore: "Datastore") -> Props:
    def used() -> int:
        return sum(storage_usage(vm)[0] for vm in _of_type(datastore, "VirtualMachine")
                   if vm.datastore is datastore)

    def url() -> str:
        return f"ds:///vmfs/volumes/{datastore.moid}/"

    def info() -> Any:
        return filled(vim.host.LocalDatastoreInfo, name=datastore.name, url=url(), path=str(datastore.directory),
                      freeSpace=DATASTORE_CAPACITY - used(), maxFileSize=DATASTORE_CAPACITY,
                      maxVirtualDiskCapacity=DATASTORE_CAPACITY, maxMemoryFileSize=DATASTORE_CAPACITY,
                      timestamp=datetime.datetime.now(datetime.timezone.utc))

    def summary() -> Any:
        committed = used()
        uncommitted = sum(storage_usage(vm)[1] for vm in _of_type(datastore, "VirtualMachine")
                          if vm.datastore is datastore)
        return filled(vim.Datastore.Summary, datastore=datastore.ref, name=datastore.name, url=url(),
                      capacity=DATASTORE_CAPACITY, freeSpace=DATASTORE_CAPACITY - committed,
                      uncommitted=uncommitted, accessible=True, multipleHostAccess=True, type="OTHER",
                      maintenanceMode="normal")

    def host_mounts() -> list[Any]:
        return [vim.Datastore.HostMount(key=h.ref, mountInfo=filled(
            vim.host.MountInfo, path=str(datastore.directory), accessMode="readWrite", mounted=True,
            accessible=True)) for h in _of_type(datastore, "HostSystem")]

    return {
        "info": info, "summary": summary, "host": host_mounts,
        "vm": lambda: [vm.ref for vm in _of_type(datastore, "VirtualMachine") if vm.datastore is datastore],
        "capability": lambda: filled(vim.Datastore.Capability, directoryHierarchySupported=True,
                                     perFileThinProvisioningSupported=True),
    }


def cluster_properties(cluster: "ClusterComputeResource") -> Props:
    def summary() -> Any:
        hosts = len(cluster.hosts)
        return filled(vim.ClusterComputeResource.Summary, totalCpu=hosts * HOST_CORES * HOST_CPU_MHZ,
                      totalMemory=hosts * HOST_MEMORY, numCpuCores=hosts * HOST_CORES,
                      numCpuThreads=hosts * HOST_CORES, effectiveCpu=hosts * HOST_CORES * HOST_CPU_MHZ,
                      effectiveMemory=hosts * (HOST_MEMORY >> 20), numHosts=hosts, numEffectiveHosts=hosts,
                      overallStatus="green", currentFailoverLevel=0, numVmotions=0)

    return {
        "summary": summary,
        "network": lambda: _networks(cluster),
        "configurationEx": lambda: filled(
            vim.cluster.ConfigInfoEx, dasConfig=filled(vim.cluster.DasConfigInfo, enabled=False),
            drsConfig=filled(vim.cluster.DrsConfigInfo, enabled=False, defaultVmBehavior="fullyAutomated")),
    }


def _allocation(shares: int) -> Any:
    return filled(vim.ResourceAllocationInfo, reservation=0, expandableReservation=True, limit=-1,
                  shares=vim.SharesInfo(shares=shares, level="normal"))


def pool_properties(pool: "ResourcePool") -> Props:
    def config() -> Any:
        return vim.ResourceConfigSpec(entity=pool.ref, cpuAllocation=_allocation(4000),
                                      memoryAllocation=_allocation(163840))

    def runtime() -> Any:
        usage = lambda: filled(vim.ResourcePool.ResourceUsage, maxUsage=HOST_MEMORY,  # noqa: E731
                               unreservedForPool=HOST_MEMORY, unreservedForVm=HOST_MEMORY)
        return vim.ResourcePool.RuntimeInfo(memory=usage(), cpu=usage(), overallStatus="green")

    props: Props = {
        "config": config, "runtime": runtime, "childConfiguration": list,
        "summary": lambda: filled(vim.ResourcePool.Summary, name=pool.name, config=config(), runtime=runtime()),
    }
    if pool.type_name == "VirtualApp":
        props.update(
            summary=lambda: filled(vim.VirtualApp.Summary, name=pool.name, config=config(), runtime=runtime(),
                                   vAppState="stopped", suspended=False, installBootRequired=False),
            vAppConfig=lambda: filled(vim.vApp.VAppConfigInfo, annotation="", installBootRequired=False,
                                      installBootStopDelay=0, entityConfig=[], product=[], property=[],
                                      ipAssignment=filled(vim.vApp.IPAssignmentInfo, ipAllocationPolicy="fixedPolicy")),
            datastore=lambda: [d.ref for d in _of_type(pool, "Datastore")],
            network=lambda: _networks(pool),
            parentVApp=lambda: None, childLink=list,
        )
    return props
