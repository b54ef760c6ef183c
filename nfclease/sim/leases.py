"""HttpNfcLease as the simulator implements it, straight from the spec text.

Theory of operation. A lease is born ``initializing`` together with its task.
Initialisation lasts ``init_seconds``; ``initializeProgress`` is derived from
the elapsed time (0 at birth, strictly capped below 100 until the end, then
100), so it rises and never falls. At the end the lease is ``ready``: ``info``
appears (device URLs with unguessable tickets) and the timeout clock starts.

All time-driven transitions are *scheduled*, not polled: each lease knows the
monotonic instant of its next transition (``ready_at``, ``expires_at``). They
take effect both lazily -- every access first calls :meth:`Lease.advance` --
and eagerly, by the :class:`Clock` thread, so a watcher sees the change even
when nobody calls the lease. Because the instant is computed, not observed,
expiry happens exactly ``leaseTimeout`` after the last renewal whatever the
machine load.

Leaving ``initializing``/``ready`` (Complete -> done; Abort, timeout or a
failed initialisation -> error) releases the lock on the covered virtual
machines, settles the task, and for an import in error removes every object
the import created.

Faults are the ones the reference page names, where it names them:
Complete/Abort raise InvalidState once released and Timedout when the lease
timed out; Progress raises Timedout after expiry; GetManifest raises
InvalidState when not ready and Timedout after expiry; SetManifestChecksumType
and PullFromUrls raise InvalidState. Where the page is silent (Progress after
Complete or Abort), the simulator accepts the call and changes nothing:
Progress declares only Timedout, so any fault there would be undeclared.

Deliberate deviations. ``SimConfig.deviations`` switches on named wrong
behaviours (the catalogue is ``nfclease/sim/deviations.py``), so
``nfclease selftest`` can show the conformance suite catches them; each is
marked ``DELIBERATE DEVIATION`` where it acts and is off by default.
"""

from __future__ import annotations

import collections
import hashlib
import heapq
import secrets
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pyVmomi import vim, vmodl

from nfclease.sim.hooks import SimHooks
from nfclease.sim.lease_view import build_info, lease_properties
from nfclease.sim.soap import SoapError
from nfclease.sim.world import MObject, Task, VirtualMachine, World

CHECKSUM_ALGORITHMS = ("sha1", "sha256")


def invalid_state(message: str) -> SoapError:
    return SoapError(vim.fault.InvalidState(), message)


def timed_out(message: str = "The lease has timed out") -> SoapError:
    return SoapError(vim.fault.Timedout(), message)


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


@dataclass
class Device:
    """One device URL of a lease: a disk or a non-disk file."""

    key: str
    import_key: str
    name: str               # last path segment of the URL, e.g. disk-0.vmdk
    disk: bool
    path: Path              # where uploads land / what downloads serve
    capacity_kb: int = 0
    file_size: int | None = None
    target_id: str | None = None
    bytes_transferred: int = 0
    sha1: str | None = None
    complete: bool = False
    hashes: dict[str, str] = field(default_factory=dict)
    wanted: dict[str, str] = field(default_factory=dict)  # algorithm requested, by SetManifestChecksumType
    busy: bool = False
    hashed: threading.Event = field(default_factory=lambda: _set(threading.Event()))

    def hash_stored(self, lock: threading.RLock) -> None:
        """Hash what was stored, in the background: SHA-1 and any algorithm asked for already.

        Uploads are hashed after they are stored, not while they stream: on a
        2-core machine the sender's encryption takes one core and decryption
        the other, and hashing in between would slow the transfer itself.
        GetManifest waits for :attr:`hashed` (see ``Service.dispatch``), so
        the manifest is exact; the wait is the time to read the file back and
        hash it. An algorithm asked for later is computed then (:meth:`checksum`).
        """
        self.hashed.clear()
        path = self.path
        algorithms = {"sha1"} | set(self.wanted.values())

        def run() -> None:
            digests = {name: hashlib.new(name) for name in algorithms}
            try:
                with path.open("rb") as stored:
                    while chunk := stored.read(1 << 20):
                        for digest in digests.values():
                            digest.update(chunk)
                with lock:
                    if self.path == path:
                        self.hashes = {name: d.hexdigest() for name, d in digests.items()}
                        self.sha1 = self.hashes["sha1"]
            except OSError:
                pass  # removed meanwhile (the import was cleaned up): nothing to report
            finally:
                self.hashed.set()

        threading.Thread(target=run, name=f"nfclease-sim-hash-{self.name}", daemon=True).start()

    def checksum(self, algorithm: str) -> str | None:
        """The digest of what was transferred; computed from the stored file if asked late."""
        if not self.complete:
            return None
        if algorithm not in self.hashes and self.path.exists():
            digest = hashlib.new(algorithm)
            with self.path.open("rb") as stored:
                while chunk := stored.read(1 << 20):
                    digest.update(chunk)
            self.hashes[algorithm] = digest.hexdigest()
        return self.hashes.get(algorithm)


