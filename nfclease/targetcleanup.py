"""What a target's run created, and removing it: leases aborted, snapshots removed, entities destroyed.

:class:`TargetCleanup` is a base of :class:`nfclease.target.Target` (``close()``
runs the cleanup); cleanup is bookkeeping, not a protocol call under test, so
it emits no events; what it did is in ``cleanup_log``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from nfclease import lifecycle
from nfclease.redaction import redact_text

log = logging.getLogger("nfclease.target")


@dataclass
class _Created:
    """One thing the suite made on the target, and how to remove it."""

    what: str
    ref: Any
    name: str | None = None
    done: bool = False


class TargetCleanup:
    """The cleanup registry and ``close()``, for :class:`nfclease.target.Target`."""

    # -- cleanup registry ----------------------------------------------------

    def register_lease(self, lease: Any) -> None:
        """A lease to abort at close if it is still initializing or ready."""
        self._register(_Created("lease", lease))

    def register_entity(self, entity: Any, name: str | None = None) -> None:
        """An imported VM or vApp to destroy at close (powered off first)."""
        self._register(_Created("entity", entity, name))

    def register_import_name(self, name: str) -> None:
        """An import whose entity may not be known yet: found by name at close."""
        self._register(_Created("name", None, name))

    def register_snapshot(self, snapshot: Any) -> None:
        """A snapshot the suite created, removed at close."""
        self._register(_Created("snapshot", snapshot))

    def protect(self, entity: Any) -> None:
        """A VM the user named (``--export-vm``): sessions refuse to upload to, power, destroy or move it."""
        with self._lock:
            self.read_only.add(entity._moId)

    def forget_lease(self, lease: Any) -> None:
        """The lease is done or in error: nothing to abort at close (saves a call per lease)."""
        moid = getattr(lease, "_moId", None)
        with self._lock:
            self._created = [item for item in self._created
                             if not (item.what == "lease" and getattr(item.ref, "_moId", None) == moid)]

    def forget_entity(self, entity: Any) -> None:
        """The suite destroyed it itself (e.g. a Destroy call under test)."""
        moid = getattr(entity, "_moId", None)
        with self._lock:
            for item in self._created:
                if item.what == "entity" and getattr(item.ref, "_moId", None) == moid:
                    item.done = True

    def _register(self, item: _Created) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("target is closed")
            self._created.append(item)

    def close(self) -> None:
        """Remove what the suite created (bounded by ``task_timeout`` each), then log out."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            created = list(self._created)
            sessions = list(self._sessions)
        with lifecycle.critical():  # a signal waits until what the run made is gone
            self._remove(created, sessions)

    def _remove(self, created: list[_Created], sessions: list[Any]) -> None:
        try:
            if created:
                self._ensure_session()
            for item in created:
                if item.what == "lease":
                    self._abort_lease(item.ref)
            for item in reversed(created):
                if item.what == "snapshot":
                    self.remove_snapshot(item.ref)
            entities: dict[str, Any] = {}
            for item in created:
                if item.what == "entity" and not item.done:
                    entities[item.ref._moId] = item.ref
            names = {item.name for item in created if item.what in ("name", "entity") and item.name}
            if names:
                for entity in self._find_named(names):
                    entities.setdefault(entity._moId, entity)
            for entity in entities.values():
                self.destroy_entity(entity)
        finally:
            if self._nfc is not None:
                self._nfc.close()
            for si in [*sessions, self.si]:
                with contextlib.suppress(Exception):
                    si.content.sessionManager.Logout()

    def _ensure_session(self) -> None:
        """Log in again if the session was lost (server restart, session expiry, a logout).

        The run's references (leases, VMs, snapshots) are bound to our stub;
        giving the stub the new session's cookie re-binds them all, so
        cleanup reaches what the run made. A lease of the lost session stays
        out of reach (leases belong to their session): it lapses by itself.
        """
        from pyVmomi import vim

        try:  # any authenticated read (currentSession is None on some simulators even when logged in)
            self.properties(self.content.rootFolder, ["name"])
            return
        except vim.fault.NotAuthenticated:
            pass
        except Exception as exc:  # unreachable: cleanup will say so call by call
            self._note(f"session check: {type(exc).__name__}")
            return
        try:
            fresh = self._connect()
        except Exception as exc:
            self._note(f"session lost and a new login failed: {type(exc).__name__}: {_message(exc)}")
            return
        self.si._stub.cookie = fresh._stub.cookie
        self._note("session lost: logged in again for cleanup")

    def _note(self, text: str) -> None:
        text = redact_text(text)  # fault messages name leases, whose moids hold a session key
        self.cleanup_log.append(text)
        log.info("cleanup %s: %s", self.display_url, text)

    def _abort_lease(self, lease: Any) -> None:
        try:
            state = lease.state
            if state in ("initializing", "ready"):  # with the cause, for whoever watches the task
                from pyVmomi import vmodl

                lease.HttpNfcLeaseAbort(fault=vmodl.fault.RequestCanceled(
                    msg="nfclease ended before this lease was completed; aborted at cleanup"))
                self._note(f"aborted lease {lease._moId} ({state})")
        except Exception as exc:  # gone, expired, finished: nothing to undo
            self._note(f"lease {lease._moId}: {type(exc).__name__}")

    def remove_snapshot(self, snapshot: Any) -> None:
        """Remove a snapshot (bounded by task_timeout); what happened goes to cleanup_log."""
        try:
            task = snapshot.RemoveSnapshot_Task(removeChildren=False)
            self.wait_task(task)
            self._note(f"removed snapshot {snapshot._moId}")
        except Exception as exc:
            self._note(f"snapshot {snapshot._moId}: {type(exc).__name__}: {_message(exc)}")

    def destroy_entity(self, entity: Any) -> None:
        """Power off and destroy a VM or vApp (bounded); what happened goes to cleanup_log."""
        from pyVmomi import vim

        try:
            vms = [entity] if isinstance(entity, vim.VirtualMachine) else list(getattr(entity, "vm", None) or [])
            for vm in vms:
                if vm.runtime.powerState != "poweredOff":
                    with contextlib.suppress(Exception):
                        self.wait_task(vm.PowerOffVM_Task())
            if isinstance(entity, vim.VirtualApp):
                with contextlib.suppress(Exception):
                    self.wait_task(entity.PowerOffVApp_Task(force=True))
            info = self.wait_task(entity.Destroy_Task())
            self._note(f"destroyed {entity._moId}: {info.state}")
        except Exception as exc:
            self._note(f"{getattr(entity, '_moId', entity)}: {type(exc).__name__}: {_message(exc)}")

    def _find_named(self, names: set[str]) -> list[Any]:
        """VMs and vApps the suite named (``nfclease-...``), wherever the import put them."""
        from pyVmomi import vim, vmodl

        found: list[Any] = []
        try:
            view = self.content.viewManager.CreateContainerView(
                self.content.rootFolder, [vim.VirtualMachine, vim.VirtualApp], True)
        except Exception as exc:
            self._note(f"search by name: {type(exc).__name__}")
            return found
        try:
            collector = self.content.propertyCollector
            spec = vmodl.query.PropertyCollector.FilterSpec(
                objectSet=[vmodl.query.PropertyCollector.ObjectSpec(
                    obj=view, skip=True,
                    selectSet=[vmodl.query.PropertyCollector.TraversalSpec(
                        name="view", type=vim.view.ContainerView, path="view", skip=False)])],
                propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=["name"]),
                         vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualApp, pathSet=["name"])])
            result = collector.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
            while result is not None:
                for content in result.objects or []:
                    for prop in content.propSet or []:
                        if prop.name == "name" and prop.val in names:
                            found.append(content.obj)
                token = result.token
                result = collector.ContinueRetrievePropertiesEx(token) if token else None
        except Exception as exc:
            self._note(f"search by name: {type(exc).__name__}: {_message(exc)}")
        finally:
            with contextlib.suppress(Exception):
                view.DestroyView()
        # a vApp's VMs go with it: destroy vApps first by ordering them ahead
        return sorted(found, key=lambda o: 0 if isinstance(o, vim.VirtualApp) else 1)


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "msg", None) or exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
