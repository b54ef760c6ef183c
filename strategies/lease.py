"""Strategies for lease calls: percents, checksum mappings, pull plans, uploads, sleeps.

Each strategy leans towards the values the spec has something to say about
(the 0/100 edges, just outside them, the int32 extremes) while still drawing
ordinary ones, and shrinks towards the simplest call (``percent=0``, one
``sha1`` mapping, a whole upload, the good pull).
"""

from __future__ import annotations

from typing import Sequence

from hypothesis import strategies as st

from nfclease import vocabulary as V

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1

#: A device key no lease hands out (an "unknown key" for SetManifestChecksumType).
BOGUS_KEY = "/nfclease/no-such-device-key"

#: Faults a client may hand to Abort (the model checks the task reports them).
ABORT_FAULTS = ("vim.fault.NoDiskSpace", "vmodl.fault.RequestCanceled", "vim.fault.InvalidState")

#: What a rule does through a reference that is not one of the run's leases.
FOREIGN_CALLS = (V.READ, V.PROGRESS, V.COMPLETE, V.ABORT, V.GET_MANIFEST)

_ALGORITHMS_VALID = ("sha1", "sha256")
_ALGORITHMS_INVALID = ("md5", "SHA256", "sha512", "")


def in_range_percents() -> st.SearchStrategy[int]:
    """0..100, the edges drawn often."""
    return st.one_of(st.sampled_from([0, 100, 50]), st.integers(0, 100))


def out_of_range_percents() -> st.SearchStrategy[int]:
    """Outside 0..100: just outside, far outside, the int32 extremes."""
    return st.one_of(st.sampled_from([101, -1, INT32_MAX, INT32_MIN, 150, -100]),
                     st.integers(101, INT32_MAX), st.integers(INT32_MIN, -1))


def percents() -> st.SearchStrategy[int]:
    """What a Progress call sends: mostly in range, about one in five out of range."""
    return st.one_of(in_range_percents(), in_range_percents(), in_range_percents(), in_range_percents(),
                     out_of_range_percents())


def checksum_mappings() -> st.SearchStrategy[tuple[tuple[int | str, str], ...]]:
    """A SetManifestChecksumType plan: ``((device, algorithm), ...)``.

    ``device`` is an index into the lease's device URLs (taken modulo their
    number) or :data:`BOGUS_KEY`; algorithms are mostly sha1/sha256, sometimes
    one the spec does not know. The empty mapping is allowed (it is valid).
    """
    device = st.one_of(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.just(BOGUS_KEY))
    algorithm = st.one_of(st.sampled_from(_ALGORITHMS_VALID), st.sampled_from(_ALGORITHMS_VALID),
                          st.sampled_from(_ALGORITHMS_VALID), st.sampled_from(_ALGORITHMS_INVALID))
    return st.lists(st.tuples(device, algorithm), min_size=0, max_size=3).map(tuple)


def resolve_mapping(plan: Sequence[tuple[int | str, str]], keys: Sequence[str]) -> dict[str, str]:
    """A plan against the lease's device keys: indices become keys (modulo), the bogus key stays."""
    out: dict[str, str] = {}
    for device, algorithm in plan:
        if isinstance(device, int):
            if not keys:
                continue
            out[keys[device % len(keys)]] = algorithm
        else:
            out[str(device)] = algorithm
    return out


def pull_variants() -> st.SearchStrategy[str]:
    """PullFromUrls source lists: ``good`` (one reachable source per device URL), ``short``
    (one fewer), ``unreachable`` (a port nobody listens on), ``untrusted`` (an https source
    on a self-signed certificate, no sslThumbprint)."""
    return st.sampled_from(["good", "short", "unreachable", "untrusted"])


def upload_variants() -> st.SearchStrategy[str]:
    """Uploads: mostly ``whole``; ``truncated`` (half the stream) and ``garbage`` (no VMDK)."""
    return st.sampled_from(["whole", "whole", "truncated", "garbage"])


def sleep_fractions() -> st.SearchStrategy[float]:
    """Sleeps as fractions of the lease's leaseTimeout: well inside it, around it, well past it.

    The machine adds the model's tolerance window to the fractions above 1, so
    "past" really is past.
    """
    return st.sampled_from([1.5, 0.25, 0.5, 0.9, 1.0, 2.0])


def abort_faults() -> st.SearchStrategy[str | None]:
    """Abort's optional fault (a vmodl type name)."""
    return st.one_of(st.none(), st.sampled_from(ABORT_FAULTS))


def disk_counts() -> st.SearchStrategy[int]:
    """Disks of an import lease: 1 to 3."""
    return st.integers(1, 3)


def foreign_calls() -> st.SearchStrategy[str]:
    return st.sampled_from(FOREIGN_CALLS)