class Lease(MObject):
    """The HttpNfcLease managed object."""

    type_name = "HttpNfcLease"

    def __init__(self, world: World, manager: "LeaseManager", session_key: str, kind: str,
                 entity: MObject, covered: list[VirtualMachine], task: Task,
                 devices: Callable[["Lease"], list[Device]], created: list[MObject],
                 on_done: Callable[["Lease"], None] | None = None) -> None:
        moid = f"session[{session_key}]{uuid.uuid4()}"
        super().__init__(world, moid)
        self.manager = manager
        self.session_key = session_key
        self.kind = kind
        self.entity = entity
        self.covered = covered
        self.task = task
        self.created = created
        self._make_devices = devices
        self._on_done = on_done
        self.ticket = secrets.token_urlsafe(24)
        self.state = "initializing"
        self.error: vmodl.MethodFault | None = None
        self.expired = False
        self.transfer_progress = 0
        self.mode = "pushOrGet"
        self.devices: list[Device] = []
        self.born = time.monotonic()
        self.ready_at = self.born + manager.config.init_seconds
        self.expires_at: float | None = None
        self.timeout = manager.config.lease_timeout
        self.released_at: float | None = None
        self.info: vim.HttpNfcLease.Info | None = None
        self._timer_at: float | None = None
        self.progressed = False  # Progress was called at least once
        self.gone_once = False  # deleted_lease_reappears: the one ManagedObjectNotFound was answered
        for vm in covered:
            manager.locks[vm.moid] = self
        self._arm(self.ready_at)
        if self.deviation("task_ends_at_handout"):  # DELIBERATE DEVIATION: the task is over at once
            task.succeed(entity.ref if kind == "import" else None)

    # -- time ------------------------------------------------------------------
    def deviation(self, name: str) -> bool:
        """Is the deliberate deviation ``name`` of ``SimConfig.deviations`` switched on?"""
        return bool(self.manager.config.deviates(name))

    def advance(self) -> None:
        """Apply every transition whose instant has passed (caller may hold the lock)."""
        with self.world.lock:
            now = time.monotonic()
            if self.state == "initializing" and now >= self.ready_at:
                self._become_ready()
            if self.state == "ready" and self.deviation("done_without_complete") and self.kind == "import" \
                    and self.devices and all(d.complete and not d.busy for d in self.devices):
                self._release("done", None)  # DELIBERATE DEVIATION: done once every file is uploaded
                return
            if self.deviation("no_timeout"):  # DELIBERATE DEVIATION: never expires
                return
            if self.state == "ready" and self.expires_at is not None and now >= self.expires_at:
                self.expired = True
                fault = vim.fault.Timedout(msg=f"The lease timed out: no HttpNfcLeaseProgress within {self.timeout} s")
                if self.deviation("timeout_error_wrong_class"):  # DELIBERATE DEVIATION
                    fault = vmodl.fault.RequestCanceled(msg="The lease was cancelled")
                self._release("error", fault)

    def _become_ready(self) -> None:
        injected = self.manager.hooks.init_failure(self)
        if injected is not None:  # a client scenario: the lease fails while the client waits
            self._release("error", injected)
            return
        try:
            self.devices = self._make_devices(self)
        except SoapError as exc:  # initialisation failed: error straight from initializing
            self._release("error", exc.fault)
            return
        self.state = "ready"
        self.renew(at=self.ready_at)
        self.info = build_info(self)
        self.task.set_progress(0)
        self.world.touch()
        self.manager.hooks.lease_state(self)

    def renew(self, at: float | None = None) -> None:
        at = time.monotonic() if at is None else at
        # DELIBERATE DEVIATION timeout_early: the clock runs at half the advertised leaseTimeout
        self.expires_at = at + (self.timeout / 2 if self.deviation("timeout_early") else self.timeout)
        self._arm(self.expires_at)

    def _arm(self, when: float) -> None:
        """Keep one clock entry per lease: renewals only move the deadline later."""
        if self._timer_at is None or when < self._timer_at:
            self._timer_at = when
            self.manager.clock.schedule(when, self._on_timer)

    def _on_timer(self) -> None:
        with self.world.lock:
            self._timer_at = None
            self.advance()
            if self.state == "ready" and self.expires_at is not None:
                self._arm(self.expires_at)

    @property
    def initialize_progress(self) -> int:
        scale = 10 if self.deviation("init_progress_per_mille") else 1  # DELIBERATE DEVIATION: 0-1000
        if self.state != "initializing":
            return 100 * scale
        span = max(self.ready_at - self.born, 1e-9)
        return min(99, int(100 * (time.monotonic() - self.born) / span)) * scale

    # -- state changes ------------------------------------------------------------
    def _release(self, state: str, fault: vmodl.MethodFault | None) -> None:
        self.state = state
        self.released_at = time.monotonic()
        self.error = fault
        keep_locks = state == "done" and self.deviation("locks_kept_after_release")  # DELIBERATE DEVIATION
        for vm in self.covered:
            if self.manager.locks.get(vm.moid) is self and not keep_locks:
                del self.manager.locks[vm.moid]
        if state == "done":
            if self.deviation("complete_task_fails"):  # DELIBERATE DEVIATION: the task ends in error
                self.task.fail(vmodl.fault.SystemError(reason="completion failed", msg="completion failed"))
            else:
                self.task.succeed(self.entity.ref if self.kind == "import" else None)
            if self.kind == "import" and self.deviation("import_removed_on_complete"):
                self.manager.remove_created(self)  # DELIBERATE DEVIATION: the import is undone on Complete
        else:
            if self.expired and self.deviation("timeout_task_succeeds"):
                self.task.succeed(None)  # DELIBERATE DEVIATION: an expired lease's task succeeds
            else:
                self.task.fail(fault)
            kept = self.deviation("import_not_cleaned_on_timeout") if self.expired \
                else self.deviation("import_not_cleaned")  # DELIBERATE DEVIATION: the import stays
            if self.kind == "import" and not kept:
                self.manager.remove_created(self)
        if self._on_done:
            self._on_done(self)
        self.manager.retire(self)
        self.manager.hooks.lease_state(self)
        self.world.touch()

    def check_live(self, call: str, expired_fault: bool = True) -> None:
        """Raise the spec's fault for a call on a lease that is not live."""
        self.advance()
        if self.state in ("initializing", "ready"):
            return
        if self.deviation("deleted_lease_reappears") and not self.gone_once:
            self.gone_once = True  # DELIBERATE DEVIATION: gone for one call, then back
            raise SoapError(vmodl.fault.ManagedObjectNotFound(obj=self.ref),
                            "The object has already been deleted or has not been completely created")
        if self.expired and expired_fault:
            if self.deviation("timeout_wrong_fault"):  # DELIBERATE DEVIATION: InvalidState, not Timedout
                raise invalid_state(f"{call}: the lease is no longer valid")
            if self.deviation("expired_runtime_fault"):  # DELIBERATE DEVIATION: not Timedout
                raise SoapError(vmodl.fault.SystemError(reason="expired"), f"{call}: the lease is gone")
            raise timed_out(f"{call}: the lease timed out before this call")
        if self.deviation("released_runtime_fault"):  # DELIBERATE DEVIATION: not InvalidState
            raise SoapError(vmodl.fault.SystemError(reason="released"), f"{call}: the lease is released")
        if self.state == "done":
            if call == "HttpNfcLeaseComplete" and self.deviation("complete_repeat_wrong_fault"):
                raise timed_out(f"{call}: the lease is over")  # DELIBERATE DEVIATION: Timedout, not InvalidState
            raise invalid_state(f"{call}: the lease has already been completed")
        raise invalid_state(f"{call}: the lease has already been aborted")

    def progress(self, percent: int) -> None:
        self.advance()
        if self.state in ("done", "error") and not self.expired:
            # The page names only Timedout for Progress. After Complete/Abort there
            # is nothing to renew; answering a fault the method does not declare
            # would be a deviation of its own, so a late Progress is a no-op.
            return
        self.check_live("HttpNfcLeaseProgress")
        # DELIBERATE DEVIATIONS: no range check at all; an off-by-one upper bound that refuses 100
        top = 99 if self.deviation("progress_rejects_100") else 100
        if not 0 <= percent <= top and not self.deviation("progress_range_unchecked"):
            if self.deviation("progress_undeclared_fault"):  # DELIBERATE DEVIATION: Progress declares only Timedout
                raise invalid_state(f"percent {percent} is outside 0-{top}")
            fault = vmodl.fault.InvalidArgument(invalidProperty="percent")
            if self.deviation("error_property_while_ready"):
                self.error = fault  # DELIBERATE DEVIATION: a refused call leaves its fault on the lease
            raise SoapError(fault, f"percent {percent} is outside 0-{top}")
        self.progressed = True
        if self.state == "ready" and not self.deviation("timeout_from_acquisition"):
            self.renew()  # (DELIBERATE DEVIATION timeout_from_acquisition: Progress does not renew)
        self.transfer_progress = percent
        self.task.set_progress(percent)

    def complete(self) -> None:
        if self.state == "done" and self.deviation("complete_twice_ok"):
            return  # DELIBERATE DEVIATION: a second Complete succeeds
        self.check_live("HttpNfcLeaseComplete")
        if self.state == "initializing":
            raise invalid_state("HttpNfcLeaseComplete: the lease is still initializing")
        busy = [d.name for d in self.devices if d.busy]
        if busy:
            raise invalid_state(f"HttpNfcLeaseComplete: transfers still running: {', '.join(busy)}")
        if self.deviation("complete_leaves_ready"):
            return  # DELIBERATE DEVIATION: acknowledged, but the lease stays ready
        if self.kind == "import":
            self.manager.adopt_disks(self)
        self._release("done", None)

    def abort(self, fault: vmodl.MethodFault | None) -> None:
        if (self.state == "error" and not self.expired and self.deviation("abort_twice_ok")) or (
                self.state == "done" and self.deviation("abort_after_complete_ok")):
            return  # DELIBERATE DEVIATION: Abort of a released lease succeeds
        self.check_live("HttpNfcLeaseAbort")
        if self.deviation("abort_leaves_ready") and self.state == "ready":
            return  # DELIBERATE DEVIATION: acknowledged, but the lease stays ready
        if fault is None and self.deviation("abort_requires_fault"):  # DELIBERATE DEVIATION
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="fault"), "Abort needs a fault")
        if fault is None or self.deviation("abort_fault_lost"):  # DELIBERATE DEVIATION: the fault given is lost
            fault = vmodl.fault.RequestCanceled(msg="The lease was aborted by the client")
        self._release("error", fault)

    def manifest(self) -> list[vim.HttpNfcLease.ManifestEntry]:
        self.check_live("HttpNfcLeaseGetManifest")
        if self.state != "ready":
            raise invalid_state("HttpNfcLeaseGetManifest: the lease is not ready")
        entries = []
        for device in self.devices:
            sha1 = device.sha1 or ""
            if sha1 and self.deviation("manifest_wrong_sha1"):
                sha1 = hashlib.sha1(sha1.encode()).hexdigest()  # DELIBERATE DEVIATION: not the bytes' sha1
            size = device.bytes_transferred
            if size and self.deviation("manifest_wrong_size"):
                size += 1  # DELIBERATE DEVIATION: one byte more than was transferred
            entry = vim.HttpNfcLease.ManifestEntry(
                key=device.key, sha1=sha1, size=size,
                disk=device.disk != self.deviation("manifest_disk_flag_wrong"),  # DELIBERATE DEVIATION when set
                capacity=device.capacity_kb * 1024 if device.disk else None,
                populatedSize=device.bytes_transferred if device.disk else None)
            algorithm = device.wanted.get("type")
            if algorithm:
                entry.checksumType = algorithm
                entry.checksum = device.checksum(algorithm) or ""
                if entry.checksum and algorithm == "sha256" and self.deviation("checksum_wrong_sha256"):
                    entry.checksum = hashlib.sha256(entry.checksum.encode()).hexdigest()  # DELIBERATE DEVIATION
            entries.append(entry)
        return self._deviating_manifest(entries)

    def _deviating_manifest(self, entries: list[vim.HttpNfcLease.ManifestEntry]) -> list[Any]:
        """DELIBERATE DEVIATIONS of the manifest's entry list (none by default)."""
        if entries and self.deviation("manifest_missing_entry"):
            entries = entries[:-1]
        if self.devices and self.deviation("manifest_extra_entry"):
            entries.append(vim.HttpNfcLease.ManifestEntry(key=f"{self.devices[-1].key}-extra", sha1="", size=0,
                                                          disk=False))
        return entries

    def set_checksum_types(self, pairs: list[vim.KeyValue]) -> None:
        self.check_live("HttpNfcLeaseSetManifestChecksumType", expired_fault=False)
        if self.state != "ready":
            raise invalid_state("HttpNfcLeaseSetManifestChecksumType: the lease is not ready")
        by_key = {d.key: d for d in self.devices}
        lax = self.deviation("checksum_invalid_accepted")  # DELIBERATE DEVIATION: nothing refused
        for pair in pairs:
            if lax:
                break
            if pair.key not in by_key:
                raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="deviceUrlsToChecksumTypes"),
                                f"no device URL has key {pair.key!r}")
            if pair.value not in CHECKSUM_ALGORITHMS:
                raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="deviceUrlsToChecksumTypes"),
                                f"checksum type {pair.value!r} is not one of {', '.join(CHECKSUM_ALGORITHMS)}")
        if self.deviation("checksum_type_ignored"):
            return  # DELIBERATE DEVIATION: accepted, never applied
        for pair in pairs:
            if pair.key in by_key and pair.value in CHECKSUM_ALGORITHMS:
                by_key[pair.key].wanted["type"] = pair.value

    # -- the managed object -------------------------------------------------------
    def properties(self) -> dict[str, Callable[[], Any]]:
        # Transitions are applied once, here: every property read through these
        # getters (one RetrievePropertiesEx) sees the lease at the same instant.
        self.advance()
        return lease_properties(self)

    def device_url(self, device: Device) -> str:
        return f"https://{self.manager.url_host}/nfc/{self.ticket}/{device.name}"


