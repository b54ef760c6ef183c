"""The knee of a stepped run: where adding users stops adding throughput.

:func:`find_knee` reads a run's figures per step (``(users, wall start, wall
end)`` windows, e.g. from :class:`nfclease.load.shapes.StepShape`), ignoring the first
quarter of each step (ramp-up and in-flight work of the previous step):

* the step's *work rate*: MB/s of transfers when the selection moves data,
  else SOAP calls per second;
* scaling efficiency against the previous step:
  ``(rate_i / rate_{i-1} - 1) / (users_i / users_{i-1} - 1)`` (1.0 = linear);
* the step is *saturated* when that efficiency falls below ``min_efficiency``
  (0.25); when the p95 SOAP latency more than doubles (``latency_factor``,
  and by more than 5 ms) from the previous step while efficiency is below
  0.5 (latency that rises while throughput still scales is concurrency, not
  saturation); or when more than 1 % of calls fail.

The knee is the last step before the first saturated one. If no step
saturates, the knee is not reached: the report says so and names the best
step. No Locust import here (pure figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nfclease.load.figures import MB, Figures, percentile

EXCLUDED = {"setup", "teardown"}
MIN_EFFICIENCY = 0.25
LATENCY_FACTOR = 2.0
LATENCY_FLOOR_MS = 5.0
LATENCY_EFFICIENCY = 0.5
MAX_FAILURE_RATIO = 0.01
WARMUP_FRACTION = 0.25


@dataclass
class Step:
    users: int
    start: float
    end: float
    rate: float = 0.0
    unit: str = "MB/s"
    p95_ms: float | None = None
    calls: int = 0
    failures: int = 0
    efficiency: float | None = None
    saturated: bool = False
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"users": self.users, "rate": round(self.rate, 3), "unit": self.unit,
                "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 2), "calls": self.calls,
                "failures": self.failures,
                "efficiency": None if self.efficiency is None else round(self.efficiency, 3),
                "saturated": self.saturated, "why": self.why}


def _measure_step(records: dict[str, list[Any]], users: int, start: float, end: float, moves_data: bool) -> Step:
    """One step's rate (MB/s, or calls/s when nothing moves data), p95, calls and failures after its warm-up."""
    lo = start + WARMUP_FRACTION * (end - start)
    seconds = max(1e-9, end - lo)
    step = Step(users, start, end, unit="MB/s" if moves_data else "calls/s")
    soap = [r for r in records["soap"] if lo <= r[3] < end]
    xfers = [r for r in records["xfer"] if r[4] > lo and r[3] < end]
    if moves_data:
        moved = 0.0
        for r in xfers:
            if not r[5]:
                continue
            span = max(1e-9, r[4] - r[3])
            overlap = max(0.0, min(end, r[4]) - max(lo, r[3]))
            moved += r[2] * overlap / span
        step.rate = moved / MB / seconds
    else:
        step.rate = len(soap) / seconds
    step.p95_ms = percentile([r[2] for r in soap], 95)
    step.calls = len(soap) + len([r for r in xfers if lo <= r[4] < end])
    step.failures = len([r for r in soap if not r[4]]) + len([r for r in xfers if not r[5] and lo <= r[4] < end])
    return step


def find_knee(figures: Figures, windows: list[tuple[int, float, float]], *,
              min_efficiency: float = MIN_EFFICIENCY, latency_factor: float = LATENCY_FACTOR,
              max_failure_ratio: float = MAX_FAILURE_RATIO) -> dict[str, Any]:
    """The knee of a stepped run (see the module doc): ``{knee_users, reached, best_users, steps}``."""
    records = {kind: [r for r in rows if r[0] not in EXCLUDED] for kind, rows in figures.snapshot().items()}
    moves_data = any(r[5] and r[2] for r in records["xfer"])
    steps = [_measure_step(records, users, start, end, moves_data) for users, start, end in windows]

    knee: Step | None = None
    for i, step in enumerate(steps):
        reasons = []
        previous = steps[i - 1] if i > 0 else None
        if previous is not None and previous.rate > 0 and step.users > previous.users:
            gain = step.rate / previous.rate - 1
            step.efficiency = gain / (step.users / previous.users - 1)
            if step.efficiency < min_efficiency:
                reasons.append(f"scaling efficiency {step.efficiency:.2f} < {min_efficiency}")
            elif step.efficiency < LATENCY_EFFICIENCY and previous.p95_ms is not None and step.p95_ms is not None \
                    and step.p95_ms > latency_factor * previous.p95_ms and step.p95_ms - previous.p95_ms > LATENCY_FLOOR_MS:
                reasons.append(f"p95 {step.p95_ms:.1f} ms > {latency_factor:g} x {previous.p95_ms:.1f} ms "
                               f"while scaling only {step.efficiency:.2f}")
        if step.calls and step.failures / step.calls > max_failure_ratio:
            reasons.append(f"{step.failures}/{step.calls} failed")
        if reasons:
            step.saturated = True
            step.why = "; ".join(reasons)
            if knee is None:
                knee = previous if previous is not None else step
    best = max(steps, key=lambda s: s.rate) if steps else None
    return {
        "reached": knee is not None,
        "knee_users": knee.users if knee is not None else None,
        "knee_rate": round(knee.rate, 3) if knee is not None else None,
        "best_users": best.users if best else None,
        "best_rate": round(best.rate, 3) if best else None,
        "unit": steps[0].unit if steps else None,
        "criteria": {"min_efficiency": min_efficiency, "latency_factor": latency_factor,
                     "max_failure_ratio": max_failure_ratio, "warmup_fraction": WARMUP_FRACTION},
        "steps": [s.as_dict() for s in steps],
    }


def describe_knee(knee: dict[str, Any]) -> str:
    if not knee.get("steps"):
        return "knee: no steps ran"
    if knee["reached"]:
        saturated = next(s for s in knee["steps"] if s["saturated"])
        return (f"knee at {knee['knee_users']} users ({knee['knee_rate']} {knee['unit']}); "
                f"at {saturated['users']} users: {saturated['why']}")
    return (f"knee not reached up to {knee['steps'][-1]['users']} users; "
            f"best {knee['best_rate']} {knee['unit']} at {knee['best_users']} users")
