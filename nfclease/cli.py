"""The ``nfclease`` command: composes the subcommands, each living in its own module.

A subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``
and is registered below with one line. Only the chosen subcommand's module is
imported (its options are added when it is the one asked for), so
``nfclease sim`` starts fast, never loads the load stack, and a broken
optional part never breaks the others.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any, Callable, Sequence

from nfclease import __version__
from nfclease.usage import finish_parser, one_line_errors


def _register(sub: Any, name: str, module: str, help_text: str, chosen: str | None) -> None:
    """A subcommand living in ``module`` (``add_arguments(parser)``, ``run(args) -> int``)."""
    parser = sub.add_parser(name, help=help_text, description=help_text)
    if chosen is None or chosen == name:
        loaded = importlib.import_module(module)
        loaded.add_arguments(parser)
        parser.set_defaults(func=loaded.run)
        finish_parser(parser, name)  # one-line errors; an example under --help


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``chosen``, only that subcommand's module is imported."""
    parser = argparse.ArgumentParser(
        prog="nfclease", description="Conformance and load testing for the vSphere HttpNfcLease protocol.")
    parser.add_argument("--version", action="version", version=f"nfclease {__version__}")
    one_line_errors(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register(sub, "run", "nfclease.runjob", "the main job: conformance at a profile, a short load run, "
              "and one HTML report (starts the simulator unless --target)", chosen)
    _register(sub, "sim", "nfclease.sim_cli", "serve the embedded simulator until interrupted", chosen)
    _register(sub, "conform", "nfclease.conformance.cli", "run the conformance suite against a target", chosen)
    _register(sub, "load", "nfclease.load.cli", "run Locust load scenarios against a target", chosen)
    _register(sub, "selftest", "nfclease.conformance.selftest", "kill matrix: is each deliberate deviation of the "
              "simulator flagged under its expected clause?", chosen)
    _register(sub, "check-history", "nfclease.conformance.offline", "replay a history.jsonl through the model offline", chosen)
    _register(sub, "judge-client", "nfclease.conformance.judge_client", "grade recorded client sessions clause by clause", chosen)
    _register(sub, "clients", "nfclease.conformance.clients", "run real clients against the simulator under each "
              "fault-injection scenario: a client x clause matrix", chosen)
    _register(sub, "doctor", "nfclease.doctor", "read-only preflight of a target: version, clause families, "
              "placement, privileges, lease timeout; creates nothing", chosen)
    _register(sub, "clean", "nfclease.clean", "list (dry run) or remove (--yes) what runs left on a target", chosen)
    _register(sub, "report", "nfclease.reports.cli", "several runs side by side: one HTML page and its Markdown twin", chosen)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is no option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    import sys

    from nfclease import lifecycle, redaction

    redaction.install()  # no secret in any log line or traceback of any subcommand
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_command_in(words)).parse_args(words)
    func: Callable[[argparse.Namespace], int] = args.func
    lifecycle.install()  # SIGTERM/SIGHUP unwind like Ctrl-C: what the run made is removed first
    try:
        return func(args)
    except KeyboardInterrupt as exc:
        return lifecycle.exit_code(exc)
