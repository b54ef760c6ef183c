"""One lease and every call on it, each recorded as exactly one :class:`Event`.

A :class:`LeaseSession` is made by :func:`acquire_import`,
:func:`acquire_export_vm`, :func:`acquire_export_vapp` or
:func:`acquire_export_snapshot` (or :meth:`LeaseSession.attach` for a
reference the suite did not acquire: stale, bogus, another session's). Its
methods are the vocabulary of DEVELOPERS.md: ``Read``, ``WaitReady``,
``Progress``, ``Complete``, ``Abort``, ``GetManifest``,
``SetManifestChecksumType``, ``PullFromUrls``, ``Upload``, ``Download``,
``TaskInfo``, ``PowerOn``, ``Destroy``, ``Relocate``, ``Sleep``.

**Raise or record: one design.** Every method returns its result (the pyVmomi
object, a :class:`TransferResult`, a ``TaskInfo``; ``read``/``wait_ready``
return the ``Read`` value) or raises what the call raised -- *after* emitting
its event either way. Callers that want the outcome as data instead wrap the
call in :func:`attempt`::

    tried = attempt(session.complete)          # never raises for the call's own failure
    tried.event.outcome, tried.event.fault     # "fail", "vim.fault.InvalidState"
    tried = attempt(acquire_import, target, stream, disks=[1 << 20])
    session = tried.result                     # None when Acquire failed

**Outcomes and faults.** ``ok`` with a JSON-able value; ``fail`` with
``fault`` = ``type(exc).__name__`` for a vSphere fault
(``vim.fault.InvalidState``), ``http.<status>`` for an NFC refusal,
``net.<Exception>`` for a connection that failed before anything was sent;
``info`` when the outcome is unknown: ``net.<Exception>`` for a transport
error after the request went out, ``client.<Exception>`` for a failure on
the client's side (``client.WaitTimeout`` when ``wait_ready`` or a task wait
ran out of time, ``client.NoTask`` when the target exposes no import/export
task for the lease, ``client.NoDeviceUrl`` when a transfer names a device the
lease never listed, ``client.NoCoveredVm`` for PowerOn/Destroy/Relocate before
an import lease named its VM). Errors in values (a lease's or a task's) are
``{fault, message}``. Calls whose result is a *task* (``PullFromUrls``,
``PowerOn``, ``Destroy``, ``Relocate``) are ``ok`` once the task ended, with
the task's ``{state, error}`` as the value: a refusal raised by the method
itself is a ``fail``, one reported through the task is in the value.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Literal, Mapping, Sequence, TypeVar

from nfclease import lifecycle
from nfclease import vocabulary as V
from nfclease.callrecord import (MESSAGE_LIMIT, Attempt, NoCoveredVm, NoDeviceUrl, NoTask, ReadOnlyEntity, _record,
                                 attempt, classify, fault_summary, info_summary, jsonable, manifest_summary, moid,
                                 next_handle, task_summary)
from nfclease.events import EventStream
from nfclease.ovf import OvfDiskItem, OvfFileItem, OvfPackage, build_import_ovf, unique_name
from nfclease.sessiontransfer import (DEFAULT_FILE_SIZE, GARBAGE_LIMIT, KeepAlive, LeaseTransfers, UploadVariant,
                                      garbage_bytes, pattern_bytes)
from nfclease.target import Target, WaitTimeout
from nfclease.transfer import NfcClient, TransferResult

T = TypeVar("T")
Kind = Literal["import", "export-vm", "export-vapp", "export-snapshot"]
#: Members of a PullFromUrls source dict that are recorded for the model, never sent.
RECORDED_ONLY = ("sha1", "sha256", "served_thumbprint")
PullVariant = Literal["good", "short", "unreachable", "untrusted"]


# -- the session ---------------------------------------------------------------------

class LeaseSession(LeaseTransfers):
    """One lease: its calls, each an event; transfers through an :class:`NfcClient`."""

    def __init__(self, target: Target, stream: EventStream, lease: Any, *, kind: Kind | None,
                 handle: str | None = None, entity: Any | None = None, task: Any | None = None,
                 covered: Sequence[Any] = (), package: OvfPackage | None = None,
                 import_items: Mapping[str, OvfDiskItem | OvfFileItem] | None = None,
                 pattern: str = "random", nfc: NfcClient | None = None) -> None:
        self.target = target
        self.stream = stream
        self.lease = lease
        self.kind = kind
        self.handle = handle or next_handle(stream)
        self.entity = entity
        self.task = task
        self.covered: list[Any] = list(covered)
        self.package = package
        self.import_items: dict[str, OvfDiskItem | OvfFileItem] = dict(import_items or {})
        self.pattern = pattern
        self.nfc = nfc or target.nfc
        self.info: Any = None  # the last HttpNfcLeaseInfo seen (kept: transfers after release use it)
        self.state: str | None = None
        self.uploaded: dict[str, TransferResult] = {}
        self.downloaded: dict[str, TransferResult] = {}
        self._bytes_done = 0
        self._bytes_expected = 0
        self._counter_lock = threading.Lock()

    @classmethod
    def attach(cls, target: Target, stream: EventStream, lease: Any | str, *, kind: Kind | None = None,
               si: Any | None = None, handle: str | None = None) -> "LeaseSession":
        """A session on a reference the suite did not acquire here (stale, bogus, other session).

        ``lease`` is a moid (bound to ``si``, another session, or ours) or a
        reference; ``handle`` reuses an existing handle (a stale reference to
        a lease already in the history), else a new one is counted. No
        ``Acquire`` event: the reference is what is under test.
        """
        ref = target.lease_ref(lease, si) if isinstance(lease, str) else lease
        return cls(target, stream, ref, kind=kind, handle=handle)

    # -- recording -------------------------------------------------------------

    def _call(self, call: str, args: dict[str, Any], fn: Callable[[], T],
              summarize: Callable[[T], Any] = lambda _r: None) -> T:
        return _record(self.stream, self.handle, call, args, fn, summarize)

    def attempt(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Attempt:
        """:func:`attempt` as a method, for symmetry."""
        return attempt(fn, *args, **kwargs)

    def _writable(self, call: str) -> None:
        """Refuse (:class:`ReadOnlyEntity`) a call that would change a VM the user named for export."""
        protected = self.target.read_only
        if not protected:
            return
        named = [vm for vm in [*self.covered, self.entity] if moid(vm) in protected]
        if named:
            raise ReadOnlyEntity(call, self.handle, ", ".join(sorted({moid(vm) or "?" for vm in named})))

    @property
    def moid(self) -> str:
        return self.lease._moId

    # -- reading -------------------------------------------------------------

    def _properties(self) -> list[str]:
        names = ["state", "initializeProgress", "error", "info"]
        if self.target.api_at_least("6.7"):
            names += ["transferProgress", "mode", "capabilities"]
        return names

    def _fetch(self) -> dict[str, Any]:
        """All lease properties in one RetrievePropertiesEx (pyVmomi 9 would Fetch each)."""
        from pyVmomi import vim, vmodl

        pc = vmodl.query.PropertyCollector
        collector = self.target.property_collector(self.lease._stub)
        spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=self.lease, skip=False)],
                             propSet=[pc.PropertySpec(type=vim.HttpNfcLease, pathSet=self._properties())])
        result = collector.RetrievePropertiesEx([spec], pc.RetrieveOptions())
        objects = result.objects if result is not None else None
        if not objects:
            raise vmodl.fault.ManagedObjectNotFound(
                obj=self.lease, msg=f"{self.lease._moId}: the property collector returned nothing for it")
        content = objects[0]
        for missing in content.missingSet or []:
            raise missing.fault
        values = {p.name: p.val for p in content.propSet or []}
        self.state = str(values.get("state")) if values.get("state") is not None else None
        if self.state in ("done", "error"):
            self.target.forget_lease(self.lease)
        if values.get("info") is not None:
            self.info = values["info"]
            self._note_entity(self.info.entity)
        return values

    def _summarize(self, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": str(values.get("state")) if values.get("state") is not None else None,
            "initializeProgress": values.get("initializeProgress"),
            "error": fault_summary(values.get("error")),
            "info": info_summary(values.get("info")),
        }
        if "transferProgress" in values:
            out["transferProgress"] = values["transferProgress"]
        if "mode" in values:
            out["mode"] = values["mode"]
        if "capabilities" in values:
            caps = values["capabilities"]
            out["capabilities"] = None if caps is None else {
                "pullModeSupported": caps.pullModeSupported, "corsSupported": caps.corsSupported}
        return out

    def _note_entity(self, entity: Any) -> None:
        if entity is None:
            return
        if self.entity is None:
            self.entity = entity
        if self.kind == "import":
            self.target.register_entity(entity, self.package.name if self.package else None)
            if not self.covered:
                self.covered = _vms_of(entity)

    def read(self) -> dict[str, Any]:
        """``Read``: state, progress, error, info, (6.7) transferProgress/mode/capabilities."""
        return self._call(V.READ, {}, lambda: self._summarize(self._fetch()), lambda v: v)

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """``WaitReady``: poll until the state leaves ``initializing`` (ready *or* error).

        Never loops forever on a lease that went to error (a common client
        defect); raises :class:`WaitTimeout` (outcome ``info``) after ``timeout``.
        """
        def wait() -> dict[str, Any]:
            deadline = time.monotonic() + timeout
            delay = 0.02
            while True:
                values = self._fetch()
                if str(values.get("state")) != "initializing":
                    return self._summarize(values)
                if time.monotonic() >= deadline:
                    raise WaitTimeout(f"lease {self.lease._moId} still initializing after {timeout:g} s")
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 1.5, 0.25)

        return self._call(V.WAIT_READY, {"timeout": timeout}, wait, lambda v: v)

    # -- lease methods -----------------------------------------------------------

    def progress(self, percent: int) -> None:
        """``Progress``: renew the lease and report percent (out-of-range values are sent as given)."""
        self._call(V.PROGRESS, {"percent": percent}, lambda: self.lease.HttpNfcLeaseProgress(percent=percent))

    def complete(self) -> None:
        """``Complete``: done; the import/export task succeeds."""
        self._call(V.COMPLETE, {}, lambda: self.lease.HttpNfcLeaseComplete())
        self._released("done")

    def abort(self, fault: str | Any | None = None) -> None:
        """``Abort``: error; ``fault`` (a vmodl type name or a MethodFault) should reach the task."""
        fault_obj = _make_fault(fault)
        name = type(fault_obj).__name__ if fault_obj is not None else None
        self._call(V.ABORT, {"fault": name}, lambda: self.lease.HttpNfcLeaseAbort(fault=fault_obj))
        self._released("error")

    def _released(self, state: str) -> None:
        """Done or error: the target need not abort this lease at close."""
        self.state = state
        self.target.forget_lease(self.lease)

    def get_manifest(self) -> list[Any]:
        """``GetManifest`` (4.1): one entry per device with size and sha1 (6.7: checksum)."""
        return self._call(V.GET_MANIFEST, {}, lambda: list(self.lease.HttpNfcLeaseGetManifest() or []),
                          manifest_summary)

    def set_manifest_checksum_type(self, mapping: Mapping[str, str]) -> None:
        """``SetManifestChecksumType`` (6.7): ``{deviceUrl key: "sha1"|"sha256"}``."""
        from pyVmomi import vim

        pairs = [vim.KeyValue(key=k, value=v) for k, v in mapping.items()]
        self._call(V.SET_MANIFEST_CHECKSUM_TYPE, {"mapping": dict(mapping)},
                   lambda: self.lease.HttpNfcLeaseSetManifestChecksumType(deviceUrlsToChecksumTypes=pairs))

    def pull_from_urls(self, files: Sequence[Mapping[str, Any] | Any], variant: PullVariant = "good",
                       timeout: float | None = None) -> Any:
        """``PullFromUrls`` (6.7): start the pull task and wait (bounded) until it ends.

        ``files`` are ``{targetDeviceId, url, create, [sslThumbprint, httpHeaders,
        size, memberName]}`` dicts or ``HttpNfcLease.SourceFile`` objects;
        ``variant`` only labels the intent for the model. Returns the TaskInfo.
        A dict may also carry ``sha1``/``sha256`` of what the URL serves and the
        ``served_thumbprint`` of its certificate: not sent (SourceFile has no
        such members), only recorded, with ``size``, so the model can hold the
        manifest and an SSLVerifyFault against the sources.
        """
        self._writable("PullFromUrls")
        digests = [{k: f[k] for k in RECORDED_ONLY if f.get(k)} if isinstance(f, Mapping) else {}
                   for f in files]
        sources = [_source_file({k: v for k, v in f.items() if k not in RECORDED_ONLY}
                                if isinstance(f, Mapping) else f) for f in files]
        recorded = [{"targetDeviceId": s.targetDeviceId, "url": s.url, "create": s.create,
                     **({"size": s.size} if getattr(s, "size", None) is not None else {}), **d}
                    for s, d in zip(sources, digests)]

        def pull() -> Any:
            task = self.lease.HttpNfcLeasePullFromUrls_Task(files=sources)
            return self.target.wait_task(task, timeout)

        return self._call(V.PULL_FROM_URLS, {"files": recorded, "variant": variant}, pull, task_summary)

    def task_info(self) -> Any:
        """``TaskInfo``: the lease's import/export task (``client.NoTask`` if the target has none)."""
        def info() -> Any:
            if self.task is None:
                self.task = self.target.find_lease_task(self.entity, kind=self.kind)
            if self.task is None:
                raise NoTask(f"no import/export task found for lease {self.lease._moId}")
            return self.target.task_info(self.task)

        return self._call(V.TASK_INFO, {}, info, lambda i: {**task_summary(i), "result": jsonable(i.result)})

    # -- blocked operations on the covered VM ---------------------------------

    def covered_vm(self) -> Any:
        if not self.covered and self.entity is not None:
            self.covered = _vms_of(self.entity)
        if not self.covered:
            raise NoCoveredVm("the lease covers no VM known yet (read it once it is ready)")
        return self.covered[0]

    def _vm_task(self, call: str, vm: Any | None, start: Callable[[Any], Any]) -> Any:
        self._writable(call)
        target_vm = vm if vm is not None else (self.covered[0] if self.covered else None)
        args = {"vm": moid(target_vm)}

        def run() -> Any:
            chosen = target_vm if target_vm is not None else self.covered_vm()
            args["vm"] = moid(chosen)
            return self.target.wait_task(start(chosen))

        return self._call(call, args, run, task_summary)

    def power_on(self, vm: Any | None = None) -> Any:
        """``PowerOn`` of the covered VM: refused while the lease is held."""
        return self._vm_task(V.POWER_ON, vm, lambda v: v.PowerOnVM_Task())

    def destroy(self, vm: Any | None = None) -> Any:
        """``Destroy`` of the covered VM: refused while the lease is held."""
        info = self._vm_task(V.DESTROY, vm, lambda v: v.Destroy_Task())
        if str(info.state) == "success":
            self.target.forget_entity(vm if vm is not None else self.covered_vm())
        return info

    def relocate(self, vm: Any | None = None) -> Any:
        """``Relocate`` (migrate) of the covered VM to another host when there is one."""
        return self._vm_task(V.RELOCATE, vm, lambda v: v.RelocateVM_Task(spec=self.target.relocate_spec(v)))

    def sleep(self, seconds: float) -> None:
        """``Sleep``: wait on purpose (for expiry); recorded, since the times matter."""
        self._call(V.SLEEP, {"seconds": seconds}, lambda: time.sleep(seconds))

    # -- keepalive ---------------------------------------------------------------

    def keep_alive(self, interval: float = 2.0, percent: int | Callable[[], int] | None = None,
                   max_seconds: float = 3600.0) -> "KeepAlive":
        """A started :class:`KeepAlive` (use it as a context manager)."""
        return KeepAlive(self, interval, percent, max_seconds).start()

    def __repr__(self) -> str:
        return f"<LeaseSession {self.handle} {self.kind} {self.lease._moId}>"


