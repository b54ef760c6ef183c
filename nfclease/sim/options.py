"""The simulator's command-line knobs, shared by ``nfclease sim`` and every command that starts one.

``add_sim_arguments(parser)`` adds them; ``sim_config_from(args, **defaults)``
turns parsed arguments into a :class:`~nfclease.sim.SimConfig`, over the
command's own defaults (a conformance run wants a short lease timeout).
"""

from __future__ import annotations

import argparse
from typing import Any

from nfclease.sim import SimConfig


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _deviation_list(text: str) -> tuple[str, ...]:
    from nfclease.sim.deviations import parse_deviations

    try:
        return parse_deviations(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _vendor_name(text: str) -> str:
    from nfclease.sim.vendors import vendor_named

    try:
        return vendor_named(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    """Simulator knobs, shared by ``nfclease sim`` and commands that start one."""
    group = parser.add_argument_group("embedded simulator")
    group.add_argument("--lease-timeout", type=_positive_float, default=None,
                       help="seconds a ready lease lives without Progress (default 300; 'sim' target of "
                            "conform/load defaults to a short one)")
    group.add_argument("--init-seconds", type=float, default=None,
                       help="how long a new lease stays initializing (default 0.2)")
    group.add_argument("--api-version", default=None,
                       help="advertise and behave as this vSphere API version (e.g. 9.0, 8.0.3.0, 6.7, 6.5, 4.1)")
    group.add_argument("--star-hosts", action="store_true",
                       help="device URLs carry the host '*' as ESXi's do")
    group.add_argument("--delay", type=float, default=None,
                       help="deliberate slowness: seconds per transferred MiB and milliseconds per SOAP call")
    group.add_argument("--vendor", type=_vendor_name, default=None,
                       help="behave like a simulated product: vcsim-like, esxi-like or strict (deviations and "
                            "settings bundled; conformance/expectations/<vendor>.yaml lists what it FAILs)")
    group.add_argument("--deviate", metavar="NAME[,NAME...]", type=_deviation_list, action="extend", default=None,
                       help="switch on deliberate wrong behaviours, to see the suite catch them "
                            "(e.g. no_timeout,complete_twice_ok; `nfclease sim --list-deviations` lists them)")


def sim_config_from(args: argparse.Namespace, **defaults: Any) -> SimConfig:
    """A SimConfig from parsed arguments, with per-command defaults."""
    config = SimConfig(**defaults)
    for name in ("lease_timeout", "init_seconds", "api_version", "delay", "host", "port",
                 "username", "password", "certfile", "keyfile"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(config, name, value)
    if getattr(args, "star_hosts", False):
        config.star_hosts = True
    if getattr(args, "deviate", None):
        config.deviations = tuple(dict.fromkeys(config.deviations + tuple(args.deviate)))
    if getattr(args, "vendor", None):
        config.vendor = args.vendor
        config.__post_init__()  # the profile's deviations and settings, now
    return config
