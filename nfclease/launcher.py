"""The one place that starts the suite's own servers: the embedded simulator or vcsim.

    with start("sim", "conformance", where="process") as reach:
        reach.url, reach.cafile, reach.thumbprint, reach.user, reach.password

``kind`` is ``sim`` or ``vcsim``; ``preset`` names a simulator configuration
(:data:`PRESETS`) or is a :class:`~nfclease.sim.SimConfig` (or a dict of its
fields); ``where`` is ``thread`` (in this process) or ``process`` (a child:
client and server then run on two cores instead of sharing one interpreter
lock, and a Locust process's gevent never touches the server). What comes
back is a :class:`Reach`: everything a client needs, the same for both kinds.
Every other module reaches a started server only through a Reach.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from nfclease.sim import SimConfig

#: The account the suite's simulator is reached with (it accepts any non-empty pair unless configured).
SIM_USER = "nfclease"
SIM_PASSWORD = "nfclease"

#: Named simulator configurations: the SimConfig fields each differs in from the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # as a vCenter: a ready lease lives 300 s without Progress
    "default": {},
    # conformance runs: expiry judged in seconds, leases ready at once, small disks
    "conformance": {"lease_timeout": 2.0, "init_seconds": 0.03, "disk_capacity": 256 * 1024},
    # load runs: timeout-probe takes seconds, keepalive (every 2 s) keeps leases alive
    "load": {"lease_timeout": 3.0},
}

WHERE = ("thread", "process")


@dataclass(frozen=True)
class Reach:
    """How to reach a started server; ``server`` is the running object (Simulator, SimProcess, VcsimProcess).

    ``thumbprint`` is the SHA-1 thumbprint of the certificate it serves: trust
    ``cafile`` when there is one, else pin the thumbprint (our own child on
    loopback: never trust nothing).
    """

    url: str
    cafile: str | None
    thumbprint: str | None
    user: str
    password: str
    kind: str = "url"
    lease_timeout: float | None = None
    server: Any = None


def sim_config(preset: str | SimConfig | Mapping[str, Any] = "default", **overrides: Any) -> SimConfig:
    """The SimConfig a preset names (or the one given), with ``overrides`` applied."""
    if isinstance(preset, SimConfig):
        config = SimConfig(**{**preset.__dict__, **overrides})
    elif isinstance(preset, Mapping):
        config = SimConfig(**{**preset, **overrides})
    elif preset in PRESETS:
        config = SimConfig(**{**PRESETS[preset], **overrides})
    else:
        raise ValueError(f"unknown simulator preset {preset!r}; presets: {', '.join(PRESETS)}")
    return config


@contextlib.contextmanager
def start(kind: str, preset: str | SimConfig | Mapping[str, Any] = "default", where: str = "thread",
          **vcsim_options: Any) -> Iterator[Reach]:
    """Start ``kind`` (``sim`` with ``preset``, or ``vcsim``), yield its :class:`Reach`, stop it on exit."""
    if where not in WHERE:
        raise ValueError(f"where={where!r}: the server runs in a 'thread' or a 'process'")
    if kind == "sim":
        with _start_sim(sim_config(preset), where) as reach:
            yield reach
    elif kind == "vcsim":
        from nfclease.vcsim import run_vcsim

        with run_vcsim(**vcsim_options) as peer:
            cafile = str(peer.cafile) if peer.cafile else None
            yield Reach(peer.url, cafile, peer.thumbprint, peer.username, peer.password, kind="vcsim", server=peer)
    else:
        raise ValueError(f"cannot start {kind!r}: the suite starts 'sim' or 'vcsim'")


@contextlib.contextmanager
def _start_sim(config: SimConfig, where: str) -> Iterator[Reach]:
    user, password = config.username or SIM_USER, config.password or SIM_PASSWORD
    if where == "thread":
        from nfclease.sim import Simulator

        with Simulator(config) as sim:
            yield Reach(sim.url, sim.cafile, sim.thumbprint, user, password, kind="sim",
                        lease_timeout=config.lease_timeout, server=sim)
        return
    from nfclease.sim.process import SimProcess

    with SimProcess(config=config) as proc:
        yield Reach(proc.url, proc.cafile, proc.thumbprint, user, password, kind="sim",
                    lease_timeout=config.lease_timeout, server=proc)


class Launched:
    """A server started outside a ``with`` block (Locust's init/quit hooks): ``reach``, then ``stop()``."""

    def __init__(self, kind: str, preset: str | SimConfig | Mapping[str, Any] = "default",
                 where: str = "thread") -> None:
        self._stack = contextlib.ExitStack()
        self.reach: Reach = self._stack.enter_context(start(kind, preset, where))

    def stop(self) -> None:
        self._stack.close()
