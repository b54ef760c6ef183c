"""``nfclease sim``: serve the embedded simulator until interrupted.

    nfclease sim [--port 8989] [--lease-timeout S] [--deviate NAME,...] [--record DIR [--judge]]

Prints the URL on the first line (``nfclease sim --port 0 | head -1`` is a
way to get it), then the certificate and its thumbprint.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from nfclease.sim.options import add_sim_arguments, sim_config_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nfclease sim``'s options: where to listen, who may log in, the client lab, the simulator knobs."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback: 127.0.0.1 or ::1)")
    parser.add_argument("--port", type=int, default=8989, help="port (0 picks a free one)")
    parser.add_argument("--username", default=None, help="the only user accepted (default: any non-empty pair)")
    parser.add_argument("--password", default=None, help="that user's password")
    parser.add_argument("--cert", dest="certfile", help="PEM certificate to serve (default: generated)")
    parser.add_argument("--key", dest="keyfile", help="PEM private key of --cert")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    parser.add_argument("--list-deviations", action="store_true",
                        help="list the deliberate wrong behaviours --deviate can switch on, and exit")
    add_client_lab_arguments(parser)
    add_sim_arguments(parser)


def add_client_lab_arguments(parser: argparse.ArgumentParser) -> None:
    """``nfclease sim``'s client lab: fault-injection scenarios, recording, live judging."""
    group = parser.add_argument_group("judging clients (see conformance/CLIENT-CLAUSES.md)")
    group.add_argument("--scenario", default="baseline",
                       help="client fault-injection scenario to start in (switch later: PUT /nfclease/scenario)")
    group.add_argument("--list-scenarios", action="store_true", help="list the client scenarios and exit")
    group.add_argument("--record", metavar="DIR", default=None,
                       help="record every client session as DIR/session-<n>.jsonl (judge: nfclease judge-client)")
    group.add_argument("--judge", action="store_true", help="with --record: judge each session when it ends")


def print_deviations() -> None:
    """The catalogue of ``--deviate`` names, one a line: name, family, the wrong behaviour."""
    from nfclease.sim.deviations import CATALOGUE

    from nfclease.sim.vendors import VENDORS

    width = max(len(name) for name in CATALOGUE)
    for d in sorted(CATALOGUE.values(), key=lambda d: (d.family, d.name)):
        print(f"{d.name:<{width}}  {d.family:<16}  {d.description}")
    print("\n# simulated vendors (--vendor NAME): the deviations each bundles")
    for v in VENDORS.values():
        print(f"# {v.name}: {', '.join(v.deviations)}")


def print_scenarios() -> None:
    """The client scenarios: name, what the simulator does, what a correct client does."""
    from nfclease.sim.scenarios import CATALOGUE

    for scenario in CATALOGUE.values():
        print(f"{scenario.name:22} {scenario.breaks}\n{'':22} correct client: {scenario.correct}")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 2 when the simulator cannot start."""
    from nfclease.launcher import Launched

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
        launched = Launched("sim", config)
    except (OSError, ValueError) as exc:
        print(f"nfclease sim: cannot start: {exc}", file=sys.stderr)
        return 2
    sim = launched.reach.server
    if args.judge and sim.lab.recorder is not None:
        from nfclease.conformance.judge_client import print_session

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
        launched.stop()
    return 0
