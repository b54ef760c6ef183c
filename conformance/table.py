"""THE transition table: lease state x call -> expected outcome, next state, clauses.

Theory of operation
===================

A lease (``vim.HttpNfcLease``) is a small state machine, and most of what the
spec promises is "in state S, call C gives outcome O and leaves the lease in
state S'". This module writes those promises down once, as data; the
reference model (``conformance/model.py``) judges every event against it, and
``conformance/CLAUSES.md`` is generated from it. The simulator never reads it
(DEVELOPERS.md rule 2): a PASS means two independent readings of the spec
agree.

States. The spec's four (``initializing ready done error``) plus two the model
needs to judge faults precisely:

* ``expired`` -- error entered by timeout. The server shows ``error``, but the
  spec gives it different faults: Complete/Abort/Progress/GetManifest raise
  ``Timedout`` ("Thrown if the lease has timed out before this call"), whereas
  on an aborted lease they raise ``InvalidState``.
* ``deleted`` -- the lease object is gone. FIELD-NOTES reports that real
  servers delete a lease once it is finished, so later calls raise
  ``vmodl.fault.ManagedObjectNotFound``. We accept that as a documented
  deviation in ``done`` and ``error`` only, for three reasons: Complete and
  Abort both say "After calling this method, this lease will no longer be
  valid", which a deleted object satisfies; ManagedObjectNotFound is a
  RuntimeFault, which every method may raise; and the spec's sentences for
  InvalidState are about calling a *valid* lease in the wrong state. It is not
  accepted in ``expired``: there the spec says both "the error property can be
  read to determine the cause" and that calls raise Timedout, so the object
  must still be there. Once ManagedObjectNotFound was seen the model moves the
  lease to ``deleted`` and every later call must raise it again
  (``release.deleted``): a deleted object does not come back. Report messages
  count the checks passed through this deviation, so a server that deletes
  every finished lease is visible as such, not silently equal to one that
  raises InvalidState.

Calls. Event calls (DEVELOPERS.md vocabulary) are mapped to *cases* by
:func:`case_of`, because the spec's answer depends on arguments and on the kind
of lease: Progress(50) and Progress(150) differ, a sha256 mapping for a known
key differs from one for a bogus key, PullFromUrls with a short list differs
from an unreachable source, and after an import lease enters error the
imported VM is gone while an exported VM is merely unlocked. ``WaitReady`` is
judged as ``Read`` (it returns a Read value). Every case has a ``since`` API
version; on an older target its events are NA, never FAIL.

Outcomes. An :class:`Expect` is either

* ``ok`` (optionally with the ``state`` member of the returned value drawn from
  ``values``, each value naming the model state(s) it implies),
* a set of acceptable faults (vmodl class names matched with subclasses,
  ``http.*``/``net.*`` families, ``*`` for "any refusal"), or
* ``observe``: the spec is silent, anything is accepted and the outcome is
  reported under a SHOULD clause. Where the spec is silent but one answer is
  clearly the sensible one (Progress(150) refused) the row is a SHOULD clause
  with that answer instead.

Task-shaped calls (PullFromUrls, PowerOn, Destroy, Relocate) count a task that
ended in error as a fault with the task's error; transfers count a non-2xx
status as the fault ``http.<status>``.

Uncertainty. The model does not always know the state: the server leaves
``initializing`` on its own, an ``info`` outcome hides whether the server
acted, a failed pull may or may not have killed the lease, and time is real.
So the model keeps a *set* of possible states, judges an outcome against the
union of their rows, keeps the states whose row accepts what was observed, and
credits a clause only when every remaining state's row names it. Time enters
as follows (``model.py`` implements it; the table only names the clauses):

* with T = info.leaseTimeout and a tolerance window w, a ready lease is
  *surely alive* for a call ending before (earliest possible last renewal) + T
  - w, and *surely expired* for a call starting after (latest possible last
  renewal) + T + w; in between, both ``ready`` and ``expired`` are possible
  and the observation decides. A renewal is the server handling Progress,
  somewhere inside the call, so the earliest bound uses the call's start and
  the latest its end (the conservative direction for each judgement). The
  latest bound also moves on any other call on the lease and on transfers: the
  spec names only Progress as renewing, but the suite will not fail a server
  for being lenient about it.
* surely expired but the outcome is the ready row's: ``timeout.expires``
  FAILs. Surely alive but the outcome is the expired row's:
  ``timeout.renewed`` FAILs if the last Progress was what kept it alive, else
  ``timeout.alive``.

Entity-level calls (TaskInfo and the blocked operations) are about the
lease's task or VMs, not the lease object: in ``deleted`` they are judged by
the row of the state the lease was released in, and after a timeout the
unlocking/cleanup is only required once the tolerance window has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from nfclease.conformance.vmodl import ANY_FAULT, fault_matches
from nfclease import vocabulary as V

# ---------------------------------------------------------------- states
INITIALIZING = "initializing"
READY = "ready"
DONE = "done"
ERROR = "error"
EXPIRED = "expired"
DELETED = "deleted"

STATES: tuple[str, ...] = (INITIALIZING, READY, DONE, ERROR, EXPIRED, DELETED)
HELD = frozenset({INITIALIZING, READY})
RELEASED = frozenset({DONE, ERROR, EXPIRED, DELETED})

#: What the server's ``state`` property shows in each model state.
VISIBLE: dict[str, str | None] = {
    INITIALIZING: "initializing",
    READY: "ready",
    DONE: "done",
    ERROR: "error",
    EXPIRED: "error",
    DELETED: None,
}

# ----------------------------------------------------------------- faults
INVALID_STATE = V.INVALID_STATE
TIMEDOUT = V.TIMEDOUT
HTTP_FAULT = "vim.fault.HttpFault"
NOT_FOUND = V.NOT_FOUND
SSL_VERIFY_FAULT = "vim.fault.SSLVerifyFault"
REFUSED_TRANSFER = ("http.*", "net.*")

# ------------------------------------------------------------------ calls


@dataclass(frozen=True)
class Call:
    """A case of an event call: what the table has one column for."""

    name: str
    since: str
    doc: str
    entity: bool = False  # about the lease's task/VMs, not the lease object


CALLS: dict[str, Call] = {
    c.name: c
    for c in (
        Call(V.READ, "4.0", "Read or WaitReady: the lease's properties"),
        Call(V.PROGRESS, "4.0", "Progress(percent), 0 <= percent <= 100"),
        Call("Progress:out-of-range", "4.0", "Progress(percent) with percent < 0 or > 100"),
        Call(V.COMPLETE, "4.0", "Complete()"),
        Call(V.ABORT, "4.0", "Abort(fault?)"),
        Call(V.GET_MANIFEST, "4.1", "GetManifest()"),
        Call(V.SET_MANIFEST_CHECKSUM_TYPE, "6.7", "keys from info.deviceUrl, algorithms sha1/sha256"),
        Call("SetManifestChecksumType:invalid", "6.7", "an unknown key or algorithm"),
        Call(V.PULL_FROM_URLS, "6.7", "one reachable source per device URL, pull mode supported"),
        Call("PullFromUrls:short", "6.7", "fewer source files than device URLs"),
        Call("PullFromUrls:unreachable", "6.7", "a source that cannot be fetched"),
        Call("PullFromUrls:untrusted", "6.7", "an https source on a certificate the server cannot verify"),
        Call("PullFromUrls:unsupported", "6.7", "pullModeSupported false, or an export lease"),
        Call(V.UPLOAD, "4.0", "whole file to an import device URL"),
        Call("Upload:bad", "4.0", "truncated or garbage upload"),
        Call(V.DOWNLOAD, "4.0", "GET of an export device URL"),
        Call("Transfer:wrong-direction", "4.0", "upload to an export lease / download from an import lease"),
        Call(V.TASK_INFO, "4.0", "the lease's import/export task", entity=True),
        Call(V.POWER_ON, "4.0", "PowerOn of a VM the lease covers (export)", entity=True),
        Call("PowerOn:import", "4.0", "PowerOn of the VM an import lease creates", entity=True),
        Call(V.DESTROY, "4.0", "Destroy of a VM the lease covers (export)", entity=True),
        Call("Destroy:import", "4.0", "Destroy of the VM an import lease creates", entity=True),
        Call(V.RELOCATE, "4.0", "Relocate of a VM the lease covers (export)", entity=True),
        Call("Relocate:import", "4.0", "Relocate of the VM an import lease creates", entity=True),
    )
}

#: Event calls that do something to the lease (for the renewal bound) and are
#: lease-object calls (for the ManagedObjectNotFound -> deleted rule).
LEASE_OBJECT_CALLS = frozenset(
    {V.READ, V.WAIT_READY, V.PROGRESS, V.COMPLETE, V.ABORT, V.GET_MANIFEST, V.SET_MANIFEST_CHECKSUM_TYPE, V.PULL_FROM_URLS}
)
#: Event calls that might, on a lenient server, keep a lease alive.
MAY_RENEW = frozenset(
    {V.PROGRESS, V.COMPLETE, V.ABORT, V.GET_MANIFEST, V.SET_MANIFEST_CHECKSUM_TYPE, V.PULL_FROM_URLS, V.UPLOAD, V.DOWNLOAD}
)
#: Calls that move transferProgress on their own ("Transfer covers download,
#: upload and pull scenario"), so a later Read need not show the last percent.
MOVES_TRANSFER_PROGRESS = frozenset({V.UPLOAD, V.DOWNLOAD, V.PULL_FROM_URLS})
BLOCKED_OPERATIONS: dict[str, str] = {V.POWER_ON: "lock.power-on", V.DESTROY: "lock.destroy", V.RELOCATE: "lock.migrate"}
TASK_CALLS = frozenset({V.PULL_FROM_URLS, V.POWER_ON, V.DESTROY, V.RELOCATE})
TRANSFER_CALLS = frozenset({V.UPLOAD, V.DOWNLOAD})
CHECKSUM_TYPES = frozenset({"sha1", "sha256"})


# --------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Observed:
    """An event's outcome, normalised: ok (maybe with a value state), a fault, or unknown."""

    kind: str  # "ok" | "fault" | "unknown"
    fault: str | None = None
    state: str | None = None

    def __str__(self) -> str:
        if self.kind == "ok":
            return f"ok (state={self.state})" if self.state is not None else "ok"
        if self.kind == "fault":
            return str(self.fault)
        return f"unknown ({self.fault})" if self.fault else "unknown"