# -- acquiring -------------------------------------------------------------------------

def abort_fault(cause: BaseException | None) -> Any:
    """The fault an Abort reports for ``cause`` (a failed call, a signal, None: the run ended)."""
    from pyVmomi import vmodl

    if cause is None or isinstance(cause, KeyboardInterrupt):
        return vmodl.fault.RequestCanceled(msg=f"nfclease: the run ended ({cause or 'cleanup'})")
    _outcome, fault, message = classify(cause)
    return vmodl.fault.SystemError(msg=f"nfclease: {fault}: {message}"[:MESSAGE_LIMIT], reason=fault)


def _make_fault(fault: str | Any | None) -> Any:
    if fault is None or not isinstance(fault, str):
        return fault
    from pyVmomi import VmomiSupport

    names = [fault] if "." in fault else [f"vim.fault.{fault}", f"vmodl.fault.{fault}"]
    for name in names:
        try:
            cls = VmomiSupport.GetVmodlType(name)
        except KeyError:
            continue
        return cls(msg=f"aborted by nfclease ({name})")
    raise ValueError(f"no vmodl fault type {fault!r}")


def _source_file(spec: Mapping[str, Any] | Any) -> Any:
    from pyVmomi import vim

    if not isinstance(spec, Mapping):
        return spec
    fields = dict(spec)
    headers = fields.pop("httpHeaders", None)
    if isinstance(headers, Mapping):
        fields["httpHeaders"] = [vim.KeyValue(key=k, value=v) for k, v in headers.items()]
    elif headers is not None:
        fields["httpHeaders"] = headers
    return vim.HttpNfcLease.SourceFile(**fields)


