"""The simulator's world: managed objects, the inventory, tasks, sessions.

Every managed object is an :class:`MObject` with a vim type name, a moid and a
``get(path)`` that answers property reads (``Fetch``, the property collector)
with pyVmomi data objects. All state lives under one lock (``World.lock``);
every change bumps ``World.generation`` and wakes the property collector, so
``WaitForUpdates`` sees it. SOAP work is short and the GIL serialises Python
anyway; NFC streaming never holds the lock.
"""

from __future__ import annotations

import datetime
import itertools
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from pyVmomi import VmomiSupport, vim, vmodl

from nfclease.sim.soap import SoapError, moref


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def not_found(ref: Any, detail: str = "") -> SoapError:
    return SoapError(vmodl.fault.ManagedObjectNotFound(obj=ref),
                     f"The object '{ref}' has already been deleted or has not been completely created"
                     + (f" ({detail})" if detail else ""))


class MObject:
    """A managed object of the simulated inventory."""

    type_name = "ManagedEntity"

    def __init__(self, world: "World", moid: str | None = None, name: str = "") -> None:
        self.world = world
        self.moid = moid or world.new_moid(self.type_name)
        self.name = name
        self.parent: MObject | None = None
        self.ref = moref(self.type_name, self.moid)
        world.register(self)

    # -- properties ---------------------------------------------------------
    def properties(self) -> dict[str, Callable[[], Any]]:
        """Property name -> getter. Subclasses extend."""
        props: dict[str, Callable[[], Any]] = {}
        if self.name:
            props["name"] = lambda: self.name
        props["parent"] = lambda: self.parent.ref if self.parent else None
        if isinstance(self.ref, vim.ManagedEntity):
            props.update(entity_properties(self))
        return props

    def get(self, path: str, props: dict[str, Callable[[], Any]] | None = None) -> Any:
        """Read a property path (``info.state``); raise InvalidProperty if unknown.

        Pass the ``props`` of one :meth:`properties` call to read several paths
        of the object at one instant (the property collector does).
        """
        head, _, rest = path.partition(".")
        getter = (self.properties() if props is None else props).get(head)
        if getter is None:
            if declared(self, head):
                return None  # a property of the type the simulator leaves unset, as vCenter leaves many
            raise SoapError(vmodl.query.InvalidProperty(name=path),
                            f"{self.type_name} has no property {head!r}")
        value = getter()
        for part in rest.split(".") if rest else ():
            if value is None:
                return None
            value = getattr(value, part, None)
        return value

    def children(self) -> list["MObject"]:
        """Named children, for inventory paths and container views."""
        return []

    def __repr__(self) -> str:
        return f"<{self.type_name} {self.moid} {self.name!r}>"


def declared(obj: MObject, name: str) -> bool:
    """Whether ``name`` is a property of ``obj``'s vim type."""
    try:
        type(obj.ref)._GetPropertyInfo(name)
    except (AttributeError, KeyError):
        return False
    return True


def entity_properties(obj: MObject) -> dict[str, Callable[[], Any]]:
    """What every ManagedEntity has: status, its recent tasks, and empty permission and alarm lists."""
    return {
        "overallStatus": lambda: "green", "configStatus": lambda: "green",
        "recentTask": lambda: [t.ref for t in obj.world.recent_tasks
                               if t.info.entity is not None and t.info.entity._moId == obj.moid
                               and t.info.state in ("queued", "running")],
        "alarmActionsEnabled": lambda: True, "effectiveRole": lambda: [-1],
        "configIssue": list, "permission": list, "disabledMethod": list, "declaredAlarmState": list,
        "triggeredAlarmState": list, "tag": list, "customValue": list, "value": list, "availableField": list,
    }


class Folder(MObject):
    type_name = "Folder"

    def __init__(self, world: "World", name: str, child_type: list[str], moid: str | None = None) -> None:
        super().__init__(world, moid, name)
        self.child_type = child_type
        self.entries: list[MObject] = []

    def add(self, obj: MObject) -> MObject:
        obj.parent = self
        self.entries.append(obj)
        self.world.touch()
        return obj

    def remove(self, obj: MObject) -> None:
        if obj in self.entries:
            self.entries.remove(obj)
            self.world.touch()

    def properties(self) -> dict[str, Callable[[], Any]]:
        props = super().properties()
        props["childEntity"] = lambda: [c.ref for c in self.entries]
        props["childType"] = lambda: list(self.child_type)
        return props

    def children(self) -> list[MObject]:
        return list(self.entries)


