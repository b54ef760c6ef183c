"""Simulated vendors: named bundles of deviations and settings, the way a product deviates.

A real server is rarely wrong in one way only. A vendor profile is a product's
whole character -- several deviations from ``nfclease/sim/deviations.py`` and
the simulator settings that go with them (``*`` in device URLs, leases deleted
as soon as they are released, no initializing phase) -- so the interop
workflow (an expectations file per product, XFAIL for its known deviations,
XPASS when one disappears) runs end to end without a vCenter::

    nfclease conform --target sim --vendor vcsim-like --expectations vcsim-like   # exit 0
    nfclease conform --target sim --vendor vcsim-like                             # exit 1: its FAILs

Each profile has its expectations file ``conformance/expectations/<name>.yaml``
(the simulator, as always, knows nothing of clauses). ``SimConfig(vendor=NAME)``
applies a profile: its deviations join any others, its settings replace the
fields they name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from nfclease.sim.deviations import validate_deviations

__all__ = ["VENDORS", "Vendor", "vendor_named"]


@dataclass(frozen=True)
class Vendor:
    """A simulated product: what it gets wrong, and how it is set up."""

    name: str
    description: str
    deviations: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)


_PROFILES = (
    Vendor("vcsim-like",
           "behaves like govmomi's vcsim 0.24 (tools/vcsim/NOTES.md): born ready, no expiry, Progress "
           "unchecked, Abort's fault ignored, no locks, an aborted import left behind, released leases gone",
           ("no_timeout", "progress_range_unchecked", "abort_fault_lost", "locks_ignored", "import_not_cleaned"),
           {"init_seconds": 0.0, "star_hosts": True, "release_retention": 0.0}),
    Vendor("esxi-like",
           "a host answering directly: device URLs with host '*', leases deleted as soon as they are "
           "released (timed-out ones too); transferProgress moved only by its own transfers, a timed-out "
           "import left behind",
           ("transfer_progress_frozen", "import_not_cleaned_on_timeout"),
           {"star_hosts": True, "release_retention": 0.0}),
    Vendor("strict",
           "errs on the side of refusing: Progress(100) is out of range for it, and a completed lease "
           "keeps its VMs locked",
           ("progress_rejects_100", "locks_kept_after_release")),
)

#: every simulated vendor, by name
VENDORS: dict[str, Vendor] = {v.name: v for v in _PROFILES}
for _vendor in _PROFILES:
    validate_deviations(_vendor.deviations)


def vendor_named(name: str) -> Vendor:
    """The profile ``name``; an unknown one is a ValueError saying what was meant."""
    if name in VENDORS:
        return VENDORS[name]
    close = difflib.get_close_matches(name, VENDORS, n=2, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}?" if close else f"known: {', '.join(VENDORS)}"
    raise ValueError(f"unknown vendor {name!r}: {hint}")