@dataclass(frozen=True)
class Expect:
    """Acceptable outcomes of one (state, case)."""

    ok: bool = False
    faults: tuple[str, ...] = ()
    observe: bool = False
    values: Mapping[str, tuple[str, ...]] | None = None

    def accepts(self, obs: Observed) -> bool:
        if obs.kind == "unknown" or self.observe:
            return True
        if obs.kind == "ok":
            return self.ok and (self.values is None or obs.state in self.values)
        return any(fault_matches(obs.fault or "", f) for f in self.faults)

    def describe(self) -> str:
        if self.observe:
            return "observe (spec silent)"
        parts = []
        if self.ok:
            parts.append("ok" if self.values is None else "ok with state " + "/".join(self.values))
        parts += [_short(f) for f in self.faults]
        return " or ".join(parts) if parts else "nothing"


def _short(fault: str) -> str:
    if fault == ANY_FAULT:
        return "any fault"
    return fault.rsplit(".", 1)[-1] if fault.startswith(("vim.", "vmodl.")) else fault


@dataclass(frozen=True)
class Row:
    """One cell of the table: what (state, case) expects and where it leads."""

    expect: Expect
    clauses: tuple[str, ...]
    next_ok: tuple[str, ...] | None = None  # None: the state does not change
    next_fault: tuple[str, ...] | None = None
    fault_clauses: tuple[str, ...] | None = None  # blamed for an unaccepted fault (default: clauses)
    error_fault: str | None = None  # Read: the error property must be this fault
    note: str = ""

    def blamed(self, obs: Observed) -> tuple[str, ...]:
        if obs.kind == "fault" and self.fault_clauses is not None:
            return self.fault_clauses
        return self.clauses

    def next_states(self, state: str, case: str, obs: Observed) -> frozenset[str]:
        """Where the lease may be after this outcome in this state."""
        call = case.split(":", 1)[0]
        if obs.kind == "fault" and obs.fault and call in LEASE_OBJECT_CALLS | {V.PROGRESS}:
            if state in (DONE, ERROR, DELETED) and fault_matches(obs.fault, NOT_FOUND):
                return frozenset({DELETED})
        if obs.kind == "unknown":
            nxt = {state}
            nxt.update(self.next_ok or ())
            nxt.update(self.next_fault or ())
            if self.expect.values:
                for states in self.expect.values.values():
                    nxt.update(states)
            return frozenset(nxt)
        if obs.kind == "ok":
            if self.expect.values is not None and obs.state in self.expect.values:
                return frozenset(self.expect.values[obs.state])
            return frozenset(self.next_ok or (state,))
        return frozenset(self.next_fault or (state,))


