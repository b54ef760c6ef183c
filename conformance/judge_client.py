"""``nfclease judge-client``: grade recorded client sessions against the client clauses.

    nfclease sim --record rec/ &          # then run any client against it
    nfclease judge-client rec/session-*.jsonl
    nfclease judge-client rec/session-*.jsonl --exit-code 1 --json verdicts.json

Prints one line per clause of ``conformance/CLIENT-CLAUSES.md``: PASS, FAIL or
NA, and the evidence (which lease, what the client did, when). With
``--exit-code`` (the client's exit status) it also says whether the client
ended as the recorded scenario says a correct client ends. Exit status: 1 when
a clause (or the scenario) FAILs, else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from nfclease.conformance.client_clauses import BY_ID
from nfclease.conformance.client_judge import Verdict, judge, judge_outcome, load_sessions
from nfclease.usage import describe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    describe(parser, (__doc__ or "").split("\n\n")[0].replace("``", ""),
             "example: nfclease judge-client rec/session-*.jsonl --exit-code 0")
    parser.add_argument("sessions", nargs="+", help="session files written by `nfclease sim --record DIR`")
    parser.add_argument("--exit-code", type=int, default=None,
                        help="the client's exit status: also judge how it ended against the scenario")
    parser.add_argument("--timed-out", action="store_true", help="the client was killed for not ending in time")
    parser.add_argument("--json", dest="json_out", default=None, help="also write the verdicts to this JSON file")
    parser.add_argument("-v", "--verbose", action="store_true", help="every piece of evidence, not the first")


def format_verdicts(verdicts: Sequence[Verdict], verbose: bool = False) -> str:
    """The verdicts as an aligned table, one clause a line."""
    lines = []
    for v in verdicts:
        level = BY_ID[v.clause].level if v.clause in BY_ID else ""
        evidence = v.evidence if verbose else v.evidence[:1]
        more = f" (+{len(v.evidence) - 1} more)" if not verbose and len(v.evidence) > 1 else ""
        lines.append(f"{v.status:4}  {v.clause:32} {level:6} {'; '.join(evidence)}{more}")
    return "\n".join(lines)


def verdicts_for(paths: Sequence[str | Path], exit_code: int | None = None,
                 timed_out: bool = False) -> list[Verdict]:
    """Clause verdicts for these session files, plus the scenario verdict when the exit status is known."""
    sessions = load_sessions(paths)
    verdicts = judge(sessions)
    if exit_code is not None or timed_out:
        verdicts.append(judge_outcome(sessions, exit_code, timed_out))
    return verdicts


def print_session(path: Path) -> None:
    """Judge one finished session live (``nfclease sim --record DIR --judge``)."""
    try:
        verdicts = verdicts_for([path])
    except (OSError, ValueError) as exc:
        print(f"# {path.name}: cannot judge: {exc}", flush=True)
        return
    failed = sum(v.status == "FAIL" for v in verdicts)
    print(f"# {path.name}: {failed} clause(s) failed\n{format_verdicts(verdicts)}", flush=True)


def run(args: argparse.Namespace) -> int:
    missing = [p for p in args.sessions if not Path(p).is_file()]
    if missing:
        print(f"nfclease judge-client: no such session file: {missing[0]} (record some with "
              "`nfclease sim --record DIR`)", file=sys.stderr)
        return 2
    try:
        verdicts = verdicts_for(args.sessions, args.exit_code, args.timed_out)
    except ValueError as exc:
        print(f"nfclease judge-client: {exc}", file=sys.stderr)
        return 2
    print(format_verdicts(verdicts, args.verbose))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([v.to_dict() for v in verdicts], indent=1) + "\n",
                                       encoding="utf-8")
    return 1 if any(v.status == "FAIL" for v in verdicts) else 0