def _vms_of(entity: Any) -> list[Any]:
    from pyVmomi import vim

    if isinstance(entity, vim.VirtualMachine):
        return [entity]
    try:
        return list(getattr(entity, "vm", None) or [])
    except Exception:
        return []


def acquire_import(target: Target, stream: EventStream, disks: Sequence[int] = (1 << 20,),
                   files: int | Sequence[int] = 0, *, name: str | None = None, pattern: str = "random",
                   file_kind: Literal["nvram", "iso"] = "nvram", nfc: NfcClient | None = None) -> LeaseSession:
    """``Acquire`` (import): CreateImportSpec + ImportVApp for a VM with these disks and files.

    ``disks`` are capacities in bytes; ``files`` a count of 8 KiB files or
    their sizes. The VM is registered for removal when the target closes.
    """
    sizes = [DEFAULT_FILE_SIZE] * files if isinstance(files, int) else list(files)
    package = build_import_ovf(list(disks), sizes, name=name or unique_name(), file_kind=file_kind)
    handle = next_handle(stream)
    args = {"kind": "import", "disks": list(disks), "files": len(sizes), "entity": package.name}

    def acquire() -> LeaseSession:
        from pyVmomi import vim

        place = target.placement
        before = target.recent_task_ids()
        params = vim.OvfManager.CreateImportSpecParams(entityName=package.name, diskProvisioning="thin")
        result = target.content.ovfManager.CreateImportSpec(
            ovfDescriptor=package.descriptor, resourcePool=place.resource_pool, datastore=place.datastore,
            cisp=params)
        if result.error:
            raise result.error[0]
        items: dict[str, OvfDiskItem | OvfFileItem] = {}
        for file_item in result.fileItem or []:
            found = package.by_href(file_item.path)
            if found is not None:
                items[file_item.deviceId] = found
        with lifecycle.critical():  # a signal here would leave a lease nobody aborts
            target.register_import_name(package.name)
            lease = place.resource_pool.ImportVApp(spec=result.importSpec, folder=place.folder, host=place.host)
            target.register_lease(lease)
        task = target.find_new_task(before, entity_name=package.name, kind="import")
        entity = task.info.entity if task is not None else None
        session = LeaseSession(target, stream, lease, kind="import", handle=handle, task=task,
                               package=package, import_items=items, pattern=pattern, nfc=nfc)
        session._note_entity(entity)
        return session

    return _record(stream, handle, V.ACQUIRE, args, acquire,
                   lambda s: {"moid": s.moid, "entity": moid(s.entity), "task": moid(s.task)})


