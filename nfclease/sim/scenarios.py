"""Client fault-injection scenarios: what the simulator does *to a client*, and what a correct client does.

Deviations (``deviations.py``) make the simulator a wrong *server*, to test
the conformance suite. Scenarios keep the server right but make the world
hostile, to test *clients*: a connection cut mid-upload, a 500 or 503, a
stalled transfer, a lease that times out mid-transfer or fails while the
client waits for ready, ``*`` hosts, a thumbprint that does not match, slow
Progress. Each scenario declares, as data, how a correct client reacts
(``correct``) and how its operation ends (``outcome``); the recorder writes
both into every session it records, and the client judge
(``conformance/client_judge.py``) grades against them. The simulator never
learns which client clause a scenario exercises.

Switch at run time without SOAP: ``SimConfig(scenario=...)``, ``nfclease sim
--scenario NAME``, or ``PUT /nfclease/scenario`` with the name as the body
(``GET`` lists them). A switch applies to leases created and transfers
started after it.
"""

from __future__ import annotations

import difflib
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

Outcome = Literal["complete", "fail", "either"]

__all__ = ["CATALOGUE", "ClientScenario", "ScenarioSwitch", "validate_scenario"]


@dataclass(frozen=True)
class ClientScenario:
    """One hostile condition for clients, and the reaction it calls for."""

    name: str
    breaks: str                     # what the simulator does
    correct: str                    # what a correct client does, in words
    outcome: Outcome                # how a correct client's operation ends
    upload: str = ""                # first upload of each device: eof, 500, 503, stall, expire, slow
    init_fails: bool = False        # leases go from initializing to error
    star_hosts: bool = False
    wrong_thumbprint: bool = False
    progress_pause: float = 0.0     # seconds added to every HttpNfcLeaseProgress
    overrides: dict[str, float] = field(default_factory=dict)  # SimConfig fields while active

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "breaks": self.breaks, "correct": self.correct, "outcome": self.outcome,
                "settings": dict(self.overrides)}


#: seconds a stalled upload hangs before the simulator drops it
STALL_SECONDS = 8.0
#: seconds a slow-progress upload takes at least (longer than that scenario's lease timeout)
SLOW_TRANSFER_SECONDS = 8.0
SLOW_PIECE = 64 << 10

_ENTRIES = (
    ClientScenario("baseline", "nothing: a correct server on a quiet day",
                   "wait for ready, renew, upload or download every device, Complete", "complete"),
    ClientScenario("eof-upload", "the first upload of each device is cut off halfway (connection closed, no answer)",
                   "Abort with a fault and report the error, or retry the whole upload and Complete", "either",
                   upload="eof"),
    ClientScenario("upload-500", "the first upload of each device is answered 500 Internal Server Error",
                   "Abort with a fault and report the error (or retry the upload and Complete)", "either",
                   upload="500"),
    ClientScenario("upload-503", "the first upload of each device is answered 503 Service Unavailable, Retry-After: 1",
                   "retry the upload after the pause and Complete, or Abort with a fault and report", "either",
                   upload="503"),
    ClientScenario("stall", f"the first upload of each device stops being read halfway for {STALL_SECONDS:g} s, "
                            "then the connection is closed",
                   "give up after a bounded time (never hang), Abort with a fault and report, or retry", "either",
                   upload="stall"),
    ClientScenario("timeout-mid-transfer", "the lease times out halfway through the first upload; the rest is "
                                           "refused with 403",
                   "stop, report the timeout; Abort (it may raise Timedout), never Complete", "fail",
                   upload="expire"),
    ClientScenario("error-while-waiting", "the lease goes from initializing to error (InsufficientResourcesFault)",
                   "stop waiting, read and report the lease's error, transfer nothing", "fail",
                   init_fails=True, overrides={"init_seconds": 0.5}),
    ClientScenario("star-hosts", "device URLs carry the host '*', as ESXi's do",
                   "put in the host it connected to (keeping the port), transfer, Complete", "complete",
                   star_hosts=True),
    ClientScenario("bad-thumbprint", "device URLs announce an sslThumbprint that is not the served certificate's",
                   "refuse to transfer, Abort with a fault, report", "fail", wrong_thumbprint=True),
    ClientScenario("slow-progress", "every Progress takes 1 s to answer, leases time out after 6 s without one, and "
                                    f"the first upload of each device takes at least {SLOW_TRANSFER_SECONDS:g} s",
                   "keep renewing on schedule (not serialised behind the transfer), Complete", "complete",
                   upload="slow", progress_pause=1.0, overrides={"lease_timeout": 6.0}),
)

#: every scenario the simulator knows, by name
CATALOGUE: dict[str, ClientScenario] = {s.name: s for s in _ENTRIES}
assert len(CATALOGUE) == len(_ENTRIES), "two scenarios share a name"

