"""The Hypothesis state machine, against a live target.

Theory of operation
===================

Everything the suite does to a target goes through :class:`nfclease.session.LeaseSession`
(rule 3 of DEVELOPERS.md), so every call is one :class:`nfclease.events.Event` on
the run's :class:`~nfclease.events.EventStream`, owned by the run's
:class:`nfclease.conformance.context.RunContext` (model, history). The direct per-clause
sequences are :mod:`nfclease.conformance.sequences`.

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
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from nfclease.conformance import table as T
from nfclease.conformance.context import (
    DISK_CAPACITY, EXPORT_KINDS, FILE_SIZE, MAX_HELD, PROFILES, WAIT_READY, Profile, RunContext, attach_reference,
    foreign_call, pull_files, unsupported,
)
from nfclease.conformance.model import Model
from nfclease.conformance.state import LeaseModel
from nfclease.conformance.verdicts import Judgement
from nfclease import session as S
from nfclease.events import Event
from nfclease import vocabulary as V
from nfclease.strategies import (
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


@dataclass
class LeaseRef:
    """A lease of the run, as the machine's bundle holds it."""

    handle: str
    session: S.LeaseSession | None  # None: the acquisition was skipped or refused
    kind: str
    covered: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"<{self.handle} {self.kind}>" if self.session is not None else f"<no {self.kind} lease>"



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
        refused = kind in self.ctx.acquire_failures and unsupported(self.ctx.acquire_failures[kind])
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

        self._call(lease, other, touched=call in (V.COMPLETE, V.ABORT, V.PROGRESS))

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


def bind(ctx: RunContext) -> type[LeaseMachine]:
    """``LeaseMachine`` bound to a run (same name, so programs print as ``state = LeaseMachine()``)."""
    ctx.export_entities()  # inventory lookups happen here, never in a precondition
    return type("LeaseMachine", (LeaseMachine,), {"ctx": ctx, "__module__": __name__})


def describe_failure(model: Model, event: Event, judgement: Judgement, check: Any) -> str:
    from nfclease.conformance.clauses import BY_ID

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
