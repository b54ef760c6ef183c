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
``ref.foreign`` alone.

The model is split by job: this module routes each event and keeps the
records (:mod:`nfclease.conformance.state`); :mod:`nfclease.conformance.judging` judges calls
against the table (the state x call rules live in ``table.py``);
:mod:`nfclease.conformance.checks` holds the value invariants (Read values, manifests,
transfers, tasks); :mod:`nfclease.conformance.verdicts` the verdict types and
:class:`~nfclease.conformance.verdicts.ClauseVerdicts`, which folds judgements into one
verdict per clause.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from nfclease.conformance import table as T
from nfclease.conformance.checks import ValueChecks, count_of, hex_of, int_of
from nfclease.conformance.clauses import BY_ID
from nfclease.conformance.judging import TableJudging
from nfclease.conformance.observables import findings as observable_findings
from nfclease.conformance.state import EntityModel, LeaseModel, Transfer
from nfclease.conformance.verdicts import Check, ClauseVerdicts, Judgement
from nfclease.conformance.vmodl import (
    LEASE_METHODS,
    declared_faults,
    is_a,
    is_declared,
    method_since,
    version_at_least,
)
from nfclease.events import Event
from nfclease import vocabulary as V

ACQUIRE_SINCE = {"import": "4.0", "export-vm": "4.0", "export-vapp": "4.0", "export-snapshot": "5.5"}
ACQUIRE_METHOD = {"import": "ImportVApp", "export-vm": "ExportVm", "export-vapp": "ExportVApp",
                  "export-snapshot": "ExportSnapshot"}
#: Faults that say "this server does not have that method" (``api.implemented``).
UNIMPLEMENTED = ("vmodl.fault.MethodNotFound", "vmodl.fault.NotImplemented")
REPRO_LINES = 40
FOREIGN_KINDS = ("foreign", "bogus")


def default_tolerance(lease_timeout: float) -> float:
    """The expiry tolerance window: 10% of the timeout, at least half a second.

    Wide enough that a loaded 2-core CI machine or a server that sweeps
    expired leases periodically does not produce a false verdict; narrow
    enough that a lease living twice its timeout is caught.
    """
    return max(0.5, 0.1 * lease_timeout)


# --------------------------------------------------------------------- model


