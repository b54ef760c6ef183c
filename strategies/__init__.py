"""Hypothesis strategies for the conformance state machine (``conformance/machine.py``).

Everything here is a *plan* that a rule turns into a call once it knows the
lease (device keys are only known at run time), so the values print readably
in a shrunk program: ``state.progress(lease=leases_0, percent=150)``,
``state.set_manifest_checksum_type(lease=leases_1, mapping=((0, 'sha256'),))``.
"""

from nfclease.strategies.lease import (
    ABORT_FAULTS,
    BOGUS_KEY,
    FOREIGN_CALLS,
    abort_faults,
    checksum_mappings,
    disk_counts,
    foreign_calls,
    in_range_percents,
    out_of_range_percents,
    percents,
    pull_variants,
    resolve_mapping,
    sleep_fractions,
    upload_variants,
)

__all__ = [
    "ABORT_FAULTS", "BOGUS_KEY", "FOREIGN_CALLS", "abort_faults", "checksum_mappings", "disk_counts",
    "foreign_calls", "in_range_percents", "out_of_range_percents", "percents", "pull_variants",
    "resolve_mapping", "sleep_fractions", "upload_variants",
]
