"""The Hypothesis state machine and the direct per-clause sequences, against a live target.

Theory of operation
===================

Everything the suite does to a target goes through :class:`nfclease.session.LeaseSession`
(rule 3 of DEVELOPERS.md), so every call is one :class:`nfclease.events.Event` on
the run's :class:`~nfclease.events.EventStream`. A :class:`RunContext` owns that
stream and subscribes to it, in this order: the reference model
(:class:`conformance.model.Model`, which judges each event against the transition
table) and the history writer (``history.jsonl``, which ``nfclease check-history``
replays offline to the same verdicts). The first record of a history is a
``Target`` record carrying ``about`` (so a replay learns the API version).

:class:`LeaseMachine` is a ``RuleBasedStateMachine`` whose rules are the lease
calls of the vocabulary, named after them (``acquire_import``, ``progress``,
``complete``, ``pull_from_urls``, ``power_on``, ``sleep``...), over several
leases at once (the ``leases`` bundle). After each rule the judgements of the
events it caused are inspected; a FAIL raises ``AssertionError`` naming the
clause, what was expected and what was observed, and the lease's history as a
program. Hypothesis then shrinks the run and prints the shortest sequence of
rules as a replayable program (``state = LeaseMachine()``, ``leases_0 =
state.acquire_export(kind='export-vm')``, ``state.complete(lease=leases_0)``...).
In collecting mode (``RunContext(raise_on_fail=False)``, what ``nfclease
conform`` uses) nothing is raised: the model's per-clause verdicts, each FAIL
with its lease's history as repro, are the result.

Preconditions read model state only (and the run's static facts: the API
version, whether waiting for expiry is allowed, the sleep budget), never the
target. The ``lease_properties`` invariant reads back the lease the last rule
changed, so the value invariants (state.error-property, state.ready-info,
progress.transfer-progress...) are checked after every state-changing step.
Teardown aborts every lease the model says may still be held; the Target's
``close`` removes imported entities and snapshots at the end of the run.

References that are not the run's leases
----------------------------------------

* **stale**: a fresh reference object (``Target.lease_ref(moid)``) to a lease of
  the run, recorded under the *same* handle -- to the model it is that lease,
  and its state decides the expected outcome (InvalidState, Timedout, ...).
* **foreign** (another session's reference to a lease of the run) and **bogus**
  (a moid never handed out): introduced by an ``Attach`` record, emitted by
  :func:`attach_reference` before the first call::

      Event(call="Attach", lease="L9", args={"kind": "foreign", "of": "L3"},
            outcome="ok", value={"moid": "session[...]..."})

  ``Attach`` is bookkeeping, not a call on the target (like ``Target``). The
  model judges every later call on that handle under ``ref.foreign``: expected
  ``vmodl.fault.ManagedObjectNotFound`` (lease references are session scoped);
  if a foreign Complete/Abort is *accepted*, the model widens what the owning
  lease may be so one deviation is reported once.

Time
----

Waiting for expiry (the ``sleep`` rule and the ``expiry`` sequence) is done
on the simulator (started with a short lease timeout) and, on other targets,
only with ``allow_expiry``; sleeps are rationed by a per-run budget. The model
judges expiry from the events' monotonic times with a tolerance window, so a
verdict never depends on machine load.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import itertools
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from conformance import table as T
from conformance.expiry import ExpiryDecision, ExpiryPolicy
from conformance.model import ATTACH, Judgement, LeaseModel, Model
from conformance.vmodl import version_at_least
from nfclease import session as S
from nfclease.events import Event, EventStream, HistoryWriter
from nfclease.target import Target
from strategies import (
    BOGUS_KEY,
    abort_faults,
    checksum_mappings,
    disk_counts,
    foreign_calls,
    percents,
    pull_variants,
    resolve_mapping,
    sleep_fractions,
    upload_variants,
)

DISK_CAPACITY = 64 * 1024  # small disks: the machine is about the protocol, not throughput
FILE_SIZE = 4096
WAIT_READY = 10.0
EXPORT_KINDS = ("export-vm", "export-vapp", "export-snapshot")
MAX_HELD = 3  # leases the model says may be held, per example: several at once, not dozens
TARGET_RECORD = "Target"


# ---------------------------------------------------------------- profiles
@dataclass(frozen=True)
class Profile:
    """How much a run explores: steps (at least), Hypothesis examples, the sleep budget."""

    name: str
    steps: int  # at least this many machine steps in total (several Hypothesis runs if needed)
    step_count: int  # stateful_step_count: steps per example
    batch: int  # examples per Hypothesis run (the wall-clock bound is checked between runs)
    sleep_budget: float  # seconds the sleep rule may spend in a run
    seconds: float  # wall-clock bound of the machine part of a run
    expiry_budget: float = 30.0  # seconds a run may wait for leases to expire (conformance/expiry.py)

    def settings(self, max_examples: int | None = None, *, shrink: bool = False,
                 step_count: int | None = None) -> settings:
        phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
        return settings(max_examples=max_examples or self.batch, stateful_step_count=step_count or self.step_count,
                        deadline=None, database=None, phases=phases, print_blob=shrink,
                        suppress_health_check=list(HealthCheck), report_multiple_bugs=False)


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", steps=150, step_count=15, batch=10, sleep_budget=3.0, seconds=20.0, expiry_budget=10.0),
    "ci": Profile("ci", steps=3000, step_count=30, batch=20, sleep_budget=3.0, seconds=45.0, expiry_budget=30.0),
    "thorough": Profile("thorough", steps=30000, step_count=50, batch=50, sleep_budget=120.0, seconds=1800.0,
                        expiry_budget=900.0),
}


# ------------------------------------------------------------ pull sources
class SourceServer:
    """A loopback HTTP server serving what PullFromUrls should fetch (bounded, in memory)."""

    def __init__(self) -> None:
        files: dict[str, bytes] = {}
        self.files = files

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, head_only: bool) -> None:
                data = files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head_only:
                    self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._send(False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._send(True)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="nfclease-pull-sources", daemon=True)
        self._thread.start()
        with socket.socket() as probe:  # a loopback port nobody listens on
            probe.bind(("127.0.0.1", 0))
            self.dead_port = probe.getsockname()[1]
        self._names = itertools.count(1)

    def add(self, data: bytes, suffix: str = "") -> str:
        path = f"/src/{next(self._names)}{suffix}"
        self.files[path] = data
        if len(self.files) > 64:  # bounded: old sources are long pulled
            for old in list(self.files)[:-64]:
                del self.files[old]
        return f"http://127.0.0.1:{self.port}{path}"

    def dead_url(self, suffix: str = "") -> str:
        return f"http://127.0.0.1:{self.dead_port}/unreachable{suffix}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _vmdk_bytes(seed: str) -> bytes:
    from nfclease.vmdk import ContentPattern, StreamOptimizedDisk

    return b"".join(StreamOptimizedDisk(DISK_CAPACITY, ContentPattern("random", seed)))


# ------------------------------------------------------------- the context
@dataclass
class LeaseRef:
    """A lease of the run, as the machine's bundle holds it."""

    handle: str
    session: S.LeaseSession | None  # None: the acquisition was skipped or refused
    kind: str
    covered: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<{self.handle} {self.kind}>" if self.session is not None else f"<no {self.kind} lease>"


