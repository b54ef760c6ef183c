"""One call, one event: running a session call, classifying its outcome, JSON-able summaries.

The recording half of :mod:`nfclease.session` (see its docstring for outcomes
and faults); everything here is importable from there too.
"""

from __future__ import annotations

import datetime
import http.client
import itertools
import ssl
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, TypeVar

from nfclease.events import Event, EventStream, Outcome
from nfclease.transfer import NfcHttpError, NfcTransportError

T = TypeVar("T")
MESSAGE_LIMIT = 500


class NoTask(LookupError):
    """The target shows no import/export task for this lease (vcsim has none)."""


class NoDeviceUrl(LookupError):
    """A transfer named a device this lease never listed in ``info.deviceUrl``."""


class ReadOnlyEntity(PermissionError):
    """The user named this VM for a read-only export: nothing is uploaded to, pulled into, powered,
    destroyed or moved on it. The call is skipped before anything is sent, and no event is emitted."""

    def __init__(self, call: str, handle: str, names: str) -> None:
        super().__init__(f"{call} skipped: {names} was named for a read-only export (--export-vm)")
        self.call = call
        self.handle = handle


class NoCoveredVm(LookupError):
    """A blocked-operation call before the lease named the VM it covers (import not ready yet)."""


# -- handles and the record ------------------------------------------------------

_handles: "weakref.WeakKeyDictionary[EventStream, Iterator[int]]" = weakref.WeakKeyDictionary()
_handles_lock = threading.Lock()
_last = threading.local()


def next_handle(stream: EventStream) -> str:
    """``L1``, ``L2``, ... counted per event stream (one run, one numbering)."""
    with _handles_lock:
        counter = _handles.get(stream)
        if counter is None:
            counter = _handles[stream] = itertools.count(1)
        return f"L{next(counter)}"


def classify(exc: BaseException) -> tuple[Outcome, str, str]:
    """``(outcome, fault, message)`` for an exception raised by a call (see the module doc)."""
    from pyVmomi import vmodl

    if isinstance(exc, vmodl.MethodFault):
        return "fail", type(exc).__name__, _fault_message(exc)
    if isinstance(exc, NfcHttpError):
        return "fail", f"http.{exc.status}", exc.message
    if isinstance(exc, NfcTransportError):
        return ("info" if exc.request_sent else "fail"), exc.fault, str(exc.cause)
    if isinstance(exc, (ssl.SSLCertVerificationError, ConnectionRefusedError)):
        return "fail", f"net.{type(exc).__name__}", str(exc)
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return "info", f"net.{type(exc).__name__}", str(exc) or type(exc).__name__
    return "info", f"client.{type(exc).__name__}", str(exc) or type(exc).__name__


def _fault_message(fault: Any) -> str:
    """The fault's own message ("" when the server gave none: ``faults.declared`` judges that)."""
    text = getattr(fault, "msg", None)
    if not text:
        messages = [m.message for m in (getattr(fault, "faultMessage", None) or []) if getattr(m, "message", None)]
        text = "; ".join(messages)
    return (text or "").strip()[:MESSAGE_LIMIT]


@dataclass
class Attempt:
    """A call's event and its result (or the exception), from :func:`attempt`."""

    event: Event
    result: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.event.outcome == "ok"


def attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Attempt:
    """Run one session call and return its :class:`Attempt` instead of raising.

    Exceptions that did not come from a recorded call (a bug, a bad argument
    caught before anything was sent) still propagate: only the call's own
    outcome becomes data.
    """
    _last.event = None
    try:
        result = fn(*args, **kwargs)
    except ReadOnlyEntity as exc:  # skipped, not tried: an event for the caller, none for the record
        return Attempt(Event(call=exc.call, lease=exc.handle, outcome="info", fault="client.ReadOnlyEntity",
                             message=str(exc)), None, exc)
    except Exception as exc:
        event = getattr(_last, "event", None)
        if event is None:
            raise
        return Attempt(event, None, exc)
    event = getattr(_last, "event", None)
    if event is None:
        raise RuntimeError(f"{getattr(fn, '__name__', fn)!r} emitted no event: not a session call")
    return Attempt(event, result, None)


def _record(stream: EventStream, lease: str | None, call: str, args: dict[str, Any],
            fn: Callable[[], T], summarize: Callable[[T], Any] = lambda _r: None) -> T:
    """Run ``fn`` as one call: time it, classify it, emit exactly one event."""
    start = time.monotonic()
    try:
        result = fn()
    except BaseException as exc:
        end = time.monotonic()
        outcome, fault, message = classify(exc)
        _last.event = stream.emit(Event(call=call, lease=lease, args=args, outcome=outcome, value=None,
                                        fault=fault, message=message[:MESSAGE_LIMIT], start=start, end=end))
        raise
    end = time.monotonic()
    message = None
    try:
        value = jsonable(summarize(result))
    except Exception as exc:  # the call succeeded; only our summary of it did not
        value, message = None, f"no summary: {type(exc).__name__}: {exc}"[:MESSAGE_LIMIT]
    _last.event = stream.emit(Event(call=call, lease=lease, args=args, outcome="ok", value=value,
                                    message=message, start=start, end=end))
    return result


# -- JSON-able summaries ----------------------------------------------------------

def moid(obj: Any) -> str | None:
    return getattr(obj, "_moId", None) if obj is not None else None


def jsonable(value: Any) -> Any:
    """Plain JSON types only: managed objects become their moid, times ISO text."""
    from pyVmomi import VmomiSupport

    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, VmomiSupport.ManagedObject):
        return value._moId
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def fault_summary(localized: Any) -> dict[str, Any] | None:
    """``{fault, message}`` of a LocalizedMethodFault (a lease's or a task's error)."""
    if localized is None:
        return None
    fault = getattr(localized, "fault", localized)
    message = getattr(localized, "localizedMessage", None) or _fault_message(fault)
    out = {"fault": type(fault).__name__ if fault is not None else None, "message": message}
    if getattr(fault, "thumbprint", None) is not None:  # SSLVerifyFault: the certificate the server met
        out["thumbprint"] = fault.thumbprint
    return out


def task_summary(info: Any) -> dict[str, Any]:
    return {"state": str(info.state), "error": fault_summary(info.error)}


def device_summary(url: Any) -> dict[str, Any]:
    return {"key": url.key, "importKey": getattr(url, "importKey", None), "url": url.url,
            "sslThumbprint": getattr(url, "sslThumbprint", None), "disk": getattr(url, "disk", None),
            "fileSize": getattr(url, "fileSize", None)}


def info_summary(info: Any) -> dict[str, Any] | None:
    if info is None:
        return None
    return {"leaseTimeout": info.leaseTimeout, "entity": moid(info.entity),
            "totalDiskCapacityInKB": info.totalDiskCapacityInKB,
            "deviceUrl": [device_summary(u) for u in (info.deviceUrl or [])]}


def manifest_summary(entries: Iterable[Any] | None) -> list[dict[str, Any]]:
    return [{"key": e.key, "sha1": e.sha1, "size": e.size, "disk": e.disk,
             "checksum": getattr(e, "checksum", None), "checksumType": getattr(e, "checksumType", None)}
            for e in (entries or [])]
