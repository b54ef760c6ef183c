"""Record every client's conversation with the simulator, one JSONL file per SOAP session.

``nfclease sim --record DIR`` writes ``DIR/session-<n>.jsonl``: the same
:class:`nfclease.events.Event` records the suite emits for its own calls
(``Acquire``, ``Read``, ``Progress``, ``Complete``, ``Abort``,
``GetManifest``, ``SetManifestChecksumType``, ``PullFromUrls``, ``Upload``,
``Download``), seen from the server's side and timed with
``time.monotonic()``. Recorder-only records: ``Target`` first (API version,
lease timeout, the certificate's thumbprint), ``Scenario`` (the client
scenario in force and what a correct client does), ``State`` (a lease's
transition as the server made it, with its cause), ``Soap`` (any other SOAP
method, by name), ``Login``/``Logout``.

Property reads are ``Read`` records wherever the client made them
(RetrieveProperties[Ex], WaitForUpdates[Ex], CheckForUpdates, Fetch), with
the lease properties it received. Secrets never reach a file: no password, no
cookie; the session key inside lease moids and the NFC ticket inside device
URLs are replaced by ``***``.

The recorder judges nothing: ``nfclease judge-client`` (conformance side) does.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from pyVmomi import vim

from nfclease import vocabulary as V
from nfclease.events import Event, EventStream, HistoryWriter
from nfclease.redaction import redact_text

__all__ = ["SessionRecorder"]

LEASE_CALLS = {
    "HttpNfcLeaseProgress": "Progress", "HttpNfcLeaseComplete": "Complete", "HttpNfcLeaseAbort": "Abort",
    "HttpNfcLeaseGetManifest": "GetManifest", "HttpNfcLeaseSetManifestChecksumType": "SetManifestChecksumType",
    "HttpNfcLeasePullFromUrls_Task": "PullFromUrls",
}
ACQUIRE_CALLS = {"ImportVApp": "import", "ExportVm": "export-vm", "ExportVApp": "export-vapp",
                 "ExportSnapshot": "export-snapshot"}
READ_CALLS = {"RetrievePropertiesEx", "RetrieveProperties", "ContinueRetrievePropertiesEx", "WaitForUpdatesEx",
              "WaitForUpdates", "CheckForUpdates", "Fetch"}


def hide(text: str) -> str:
    """A moid or URL without the session key or the NFC ticket in it (the one redaction function)."""
    return redact_text(text)


def _fault(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    fault = getattr(value, "fault", value)
    return {"fault": type(fault).__name__, "message": getattr(value, "localizedMessage", None) or
            getattr(fault, "msg", None) or type(fault).__name__}


def _info(info: Any) -> dict[str, Any] | None:
    if info is None:
        return None
    return {"leaseTimeout": info.leaseTimeout, "totalDiskCapacityInKB": info.totalDiskCapacityInKB,
            "deviceUrl": [{"key": d.key, "importKey": d.importKey, "url": hide(d.url or ""),
                           "sslThumbprint": d.sslThumbprint, "disk": d.disk, "fileSize": d.fileSize}
                          for d in info.deviceUrl or []]}


def _lease_values(props: dict[str, Any]) -> dict[str, Any]:
    """The lease properties a read returned, summarised (only those it returned)."""
    out: dict[str, Any] = {}
    for name, value in props.items():
        if name == "state":
            out["state"] = str(value) if value is not None else None
        elif name == "error":
            out["error"] = _fault(value)
        elif name == "info":
            out["info"] = _info(value)
        elif name in ("initializeProgress", "transferProgress", "mode"):
            out[name] = value
    return out


def lease_reads(method: str, this: Any, args: dict[str, Any], result: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(lease moid, values)`` for every lease a property read returned."""
    if method == "Fetch":
        return [(this._moId, _lease_values({args.get("prop", ""): result}))] \
            if isinstance(this, vim.HttpNfcLease) else []
    found: list[tuple[str, dict[str, Any]]] = []
    objects = getattr(result, "objects", None) if method != "RetrieveProperties" else result
    for content in objects or []:
        if isinstance(content.obj, vim.HttpNfcLease):
            found.append((content.obj._moId, _lease_values({p.name: p.val for p in content.propSet or []})))
    for filter_update in getattr(result, "filterSet", None) or []:
        for update in filter_update.objectSet or []:
            if isinstance(update.obj, vim.HttpNfcLease):
                found.append((update.obj._moId, _lease_values({c.name: c.val for c in update.changeSet or []})))
    return found


