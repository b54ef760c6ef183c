"""The embedded simulator: a vSphere endpoint that implements the whole lease spec.

It is the suite's default target and the reference the suite is proven
against, so it implements ``HttpNfcLease`` in its own code (``leases.py``)
and never reads the conformance table. Start it in-process::

    with Simulator(SimConfig(lease_timeout=2)) as sim:
        si = SmartConnect(host="127.0.0.1", port=sim.port, user="u", pwd="p",
                          sslContext=ssl.create_default_context(cafile=sim.cafile))

or as a process: ``nfclease sim --port 0`` prints the SDK URL first.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nfclease.sim.scenarios import validate_scenario
from nfclease.sim.deviations import CATALOGUE, parse_deviations, validate_deviations
from nfclease.sim.vendors import vendor_named
from nfclease.sim.soap import version_for
from nfclease.sim.tls import generate_self_signed, server_context, thumbprint

__all__ = ["SimConfig", "Simulator"]


@dataclass
class SimConfig:
    """Knobs of the simulator (see ``nfclease sim --help``)."""

    host: str = "127.0.0.1"
    port: int = 0
    lease_timeout: float = 300.0
    init_seconds: float = 0.2
    api_version: str = "9.0"
    product_version: str = "9.0.0"
    username: str | None = None
    password: str | None = None
    star_hosts: bool = False
    certfile: str | None = None
    keyfile: str | None = None
    storage: str | None = None
    disk_capacity: int = 4 << 20
    delay: float = 0.0
    release_retention: float = 600.0
    request_timeout: float = 120.0  # seconds a client may stay silent inside a request (headers, body)
    max_released_leases: int = 5000
    tls: bool = True
    #: deliberate wrong behaviours, by name (``nfclease.sim.deviations.CATALOGUE``); off by default
    deviations: tuple[str, ...] = ()
    #: a simulated vendor (``nfclease.sim.vendors.VENDORS``): its deviations join these, its settings win
    vendor: str | None = None
    #: the client fault-injection scenario in force (``nfclease.sim.scenarios.CATALOGUE``), switchable at run time
    scenario: str = "baseline"
    #: a directory: record every client session there as ``session-<n>.jsonl`` (``nfclease sim --record``)
    record: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.deviations, str):
            self.deviations = parse_deviations(self.deviations)
        self.deviations = validate_deviations(self.deviations)
        if self.vendor:
            profile = vendor_named(self.vendor)
            self.deviations = tuple(dict.fromkeys(self.deviations + profile.deviations))
            for name, value in profile.settings.items():
                setattr(self, name, value)
        validate_scenario(self.scenario)

    def deviates(self, name: str) -> bool:
        """Is the deliberate deviation ``name`` switched on? (A name outside the catalogue is a bug.)"""
        if name not in CATALOGUE:
            raise KeyError(f"{name!r} is not in nfclease.sim.deviations.CATALOGUE")
        return name in self.deviations


def _require_loopback(host: str) -> None:
    """The simulator is a test endpoint: it listens on loopback only."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"the simulator listens on loopback only (127.0.0.1, ::1, localhost), not {host!r}")


class Simulator:
    """A running simulator: ``url``, ``port``, ``cafile``, ``thumbprint``."""

    def __init__(self, config: SimConfig | None = None, **overrides: Any) -> None:
        self.config = config or SimConfig()
        for key, value in overrides.items():
            setattr(self.config, key, value)
        self._tmp: str | None = None
        self._thread: threading.Thread | None = None
        self.server: Any = None
        self.url = ""
        self.port = 0
        self.cafile = ""
        self.thumbprint = ""
        self.lab: Any = None  # the client lab: ``lab.switch.switch(name)``, ``lab.recorder``

    def start(self) -> "Simulator":
        from nfclease.sim.hooks import ClientLab
        from nfclease.sim.server import SimHTTPServer
        from nfclease.sim.service import Service

        cfg = self.config
        cfg.__post_init__()  # fields may have been set after construction
        _require_loopback(cfg.host)
        version = version_for(cfg.api_version)
        self._tmp = tempfile.mkdtemp(prefix="nfclease-sim-")
        base = Path(cfg.storage) if cfg.storage else Path(self._tmp)
        if cfg.certfile:
            cert, key = Path(cfg.certfile), Path(cfg.keyfile or cfg.certfile)
        else:
            cert, key = generate_self_signed(Path(self._tmp))
        self.cafile = str(cert)
        self.thumbprint = thumbprint(cert.read_bytes())
        service = Service(cfg, base / "storage", version)
        context = server_context(cert, key) if cfg.tls else None
        self.server = SimHTTPServer((cfg.host, cfg.port), service, context, version)
        self.port = self.server.server_address[1]
        host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        scheme = "https" if cfg.tls else "http"
        self.url = f"{scheme}://{host}:{self.port}/sdk"
        service.leases.url_host = f"*:{self.port}" if cfg.star_hosts else f"{host}:{self.port}"
        service.leases.thumbprint = self.thumbprint
        self.service = service
        self.lab = ClientLab(cfg, service.leases, scenario=cfg.scenario, record=cfg.record, target={
            "about": {"apiVersion": cfg.api_version, "name": "nfclease simulator"},
            "leaseTimeout": cfg.lease_timeout, "thumbprint": self.thumbprint, "url": self.url})
        service.leases.hooks = self.lab
        self.lab.switch.remember_normal(service.leases.url_host, self.thumbprint)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="nfclease-sim", daemon=True)
        self._thread.start()
        logging.getLogger("nfclease.sim").info("simulator serving %s", self.url)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.close_connections()
            self.server.server_close()
            self.service.leases.stop()
            self.lab.close()
            self.server = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
