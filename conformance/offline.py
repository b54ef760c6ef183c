"""``nfclease check-history FILE``: replay a history through the model, offline.

A history (JSONL, one :class:`nfclease.events.Event` per line) is everything
the online run saw, so feeding it to a fresh :class:`nfclease.conformance.model.Model`
gives the same verdicts -- a FAIL can be re-judged, shared and argued about
without the target.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from nfclease.conformance.model import Model
from nfclease.conformance.verdicts import ClauseVerdicts
from nfclease.events import read_history
from nfclease import vocabulary as V

def _api_version_from(path: str | Path) -> str | None:
    for event in read_history(path):
        if event.call == V.TARGET and isinstance(event.value, dict):
            return event.value.get("api_version") or event.value.get("apiVersion")
        return None
    return None


def check_history(path: str | Path, api_version: str | None = None,
                  tolerance: float | None = None) -> ClauseVerdicts:
    """Replay the history at ``path``; ``api_version`` None takes it from a ``Target`` record, else applies all."""
    if api_version is None:
        api_version = _api_version_from(path)
    model = Model(api_version=api_version, tolerance=tolerance)
    return model.feed_all(read_history(path))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``nfclease check-history``'s options."""
    parser.add_argument("history", help="history.jsonl written by a run")
    parser.add_argument("--api-version", help="the target's about.apiVersion (gates clauses)")
    parser.add_argument("--tolerance", type=float, help="expiry tolerance window in seconds")
    parser.add_argument("--expectations", help="expectations name or YAML path")
    parser.add_argument("--report", help="directory for results.json and junit.xml")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nfclease.conformance.offline`` = ``nfclease check-history``."""
    parser = argparse.ArgumentParser(prog="nfclease check-history",
                                     description="Replay a history (JSONL) through the reference model.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every clause is PASS, NA or XFAIL, 1 otherwise, 2 on bad input."""
    from nfclease.conformance.expectations import ExpectationError, apply_expectations, expectations_path, load_expectations
    from nfclease.reports.results import RunInfo, exit_code, print_results, results_record, write_junit, write_results

    try:
        verdicts = check_history(args.history, args.api_version, args.tolerance)
        results = verdicts.results()
        if args.expectations:
            results = apply_expectations(results, load_expectations(args.expectations),
                                         str(expectations_path(args.expectations)))
    except (OSError, ValueError, ExpectationError) as exc:
        print(f"nfclease check-history: {exc}", file=sys.stderr)
        return 2
    info = RunInfo(target=f"history:{args.history}", api_version=verdicts.api_version, profile="offline")
    if args.report:
        write_results(args.report, results, info)
        write_junit(Path(args.report) / "junit.xml", results, info)
    if args.json:
        print(json.dumps(results_record(results, info), indent=2))
    else:
        print_results(results, title=f"check-history {args.history}")
    return exit_code(results)


if __name__ == "__main__":
    raise SystemExit(main())