class RunContext:
    """One run against one target: event stream, model, history, and what rules share.

    ``raise_on_fail``: rules raise AssertionError on a FAIL judgement (pytest);
    otherwise verdicts are only collected (``nfclease conform``). ``no_raise``
    names clauses whose FAILs are expected (an expectations file) and never raise.
    Expiry: ``allow_expiry`` True waits out any leaseTimeout, False none, None
    (default) decides from the advertised leaseTimeout and ``expiry_budget``
    (seconds; see ``conformance/expiry.py``), whatever the kind of target.
    """

    def __init__(self, target: Target, *, history: str | Path | None = None, model: Model | None = None,
                 allow_expiry: bool | None = None, sleep_budget: float = 6.0, raise_on_fail: bool = False,
                 no_raise: Iterable[str] = (), tolerance: float | None = None,
                 expiry_budget: float = 30.0, expiry_budget_source: str = "this run's",
                 kind: str | None = None) -> None:
        self.target = target
        self.api_version = target.api_version
        self.model = model or Model(api_version=self.api_version, tolerance=tolerance)
        self.extra_models: list[Model] = []
        self.stream = EventStream()
        self.stream.subscribe(self._judge)
        self.history: HistoryWriter | None = HistoryWriter(history) if history else None
        if self.history is not None:
            self.stream.subscribe(self.history)
        self.pending: list[tuple[Event, Judgement]] = []
        self.kind = kind or target.spec.kind  # "sim" for a simulator in a child process reached by URL
        self.expiry = ExpiryPolicy(expiry_budget, forced=allow_expiry, budget_source=expiry_budget_source)
        self.sleep_left = float(sleep_budget)
        self.raise_on_fail = raise_on_fail
        self.no_raise = set(no_raise)
        self.steps = 0
        self.covered: dict[str, tuple[str, ...]] = {}  # handle -> VM moids the lease covers
        self.acquire_failures: dict[str, str] = {}  # kind -> the fault the last failed Acquire raised
        self.notes: list[str] = []
        self.no_task = False  # the target showed no import/export task for a lease
        self._sources: SourceServer | None = None
        self._other_si: Any = None
        self._exports: dict[str, list[Any]] | None = None
        self._bogus = itertools.count(1)
        self.machine: type[LeaseMachine] | None = None  # bound by run_machine
        self.tests: dict[tuple[Any, ...], Callable[[], None]] = {}
        now = time.monotonic()
        self.stream.emit(Event(call=TARGET_RECORD, lease=None, args={}, outcome="ok",
                               value={**target.run_info(), "api_type": target.about.api_type},
                               start=now, end=now))

    # -- events ---------------------------------------------------------------
    def _judge(self, event: Event) -> None:
        if event.call == "TaskInfo" and event.fault == "client.NoTask":
            self.no_task = True
        judgement = self.model.feed(event)
        for extra in self.extra_models:
            extra.feed(event)
        self.pending.append((event, judgement))

    def take_pending(self) -> list[tuple[Event, Judgement]]:
        pending, self.pending = self.pending, []
        return pending

    # -- facts rules may read -------------------------------------------------
    def api_at_least(self, version: str) -> bool:
        return version_at_least(self.api_version, version)

    @property
    def owns_inventory(self) -> bool:
        """sim and vcsim are ours to power on and relocate; a real target's VMs are not."""
        return self.kind in ("sim", "vcsim")

    def lease_model(self, handle: str) -> LeaseModel | None:
        return self.model.leases.get(handle)

    def held_vms(self) -> set[str]:
        """VMs covered by leases the model says may still be held."""
        busy: set[str] = set()
        for handle, vms in self.covered.items():
            lm = self.lease_model(handle)
            if lm is None or lm.possible & T.HELD:
                busy.update(vms)
        return busy

    def known_timeout(self) -> float | None:
        """The leaseTimeout the most recent ready Read showed."""
        return self.model.timeout_hint

    @property
    def allow_expiry(self) -> bool:
        """Static for the run (rule preconditions read it): may any expiry be waited for?"""
        return self.expiry.may_wait

    def expiry_decision(self) -> ExpiryDecision:
        """Whether the expiry checks fit, from the leaseTimeout the target advertised."""
        return self.expiry.decide(self.known_timeout(), self.model.tolerance)

    def can_sleep(self) -> bool:
        return self.allow_expiry and self.sleep_left > 0.05 and self.expiry_decision().run

    def surely_alive(self, lm: LeaseModel | None, margin: float = 0.5) -> bool:
        """Held for sure and clearly inside its timeout for the next ``margin`` seconds."""
        if lm is None or not lm.possible or not lm.possible <= T.HELD:
            return False
        timeout = lm.lease_timeout or self.known_timeout() or 1.0
        start = lm.renew_lo if lm.renew_lo is not None else lm.acquired_at
        return time.monotonic() + margin < start + timeout - self.model.tolerance(timeout)

    # -- shared resources ------------------------------------------------------
    @property
    def sources(self) -> SourceServer:
        if self._sources is None:
            self._sources = SourceServer()
        return self._sources

    def other_session(self) -> Any:
        if self._other_si is None:
            self._other_si = self.target.new_session()
        return self._other_si

    def bogus_moid(self) -> str:
        return f"session[00000000-0000-0000-0000-000000000000]nfclease-bogus-{next(self._bogus)}"

    def export_entities(self) -> dict[str, list[Any]]:
        """Per export kind, the inventory objects the suite may export (sim/vcsim only).

        The VM with a snapshot serves ExportSnapshot, the others ExportVm; the
        first vApp serves ExportVApp. Found once per run.
        """
        if self._exports is None:
            self._exports = {k: [] for k in EXPORT_KINDS}
            if self.owns_inventory:
                self._exports = self._discover_exports()
        return self._exports

    def _discover_exports(self) -> dict[str, list[Any]]:
        from pyVmomi import vim

        target = self.target
        dc = target.placement.datacenter
        vapps = target._all(dc, vim.VirtualApp)
        in_vapps = {vm._moId for vapp in vapps for vm in (vapp.vm or [])}
        vms = []
        for vm in target._all(dc, vim.VirtualMachine):
            props = target.properties(vm, ["name", "runtime.powerState", "snapshot"])
            if vm._moId in in_vapps or str(props.get("name", "")).startswith("nfclease-"):
                continue
            vms.append((vm, props))
        off = [(vm, p) for vm, p in vms if p.get("runtime.powerState") == "poweredOff"] or vms
        snap = [vm for vm, p in off if p.get("snapshot")]
        plain = [vm for vm, p in off if not p.get("snapshot")] or [vm for vm, _ in off]
        return {"export-vm": plain[:3], "export-vapp": vapps[:1],
                "export-snapshot": snap[:1] or plain[-1:]}

    def export_choice(self, kind: str) -> tuple[Any, tuple[str, ...]] | None:
        """An entity of ``kind`` none of whose VMs a possibly-held lease covers."""
        busy = self.held_vms()
        for entity in self.export_entities().get(kind, []):
            vms = tuple(vm._moId for vm in S._vms_of(entity))
            if not busy & set(vms):
                return entity, vms
        return None

    def close(self) -> None:
        if self._sources is not None:
            self._sources.close()
            self._sources = None
        if self.history is not None:
            self.history.close()


