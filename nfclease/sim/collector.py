"""The PropertyCollector: retrieve properties by spec, filters, and WaitForUpdates.

Also the helpers every property read shares (the dispatcher's direct
property fetch uses them too): :func:`declared_type`, :func:`typed`,
:func:`check_version`.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from pyVmomi import VmomiSupport, vmodl

from nfclease.sim.soap import SoapError, moref
from nfclease.sim.world import MObject, Session, World


class Filter(MObject):
    type_name = "PropertyFilter"

    def __init__(self, world: World, spec: Any, partial: bool, session: Session, collector: str) -> None:
        super().__init__(world)
        self.spec, self.partial, self.session = spec, partial, session
        self.collector = collector  # moid of the PropertyCollector it belongs to
        self.last: dict[str, dict[str, str]] = {}
        self.values: dict[str, dict[str, Any]] = {}

    def properties(self) -> dict[str, Callable[[], Any]]:
        return {"spec": lambda: self.spec, "partialUpdates": lambda: self.partial}


class SessionCollector(MObject):
    """A PropertyCollector made by ``CreatePropertyCollector``: its own filters and update versions."""

    type_name = "PropertyCollector"

    def __init__(self, world: World, session: Session) -> None:
        super().__init__(world, world.new_moid("session-collector"))
        self.session = session

    def properties(self) -> dict[str, Callable[[], Any]]:
        return {"filter": lambda: [f.ref for f in self.session.filters if f.collector == self.moid]}


#: Objects one RetrievePropertiesEx answer holds when the client sets no maxObjects.
PAGE_SIZE = 100


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


def check_version(obj: MObject, path: str, version: str) -> None:
    """A property added after the advertised API version does not exist (InvalidProperty)."""
    if not in_version(obj, path, version):
        raise SoapError(vmodl.query.InvalidProperty(name=path),
                        f"{obj.type_name} has no property {path!r} in API version "
                        f"{VmomiSupport.versionIdMap[version]}")


def typed(value: Any, typ: type) -> Any:
    """Give plain Python values the vim types the serializer needs (arrays, enums)."""
    if isinstance(value, list) and isinstance(typ, type) and issubclass(typ, list):
        return typ(value)
    if isinstance(value, str) and isinstance(typ, type) and issubclass(typ, VmomiSupport.Enum):
        return getattr(typ, value, value)
    return value


class PropertyCollector:
    """The PropertyCollector's methods; ``is_active(session_key)`` ends a wait when its session logs out."""

    #: Methods that wait: the dispatcher runs them without holding ``world.lock``.
    LONG_POLL = frozenset({"WaitForUpdates", "WaitForUpdatesEx"})

    def __init__(self, world: World, version: str, is_active: Callable[[str], bool]) -> None:
        self.world = world
        self.version = version
        self.is_active = is_active

    def caller_filters(self) -> list[Any]:
        """The default PropertyCollector's ``filter``: the calling session's filters on it."""
        session = self.world.current_session()
        return [f.ref for f in (session.filters if session else []) if f.collector == "propertyCollector"]

    # ------------------------------------------------------------------ selecting
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
                    check_version(obj, path, self.version)
                    values[path] = typed(obj.get(path, props), declared_type(obj, path))
                out[obj.moid] = (obj, values)
        return out

    # ------------------------------------------------------------------ retrieving
    def _contents(self, specSet: list[Any]) -> list[Any]:
        objects = []
        for spec in specSet:
            for obj, values in self._values(spec).values():
                objects.append(vmodl.query.PropertyCollector.ObjectContent(
                    obj=obj.ref, propSet=[vmodl.DynamicProperty(name=k, val=v)
                                          for k, v in values.items() if v is not None]))
        return objects

    def _page(self, session: Session, objects: list[Any], size: int) -> Any:
        """The first ``size`` objects; the rest kept under a token for ContinueRetrievePropertiesEx."""
        if not objects:
            return None
        token = None
        if len(objects) > size:
            token = f"{self.world.next_int()}"
            session.retrieve_pages[token] = objects[size:]
            while len(session.retrieve_pages) > 64:  # a client that never continues: drop its oldest pages
                session.retrieve_pages.pop(next(iter(session.retrieve_pages)))
        return vmodl.query.PropertyCollector.RetrieveResult(objects=objects[:size], token=token)

    def RetrievePropertiesEx(self, session: Session, this: MObject, specSet: list[Any], options: Any = None) -> Any:
        size = getattr(options, "maxObjects", None) or PAGE_SIZE
        session.page_sizes[this.moid] = size
        return self._page(session, self._contents(specSet), max(1, size))

    def RetrieveProperties(self, session: Session, this: MObject, specSet: list[Any]) -> Any:
        return self._contents(specSet)

    def ContinueRetrievePropertiesEx(self, session: Session, this: MObject, token: str) -> Any:
        rest = session.retrieve_pages.pop(token, None)
        if rest is None:
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="token"),
                            f"no retrieval is pending under token {token!r}")
        return self._page(session, rest, session.page_sizes.get(this.moid, PAGE_SIZE))

    def CancelRetrievePropertiesEx(self, session: Session, this: MObject, token: str) -> None:
        session.retrieve_pages.pop(token, None)

    # ------------------------------------------------------------------ collectors of a session
    def CreatePropertyCollector(self, session: Session, this: MObject) -> Any:
        collector = SessionCollector(self.world, session)
        session.collectors.append(collector)
        return collector.ref

    def DestroyPropertyCollector(self, session: Session, this: MObject) -> None:
        if not isinstance(this, SessionCollector):
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="_this"),
                            "the session's default PropertyCollector cannot be destroyed")
        for flt in [f for f in session.filters if f.collector == this.moid]:
            self.DestroyPropertyFilter(session, flt)
        if this in session.collectors:
            session.collectors.remove(this)
        self.world.unregister(this)

    # ------------------------------------------------------------------ filters and updates
    def CreateFilter(self, session: Session, this: MObject, spec: Any, partialUpdates: bool) -> Any:
        flt = Filter(self.world, spec, partialUpdates, session, this.moid)
        session.filters.append(flt)
        return flt.ref

    def DestroyPropertyFilter(self, session: Session, this: Filter) -> None:
        if this in this.session.filters:
            this.session.filters.remove(this)
        self.world.unregister(this)

    def _updates(self, session: Session, collector: str) -> list[Any]:
        PC = vmodl.query.PropertyCollector
        filter_updates = []
        for flt in session.filters:
            if flt.collector != collector:
                continue
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

    def WaitForUpdatesEx(self, session: Session, this: MObject, version: str | None = None,
                         options: Any = None) -> Any:
        max_wait = getattr(options, "maxWaitSeconds", None) if options else None
        deadline = time.monotonic() + (max_wait if max_wait is not None else 3600)
        with self.world.changed:
            if not version:  # "" asks for everything the filters select, from scratch
                for flt in session.filters:
                    if flt.collector == this.moid:
                        flt.last.clear()
            while True:
                seen = self.world.generation
                updates = self._updates(session, this.moid)
                if updates:
                    next_version = str(int(version or 0) + 1) if (version or "0").isdigit() else "1"
                    return vmodl.query.PropertyCollector.UpdateSet(version=next_version, filterSet=updates)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.is_active(session.key):
                    return None
                while self.world.generation == seen and remaining > 0:
                    self.world.changed.wait(min(remaining, 1.0))
                    remaining = deadline - time.monotonic()

    def WaitForUpdates(self, session: Session, this: MObject, version: str | None = None) -> Any:
        while True:
            result = self.WaitForUpdatesEx(session, this, version, None)
            if result is not None:
                return result

    def CheckForUpdates(self, session: Session, this: MObject, version: str | None = None) -> Any:
        options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=0)
        return self.WaitForUpdatesEx(session, this, version, options)

    def CancelWaitForUpdates(self, session: Session, this: MObject) -> None:
        self.world.touch()
