"""Targets: where leases come from (embedded simulator, vcsim, or a vCenter/ESXi URL).

A :class:`TargetSpec` says *which* server and how to trust it; :func:`open_target`
starts the server if the suite owns it (``sim``, ``vcsim``), connects
unmodified pyVmomi, finds where imports go (:class:`Placement`) and yields a
:class:`Target`. Closing the target removes everything the suite created on
it (leases left open are aborted, imported VMs and vApps destroyed, snapshots
removed) so a real vCenter is left as it was found.

TLS is verified unless the user opts out: against the simulator's generated
CA, vcsim's certificate, ``cafile``, or the system store; ``thumbprint`` pins
the server certificate (SHA-1 or SHA-256) instead of trusting a CA. pyVmomi
turns verification off by itself for ``127.0.0.1`` when it is given no
context, so a context is always passed.

The ``GOVC_*`` variables (``GOVC_URL``, ``GOVC_USERNAME``, ``GOVC_PASSWORD``,
``GOVC_INSECURE``, ``GOVC_TLS_CA_CERTS``, ``GOVC_DATACENTER``,
``GOVC_DATASTORE``, ``GOVC_RESOURCE_POOL``, ``GOVC_FOLDER``, ``GOVC_HOST``)
are read for URL targets only: they describe the user's vCenter, and applying
``GOVC_DATACENTER`` to the embedded simulator would only break it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Literal, Mapping
from urllib.parse import quote, unquote, urlsplit

from nfclease import redaction
from nfclease.launcher import SIM_PASSWORD
from nfclease.redaction import redact_text
from nfclease.targetcleanup import TargetCleanup, _Created
from nfclease.targetinventory import Placement, TargetInventory
from nfclease.transfer import NfcClient, make_ssl_context, normalize_thumbprint

log = logging.getLogger(__name__)

TargetKind = Literal["sim", "vcsim", "url"]
_TRUE = {"1", "true", "yes", "on", "t", "y"}


INSECURE_WARNING = ("TLS verification is OFF (--insecure / GOVC_INSECURE): anyone on the network path can "
                    "read the password and the disks; pin the server with --thumbprint instead")
_warned_insecure = False


def warn_insecure() -> None:
    """Say, once per process, that nothing about the server is verified."""
    global _warned_insecure
    if not _warned_insecure:
        _warned_insecure = True
        log.warning(INSECURE_WARNING)


class WaitTimeout(Exception):
    """A client-side wait (task, lease readiness) ran out of time: the outcome is unknown.

    Deliberately not a ``TimeoutError`` (an ``OSError``): it is no transport failure.
    """


# -- the spec ------------------------------------------------------------------------

@dataclass(frozen=True)
class TargetSpec:
    """Which server to test and how to reach and trust it. Holds no connection."""

    kind: TargetKind
    host: str | None = None
    port: int = 443
    path: str = "/sdk"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    insecure: bool = False
    thumbprint: str | None = None
    cafile: str | None = None
    datacenter: str | None = None
    datastore: str | None = None
    resource_pool: str | None = None
    folder: str | None = None
    esx_host: str | None = None
    cluster: str | None = None

    @classmethod
    def parse(
        cls,
        text: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        insecure: bool | None = None,
        thumbprint: str | None = None,
        cafile: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> "TargetSpec":
        """``sim`` | ``vcsim`` | a URL; None means ``$GOVC_URL``, else ``sim``.

        A URL may omit the scheme (https) and the path (``/sdk``), as
        ``GOVC_URL`` does. Credentials: explicit arguments, then the URL's,
        then ``GOVC_USERNAME``/``GOVC_PASSWORD``. Explicit TLS options win
        over ``GOVC_INSECURE``/``GOVC_TLS_CA_CERTS``.
        """
        env = os.environ if env is None else env
        text = (text if text is not None else env.get("GOVC_URL") or "sim").strip()
        if thumbprint is not None:
            normalize_thumbprint(thumbprint)  # fail early on a malformed pin
        if text in ("sim", "vcsim"):
            return cls(kind=text, insecure=bool(insecure), thumbprint=thumbprint, cafile=cafile,  # type: ignore[arg-type]
                       username=username, password=password)
        if "://" not in text:
            text = "https://" + text
        parts = urlsplit(text)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"target must be 'sim', 'vcsim' or an https URL, got {redact_text(text)!r}")
        user = username or (unquote(parts.username) if parts.username else None) or env.get("GOVC_USERNAME") or None
        pw = password or (unquote(parts.password) if parts.password else None) or env.get("GOVC_PASSWORD") or None
        if insecure is None:
            insecure = env.get("GOVC_INSECURE", "").strip().lower() in _TRUE
        return cls(
            kind="url",
            host=parts.hostname,
            port=parts.port or 443,
            path=parts.path if parts.path not in ("", "/") else "/sdk",
            username=user,
            password=pw,
            insecure=insecure,
            thumbprint=thumbprint or known_host_thumbprint(env.get("GOVC_TLS_KNOWN_HOSTS"), parts.hostname,
                                                           parts.port or 443),
            cafile=cafile or env.get("GOVC_TLS_CA_CERTS") or None,
            datacenter=env.get("GOVC_DATACENTER") or None,
            datastore=env.get("GOVC_DATASTORE") or None,
            resource_pool=env.get("GOVC_RESOURCE_POOL") or None,
            folder=env.get("GOVC_FOLDER") or None,
            esx_host=env.get("GOVC_HOST") or None,
            cluster=env.get("GOVC_CLUSTER") or None,
        )

    @property
    def url(self) -> str | None:
        """The SDK URL without credentials (None for sim/vcsim before they start)."""
        if self.kind != "url" or self.host is None:
            return None
        return f"https://{_bracket(self.host)}:{self.port}{self.path}"

    @property
    def display_url(self) -> str:
        """What reports may show: never the password."""
        if self.kind != "url":
            return self.kind
        return redact_url(self.url or "", self.username, self.password)

    def __str__(self) -> str:
        return self.display_url


def known_host_thumbprint(path: str | None, host: str, port: int) -> str | None:
    """The thumbprint pinned for ``host[:port]`` in a govc ``GOVC_TLS_KNOWN_HOSTS`` file (``host thumbprint`` lines)."""
    if not path:
        return None
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as exc:
        raise ValueError(f"GOVC_TLS_KNOWN_HOSTS={path}: cannot read it: {exc.strerror}") from exc
    wanted = {f"{_bracket(host)}:{port}"} | ({host, _bracket(host)} if port == 443 else set())
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and fields[0] in wanted:
            normalize_thumbprint(fields[1])
            return fields[1]
    return None


def redact_url(url: str, username: str | None, password: str | None) -> str:
    """``https://user:***@host/sdk`` via :func:`nfclease.redaction.redact_text` (no password in it)."""
    if not username:
        return url
    scheme, _, rest = url.partition("://")
    shown = f"{scheme}://{quote(username, safe='')}:{quote(password or '', safe='') or '-'}@{rest}"
    return redact_text(shown)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# -- what a connected target exposes --------------------------------------------------