class Clock:
    """One thread that fires scheduled lease transitions at their instants."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="nfclease-sim-clock", daemon=True)
        self._thread.start()

    def schedule(self, when: float, action: Callable[[], None]) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (when, self._seq, action))
            if self._heap[0][1] == self._seq:
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    delay = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(delay)
                if self._stopped:
                    return
                _, _, action = heapq.heappop(self._heap)
            try:
                action()
            except Exception:  # a transition must never kill the clock
                import logging
                logging.getLogger(__name__).exception("scheduled lease transition failed")


class LeaseManager:
    """Creates leases and holds what they share: locks, the clock, URL details."""

    def __init__(self, world: World, config: Any, storage: Path, datastore_key: str = "datastore-1",
                 remove_created: Callable[[Lease], None] | None = None,
                 adopt_disks: Callable[[Lease], None] | None = None) -> None:
        """``remove_created`` undoes an import in error; ``adopt_disks`` makes a completed import's files its disks."""
        self.world = world
        self.config = config
        self.storage = storage
        self.clock = Clock()
        self.locks: dict[str, Lease] = {}
        self.by_ticket: dict[str, Lease] = {}
        self.released: collections.deque[Lease] = collections.deque()
        self.url_host = "127.0.0.1"
        self.thumbprint = ""
        self.datastore_key = datastore_key
        self.remove_created: Callable[[Lease], None] = remove_created or (lambda lease: None)
        self.adopt_disks: Callable[[Lease], None] = adopt_disks or (lambda lease: None)
        self.hooks: SimHooks = SimHooks()  # the client lab (scenarios, recording) when switched on

    def lock_holder(self, vm: MObject) -> Lease | None:
        lease = self.locks.get(vm.moid)
        if lease is not None:
            lease.advance()
            lease = self.locks.get(vm.moid)
        return lease

    def check_unlocked(self, vm: MObject, operation: str) -> None:
        """Refuse an operation on a VM covered by a held lease (TaskInProgress)."""
        unlocked = {"PowerOn": "power_on_not_locked", "Destroy": "destroy_not_locked", "Relocate": "relocate_not_locked"}
        if self.config.deviates("locks_ignored") or (
                operation in unlocked and self.config.deviates(unlocked[operation])):
            return  # DELIBERATE DEVIATION: covered VMs are not locked
        lease = self.lock_holder(vm)
        if lease is not None:
            raise SoapError(vim.fault.TaskInProgress(task=lease.task.ref),
                            f"{operation} of {vm.name} refused: the virtual machine is covered by "
                            f"HttpNfcLease {lease.moid} ({lease.state})")

    def new_lease(self, **kwargs: Any) -> Lease:
        lease = Lease(self.world, self, **kwargs)
        self.by_ticket[lease.ticket] = lease
        return lease

    def lease_for(self, ticket: str) -> Lease | None:
        return self.by_ticket.get(ticket)

    def retire(self, lease: Lease) -> None:
        """Keep a released lease answerable for a while, then forget it.

        The spec's InvalidState/Timedout answers need the lease to outlive its
        release; real servers delete it soon after (ManagedObjectNotFound). A
        bounded retention keeps both true and keeps a long churn run's memory flat.
        """
        if self.config.release_retention <= 0:  # deleted on release, as ESXi and vcsim do
            self.forget(lease)
            return
        self.released.append(lease)
        while len(self.released) > self.config.max_released_leases:
            self.forget(self.released.popleft())
        self.clock.schedule(time.monotonic() + self.config.release_retention,
                            lambda: self._forget_if_retired(lease))

    def _forget_if_retired(self, lease: Lease) -> None:
        with self.world.lock:
            if lease.moid in self.world.objects:
                self.forget(lease)

    def forget(self, lease: Lease) -> None:
        self.by_ticket.pop(lease.ticket, None)
        self.world.unregister(lease)
        if lease.task not in self.world.recent_tasks:
            self.world.unregister(lease.task)
        shutil.rmtree(self.storage / lease.ticket, ignore_errors=True)

    def stop(self) -> None:
        self.clock.stop()