WRONG_THUMBPRINT = ":".join(["00"] * 20)


def validate_scenario(name: str) -> str:
    """The name, checked; an unknown one is a ValueError naming the near misses and the list."""
    if name in CATALOGUE:
        return name
    near = difflib.get_close_matches(name, CATALOGUE, n=2)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    raise ValueError(f"unknown client scenario {name!r}: {hint}known: {', '.join(CATALOGUE)}")


class ScenarioSwitch:
    """The active scenario, switchable while the simulator runs, and the faults it injects.

    ``apply`` sets the simulator's knobs for the scenario (restoring the
    previous scenario's); the upload and lease hooks ask it what to break.
    Each device's *first* upload is broken, so a client that retries can succeed.
    """

    def __init__(self, config: Any, leases: Any, name: str = "baseline") -> None:
        self.config = config
        self.leases = leases
        self._saved: dict[str, Any] = {}
        self._broken: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.listeners: list[Callable[[ClientScenario], None]] = []
        self.active = CATALOGUE["baseline"]
        self._normal_host = leases.url_host
        self._normal_thumbprint = leases.thumbprint
        self.switch(name)

    def switch(self, name: str) -> ClientScenario:
        scenario = CATALOGUE[validate_scenario(name)]
        with self._lock:
            for key, value in self._saved.items():
                setattr(self.config, key, value)
            self._saved = {key: getattr(self.config, key) for key in scenario.overrides}
            for key, value in scenario.overrides.items():
                setattr(self.config, key, value)
            self.active = scenario
            self._broken.clear()
            self._apply_hosts()
        for listener in list(self.listeners):
            listener(scenario)
        return scenario

    def remember_normal(self, url_host: str, thumbprint: str) -> None:
        """The simulator's real host and thumbprint (known once it listens); re-applies the scenario's."""
        with self._lock:
            self._normal_host, self._normal_thumbprint = url_host, thumbprint
            self._apply_hosts()

    def _apply_hosts(self) -> None:
        self.leases.url_host = self.url_host()
        self.leases.thumbprint = self.thumbprint()

    def url_host(self) -> str:
        if self.active.star_hosts and not self._normal_host.startswith("*"):
            return "*:" + self._normal_host.rsplit(":", 1)[-1]
        return self._normal_host

    def thumbprint(self) -> str:
        return WRONG_THUMBPRINT if self.active.wrong_thumbprint else self._normal_thumbprint

    def first_upload(self, lease: Any, device: Any) -> str:
        """The upload fault for this attempt ('' for none): only a device's first upload is broken."""
        kind = self.active.upload
        if not kind:
            return ""
        key = (lease.moid, device.name)
        with self._lock:
            if key in self._broken:
                return ""
            self._broken.add(key)
        return kind


class FaultyBody:
    """An upload body that counts what is read and breaks once, at ``at`` bytes, as told.

    ``eof``: the connection is cut (the server answers nothing); ``stall``:
    reading stops for :data:`STALL_SECONDS`, then the connection is cut;
    ``expire``: the lease times out; ``slow``: the body is read at a pace
    that makes it last :data:`SLOW_TRANSFER_SECONDS`.
    """

    def __init__(self, body: Any, length: int | None, kind: str, expire: Callable[[], None]) -> None:
        self.body = body
        self.kind = kind
        self.at = max(1, (length or 0) // 2) if length else 64 << 10
        self.expire = expire
        self.count = 0
        self.started = time.monotonic()
        self._fired = not kind

    def readinto(self, view: Any) -> int:
        if self.kind == "slow":
            return self._read_slowly(view)
        if not self._fired and self.count + len(view) >= self.at:
            view = view[:max(1, self.at - self.count)]
        got = self.body.readinto(view)
        self.count += got or 0
        if not self._fired and self.count >= self.at:
            self._fired = True
            self._break()
        return got

    def _break(self) -> None:
        if self.kind == "eof":
            raise ConnectionResetError("injected by the simulator: connection cut halfway through the upload")
        if self.kind == "stall":
            time.sleep(STALL_SECONDS)
            raise ConnectionResetError(f"injected by the simulator: upload stalled {STALL_SECONDS:g} s, then cut")
        if self.kind == "expire":
            self.expire()

    def _read_slowly(self, view: Any) -> int:
        """Read in small pieces, paced so the whole body takes :data:`SLOW_TRANSFER_SECONDS` (bytes keep flowing)."""
        got = self.body.readinto(view[:SLOW_PIECE])
        self.count += got or 0
        due = self.started + SLOW_TRANSFER_SECONDS * min(1.0, self.count / (2 * self.at))
        time.sleep(max(0.0, due - time.monotonic()))
        return got
