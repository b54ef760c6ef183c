"""The client judge: a pure model that grades a recorded client conversation, clause by clause.

Input: the events the simulator recorded (``nfclease sim --record DIR``), one
list per session file. Output: one :class:`Verdict` per clause of
``conformance/client_clauses.py`` (PASS, FAIL or NA, with the evidence), and
optionally a ``scenario`` verdict: did the client end the way the recorded
scenario says a correct client ends (Complete or a reported failure, within
its time)? Nothing here talks to a server: the same files judged twice give
the same verdicts.

Each check looks at one lease at a time (:class:`LeaseTrack`) and says
``(status, evidence)`` or None (nothing to judge on that lease); a clause
FAILs if any lease fails it, PASSes if some lease passes and none fails, and
is NA otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Sequence

from nfclease.conformance.client_clauses import BY_ID, CLIENT_CLAUSES
from nfclease.events import Event, read_history
from nfclease import vocabulary as V

Status = Literal["PASS", "FAIL", "NA"]
STREAM_VMDK = "application/x-vnd.vmware-streamvmdk"
USES = (V.UPLOAD, V.DOWNLOAD, V.PROGRESS, V.COMPLETE, V.GET_MANIFEST, V.SET_MANIFEST_CHECKSUM_TYPE, V.PULL_FROM_URLS)
AFTER_RELEASE = (V.COMPLETE, V.ABORT, V.GET_MANIFEST, V.SET_MANIFEST_CHECKSUM_TYPE, V.PULL_FROM_URLS, V.UPLOAD, V.DOWNLOAD)
ERROR_POLL_READS = 25     # reads of a lease after it showed error (every thread of the client)...
ERROR_POLL_SECONDS = 5.0  # ...or seconds of reading it: past either, the client is polling on


@dataclass
class Verdict:
    """One clause's verdict on a client, with what it rests on."""

    clause: str
    status: Status
    evidence: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"clause": self.clause, "status": self.status, "evidence": self.evidence}


@dataclass
class LeaseTrack:
    """Everything recorded about one lease of one session, in order."""

    name: str
    events: list[Event]
    target: dict[str, Any]
    scenario: dict[str, Any]

    def calls(self, *names: str) -> list[Event]:
        return [e for e in self.events if e.call in names]

    @property
    def kind(self) -> str | None:
        acquired = self.calls(V.ACQUIRE)
        return acquired[0].args.get("kind") if acquired else None

    def reads(self) -> list[Event]:
        return [e for e in self.calls(V.READ) if isinstance(e.value, dict)]

    def info(self) -> dict[str, Any] | None:
        return next((e.value["info"] for e in self.reads() if e.value.get("info")), None)

    def devices(self) -> list[dict[str, Any]]:
        info = self.info()
        return list(info.get("deviceUrl") or []) if info else []

    def lease_timeout(self) -> float:
        info = self.info()
        if info and info.get("leaseTimeout"):
            return float(info["leaseTimeout"])
        settings = self.scenario.get("settings") or {}
        return float(settings.get("lease_timeout") or self.target.get("leaseTimeout") or 300.0)

    def server_state(self, state: str) -> Event | None:
        return next((e for e in self.calls("State") if e.args.get("state") == state), None)

    def released(self) -> Event | None:
        """The client's first successful Complete or Abort of this lease."""
        return next((e for e in self.calls(V.COMPLETE, V.ABORT) if e.outcome == "ok"), None)

    def transfers(self) -> list[Event]:
        return self.calls(V.UPLOAD, V.DOWNLOAD)

    def failed_devices(self) -> dict[str, Event]:
        """Devices whose last transfer failed (or was broken on purpose and never redone)."""
        last: dict[str, Event] = {}
        for event in self.transfers():
            last[str(event.args.get("device"))] = event
        return {k: e for k, e in last.items() if e.outcome != "ok"}


Check = Callable[[LeaseTrack], "tuple[Status, str] | None"]