# ----------------------------------------------------------- row builders


def ok(*clauses: str, to: tuple[str, ...] | None = None, note: str = "") -> Row:
    return Row(Expect(ok=True), clauses, next_ok=to, note=note)


def raises(faults: tuple[str, ...], *clauses: str, to: tuple[str, ...] | None = None, note: str = "") -> Row:
    return Row(Expect(faults=faults), clauses, next_fault=to, note=note)


def released(*faults: str) -> tuple[str, ...]:
    """The faults of a released (done/error) lease: these, or the lease object is gone."""
    return (*faults, NOT_FOUND)


def observe(*clauses: str, ok_to: tuple[str, ...] | None = None, fault_to: tuple[str, ...] | None = None) -> Row:
    return Row(Expect(observe=True), clauses, next_ok=ok_to, next_fault=fault_to, note="spec silent")


def reads(values: Mapping[str, tuple[str, ...]], *clauses: str, faults: tuple[str, ...] = (),
          fault_clauses: tuple[str, ...] | None = ("state.readable",), error_fault: str | None = None,
          note: str = "") -> Row:
    return Row(Expect(ok=True, values=dict(values), faults=faults), clauses,
               fault_clauses=fault_clauses, error_fault=error_fault, note=note)


def task(states: Mapping[str, str], *clauses: str, note: str = "") -> Row:
    """TaskInfo: the task states accepted; they narrow the lease's possible states, never move it."""
    return Row(Expect(ok=True, values={k: (v,) for k, v in states.items()}), clauses, fault_clauses=(), note=note)


