"""The ``nfclease`` command: ``run``, ``sim``, ``conform``, ``load``, ``check-history``.

Each subcommand imports what it needs only when chosen, so ``nfclease sim``
starts fast and a broken optional part never breaks the others.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any, Callable, Sequence

from nfclease import __version__


TARGET_HELP = ("sim (the embedded simulator), vcsim, or https://user:pass@host/sdk; "
               "default: $GOVC_URL if set, else sim")


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
    group.add_argument("--deviate", metavar="NAME[,NAME...]", type=_deviation_list, action="extend", default=None,
                       help="switch on deliberate wrong behaviours, to see the suite catch them "
                            "(e.g. no_timeout,complete_twice_ok; `nfclease sim --list-deviations` lists them)")


def sim_config_from(args: argparse.Namespace, **defaults: object):
    """A SimConfig from parsed arguments, with per-command defaults."""
    from nfclease.sim import SimConfig

    config = SimConfig(**defaults)  # type: ignore[arg-type]
    for name in ("lease_timeout", "init_seconds", "api_version", "delay", "host", "port",
                 "username", "password", "certfile", "keyfile"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(config, name, value)
    if getattr(args, "star_hosts", False):
        config.star_hosts = True
    if getattr(args, "deviate", None):
        config.deviations = tuple(dict.fromkeys(config.deviations + tuple(args.deviate)))
    return config


def print_deviations() -> None:
    """The catalogue of ``--deviate`` names, one a line: name, family, the wrong behaviour."""
    from nfclease.sim.deviations import CATALOGUE

    width = max(len(name) for name in CATALOGUE)
    for d in sorted(CATALOGUE.values(), key=lambda d: (d.family, d.name)):
        print(f"{d.name:<{width}}  {d.family:<16}  {d.description}")


def cmd_sim(args: argparse.Namespace) -> int:
    from nfclease.sim import Simulator

    if args.list_deviations:
        print_deviations()
        return 0
    if args.list_scenarios:
        print_scenarios()
        return 0

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = sim_config_from(args)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    config.scenario, config.record = args.scenario, args.record
    try:
        sim = Simulator(config).start()
    except (OSError, ValueError) as exc:
        print(f"nfclease sim: cannot start: {exc}", file=sys.stderr)
        return 2
    if args.judge and sim.lab.recorder is not None:
        from conformance.judge_client import print_session

        sim.lab.recorder.on_close = print_session
    try:
        try:
            print(sim.url, flush=True)
            print(f"# certificate {sim.cafile} thumbprint {sim.thumbprint}; lease timeout "
                  f"{config.lease_timeout:g} s; "
                  + (f"DELIBERATELY WRONG: {','.join(config.deviations)}; " if config.deviations else "")
                  + "stop with Ctrl-C", flush=True)
        except BrokenPipeError:  # `nfclease sim | head -1` took the URL and left: keep serving
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        stop.wait()
    finally:
        sim.stop()
    return 0


def add_client_lab_arguments(parser: argparse.ArgumentParser) -> None:
    """``nfclease sim``'s client lab: fault-injection scenarios, recording, live judging."""
    group = parser.add_argument_group("judging clients (see conformance/CLIENT-CLAUSES.md)")
    group.add_argument("--scenario", default="baseline",
                       help="client fault-injection scenario to start in (switch later: PUT /nfclease/scenario)")
    group.add_argument("--list-scenarios", action="store_true", help="list the client scenarios and exit")
    group.add_argument("--record", metavar="DIR", default=None,
                       help="record every client session as DIR/session-<n>.jsonl (judge: nfclease judge-client)")
    group.add_argument("--judge", action="store_true", help="with --record: judge each session when it ends")


def print_scenarios() -> None:
    """The client scenarios: name, what the simulator does, what a correct client does."""
    from nfclease.sim.scenarios import CATALOGUE

    for scenario in CATALOGUE.values():
        print(f"{scenario.name:22} {scenario.breaks}\n{'':22} correct client: {scenario.correct}")


def cmd_conform(args: argparse.Namespace) -> int:
    from conformance.cli import run

    return run(args)


def cmd_load(args: argparse.Namespace) -> int:
    from load.cli import run

    return run(args)


def cmd_check_history(args: argparse.Namespace) -> int:
    from conformance.offline import main as check_main

    return check_main([args.history] + (["--api-version", args.api_version] if args.api_version else []))


