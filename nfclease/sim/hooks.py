"""The few places where the simulator lets the client lab in, and the lab itself.

:class:`SimHooks` is a set of no-ops the server (``server.py``) and the lease
logic (``leases.py``) call at fixed points: around a SOAP call, when a lease
changes state, before an upload reads its body, after an NFC request. The
:class:`ClientLab` fills them with the client scenarios (``scenarios.py``)
and the session recorder (``recorder.py``), and answers the SOAP-free control
endpoint ``/nfclease/scenario``. Keeping the lab behind these hooks keeps the
lease logic free of test machinery.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pyVmomi import vim

from nfclease.sim.recorder import SessionRecorder
from nfclease.sim.scenarios import CATALOGUE, FaultyBody, ScenarioSwitch

__all__ = ["ClientLab", "SimHooks"]

CONTROL_PATH = "/nfclease/scenario"


class SimHooks:
    """No-op hooks: the simulator as it is without the client lab."""

    def soap_pause(self, method: str) -> float:
        """Seconds to hold a SOAP call before it runs."""
        return 0.0

    def soap_done(self, method: str, this: Any, args: dict[str, Any], session_key: str | None, result: Any,
                  fault: Any, message: str | None, start: float, end: float) -> None:
        """A SOAP call ended (``fault`` set when it raised one)."""

    def init_failure(self, lease: Any) -> Any:
        """A MethodFault to fail the lease's initialization with, or None."""
        return None

    def lease_state(self, lease: Any) -> None:
        """The lease just became ready, done or error."""

    def upload_fault(self, lease: Any, device: Any) -> str:
        """The fault to inject into this upload ('' for none; '500'/'503' refuse it before the body)."""
        return ""

    def upload_body(self, lease: Any, device: Any, body: Any, length: int | None, fault: str) -> Any:
        """The body the upload reads from (wrapped to count it, or to break it)."""
        return body

    def transfer_done(self, lease: Any, device: Any, call: str, args: dict[str, Any], status: int | None,
                      value: dict[str, Any], message: str | None, start: float, end: float) -> None:
        """An NFC request on a lease's device ended (``status`` None: no answer was sent)."""

    def control(self, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer the SOAP-free control endpoint."""
        return 404, {"error": "no client lab in this simulator"}


def _release_cause(lease: Any) -> str:
    if lease.state == "ready":
        return "ready"
    if lease.state == "done":
        return "complete"
    if lease.expired:
        return "injected-timeout" if getattr(lease, "expiry_injected", False) else "timeout"
    return "init-failed" if lease.info is None else "abort"


class ClientLab(SimHooks):
    """Client scenarios and (when ``record`` is a directory) the session recorder."""

    def __init__(self, config: Any, leases: Any, *, scenario: str = "baseline", record: str | Path | None = None,
                 target: dict[str, Any] | None = None) -> None:
        self.switch = ScenarioSwitch(config, leases, scenario)
        self.recorder: SessionRecorder | None = None
        if record is not None:
            self.recorder = SessionRecorder(record, target or {}, lambda: self.switch.active.describe())
            self.switch.listeners.append(lambda _s: self.recorder.scenario_switched() if self.recorder else None)

    # -- SOAP ----------------------------------------------------------------------
    def soap_pause(self, method: str) -> float:
        return self.switch.active.progress_pause if method == "HttpNfcLeaseProgress" else 0.0

    def soap_done(self, method: str, this: Any, args: dict[str, Any], session_key: str | None, result: Any,
                  fault: Any, message: str | None, start: float, end: float) -> None:
        if self.recorder is not None:
            self.recorder.soap(method, this, args, session_key, result, fault, message, start, end)

    # -- leases --------------------------------------------------------------------
    def init_failure(self, lease: Any) -> Any:
        if self.switch.active.init_fails:
            return vim.fault.InsufficientResourcesFault(
                msg="injected by the simulator (scenario error-while-waiting): the lease could not be prepared")
        return None

    def lease_state(self, lease: Any) -> None:
        if self.recorder is not None:
            self.recorder.lease_state(lease.session_key, lease.moid, lease.state, _release_cause(lease), lease.error)

    # -- transfers -------------------------------------------------------------------
    def upload_fault(self, lease: Any, device: Any) -> str:
        return self.switch.first_upload(lease, device)

    def upload_body(self, lease: Any, device: Any, body: Any, length: int | None, fault: str) -> Any:
        if fault in ("500", "503") or (not fault and self.recorder is None):
            return body  # nothing to break or count: the upload reads the socket directly

        def expire() -> None:
            with lease.world.lock:
                lease.expiry_injected = True
                lease.expires_at = time.monotonic()
                lease.advance()

        return FaultyBody(body, length, fault, expire)

    def transfer_done(self, lease: Any, device: Any, call: str, args: dict[str, Any], status: int | None,
                      value: dict[str, Any], message: str | None, start: float, end: float) -> None:
        if self.recorder is not None:
            self.recorder.transfer(lease.session_key, lease.moid, call, {"device": device.key, **args}, status,
                                   {"disk": device.disk, **value}, message, start, end)

    # -- control -------------------------------------------------------------------------
    def control(self, method: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if method in ("PUT", "POST"):
            text = body.decode("utf-8", "replace").strip()
            if text.startswith("{"):
                try:
                    text = str(json.loads(text).get("scenario", ""))
                except (ValueError, AttributeError):
                    return 400, {"error": 'send the scenario name, or {"scenario": NAME}'}
            try:
                self.switch.switch(text)
            except ValueError as exc:
                return 400, {"error": str(exc)}
        elif method not in ("GET", "HEAD"):
            return 405, {"error": "GET lists the scenarios, PUT switches to the one named in the body"}
        return 200, {"scenario": self.switch.active.name,
                     "scenarios": {s.name: s.describe() for s in CATALOGUE.values()}}

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close_all()