class Datacenter(MObject):
    type_name = "Datacenter"

    def __init__(self, world: "World", name: str) -> None:
        super().__init__(world, None, name)
        self.vm_folder = Folder(world, "vm", ["Folder", "VirtualMachine", "VirtualApp"])
        self.host_folder = Folder(world, "host", ["Folder", "ComputeResource"])
        self.datastore_folder = Folder(world, "datastore", ["Folder", "Datastore"])
        self.network_folder = Folder(world, "network", ["Folder", "Network"])
        for folder in self.folders():
            folder.parent = self

    def folders(self) -> list[Folder]:
        return [self.vm_folder, self.host_folder, self.datastore_folder, self.network_folder]

    def properties(self) -> dict[str, Callable[[], Any]]:
        props = super().properties()
        props.update(
            vmFolder=lambda: self.vm_folder.ref,
            hostFolder=lambda: self.host_folder.ref,
            datastoreFolder=lambda: self.datastore_folder.ref,
            networkFolder=lambda: self.network_folder.ref,
            datastore=lambda: [d.ref for d in self.datastore_folder.entries],
            network=lambda: [n.ref for n in self.network_folder.entries],
        )
        return props

    def children(self) -> list[MObject]:
        return self.folders()


class Datastore(MObject):
    type_name = "Datastore"

    def __init__(self, world: "World", name: str, directory: Path) -> None:
        super().__init__(world, None, name)
        self.directory = directory

    def properties(self) -> dict[str, Callable[[], Any]]:
        from nfclease.sim.infra_properties import datastore_properties
        props = super().properties()
        props.update(datastore_properties(self))
        return props


class Network(MObject):
    """A standard port group: what a VM's NIC backing names."""

    type_name = "Network"

    def properties(self) -> dict[str, Callable[[], Any]]:
        props = super().properties()
        vms = lambda: [vm for vm in self.world.all_of(VirtualMachine) if self.name in vm.nics]  # noqa: E731
        props["vm"] = lambda: [vm.ref for vm in vms()]
        props["host"] = lambda: [h.ref for h in self.world.all_of(HostSystem)]
        props["summary"] = lambda: vim.Network.Summary(network=self.ref, name=self.name, accessible=True,
                                                       ipPoolName="")
        return props


class HostSystem(MObject):
    type_name = "HostSystem"

    def properties(self) -> dict[str, Callable[[], Any]]:
        from nfclease.sim.infra_properties import host_properties
        props = super().properties()
        props.update(host_properties(self))
        return props


class ResourcePool(MObject):
    type_name = "ResourcePool"

    def __init__(self, world: "World", name: str, owner: MObject | None = None) -> None:
        super().__init__(world, None, name)
        self.owner = owner
        self.pools: list[ResourcePool] = []
        self.vms: list[VirtualMachine] = []

    def properties(self) -> dict[str, Callable[[], Any]]:
        props = super().properties()
        props.update(
            owner=lambda: self.owner.ref if self.owner else None,
            resourcePool=lambda: [p.ref for p in self.pools],
            vm=lambda: [v.ref for v in self.vms],
        )
        from nfclease.sim.infra_properties import pool_properties
        props.update(pool_properties(self))
        return props

    def children(self) -> list[MObject]:
        return list(self.pools)


class VirtualApp(ResourcePool):
    type_name = "VirtualApp"

    def __init__(self, world: "World", name: str, folder: Folder) -> None:
        super().__init__(world, name)
        self.folder = folder

    def properties(self) -> dict[str, Callable[[], Any]]:
        props = super().properties()
        props["parentFolder"] = lambda: self.folder.ref
        return props

    def children(self) -> list[MObject]:
        return [*self.pools, *self.vms]


