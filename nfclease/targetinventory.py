"""Where a target's imports go and what is in its inventory: placement, entities, lease tasks.

:class:`TargetInventory` is a base of :class:`nfclease.target.Target`, which
holds the connection and the state these methods read (``si``, ``content``,
``spec``, ``_lock``, ``_placement``, ``read_only`` ...).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any


@dataclass
class Placement:
    """Where imports go: found from ``GOVC_*`` or the first of each in the inventory."""

    datacenter: Any
    resource_pool: Any
    folder: Any
    datastore: Any
    host: Any | None = None

    def summary(self) -> dict[str, str | None]:
        return {k: (getattr(v, "_moId", None) if v is not None else None)
                for k, v in (("datacenter", self.datacenter), ("resource_pool", self.resource_pool),
                             ("folder", self.folder), ("datastore", self.datastore), ("host", self.host))}


class TargetInventory:
    """Placement, inventory look-ups and the tasks of leases, for :class:`nfclease.target.Target`."""

    # -- placement ----------------------------------------------------------

    @property
    def placement(self) -> Placement:
        if self._placement is None:
            self._placement = self._find_placement()
        return self._placement

    def _find_placement(self) -> Placement:
        from pyVmomi import vim

        spec = self.spec
        dc = (self._resolve(spec.datacenter, vim.Datacenter, [""], None) if spec.datacenter
              else self._first(self.content.rootFolder, vim.Datacenter))
        if dc is None:
            raise LookupError(f"{self.display_url}: no datacenter" +
                              (f" named {spec.datacenter!r}" if spec.datacenter else ""))
        dc_name = dc.name
        host = (self._resolve(spec.esx_host, vim.HostSystem, [f"{dc_name}/host/", ""], dc)
                if spec.esx_host else None)
        if spec.resource_pool:
            pool = self._resolve(spec.resource_pool, vim.ResourcePool, [f"{dc_name}/host/", ""], dc)
        elif host is not None:
            pool = host.parent.resourcePool
        elif spec.cluster:
            pool = self._resolve(spec.cluster, vim.ComputeResource, [f"{dc_name}/host/", ""], dc).resourcePool
        else:
            compute = self._first(dc.hostFolder, vim.ComputeResource)
            pool = compute.resourcePool if compute is not None else None
        if spec.folder:
            folder = self._resolve(spec.folder, vim.Folder, [f"{dc_name}/vm/", f"{dc_name}/", ""], dc)
        else:
            folder = dc.vmFolder
        if spec.datastore:
            datastore = self._resolve(spec.datastore, vim.Datastore, [f"{dc_name}/datastore/", ""], dc)
        else:
            candidates = list(host.datastore) if host is not None else list(dc.datastore)
            datastore = candidates[0] if candidates else None
        if host is None and pool is not None:
            hosts = list(getattr(pool.owner, "host", None) or [])
            host = hosts[0] if hosts else None
        for name, value in (("resource pool", pool), ("folder", folder), ("datastore", datastore)):
            if value is None:
                raise LookupError(f"{self.display_url}: no {name} found in datacenter {dc_name!r}")
        return Placement(datacenter=dc, resource_pool=pool, folder=folder, datastore=datastore, host=host)

    def _resolve(self, path: str, vimtype: type, prefixes: list[str], within: Any | None) -> Any:
        """An inventory object from an absolute path, a path relative to the datacenter, or a name."""
        index = self.content.searchIndex
        candidates = [path.lstrip("/")] if path.startswith("/") else [p + path for p in prefixes]
        for candidate in candidates:
            found = index.FindByInventoryPath(candidate)
            if isinstance(found, vimtype):
                return found
        root = within if within is not None else self.content.rootFolder
        for obj in self._all(root, vimtype):
            if obj.name == path.rsplit("/", 1)[-1]:
                return obj
        raise LookupError(f"{self.display_url}: no {vimtype.__name__} at {path!r}")

    def _all(self, root: Any, vimtype: type) -> list[Any]:
        view = self.content.viewManager.CreateContainerView(root, [vimtype], True)
        try:
            return list(view.view)
        finally:
            with contextlib.suppress(Exception):
                view.DestroyView()

    def _first(self, root: Any, vimtype: type) -> Any | None:
        found = self._all(root, vimtype)
        return found[0] if found else None

    # -- inventory helpers ----------------------------------------------------

    def find_entity(self, ref: Any, vimtype: type) -> Any:
        """A managed object from an object, a moid (``vm-42``), an inventory path or a name."""
        if not isinstance(ref, str):
            return ref
        if "/" in ref:
            found = self.content.searchIndex.FindByInventoryPath(ref.lstrip("/"))
            if isinstance(found, vimtype):
                return found
            raise LookupError(f"{self.display_url}: no {vimtype.__name__} at {ref!r}")
        for obj in self._all(self.content.rootFolder, vimtype):
            if obj._moId == ref:
                return obj
        for obj in self._all(self.content.rootFolder, vimtype):
            if obj.name == ref:
                return obj
        raise LookupError(f"{self.display_url}: no {vimtype.__name__} named {ref!r}")

    def _require_owned(self, what: str) -> None:
        if self.spec.kind == "url":
            raise ValueError(f"{self.display_url}: name the {what} to export; the suite does not pick "
                             "one of a real server's own")

    def default_export_vm(self, prefer_snapshot: bool = False) -> Any:
        """A VM of the simulator's inventory, powered off if any is (not one the suite imported)."""
        from pyVmomi import vim

        self._require_owned("VM")
        dc = self.placement.datacenter
        in_vapps = {vm._moId for vapp in self._all(dc, vim.VirtualApp) for vm in (vapp.vm or [])}
        candidates = [vm for vm in self._all(dc, vim.VirtualMachine)
                      if vm._moId not in in_vapps and not vm.name.startswith("nfclease-")]
        powered_off = [vm for vm in candidates if vm.runtime.powerState == "poweredOff"]
        if prefer_snapshot:
            with_snapshot = [vm for vm in powered_off if self.properties(vm, ["snapshot"]).get("snapshot")]
            if with_snapshot:
                return with_snapshot[0]
        if powered_off:
            return powered_off[0]
        if not candidates:  # a powered-on one lets the server say what it thinks (InvalidPowerState)
            raise LookupError(f"{self.display_url}: no VM to export")
        return candidates[0]

    def default_export_vapp(self) -> Any:
        from pyVmomi import vim

        self._require_owned("vApp")
        vapp = self._first(self.placement.datacenter, vim.VirtualApp)
        if vapp is None:
            raise LookupError(f"{self.display_url}: no vApp to export")
        return vapp

    def relocate_spec(self, vm: Any) -> Any:
        """A RelocateSpec moving ``vm`` to another host of its cluster, or in place."""
        from pyVmomi import vim

        current = vm.runtime.host
        hosts = list(getattr(getattr(current, "parent", None), "host", None) or [])
        others = [h for h in hosts if h._moId != getattr(current, "_moId", None)]
        if others:
            return vim.vm.RelocateSpec(host=others[0])
        return vim.vm.RelocateSpec()

    # -- tasks of leases --------------------------------------------------------

    def recent_task_ids(self) -> set[str]:
        """Moids in ``TaskManager.recentTask`` (to spot the task an Import/Export starts)."""
        try:
            return {t._moId for t in self.content.taskManager.recentTask or []}
        except Exception:
            return set()

    def find_new_task(self, before: set[str], *, entity_name: str | None = None,
                      entity_moid: str | None = None, kind: str | None = None) -> Any | None:
        """The import/export task that appeared since ``before``, if the target shows one.

        Matched by description (``...Import...``/``...Export...``) and the
        entity, so concurrent sessions do not take each other's task.
        """
        try:
            fresh = [t for t in self.content.taskManager.recentTask or [] if t._moId not in before]
        except Exception:
            return None
        return self._pick_task(fresh, entity_name=entity_name, entity_moid=entity_moid, kind=kind)

    def find_lease_task(self, entity: Any, kind: str | None = None) -> Any | None:
        """The running or ended import/export task about ``entity`` among the recent tasks."""
        if entity is None:
            return None
        try:
            tasks = list(self.content.taskManager.recentTask or [])
        except Exception:
            return None
        return self._pick_task(tasks, entity_moid=entity._moId, kind=kind)

    def _pick_task(self, tasks: list[Any], *, entity_name: str | None = None, entity_moid: str | None = None,
                   kind: str | None = None) -> Any | None:
        words = ("import",) if kind == "import" else ("export",) if kind and kind.startswith("export") else (
            "import", "export")
        matches = []
        for task in tasks:
            try:
                info = self.task_info(task)
            except Exception:
                continue
            description = (info.descriptionId or "").lower()
            if not any(w in description for w in words):
                continue
            score = 0
            if entity_name and info.entityName == entity_name:
                score = 2
            elif entity_moid and getattr(info.entity, "_moId", None) == entity_moid:
                score = 2
            matches.append((score, task))
        best = [t for s, t in matches if s == 2]
        if best:
            return best[-1]
        return matches[-1][1] if len(matches) == 1 else None