def attach_reference(ctx: RunContext, kind: str, moid: str, *, of: str | None = None,
                     si: Any = None) -> S.LeaseSession:
    """A session on a reference that is no lease of the run, announced by an ``Attach`` record."""
    handle = S.next_handle(ctx.stream)
    now = time.monotonic()
    ctx.stream.emit(Event(call=ATTACH, lease=handle, args={"kind": kind, "of": of}, outcome="ok",
                          value={"moid": moid}, start=now, end=now))
    return S.LeaseSession.attach(ctx.target, ctx.stream, moid, si=si, handle=handle)


def foreign_call(session: S.LeaseSession, call: str) -> S.Attempt:
    """One vocabulary call through any session (foreign, bogus or stale reference)."""
    fn: dict[str, Callable[[], Any]] = {
        "Read": session.read,
        "Progress": lambda: session.progress(50),
        "Complete": session.complete,
        "Abort": session.abort,
        "GetManifest": session.get_manifest,
    }
    return S.attempt(fn[call])


def pull_files(ctx: RunContext, session: S.LeaseSession, variant: str) -> list[dict[str, Any]]:
    """Source files for PullFromUrls: good (one per device URL), short (one fewer), unreachable."""
    files = []
    for index, url in enumerate(session.device_urls()):
        disk = session._is_disk(url)
        target_id = getattr(url, "importKey", None) or url.key
        suffix = ".vmdk" if disk else ".bin"
        if variant == "unreachable" and index == 0:
            files.append({"targetDeviceId": target_id, "url": ctx.sources.dead_url(suffix), "create": not disk})
            continue
        seed = f"{session.moid}:{url.key}:{time.monotonic_ns()}"
        data = _vmdk_bytes(seed) if disk else hashlib.shake_256(seed.encode()).digest(FILE_SIZE)
        files.append({"targetDeviceId": target_id, "url": ctx.sources.add(data, suffix), "create": not disk,
                      "size": len(data), "sha1": hashlib.sha1(data).hexdigest()})
    if variant == "short":
        files = files[:-1]
    return files


# ----------------------------------------------------------- the machine
class FailedClause(AssertionError):
    """A FAIL judgement: the clause, expected vs observed, and the lease's history."""