class _Session:
    """One SOAP session's file, handles and stream."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer = HistoryWriter(path)
        self.stream = EventStream([self.writer])
        self.handles: dict[str, str] = {}

    def handle(self, moid: str) -> str:
        if moid not in self.handles:
            self.handles[moid] = f"L{len(self.handles) + 1}"
        return self.handles[moid]


class SessionRecorder:
    """Writes each SOAP session's events to ``directory/session-<n>.jsonl``.

    ``on_close(path)`` is called when a session's file is complete (Logout,
    or the simulator stopping): ``nfclease sim --judge`` judges it there.
    """

    def __init__(self, directory: str | Path, target: dict[str, Any],
                 scenario: Callable[[], dict[str, str]]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.target = target
        self.scenario = scenario
        self.on_close: Callable[[Path], None] | None = None
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._count = len(list(self.directory.glob("session-*.jsonl")))
        self._since = time.monotonic()

    def redirect(self, directory: str | Path) -> None:
        """Record from now on in ``directory`` (``nfclease clients``: one per run).

        Open session files are completed first; a session that goes on (a
        client reusing a saved session cookie) continues in a new file there.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.close_all()
        with self._lock:
            self.directory = directory
            self._count = len(list(directory.glob("session-*.jsonl")))
            self._since = time.monotonic()

    def _active(self, key: str | None, started: float) -> _Session | None:
        """The open file of a session the client is using; one began earlier (no Login seen since) gets a
        new file, but only for a call made after the last redirect (a straggler of the run before is dropped)."""
        if not key:
            return None
        session = self._sessions.get(key)
        if session is None and started >= self._since:
            session = self._open(key, started)
        return session

    # -- sessions ----------------------------------------------------------------
    def _open(self, key: str, now: float) -> _Session:
        with self._lock:
            self._count += 1
            session = self._sessions[key] = _Session(self.directory / f"session-{self._count}.jsonl")
        session.stream.emit(Event(V.TARGET, value=dict(self.target), start=now, end=now))
        self._emit_scenario(session, now)
        return session

    def _emit_scenario(self, session: _Session, now: float) -> None:
        scenario = self.scenario()
        session.stream.emit(Event("Scenario", args={"name": scenario["name"]}, value=scenario, start=now, end=now))

    def scenario_switched(self) -> None:
        now = time.monotonic()
        for session in list(self._sessions.values()):
            self._emit_scenario(session, now)

    def close(self, key: str) -> None:
        with self._lock:
            session = self._sessions.pop(key, None)
        if session is None:
            return
        session.writer.close()
        if self.on_close is not None:
            self.on_close(session.path)

    def close_all(self) -> None:
        for key in list(self._sessions):
            self.close(key)

    # -- SOAP ------------------------------------------------------------------------
    def soap(self, method: str, this: Any, args: dict[str, Any], session_key: str | None, result: Any,
             fault: Any, message: str | None, start: float, end: float) -> None:
        """One SOAP call: its result (or ``fault``), recorded in the caller's session."""
        if method == "Login" and fault is None and result is not None:
            session_key = result.key
            self._open(session_key, start)
        session = self._sessions.get(session_key or "") if fault is not None else self._active(session_key, start)
        if session is None:
            return
        outcome, fault_name = ("ok", None) if fault is None else ("fail", type(fault).__name__)
        for event in self._events(session, method, this, args, result if fault is None else None):
            event.outcome, event.fault, event.message = outcome, fault_name, message
            event.start, event.end = start, end
            session.stream.emit(event)
        if method == "Logout" and fault is None:
            self.close(session_key or "")

    def _events(self, session: _Session, method: str, this: Any, args: dict[str, Any], result: Any) -> list[Event]:
        if method in LEASE_CALLS:
            return [Event(LEASE_CALLS[method], session.handle(this._moId), self._lease_args(method, args))]
        if method in ACQUIRE_CALLS:
            lease = session.handle(result._moId) if result is not None else None
            value = {"moid": hide(result._moId)} if result is not None else None
            return [Event("Acquire", lease, {"kind": ACQUIRE_CALLS[method], "entity": this._moId}, value=value)]
        if method in READ_CALLS:
            reads = lease_reads(method, this, args, result) if result is not None else []
            if not reads and method == "Fetch" and isinstance(this, vim.HttpNfcLease):
                reads = [(this._moId, {})]  # a failed read of a lease property
            if reads:
                return [Event("Read", session.handle(m), {"via": method}, value=v) for m, v in reads]
        if method in ("Login", "Logout"):
            return [Event(method, args={"userName": args.get("userName")} if method == "Login" else {})]
        return [Event("Soap", args={"method": method, "this": hide(getattr(this, "_moId", ""))})]

    @staticmethod
    def _lease_args(method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "HttpNfcLeaseProgress":
            return {"percent": args.get("percent")}
        if method == "HttpNfcLeaseAbort":
            fault = args.get("fault")
            return {"fault": type(fault).__name__ if fault is not None else None}
        if method == "HttpNfcLeaseSetManifestChecksumType":
            return {"mapping": {kv.key: kv.value for kv in args.get("deviceUrlsToChecksumTypes") or []}}
        if method == "HttpNfcLeasePullFromUrls_Task":
            return {"files": len(args.get("files") or [])}
        return {}

    # -- leases and transfers ---------------------------------------------------------
    def lease_state(self, session_key: str, moid: str, state: str, cause: str, error: Any) -> None:
        """A transition the server made (ready, or released with its cause)."""
        session = self._sessions.get(session_key)
        if session is not None:
            now = time.monotonic()
            session.stream.emit(Event("State", session.handle(moid), {"state": state, "cause": cause},
                                      value={"error": _fault(error)}, start=now, end=now))

    def transfer(self, session_key: str, moid: str, call: str, args: dict[str, Any], status: int | None,
                 value: dict[str, Any], message: str | None, start: float, end: float) -> None:
        """One NFC request on a lease's device URL; ``status`` None when no answer was sent."""
        session = self._active(session_key, start)
        if session is None:
            return
        if status is None:
            outcome, fault = "info", "net.ConnectionClosed"
        elif status >= 400:
            outcome, fault = "fail", f"http.{status}"
        else:
            outcome, fault = "ok", None
        session.stream.emit(Event(call, session.handle(moid), args, outcome=outcome, fault=fault,
                                  value={"status": status, **value}, message=message, start=start, end=end))