def _t(track: LeaseTrack, when: float) -> str:
    first = track.events[0].start if track.events else 0.0
    return f"+{when - first:.1f} s"


def _held_span(track: LeaseTrack) -> tuple[float, float] | None:
    ready = track.server_state("ready")
    if ready is None:
        seen = next((e for e in track.reads() if e.value.get("state") == "ready"), None)
        if seen is None:
            return None
        start = seen.end
    else:
        start = ready.start
    ends = [e.start for e in track.calls(V.COMPLETE, V.ABORT)]
    ends += [e.start for e in track.calls("State") if e.args.get("state") in ("done", "error")]
    if not ends:
        ends = [max(e.end for e in track.events)]
    return start, min(ends)


def _renewal_gaps(track: LeaseTrack) -> tuple[list[float], int] | None:
    span = _held_span(track)
    if span is None:
        return None
    start, end = span
    renewals = [e.end for e in track.calls(V.PROGRESS) if e.outcome == "ok" and start <= e.end <= end]
    points = [start, *renewals, end]
    return [b - a for a, b in zip(points, points[1:])], len(renewals)


def check_renew(track: LeaseTrack, share: float = 1.0) -> tuple[Status, str] | None:
    found = _renewal_gaps(track)
    if found is None:
        return None
    gaps, count = found
    limit = track.lease_timeout() * share
    timed_out = next((e for e in track.calls("State") if e.args.get("cause") == "timeout"), None)
    if share == 1.0 and timed_out is not None:
        return "FAIL", f"{track.name}: the lease timed out under the client at {_t(track, timed_out.start)} " \
                       f"({count} renewals, leaseTimeout {track.lease_timeout():g} s)"
    worst = max(gaps)
    if count == 0 and sum(gaps) < track.lease_timeout() / 2:
        return None
    what = "leaseTimeout" if share == 1.0 else f"{share:g} x leaseTimeout"
    if worst > limit:
        return "FAIL", f"{track.name}: {worst:.1f} s without renewal ({count} renewals), over {what} = {limit:g} s"
    return "PASS", f"{track.name}: {count} renewals, longest gap {worst:.1f} s of {what} = {limit:g} s"


def check_progress_range(track: LeaseTrack) -> tuple[Status, str] | None:
    sent = [e.args.get("percent") for e in track.calls(V.PROGRESS)]
    if not sent:
        return None
    bad = [p for p in sent if not isinstance(p, int) or not 0 <= p <= 100]
    if bad:
        return "FAIL", f"{track.name}: Progress({bad[0]}) among {len(sent)} calls"
    return "PASS", f"{track.name}: {len(sent)} Progress calls within 0-100"


def _after_release(track: LeaseTrack, names: Sequence[str]) -> tuple[Status, str] | None:
    released = track.released()
    if released is None:
        return None
    late = [e for e in track.calls(*names) if e.start > released.end and e is not released]
    if late:
        first = late[0]
        return "FAIL", f"{track.name}: {first.call} at {_t(track, first.start)} after its {released.call} at " \
                       f"{_t(track, released.end)} ({len(late)} such call(s), first answered {first.fault or 'ok'})"
    return "PASS", f"{track.name}: nothing sent after its {released.call}"


def check_progress_after_release(track: LeaseTrack) -> tuple[Status, str] | None:
    return _after_release(track, (V.PROGRESS,))


def check_release_unused(track: LeaseTrack) -> tuple[Status, str] | None:
    return _after_release(track, AFTER_RELEASE)


