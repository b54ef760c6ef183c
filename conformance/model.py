"""The pure reference model: events in, judgements per clause out.

:class:`Model` consumes :class:`nfclease.events.Event` records (the vocabulary
in DEVELOPERS.md), one at a time and in stream order, and returns a
:class:`Judgement` per event: which clauses the event checked, pass/fail/na,
what was expected and what was observed. It reads only the transition table
(``conformance/table.py``), the clause catalogue, pyVmomi's declared faults
(data) and the events; it never talks to a target, so the same events give the
same verdicts online (as an EventStream listener) and offline
(``conformance/offline.py`` replaying a history).

Per lease, a :class:`LeaseModel` keeps the *set* of states the lease may be in
(see the theory of operation in ``table.py``), the timing bounds used to judge
expiry, and what earlier events recorded (device URLs, transfers, manifest,
last percent, the fault given to Abort...). Handles introduced by an
``Attach`` record (``kind`` ``foreign``: another session's reference to a
lease, ``bogus``: a moid never handed out; ``of``: the handle of the lease it
names) are no leases of the run: every call through them is judged by
``ref.foreign`` alone. The value invariants (Read values,
manifests, transfers, declared faults) live here; the state x call rules live
in the table.

:class:`ClauseVerdicts` folds judgements into one verdict per clause: PASS
(checked at least once, never failed), FAIL (first failing event, its message
and a repro: the lease's calls up to it) or NA (never exercised, or the
target's API version predates the clause).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

from conformance import table as T
from conformance.clauses import BY_ID, CLAUSES, Clause
from conformance.table import Observed
from conformance.vmodl import (
    LEASE_METHODS,
    declared_faults,
    is_a,
    is_declared,
    method_since,
    version_at_least,
)
from nfclease.events import Event

Verdict = Literal["pass", "fail", "na"]
Status = Literal["PASS", "FAIL", "NA", "XFAIL", "XPASS"]
STATUSES: tuple[str, ...] = ("PASS", "FAIL", "NA", "XFAIL", "XPASS")

DEVIATION_DELETED = "ManagedObjectNotFound: lease object deleted after release (FIELD-NOTES)"
ACQUIRE_SINCE = {"import": "4.0", "export-vm": "4.0", "export-vapp": "4.0", "export-snapshot": "5.5"}
ACQUIRE_METHOD = {"import": "ImportVApp", "export-vm": "ExportVm", "export-vapp": "ExportVApp",
                  "export-snapshot": "ExportSnapshot"}
#: Faults that say "this server does not have that method" (``api.implemented``).
UNIMPLEMENTED = ("vmodl.fault.MethodNotFound", "vmodl.fault.NotImplemented")
_HEX = re.compile(r"^[0-9a-f]+$")
REPRO_LINES = 40
#: The record that introduces a lease reference the run did not acquire (see conformance/context.py).
ATTACH = "Attach"
FOREIGN_KINDS = ("foreign", "bogus")


def default_tolerance(lease_timeout: float) -> float:
    """The expiry tolerance window: 10% of the timeout, at least half a second.

    Wide enough that a loaded 2-core CI machine or a server that sweeps
    expired leases periodically does not produce a false verdict; narrow
    enough that a lease living twice its timeout is caught.
    """
    return max(0.5, 0.1 * lease_timeout)


@dataclass(frozen=True)
class Check:
    """One clause judged on one event."""

    clause: str
    verdict: Verdict
    expected: str = ""
    observed: str = ""
    message: str = ""
    observation: str | None = None  # observe clauses: what the target did
    deviation: str | None = None  # a documented deviation that was accepted


@dataclass
class Judgement:
    """What the model made of one event."""

    event: Event
    checks: list[Check] = field(default_factory=list)
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    note: str = ""

    @property
    def clauses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.clause for c in self.checks))

    @property
    def verdict(self) -> Verdict:
        verdicts = {c.verdict for c in self.checks}
        return "fail" if "fail" in verdicts else "pass" if "pass" in verdicts else "na"

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "fail"]

    @property
    def expected(self) -> str:
        return "; ".join(dict.fromkeys(c.expected for c in self.checks if c.expected))

    @property
    def observed(self) -> str:
        return "; ".join(dict.fromkeys(c.observed for c in self.checks if c.observed))

    @property
    def message(self) -> str:
        failed = self.failures
        if failed:
            return "; ".join(f"{c.clause}: {c.message}" for c in failed)
        return self.note or ", ".join(f"{c.clause} {c.verdict}" for c in self.checks) or "nothing to judge"


@dataclass
class Transfer:
    """What an Upload/Download/PullFromUrls recorded for one device key."""

    source: str  # "upload" | "download" | "pull"
    size: int | None
    sha1: str | None
    sha256: str | None = None


@dataclass
class LeaseModel:
    """Everything the model knows about one lease."""

    lease: str
    kind: str | None
    acquired_at: float
    possible: set[str] = field(default_factory=lambda: {T.INITIALIZING})
    prev_possible: set[str] = field(default_factory=set)
    last_end: float = float("-inf")
    via: dict[str, str] = field(default_factory=dict)
    released_as: str | None = None
    entered_hi: float | None = None
    # timing
    lease_timeout: float | None = None
    renew_lo: float | None = None
    renew_hi: float | None = None
    renewed_by_progress: bool = False
    # what values showed
    reads: int = 0
    ready_known: bool = False
    init_progress: int | None = None
    info_seen: bool = False
    keys: dict[str, str] = field(default_factory=dict)  # key or importKey -> key
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    expected_devices: int | None = None  # imports: exactly this many; exports: at least
    entities: set[str] = field(default_factory=set)
    pull_supported: bool | None = None
    pulled: bool = False
    last_percent: int | None = None
    out_of_range_accepted: bool = False
    abort_fault: str | None = None
    aborted: bool = False
    task_terminal: str | None = None
    transfers: dict[str, Transfer] = field(default_factory=dict)
    transfer_started: set[str] = field(default_factory=set)
    checksum_requested: dict[str, tuple[str, bool]] = field(default_factory=dict)
    manifest: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifest_covers: set[str] = field(default_factory=set)  # keys whose entry was read after their transfer
    history: list[Event] = field(default_factory=list)

    @property
    def is_import(self) -> bool:
        return self.kind == "import"

    def key(self, device: Any) -> str:
        """A device argument (key or importKey) as the deviceUrl key."""
        return self.keys.get(str(device), str(device))

    def device_keys(self) -> frozenset[str] | None:
        return frozenset(self.keys) if self.keys else None

    def t(self, when: float) -> str:
        return f"+{when - self.acquired_at:.2f}s"


@dataclass
class EntityModel:
    """A VM the blocked operations touch: only what changes the expected answer."""

    powered_on: bool = False
    destroyed: bool = False


# ------------------------------------------------------------------ verdicts


@dataclass(frozen=True)
class ClauseResult:
    """One line of results.json: the verdict on a clause for a run."""

    clause: str
    level: str
    status: str
    message: str
    repro: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"clause": self.clause, "level": self.level, "status": self.status,
                "message": self.message, "repro": self.repro}


@dataclass
class ClauseVerdict:
    """The running verdict on one clause."""

    clause: Clause
    gate: str | None = None  # why the clause cannot apply (API version)
    passes: int = 0
    failures: int = 0
    first_failure: Check | None = None
    failure_event: Event | None = None
    repro: str | None = None
    na_reasons: Counter = field(default_factory=Counter)
    observations: Counter = field(default_factory=Counter)
    deviations: Counter = field(default_factory=Counter)

    @property
    def status(self) -> str:
        if self.gate:
            return "NA"
        if self.failures:
            return "FAIL"
        return "PASS" if self.passes else "NA"

    @property
    def message(self) -> str:
        status = self.status
        if status == "NA":
            if self.gate:
                return self.gate
            if self.na_reasons:
                reason, _ = self.na_reasons.most_common(1)[0]
                return f"not judged: {reason}"
            return "not exercised by this run"
        if status == "FAIL":
            assert self.first_failure is not None
            ev = self.failure_event
            where = f"event #{ev.seq} {ev.lease or '-'}.{ev.call}: " if ev is not None else ""
            extra = f" ({self.failures} of {self.failures + self.passes} checks failed)"
            return where + self.first_failure.message + extra
        parts = [f"{self.passes} check{'s' if self.passes != 1 else ''} passed"]
        if self.observations:
            seen = ", ".join(f"{k} (x{n})" for k, n in sorted(self.observations.items()))
            parts.append(f"spec silent; observed: {seen}")
        for dev, n in sorted(self.deviations.items()):
            parts.append(f"{n} via {dev}")
        return "; ".join(parts)

    def result(self) -> ClauseResult:
        return ClauseResult(self.clause.id, self.clause.level, self.status, self.message,
                            self.repro if self.status == "FAIL" else None)


class ClauseVerdicts(Mapping[str, ClauseVerdict]):
    """Per-clause verdicts accumulated over judgements, in catalogue order."""

    def __init__(self, api_version: str | None = None, catalogue: Iterable[Clause] = CLAUSES) -> None:
        self.api_version = api_version
        self._by_id: dict[str, ClauseVerdict] = {}
        for c in catalogue:
            gate = None
            if not version_at_least(api_version, c.since):
                gate = f"applies from vSphere API {c.since}; the target speaks {api_version}"
            self._by_id[c.id] = ClauseVerdict(c, gate=gate)

    def __getitem__(self, clause_id: str) -> ClauseVerdict:
        return self._by_id[clause_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def record(self, judgement: Judgement, repro: Callable[[], str] | None = None) -> None:
        for check in judgement.checks:
            v = self._by_id.get(check.clause)
            if v is None:
                raise KeyError(f"judgement names unknown clause {check.clause!r}; add it to conformance/clauses.py")
            if v.gate:
                continue
            if check.verdict == "pass":
                v.passes += 1
                if check.observation:
                    v.observations[check.observation] += 1
                if check.deviation:
                    v.deviations[check.deviation] += 1
            elif check.verdict == "fail":
                v.failures += 1
                if v.first_failure is None:
                    v.first_failure = check
                    v.failure_event = judgement.event
                    v.repro = repro() if repro else None
            elif check.message:
                v.na_reasons[check.message] += 1

    def results(self) -> list[ClauseResult]:
        return [v.result() for v in self._by_id.values()]

    def statuses(self) -> dict[str, str]:
        return {k: v.status for k, v in self._by_id.items()}

    def summary(self) -> dict[str, int]:
        counts = Counter(v.status for v in self._by_id.values())
        return {s: counts.get(s, 0) for s in STATUSES}


# --------------------------------------------------------------------- model


class Model:
    """The reference model over all leases of a run.

    ``api_version`` gates clauses and calls (a 6.7 clause on a 6.5 target is
    NA, not FAIL); ``None`` means unknown, so everything applies.
    ``tolerance`` is the expiry window in seconds, or a function of the
    lease's timeout (default :func:`default_tolerance`).
    """

    def __init__(self, api_version: str | None = None,
                 tolerance: float | Callable[[float], float] | None = None,
                 keep_judgements: bool = False) -> None:
        self.api_version = api_version
        if tolerance is None:
            self._tolerance: Callable[[float], float] = default_tolerance
        elif callable(tolerance):
            self._tolerance = tolerance
        else:
            self._tolerance = lambda _t, w=float(tolerance): w
        self.leases: dict[str, LeaseModel] = {}
        self.refs: dict[str, LeaseModel] = {}  # handles from Attach records: foreign or bogus references
        self.timeout_hint: float | None = None  # the leaseTimeout the last ready Read showed
        self.refs_of: dict[str, str] = {}  # foreign reference handle -> the handle of the lease it names
        self.entities: dict[str, EntityModel] = {}
        self.verdicts = ClauseVerdicts(api_version)
        self.keep_judgements = keep_judgements
        self.judgements: list[Judgement] = []

    # the EventStream listener interface
    def __call__(self, event: Event) -> None:
        self.feed(event)

    def feed_all(self, events: Iterable[Event]) -> ClauseVerdicts:
        for event in events:
            self.feed(event)
        return self.verdicts

    def feed(self, event: Event) -> Judgement:
        """Judge one event, update the model, fold the judgement into :attr:`verdicts`."""
        lease = self.leases.get(event.lease) if event.lease else None
        if event.call == ATTACH:
            j = self._attach(event)
            lease = self.refs.get(event.lease or "")
        elif event.lease in self.refs:
            lease = self.refs[event.lease]
            j = self._foreign(lease, event)
        elif event.call == "Acquire":
            j = self._acquire(event)
            lease = self.leases.get(event.lease) if event.lease else None
        elif event.call in T.BLOCKED_OPERATIONS:
            j, lease = self._blocked(event)
        elif event.call == "Sleep":
            j = Judgement(event, note="time passes")
            for held in self.leases.values():
                if held.possible & T.HELD:
                    held.history.append(event)
        elif lease is None:
            j = Judgement(event, note=f"lease {event.lease!r} was never acquired in this history: not judged")
        else:
            j = self._lease_call(lease, event)
        if lease is not None and event.call != "Sleep":
            lease.history.append(event)
            if len(lease.history) > 4 * REPRO_LINES:  # long load runs: keep Acquire and the recent past
                del lease.history[1:-REPRO_LINES]
        j.checks += self._implemented(event)
        if lease is None and event.call == "Acquire":  # a refused Acquire is its own one-line repro
            lease = LeaseModel(event.lease or "-", str(event.args.get("kind")), acquired_at=event.start)
        self.verdicts.record(j, (lambda: self.repro(lease, event, j)) if lease is not None else None)
        if self.keep_judgements:
            self.judgements.append(j)
        return j

    # -------------------------------------------------------------- helpers
    def _check(self, clause_id: str, ok: bool | None, expected: str, observed: str, message: str = "",
               **extra: Any) -> Check:
        """A check on ``clause_id``; ``ok=None`` records it as not judgeable (na)."""
        c = BY_ID[clause_id]
        if not version_at_least(self.api_version, c.since):
            return Check(clause_id, "na", expected, observed,
                         f"applies from vSphere API {c.since}; the target speaks {self.api_version}")
        if ok is None:
            return Check(clause_id, "na", expected, observed, message)
        if ok:
            return Check(clause_id, "pass", expected, observed, "as expected", **extra)
        return Check(clause_id, "fail", expected, observed,
                     message or f"expected {expected}; observed {observed}", **extra)

    def tolerance(self, lease_timeout: float) -> float:
        return self._tolerance(lease_timeout)

    def _timing(self, lease: LeaseModel, event: Event) -> str | None:
        """``alive`` / ``window`` / ``expired`` for a lease that may be ready; None if unknowable."""
        T_ = lease.lease_timeout
        if T_ is None or lease.renew_lo is None:
            return None
        tol = self.tolerance(T_)
        if lease.renew_hi is not None and event.start > lease.renew_hi + T_ + tol:
            return "expired"
        if event.end < lease.renew_lo + T_ - tol:
            return "alive"
        return "window"

    def _timing_text(self, lease: LeaseModel, event: Event, must: str) -> str:
        T_ = lease.lease_timeout or 0.0
        tol = self.tolerance(T_)
        if must == "expired":
            return (f"lease {lease.lease} must have expired: latest possible renewal {lease.t(lease.renew_hi or 0)}, "
                    f"leaseTimeout {T_:g}s, tolerance {tol:g}s, call started {lease.t(event.start)}")
        return (f"lease {lease.lease} must be alive: earliest possible renewal {lease.t(lease.renew_lo or 0)}, "
                f"leaseTimeout {T_:g}s, tolerance {tol:g}s, call ended {lease.t(event.end)}")

    # -------------------------------------------------------------- Acquire
    def _acquire(self, event: Event) -> Judgement:
        kind = event.args.get("kind")
        since = ACQUIRE_SINCE.get(str(kind), "4.0")
        if not version_at_least(self.api_version, since):
            return Judgement(event, note=f"{kind} leases exist from vSphere API {since}: not judged")
        if event.outcome != "ok" or not event.lease:
            return Judgement(event, note="no lease handed out: nothing to judge")
        lease = LeaseModel(event.lease, kind, acquired_at=event.start, last_end=event.end)
        lease.renew_lo = event.start
        value = event.value if isinstance(event.value, Mapping) else {}
        for entity in (value.get("entity"), event.args.get("entity") if kind != "import" else None):
            if entity:
                lease.entities.add(str(entity))
        disks, files = _count(event.args.get("disks")), _count(event.args.get("files"))
        if disks is not None:
            lease.expected_devices = disks + (files or 0)
        self.leases[event.lease] = lease
        return Judgement(event, after=tuple(sorted(lease.possible)), note=f"lease {event.lease} acquired ({kind})")

    def _implemented(self, event: Event) -> list[Check]:
        """``api.implemented``: a call the advertised API version has must not be MethodNotFound."""
        if event.call == "Acquire":
            kind = str(event.args.get("kind"))
            since, what = ACQUIRE_SINCE.get(kind), ACQUIRE_METHOD.get(kind, kind)
        elif event.call in LEASE_METHODS:
            since, what = method_since(event.call), f"HttpNfcLease{LEASE_METHODS[event.call]}"
        else:
            return []
        if since is None or not version_at_least(self.api_version, since) or event.outcome == "info":
            return []
        fault = event.fault or ""
        if event.outcome == "fail" and not fault.startswith(("vim.", "vmodl.")):
            return []  # lost in transport, or refused by the client: says nothing about the method
        missing = event.outcome == "fail" and any(is_a(fault, u) for u in UNIMPLEMENTED)
        return [self._check("api.implemented", not missing, f"{what} implemented (API {since})", fault or "ok",
                            f"{what} answered {fault} although it exists from vSphere API {since} and the "
                            f"target speaks {self.api_version}")]

    # ------------------------------------------------- foreign references
    def _attach(self, event: Event) -> Judgement:
        """An ``Attach`` record: the handle names a reference that is no lease of this session."""
        kind = str(event.args.get("kind"))
        if kind not in FOREIGN_KINDS or not event.lease:
            return Judgement(event, note=f"Attach of kind {kind!r}: not judged (known: {', '.join(FOREIGN_KINDS)})")
        ref = LeaseModel(event.lease, kind, acquired_at=event.start, last_end=event.end)
        ref.possible = set()
        self.refs[event.lease] = ref
        of = event.args.get("of")
        if of:
            self.refs_of[event.lease] = str(of)
        return Judgement(event, note=f"{event.lease} is a {kind} reference" + (f" to {of}'s lease" if of else ""))

    def _foreign(self, ref: LeaseModel, event: Event) -> Judgement:
        """A call through a foreign/bogus reference: ManagedObjectNotFound, and nothing happens."""
        obs = T.observed(event.call, event.outcome, event.value, event.fault)
        j = Judgement(event)
        what = f"{event.call} through a {ref.kind} reference"
        if ref.kind == "foreign" and event.call in ("Read", "WaitReady"):
            # whether another session's property collector shows the lease is not specified:
            # reported, not judged (its methods must still be refused)
            j.checks.append(self._check("ref.foreign", True, "observe", str(obs),
                                        observation=f"{event.call}@foreign -> {obs}"))
        elif obs.kind == "unknown":
            j.checks.append(self._check("ref.foreign", None, "ManagedObjectNotFound", str(obs),
                                        "outcome unknown (no reply): not judged"))
        else:
            ok = obs.kind == "fault" and is_a(obs.fault or "", T.NOT_FOUND)
            j.checks.append(self._check("ref.foreign", ok, "ManagedObjectNotFound", str(obs),
                                        f"{what}: expected ManagedObjectNotFound; observed {obs}"))
        owner = self.leases.get(str(self.refs_of.get(ref.lease))) if ref.lease in self.refs_of else None
        if owner is not None and obs.kind != "fault":
            # the server may have acted on the owner's lease: widen what it may be, so one
            # deviation does not turn into false verdicts on the owner's later calls
            if event.call in ("Complete", "Abort") and owner.possible & T.HELD:
                owner.possible |= {T.DONE if event.call == "Complete" else T.ERROR}
            if event.call in T.MAY_RENEW:
                owner.renew_hi = max(owner.renew_hi if owner.renew_hi is not None else event.end, event.end)
        return j

    # ---------------------------------------------------------- lease calls
    def _lease_call(self, lease: LeaseModel, event: Event) -> Judgement:
        case = T.case_of(event.call, event.args, kind=lease.kind, device_keys=lease.device_keys(),
                         pull_supported=lease.pull_supported)
        if case is None:
            self._note_activity(lease, event, None)
            why = ("device keys unknown (no ready Read yet)" if event.call == "SetManifestChecksumType"
                   else f"{event.call} is not a call the table knows")
            return Judgement(event, note=f"not judged: {why}")
        if event.call in LEASE_METHODS and not version_at_least(self.api_version, method_since(event.call)):
            return Judgement(event, note=f"{event.call} exists from vSphere API {method_since(event.call)}; "
                                         f"the target speaks {self.api_version}: not judged")
        obs = T.observed(event.call, event.outcome, event.value, event.fault)
        j = self._judge(lease, event, case, obs)
        value = event.value if isinstance(event.value, Mapping) else {}
        post = lease.possible
        if obs.kind == "ok":
            if event.call in ("Read", "WaitReady"):
                j.checks += self._read_value(lease, event, value)
            elif event.call == "GetManifest" and post == {T.READY}:
                j.checks += self._manifest(lease, event.value)
            elif event.call in T.TRANSFER_CALLS and case in ("Upload", "Download"):
                j.checks += self._transfer(lease, event, value)
            elif event.call == "TaskInfo":
                j.checks += self._task_info(lease, event, value)
            elif event.call == "SetManifestChecksumType" and case == "SetManifestChecksumType":
                for k, alg in T.checksum_mapping(event.args).items():
                    key = lease.key(k)
                    lease.checksum_requested[key] = (alg, key not in lease.transfer_started)
            elif event.call == "PullFromUrls" and case == "PullFromUrls":
                lease.pulled = True
                for f in event.args.get("files") or ():
                    if isinstance(f, Mapping) and f.get("targetDeviceId") is not None:
                        lease.transfers[lease.key(f["targetDeviceId"])] = Transfer(
                            "pull", _int(f.get("size")), _hex(f.get("sha1")), _hex(f.get("sha256")))
            elif event.call == "Abort" and T.ERROR in post and not (post & T.HELD):
                lease.aborted = True
                lease.abort_fault = T.fault_name(event.args.get("fault"))
        if event.call == "Upload" and case == "Upload:bad":
            lease.transfers.pop(lease.key(event.args.get("device")), None)
        if event.call in LEASE_METHODS and obs.kind == "fault" and obs.fault:
            declared = is_declared(event.call, obs.fault)
            if declared is not None:
                msg_ok = event.outcome != "fail" or bool((event.message or "").strip())
                problem = (f"{obs.fault} is not declared by {event.call} (declared: "
                           f"{', '.join(declared_faults(event.call))}, or a RuntimeFault)" if not declared
                           else f"{obs.fault} carries no message" if not msg_ok else "")
                j.checks.append(self._check("faults.declared", declared and msg_ok,
                                            f"a fault declared by {event.call}, with a message",
                                            obs.fault, problem))
        self._note_activity(lease, event, case, obs)
        return j

    def _judge(self, lease: LeaseModel, event: Event, case: str, obs: Observed) -> Judgement:
        """Judge the outcome against the table rows of every state the lease may be in."""
        possible = set(lease.possible)
        if event.start < lease.last_end:  # overlapping calls: either order is possible
            possible |= lease.prev_possible
        if T.INITIALIZING in possible:  # the server leaves initializing on its own
            possible.add(T.READY)
        timing = self._timing(lease, event) if T.READY in possible else None
        forced = None
        if timing == "expired":
            possible.discard(T.READY)
            possible.add(T.EXPIRED)
            forced = "expired"
        elif timing == "window":
            possible.add(T.EXPIRED)
        elif timing == "alive" and possible == {T.READY}:
            forced = "alive"
        elif timing is None and T.READY in possible and lease.lease_timeout is None and (
                self.timeout_hint is None or event.end >= lease.acquired_at + 0.5 * self.timeout_hint):
            # no ready Read showed this lease's leaseTimeout yet: it may have become ready and
            # expired unseen -- unless it is young compared with the timeouts other leases of
            # the target showed (half of the last one: leases of one server share a timeout)
            possible.add(T.EXPIRED)
        before = tuple(sorted(possible))
        entity = T.CALLS[case].entity
        rows = {s: T.row(s, case, lease.released_as) for s in possible}
        graced = {s for s in possible if not rows[s].expect.accepts(obs) and self._grace(lease, event, s, case)}
        accepted = [s for s in sorted(possible) if rows[s].expect.accepts(obs) or s in graced]
        expected = _describe(rows)
        j = Judgement(event, before=before)

        def nxt(states: Iterable[str]) -> set[str]:
            out: set[str] = set()
            for s in states:
                out |= {s} if entity else set(rows[s].next_states(s, case, obs))
            return out

        if obs.kind == "unknown":
            for c in dict.fromkeys(c for s in possible for c in rows[s].clauses):
                j.checks.append(self._check(c, None, expected, str(obs), "outcome unknown (no reply): not judged"))
            new = nxt(possible)
        elif accepted:
            if not graced:  # a lagging unlock proves nothing either way
                j.checks += self._credit(lease, event, case, obs, rows, accepted, expected)
            if forced == "expired" and not entity and not T.row(T.READY, case).expect.accepts(obs):
                j.checks.append(self._check("timeout.expires", True, "expired", str(obs)))
            if forced == "alive" and not entity and not T.row(T.EXPIRED, case).expect.accepts(obs):
                j.checks += self._alive_checks(lease, event, True, str(obs))
            new = nxt(accepted)
        else:
            ready_row, expired_row = T.row(T.READY, case), T.row(T.EXPIRED, case)
            if forced == "expired" and ready_row.expect.accepts(obs):
                j.checks.append(self._check(
                    "timeout.expires", False, expired_row.expect.describe(), str(obs),
                    f"{self._timing_text(lease, event, 'expired')}; {event.call} expected "
                    f"{expired_row.expect.describe()}, observed {obs}"))
                new = set(ready_row.next_states(T.READY, case, obs)) if not entity else {T.READY}
            elif forced == "alive" and not entity and expired_row.expect.accepts(obs):
                j.checks += self._alive_checks(lease, event, False, str(obs), ready_row.expect.describe())
                new = set(expired_row.next_states(T.EXPIRED, case, obs)) if not entity else {T.EXPIRED}
            else:
                blamed = dict.fromkeys(c for s in sorted(possible) for c in rows[s].blamed(obs))
                if event.call in ("Read", "WaitReady"):
                    blamed.update(dict.fromkeys(lease.via[s] for s in possible if s in lease.via))
                what = f"{event.call} on a lease that is {'/'.join(sorted(possible))}"
                for c in blamed:
                    j.checks.append(self._check(c, False, expected, str(obs),
                                                f"{what}: expected {expected}; observed {obs}"))
                new = self._resync(lease, event, case, obs, rows, possible)
        if not new:
            new = set(possible)
        self._enter(lease, event, case, obs, set(before), new)
        j.after = tuple(sorted(lease.possible))
        return j

    def _credit(self, lease: LeaseModel, event: Event, case: str, obs: Observed, rows: Mapping[str, T.Row],
                accepted: list[str], expected: str) -> list[Check]:
        """Pass checks for the clauses the observation really exercised.

        A clause is credited only when every state still possible names it:
        Complete succeeding on a lease that may be initializing or ready says
        nothing about ``complete.done``. Reads are the exception: what a Read
        shows is consistent with every accepted row's claim.
        """
        sets = [set(rows[s].clauses) for s in accepted]
        if event.call in ("Read", "WaitReady"):
            clause_ids = set().union(*sets)
        else:
            clause_ids = set.intersection(*sets)
        checks = []
        for c in dict.fromkeys(c for s in accepted for c in rows[s].clauses):
            if c not in clause_ids:
                continue
            observing = all(rows[s].expect.observe for s in accepted if c in rows[s].clauses)
            states = "/".join(s for s in accepted if c in rows[s].clauses)
            observation = f"{case}@{states} -> {obs}" if observing else None
            deviation = None
            if (obs.kind == "fault" and obs.fault and not T.CALLS[case].entity
                    and is_a(obs.fault, T.NOT_FOUND) and set(accepted) & {T.DONE, T.ERROR}):
                deviation = DEVIATION_DELETED
            checks.append(self._check(c, True, expected, str(obs), observation=observation, deviation=deviation))
        if event.call in ("Read", "WaitReady"):
            for s in accepted:
                if s in lease.via and len(accepted) == 1:
                    checks.append(self._check(lease.via[s], True, expected, str(obs)))
        return checks

    def _alive_checks(self, lease: LeaseModel, event: Event, ok: bool, observed: str,
                      expected: str = "alive") -> list[Check]:
        tol = self.tolerance(lease.lease_timeout or 0.0)
        # the renewal mattered if, without any, the lease would not surely be alive
        mattered = lease.renewed_by_progress and event.end >= lease.acquired_at + (lease.lease_timeout or 0.0) - tol
        clause_id = "timeout.renewed" if mattered else "timeout.alive"
        msg = "" if ok else f"{self._timing_text(lease, event, 'alive')}; observed {observed}"
        checks = [self._check(clause_id, ok, expected, observed, msg)]
        if mattered and ok:
            checks.append(self._check("timeout.alive", True, expected, observed))
        return checks

    def _grace(self, lease: LeaseModel, event: Event, state: str, case: str) -> bool:
        """After a timeout, unlocking and cleanup may lag by the tolerance window."""
        if state != T.EXPIRED or case.split(":", 1)[0] not in T.BLOCKED_OPERATIONS:
            return False
        if lease.lease_timeout is None:
            return True
        entered = lease.entered_hi
        if entered is None:
            if lease.renew_hi is None:
                return True
            entered = lease.renew_hi + lease.lease_timeout
        return event.start <= entered + self.tolerance(lease.lease_timeout)

    def _resync(self, lease: LeaseModel, event: Event, case: str, obs: Observed, rows: Mapping[str, T.Row],
                possible: set[str]) -> set[str]:
        """After a FAIL, adopt what the target showed, so one bug is reported once."""
        if event.call in ("Read", "WaitReady") and obs.kind == "ok":
            shown = obs.state
            value = event.value if isinstance(event.value, Mapping) else {}
            if shown == "error":
                timed_out = is_a(T.fault_name(value.get("error")) or "", T.TIMEDOUT)
                return {T.EXPIRED} if timed_out and possible & {T.READY, T.EXPIRED} else {T.ERROR}
            back = {"initializing": T.INITIALIZING, "ready": T.READY, "done": T.DONE}
            if shown in back:
                return {back[shown]}
        if T.CALLS[case].entity:
            return set(possible)
        out: set[str] = set()
        for s in possible:
            out |= set(rows[s].next_states(s, case, obs))
        return out

    def _enter(self, lease: LeaseModel, event: Event, case: str, obs: Observed, before: set[str],
               new: set[str]) -> None:
        """Move the lease to ``new`` and keep the bookkeeping of how it got there."""
        was_ready = T.READY in before
        for s in new - before:
            if s == T.DONE:
                lease.via[s] = "complete.done" if before <= {T.READY} else "state.lifecycle"
            elif s == T.ERROR and case == "Abort":
                lease.via[s] = "abort.error"
            elif s == T.EXPIRED:
                lease.via[s] = "timeout.expires"
        if new <= T.RELEASED and not (before <= T.RELEASED):
            released = new - {T.DELETED}
            lease.released_as = next(iter(sorted(released))) if len(released) == 1 else lease.released_as
            if T.EXPIRED in new and lease.renew_hi is not None and lease.lease_timeout is not None:
                lease.entered_hi = min(lease.renew_hi + lease.lease_timeout, event.end)
            else:
                lease.entered_hi = event.end
        if T.DELETED in new and lease.released_as is None:
            lease.released_as = next(iter(sorted(before & {T.DONE, T.ERROR})), T.DONE)
        if new == {T.READY} and not lease.ready_known:
            # first sight of ready: the clock started no later than now
            lease.ready_known = True
            lease.renew_hi = max(lease.renew_hi if lease.renew_hi is not None else event.end, event.end)
        if was_ready and event.call == "Progress" and obs.kind == "ok" and T.READY in new:
            lease.renew_lo = event.start
            lease.renewed_by_progress = True
        lease.prev_possible = set(lease.possible)
        lease.possible = new

    def _note_activity(self, lease: LeaseModel, event: Event, case: str | None, obs: Observed | None = None) -> None:
        """Bookkeeping every call does, whatever its verdict."""
        if event.call in T.MAY_RENEW and lease.possible & {T.READY, T.INITIALIZING, T.EXPIRED}:
            lease.renew_hi = max(lease.renew_hi if lease.renew_hi is not None else event.end, event.end)
        if event.call in T.MOVES_TRANSFER_PROGRESS:
            lease.last_percent = None
        if event.call == "Progress" and obs is not None and obs.kind == "ok":
            if case == "Progress":
                lease.last_percent = event.args.get("percent")
            else:
                lease.last_percent = None
                lease.out_of_range_accepted = True
        if event.call in T.TRANSFER_CALLS and event.args.get("device") is not None:
            lease.transfer_started.add(lease.key(event.args["device"]))
        lease.last_end = max(lease.last_end, event.end)

    # ------------------------------------------------------ value invariants
    def _read_value(self, lease: LeaseModel, event: Event, value: Mapping[str, Any]) -> list[Check]:
        checks: list[Check] = []
        state = value.get("state")
        error = T.fault_name(value.get("error"))
        lease.reads += 1
        checks.append(self._check(
            "state.readable", True, "readable", "ok"))
        checks.append(self._check(
            "state.error-property", (state == "error") == bool(error), "error set iff state is error",
            f"state={state}, error={error}",
            f"state is {state} but error is {'set to ' + error if error else 'unset'}"))
        p = value.get("initializeProgress")
        if p is not None:
            ok = isinstance(p, int) and 0 <= p <= 100 and (lease.init_progress is None or p >= lease.init_progress)
            checks.append(self._check(
                "state.init-progress", ok, f"0..100, >= {lease.init_progress if lease.init_progress is not None else 0}",
                str(p), f"initializeProgress {p} after {lease.init_progress}" if not ok else ""))
            if isinstance(p, int):
                lease.init_progress = max(p, lease.init_progress or p)
        info = value.get("info")
        if state == "ready":
            checks += self._ready_info(lease, event, info)
        elif state is not None:
            shown = "present" if info else "absent"
            checks.append(self._check("state.info-valid", True, "observe", f"info {shown} in {state}",
                                      observation=f"info {shown} in {state}"))
        if len(lease.possible) == 1 and state == "error":
            (now,) = lease.possible
            row = T.row(now, "Read", lease.released_as)
            if row.error_fault:
                checks.append(self._check(
                    row.clauses[0], bool(error) and is_a(error, row.error_fault), row.error_fault, str(error),
                    f"the {now} lease's error property is {error}, expected {row.error_fault}"))
        checks += self._v67_members(lease, value, state)
        return checks

    def _ready_info(self, lease: LeaseModel, event: Event, info: Any) -> list[Check]:
        problems: list[str] = []
        if not isinstance(info, Mapping):
            problems.append("info is missing")
            info = {}
        timeout = info.get("leaseTimeout")
        if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0):
            problems.append(f"leaseTimeout is {timeout!r}, expected > 0")
        else:
            lease.lease_timeout = float(timeout)
            self.timeout_hint = lease.lease_timeout
        if info and not info.get("entity"):
            problems.append("info.entity is missing")
        elif info.get("entity"):
            lease.entities.add(str(info["entity"]))
        urls = info.get("deviceUrl") or []
        if info and (not isinstance(urls, list) or not urls):
            problems.append("info.deviceUrl is empty")
            urls = []
        if lease.expected_devices is not None and urls:
            # an import gets one URL per file of its spec; an export at least one per disk
            # (servers may add non-disk files such as nvram)
            if lease.is_import and len(urls) != lease.expected_devices:
                problems.append(f"{len(urls)} deviceUrl entries for {lease.expected_devices} disks/files")
            elif not lease.is_import and len(urls) < lease.expected_devices:
                problems.append(f"{len(urls)} deviceUrl entries for {lease.expected_devices} disks")
        seen = set()
        for i, d in enumerate(urls):
            d = d if isinstance(d, Mapping) else {}
            key = d.get("key")
            if not key or not d.get("url"):
                problems.append(f"deviceUrl[{i}] lacks key or url")
                continue
            if key in seen:
                problems.append(f"deviceUrl key {key!r} appears twice")
            seen.add(key)
            if lease.is_import and not d.get("importKey"):
                problems.append(f"deviceUrl[{i}] ({key}) of an import lease lacks importKey")
            lease.keys[str(key)] = str(key)
            if d.get("importKey"):
                lease.keys[str(d["importKey"])] = str(key)
            lease.devices[str(key)] = dict(d)
        lease.info_seen = True
        return [self._check("state.ready-info", not problems, "info with entity, leaseTimeout > 0, one deviceUrl per file",
                            "; ".join(problems) or "complete", "; ".join(problems))]

    def _v67_members(self, lease: LeaseModel, value: Mapping[str, Any], state: Any) -> list[Check]:
        checks: list[Check] = []
        has_67 = any(k in value for k in ("capabilities", "mode", "transferProgress"))
        if not has_67 and self.api_version is None:
            return [self._check("pull.capabilities", None, "capabilities and mode", "absent",
                                "the Read value has no 6.7 members and the API version is unknown")]
        caps = value.get("capabilities")
        mode = value.get("mode")
        problems = []
        if not isinstance(caps, Mapping):
            problems.append(f"capabilities is {caps!r}")
        else:
            for k in ("pullModeSupported", "corsSupported"):
                if not isinstance(caps.get(k), bool):
                    problems.append(f"capabilities.{k} is {caps.get(k)!r}")
            if isinstance(caps.get("pullModeSupported"), bool):
                lease.pull_supported = caps["pullModeSupported"]
        if mode not in ("pushOrGet", "pull"):
            problems.append(f"mode is {mode!r}, expected pushOrGet or pull")
        checks.append(self._check("pull.capabilities", not problems, "capabilities with booleans; mode pushOrGet|pull",
                                  "; ".join(problems) or f"mode={mode}", "; ".join(problems)))
        if lease.pulled and state == "ready":
            checks.append(self._check("pull.mode", mode == "pull", "pull", str(mode),
                                      f"mode is {mode!r} after a successful PullFromUrls"))
        tp = value.get("transferProgress")
        if lease.out_of_range_accepted:
            checks.append(self._check("progress.transfer-range", None, "0..100", str(tp),
                                      "the target accepted an out-of-range Progress earlier"))
        else:
            ok = isinstance(tp, int) and not isinstance(tp, bool) and 0 <= tp <= 100
            checks.append(self._check("progress.transfer-range", ok, "0..100", str(tp),
                                      f"transferProgress is {tp!r}"))
        if lease.last_percent is not None and state == "ready":
            checks.append(self._check("progress.transfer-progress", tp == lease.last_percent,
                                      str(lease.last_percent), str(tp),
                                      f"transferProgress is {tp!r} after Progress({lease.last_percent})"))
        return checks

    def _manifest(self, lease: LeaseModel, value: Any) -> list[Check]:
        entries = value if isinstance(value, list) else []
        problems: list[str] = []
        keys: list[str] = []
        for e in entries:
            if not isinstance(e, Mapping) or e.get("key") is None:
                problems.append(f"entry without a key: {e!r}")
                continue
            keys.append(str(e["key"]))
            lease.manifest[str(e["key"])] = dict(e)
        lease.manifest_covers = {k for k in keys if k in lease.transfers}
        dupes = sorted(k for k, n in Counter(keys).items() if n > 1)
        if dupes:
            problems.append(f"keys appear more than once: {', '.join(dupes)}")
        device_keys = set(lease.devices)
        if device_keys:
            unknown = sorted(set(keys) - device_keys)
            if unknown:
                problems.append(f"entries for keys that are no deviceUrl key: {', '.join(unknown)}")
            missing = sorted(device_keys - set(keys))
            if missing and not lease.is_import:
                problems.append(f"no entry for deviceUrl keys: {', '.join(missing)}")
        pull_problems: list[str] = []
        for key, tr in lease.transfers.items():
            entry = lease.manifest.get(key) if key in keys else None
            if entry is None:
                continue
            bad = []
            if tr.size is not None and _int(entry.get("size")) != tr.size:
                bad.append(f"size {entry.get('size')!r}, transferred {tr.size}")
            if tr.sha1 is not None and _hex(entry.get("sha1")) != tr.sha1:
                bad.append(f"sha1 {entry.get('sha1')!r}, transferred {tr.sha1}")
            if bad:
                (pull_problems if tr.source == "pull" else problems).append(f"{key}: " + ", ".join(bad))
        checks = [self._check("manifest.entries", not problems, "one entry per key, size/sha1 of the bytes transferred",
                              "; ".join(problems) or f"{len(keys)} entries", "; ".join(problems))]
        if any(tr.source == "pull" for tr in lease.transfers.values()):
            checks.append(self._check("pull.transfer", not pull_problems, "manifest matches the pulled sources",
                                      "; ".join(pull_problems) or "matches", "; ".join(pull_problems)))
        for key, (alg, before) in lease.checksum_requested.items():
            entry = lease.manifest.get(key) if key in keys else None
            if alg != "sha256" or entry is None:
                continue
            if not before:
                checks.append(self._check("checksum.type", None, "sha256", str(entry.get("checksumType")),
                                          f"sha256 for {key} was requested after its transfer started"))
                continue
            got = _hex(entry.get("checksum"))
            tr = lease.transfers.get(key)
            want = tr.sha256 if tr is not None else None
            problems = []
            if entry.get("checksumType") != "sha256":
                problems.append(f"checksumType is {entry.get('checksumType')!r}")
            if want is not None and got != want:
                problems.append(f"checksum {got!r}, sha256 of the bytes transferred is {want}")
            elif tr is not None and (got is None or len(got) != 64):  # nothing transferred: no digest due
                problems.append(f"checksum {entry.get('checksum')!r} is no sha256 digest")
            checks.append(self._check("checksum.type", not problems, "checksumType sha256 with the right digest",
                                      "; ".join(problems) or "sha256", f"{key}: " + "; ".join(problems)))
        return checks

    def _transfer(self, lease: LeaseModel, event: Event, value: Mapping[str, Any]) -> list[Check]:
        checks: list[Check] = []
        device = event.args.get("device")
        if device is None:
            return checks
        key = lease.key(device)
        tr = Transfer("upload" if event.call == "Upload" else "download", _int(value.get("bytes")),
                      _hex(value.get("sha1")), _hex(value.get("sha256")))
        lease.transfers[key] = tr
        if event.call == "Download" and key in lease.manifest and key in lease.manifest_covers:
            # only a manifest read after an earlier download of this key describes the stream
            entry = lease.manifest[key]
            bad = []
            if tr.size is not None and _int(entry.get("size")) not in (None, tr.size):
                bad.append(f"served {tr.size} bytes, manifest size {entry.get('size')}")
            if tr.sha1 is not None and _hex(entry.get("sha1")) not in (None, tr.sha1):
                bad.append(f"served sha1 {tr.sha1}, manifest sha1 {entry.get('sha1')}")
            checks.append(self._check("transfer.download", not bad, "stream matches the manifest entry",
                                      "; ".join(bad) or "matches", f"{key}: " + "; ".join(bad)))
        served = _thumb(value.get("thumbprint"))
        wanted = _thumb(lease.devices.get(key, {}).get("sslThumbprint"))
        if served and wanted:
            checks.append(self._check("transfer.thumbprint", served == wanted, wanted, served,
                                      f"{key}: served certificate {served}, deviceUrl says {wanted}"))
        return checks

    def _task_info(self, lease: LeaseModel, event: Event, value: Mapping[str, Any]) -> list[Check]:
        checks: list[Check] = []
        state = value.get("state")
        terminal = state if state in ("success", "error") else None
        if lease.task_terminal and state != lease.task_terminal:
            clause_id = {"success": "complete.done", "error": "abort.error"}[lease.task_terminal]
            if lease.possible & {T.EXPIRED}:
                clause_id = "timeout.task"
            checks.append(self._check(clause_id, False, lease.task_terminal, str(state),
                                      f"the task went from {lease.task_terminal} to {state}"))
        if terminal:
            lease.task_terminal = terminal
        if state == "error" and lease.aborted and lease.abort_fault:
            got = T.fault_name(value.get("error"))
            checks.append(self._check("abort.fault-reported", bool(got) and is_a(got, lease.abort_fault),
                                      lease.abort_fault, str(got),
                                      f"Abort({lease.abort_fault}) but the task's error is {got}"))
        if "entityExists" in value and lease.is_import:
            states = {lease.released_as if s == T.DELETED else s for s in lease.possible}
            lagging = T.EXPIRED in states and self._grace(lease, event, T.EXPIRED, "PowerOn:import")
            if states and states <= {T.ERROR, T.EXPIRED} and not lagging:
                checks.append(self._check("import.cleanup", value["entityExists"] is False, "entity removed",
                                          f"entityExists={value['entityExists']}",
                                          "the import lease is in error but its entity still exists"))
        return checks

    # --------------------------------------------------- blocked operations
    def _blocked(self, event: Event) -> tuple[Judgement, LeaseModel | None]:
        vm = str(event.args.get("vm"))
        entity = self.entities.setdefault(vm, EntityModel())
        if event.lease and event.lease in self.leases:
            covering = [self.leases[event.lease]]
        else:
            covering = [lease for lease in self.leases.values() if vm in lease.entities]
        obs = T.observed(event.call, event.outcome, event.value, event.fault)
        lease = next((l for l in covering if l.possible & T.HELD), covering[-1] if covering else None)
        if entity.destroyed:
            j = Judgement(event, note=f"{vm} was destroyed earlier in this run: not judged")
        elif lease is None:
            j = Judgement(event, note=f"no lease of this run covers {vm}: not judged")
        elif obs.kind == "fault" and entity.powered_on and is_a(obs.fault or "", "vim.fault.InvalidPowerState"):
            j = Judgement(event, note=f"{vm} was powered on earlier in this run: not judged")
        else:
            case = T.case_of(event.call, event.args, kind=lease.kind, device_keys=None, pull_supported=None)
            assert case is not None
            j = self._judge(lease, event, case, obs)
            lease.last_end = max(lease.last_end, event.end)
        if obs.kind == "ok":
            if event.call == "PowerOn":
                entity.powered_on = True
            elif event.call == "Destroy":
                entity.destroyed = True
        return j, lease

    # --------------------------------------------------------------- repro
    def repro(self, lease: LeaseModel, failing: Event, judgement: Judgement) -> str:
        """The lease's calls up to the failure, as a program a human can replay."""
        events = lease.history + ([failing] if not lease.history or lease.history[-1] is not failing else [])
        if len(events) > REPRO_LINES:
            events = events[:1] + events[-(REPRO_LINES - 1):]
        lines = [f"# lease {lease.lease} ({lease.kind}); t = seconds since Acquire started"]
        for e in events:
            line = _call_text(e)
            note = f"{e.outcome}" + (f" {e.fault}" if e.fault else "") + _value_hint(e)
            text = f"{line:<60} # t={lease.t(e.start)} -> {note}"
            if e is failing:
                text += "   <-- " + "; ".join(f"FAIL {c.clause}: expected {c.expected}" for c in judgement.failures)
            lines.append(text)
        return "\n".join(lines)


# ------------------------------------------------------------------ helpers
def _describe(rows: Mapping[str, T.Row]) -> str:
    texts = {s: r.expect.describe() for s, r in sorted(rows.items())}
    if len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "; ".join(f"{s}: {t}" for s, t in texts.items())


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)):
        return len(value)
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _hex(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    v = value.replace(":", "").strip().lower()
    return v if _HEX.match(v) else value


def _thumb(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value.replace(":", "").strip().upper()


def _call_text(e: Event) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in sorted(e.args.items()))
    if e.call in ("Acquire", ATTACH):
        return f"{e.lease} = {e.call}({args})"
    if e.call == "Sleep" or not e.lease:
        return f"{e.call}({args})"
    return f"{e.lease}.{e.call}({args})"


def _value_hint(e: Event) -> str:
    v = e.value
    if isinstance(v, Mapping):
        bits = [f"{k}={v[k]}" for k in ("state", "status", "error") if v.get(k) is not None]
        return (" " + " ".join(bits)) if bits else ""
    return ""