def _export(target: Target, stream: EventStream, kind: Kind, entity: Any, covered: list[Any],
            start: Callable[[], Any], nfc: NfcClient | None, extra_args: Mapping[str, Any] | None = None) -> LeaseSession:
    handle = next_handle(stream)
    args = {"kind": kind, "disks": [], "files": 0, "entity": moid(entity), **(extra_args or {})}

    def acquire() -> LeaseSession:
        before = target.recent_task_ids()
        with lifecycle.critical():  # a signal here would leave a lease nobody aborts
            lease = start()
            target.register_lease(lease)
        task = target.find_new_task(before, entity_moid=moid(entity), kind="export")
        return LeaseSession(target, stream, lease, kind=kind, handle=handle, entity=entity, task=task,
                            covered=covered, nfc=nfc)

    return _record(stream, handle, V.ACQUIRE, args, acquire,
                   lambda s: {"moid": s.moid, "entity": moid(s.entity), "task": moid(s.task)})


def acquire_export_vm(target: Target, stream: EventStream, vm: Any | str | None = None, *,
                      nfc: NfcClient | None = None) -> LeaseSession:
    """``Acquire`` (export-vm): ExportVm of ``vm`` (object, moid, inventory path or name).

    Without ``vm``: the first powered-off VM not made by the suite, on the
    simulators only; a real target needs an explicit VM.
    """
    from pyVmomi import vim

    chosen = target.find_entity(vm, vim.VirtualMachine) if vm is not None else target.default_export_vm()
    return _export(target, stream, "export-vm", chosen, [chosen], lambda: chosen.ExportVm(), nfc)