@dataclass(frozen=True)
class About:
    """The server's product identity, for run_info in every report."""

    name: str
    full_name: str
    vendor: str
    version: str
    build: str
    api_version: str
    api_type: str
    instance_uuid: str | None = None


def api_tuple(version: str) -> tuple[int, ...]:
    """``"6.7.3"`` -> ``(6, 7, 3)``; non-numeric parts end the tuple."""
    out: list[int] = []
    for part in version.split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


class Target(TargetInventory, TargetCleanup):
    """A connected target: pyVmomi service instance, placement, TLS and cleanup.

    Made by :func:`open_target`; ``close()`` (run on leaving the ``with``)
    aborts leases still held, removes snapshots and destroys imported
    entities the suite registered, then logs out every session it opened.
    Cleanup is bookkeeping, not a protocol call under test, so it emits no
    events; what it did is in :attr:`cleanup_log`.
    """

    def __init__(self, spec: TargetSpec, *, url: str, username: str, password: str,
                 ssl_context: ssl.SSLContext, task_timeout: float = 300.0,
                 connect_timeout: float | None = 120.0, pinned: bool = False, server: Any = None) -> None:
        self.spec = spec
        self.url = url
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 443
        self._path = parts.path or "/sdk"
        self._username = username
        self._password = password
        self.ssl_context = ssl_context
        self.pinned = pinned  # trusted by thumbprint: NFC hosts are pinned by their announced sslThumbprint
        self.server = server  # the Simulator or VcsimProcess the suite started, if any
        self.task_timeout = task_timeout
        self.connect_timeout = connect_timeout
        self.display_url = spec.display_url if spec.kind == "url" else redact_url(url, None, None)
        self.nfc_host = f"{_bracket(self._host)}:{self._port}"
        self.si: Any = self._connect()
        self.content: Any = self.si.RetrieveContent()
        about = self.content.about
        self.about = About(
            name=about.name, full_name=about.fullName, vendor=about.vendor, version=about.version,
            build=about.build, api_version=about.apiVersion, api_type=about.apiType,
            instance_uuid=getattr(about, "instanceUuid", None),
        )
        self.api_version: str = about.apiVersion
        self._lock = threading.Lock()
        self._created: list[_Created] = []
        self._sessions: list[Any] = []
        self.cleanup_log: list[str] = []
        self.read_only: set[str] = set()  # moids of VMs the user named for export: never changed (protect)
        self._placement: Placement | None = None
        self._closed = False
        self._collectors: dict[int, Any] = {}
        self._nfc: NfcClient | None = None

    # -- connection ---------------------------------------------------------

    def _connect(self) -> Any:
        from pyVim.connect import SmartConnect

        if self.spec.kind == "url" and self._password != SIM_PASSWORD:  # that one names our objects
            redaction.remember(self._password)
        try:
            si = SmartConnect(host=self._host, port=self._port, path=self._path, user=self._username,
                              pwd=self._password, sslContext=self.ssl_context,
                              httpConnectionTimeout=self.connect_timeout)
        except ssl.SSLCertVerificationError as exc:  # fail closed, saying how to pin or trust
            from nfclease.trust import untrusted

            raise untrusted(exc, self._host, self._port, pinned=self.spec.thumbprint) from None
        redaction.remember_cookie(getattr(si._stub, "cookie", None))
        return si

    def new_session(self) -> Any:
        """Log in again: a second ServiceInstance, e.g. to hold an 'other session' reference."""
        si = self._connect()
        with self._lock:
            self._sessions.append(si)
        return si

    new_session_stub = new_session

    def lease_ref(self, moid: str, si: Any | None = None) -> Any:
        """A ``vim.HttpNfcLease`` reference to ``moid`` bound to ``si`` (another session, or ours)."""
        from pyVmomi import vim

        return vim.HttpNfcLease(moid, (si or self.si)._stub)

    @property
    def session_cookie(self) -> str | None:
        """The ``vmware_soap_session`` cookie (for NFC servers that want it); never log it."""
        return getattr(self.si._stub, "cookie", None)

    def api_at_least(self, version: str) -> bool:
        """Whether the negotiated API is ``version`` or later (members absent before it)."""
        return api_tuple(self.api_version) >= api_tuple(version)

    def nfc_client(self, **kwargs: Any) -> NfcClient:
        """A transfer client trusting what SOAP trusts, with ``*`` mapped to our host."""
        kwargs.setdefault("device_pins", self.pinned)
        return NfcClient(self.ssl_context, self.nfc_host, **kwargs)

    @property
    def nfc(self) -> NfcClient:
        """The shared transfer client (thread-safe, keep-alive per host), closed with the target."""
        with self._lock:
            if self._nfc is None:
                self._nfc = self.nfc_client()
            return self._nfc

    def property_collector(self, stub: Any | None = None) -> Any:
        """The property collector of the session ``stub`` belongs to (ours by default)."""
        if stub is None or stub is self.si._stub:
            return self.content.propertyCollector
        key = id(stub)
        if key not in self._collectors:
            from pyVmomi import vim

            self._collectors[key] = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent().propertyCollector
        return self._collectors[key]

    def properties(self, obj: Any, paths: list[str]) -> dict[str, Any]:
        """Several properties of one object in one RetrievePropertiesEx; unset ones are absent.

        pyVmomi 9 reads each attribute with ``Fetch``, one round trip each, and
        vcsim 0.24 drops the connection when ``Fetch`` meets an unset property.
        """
        from pyVmomi import vmodl

        pc = vmodl.query.PropertyCollector
        spec = pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=obj, skip=False)],
                             propSet=[pc.PropertySpec(type=type(obj), pathSet=paths)])
        result = self.property_collector(obj._stub).RetrievePropertiesEx([spec], pc.RetrieveOptions())
        values: dict[str, Any] = {}
        for content in (result.objects if result is not None else None) or []:
            for prop in content.propSet or []:
                values[prop.name] = prop.val
        return values

    def run_info(self) -> dict[str, Any]:
        """The target part of a report's ``run_info`` (no secrets)."""
        return {"target": self.display_url, "product": self.about.full_name, "version": self.about.version,
                "build": self.about.build, "api_version": self.api_version}

    # -- tasks ----------------------------------------------------------------

    def task_info(self, task: Any) -> Any:
        """``task.info``, or its state/error/result alone when pyVmomi cannot read the whole.

        vcsim 0.24 names a snapshot as a task's entity, which pyVmomi's type
        check refuses (TypeError) when it deserialises the TaskInfo.
        """
        try:
            return task.info
        except TypeError:
            from pyVmomi import vim

            values = self.properties(task, ["info.state", "info.error", "info.result", "info.descriptionId"])
            return vim.TaskInfo(key=task._moId, task=task, state=values.get("info.state"),
                                error=values.get("info.error"), result=values.get("info.result"),
                                descriptionId=values.get("info.descriptionId"))

    def wait_task(self, task: Any, timeout: float | None = None, poll: float = 0.05) -> Any:
        """Poll a task until it ends (bounded); returns its ``TaskInfo`` (success or error)."""
        deadline = time.monotonic() + (self.task_timeout if timeout is None else timeout)
        delay = poll
        while True:
            info = self.task_info(task)
            if info.state in ("success", "error"):
                return info
            if time.monotonic() >= deadline:
                raise WaitTimeout(f"task {task._moId} still {info.state} after {timeout or self.task_timeout:g} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# -- opening a target ---------------------------------------------------------------

@contextlib.contextmanager
def open_target(
    spec: TargetSpec | str | None = None,
    *,
    sim_config: Any | None = None,
    vcsim_options: Mapping[str, Any] | None = None,
    task_timeout: float = 300.0,
    where: str = "thread",
) -> Iterator[Target]:
    """Start (sim/vcsim, through :func:`nfclease.launcher.start`) or reach (URL) the target, connect,
    and clean up on exit.

    ``sim_config`` is a launcher preset name, a :class:`nfclease.sim.SimConfig`
    or a dict of its fields (``lease_timeout``, ``init_seconds``, ``api_version`` ...);
    ``where``: the simulator in a ``thread`` of this process or a child ``process``.
    """
    if not isinstance(spec, TargetSpec):
        spec = TargetSpec.parse(spec)
    with contextlib.ExitStack() as stack:
        if spec.kind in ("sim", "vcsim"):
            from nfclease import launcher

            preset = sim_config if sim_config is not None else "default"
            reach = stack.enter_context(launcher.start(spec.kind, preset, where, **dict(vcsim_options or {})))
            user = spec.username or reach.user
            password = spec.password or reach.password
            cafile = spec.cafile or reach.cafile
            # the simulator's CA file is trusted; vcsim without one is pinned by what it serves
            thumbprint = spec.thumbprint or (reach.thumbprint if cafile is None else None)
            url, server = reach.url, reach.server
        else:
            if not spec.username or not spec.password:
                raise ValueError(f"{spec.display_url}: user name and password are needed "
                                 "(in the URL or GOVC_USERNAME/GOVC_PASSWORD)")
            user, password = spec.username, spec.password
            cafile, thumbprint = spec.cafile, spec.thumbprint
            url, server = spec.url or "", None
        if spec.insecure:
            warn_insecure()
        context = make_ssl_context(cafile=cafile, thumbprint=thumbprint, insecure=spec.insecure)
        target = Target(spec, url=url, username=user, password=password, ssl_context=context,
                        task_timeout=task_timeout, pinned=bool(thumbprint) and not spec.insecure, server=server)
        stack.callback(target.close)
        yield target


def with_placement(spec: TargetSpec, **overrides: str | None) -> TargetSpec:
    """A copy of ``spec`` with placement names changed (datacenter=..., datastore=...)."""
    return replace(spec, **overrides)


__all__ = [
    "About", "Placement", "Target", "TargetSpec", "WaitTimeout", "api_tuple", "make_ssl_context", "normalize_thumbprint",
    "open_target", "redact_url", "with_placement",
]
