"""Verdict types: a check on one event, the judgement of an event, and the running verdict per clause.

:class:`ClauseVerdicts` folds judgements into one verdict per clause: PASS
(checked at least once, never failed), FAIL (first failing event, its message
and a repro: the lease's calls up to it) or NA (never exercised, or the
target's API version predates the clause).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

from nfclease.conformance.clauses import CLAUSES, Clause
from nfclease.conformance.vmodl import version_at_least
from nfclease import vocabulary as V
from nfclease.events import Event
from nfclease.reports.results import ClauseResult

Verdict = Literal["pass", "fail", "na"]
Status = Literal["PASS", "FAIL", "NA", "XFAIL", "XPASS"]


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
        return {s: counts.get(s, 0) for s in V.STATUSES}
