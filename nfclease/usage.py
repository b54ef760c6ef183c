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


def target_problem(exc: BaseException, where: str) -> str:
    """One sentence for why a target could not be used, and what to do about it."""
    import socket
    import ssl

    name = type(exc).__name__
    text = " ".join(str(getattr(exc, "msg", None) or exc).split())[:300]
    if name.endswith("InvalidLogin") or name.endswith("NotAuthenticated"):
        return (f"{where}: the login was refused (wrong user name or password); check the credentials in the "
                "URL or GOVC_USERNAME/GOVC_PASSWORD")
    if type(exc).__name__ == "UntrustedServer":  # nfclease.trust: its message already says what to do
        return " ".join(str(exc).split())
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"{where}: its TLS certificate is not trusted ({getattr(exc, 'verify_message', '') or text}); pin it with "
                "--thumbprint SHA1 or SHA256, add its CA to the system's, or opt out with --insecure")
    if isinstance(exc, ssl.SSLError):
        return f"{where}: the TLS handshake was refused ({text}); check --thumbprint, or opt out with --insecure"
    if isinstance(exc, (ConnectionError, socket.timeout, socket.gaierror, TimeoutError)):
        reason = getattr(exc, "strerror", None) or text or name
        return (f"cannot reach {where}: {reason}; check the host and port, or start the target "
                "(nfclease sim, or --target sim)")
    if name == "VcsimError":
        return f"vcsim could not start: {text}; build it with tools/build-vcsim"
    if isinstance(exc, ValueError):
        return f"{where}: {text}"
    if isinstance(exc, OSError):
        return f"cannot use {where}: {exc.strerror or text}; check the URL and that the target is up"
    return f"cannot use target {where}: {name}: {text}"


#: ``--target``'s help, the same in every command that reaches a target.
TARGET_HELP = ("sim (the embedded simulator), vcsim, or https://user:pass@host/sdk; "
               "default: $GOVC_URL if set, else sim")


# Examples for commands whose module sets no epilog of its own (``--help`` always shows one).
EXAMPLES = {
    "sim": ["nfclease sim --port 8989 --lease-timeout 300      # prints https://127.0.0.1:8989/sdk first",
            "nfclease sim --deviate no_timeout --port 0        # a simulator that gets expiry wrong"],
    "conform": ["nfclease conform --profile ci --report out/",
                "nfclease conform --target vcsim --expectations vcsim-0.24"],
    "load": ["nfclease load --scenario import-upload --users 8 --duration 30s --report out/",
             "nfclease load --repeat 5 --baseline base.json --tolerance 10%"],
    "check-history": ["nfclease check-history nfclease-report/history.jsonl"],
    "clients": ["nfclease clients --report clients-out/"],
}


def describe(parser: argparse.ArgumentParser, description: str | None, epilog: str | None) -> None:
    """A subcommand's ``--help`` text: what it does, then its examples as written (line breaks kept)."""
    parser.description = description
    parser.epilog = epilog
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def finish_parser(parser: argparse.ArgumentParser, name: str) -> None:
    """What every subcommand gets: one-line errors, and an example under ``--help``."""
    one_line_errors(parser)
    if name in EXAMPLES and "example" not in (parser.epilog or "").lower():
        examples = "examples:\n" + "\n".join(f"  {line}" for line in EXAMPLES[name])
        parser.epilog = f"{parser.epilog}\n\n{examples}" if parser.epilog else examples
        if parser.formatter_class is argparse.HelpFormatter:
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
