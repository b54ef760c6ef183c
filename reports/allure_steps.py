"""allure-pytest wiring of the conformance tests: each call a step, each clause test labelled.

Active only when pytest runs with allure-pytest and ``--alluredir``. The
conformance plugin (:mod:`nfclease.conformance.plugin`) then subscribes
:class:`AllureSteps` to the run's event stream: every call the suite makes
becomes an Allure step under the running test -- the call with its arguments,
the observed outcome, what the reference model expected and its verdict --
and a step the model judged FAIL is marked failed and carries the raw SOAP
request and response (from :class:`nfclease.soaptap.SoapTap`, redacted).
Clause tests get labels (clause id, level, API version, target); the session
writes ``environment.properties`` and ``categories.json`` (:mod:`nfclease.reports.allure`).
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from nfclease.redaction import redact, redact_text

MAX_STEPS_PER_TEST = 3000  # a long machine run stays a readable (and bounded) report
MAX_PARAM = 400


def allure_dir(config: Any) -> str | None:
    """The ``--alluredir`` of this pytest run when allure-pytest is active, else None."""
    directory = getattr(config.option, "allure_report_dir", None)
    return directory if directory and config.pluginmanager.has_plugin("allure_listener") else None


def _brief(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(redact(value), default=str, sort_keys=True)
    text = redact_text(text)
    return text if len(text) <= MAX_PARAM else text[:MAX_PARAM] + "..."


def observed(event: Any) -> str:
    if event.outcome == "ok":
        return "ok" if event.value is None else f"ok: {_brief(event.value)}"
    return f"{event.outcome}: {event.fault or '?'}{f' ({event.message})' if event.message else ''}"


class ClauseFailure(AssertionError):
    """What a failed step shows: the clauses broken, expected against observed."""


class AllureSteps:
    """An event-stream listener turning each call into an Allure step (main thread only)."""

    def __init__(self, ctx: Any, tap: Any | None = None) -> None:
        self.ctx = ctx
        self.tap = tap
        self.steps = 0

    def new_test(self) -> None:
        self.steps = 0
        if self.tap is not None:
            self.tap.take()

    def _judgement(self, event: Any) -> Any:
        pending = self.ctx.pending
        return pending[-1][1] if pending and pending[-1][0] is event else None

    def __call__(self, event: Any) -> None:
        import allure
        from allure_commons import plugin_manager

        if threading.current_thread() is not threading.main_thread() or self.steps >= MAX_STEPS_PER_TEST:
            return
        self.steps += 1
        judgement = self._judgement(event)
        exchanges = self.tap.take() if self.tap is not None else []
        args = ", ".join(f"{k}={_brief(v)}" for k, v in (event.args or {}).items())
        title = f"{event.lease or '-'}.{event.call}({args}) -> {observed(event)}"
        params = {"call": event.call, "lease": event.lease or "-", "arguments": _brief(event.args or {}),
                  "observed": observed(event), "seconds": f"{event.duration:.3f}"}
        failure = None
        if judgement is not None:
            params.update(expected=_brief(judgement.expected or "-"), verdict=judgement.verdict,
                          clauses=", ".join(judgement.clauses) or "-")
            if judgement.failures:
                failure = ClauseFailure(redact_text(judgement.message))
        step = str(uuid.uuid4())
        plugin_manager.hook.start_step(uuid=step, title=title[:300], params=params)
        try:
            if failure is not None:
                for number, exchange in enumerate(exchanges, 1):
                    allure.attach(exchange.as_text(), name=f"SOAP exchange {number} of {len(exchanges)}",
                                  attachment_type=allure.attachment_type.TEXT)
        finally:
            plugin_manager.hook.stop_step(uuid=step, exc_type=type(failure) if failure else None, exc_val=failure,
                                          exc_tb=None)


def clause_labels(request: Any, ctx: Any) -> None:
    """Label the running test with its clause (if it has one), level, API version and target."""
    import allure

    from nfclease.conformance.clauses import BY_ID
    from nfclease.reports.allure import clause_labels as labels

    callspec = getattr(request.node, "callspec", None)
    clause = (callspec.params.get("clause_id") if callspec else None) or ""
    level = BY_ID[clause].level if clause in BY_ID else ""
    for label in labels(clause, level, str(ctx.api_version or ""), redact_text(ctx.target.display_url)):
        allure.dynamic.label(label.name, label.value)


def wire(config: Any, ctx: Any) -> AllureSteps | None:
    """Subscribe the step recorder (and a SOAP tap on the target's session) when Allure is on."""
    if allure_dir(config) is None:
        return None
    from nfclease.soaptap import SoapTap

    tap = SoapTap()
    stub = getattr(getattr(ctx.target, "si", None), "_stub", None)
    if stub is not None:
        tap.install(stub)
    steps = AllureSteps(ctx, tap)
    ctx.stream.subscribe(steps)
    return steps


def finish(config: Any, run_info: dict[str, Any]) -> None:
    """``environment.properties`` and ``categories.json`` beside allure-pytest's results."""
    directory = allure_dir(config)
    if directory is None:
        return
    from nfclease.reports.allure import write_categories, write_environment

    write_environment(directory, run_info)
    write_categories(directory)


def verdict_step(clause: str, status: str, message: str, repro: str | None = None) -> None:
    """A clause test's verdict as a step (failed when the clause FAILed), its repro attached.

    A no-op without allure-pytest: no listener implements the hooks then (or it is not installed)."""
    try:
        import allure
        from allure_commons import plugin_manager
    except ImportError:  # a plain install (no nfclease[report]): nothing to report to
        return

    failure = ClauseFailure(redact_text(f"{clause} {status}: {message}")) if status == "FAIL" else None
    step = str(uuid.uuid4())
    plugin_manager.hook.start_step(uuid=step, title=f"{clause}: {status}",
                                   params={"clause": clause, "verdict": status, "message": _brief(message)})
    try:
        if repro:
            allure.attach(redact_text(repro), name=f"{clause} repro", attachment_type=allure.attachment_type.TEXT)
    finally:
        plugin_manager.hook.stop_step(uuid=step, exc_type=type(failure) if failure else None, exc_val=failure,
                                      exc_tb=None)