def check_abort_on_failure(track: LeaseTrack) -> tuple[Status, str] | None:
    if track.server_state("ready") is None and not any(e.value.get("state") == "ready" for e in track.reads()):
        return None
    failed = track.failed_devices()
    aborts = track.calls(V.ABORT)
    completes = track.calls(V.COMPLETE)
    if failed:
        device, event = next(iter(failed.items()))
        why = f"{event.call} of {device} ended {event.fault}"
        if completes and (not aborts or completes[0].seq < aborts[0].seq):
            return "FAIL", f"{track.name}: Complete after a failed transfer ({why})"
        if aborts:
            return "PASS", f"{track.name}: Abort after {why}"
        ended = next((e for e in track.calls("State") if e.args.get("state") == "error"), None)
        if ended is not None and ended.start <= event.end:
            return None  # the server had ended the lease (it timed out) before the failure: nothing to abort
        return "FAIL", f"{track.name}: no Abort after {why}: the lease was left held"
    if completes or aborts:
        return None  # nothing failed (or it was cancelled and aborted: judged by abort-fault)
    ended = next((e for e in track.calls("State") if e.args.get("state") == "error"), None)
    note = f", until it timed out at {_t(track, ended.start)}" if ended is not None else ""
    return "FAIL", f"{track.name}: ready lease neither completed nor aborted (cancelled without Abort{note})"


def check_abort_fault(track: LeaseTrack) -> tuple[Status, str] | None:
    aborts = track.calls(V.ABORT)
    if not aborts:
        return None
    bare = [e for e in aborts if not e.args.get("fault")]
    if bare:
        return "FAIL", f"{track.name}: Abort without a fault"
    return "PASS", f"{track.name}: Abort({aborts[0].args['fault']})"


def check_complete_all(track: LeaseTrack) -> tuple[Status, str] | None:
    completes = track.calls(V.COMPLETE)
    if track.kind != "import" or not completes or not track.devices():
        return None
    done = {str(e.args.get("device")) for e in track.calls(V.UPLOAD)  # begun before Complete: done before it
            if e.outcome == "ok" and e.start < completes[0].start}
    missing = [d["key"] for d in track.devices() if d["key"] not in done]
    if missing:
        return "FAIL", f"{track.name}: Complete with {len(missing)} of {len(track.devices())} devices not uploaded " \
                       f"({missing[0]})"
    return "PASS", f"{track.name}: Complete after all {len(done)} devices were uploaded"


def check_wait_ready(track: LeaseTrack) -> tuple[Status, str] | None:
    used = track.calls(*USES)
    if not used:
        return None
    first = used[0]
    seen = next((e for e in track.reads() if e.value.get("state") == "ready" and e.seq < first.seq), None)
    if seen is None:
        answer = f" (answered {first.fault})" if first.fault else ""
        return "FAIL", f"{track.name}: {first.call} at {_t(track, first.start)} before any read showed the lease " \
                       f"ready{answer}"
    return "PASS", f"{track.name}: first {first.call} after a read showed ready"


def check_wait_error(track: LeaseTrack) -> tuple[Status, str] | None:
    reads = track.reads()
    if any(e.value.get("state") == "ready" for e in reads):
        return None
    shown = next((e for e in reads if e.value.get("state") == "error" or e.value.get("error")), None)
    if shown is None:
        return None
    later = [e for e in reads if e.seq > shown.seq]
    used = [e for e in track.transfers() if e.seq > shown.seq]
    span = (later[-1].start - shown.end) if later else 0.0
    if used:
        return "FAIL", f"{track.name}: {used[0].call} after the lease showed error"
    if len(later) > ERROR_POLL_READS or span > ERROR_POLL_SECONDS:
        return "FAIL", f"{track.name}: kept polling after the lease showed error: {len(later)} more reads over " \
                       f"{span:.1f} s"
    return "PASS", f"{track.name}: stopped waiting when the lease showed error ({len(later)} more reads)"


def check_star_host(track: LeaseTrack) -> tuple[Status, str] | None:
    starred = [d for d in track.devices() if "://*" in str(d.get("url"))]
    if not starred:
        return None
    if track.transfers():
        return "PASS", f"{track.name}: transfers reached the simulator although device URLs carried '*'"
    return "FAIL", f"{track.name}: device URLs carried '*' ({starred[0]['url']}); no transfer reached the simulator"


def _print(thumbprint: str | None) -> str:
    return (thumbprint or "").replace(":", "").lower()