ANY = (ANY_FAULT,)


def _blocked(held: bool, *, import_kind: bool, state: str) -> dict[str, Row]:
    rows = {}
    for op, clause_id in BLOCKED_OPERATIONS.items():
        if held:
            row = raises(ANY, clause_id, note="refused while held")
        elif import_kind and state in (ERROR, EXPIRED):
            row = raises((NOT_FOUND,), "import.cleanup", note="the imported entity is removed")
        else:
            row = ok(clause_id, note="unblocked after release")
        rows[op + (":import" if import_kind else "")] = row
    return rows


def _blocked_rows(state: str) -> dict[str, Row]:
    held = state in HELD
    return {**_blocked(held, import_kind=False, state=state), **_blocked(held, import_kind=True, state=state)}


_I, _R, _D, _E, _X, _G = INITIALIZING, READY, DONE, ERROR, EXPIRED, DELETED
_ALL_PULLS = (V.PULL_FROM_URLS, "PullFromUrls:short", "PullFromUrls:unreachable", "PullFromUrls:untrusted",
              "PullFromUrls:unsupported")
_ALL_TRANSFERS = (V.UPLOAD, "Upload:bad", V.DOWNLOAD, "Transfer:wrong-direction")


def _each(cases: tuple[str, ...], row: Row) -> dict[str, Row]:
    return {c: row for c in cases}


