"""Judging a call against the transition table: which states the lease may be in, what the call
must answer there, and what the lease may be afterwards.

A mixin of :class:`nfclease.conformance.model.Model` (which supplies ``_check``,
``tolerance`` and the lease records); :mod:`nfclease.conformance.table` is the data.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from nfclease.conformance import table as T
from nfclease.conformance.state import LeaseModel
from nfclease.conformance.table import Observed
from nfclease.conformance.verdicts import Check, Judgement
from nfclease.conformance.vmodl import is_a
from nfclease.events import Event
from nfclease import vocabulary as V

DEVIATION_DELETED = "ManagedObjectNotFound: lease object deleted after release (FIELD-NOTES)"


class TableJudging:
    """The table-driven verdicts on lease calls and blocked operations, and the expiry timing."""

    def _judge(self, lease: LeaseModel, event: Event, case: str, obs: Observed) -> Judgement:
        """Judge the outcome against the table rows of every state the lease may be in."""
        possible, forced = self._possible_states(lease, event)
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
            if entity and case.split(":", 1)[0] in T.BLOCKED_OPERATIONS:
                # a VM operation judges the lock, it does not tell the lease's state: a PowerOn that
                # worked in the expiry window may mean an expired lease or a broken lock, so the
                # lease stays as uncertain as it was (else a lock deviation is blamed on release.*)
                new = set(possible)
        else:
            new = self._rejected(lease, event, case, obs, rows, possible, forced, expected, j)
        if not new:
            new = set(possible)
        self._enter(lease, event, case, obs, set(before), new)
        j.after = tuple(sorted(lease.possible))
        return j

    def _possible_states(self, lease: LeaseModel, event: Event) -> tuple[set[str], str | None]:
        """The states the lease may be in when the call ran, and the timing verdict forcing one.

        `forced` is "expired" when the lease must have expired, "alive" when it cannot have.
        """
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
        return possible, forced

    def _rejected(self, lease: LeaseModel, event: Event, case: str, obs: Observed, rows: Mapping[str, T.Row],
                  possible: set[str], forced: str | None, expected: str, j: Judgement) -> set[str]:
        """Checks for an outcome no possible state accepts (appended to `j`); returns the next states."""
        entity = T.CALLS[case].entity
        ready_row, expired_row = T.row(T.READY, case), T.row(T.EXPIRED, case)
        if forced == "expired" and ready_row.expect.accepts(obs):
            j.checks.append(self._check(
                "timeout.expires", False, expired_row.expect.describe(), str(obs),
                f"{self._timing_text(lease, event, 'expired')}; {event.call} expected "
                f"{expired_row.expect.describe()}, observed {obs}"))
            lease.outlived = True  # one deviation, one verdict: later calls are not judged as expired
            new = set(ready_row.next_states(T.READY, case, obs)) if not entity else {T.READY}
        elif forced == "alive" and not entity and expired_row.expect.accepts(obs):
            j.checks += self._alive_checks(lease, event, False, str(obs), ready_row.expect.describe())
            new = set(expired_row.next_states(T.EXPIRED, case, obs)) if not entity else {T.EXPIRED}
        else:
            blamed = dict.fromkeys(c for s in _blame_states(possible, obs) for c in rows[s].blamed(obs))
            if event.call in (V.READ, V.WAIT_READY):
                blamed.update(dict.fromkeys(lease.via[s] for s in possible if s in lease.via))
            what = f"{event.call} on a lease that is {'/'.join(sorted(possible))}"
            for c in blamed:
                j.checks.append(self._check(c, False, expected, str(obs),
                                            f"{what}: expected {expected}; observed {obs}"))
            new = self._resync(lease, event, case, obs, rows, possible)
        return new

    def _credit(self, lease: LeaseModel, event: Event, case: str, obs: Observed, rows: Mapping[str, T.Row],
                accepted: list[str], expected: str) -> list[Check]:
        """Pass checks for the clauses the observation really exercised.

        A clause is credited only when every state still possible names it:
        Complete succeeding on a lease that may be initializing or ready says
        nothing about ``complete.done``. Reads are the exception: what a Read
        shows is consistent with every accepted row's claim.
        """
        sets = [set(rows[s].clauses) for s in accepted]
        if event.call in (V.READ, V.WAIT_READY):
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
        if event.call in (V.READ, V.WAIT_READY):
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
        if event.call in (V.READ, V.WAIT_READY) and obs.kind == "ok":
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
            elif s == T.ERROR and case == V.ABORT:
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
        if was_ready and event.call == V.PROGRESS and obs.kind == "ok" and T.READY in new:
            lease.renew_lo = event.start
            lease.renewed_by_progress = True
        lease.prev_possible = set(lease.possible)
        lease.possible = new

    def _note_activity(self, lease: LeaseModel, event: Event, case: str | None, obs: Observed | None = None) -> None:
        """Bookkeeping every call does, whatever its verdict."""
        # a call on a lease that may be held may have renewed it; one surely expired (possible is
        # {expired} after the verdict) renewed nothing, and its expiry instant must stay put
        if event.call in T.MAY_RENEW and lease.possible & {T.READY, T.INITIALIZING}:
            lease.renew_hi = max(lease.renew_hi if lease.renew_hi is not None else event.end, event.end)
        if event.call in T.MOVES_TRANSFER_PROGRESS:
            lease.last_percent = None
        if event.call == V.PROGRESS and obs is not None and obs.kind == "ok":
            if case == V.PROGRESS:
                lease.last_percent = event.args.get("percent")
            else:
                lease.last_percent = None
                lease.out_of_range_accepted = True
        if event.call in T.TRANSFER_CALLS and event.args.get("device") is not None:
            lease.transfer_started.add(lease.key(event.args["device"]))
        lease.last_end = max(lease.last_end, event.end)

    def _timing(self, lease: LeaseModel, event: Event) -> str | None:
        """``alive`` / ``window`` / ``expired`` for a lease that may be ready; None if unknowable."""
        T_ = lease.lease_timeout
        if T_ is None or lease.renew_lo is None or lease.outlived:
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


def _describe(rows: Mapping[str, T.Row]) -> str:
    texts = {s: r.expect.describe() for s, r in sorted(rows.items())}
    if len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "; ".join(f"{s}: {t}" for s, t in texts.items())


#: faults that only a lease already released (or gone) answers with
_RELEASE_FAULTS = (T.TIMEDOUT, T.INVALID_STATE, T.NOT_FOUND)


def _blame_states(possible: set[str], obs: Observed) -> list[str]:
    """The states whose clauses a refused call is blamed on.

    In the expiry window (ready or expired) a fault no state accepts would
    otherwise count against both ``timeout.*`` and the ready row's clause, one
    deviation twice, and which one depends on machine load. A fault only a
    released lease gives (Timedout, InvalidState, ManagedObjectNotFound) is the
    timed-out lease's answer; any other is the ready lease's.
    """
    states = sorted(possible)
    if {T.READY, T.EXPIRED} <= possible and obs.kind == "fault":
        released = any(is_a(obs.fault or "", f) for f in _RELEASE_FAULTS)
        states = [s for s in states if (s in T.RELEASED) == released] or states
    return states
