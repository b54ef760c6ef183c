"""One conformance run against one target: the profiles, the run context, and the calls rules and sequences share.

A :class:`RunContext` owns the run's event stream and subscribes to it, in
this order: the reference model (:class:`nfclease.conformance.model.Model`, which
judges each event against the transition table) and the history writer
(``history.jsonl``, which ``nfclease check-history`` replays offline to the
same verdicts). The first record of a history is a ``Target`` record
carrying ``about`` (so a replay learns the API version). The state machine
(:mod:`nfclease.conformance.machine`) and the direct sequences
(:mod:`nfclease.conformance.sequences`) both run on a context.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from hypothesis import HealthCheck, Phase, settings

from nfclease.conformance import table as T
from nfclease.conformance.expiry import ExpiryDecision, ExpiryPolicy
from nfclease.conformance.model import Model
from nfclease.conformance.state import LeaseModel
from nfclease.conformance.verdicts import Judgement
from nfclease.conformance.sources import SourceServer
from nfclease.conformance.vmodl import version_at_least
from nfclease import session as S
from nfclease.events import Event, EventStream, HistoryWriter
from nfclease.target import Target
from nfclease import vocabulary as V

DISK_CAPACITY = 64 * 1024  # small disks: the machine is about the protocol, not throughput
FILE_SIZE = 4096
WAIT_READY = 10.0
EXPORT_KINDS = ("export-vm", "export-vapp", "export-snapshot")
MAX_HELD = 3  # leases the model says may be held, per example: several at once, not dozens


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
                 expiry_budget: float = 30.0, expiry_budget_source: str = "this run's expiry budget",
                 kind: str | None = None, export_vms: Sequence[str] = ()) -> None:
        self.target = target
        self.export_vms = list(export_vms)  # --export-vm: VMs of a real target the user lets us export (only)
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
        self.machine: type[Any] | None = None  # the LeaseMachine bound to this run (run_machine)
        self.tests: dict[tuple[Any, ...], Callable[[], None]] = {}
        now = time.monotonic()
        self.stream.emit(Event(call=V.TARGET, lease=None, args={}, outcome="ok",
                               value={**target.run_info(), "api_type": target.about.api_type},
                               start=now, end=now))

    # -- events ---------------------------------------------------------------
    def _judge(self, event: Event) -> None:
        if event.call == V.TASK_INFO and event.fault == "client.NoTask":
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
            elif self.export_vms:
                self._exports = self._named_exports()
        return self._exports

    def _named_exports(self) -> dict[str, list[Any]]:
        """The VMs the user named (``--export-vm``): exported read-only, never snapshotted or changed."""
        from pyVmomi import vim

        vms = [self.target.find_entity(path, vim.VirtualMachine) for path in self.export_vms]
        for vm in vms:
            self.target.protect(vm)
        return {kind: (vms if kind == "export-vm" else []) for kind in EXPORT_KINDS}

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


def unsupported(fault: str) -> bool:
    """Whether an acquisition's fault says the target lacks the call (not that it refused this time)."""
    return fault.endswith(("MethodNotFound", "NotImplemented", "NotSupported"))


def attach_reference(ctx: RunContext, kind: str, moid: str, *, of: str | None = None,
                     si: Any = None) -> S.LeaseSession:
    """A session on a reference that is no lease of the run, announced by an ``Attach`` record."""
    handle = S.next_handle(ctx.stream)
    now = time.monotonic()
    ctx.stream.emit(Event(call=V.ATTACH, lease=handle, args={"kind": kind, "of": of}, outcome="ok",
                          value={"moid": moid}, start=now, end=now))
    return S.LeaseSession.attach(ctx.target, ctx.stream, moid, si=si, handle=handle)


def foreign_call(session: S.LeaseSession, call: str) -> S.Attempt:
    """One vocabulary call through any session (foreign, bogus or stale reference)."""
    fn: dict[str, Callable[[], Any]] = {
        V.READ: session.read,
        V.PROGRESS: lambda: session.progress(50),
        V.COMPLETE: session.complete,
        V.ABORT: session.abort,
        V.GET_MANIFEST: session.get_manifest,
    }
    return S.attempt(fn[call])


def pull_files(ctx: RunContext, session: S.LeaseSession, variant: str) -> list[dict[str, Any]]:
    """Source files for PullFromUrls: good (one per device URL), short (one fewer), unreachable
    (the first source on a dead port), untrusted (the first on a self-signed https server)."""
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
        source = {"targetDeviceId": target_id, "url": ctx.sources.add(data, suffix), "create": not disk,
                  "size": len(data), "sha1": hashlib.sha1(data).hexdigest()}
        if variant == "untrusted" and index == 0:
            source["url"], source["served_thumbprint"] = ctx.sources.add_untrusted(data, suffix)
        files.append(source)
    if variant == "short":
        files = files[:-1]
    return files


def _vmdk_bytes(seed: str) -> bytes:
    from nfclease.vmdk import ContentPattern, StreamOptimizedDisk

    return b"".join(StreamOptimizedDisk(DISK_CAPACITY, ContentPattern("random", seed)))