# --------------------------------------------------------------- the table
TABLE: dict[str, dict[str, Row]] = {
    INITIALIZING: {
        V.READ: reads({"initializing": (_I,), "ready": (_R,), "error": (_E,)}, "state.initial",
                      note="ready when preparation ends; error only if initialization failed"),
        V.PROGRESS: observe("initializing.calls"),
        "Progress:out-of-range": raises(ANY, "progress.range"),
        V.COMPLETE: observe("initializing.calls", ok_to=(_D,)),
        V.ABORT: ok("abort.error", to=(_E,)),
        V.GET_MANIFEST: observe("initializing.calls"),
        V.SET_MANIFEST_CHECKSUM_TYPE: observe("initializing.calls"),
        "SetManifestChecksumType:invalid": observe("initializing.calls"),
        **_each(_ALL_PULLS, observe("initializing.calls")),
        **_each(_ALL_TRANSFERS, observe("initializing.calls")),
        V.TASK_INFO: task({"queued": _I, "running": _I}, "state.task-running"),
        **_blocked_rows(_I),
    },
    READY: {
        V.READ: reads({"ready": (_R,)}, "state.lifecycle"),
        V.PROGRESS: ok("progress.accepted", note="renews the lease"),
        "Progress:out-of-range": raises(ANY, "progress.range"),
        V.COMPLETE: ok("complete.done", to=(_D,)),
        V.ABORT: ok("abort.error", to=(_E,)),
        V.GET_MANIFEST: ok("manifest.entries"),
        V.SET_MANIFEST_CHECKSUM_TYPE: ok("checksum.type"),
        "SetManifestChecksumType:invalid": raises(ANY, "checksum.invalid"),
        V.PULL_FROM_URLS: ok("pull.transfer", note="mode becomes pull"),
        "PullFromUrls:short": raises(ANY, "pull.count", to=(_R, _E),
                                     note="spec silent on whether a failed pull ends the lease"),
        "PullFromUrls:unreachable": raises((HTTP_FAULT,), "pull.http-fault", to=(_R, _E),
                                           note="spec silent on whether a failed pull ends the lease"),
        "PullFromUrls:untrusted": raises((SSL_VERIFY_FAULT,), "pull.ssl-verify", to=(_R, _E),
                                         note="spec silent on whether a failed pull ends the lease"),
        "PullFromUrls:unsupported": observe("pull.unsupported", fault_to=(_R, _E)),
        V.UPLOAD: ok("transfer.upload"),
        "Upload:bad": observe("transfer.bad-upload", fault_to=(_R, _E)),
        V.DOWNLOAD: ok("transfer.download"),
        "Transfer:wrong-direction": observe("transfer.direction"),
        V.TASK_INFO: task({"queued": _R, "running": _R}, "state.task-running"),
        **_blocked_rows(_R),
    },
    DONE: {
        V.READ: reads({"done": (_D,)}, "state.lifecycle", faults=(NOT_FOUND,)),
        V.PROGRESS: observe("progress.after-release"),
        "Progress:out-of-range": observe("progress.after-release"),
        V.COMPLETE: raises(released(INVALID_STATE), "complete.repeat"),
        V.ABORT: raises(released(INVALID_STATE), "abort.after-complete"),
        V.GET_MANIFEST: raises(released(INVALID_STATE), "manifest.state"),
        V.SET_MANIFEST_CHECKSUM_TYPE: raises(released(INVALID_STATE), "release.invalid-state"),
        "SetManifestChecksumType:invalid": raises(released(INVALID_STATE), "release.invalid-state"),
        **_each(_ALL_PULLS, raises(released(INVALID_STATE), "release.invalid-state")),
        **_each(_ALL_TRANSFERS, raises(REFUSED_TRANSFER, "release.transfers")),
        V.TASK_INFO: task({"success": _D, "running": _D}, "complete.done",
                         note="running accepted as not yet finished; error never"),
        **_blocked_rows(_D),
    },
    ERROR: {
        V.READ: reads({"error": (_E,)}, "state.lifecycle", faults=(NOT_FOUND,)),
        V.PROGRESS: observe("progress.after-release"),
        "Progress:out-of-range": observe("progress.after-release"),
        V.COMPLETE: raises(released(INVALID_STATE), "complete.repeat"),
        V.ABORT: raises(released(INVALID_STATE), "abort.repeat"),
        V.GET_MANIFEST: raises(released(INVALID_STATE), "manifest.state"),
        V.SET_MANIFEST_CHECKSUM_TYPE: raises(released(INVALID_STATE), "checksum.state"),
        "SetManifestChecksumType:invalid": raises(released(INVALID_STATE), "checksum.state"),
        **_each(_ALL_PULLS, raises(released(INVALID_STATE), "pull.state")),
        **_each(_ALL_TRANSFERS, raises(REFUSED_TRANSFER, "release.transfers")),
        V.TASK_INFO: task({"error": _E, "running": _E}, "abort.error",
                         note="running accepted as not yet finished; success never"),
        **_blocked_rows(_E),
    },
    EXPIRED: {
        V.READ: reads({"error": (_X,)}, "timeout.expires", error_fault=TIMEDOUT,
                      note="error property is a Timedout fault"),
        V.PROGRESS: raises((TIMEDOUT,), "timeout.faults"),
        "Progress:out-of-range": raises(ANY, "progress.range"),
        V.COMPLETE: raises((TIMEDOUT,), "timeout.faults"),
        V.ABORT: raises((TIMEDOUT,), "timeout.faults"),
        V.GET_MANIFEST: raises((TIMEDOUT,), "timeout.faults"),
        V.SET_MANIFEST_CHECKSUM_TYPE: raises((INVALID_STATE,), "release.invalid-state"),
        "SetManifestChecksumType:invalid": raises((INVALID_STATE,), "release.invalid-state"),
        **_each(_ALL_PULLS, raises((INVALID_STATE,), "release.invalid-state")),
        **_each(_ALL_TRANSFERS, raises(REFUSED_TRANSFER, "release.transfers")),
        V.TASK_INFO: task({"error": _X, "running": _X}, "timeout.task",
                         note="running accepted as not yet finished; success never"),
        **_blocked_rows(_X),
    },
    DELETED: {
        V.READ: raises((NOT_FOUND,), "release.deleted"),
        **_each((V.PROGRESS, "Progress:out-of-range", V.COMPLETE, V.ABORT, V.GET_MANIFEST,
                 V.SET_MANIFEST_CHECKSUM_TYPE, "SetManifestChecksumType:invalid", *_ALL_PULLS),
                raises((NOT_FOUND,), "release.deleted")),
        **_each(_ALL_TRANSFERS, raises(REFUSED_TRANSFER, "release.transfers")),
        # TaskInfo and blocked operations: judged by the row of the state the
        # lease was released in (the task and the VMs outlive the lease object).
    },
}


