"""The direct per-clause sequences: short deterministic programs of lease calls, one per part of the spec.

Each clause declares, in the catalogue (:attr:`nfclease.conformance.clauses.Clause.sequences`),
the sequences that exercise it in order of preference: the per-clause tests
run the first, and the next ones while the clause is still unexercised (a
target without export leases is judged on imports). Adding a sequence is a
function here, an entry in :data:`SEQUENCES`, and its name on the clauses it serves.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from nfclease.conformance import table as T
from nfclease.conformance.clauses import CLAUSES
from nfclease.conformance.context import (
    DISK_CAPACITY, FILE_SIZE, WAIT_READY, RunContext, attach_reference, foreign_call, pull_files,
)
from nfclease import session as S
from nfclease import vocabulary as V
from nfclease.strategies import BOGUS_KEY


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

    def still_ready(self, session: S.LeaseSession) -> bool:
        """Read the lease: is it (still) ready?"""
        seen = S.attempt(session.read)
        return seen.ok and (seen.result or {}).get("state") == "ready"

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
            keys = [u.key for u in lease.device_urls()] or [BOGUS_KEY]  # a lease without info: still a call
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
        if ctx.api_at_least("6.7") and urls:  # (a ready lease without deviceUrl is a FAIL already)
            d.call(lease.set_manifest_checksum_type, {urls[0].key: "sha256", urls[-1].key: "sha1"})
            d.call(lease.set_manifest_checksum_type, {BOGUS_KEY: "sha1"})
        for url in urls:
            d.call(lease.upload, url, "whole", sha256=True)
        d.call(lease.upload, urls[-1] if urls else 0, "whole", sha256=True,  # the body after 100 Continue
               expect_continue=True)
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
    probes = [("complete", V.COMPLETE), ("complete", V.ABORT), ("complete", V.PROGRESS), ("complete", V.GET_MANIFEST),
              ("abort", V.ABORT), ("abort", V.COMPLETE), ("abort", V.GET_MANIFEST), ("abort", V.TASK_INFO)]
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
            probe = {V.COMPLETE: lease.complete, V.ABORT: lease.abort, V.GET_MANIFEST: lease.get_manifest,
                     V.TASK_INFO: lease.task_info, V.PROGRESS: lambda: lease.progress(10)}[call]
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
    """Pull mode: a good pull, then short, unreachable and untrusted source lists (a fresh lease
    whenever a failed pull ended the previous one)."""
    ctx = d.ctx
    if not ctx.api_at_least("6.7"):
        return
    good = d.acquire_import(disks=1, files=1)
    try:
        if good is not None and d.ready(good):
            d.call(good.pull_from_urls, pull_files(ctx, good, "good"), "good", 30.0)
            d.call(good.read)
            d.call(good.get_manifest)
            d.call(good.complete)
    finally:
        d.release(good)
    bad: S.LeaseSession | None = None
    try:
        for variant in ("short", "unreachable", "untrusted"):
            if bad is None or not d.still_ready(bad):
                d.release(bad)
                bad = d.acquire_import(disks=1)
                if bad is None or not d.ready(bad):
                    return
            d.call(bad.pull_from_urls, pull_files(ctx, bad, variant), variant, 30.0)
    finally:
        d.release(bad)


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
        for call in (V.READ, V.PROGRESS, V.COMPLETE):
            foreign_call(other, call)
        bogus = attach_reference(ctx, "bogus", ctx.bogus_moid())
        for call in (V.READ, V.ABORT):
            foreign_call(bogus, call)
        stale = S.LeaseSession(ctx.target, ctx.stream, ctx.target.lease_ref(lease.moid), kind="import",
                               handle=lease.handle)
        foreign_call(stale, V.READ)
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
    # past the first timeout without renewal, still surely inside the renewed one: late in that
    # span, where a server whose Progress did not renew has expired the lease (timeout.renewed)
    acquired_last = ctx.lease_model(last.handle).acquired_at
    lo, hi = acquired_last + timeout - tol, renewed + timeout - tol
    if hi - lo > 0.2:
        d.sleep_until(last, hi - (hi - lo) / 4)
        d.call(last.read)
    # clearly expired: a lease living on past the advertised timeout fails timeout.expires. As soon as
    # the tolerance allows: a server advertising half its real timeout is caught only before that ends
    latest = max((ctx.lease_model(s.handle).renew_hi or 0.0) for s in leases)
    d.sleep_until(first, latest + timeout + tol + 0.05)
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

#: clause id -> the sequences that exercise it, as the catalogue declares.
SEQUENCE_OF: dict[str, tuple[str, ...]] = {c.id: c.sequences for c in CLAUSES}


def run_sequences(ctx: RunContext, names: Iterable[str] | None = None) -> None:
    """Run the direct sequences (all by default) against the context's target."""
    d = Direct(ctx)
    for name in (names if names is not None else SEQUENCES):
        SEQUENCES[name](d)
        ctx.take_pending()
