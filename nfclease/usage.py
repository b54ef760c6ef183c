"""Bad invocations get one line and exit status 2, never a usage dump or a traceback.

``argparse`` prints the usage block then ``error: ...``; a command registered
with :func:`one_line_errors` prints only ``nfclease CMD: <what was wrong>; see
nfclease CMD --help`` instead. Commands raise :class:`UsageError` for what
they find wrong later (an unreachable target, a refused login) and
:func:`fail` prints it the same way.
"""

from __future__ import annotations

import argparse
import sys
import types
from typing import NoReturn

USAGE_EXIT = 2


class UsageError(Exception):
    """What was wrong and what to do, in one sentence (exit status 2)."""


def fail(prog: str, message: str) -> int:
    """Print ``prog: message`` on one line to stderr; return the usage exit status."""
    text = " ".join(str(message).split())
    print(f"{prog}: {text}", file=sys.stderr)
    return USAGE_EXIT


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` report a bad argument on one line (and exit 2)."""
    def error(self: argparse.ArgumentParser, message: str) -> NoReturn:
        fail(self.prog, f"{message}; see {self.prog} --help")
        raise SystemExit(USAGE_EXIT)

    parser.error = types.MethodType(error, parser)  # type: ignore[method-assign]
