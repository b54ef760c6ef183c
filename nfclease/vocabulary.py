"""The event vocabulary: the names every layer agrees on, in one place.

The contract between the session (which emits events), the model (which
judges them), load (which turns them into Locust requests) and the reports
(which read them) -- see the table in DEVELOPERS.md. Code names a call,
a record, a status or a well-known fault through these constants, never
through a string literal of its own, and reads an event's value through the
typed accessors below.
"""

from __future__ import annotations

from typing import Any, Mapping, TypedDict

# -- calls: what the suite does to a target (Event.call) -----------------------------
ACQUIRE = "Acquire"
READ = "Read"
WAIT_READY = "WaitReady"
PROGRESS = "Progress"
COMPLETE = "Complete"
ABORT = "Abort"
GET_MANIFEST = "GetManifest"
SET_MANIFEST_CHECKSUM_TYPE = "SetManifestChecksumType"
PULL_FROM_URLS = "PullFromUrls"
UPLOAD = "Upload"
DOWNLOAD = "Download"
TASK_INFO = "TaskInfo"
POWER_ON = "PowerOn"
DESTROY = "Destroy"
RELOCATE = "Relocate"
SLEEP = "Sleep"

#: Every call, in the order DEVELOPERS.md lists them.
CALLS: tuple[str, ...] = (ACQUIRE, READ, WAIT_READY, PROGRESS, COMPLETE, ABORT, GET_MANIFEST,
                          SET_MANIFEST_CHECKSUM_TYPE, PULL_FROM_URLS, UPLOAD, DOWNLOAD, TASK_INFO,
                          POWER_ON, DESTROY, RELOCATE, SLEEP)
#: The operations a held lease blocks on the VMs it covers.
BLOCKED_OPERATIONS: tuple[str, ...] = (POWER_ON, DESTROY, RELOCATE)
#: The NFC transfers (HTTP, not SOAP).
TRANSFERS: tuple[str, ...] = (UPLOAD, DOWNLOAD)

# -- records: bookkeeping in the stream, not calls on the target ----------------------
#: First record of a history: the target's ``about`` (a replay learns the API version).
TARGET = "Target"
#: Introduces a reference the run did not acquire (kind ``foreign`` or ``bogus``).
ATTACH = "Attach"
RECORDS: tuple[str, ...] = (TARGET, ATTACH)

# -- acquisitions ------------------------------------------------------------------
ACQUIRE_KINDS: tuple[str, ...] = ("import", "export-vm", "export-vapp", "export-snapshot")

# -- well-known faults -------------------------------------------------------------
TIMEDOUT = "vim.fault.Timedout"
INVALID_STATE = "vim.fault.InvalidState"
NOT_FOUND = "vmodl.fault.ManagedObjectNotFound"

# -- verdicts (results.json "status") ------------------------------------------------
PASS, FAIL, NA, XFAIL, XPASS = "PASS", "FAIL", "NA", "XFAIL", "XPASS"
STATUSES: tuple[str, ...] = (PASS, FAIL, NA, XFAIL, XPASS)
#: Statuses that make a run fail.
FAILING = frozenset({FAIL, XPASS})


# -- typed values ------------------------------------------------------------------
class DeviceUrlValue(TypedDict, total=False):
    key: str
    importKey: str
    url: str
    sslThumbprint: str
    disk: bool
    fileSize: int


class ReadValue(TypedDict, total=False):
    """A ``Read``/``WaitReady`` value (members the API version lacks are absent)."""

    state: str
    initializeProgress: int
    transferProgress: int
    mode: str
    error: dict[str, Any]
    info: dict[str, Any]
    capabilities: dict[str, Any]


class TransferValue(TypedDict, total=False):
    """An ``Upload``/``Download`` value."""

    status: int
    bytes: int
    sha1: str
    sha256: str
    thumbprint: str


class TaskValue(TypedDict, total=False):
    """A ``TaskInfo``, ``PullFromUrls`` or blocked operation's value: the task when it ended."""

    state: str
    error: dict[str, Any] | None
    result: Any


def value_of(event: Any) -> Mapping[str, Any]:
    """An event's value when it is a mapping (Read, Upload, TaskInfo...), else an empty one."""
    value = getattr(event, "value", None)
    return value if isinstance(value, Mapping) else {}


def read_value(event: Any) -> ReadValue:
    """The ``Read``/``WaitReady`` value of ``event`` (empty when it carries none)."""
    return value_of(event)  # type: ignore[return-value]


def transfer_value(event: Any) -> TransferValue:
    """The ``Upload``/``Download`` value of ``event`` (empty when it carries none)."""
    return value_of(event)  # type: ignore[return-value]


def task_value(event: Any) -> TaskValue:
    """The task value of ``event`` (empty when it carries none)."""
    return value_of(event)  # type: ignore[return-value]


def lease_timeout(value: Mapping[str, Any]) -> float | None:
    """``info.leaseTimeout`` of a Read value, in seconds, if it shows one."""
    info = value.get("info")
    timeout = info.get("leaseTimeout") if isinstance(info, Mapping) else None
    return float(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else None


def device_urls(value: Mapping[str, Any]) -> list[DeviceUrlValue]:
    """``info.deviceUrl`` of a Read value (empty when it shows none)."""
    info = value.get("info")
    urls = info.get("deviceUrl") if isinstance(info, Mapping) else None
    return [u for u in urls if isinstance(u, Mapping)] if isinstance(urls, list) else []  # type: ignore[misc]
