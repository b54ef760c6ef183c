"""The event stream: the one record of what happened during a run.

Every lease call, transfer, wait and blocked operation the suite makes is an
:class:`Event`. Conformance feeds events to the reference model, load turns
them into Locust ``request`` events, reports read them, and a history file
(JSONL, one event per line) lets ``nfclease check-history`` replay a run
offline and reach the same verdicts. Nothing downstream talks to pyvmomi.

An event is written once, when its outcome is known:

* ``ok``   -- the call returned; ``value`` holds a JSON-able summary of it;
* ``fail`` -- the call raised a vSphere fault or an HTTP error; ``fault`` is the
  fault's vmodl name (``vim.fault.InvalidState``) or ``http.<status>``;
* ``info`` -- the outcome is unknown (connection dropped, client timeout).

``start``/``end`` are ``time.monotonic()`` readings taken around the call, so
the model can judge time-dependent clauses (lease expiry) with a tolerance
window instead of luck.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

from nfclease.redaction import redact

Outcome = Literal["ok", "fail", "info"]

__all__ = ["Event", "EventStream", "HistoryWriter", "Listener", "Outcome", "read_history", "redact"]

@dataclass
class Event:
    """One call against a target and its outcome."""

    call: str
    lease: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome = "ok"
    value: Any = None
    fault: str | None = None
    message: str | None = None
    start: float = 0.0
    end: float = 0.0
    seq: int = 0

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Event":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


Listener = Callable[[Event], None]


class EventStream:
    """Fan-out of events to listeners (model, history file, Locust, reporters).

    Thread-safe: load runs many users at once. Sequence numbers are assigned
    here so a history has one total order even when calls overlap.
    """

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self._listeners: list[Listener] = list(listeners)
        self._lock = threading.Lock()
        self._seq = 0

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: Event) -> Event:
        """Number ``event``, mask its secrets (the one redaction boundary), hand it to every listener."""
        event.args = redact(event.args)
        event.value = redact(event.value)
        if event.message:
            event.message = redact(event.message)
        with self._lock:
            self._seq += 1
            event.seq = self._seq
            for listener in self._listeners:
                listener(event)
        return event


class HistoryWriter:
    """A listener that appends each event to a JSONL history file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")

    def __call__(self, event: Event) -> None:
        self._file.write(event.to_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_history(path: str | Path) -> Iterator[Event]:
    """Yield the events of a JSONL history, naming the line of any bad record."""
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield Event.from_dict(json.loads(line))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a history event: {exc}") from exc
