"""Locust users: one class per scenario, each driving unmodified pyVmomi + the NFC client.

Every user logs in on its own (a :class:`~nfclease.target.Target` per user,
as separate clients would), owns an :class:`~nfclease.events.EventStream`
whose one listener is a :class:`~nfclease.load.bridge.LocustBridge` bound to the
user's scenario, and runs that scenario's iteration in a loop bounded in
count (``max_iterations``) and in time (the run's duration).

Configuration lives on the Locust environment (:func:`attach`): the target
URL is ``environment.host``; options are the ``--nfc-*`` Locust options
(forwarded by a master to its workers); credentials come from the URL or
``NFCLEASE_LOAD_USERNAME`` / ``NFCLEASE_LOAD_PASSWORD`` (then ``GOVC_*``),
never from an option a web UI or a worker message would show.

gevent: Locust monkey-patches ``socket``, ``ssl``, ``threading`` and ``time``
before anything here runs, and pyVmomi's ``http.client`` connections and the
NFC client's then use gevent sockets, so users block only their own
greenlet (see ``tests/test_load.py::test_pyvmomi_cooperates_with_gevent``).
The one way to lose that is an ``ssl.SSLContext`` made before the patch;
contexts are made per user, at start, after it.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from locust import User, constant, task
from locust.exception import StopUser

from nfclease.load.bridge import LocustBridge
from nfclease.load.figures import Figures
from nfclease.load.scenarios import REGISTRY, RUNNERS, SETUP, LoadOptions, Scenario, UserContext
from nfclease.events import EventStream
from nfclease.target import TargetSpec, WaitTimeout, open_target
from nfclease.transfer import NfcHttpError, NfcTransportError

log = logging.getLogger("nfclease.load.users")

USERNAME_ENV = "NFCLEASE_LOAD_USERNAME"
PASSWORD_ENV = "NFCLEASE_LOAD_PASSWORD"
#: after a failed iteration, wait this long before the next (no hot loop against a broken target)
ERROR_PAUSE = 0.5


@dataclass
class LoadContext:
    """What the users of one Locust process share: the figures, and options set in-process."""

    figures: Figures = field(default_factory=Figures)
    options: LoadOptions | None = None       # None: read --nfc-* from environment.parsed_options
    cafile: str | None = None                # trusted CA of an in-process simulator
    username: str | None = None              # in-process runs; workers read NFCLEASE_LOAD_*
    password: str | None = field(default=None, repr=False)
    owned: list[Any] = field(default_factory=list)

    def load_options(self, environment: Any) -> LoadOptions:
        if self.options is not None:
            return self.options
        return LoadOptions.from_namespace(getattr(environment, "parsed_options", None))

    def target_spec(self, environment: Any) -> TargetSpec:
        options = self.load_options(environment)
        host = environment.host
        if not host:
            raise ValueError("no target: give --host https://HOST/sdk (or 'sim' for an embedded simulator)")
        username = self.username or os.environ.get(USERNAME_ENV) or None
        password = self.password or os.environ.get(PASSWORD_ENV) or None
        if options.embedded_sim and not (username and password):
            from nfclease.launcher import SIM_PASSWORD, SIM_USER

            username, password = SIM_USER, SIM_PASSWORD
        return TargetSpec.parse(host, cafile=options.cafile or self.cafile or None,
                                thumbprint=options.thumbprint or None, insecure=options.insecure or None,
                                username=username, password=password)


def attach(environment: Any, context: LoadContext | None = None) -> LoadContext:
    """Give ``environment`` a :class:`LoadContext` and ship figures worker -> master.

    Idempotent. On a worker, each stats report carries the records gathered
    since the last one; on the master, they are merged into its figures.
    """
    existing = getattr(environment, "nfclease", None)
    if existing is not None:
        if context is not None and context is not existing:
            raise RuntimeError("environment already has another load context")
        return existing
    ctx = context or LoadContext()
    environment.nfclease = ctx

    def on_report_to_master(client_id: str, data: dict[str, Any]) -> None:
        data["nfclease"] = ctx.figures.drain()

    def on_worker_report(client_id: str, data: dict[str, Any]) -> None:
        ctx.figures.merge(data.get("nfclease"))

    environment.events.report_to_master.add_listener(on_report_to_master)
    environment.events.worker_report.add_listener(on_worker_report)
    return ctx


RECORDED_ERRORS = (NfcHttpError, NfcTransportError, WaitTimeout, OSError, http.client.HTTPException)


def _recorded(exc: BaseException) -> bool:
    """Whether an exception is a call's own outcome (already an event), not a bug."""
    from pyVmomi import vmodl

    return isinstance(exc, (vmodl.MethodFault, *RECORDED_ERRORS))