class LeaseMachine(RuleBasedStateMachine):
    """Random sequences of lease calls on several leases, judged call by call by the model.

    Bind it to a run with :func:`bind` (a subclass carrying the context).
    """

    ctx: RunContext  # set by bind()
    leases = Bundle("leases")

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[LeaseRef] = []
        self.touched: LeaseRef | None = None
        self.ctx.take_pending()

    # -- plumbing -----------------------------------------------------------
    def _lm(self, ref: LeaseRef) -> LeaseModel | None:
        return self.ctx.lease_model(ref.handle)

    def _step(self, touched: LeaseRef | None = None) -> None:
        self.ctx.steps += 1
        if touched is not None:
            self.touched = touched
        self._judge()

    def _judge(self) -> None:
        failures = []
        for event, judgement in self.ctx.take_pending():
            for check in judgement.failures:
                if check.clause not in self.ctx.no_raise:
                    failures.append((event, judgement, check))
        if failures and self.ctx.raise_on_fail:
            raise FailedClause(describe_failure(self.ctx.model, *failures[0]))

    def _with_info(self, session: S.LeaseSession) -> list[Any]:
        """The lease's device URLs, reading it (a recorded Read) when none was seen yet."""
        if session.info is None:
            S.attempt(session.read)
        return list(session.info.deviceUrl or []) if session.info is not None else []

    # -- acquiring ------------------------------------------------------------
    # Rules always put a value in the bundle and preconditions depend only on facts
    # fixed for the run: what a live target answers varies with timing, and Hypothesis
    # replays (to shrink) must make the same choices. A lease that could not be
    # acquired is a reference without a session, and rules on it do nothing.
    @rule(target=leases, disks=disk_counts(), file=st.booleans(), ready=st.booleans())
    def acquire_import(self, disks: int, file: bool, ready: bool) -> LeaseRef:
        """Acquire an import lease; ``ready``: then wait until it left initializing (WaitReady)."""
        ref = LeaseRef("-", None, "import")
        if len(self._held()) < MAX_HELD:
            tried = S.attempt(S.acquire_import, self.ctx.target, self.ctx.stream,
                              disks=[DISK_CAPACITY] * disks, files=[FILE_SIZE] if file else [])
            if tried.ok:
                ref = self._acquired(tried.result, "import", tuple(vm._moId for vm in tried.result.covered), ready)
            else:
                self.ctx.acquire_failures["import"] = tried.event.fault or "?"
        self._step()
        return ref

    @precondition(lambda self: any(self.ctx.export_entities().get(k) for k in EXPORT_KINDS))
    @rule(target=leases, kind=st.sampled_from(EXPORT_KINDS), ready=st.booleans())
    def acquire_export(self, kind: str, ready: bool) -> LeaseRef:
        """Acquire an export lease of a VM, a vApp or a snapshot (entities no held lease covers)."""
        ref = LeaseRef("-", None, kind)
        choice = self.ctx.export_choice(kind)
        refused = kind in self.ctx.acquire_failures and _unsupported(self.ctx.acquire_failures[kind])
        if choice is not None and not refused and len(self._held()) < MAX_HELD:
            acquire = {"export-vm": S.acquire_export_vm, "export-vapp": S.acquire_export_vapp,
                       "export-snapshot": S.acquire_export_snapshot}[kind]
            tried = S.attempt(acquire, self.ctx.target, self.ctx.stream, choice[0])
            if tried.ok:
                ref = self._acquired(tried.result, kind, choice[1], ready)
            else:
                self.ctx.acquire_failures[kind] = tried.event.fault or "?"
        self._step()
        return ref

    def _acquired(self, session: S.LeaseSession, kind: str, vms: tuple[str, ...], ready: bool) -> LeaseRef:
        ref = LeaseRef(session.handle, session, kind, vms)
        self.ctx.covered[ref.handle] = vms
        self.refs.append(ref)
        if ready:  # a Read first: a lease that is already ready costs no WaitReady polling
            seen = S.attempt(session.read)
            if not seen.ok or seen.result.get("state") == "initializing":
                S.attempt(session.wait_ready, WAIT_READY)
        return ref

    def _call(self, lease: LeaseRef, fn: Callable[[S.LeaseSession], Any], touched: bool = False) -> None:
        """One rule's call on a lease (nothing for a lease that was never acquired), then the verdict."""
        if lease.session is not None:
            fn(lease.session)
        self._step(lease if touched and lease.session is not None else None)

    # -- reading --------------------------------------------------------------
    @rule(lease=leases)
    def read(self, lease: LeaseRef) -> None:
        self._call(lease, lambda s: S.attempt(s.read))

    @rule(lease=leases)
    def wait_ready(self, lease: LeaseRef) -> None:
        self._call(lease, lambda s: S.attempt(s.wait_ready, WAIT_READY))

    @rule(lease=leases)
    def task_info(self, lease: LeaseRef) -> None:
        self._call(lease, lambda s: S.attempt(s.task_info))

    # -- lease methods ----------------------------------------------------------
    @rule(lease=leases, percent=percents())
    def progress(self, lease: LeaseRef, percent: int) -> None:
        self._call(lease, lambda s: S.attempt(s.progress, percent), touched=True)

    @rule(lease=leases)
    def complete(self, lease: LeaseRef) -> None:
        self._call(lease, lambda s: S.attempt(s.complete), touched=True)

    @rule(lease=leases, fault=abort_faults())
    def abort(self, lease: LeaseRef, fault: str | None) -> None:
        self._call(lease, lambda s: S.attempt(s.abort, fault), touched=True)

    @rule(lease=leases)
    def get_manifest(self, lease: LeaseRef) -> None:
        self._call(lease, lambda s: S.attempt(s.get_manifest))

    @precondition(lambda self: self.ctx.api_at_least("6.7"))
    @rule(lease=leases, mapping=checksum_mappings())
    def set_manifest_checksum_type(self, lease: LeaseRef, mapping: tuple[tuple[Any, str], ...]) -> None:
        def call(session: S.LeaseSession) -> None:
            keys = [u.key for u in self._with_info(session)]
            if keys or all(d == BOGUS_KEY for d, _ in mapping):
                S.attempt(session.set_manifest_checksum_type, resolve_mapping(mapping, keys))

        self._call(lease, call, touched=True)

    @precondition(lambda self: self.ctx.api_at_least("6.7"))
    @rule(lease=leases, variant=pull_variants())
    def pull_from_urls(self, lease: LeaseRef, variant: str) -> None:
        def call(session: S.LeaseSession) -> None:
            if self._with_info(session):
                S.attempt(session.pull_from_urls, pull_files(self.ctx, session, variant), variant, 30.0)

        self._call(lease, call, touched=True)

    # -- transfers ------------------------------------------------------------
    @rule(lease=leases, device=st.integers(0, 3), variant=upload_variants())
    def upload(self, lease: LeaseRef, device: int, variant: str) -> None:
        def call(session: S.LeaseSession) -> None:
            urls = self._with_info(session)
            if urls:
                S.attempt(session.upload, urls[device % len(urls)], variant, sha256=True)

        self._call(lease, call, touched=variant != "whole")

    @rule(lease=leases, device=st.integers(0, 3))
    def download(self, lease: LeaseRef, device: int) -> None:
        def call(session: S.LeaseSession) -> None:
            urls = self._with_info(session)
            if urls:
                S.attempt(session.download, urls[device % len(urls)], sha256=True)

        self._call(lease, call)

    # -- time -------------------------------------------------------------------
    def _held(self) -> list[LeaseRef]:
        return [r for r in self.refs if (lm := self._lm(r)) is not None and lm.possible & T.HELD]

    @precondition(lambda self: self.ctx.allow_expiry)
    @rule(fraction=sleep_fractions())
    def sleep(self, fraction: float) -> None:
        """Wait ``fraction`` x leaseTimeout (past it: plus the tolerance window), within the
        run's sleep budget; nothing when no lease may be held or the budget is spent."""
        held = self._held()
        if not (held and self.ctx.can_sleep()):
            self._step()
            return
        timeout = self.ctx.known_timeout() or 1.0
        seconds = fraction * timeout + (self.ctx.model.tolerance(timeout) + 0.1 if fraction > 1 else 0.0)
        seconds = round(min(seconds, self.ctx.sleep_left), 3)
        self.ctx.sleep_left -= seconds
        held[-1].session.sleep(seconds)
        self._step(held[-1])

    # -- blocked operations -------------------------------------------------------
    def _may_touch(self, lease: LeaseRef) -> bool:
        """Imported VMs are ours; an inventory VM only on sim/vcsim and while surely held."""
        return lease.kind == "import" or (self.ctx.owns_inventory and self.ctx.surely_alive(self._lm(lease)))

    @rule(lease=leases)
    def power_on(self, lease: LeaseRef) -> None:
        self._call(lease, lambda s: S.attempt(s.power_on) if self._may_touch(lease) else None)

    @rule(lease=leases)
    def destroy(self, lease: LeaseRef) -> None:
        # never an inventory VM, whatever the server answers
        self._call(lease, lambda s: S.attempt(s.destroy) if lease.kind == "import" else None)

    @rule(lease=leases)
    def relocate(self, lease: LeaseRef) -> None:
        self._call(lease, lambda s: S.attempt(s.relocate) if self._may_touch(lease) else None)

    # -- references ------------------------------------------------------------
    @rule(lease=leases, kind=st.sampled_from(["foreign", "bogus", "stale"]), call=foreign_calls())
    def reference(self, lease: LeaseRef, kind: str, call: str) -> None:
        """A call through another session's reference to ``lease`` (foreign), a moid never
        handed out (bogus), or a fresh reference object to ``lease`` under its handle (stale)."""
        if kind == "bogus":
            foreign_call(attach_reference(self.ctx, "bogus", self.ctx.bogus_moid()), call)
            self._step()
            return

        def other(session: S.LeaseSession) -> None:
            if kind == "foreign":
                ref = attach_reference(self.ctx, "foreign", session.moid, of=lease.handle,
                                       si=self.ctx.other_session())
            else:  # same lease, same handle, a new reference: judged as a call on the lease itself
                ref = S.LeaseSession(self.ctx.target, self.ctx.stream, self.ctx.target.lease_ref(session.moid),
                                     kind=lease.kind, handle=lease.handle)
            foreign_call(ref, call)

        self._call(lease, other, touched=call in ("Complete", "Abort", "Progress"))

    # -- invariants and teardown ------------------------------------------------
    @invariant()
    def lease_properties(self) -> None:
        """After a step that may have changed a lease, read it back: the model checks the values."""
        ref, self.touched = self.touched, None
        if ref is not None and ref.session is not None:
            S.attempt(ref.session.read)
            self._judge()

    def teardown(self) -> None:
        for ref in self.refs:
            lm = self._lm(ref)
            if lm is not None and lm.possible & T.HELD:
                S.attempt(ref.session.abort)
        self.ctx.take_pending()  # teardown's verdicts count, but never raise


