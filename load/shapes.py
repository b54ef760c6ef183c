"""A stepped load shape that finds the knee: where adding users stops adding throughput.

:class:`StepShape` holds each user count for ``step_seconds`` (1, 2, 4, ...
up to the maximum by default), then stops the run; :func:`nfclease.load.knee.find_knee`
then judges each step (scaling efficiency, p95 latency, failures) and names
the knee: the last step before the first saturated one. Use it from the
command line with ``nfclease load --step-shape``, or with Locust itself: ``locust -f load/locustfile.py,load/shapes.py``
(``NFCLEASE_STEPS="1,2,4,8"``, ``NFCLEASE_STEP_SECONDS=20``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # loaded by path (locust -f ...,load/shapes.py)
    _root = str(Path(__file__).resolve().parents[1])
    if _root not in sys.path:
        sys.path.insert(0, _root)

from locust import LoadTestShape  # noqa: E402

from nfclease.load.knee import describe_knee, find_knee  # noqa: E402,F401  (re-exported)


def doubling_steps(maximum: int) -> list[int]:
    """1, 2, 4, ... then ``maximum`` itself."""
    steps, users = [], 1
    while users < maximum:
        steps.append(users)
        users *= 2
    steps.append(max(1, maximum))
    return steps


class StepShape(LoadTestShape):
    """Hold each of ``steps`` user counts for ``step_seconds``; stop after the last."""

    def __init__(self, steps: list[int] | None = None, step_seconds: float | None = None,
                 spawn_rate: float | None = None) -> None:
        super().__init__()
        env_steps = os.environ.get("NFCLEASE_STEPS")
        self.steps = steps or ([int(s) for s in env_steps.split(",")] if env_steps else doubling_steps(8))
        self.step_seconds = step_seconds or float(os.environ.get("NFCLEASE_STEP_SECONDS", "20"))
        self.spawn_rate = spawn_rate or float(max(self.steps))
        self.started_wall = time.time()

    def reset_time(self) -> None:
        super().reset_time()
        self.started_wall = time.time()

    @property
    def total_seconds(self) -> float:
        return self.step_seconds * len(self.steps)

    def tick(self) -> tuple[int, float] | None:
        index = int(self.get_run_time() // self.step_seconds)
        if index >= len(self.steps):
            return None
        return self.steps[index], self.spawn_rate

    def windows(self) -> list[tuple[int, float, float]]:
        """``(users, wall start, wall end)`` of each step."""
        return [(users, self.started_wall + i * self.step_seconds, self.started_wall + (i + 1) * self.step_seconds)
                for i, users in enumerate(self.steps)]




def _report_knee(environment: object, **_kwargs: object) -> None:
    """Under ``locust -f load/locustfile.py,load/shapes.py``: print the knee when the test stops."""
    shape = getattr(environment, "shape_class", None)
    context = getattr(environment, "nfclease", None)
    if isinstance(shape, StepShape) and context is not None:
        print("nfclease: " + describe_knee(find_knee(context.figures, shape.windows())), flush=True)


if __package__ in (None, ""):  # only when Locust loads this file as a locustfile
    from locust import events

    events.test_stop.add_listener(_report_knee)