def check_thumbprint(track: LeaseTrack) -> tuple[Status, str] | None:
    served = _print(track.target.get("thumbprint"))
    announced = {_print(d.get("sslThumbprint")) for d in track.devices() if d.get("sslThumbprint")}
    if not served or not announced or announced == {served}:
        return None
    reached = track.transfers()
    if reached:
        return "FAIL", f"{track.name}: {reached[0].call} to a server whose certificate is not the announced " \
                       f"sslThumbprint"
    return "PASS", f"{track.name}: refused to transfer to a server whose certificate did not match"


def check_checksum_first(track: LeaseTrack) -> tuple[Status, str] | None:
    sets = track.calls(V.SET_MANIFEST_CHECKSUM_TYPE)
    if not sets:
        return None
    transfers = track.transfers()
    late = [e for e in sets if transfers and e.seq > transfers[0].seq]
    if late:
        return "FAIL", f"{track.name}: SetManifestChecksumType at {_t(track, late[0].start)} after a " \
                       f"{transfers[0].call} started"
    return "PASS", f"{track.name}: checksum types set before any transfer"


def check_upload_method(track: LeaseTrack) -> tuple[Status, str] | None:
    uploads = track.calls(V.UPLOAD)
    if not uploads:
        return None
    for e in uploads:
        disk, method = (e.value or {}).get("disk"), e.args.get("method")
        if disk and method != "POST":
            return "FAIL", f"{track.name}: disk {e.args.get('device')} uploaded with {method}, not POST"
        if disk is False and (method != "PUT" or str(e.args.get("overwrite") or "").lower() != "t"):
            return "FAIL", f"{track.name}: file {e.args.get('device')} uploaded with {method} " \
                           f"(Overwrite: {e.args.get('overwrite')}), not PUT with Overwrite: t"
    return "PASS", f"{track.name}: {len(uploads)} uploads with the right method"


def _disk_uploads(track: LeaseTrack) -> list[Event]:
    return [e for e in track.calls(V.UPLOAD) if (e.value or {}).get("disk")]


def check_upload_content_type(track: LeaseTrack) -> tuple[Status, str] | None:
    uploads = _disk_uploads(track)
    if not uploads:
        return None
    for e in uploads:
        kind = str(e.args.get("contentType") or "").split(";")[0].strip().lower()
        if kind != STREAM_VMDK:
            return "FAIL", f"{track.name}: disk upload with Content-Type {e.args.get('contentType')!r}"
        if e.args.get("contentLength") is None:
            return "FAIL", f"{track.name}: disk upload without Content-Length " \
                           f"(Transfer-Encoding: {e.args.get('transferEncoding')})"
    return "PASS", f"{track.name}: {len(uploads)} disk uploads with Content-Type streamVmdk and a Content-Length"


def check_upload_stream_vmdk(track: LeaseTrack) -> tuple[Status, str] | None:
    uploads = [e for e in _disk_uploads(track) if not (e.value or {}).get("injected")]
    refused = [e for e in uploads if (e.value or {}).get("status") == 400 and "body ended" not in (e.message or "")]
    if refused:
        return "FAIL", f"{track.name}: {refused[0].message}"
    good = [e for e in uploads if e.outcome == "ok"]
    return ("PASS", f"{track.name}: {len(good)} disk uploads were streamOptimized VMDKs") if good else None


CHECKS: dict[str, Check] = {
    "client.renew": check_renew,
    "client.renew-margin": lambda t: check_renew(t, 0.75),
    "client.progress-range": check_progress_range,
    "client.progress-after-release": check_progress_after_release,
    "client.release-unused": check_release_unused,
    "client.abort-on-failure": check_abort_on_failure,
    "client.abort-fault": check_abort_fault,
    "client.complete-all": check_complete_all,
    "client.wait-ready": check_wait_ready,
    "client.wait-error": check_wait_error,
    "client.star-host": check_star_host,
    "client.thumbprint": check_thumbprint,
    "client.checksum-first": check_checksum_first,
    "client.upload-method": check_upload_method,
    "client.upload-content-type": check_upload_content_type,
    "client.upload-stream-vmdk": check_upload_stream_vmdk,
}
assert set(CHECKS) == set(BY_ID), "every client clause has exactly one check"