def _unsupported(fault: str) -> bool:
    return fault.endswith(("MethodNotFound", "NotImplemented", "NotSupported"))


def bind(ctx: RunContext) -> type[LeaseMachine]:
    """``LeaseMachine`` bound to a run (same name, so programs print as ``state = LeaseMachine()``)."""
    ctx.export_entities()  # inventory lookups happen here, never in a precondition
    return type("LeaseMachine", (LeaseMachine,), {"ctx": ctx, "__module__": __name__})


def describe_failure(model: Model, event: Event, judgement: Judgement, check: Any) -> str:
    from conformance.clauses import BY_ID

    level = BY_ID[check.clause].level if check.clause in BY_ID else "?"
    lines = [f"{check.clause} [{level}] FAILED at event #{event.seq} {event.lease or '-'}.{event.call}",
             f"  expected: {check.expected}", f"  observed: {check.observed}", f"  {check.message}"]
    lm = model.leases.get(event.lease or "") or model.refs.get(event.lease or "")
    if lm is not None:
        lines += ["  the lease's calls (t = seconds since its Acquire):"]
        lines += ["    " + line for line in model.repro(lm, event, judgement).splitlines()]
    return "\n".join(lines)


@contextlib.contextmanager
def shrink_budget(seconds: float | None) -> Iterator[None]:
    """Bound Hypothesis' shrinking in wall-clock time (it replays against a live target).

    Hypothesis stops shrinking after ``MAX_SHRINKING_SECONDS`` (5 minutes) and
    reports the smallest failing program found so far; this lowers that bound.
    """
    try:
        from hypothesis.internal.conjecture import engine
    except ImportError:  # pragma: no cover - a Hypothesis without that module
        engine = None
    old = getattr(engine, "MAX_SHRINKING_SECONDS", None)
    if seconds is None or old is None:
        yield
        return
    engine.MAX_SHRINKING_SECONDS = seconds
    try:
        yield
    finally:
        engine.MAX_SHRINKING_SECONDS = old


