"""``nfclease report``: several runs side by side in one HTML page and its Markdown twin."""

from __future__ import annotations

import argparse
import textwrap

from nfclease.usage import describe, fail

PROG = "nfclease report"
EXAMPLE = textwrap.dedent("""\
    example:
      nfclease run --report sim/ && nfclease run --target vcsim --report vcsim/
      nfclease report sim/ vcsim/ --out report.html              # also writes report.md
      nfclease report build-42/ --baseline build-41/ --out report.html
    each DIR holds results.json and/or load.json (from nfclease run, conform or load);
    with $GITHUB_STEP_SUMMARY set, the Markdown is appended to it.""")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    describe(parser, ("Write one self-contained HTML page (and a Markdown twin beside it): clauses as rows, "
                          "runs as columns, each FAIL with its repro, the load figures side by side with a "
                          "throughput chart, and what changed against --baseline."),
             EXAMPLE)
    parser.add_argument("runs", nargs="+", metavar="DIR", help="run directories (one column each)")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="the HTML file to write; the Markdown goes to PATH with .md")
    parser.add_argument("--baseline", metavar="DIR", help="a run to compare each DIR with")
    parser.add_argument("--tolerance", default="10%",
                        help="load deltas beyond this (plus half the spread) are regressions (default 10%%)")
    parser.add_argument("--title", default="HttpNfcLease conformance and load", help="the page's title")


def run(args: argparse.Namespace) -> int:
    from nfclease.load.gate import parse_tolerance
    from nfclease.reports.page import ReportError, build_report, write_report

    try:
        tolerance = parse_tolerance(args.tolerance)
    except ValueError:
        return fail(PROG, f"--tolerance {args.tolerance!r} is not a percentage; use e.g. 10%")
    try:
        report = build_report(args.runs, baseline=args.baseline, title=args.title, tolerance=tolerance)
        html_path, md_path = write_report(report, args.out)
    except ReportError as exc:
        return fail(PROG, str(exc))
    except OSError as exc:
        return fail(PROG, f"cannot write {args.out}: {exc.strerror or exc}; choose a writable --out")
    print(f"wrote {html_path} and {md_path}")
    return 0