def row(state: str, case: str, released_as: str | None = None) -> Row:
    """The table cell for (state, case); entity-level cases of ``deleted`` use ``released_as``."""
    if state == DELETED and CALLS[case].entity:
        state = released_as or DONE
    try:
        return TABLE[state][case]
    except KeyError:
        raise KeyError(f"the table has no row for state {state!r} x case {case!r}; "
                       f"add it to conformance/table.py (and regenerate CLAUSES.md)") from None


def rows_for_clause(clause_id: str) -> list[tuple[str, str, Row]]:
    """Every (state, case, row) that names ``clause_id``: for CLAUSES.md and the reports."""
    out = []
    for state, cases in TABLE.items():
        for case, r in cases.items():
            if clause_id in r.clauses or clause_id in (r.fault_clauses or ()):
                out.append((state, case, r))
    return out


# ---------------------------------------------------------- event -> case


def checksum_mapping(args: Mapping[str, Any]) -> dict[str, str]:
    """``SetManifestChecksumType`` args as ``{deviceKey: algorithm}`` (dict or KeyValue list)."""
    mapping = args.get("mapping", args.get("deviceUrlsToChecksumTypes")) or {}
    if isinstance(mapping, Mapping):
        return {str(k): str(v) for k, v in mapping.items()}
    out = {}
    for item in mapping:
        if isinstance(item, Mapping):
            out[str(item.get("key"))] = str(item.get("value"))
    return out


