"""The load scenarios: what one user does in one iteration, through :mod:`nfclease.session` only.

Each scenario is a function ``(ctx) -> None`` over a :class:`UserContext`
(the user's target, event stream and options). It makes lease calls through
:class:`~nfclease.session.LeaseSession`, so every call is an event, and the
figures come from those events (:mod:`nfclease.load.bridge`). Every wait is bounded in
count and in time; a failed call has already been recorded when it raises,
so scenarios only make sure the lease is not left held (Abort) and return.

* ``import-upload`` -- ImportVApp of ``disks`` disks of ``disk_mib`` MiB,
  streamOptimized VMDKs generated on the fly (never held whole), Progress
  every ``keepalive`` s in the background (govmomi's 2 s by default),
  GetManifest (the bridge checks size and sha1 of every upload against it),
  Complete, then Destroy of the imported VM (cleanup, run beside the next
  iteration: keeps the inventory and the target's storage bounded over long
  runs; ``keep_imports`` skips it, the VMs then go when the user stops).
* ``export-download`` -- ExportVm of the user's own VM (imported once at
  start, so users never contend for a VM), GET every device URL, GetManifest
  (size and sha1 checked), Complete.
* ``churn`` -- Acquire an import lease and Abort it at once, as fast as the
  target allows.
* ``keepalive`` -- hold ``held_leases`` leases, each renewed by Progress every
  ``keepalive`` s, for ``hold_seconds`` (default: twice the lease timeout plus
  one interval, at most ``max_hold_seconds``); then Read each (a lease that
  expired anyway is counted) and Abort the live ones.
* ``timeout-probe`` -- one Progress, then no renewal: sleep until shortly
  before ``info.leaseTimeout``, then Read every ``probe_poll`` s until the
  lease leaves ``ready``; the bridge turns the bracket into observed - advertised.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from nfclease.events import EventStream
from nfclease.session import LeaseSession, abort_fault, acquire_export_vm, acquire_import, attempt

log = logging.getLogger("nfclease.load.scenarios")

MiB = 1 << 20


@dataclass
class LoadOptions:
    """Knobs of the scenarios (Locust options ``--nfc-<name>`` on the command line)."""

    disks: int = 1                     # N disks per import
    disk_mib: float = 8.0              # S: capacity of each disk (MiB); the stream is a little larger
    pattern: str = "random"            # content (nfclease.vmdk.ContentPattern)
    keepalive: float = 2.0             # K: seconds between Progress calls
    held_leases: int = 4               # keepalive: leases each user holds
    hold_seconds: float = 0.0          # keepalive: 0 = 2 x leaseTimeout + K (capped below)
    max_hold_seconds: float = 60.0
    probe_poll: float = 0.02           # timeout-probe: Read interval near the deadline
    probe_lead: float = 0.3            # timeout-probe: start polling this long before the deadline
    probe_max_extra: float = 10.0      # timeout-probe: give up this long after the deadline
    ready_timeout: float = 60.0
    transfer_max_seconds: float = 3600.0
    keep_imports: bool = False
    max_iterations: int = 1_000_000    # per user: the count bound of the task loop
    cafile: str = ""
    thumbprint: str = ""
    insecure: bool = False
    embedded_sim: bool = False         # the target is nfclease's simulator: its public default login works

    @property
    def disk_bytes(self) -> int:
        return max(512, int(self.disk_mib * MiB) // 512 * 512)

    @classmethod
    def from_namespace(cls, ns: Any) -> "LoadOptions":
        """From Locust's parsed options (``nfc_<field>`` attributes); missing ones keep defaults."""
        values = {}
        for f in fields(cls):
            value = getattr(ns, f"nfc_{f.name}", None) if ns is not None else None
            if value is not None:
                values[f.name] = type(getattr(cls(), f.name))(value) if not isinstance(value, bool) else value
        return cls(**values)

    def as_locust_args(self) -> dict[str, Any]:
        return {f"nfc_{f.name}": getattr(self, f.name) for f in fields(self)}


