"""The simulator's catalogue of deliberate deviations: named wrong behaviours.

A conformance suite is worth the deviations it catches. Each entry here is one
small, plausible way a server gets ``HttpNfcLease`` wrong; switched on
(``SimConfig(deviations=("no_timeout",))``, ``nfclease sim --deviate
no_timeout``) the simulator behaves that way and ``nfclease selftest`` checks
that the conformance suite notices it under the right clause.

The simulator knows only *what* it does wrong, never which clause that breaks:
the mapping deviation -> expected clause ids lives on the conformance side
(``conformance/selftest.py``), so the simulator stays ignorant of the rules it
is judged by. Where a deviation acts, the code says ``DELIBERATE DEVIATION``
and asks ``config.deviates("name")``.

Adding one: one :class:`Deviation` line in :data:`CATALOGUE` (name, family,
the wrong behaviour in one line), the ``if config.deviates(...)`` where it
acts, and its expected clauses in ``conformance/selftest.py``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable

__all__ = ["CATALOGUE", "Deviation", "FAMILIES", "parse_deviations", "validate_deviations"]


@dataclass(frozen=True)
class Deviation:
    """One deliberate wrong behaviour of the simulator."""

    name: str
    family: str
    description: str


#: the clause families a deviation belongs to (for the selftest's table, and to keep names grouped)
FAMILIES = ("lifecycle", "initializing", "timeout", "progress", "complete-abort", "error", "cleanup", "locks",
            "manifest", "checksum", "pull", "transfer", "thumbprint", "fault-message", "undeclared-fault")

_ENTRIES = (
    # -- complete / abort
    Deviation("complete_twice_ok", "complete-abort", "a second Complete succeeds instead of raising InvalidState"),
    # -- timeout
    Deviation("no_timeout", "timeout", "a ready lease never expires"),
    # -- manifest
    Deviation("manifest_wrong_sha1", "manifest", "GetManifest reports a wrong sha1 for transferred files"),
    # -- locks
    Deviation("locks_ignored", "locks", "PowerOn, Destroy and Relocate of a covered VM are not refused"),
)

#: every deviation the simulator knows, by name
CATALOGUE: dict[str, Deviation] = {d.name: d for d in _ENTRIES}
assert len(CATALOGUE) == len(_ENTRIES), "two deviations share a name"
assert all(d.family in FAMILIES for d in _ENTRIES), "a deviation of an unknown family"


def validate_deviations(names: Iterable[str]) -> tuple[str, ...]:
    """The names, checked against the catalogue; an unknown one is a ValueError saying what was meant."""
    out: list[str] = []
    for name in names:
        name = name.strip()
        if name not in CATALOGUE:
            close = difflib.get_close_matches(name, CATALOGUE, n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}?" if close else "`nfclease sim --list-deviations` lists them"
            raise ValueError(f"unknown deviation {name!r}: {hint}")
        if name not in out:
            out.append(name)
    return tuple(out)


def parse_deviations(text: str) -> tuple[str, ...]:
    """``NAME[,NAME...]`` (as ``--deviate`` takes it) -> validated names."""
    return validate_deviations(part for part in text.split(",") if part.strip())
