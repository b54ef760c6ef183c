"""VM operations: power, destroy, relocate and snapshot, each refused while a lease covers the VM."""

from __future__ import annotations

from typing import Any, Callable

from pyVmomi import vim, vmodl

from nfclease.sim.leases import LeaseManager
from nfclease.sim.soap import SoapError
from nfclease.sim.world import HostSystem, MObject, ResourcePool, Session, Snapshot, Task, VirtualApp, VirtualMachine, World


class VmOperations:
    """The VM and snapshot tasks; ``destroy_entity`` removes a VM or vApp from the inventory."""

    def __init__(self, world: World, leases: LeaseManager, destroy_entity: Callable[[MObject], None]) -> None:
        self.world = world
        self.leases = leases
        self.destroy_entity = destroy_entity

    def _task(self, description: str, entity: MObject) -> Task:
        return Task(self.world, description, entity, description.split(".")[-1])

    def PowerOnVM_Task(self, session: Session, this: VirtualMachine, host: Any = None) -> Any:
        self.leases.check_unlocked(this, "PowerOn")
        task = self._task("VirtualMachine.powerOn", this)
        if this.power_state == "poweredOn":
            task.fail(vim.fault.InvalidPowerState(requestedState="poweredOn", existingState="poweredOn",
                                                  msg="The virtual machine is already powered on"))
        else:
            this.power_state = "poweredOn"
            this.boot_time = task.info.startTime
            task.succeed(None)
        return task.ref

    def PowerOffVM_Task(self, session: Session, this: VirtualMachine) -> Any:
        task = self._task("VirtualMachine.powerOff", this)
        if this.power_state == "poweredOff":
            task.fail(vim.fault.InvalidPowerState(requestedState="poweredOff", existingState="poweredOff",
                                                  msg="The virtual machine is already powered off"))
        else:
            this.power_state = "poweredOff"
            this.boot_time = None
            task.succeed(None)
        return task.ref

    def Destroy_Task(self, session: Session, this: MObject) -> Any:
        if isinstance(this, VirtualApp):
            for vm in this.vms:
                self.leases.check_unlocked(vm, "Destroy")
        elif isinstance(this, VirtualMachine):
            self.leases.check_unlocked(this, "Destroy")
        else:
            raise SoapError(vmodl.fault.NotSupported(), f"the simulator destroys only VMs and vApps, not {this}")
        task = self._task(f"{this.type_name}.destroy", this)
        self.destroy_entity(this)
        task.succeed(None)
        return task.ref

    def RelocateVM_Task(self, session: Session, this: VirtualMachine, spec: Any, priority: Any = None) -> Any:
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

    def CreateSnapshot_Task(self, session: Session, this: VirtualMachine, name: str, description: str | None = None,
                            memory: bool = False, quiesce: bool = False) -> Any:
        self.leases.check_unlocked(this, "CreateSnapshot")
        task = self._task("VirtualMachine.createSnapshot", this)
        snapshot = Snapshot(self.world, this, name, description or "")
        this.snapshots.append(snapshot)
        task.succeed(snapshot.ref)
        return task.ref

    def RemoveSnapshot_Task(self, session: Session, this: Snapshot, removeChildren: bool,
                            consolidate: bool | None = None) -> Any:
        task = self._task("VirtualMachineSnapshot.remove", this.vm)
        if this in this.vm.snapshots:
            this.vm.snapshots.remove(this)
        self.world.unregister(this)
        task.succeed(None)
        return task.ref