def run_machine(ctx: RunContext, profile: Profile | str, seed: int | None = None, *,
                steps: int | None = None, seconds: float | None = None, batch: int | None = None,
                shrink: bool | None = None, shrink_seconds: float | None = 60.0,
                step_count: int | None = None) -> int:
    """Run the machine until ``steps`` steps (default: the profile's) or ``seconds`` passed.

    Several Hypothesis runs of ``batch`` examples each, seeded from ``seed``
    (random when None); the clock and the step count are checked between them.
    Returns the number of steps run. Raises what the machine raised (a
    :class:`FailedClause` with Hypothesis' shrunk program when ``raise_on_fail``).
    """
    from hypothesis import seed as hseed
    from hypothesis.stateful import get_state_machine_test

    prof = PROFILES[profile] if isinstance(profile, str) else profile
    want = prof.steps if steps is None else steps
    limit = time.monotonic() + (prof.seconds if seconds is None else seconds)
    shrink = ctx.raise_on_fail if shrink is None else shrink
    if ctx.machine is None:
        ctx.machine = bind(ctx)
    start_steps = ctx.steps
    base = seed if seed is not None else int.from_bytes(uuid.uuid4().bytes[:4], "big")
    for run in range(10_000):
        done = ctx.steps - start_steps
        if done >= want or time.monotonic() >= limit:
            break
        left_examples = max(1, -(-(want - done) // (step_count or prof.step_count)))
        examples = min(batch or prof.batch, left_examples)
        key = (examples, shrink, step_count or prof.step_count)
        test = ctx.tests.get(key)
        if test is None:  # made once per run and shape: Hypothesis' per-test setup is not free
            test = get_state_machine_test(ctx.machine, settings=prof.settings(examples, shrink=shrink,
                                                                              step_count=step_count))
            test._hypothesis_internal_database_key = b"nfclease-lease-machine"  # no source digest
            ctx.tests[key] = test
        with shrink_budget(shrink_seconds if shrink else None):
            hseed(base + run * 7919)(test)()
    return ctx.steps - start_steps


# ------------------------------------------------------- direct sequences
class Direct:
    """Helpers for the deterministic per-clause sequences."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> S.Attempt:
        return S.attempt(fn, *args, **kwargs)

    def acquire_import(self, disks: int = 1, files: int = 0) -> S.LeaseSession | None:
        tried = S.attempt(S.acquire_import, self.ctx.target, self.ctx.stream, disks=[DISK_CAPACITY] * disks,
                          files=[FILE_SIZE] * files)
        if not tried.ok:
            self.ctx.acquire_failures["import"] = tried.event.fault or "?"
            return None
        self.ctx.covered[tried.result.handle] = tuple(vm._moId for vm in tried.result.covered)
        return tried.result

    def acquire_export(self, kind: str = "export-vm") -> S.LeaseSession | None:
        choice = self.ctx.export_choice(kind)
        if choice is None:
            self.ctx.acquire_failures.setdefault(kind, "no exportable entity on this target")
            return None
        acquire = {"export-vm": S.acquire_export_vm, "export-vapp": S.acquire_export_vapp,
                   "export-snapshot": S.acquire_export_snapshot}[kind]
        tried = S.attempt(acquire, self.ctx.target, self.ctx.stream, choice[0])
        if not tried.ok:
            self.ctx.acquire_failures[kind] = tried.event.fault or "?"
            return None
        self.ctx.covered[tried.result.handle] = choice[1]
        return tried.result

    def ready(self, session: S.LeaseSession) -> bool:
        tried = S.attempt(session.wait_ready, WAIT_READY)
        return tried.ok and tried.result.get("state") == "ready"

    def release(self, *sessions: S.LeaseSession | None) -> None:
        for session in sessions:
            lm = self.ctx.lease_model(session.handle) if session is not None else None
            if lm is not None and lm.possible & T.HELD:
                S.attempt(session.abort)

    def sleep_until(self, session: S.LeaseSession, when: float) -> None:
        seconds = when - time.monotonic()
        if seconds > 0:
            session.sleep(round(seconds, 3))


def seq_export(d: Direct) -> None:
    """An export lease through its life: reads, transfers, refusals while held, then after Complete."""
    ctx = d.ctx
    lease = d.acquire_export("export-vm")
    if lease is None:
        return
    try:
        d.call(lease.read)
        if not d.ready(lease):
            return
        d.call(lease.task_info)
        d.call(lease.progress, 50)
        d.call(lease.read)
        d.call(lease.get_manifest)
        for url in lease.device_urls():
            d.call(lease.download, url)
        d.call(lease.get_manifest)  # describes the downloads: the next one must match it
        d.call(lease.download, 0)
        if ctx.api_at_least("6.7"):
            keys = [u.key for u in lease.device_urls()]
            d.call(lease.set_manifest_checksum_type, {keys[0]: "md5"})
            d.call(lease.pull_from_urls, pull_files(ctx, lease, "good"), "good", 30.0)
            d.call(lease.read)
        d.call(lease.upload, 0, "whole")
        d.call(lease.read)
        for percent in (150, -5):
            d.call(lease.progress, percent)
        if ctx.owns_inventory and ctx.surely_alive(ctx.lease_model(lease.handle)):
            d.call(lease.power_on)
            d.call(lease.relocate)
        d.call(lease.progress, 100)
        d.call(lease.complete)
        d.call(lease.task_info)
        d.call(lease.read)
        d.call(lease.complete)
        d.call(lease.abort)
        d.call(lease.get_manifest)
        if ctx.api_at_least("6.7"):
            d.call(lease.set_manifest_checksum_type, {})
            d.call(lease.pull_from_urls, [], "good", 30.0)
        d.call(lease.download, 0)
        d.call(lease.progress, 10)
        if ctx.owns_inventory:
            d.call(lease.relocate)
    finally:
        d.release(lease)


def seq_import(d: Direct) -> None:
    """An import of two disks and a file: checksums, uploads, manifest, refusals while held, unlock."""
    ctx = d.ctx
    lease = d.acquire_import(disks=2, files=1)
    if lease is None:
        return
    try:
        if not d.ready(lease):
            return
        urls = lease.device_urls()
        if ctx.api_at_least("6.7"):
            d.call(lease.set_manifest_checksum_type, {urls[0].key: "sha256", urls[-1].key: "sha1"})
            d.call(lease.set_manifest_checksum_type, {BOGUS_KEY: "sha1"})
        for url in urls:
            d.call(lease.upload, url, "whole", sha256=True)
        d.call(lease.get_manifest)
        d.call(lease.download, 0)
        d.call(lease.relocate)
        d.call(lease.power_on)
        for percent in (101, -1):
            d.call(lease.progress, percent)
        d.call(lease.progress, 100)
        d.call(lease.read)
        d.call(lease.complete)
        d.call(lease.task_info)
        d.call(lease.power_on)
        d.call(lease.relocate)
        d.call(lease.upload, 0, "whole")
    finally:
        d.release(lease)
    other = d.acquire_import(disks=1)  # Destroy: refused while held, works once completed
    if other is None:
        return
    try:
        if d.ready(other):
            d.call(other.upload, 0, "whole")
            d.call(other.destroy)
            d.call(other.complete)
            d.call(other.destroy)
    finally:
        d.release(other)


def seq_release(d: Direct) -> None:
    """The first call after Complete or Abort, one small lease each (targets that delete
    released leases answer only the first one as the released state's row says)."""
    probes = [("complete", "Complete"), ("complete", "Abort"), ("complete", "Progress"), ("complete", "GetManifest"),
              ("abort", "Abort"), ("abort", "Complete"), ("abort", "GetManifest"), ("abort", "TaskInfo")]
    for end, call in probes:
        lease = d.acquire_import(disks=1)
        if lease is None:
            return
        try:
            if not d.ready(lease):
                continue
            if end == "complete":
                d.call(lease.upload, 0, "whole")
                d.call(lease.complete)
            else:
                d.call(lease.abort, "vim.fault.NoDiskSpace")
            probe = {"Complete": lease.complete, "Abort": lease.abort, "GetManifest": lease.get_manifest,
                     "TaskInfo": lease.task_info, "Progress": lambda: lease.progress(10)}[call]
            d.call(probe)
        finally:
            d.release(lease)


def seq_abort(d: Direct) -> None:
    """Bad uploads, Abort with a fault, every call after it, and the import's cleanup."""
    ctx = d.ctx
    lease = d.acquire_import(disks=1)
    if lease is None:
        return
    try:
        if not d.ready(lease):
            return
        d.call(lease.upload, 0, "garbage")
        d.call(lease.read)
        d.call(lease.upload, 0, "truncated")
        d.call(lease.read)
        d.call(lease.abort, "vim.fault.NoDiskSpace")
        d.call(lease.task_info)
        d.call(lease.read)
        d.call(lease.abort)
        d.call(lease.complete)
        d.call(lease.get_manifest)
        if ctx.api_at_least("6.7"):
            d.call(lease.set_manifest_checksum_type, {})
            d.call(lease.pull_from_urls, [], "good", 30.0)
        d.call(lease.upload, 0, "whole")
        d.call(lease.power_on)
        d.call(lease.relocate)
        d.call(lease.destroy)
    finally:
        d.release(lease)


def seq_pull(d: Direct) -> None:
    """Pull mode: a good pull, then short and unreachable source lists on another lease."""
    ctx = d.ctx
    if not ctx.api_at_least("6.7"):
        return
    good = d.acquire_import(disks=1, files=1)
    bad = d.acquire_import(disks=1)
    try:
        if good is not None and d.ready(good):
            d.call(good.pull_from_urls, pull_files(ctx, good, "good"), "good", 30.0)
            d.call(good.read)
            d.call(good.get_manifest)
            d.call(good.complete)
        if bad is not None and d.ready(bad):
            d.call(bad.pull_from_urls, pull_files(ctx, bad, "short"), "short", 30.0)
            seen = d.call(bad.read)
            if not (seen.ok and seen.result.get("state") == "ready"):
                return  # the failed pull ended the lease: the unreachable source needs a live one
            d.call(bad.pull_from_urls, pull_files(ctx, bad, "unreachable"), "unreachable", 30.0)
            d.call(bad.read)
    finally:
        d.release(good, bad)


def seq_initializing(d: Direct) -> None:
    """Calls on a lease that is still initializing (when the target lets one be seen)."""
    lease = d.acquire_import(disks=1)
    if lease is None:
        return
    try:
        d.call(lease.read)
        d.call(lease.complete)
        d.call(lease.read)
        d.call(lease.abort)
        d.call(lease.read)
    finally:
        d.release(lease)


def seq_references(d: Direct) -> None:
    """Another session's reference to our lease, a bogus reference, a stale one."""
    ctx = d.ctx
    lease = d.acquire_import(disks=1)
    if lease is None:
        return
    try:
        d.ready(lease)
        other = attach_reference(ctx, "foreign", lease.moid, of=lease.handle, si=ctx.other_session())
        for call in ("Read", "Progress", "Complete"):
            foreign_call(other, call)
        bogus = attach_reference(ctx, "bogus", ctx.bogus_moid())
        for call in ("Read", "Abort"):
            foreign_call(bogus, call)
        stale = S.LeaseSession(ctx.target, ctx.stream, ctx.target.lease_ref(lease.moid), kind="import",
                               handle=lease.handle)
        foreign_call(stale, "Read")
        d.call(lease.complete)
    finally:
        d.release(lease)


ALIVE_MARGIN = 0.25  # seconds before leaseTimeout - tolerance at which the "still alive" read starts


def seq_expiry(d: Direct) -> None:
    """Hold leases for their advertised leaseTimeout: alive just before it, renewed by Progress,
    expired just after it (when that fits the expiry budget; see ``conformance/expiry.py``)."""
    ctx = d.ctx
    if not ctx.allow_expiry:
        ctx.notes.append(f"expiry: skipped: {ctx.expiry_decision().reason}")
        return
    export = d.acquire_export("export-vm")
    imp = d.acquire_import(disks=1)
    try:
        leases = [s for s in (export, imp) if s is not None and d.ready(s)]
        if not leases:
            return
        decision = ctx.expiry_decision()
        ctx.notes.append(f"expiry: {'checked' if decision.run else 'skipped'}: {decision.reason}")
        if not decision.run:
            return
        _expire(d, leases, ctx.known_timeout() or 1.0)
    finally:
        d.release(export, imp)


def _expire(d: Direct, leases: list[S.LeaseSession], timeout: float) -> None:
    """The expiry checks proper; notes the advertised timeout against what was observed."""
    ctx = d.ctx
    tol = ctx.model.tolerance(timeout)
    first, last = leases[0], leases[-1]
    t0 = ctx.lease_model(first.handle).acquired_at
    # as late as the advertised timeout still promises life: a lease dying early fails timeout.alive
    d.sleep_until(first, t0 + timeout - tol - ALIVE_MARGIN)
    alive = d.call(first.read)
    d.call(last.progress, 20)
    renewed = ctx.lease_model(last.handle).renew_lo or time.monotonic()
    # past the first timeout without renewal, still inside the renewed one
    acquired_last = ctx.lease_model(last.handle).acquired_at
    lo, hi = acquired_last + timeout - tol, renewed + timeout - tol
    if hi - lo > 0.2:
        d.sleep_until(last, (lo + hi) / 2)
        d.call(last.read)
    # clearly expired: a lease living on past the advertised timeout fails timeout.expires
    latest = max((ctx.lease_model(s.handle).renew_hi or 0.0) for s in leases)
    d.sleep_until(first, latest + timeout + tol + 0.2)
    late = None
    for s in leases:
        seen = d.call(s.read)
        late = late or (seen if s is first else None)
        d.call(s.progress, 30)
        d.call(s.get_manifest)
        d.call(s.complete)
        d.call(s.abort)
        d.call(s.task_info)
        if ctx.api_at_least("6.7"):
            d.call(s.set_manifest_checksum_type, {})
        if s.kind == "import":
            d.call(s.power_on)
            d.call(s.upload, 0, "whole")
        else:
            d.call(s.download, 0)
    ctx.notes.append(f"expiry: advertised leaseTimeout {timeout:g} s (tolerance {tol:g} s); {first.handle} "
                     f"{_shown(alive)} at {_since(t0, alive)} and {_shown(late)} at {_since(t0, late)} "
                     "after its Acquire, never renewed")


def _shown(tried: S.Attempt | None) -> str:
    if tried is None:
        return "unread"
    if not tried.ok:
        return f"refused ({tried.event.fault})"
    return f"{(tried.result or {}).get('state')}"


def _since(t0: float, tried: S.Attempt | None) -> str:
    return f"+{tried.event.start - t0:.2f} s" if tried is not None else "?"


SEQUENCES: dict[str, Callable[[Direct], None]] = {
    "export": seq_export,
    "import": seq_import,
    "release": seq_release,
    "abort": seq_abort,
    "pull": seq_pull,
    "initializing": seq_initializing,
    "references": seq_references,
    "expiry": seq_expiry,
}

#: The direct sequences that exercise each clause, in order of preference: the
#: per-clause tests run the first, and the next ones while the clause is still
#: unexercised (a target without export leases is judged on imports).
SEQUENCE_OF: dict[str, tuple[str, ...]] = {
    "state.initial": ("initializing", "import"),
    "state.lifecycle": ("export", "import"),
    "state.readable": ("export", "import"),
    "state.init-progress": ("export", "import"),
    "state.ready-info": ("export", "import"),
    "state.info-valid": ("export", "abort"),
    "state.error-property": ("abort",),
    "state.task-running": ("export", "import"),
    "timeout.expires": ("expiry",),
    "timeout.renewed": ("expiry",),
    "timeout.alive": ("expiry", "import"),
    "timeout.faults": ("expiry",),
    "timeout.task": ("expiry",),
    "progress.accepted": ("export", "import"),
    "progress.transfer-progress": ("export",),
    "progress.transfer-range": ("export", "import"),
    "progress.range": ("import",),
    "progress.after-release": ("release",),
    "complete.done": ("export", "import"),
    "complete.repeat": ("release",),
    "abort.error": ("abort",),
    "abort.fault-reported": ("abort",),
    "abort.repeat": ("release",),
    "abort.after-complete": ("release",),
    "release.transfers": ("export", "import"),
    "release.invalid-state": ("export",),
    "release.deleted": ("export", "release"),
    "import.cleanup": ("abort",),
    "initializing.calls": ("initializing",),
    "lock.power-on": ("import",),
    "lock.destroy": ("import",),
    "lock.migrate": ("import",),
    "manifest.entries": ("import",),
    "manifest.state": ("release",),
    "checksum.type": ("import",),
    "checksum.invalid": ("import",),
    "checksum.state": ("abort",),
    "pull.capabilities": ("export", "import"),
    "pull.transfer": ("pull",),
    "pull.mode": ("pull",),
    "pull.count": ("pull",),
    "pull.http-fault": ("pull",),
    "pull.state": ("abort",),
    "pull.unsupported": ("export",),
    "transfer.upload": ("import",),
    "transfer.download": ("export",),
    "transfer.thumbprint": ("export", "import"),
    "transfer.bad-upload": ("abort",),
    "transfer.direction": ("export", "import"),
    "ref.foreign": ("references",),
    "faults.declared": ("export", "import", "release"),
    "api.implemented": ("export", "import"),
}


def run_sequences(ctx: RunContext, names: Iterable[str] | None = None) -> None:
    """Run the direct sequences (all by default) against the context's target."""
    d = Direct(ctx)
    for name in (names if names is not None else SEQUENCES):
        SEQUENCES[name](d)
        ctx.take_pending()


# ------------------------------------------------------------- NA reasons
GENERIC_NA = "not exercised by this run"


def explain_na(clause_id: str, message: str, ctx: RunContext) -> str:
    """A specific reason for an NA the model could only call 'not exercised' or 'not judged'."""
    if "applies from vSphere API" in message:
        return message
    exports = [f"{k}: {v}" for k, v in ctx.acquire_failures.items() if k.startswith("export")]
    if clause_id.startswith("timeout."):
        decision = ctx.expiry_decision()
        if not (ctx.allow_expiry and decision.run):
            return f"expiry not checked: {decision.reason}"
    if clause_id in ("state.task-running", "timeout.task", "abort.fault-reported") and ctx.no_task:
        return "the target shows no import/export task for its leases (TaskInfo: client.NoTask)"
    if GENERIC_NA not in message:
        return message
    if clause_id == "release.deleted":
        return ("the target never deleted a released lease (no ManagedObjectNotFound after Complete/Abort), "
                "so there was no deleted lease to check")
    if clause_id in ("transfer.download", "transfer.direction", "pull.unsupported") and exports:
        unimplemented = any(_unsupported(v) for k, v in ctx.acquire_failures.items() if k.startswith("export"))
        return ("no export lease could be acquired (" + "; ".join(exports) + ")"
                + ("; an export call the API version has is missing: judged under api.implemented"
                   if unimplemented else ""))
    if clause_id == "transfer.thumbprint":
        return "no device URL announced an sslThumbprint, so there was nothing to compare"
    if clause_id == "initializing.calls":
        return "no call was refused on a lease known to be initializing (the target readies leases fast)"
    if clause_id == "state.info-valid":
        return "no Read showed a lease outside ready (the target deletes released leases)"
    if clause_id.startswith("pull.") and not any(lm.pull_supported for lm in ctx.model.leases.values()):
        return "no lease offered pull mode (capabilities.pullModeSupported false or unread)"
    return message


__all__ = [
    "ATTACH", "Direct", "FailedClause", "LeaseMachine", "LeaseRef", "PROFILES", "Profile", "RunContext",
    "SEQUENCES", "SEQUENCE_OF", "SourceServer", "attach_reference", "bind", "describe_failure", "explain_na",
    "foreign_call", "pull_files", "run_machine", "run_sequences",
]