@dataclass
class UserContext:
    """What a scenario works with: one user's target, stream, options and stop flag."""

    target: Any
    stream: EventStream
    options: LoadOptions
    stopping: Callable[[], bool] = lambda: False
    own_vm: Any = None
    state: dict[str, Any] = field(default_factory=dict)
    background: list[threading.Thread] = field(default_factory=list)

    def in_background(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run cleanup (``fn(*args)``) beside the next iteration; at most one outstanding (bounded waits)."""
        self.join_background(keep=0)
        thread = threading.Thread(target=fn, args=args, name="nfclease-load-cleanup", daemon=True)
        thread.start()
        self.background.append(thread)

    def join_background(self, keep: int = 0, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.background) > keep:
            self.background.pop(0).join(max(0.0, deadline - time.monotonic()))


# -- helpers ---------------------------------------------------------------------

class Held:
    """A lease this user holds: ``ended`` once Complete/Abort succeeded or it was seen released."""

    def __init__(self, ctx: UserContext, session: LeaseSession) -> None:
        self.ctx = ctx
        self.session = session
        self.ended = False
        self.completed = False

    def complete(self) -> None:
        self.session.complete()
        self.ended = self.completed = True

    def abort(self) -> None:
        self.session.abort()
        self.ended = True

    def released(self) -> bool:
        """Whether the last state seen says the lease is over (done or error)."""
        return self.ended or self.session.state in ("done", "error")

    def finish(self) -> None:
        """Leave no lease held: Abort it unless it is known to be over (recorded), then forget it.

        Called from ``finally``: the exception in flight, if any, is the cause the Abort reports
        (its fault reaches the lease's task, so whoever watches the task learns why).
        """
        if not self.released():
            attempt(self.session.abort, abort_fault(sys.exc_info()[1]))
        self.ended = True
        forget(self.ctx, self.session)
        if self.session.kind == "import" and not self.completed and self.session.entity is not None:
            # an import that ends in error is removed by the server itself (import.cleanup)
            self.ctx.target.forget_entity(self.session.entity)


def forget(ctx: UserContext, session: LeaseSession) -> None:
    """Drop a finished lease from the target's cleanup list (each entry costs a call at close)."""
    ctx.target.forget_lease(session.lease)


def _sleep(ctx: UserContext, seconds: float) -> None:
    """Sleep in short steps, returning early when the user is stopping (bounded)."""
    deadline = time.monotonic() + max(0.0, seconds)
    for _ in range(int(seconds / 0.05) + 2):
        left = deadline - time.monotonic()
        if left <= 0 or ctx.stopping():
            return
        time.sleep(min(0.05, left))


def _ready(session: LeaseSession, options: LoadOptions) -> bool:
    value = session.wait_ready(timeout=options.ready_timeout)
    return value.get("state") == "ready"


# -- scenarios --------------------------------------------------------------------

def _import_once(ctx: UserContext, *, verify: bool) -> LeaseSession | None:
    """One import lease: ready, upload every disk under keepalive, Complete.

    Returns the completed session, or None when the lease never became
    ready. ``verify`` reads GetManifest, against which the bridge checks the
    bytes sent (a target without it, vcsim 0.24, leaves them unverified).
    """
    opts = ctx.options
    held = Held(ctx, acquire_import(ctx.target, ctx.stream, disks=[opts.disk_bytes] * opts.disks,
                                    pattern=opts.pattern))
    session = held.session
    try:
        if not _ready(session, opts):
            return None
        session.expected_bytes()
        with session.keep_alive(interval=opts.keepalive, max_seconds=opts.transfer_max_seconds):
            session.upload_all()
        if verify:
            attempt(session.get_manifest)
        held.complete()
        return session
    finally:
        held.finish()


def import_upload(ctx: UserContext) -> None:
    session = _import_once(ctx, verify=True)
    if session is not None and not ctx.options.keep_imports and session.entity is not None:
        # cleanup, not part of the import: runs beside the next iteration
        ctx.in_background(attempt, session.destroy, session.entity)


def prepare_export(ctx: UserContext) -> None:
    """Import the user's own VM (``disks`` x ``disk_mib``) to export again and again."""
    session = _import_once(ctx, verify=False)
    if session is None:
        raise RuntimeError("the setup import lease never became ready")
    ctx.own_vm = session.entity
    if ctx.own_vm is None:
        raise RuntimeError("the setup import gave no VM to export")


def export_download(ctx: UserContext) -> None:
    opts = ctx.options
    held = Held(ctx, acquire_export_vm(ctx.target, ctx.stream, vm=ctx.own_vm))
    session = held.session
    try:
        if not _ready(session, opts):
            return
        with session.keep_alive(interval=opts.keepalive, max_seconds=opts.transfer_max_seconds):
            for url in session.device_urls():
                session.download(url)
        attempt(session.get_manifest)
        held.complete()
    finally:
        held.finish()


def churn(ctx: UserContext) -> None:
    held = Held(ctx, acquire_import(ctx.target, ctx.stream, disks=[MiB]))
    try:
        held.abort()
    finally:
        held.finish()


def keepalive(ctx: UserContext) -> None:
    opts = ctx.options
    held: list[Held] = []
    with contextlib.ExitStack() as keepers:
        try:
            for _ in range(max(1, opts.held_leases)):
                if ctx.stopping():
                    break
                lease = Held(ctx, acquire_import(ctx.target, ctx.stream, disks=[MiB]))
                held.append(lease)
                if _ready(lease.session, opts):
                    keepers.enter_context(lease.session.keep_alive(
                        interval=opts.keepalive, percent=0, max_seconds=opts.max_hold_seconds + 60))
            timeout = max((float(h.session.info.leaseTimeout) for h in held if h.session.info is not None),
                          default=0.0)
            hold = opts.hold_seconds or 2 * timeout + opts.keepalive
            _sleep(ctx, min(hold, opts.max_hold_seconds))
        finally:
            keepers.close()  # stop renewing before looking
            for lease in held:
                if not lease.released():
                    attempt(lease.session.read)  # an expired lease shows error/Timedout here
                lease.finish()


def timeout_probe(ctx: UserContext) -> None:
    opts = ctx.options
    held = Held(ctx, acquire_import(ctx.target, ctx.stream, disks=[MiB]))
    session = held.session
    try:
        if not _ready(session, opts):
            return
        advertised = float(session.info.leaseTimeout)
        session.progress(0)
        renewed = time.monotonic()
        session.sleep(max(0.0, advertised - opts.probe_lead - (time.monotonic() - renewed)))
        deadline = renewed + advertised + opts.probe_max_extra
        limit = int((opts.probe_lead + opts.probe_max_extra) / max(opts.probe_poll, 1e-3)) + 10
        for _ in range(limit):
            value = session.read()
            if value.get("state") != "ready" or time.monotonic() >= deadline or ctx.stopping():
                break
            time.sleep(opts.probe_poll)
    finally:
        held.finish()


@dataclass(frozen=True)
class Scenario:
    """One load scenario: everything the users, the locustfile, the weights and the help derive from.

    Adding a scenario is its function above and one entry in :data:`REGISTRY`;
    ``tests/test_load_registry.py`` checks that the rest agrees.
    """

    name: str  # what --scenario and load.json call it
    user_class: str  # the Locust user class name (locust -f load/locustfile.py NAME)
    run: Callable[[UserContext], None]  # one iteration
    mixed_weight: int  # its weight in ``mixed``
    summary: str  # one line for --help and the docs
    setup: Callable[[UserContext], None] | None = None  # once per user, before the first iteration


REGISTRY: tuple[Scenario, ...] = (
    Scenario("import-upload", "ImportUpload", import_upload, 3,
             "ImportVApp, stream the disks, GetManifest checked, Complete, Destroy"),
    Scenario("export-download", "ExportDownload", export_download, 2,
             "ExportVm of the user's own VM, GET every device URL, GetManifest checked, Complete",
             setup=prepare_export),
    Scenario("churn", "Churn", churn, 1, "Acquire an import lease and Abort it at once"),
    Scenario("keepalive", "Keepalive", keepalive, 1, "hold leases renewed by Progress; count those that expire"),
    Scenario("timeout-probe", "TimeoutProbe", timeout_probe, 1,
             "no renewal: observed expiry against the advertised leaseTimeout"),
)
BY_NAME: dict[str, Scenario] = {s.name: s for s in REGISTRY}
SCENARIOS: tuple[str, ...] = tuple(BY_NAME)
#: ``mixed``: every scenario at once, with these weights
MIXED_WEIGHTS: dict[str, int] = {s.name: s.mixed_weight for s in REGISTRY}
RUNNERS: dict[str, Callable[[UserContext], None]] = {s.name: s.run for s in REGISTRY}
SETUP: dict[str, Callable[[UserContext], None]] = {s.name: s.setup for s in REGISTRY if s.setup is not None}


def selection_help() -> str:
    """``--scenario``'s help, from the registry."""
    return f"{', '.join(SCENARIOS)}, mixed (repeatable; NAME:WEIGHT sets a weight)"


def parse_selection(items: list[str] | None) -> dict[str, int]:
    """``["import-upload:3", "churn"]`` -> ``{"import-upload": 3, "churn": 1}``; ``mixed`` expands."""
    chosen: dict[str, int] = {}
    for item in items or ["import-upload"]:
        for part in item.split(","):
            part = part.strip()
            if not part:
                continue
            name, _, weight_text = part.partition(":")
            name = name.strip()
            try:
                weight = int(weight_text) if weight_text else None
            except ValueError:
                raise ValueError(f"weight of {name!r} must be an integer, got {weight_text!r}") from None
            if weight is not None and weight < 1:
                raise ValueError(f"weight of {name!r} must be >= 1")
            if name == "mixed":
                for scenario, default in MIXED_WEIGHTS.items():
                    chosen[scenario] = weight or default
            elif name in SCENARIOS:
                chosen[name] = weight or 1
            else:
                raise ValueError(f"unknown scenario {name!r} (known: {', '.join(SCENARIOS)}, mixed)")
    return chosen