def case_of(call: str, args: Mapping[str, Any], *, kind: str | None, device_keys: frozenset[str] | None,
            pull_supported: bool | None) -> str | None:
    """The table case for an event, or None when the model cannot classify it yet.

    ``kind`` is the lease kind from Acquire (``import``, ``export-vm``...),
    ``device_keys`` the deviceUrl keys (and importKeys) from the last ready
    Read, ``pull_supported`` capabilities.pullModeSupported if read.
    """
    is_import = kind == "import"
    if call == V.WAIT_READY:
        return V.READ
    if call == V.PROGRESS:
        percent = args.get("percent")
        if isinstance(percent, int) and not isinstance(percent, bool) and 0 <= percent <= 100:
            return V.PROGRESS
        return "Progress:out-of-range"
    if call == V.SET_MANIFEST_CHECKSUM_TYPE:
        mapping = checksum_mapping(args)
        if any(v not in CHECKSUM_TYPES for v in mapping.values()):
            return "SetManifestChecksumType:invalid"
        if device_keys is None:
            return None if mapping else V.SET_MANIFEST_CHECKSUM_TYPE
        if any(k not in device_keys for k in mapping):
            return "SetManifestChecksumType:invalid"
        return V.SET_MANIFEST_CHECKSUM_TYPE
    if call == V.PULL_FROM_URLS:
        if (kind is not None and not is_import) or pull_supported is False:
            return "PullFromUrls:unsupported"
        variant = args.get("variant", "good")
        return {"good": V.PULL_FROM_URLS, "short": "PullFromUrls:short", "unreachable": "PullFromUrls:unreachable",
                "untrusted": "PullFromUrls:untrusted"}.get(variant)
    if call == V.UPLOAD:
        if kind is not None and not is_import:
            return "Transfer:wrong-direction"
        return V.UPLOAD if args.get("variant", "whole") == "whole" else "Upload:bad"
    if call == V.DOWNLOAD:
        return "Transfer:wrong-direction" if is_import else V.DOWNLOAD
    if call in BLOCKED_OPERATIONS:
        return call + (":import" if is_import else "")
    if call in CALLS:
        return call
    return None


def observed(call: str, outcome: str, value: Any, fault: str | None) -> Observed:
    """Normalise an event's outcome the way the table's rows speak about it."""
    if outcome == "info":
        return Observed("unknown", fault=fault)
    if outcome == "fail":
        if (fault or "").startswith("client."):
            return Observed("unknown", fault=fault)  # the client refused before sending: the lease is untouched
        if call not in TRANSFER_CALLS and (fault or "").startswith(("net.", "http.")):
            # a SOAP call lost in transport says nothing about the lease
            return Observed("unknown", fault=fault)
        return Observed("fault", fault=fault or "unknown-fault")
    value = value if isinstance(value, Mapping) else {}
    if call in TASK_CALLS:
        state = value.get("state")
        if state == "error":
            return Observed("fault", fault=fault_name(value.get("error")) or "task-error")
        if state not in (None, "success"):
            return Observed("unknown", fault=f"task {state}")
        return Observed("ok")
    if call in TRANSFER_CALLS:
        status = value.get("status")
        if isinstance(status, int) and not 200 <= status < 300:
            return Observed("fault", fault=f"http.{status}")
        return Observed("ok")
    if call in (V.READ, V.WAIT_READY, V.TASK_INFO):
        return Observed("ok", state=value.get("state"))
    return Observed("ok")


def fault_name(error: Any) -> str | None:
    """A fault's vmodl name from however an event value spells it (name, or a dict)."""
    if error is None or error == "":
        return None
    if isinstance(error, str):
        return error
    if isinstance(error, Mapping):
        for key in ("type", "fault", "_type", "name"):
            if isinstance(error.get(key), str):
                return error[key]
    return str(error)