class LeaseUser(User):
    """Base of the scenario users: a Target and an event stream per user."""

    abstract = True
    scenario = ""
    wait_time = constant(0)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.load = attach(environment)
        self.options = self.load.load_options(environment)
        self.bridge = LocustBridge(environment.events.request.fire, self.load.figures, "setup")
        self.stream = EventStream([self.bridge])
        self.ctx: UserContext | None = None
        self.iterations = 0
        self._stack = contextlib.ExitStack()
        self._stopping = False

    def _connect(self) -> bool:
        started = time.monotonic()
        try:
            target = self._stack.enter_context(open_target(self.load.target_spec(self.environment)))
        except Exception as exc:
            log.warning("%s: cannot open the target: %s: %s", self.scenario, type(exc).__name__, exc)
            self.environment.events.request.fire(
                request_type="SOAP", name="Login", response_time=(time.monotonic() - started) * 1000,
                response_length=0, exception=exc, response=None, context={"scenario": self.scenario})
            self.load.figures.add("error", self.scenario, "Login", f"client.{type(exc).__name__}", time.time())
            return False
        self.ctx = UserContext(target, self.stream, self.options, stopping=self.stopping)
        self.bridge.scenario = self.scenario
        return True

    def stopping(self) -> bool:
        """The run is ending: waits inside an iteration cut short (Locust's graceful stop)."""
        from locust.user.task import LOCUST_STATE_STOPPING

        return self._stopping or self._state == LOCUST_STATE_STOPPING

    def on_start(self) -> None:
        self._connect()

    @task
    def iteration(self) -> None:
        if self.iterations >= self.options.max_iterations:
            raise StopUser()
        self.iterations += 1
        if self.ctx is None and not self._connect():
            time.sleep(1.0)
            return
        assert self.ctx is not None
        try:
            setup = SETUP.get(self.scenario)
            if setup is not None and self.ctx.own_vm is None:
                self.bridge.scenario = "setup"
                try:
                    setup(self.ctx)
                finally:
                    self.bridge.scenario = self.scenario
                return
            RUNNERS[self.scenario](self.ctx)
        except (StopUser, GeneratorExit):
            raise
        except Exception as exc:
            if not _recorded(exc) and not isinstance(exc, RuntimeError):
                raise
            log.debug("%s: iteration failed: %s: %s", self.scenario, type(exc).__name__, exc)
            time.sleep(ERROR_PAUSE)

    def on_stop(self) -> None:
        self._stopping = True
        if self.ctx is not None:
            self.ctx.join_background()
        self.bridge.scenario = "teardown"
        try:
            self._stack.close()  # Target.close: abort what is held, remove what was imported, log out
        except Exception as exc:  # cleanup must not hide the run's figures
            log.warning("%s: cleanup failed: %s: %s", self.scenario, type(exc).__name__, exc)


def _user_class(scenario: Scenario) -> type[LeaseUser]:
    return type(scenario.user_class, (LeaseUser,), {"scenario": scenario.name, "weight": scenario.mixed_weight,
                                                    "__module__": __name__, "__qualname__": scenario.user_class})


#: One Locust user class per scenario of the registry, by scenario name (class names as the registry says).
USER_CLASSES: dict[str, type[LeaseUser]] = {s.name: _user_class(s) for s in REGISTRY}
globals().update({cls.__name__: cls for cls in USER_CLASSES.values()})  # importable by name (workers, pickling)


def user_classes(selection: dict[str, int]) -> list[type[LeaseUser]]:
    """The user classes of a scenario selection, weighted (same names: workers find them)."""
    chosen = []
    for scenario, weight in selection.items():
        base = USER_CLASSES[scenario]
        chosen.append(type(base.__name__, (base,), {"weight": weight, "__module__": base.__module__}))
    return chosen