def tracks(sessions: Sequence[tuple[str, Sequence[Event]]]) -> list[LeaseTrack]:
    """The leases of recorded sessions (``(name, events)`` each), named ``session:L1``."""
    found: list[LeaseTrack] = []
    for name, events in sessions:
        target = next((e.value for e in events if e.call == V.TARGET and isinstance(e.value, dict)), {})
        scenario = next((e.value for e in reversed(events) if e.call == "Scenario" and isinstance(e.value, dict)), {})
        by_lease: dict[str, list[Event]] = {}
        # in the order the server finished them: a record written a moment after the answer it gave
        # (an upload's) still comes before what the client did on that answer
        for order, event in enumerate(sorted(events, key=lambda e: (e.end, e.seq)), 1):
            event.seq = order
            if event.lease:
                by_lease.setdefault(event.lease, []).append(event)
        found += [LeaseTrack(f"{name}:{lease}", evs, target, scenario) for lease, evs in by_lease.items()]
    return found


def judge(sessions: Sequence[tuple[str, Sequence[Event]]]) -> list[Verdict]:
    """One verdict per client clause, in catalogue order."""
    leases = tracks(sessions)
    verdicts = []
    for clause in CLIENT_CLAUSES:
        results = [r for r in (CHECKS[clause.id](t) for t in leases) if r is not None]
        fails = [text for status, text in results if status == "FAIL"]
        if fails:
            verdicts.append(Verdict(clause.id, "FAIL", fails))
        elif results:
            verdicts.append(Verdict(clause.id, "PASS", [text for _, text in results]))
        else:
            reason = "no lease recorded" if not leases else "nothing in the conversation this clause applies to"
            verdicts.append(Verdict(clause.id, "NA", [reason]))
    return verdicts


def judge_outcome(sessions: Sequence[tuple[str, Sequence[Event]]], exit_code: int | None,
                  timed_out: bool = False) -> Verdict:
    """Did the client end as the recorded scenario says a correct client ends?"""
    scenario = next((e.value for _, events in sessions for e in reversed(events)
                     if e.call == "Scenario" and isinstance(e.value, dict)), {"name": "?", "outcome": "either"})
    name, wanted = scenario.get("name"), scenario.get("outcome", "either")
    leases = [t for t in tracks(sessions) if t.kind]
    completed = [t for t in leases if any(e.outcome == "ok" for e in t.calls(V.COMPLETE))]
    finished = bool(leases) and len(completed) == len(leases)
    if timed_out:
        return Verdict("scenario", "FAIL", [f"{name}: the client did not end in time (killed)"])
    if exit_code == 0 and not finished:
        return Verdict("scenario", "FAIL", [f"{name}: exit status 0 although {len(leases) - len(completed)} of "
                                            f"{len(leases)} leases were not completed"])
    if exit_code not in (0, None) and finished:
        return Verdict("scenario", "FAIL", [f"{name}: every lease completed, yet exit status {exit_code}"])
    if wanted == "complete" and not finished:
        return Verdict("scenario", "FAIL", [f"{name}: a correct client completes here; it did not "
                                            f"(exit status {exit_code})"])
    if wanted == "fail" and finished:
        return Verdict("scenario", "FAIL", [f"{name}: a correct client fails here; it completed"])
    how = "completed" if finished else f"reported the failure (exit status {exit_code})"
    return Verdict("scenario", "PASS", [f"{name}: {how}; expected: {scenario.get('correct', wanted)}"])


def load_sessions(paths: Iterable[str | Path]) -> list[tuple[str, list[Event]]]:
    """``(file stem, events)`` for each recorded session file."""
    return [(Path(p).stem, list(read_history(p))) for p in paths]
