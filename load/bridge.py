"""From the event stream to Locust: one ``request`` event per lease call and transfer.

:class:`LocustBridge` is an :class:`~nfclease.events.EventStream` listener.
Each user owns a stream with one bridge bound to its scenario, so every
figure is attributed to the scenario that caused it. For every
:class:`~nfclease.events.Event` it

* fires Locust's ``request`` event: ``SOAP <method>`` for a lease call
  (``Acquire`` is named by the method that hands out the lease, ``ImportVApp``
  / ``ExportVm`` ..., and its time spans the whole Acquire: CreateImportSpec
  and the task lookup included; ``Read`` is one ``RetrievePropertiesEx``),
  ``NFC upload`` / ``NFC download`` for a transfer (``response_length`` = bytes,
  time = the whole transfer), and ``LEASE time-to-ready`` (Acquire start to
  the first ``ready`` seen by ``WaitReady``);
* and appends the run's figures to :class:`nfclease.load.figures.Figures`, all derived
  from events alone: bytes verified/corrupted (a transfer's ``{bytes, sha1}``
  against the ``GetManifest`` entry of its device), leases expired (a
  ``Timedout`` fault, or a lease seen in ``error`` with a ``Timedout`` error),
  and timeout accuracy (last ``Progress`` to the moment the lease was seen to
  turn to ``error``, bracketed by the last ``Read`` that saw it ready and the
  first that saw it in error, against ``info.leaseTimeout``).

Events of calls cut short by Locust stopping a user (``client.GreenletExit``)
are not outcomes of the target and are dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from nfclease.load.figures import Figures
from nfclease import vocabulary as V
from nfclease.events import Event

SOAP_METHODS = {
    V.PROGRESS: "HttpNfcLeaseProgress",
    V.COMPLETE: "HttpNfcLeaseComplete",
    V.ABORT: "HttpNfcLeaseAbort",
    V.GET_MANIFEST: "HttpNfcLeaseGetManifest",
    V.SET_MANIFEST_CHECKSUM_TYPE: "HttpNfcLeaseSetManifestChecksumType",
    V.PULL_FROM_URLS: "HttpNfcLeasePullFromUrls_Task",
    V.READ: "RetrievePropertiesEx",
    V.TASK_INFO: V.TASK_INFO,
    V.POWER_ON: "PowerOnVM_Task",
    V.DESTROY: "Destroy_Task",
    V.RELOCATE: "RelocateVM_Task",
}
ACQUIRE_METHODS = {
    "import": "ImportVApp",
    "export-vm": "ExportVm",
    "export-vapp": "ExportVApp",
    "export-snapshot": "ExportSnapshot",
}
IGNORED_FAULTS = {"client.GreenletExit", "client.StopUser", "client.StopTest", "client.KeyboardInterrupt"}
#: a timeout sample is kept only when the expiry instant is bracketed this tightly
MAX_UNCERTAINTY = 0.25
#: scenarios whose leases are left to expire on purpose
DELIBERATE_EXPIRY = {"timeout-probe"}
#: leases remembered per bridge (finished ones are forgotten at once)
MAX_TRACKED = 2000


class LeaseCallFailed(Exception):
    """The failure Locust records for a lease call: grouped by call and fault."""


@dataclass
class _Lease:
    moid: str | None = None
    kind: str | None = None
    acquired_start: float | None = None
    ready: bool = False
    advertised: float | None = None
    progress: tuple[float, float] | None = None       # (start, end) of the last ok Progress
    ready_read: tuple[float, float] | None = None     # last Read that saw `ready` after that Progress
    transfers: dict[str, tuple[int, str]] = field(default_factory=dict)
    verified: set[str] = field(default_factory=set)
    expired: bool = False


class LocustBridge:
    """EventStream listener: Locust ``request`` events plus :class:`Figures` records.

    ``fire`` is Locust's ``environment.events.request.fire`` (None: figures only).
    ``scenario`` may be changed (``setup`` / ``teardown``) between phases of a user.
    """

    def __init__(self, fire: Callable[..., Any] | None, figures: Figures, scenario: str) -> None:
        self.fire = fire
        self.figures = figures
        self.scenario = scenario
        self.leases: dict[str, _Lease] = {}
        self._offset = time.time() - time.monotonic()

    def wall(self, monotonic: float) -> float:
        return monotonic + self._offset

    # -- the listener -----------------------------------------------------

    def __call__(self, event: Event) -> None:
        if event.fault in IGNORED_FAULTS:
            return
        lease = self.leases.setdefault(event.lease or "-", _Lease())
        call = event.call
        if call == V.SLEEP:
            return
        if call == V.ACQUIRE:
            self._acquire(event, lease)
        elif call == V.WAIT_READY:
            self._wait_ready(event, lease)
        elif call in (V.UPLOAD, V.DOWNLOAD):
            self._transfer(event, lease)
        else:
            self._soap(event, SOAP_METHODS.get(call, call))
            if call == V.READ and event.outcome == "ok":
                self._read(event, lease)
            elif call == V.PROGRESS and event.outcome == "ok":
                lease.progress = (event.start, event.end)
                lease.ready_read = None
            elif call == V.GET_MANIFEST and event.outcome == "ok":
                self._verify(event, lease)
            elif call in (V.COMPLETE, V.ABORT) and event.outcome == "ok":
                if call == V.ABORT:
                    self._probe_gave_up(event, lease)
                self.leases.pop(event.lease or "-", None)  # finished: keep the table small
        if event.fault == V.TIMEDOUT:
            self._expired(event, lease)
        while len(self.leases) > MAX_TRACKED:
            self.leases.pop(next(iter(self.leases)))

    # -- per call ------------------------------------------------------------

    def _request(self, request_type: str, name: str, event: Event, seconds: float, length: int = 0) -> None:
        if self.fire is None:
            return
        exception = None
        if event.outcome != "ok":
            exception = LeaseCallFailed(f"{event.call}: {event.fault or event.outcome}")
        self.fire(request_type=request_type, name=name, response_time=seconds * 1000.0,
                  response_length=length, exception=exception, response=None,
                  context={"scenario": self.scenario}, start_time=self.wall(event.start))

    def _soap(self, event: Event, method: str) -> None:
        self._request("SOAP", method, event, event.duration)
        self.figures.add("soap", self.scenario, method, round(event.duration * 1000.0, 3),
                         self.wall(event.end), event.outcome == "ok")
        if event.outcome != "ok":
            self.figures.add("error", self.scenario, event.call, event.fault, self.wall(event.end))

    def _acquire(self, event: Event, lease: _Lease) -> None:
        kind = (event.args or {}).get("kind")
        self._soap(event, ACQUIRE_METHODS.get(kind, f"Acquire {kind}"))
        lease.kind = kind
        lease.acquired_start = event.start
        if event.outcome == "ok" and isinstance(event.value, dict):
            lease.moid = event.value.get("moid")
            self.figures.add("lease", self.scenario, lease.moid, self.wall(event.end))

    def _wait_ready(self, event: Event, lease: _Lease) -> None:
        value = event.value if isinstance(event.value, dict) else {}
        state = value.get("state")
        if event.outcome == "ok" and state == "ready":
            lease.ready = True
            self._note_info(lease, value)
            start = lease.acquired_start if lease.acquired_start is not None else event.start
            seconds = event.end - start
            self.figures.add("ready", self.scenario, round(seconds, 4), self.wall(event.end))
            self._request("LEASE", "time-to-ready", event, seconds)
            lease.ready_read = (event.end, event.end)
        else:
            self._request("LEASE", "time-to-ready", event, event.duration)
            if event.outcome != "ok":
                self.figures.add("error", self.scenario, event.call, event.fault, self.wall(event.end))
            elif state == "error":
                self.figures.add("error", self.scenario, event.call, "state.error", self.wall(event.end))
            self._check_error_state(event, lease, value)

    def _transfer(self, event: Event, lease: _Lease) -> None:
        direction = "upload" if event.call == V.UPLOAD else "download"
        value = event.value if isinstance(event.value, dict) else {}
        size = int(value.get("bytes") or 0) if event.outcome == "ok" else int((event.args or {}).get("size") or 0)
        self._request("NFC", direction, event, event.duration, size)
        self.figures.add("xfer", self.scenario, direction, size, self.wall(event.start), self.wall(event.end),
                         event.outcome == "ok")
        if event.outcome == "ok":
            device = str((event.args or {}).get("device"))
            lease.transfers[device] = (size, str(value.get("sha1")))
            lease.verified.discard(device)
        else:
            self.figures.add("error", self.scenario, event.call, event.fault, self.wall(event.end))

    def _note_info(self, lease: _Lease, value: dict[str, Any]) -> None:
        info = value.get("info") or {}
        if info.get("leaseTimeout") is not None:
            lease.advertised = float(info["leaseTimeout"])

    def _read(self, event: Event, lease: _Lease) -> None:
        value = event.value if isinstance(event.value, dict) else {}
        state = value.get("state")
        if state == "ready":
            lease.ready = True
            self._note_info(lease, value)
            if lease.progress is not None:
                lease.ready_read = (event.start, event.end)
        else:
            self._check_error_state(event, lease, value)

    def _check_error_state(self, event: Event, lease: _Lease, value: dict[str, Any]) -> None:
        if value.get("state") != "error":
            return
        error = value.get("error") or {}
        if error.get("fault") != V.TIMEDOUT:
            return
        first = not lease.expired
        self._expired(event, lease)
        if not first or event.call != V.READ:
            return
        if lease.progress is None or lease.ready_read is None or lease.advertised is None:
            return
        ready_start, ready_end = lease.ready_read
        # The lease turned to error after the server answered the last `ready`
        # Read and before it answered this one; it was renewed during Progress.
        expiry = ((ready_start + ready_end) / 2 + (event.start + event.end) / 2) / 2
        renewal = sum(lease.progress) / 2
        uncertainty = (event.end - ready_start) / 2 + (lease.progress[1] - lease.progress[0]) / 2
        if uncertainty > MAX_UNCERTAINTY:
            return
        self.figures.add("timeout", self.scenario, round(expiry - renewal, 4), lease.advertised,
                         round(uncertainty, 4), self.wall(event.end))

    def _expired(self, event: Event, lease: _Lease) -> None:
        if lease.expired:
            return
        lease.expired = True
        self.figures.add("expired", self.scenario, lease.moid or f"{id(self)}:{event.lease}",
                         self.scenario in DELIBERATE_EXPIRY)

    def _verify(self, event: Event, lease: _Lease) -> None:
        entries = {str(e.get("key")): e for e in (event.value or []) if isinstance(e, dict)}
        for device, (size, sha1) in lease.transfers.items():
            if device in lease.verified:
                continue
            entry = entries.get(device)
            ok = entry is not None and int(entry.get("size") or -1) == size and \
                str(entry.get("sha1") or "").lower() == sha1.lower()
            self.figures.add("verify", self.scenario, size, ok)
            lease.verified.add(device)

    def _probe_gave_up(self, event: Event, lease: _Lease) -> None:
        """Abort of a lease left to expire, well past its timeout: it did not expire."""
        if self.scenario not in DELIBERATE_EXPIRY or lease.expired:
            return
        if lease.progress is None or lease.advertised is None:
            return
        if event.start - lease.progress[1] > lease.advertised:
            self.figures.add("noexpiry", self.scenario, lease.advertised, self.wall(event.end))