class Model(TableJudging, ValueChecks):
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
        if event.call == V.ATTACH:
            j = self._attach(event)
            lease = self.refs.get(event.lease or "")
        elif event.lease in self.refs:
            lease = self.refs[event.lease]
            j = self._foreign(lease, event)
        elif event.call == V.ACQUIRE:
            j = self._acquire(event)
            lease = self.leases.get(event.lease) if event.lease else None
        elif event.call in T.BLOCKED_OPERATIONS:
            j, lease = self._blocked(event)
        elif event.call == V.SLEEP:
            j = Judgement(event, note="time passes")
            for held in self.leases.values():
                if held.possible & T.HELD:
                    held.history.append(event)
        elif lease is None:
            j = Judgement(event, note=f"lease {event.lease!r} was never acquired in this history: not judged")
        else:
            j = self._lease_call(lease, event)
        if lease is not None and event.call != V.SLEEP:
            lease.history.append(event)
            if len(lease.history) > 4 * REPRO_LINES:  # long load runs: keep Acquire and the recent past
                del lease.history[1:-REPRO_LINES]
        j.checks += self._implemented(event)
        if lease is None and event.call == V.ACQUIRE:  # a refused Acquire is its own one-line repro
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
        disks, files = count_of(event.args.get("disks")), count_of(event.args.get("files"))
        if disks is not None:
            lease.expected_devices = disks + (files or 0)
        self.leases[event.lease] = lease
        return Judgement(event, after=tuple(sorted(lease.possible)), note=f"lease {event.lease} acquired ({kind})")

    def _implemented(self, event: Event) -> list[Check]:
        """``api.implemented``: a call the advertised API version has must not be MethodNotFound."""
        if event.call == V.ACQUIRE:
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
        if ref.kind == "foreign" and event.call in (V.READ, V.WAIT_READY):
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
            if event.call in (V.COMPLETE, V.ABORT) and owner.possible & T.HELD:
                owner.possible |= {T.DONE if event.call == V.COMPLETE else T.ERROR}
            if event.call in T.MAY_RENEW:
                owner.renew_hi = max(owner.renew_hi if owner.renew_hi is not None else event.end, event.end)
        return j

    # ---------------------------------------------------------- lease calls
    def _lease_call(self, lease: LeaseModel, event: Event) -> Judgement:
        case = T.case_of(event.call, event.args, kind=lease.kind, device_keys=lease.device_keys(),
                         pull_supported=lease.pull_supported)
        if case is None:
            self._note_activity(lease, event, None)
            why = ("device keys unknown (no ready Read yet)" if event.call == V.SET_MANIFEST_CHECKSUM_TYPE
                   else f"{event.call} is not a call the table knows")
            return Judgement(event, note=f"not judged: {why}")
        if event.call in LEASE_METHODS and not version_at_least(self.api_version, method_since(event.call)):
            return Judgement(event, note=f"{event.call} exists from vSphere API {method_since(event.call)}; "
                                         f"the target speaks {self.api_version}: not judged")
        obs = T.observed(event.call, event.outcome, event.value, event.fault)
        j = self._judge(lease, event, case, obs)
        j.checks += [self._check(*f) for f in observable_findings(event, case, obs, j.before, kind=lease.kind,
                                                                     pull_supported=lease.pull_supported,
                                                                     devices=lease.devices)]
        value = event.value if isinstance(event.value, Mapping) else {}
        post = lease.possible
        if obs.kind == "ok":
            if event.call in (V.READ, V.WAIT_READY):
                j.checks += self._read_value(lease, event, value)
            elif event.call == V.GET_MANIFEST and post == {T.READY}:
                j.checks += self._manifest(lease, event.value)
            elif event.call in T.TRANSFER_CALLS and case in (V.UPLOAD, V.DOWNLOAD):
                j.checks += self._transfer(lease, event, value)
            elif event.call == V.TASK_INFO:
                j.checks += self._task_info(lease, event, value)
            elif event.call == V.SET_MANIFEST_CHECKSUM_TYPE and case == V.SET_MANIFEST_CHECKSUM_TYPE:
                for k, alg in T.checksum_mapping(event.args).items():
                    key = lease.key(k)
                    lease.checksum_requested[key] = (alg, key not in lease.transfer_started)
            elif event.call == V.PULL_FROM_URLS and case == V.PULL_FROM_URLS:
                lease.pulled = True
                for f in event.args.get("files") or ():
                    if isinstance(f, Mapping) and f.get("targetDeviceId") is not None:
                        lease.transfers[lease.key(f["targetDeviceId"])] = Transfer(
                            "pull", int_of(f.get("size")), hex_of(f.get("sha1")), hex_of(f.get("sha256")))
            elif event.call == V.ABORT and T.ERROR in post and not (post & T.HELD):
                lease.aborted = True
                lease.abort_fault = T.fault_name(event.args.get("fault"))
        if event.call == V.UPLOAD and case == "Upload:bad":
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
            if event.call == V.POWER_ON:
                entity.powered_on = True
            elif event.call == V.DESTROY:
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


def _call_text(e: Event) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in sorted(e.args.items()))
    if e.call in (V.ACQUIRE, V.ATTACH):
        return f"{e.lease} = {e.call}({args})"
    if e.call == V.SLEEP or not e.lease:
        return f"{e.call}({args})"
    return f"{e.lease}.{e.call}({args})"


def _value_hint(e: Event) -> str:
    v = e.value
    if isinstance(v, Mapping):
        bits = [f"{k}={v[k]}" for k in ("state", "status", "error") if v.get(k) is not None]
        return (" " + " ".join(bits)) if bits else ""
    return ""