def _register(sub: Any, name: str, module: str, help_text: str) -> None:
    """A subcommand living in its own module (``add_arguments(parser)``, ``run(args) -> int``)."""
    import importlib

    parser = sub.add_parser(name, help=help_text)
    importlib.import_module(module).add_arguments(parser)
    parser.set_defaults(func=lambda args: importlib.import_module(module).run(args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nfclease", description="Conformance and load testing for the vSphere HttpNfcLease protocol.")
    parser.add_argument("--version", action="version", version=f"nfclease {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _register(sub, "run", "nfclease.runjob", "the main job: conformance at a profile, a short load run, "
              "and one HTML report (starts the simulator unless --target)")

    sim = sub.add_parser("sim", help="serve the embedded simulator until interrupted")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback: 127.0.0.1 or ::1)")
    sim.add_argument("--port", type=int, default=8989, help="port (0 picks a free one)")
    sim.add_argument("--username", default=None, help="the only user accepted (default: any non-empty pair)")
    sim.add_argument("--password", default=None, help="that user's password")
    sim.add_argument("--cert", dest="certfile", help="PEM certificate to serve (default: generated)")
    sim.add_argument("--key", dest="keyfile", help="PEM private key of --cert")
    sim.add_argument("-v", "--verbose", action="store_true", help="log every request")
    sim.add_argument("--list-deviations", action="store_true",
                     help="list the deliberate wrong behaviours --deviate can switch on, and exit")
    add_client_lab_arguments(sim)
    add_sim_arguments(sim)
    sim.set_defaults(func=cmd_sim)

    conform = sub.add_parser("conform", help="run the conformance suite against a target")
    conform.add_argument("--target", default=None, help=TARGET_HELP)
    conform.add_argument("--profile", default="smoke", choices=["smoke", "ci", "thorough"])
    conform.add_argument("--expectations", help="YAML file of known deviations of this target")
    conform.add_argument("--report", default="nfclease-report", help="directory for results.json and JUnit XML")
    conform.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random, printed)")
    conform.add_argument("--insecure", action="store_true", help="do not verify the target's TLS certificate")
    conform.add_argument("--thumbprint", help="pin the target's certificate")
    conform.add_argument("--allow-expiry", action="store_true",
                         help="wait for leases to expire whatever the advertised leaseTimeout (about twice it); "
                              "by default the expiry checks run when they fit the profile's expiry budget")
    conform.add_argument("--expiry-budget", type=float, default=None, metavar="SECONDS",
                         help="seconds the run may spend waiting for leases to expire (default: the profile's, "
                              "smoke 10, ci 30, thorough 900)")
    add_sim_arguments(conform)
    conform.set_defaults(func=cmd_conform)

    load = sub.add_parser("load", help="run Locust load scenarios against a target")
    load.add_argument("--target", default=None, help=TARGET_HELP)
    load.add_argument("--scenario", action="append", default=None,
                      help="import-upload, export-download, churn, keepalive, timeout-probe, mixed "
                           "(repeatable; NAME:WEIGHT sets a weight)")
    load.add_argument("--users", type=int, default=4)
    load.add_argument("--spawn-rate", type=float, default=4.0)
    load.add_argument("--duration", default="30s")
    load.add_argument("--workers", type=int, default=0, help="run a Locust master with N local worker processes")
    load.add_argument("--report", default="nfclease-load")
    load.add_argument("--save-baseline", help="write this run's figures as a baseline file")
    load.add_argument("--baseline", help="compare with a baseline file and fail on a regression")
    load.add_argument("--tolerance", default="10%", help="allowed regression against the baseline")
    load.add_argument("--repeat", type=int, default=1, help="repeat the run and use medians (noise)")
    load.add_argument("--step-shape", action="store_true", help="step users up to find the knee")
    load.add_argument("--disk-mib", type=float, default=8, help="capacity of each imported disk (MiB)")
    load.add_argument("--disks", type=int, default=None, help="disks per import (default 1)")
    load.add_argument("--keepalive", type=float, default=None,
                      help="seconds between Progress calls (default 2, as govmomi)")
    load.add_argument("--held-leases", type=int, default=None, help="keepalive scenario: leases each user holds")
    load.add_argument("--insecure", action="store_true")
    load.add_argument("--thumbprint")
    add_sim_arguments(load)
    load.set_defaults(func=cmd_load)

    _register(sub, "selftest", "conformance.selftest", "kill matrix: is each deliberate deviation of the "
              "simulator flagged under its expected clause?")

    check = sub.add_parser("check-history", help="replay a history.jsonl through the model offline")
    check.add_argument("history")
    check.add_argument("--api-version", default=None)
    check.set_defaults(func=cmd_check_history)

    _register(sub, "judge-client", "conformance.judge_client", "grade recorded client sessions clause by clause")
    _register(sub, "report", "reports.cli", "several runs side by side: one HTML page and its Markdown twin")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from nfclease import redaction

    redaction.install()  # no secret in any log line or traceback of any subcommand
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