class ClusterComputeResource(MObject):
    type_name = "ClusterComputeResource"

    def __init__(self, world: "World", name: str) -> None:
        super().__init__(world, None, name)
        self.hosts: list[HostSystem] = []
        self.pool = ResourcePool(world, "Resources", owner=self)
        self.pool.parent = self

    def properties(self) -> dict[str, Callable[[], Any]]:
        props = super().properties()
        props.update(
            host=lambda: [h.ref for h in self.hosts],
            resourcePool=lambda: self.pool.ref,
            datastore=lambda: [d.ref for d in self.world.all_of(Datastore)],
        )
        from nfclease.sim.infra_properties import cluster_properties
        props.update(cluster_properties(self))
        return props

    def children(self) -> list[MObject]:
        return [self.pool, *self.hosts]


@dataclass
class Disk:
    """A virtual disk: a streamOptimized VMDK stream stored in a file."""

    path: Path
    capacity: int
    label: str


class VirtualMachine(MObject):
    type_name = "VirtualMachine"

    def __init__(self, world: "World", name: str, pool: ResourcePool, host: HostSystem | None,
                 datastore: Datastore, disks: list[Disk] | None = None) -> None:
        super().__init__(world, None, name)
        self.pool = pool
        self.host = host
        self.datastore = datastore
        self.disks: list[Disk] = disks or []
        self.power_state = "poweredOff"
        self.boot_time: datetime.datetime | None = None
        self.snapshots: list[Snapshot] = []
        self.uuid = str(uuid.uuid4())
        self.instance_uuid = str(uuid.uuid4())
        # the hardware and settings config.* shows (nfclease.sim.vm_properties)
        self.num_cpu, self.memory_mb, self.guest_id = 1, 32, "otherGuest64"
        self.nics: list[str] = ["VM Network"]  # the network each NIC is on
        self.nic_kind = "VirtualVmxnet3"  # the vim device type of every NIC
        self.annotation = ""
        self.extra_config: dict[str, str] = {}
        self.created = self.modified = now_utc()

    def properties(self) -> dict[str, Callable[[], Any]]:
        from nfclease.sim import vm_properties
        props = super().properties()
        props.update(vm_properties.properties(self))
        props["snapshot"] = self._snapshot_info
        props["rootSnapshot"] = lambda: [s.ref for s in self.snapshots]  # each a root (see _snapshot_info)
        return props

    def _snapshot_info(self):
        if not self.snapshots:
            return None
        trees = [vim.vm.SnapshotTree(snapshot=s.ref, vm=self.ref, name=s.name, description=s.description,
                                     id=index + 1, createTime=s.created, state="poweredOff", quiesced=False)
                 for index, s in enumerate(self.snapshots)]
        return vim.vm.SnapshotInfo(currentSnapshot=self.snapshots[-1].ref, rootSnapshotList=trees)

    def device_key(self, index: int) -> str:
        return f"/{self.moid}/VirtualLsiLogicController0:{index}"


class Snapshot(MObject):
    type_name = "VirtualMachineSnapshot"

    def __init__(self, world: "World", vm: VirtualMachine, name: str, description: str = "") -> None:
        super().__init__(world, None, name)
        self.vm = vm
        self.description = description
        self.created = now_utc()
        self.disks = list(vm.disks)

    def properties(self) -> dict[str, Callable[[], Any]]:
        from nfclease.sim import vm_properties
        return {"vm": lambda: self.vm.ref, "config": lambda: vm_properties.config(self.vm, self.disks),
                "childSnapshot": list, "value": list, "availableField": list}


class Task(MObject):
    """A task: its ``info`` is what WaitForTask and the property collector read."""

    type_name = "Task"

    def __init__(self, world: "World", description_id: str, entity: MObject | None,
                 name: str | None = None) -> None:
        super().__init__(world, None)
        self.info = vim.TaskInfo(
            key=self.moid, task=self.ref, descriptionId=description_id,
            entity=entity.ref if entity else None, entityName=entity.name if entity else None,
            state="running", cancelled=False, cancelable=False,
            reason=vim.TaskReasonUser(userName="nfclease"),
            queueTime=now_utc(), startTime=now_utc(), eventChainId=world.next_int())
        world.recent_tasks.append(self)
        for old in world.recent_tasks[:-200]:  # finished tasks beyond the recent list are forgotten
            if old.info.state in ("success", "error"):
                world.objects.pop(old.moid, None)
        del world.recent_tasks[:-200]

    def properties(self) -> dict[str, Callable[[], Any]]:
        return {"info": lambda: self.info}

    def succeed(self, result: Any = None) -> None:
        self.info.state = "success"
        self.info.result = result
        self.info.progress = 100
        self.info.completeTime = now_utc()
        self.world.touch()

    def fail(self, fault: vmodl.MethodFault) -> None:
        self.info.state = "error"
        self.info.error = fault
        self.info.completeTime = now_utc()
        self.world.touch()

    def set_progress(self, percent: int) -> None:
        self.info.progress = percent
        self.world.touch()