def acquire_export_vapp(target: Target, stream: EventStream, vapp: Any | str | None = None, *,
                        nfc: NfcClient | None = None) -> LeaseSession:
    """``Acquire`` (export-vapp): ExportVApp of ``vapp`` (default: the first vApp, simulators only)."""
    from pyVmomi import vim

    chosen = target.find_entity(vapp, vim.VirtualApp) if vapp is not None else target.default_export_vapp()
    return _export(target, stream, "export-vapp", chosen, _vms_of(chosen), lambda: chosen.ExportVApp(), nfc)


def acquire_export_snapshot(target: Target, stream: EventStream, vm: Any | str | None = None, *,
                            snapshot: Any | None = None, nfc: NfcClient | None = None) -> LeaseSession:
    """``Acquire`` (export-snapshot): ExportSnapshot of a snapshot of ``vm``.

    Uses the VM's current snapshot, or creates one (CreateSnapshot_Task,
    registered for removal at close) when it has none.
    """
    from pyVmomi import vim

    chosen = target.find_entity(vm, vim.VirtualMachine) if vm is not None else target.default_export_vm(
        prefer_snapshot=True)
    def start() -> Any:
        snap = snapshot if snapshot is not None else _current_snapshot(target, chosen)
        if snap is None:
            info = target.wait_task(chosen.CreateSnapshot_Task(name=unique_name() + "-snap",
                                                               description="made by nfclease for an export lease",
                                                               memory=False, quiesce=False))
            if str(info.state) != "success":
                raise info.error
            snap = info.result
            target.register_snapshot(snap)
        return snap.ExportSnapshot()

    return _export(target, stream, "export-snapshot", chosen, [chosen], start, nfc)


def _current_snapshot(target: Target, vm: Any) -> Any | None:
    info = target.properties(vm, ["snapshot"]).get("snapshot")
    if info is None:
        return None
    if info.currentSnapshot is not None:
        return info.currentSnapshot
    roots = list(info.rootSnapshotList or [])
    return roots[0].snapshot if roots else None


__all__ = [  # with what moved to callrecord.py and sessiontransfer.py, importable from here as before
    "MESSAGE_LIMIT", "DEFAULT_FILE_SIZE", "GARBAGE_LIMIT", "UploadVariant", "TransferResult", "garbage_bytes",
    "pattern_bytes", "jsonable", "moid", "fault_summary", "task_summary", "info_summary", "manifest_summary",
    "Attempt", "KeepAlive", "LeaseSession", "NoCoveredVm", "NoDeviceUrl", "NoTask", "acquire_export_snapshot",
    "ReadOnlyEntity", "abort_fault", "acquire_export_vapp", "acquire_export_vm", "acquire_import", "attempt", "classify", "next_handle",
]