@dataclass
class Session:
    key: str
    user: str
    login_time: datetime.datetime = field(default_factory=now_utc)
    filters: list[Any] = field(default_factory=list)
    collectors: list[Any] = field(default_factory=list)  # made by CreatePropertyCollector
    retrieve_pages: dict[str, list[Any]] = field(default_factory=dict)  # ContinueRetrievePropertiesEx token -> rest
    page_sizes: dict[str, int] = field(default_factory=dict)  # collector moid -> its last maxObjects
    authenticated: bool = True
    info: Any = None  # the vim.UserSession Login returned (SessionManager.currentSession)


class World:
    """Registry of managed objects and the lock and clock that guard them."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.generation = 0
        self.objects: dict[str, MObject] = {}
        self.recent_tasks: list[Task] = []
        self._counter = itertools.count(1)
        self._caller = threading.local()  # the session of the request this thread serves

    def serving(self, session: Session | None) -> None:
        """Record the session of the request the calling thread now serves (for session-relative properties)."""
        self._caller.session = session

    def current_session(self) -> Session | None:
        """The session of the request being served: ``SessionManager.currentSession``, the caller's views."""
        return getattr(self._caller, "session", None)

    def next_int(self) -> int:
        return next(self._counter)

    def new_moid(self, type_name: str) -> str:
        prefix = {"VirtualMachine": "vm", "Task": "task", "Folder": "group", "Datacenter": "datacenter",
                  "HostSystem": "host", "ResourcePool": "resgroup", "VirtualApp": "resgroup-v",
                  "ClusterComputeResource": "domain-c", "Datastore": "datastore",
                  "VirtualMachineSnapshot": "snapshot", "Network": "network", "ContainerView": "session-view",
                  "PropertyFilter": "session-filter"}.get(type_name, type_name.lower())
        return f"{prefix}-{self.next_int()}"

    def register(self, obj: MObject) -> None:
        self.objects[obj.moid] = obj

    def unregister(self, obj: MObject) -> None:
        self.objects.pop(obj.moid, None)
        self.touch()

    def touch(self) -> None:
        """Record a change: wakes every WaitForUpdates (caller holds the lock)."""
        with self.changed:
            self.generation += 1
            self.changed.notify_all()

    def resolve(self, ref: Any, expected: type[MObject] | None = None) -> MObject:
        """The object a reference names, or ManagedObjectNotFound."""
        if not isinstance(ref, VmomiSupport.ManagedObject):  # a fault about it could not even name it
            raise SoapError(vmodl.fault.InvalidArgument(), f"{type(ref).__name__} is not a managed object reference")
        moid = getattr(ref, "_moId", None)
        obj = self.objects.get(moid) if moid is not None else None
        if obj is None or obj.type_name != getattr(ref, "_wsdlName", obj.type_name):
            if obj is None or not issubclass(type(obj.ref), type(ref)):
                raise not_found(ref)
        if expected is not None and not isinstance(obj, expected):
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="_this"),
                            f"{ref} is not a {expected.type_name}")
        return obj

    def all_of(self, kind: type) -> list[Any]:
        return [o for o in self.objects.values() if isinstance(o, kind)]

    def walk(self, root: MObject) -> Iterable[MObject]:
        yield root
        for child in root.children():
            yield from self.walk(child)


def type_matches(obj: MObject, type_names: Iterable[str]) -> bool:
    """Whether ``obj`` is of one of the vim types named (subtypes included)."""
    for name in type_names:
        try:
            wanted = VmomiSupport.GetWsdlType("urn:vim25", name)
        except KeyError:
            continue
        if isinstance(obj.ref, wanted):
            return True
    return False
