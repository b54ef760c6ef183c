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
    # -- lifecycle
    Deviation("done_without_complete", "lifecycle",
              "an import lease goes to done on its own once every file is uploaded, without Complete"),
    Deviation("task_ends_at_handout", "lifecycle",
              "the import/export task succeeds as soon as the lease is handed out, while the lease is held"),
    Deviation("deleted_lease_reappears", "lifecycle",
              "the first call after release answers ManagedObjectNotFound, later ones InvalidState again"),
    # -- initializing
    Deviation("ready_without_info", "initializing", "a ready lease shows no info until the first Progress"),
    Deviation("import_key_missing", "initializing", "an import lease's deviceUrl entries carry an empty importKey"),
    Deviation("init_progress_per_mille", "initializing", "initializeProgress counts 0-1000 instead of 0-100"),
    # -- timeout
    Deviation("no_timeout", "timeout", "a ready lease never expires"),
    Deviation("timeout_early", "timeout", "a lease expires after half of its advertised leaseTimeout"),
    Deviation("timeout_from_acquisition", "timeout",
              "the timeout counts from when the lease became ready: Progress does not renew it"),
    Deviation("lease_timeout_understated", "timeout",
              "info.leaseTimeout advertises half the real timeout: leases outlive it"),
    Deviation("timeout_wrong_fault", "timeout",
              "after expiry Complete, Abort, Progress and GetManifest raise InvalidState, not Timedout"),
    Deviation("timeout_task_succeeds", "timeout", "an expired lease's task ends in success"),
    Deviation("timeout_error_wrong_class", "timeout",
              "an expired lease's error property is RequestCanceled, not Timedout"),
    # -- progress and transferProgress
    Deviation("progress_range_unchecked", "progress", "Progress accepts any percent, even < 0 or > 100"),
    Deviation("progress_rejects_100", "progress", "Progress(100) is refused: the range check stops at 99"),
    Deviation("transfer_progress_frozen", "progress", "transferProgress stays 0 whatever Progress sets"),
    Deviation("transfer_progress_per_mille", "progress", "transferProgress shows 10x the percent Progress set"),
    # -- complete / abort
    Deviation("complete_twice_ok", "complete-abort", "a second Complete succeeds instead of raising InvalidState"),
    Deviation("complete_repeat_wrong_fault", "complete-abort", "a second Complete raises Timedout, not InvalidState"),
    Deviation("complete_task_fails", "complete-abort", "Complete ends the lease's task in error, not success"),
    Deviation("abort_twice_ok", "complete-abort", "a second Abort succeeds instead of raising InvalidState"),
    Deviation("abort_after_complete_ok", "complete-abort", "Abort of a completed lease succeeds"),
    Deviation("abort_fault_lost", "complete-abort",
              "the fault given to Abort is lost: the task's error is always RequestCanceled"),
    Deviation("abort_leaves_ready", "complete-abort", "Abort is acknowledged but the lease stays ready"),
    Deviation("complete_leaves_ready", "complete-abort", "Complete is acknowledged but the lease stays ready"),
    Deviation("abort_requires_fault", "complete-abort",
              "Abort without a fault (the parameter is optional) is refused with InvalidArgument"),
    # -- error property
    Deviation("error_property_missing", "error", "the error property stays unset in the error state"),
    Deviation("error_property_while_ready", "error",
              "a refused Progress leaves its fault in the error property of a lease still ready"),
    # -- import cleanup
    Deviation("import_not_cleaned", "cleanup", "an aborted import leaves its VM in the inventory"),
    Deviation("import_not_cleaned_on_timeout", "cleanup",
              "an import that timed out leaves its VM (only Abort cleans up)"),
    Deviation("import_removed_on_complete", "cleanup", "Complete removes the VM the import created"),
    # -- locks
    Deviation("locks_ignored", "locks", "PowerOn, Destroy and Relocate of a covered VM are not refused"),
    Deviation("power_on_not_locked", "locks", "PowerOn of a covered VM is not refused while the lease is held"),
    Deviation("destroy_not_locked", "locks", "Destroy of a covered VM is not refused while the lease is held"),
    Deviation("relocate_not_locked", "locks", "Relocate of a covered VM is not refused while the lease is held"),
    Deviation("locks_kept_after_release", "locks", "covered VMs stay locked after Complete"),
    # -- manifest
    Deviation("manifest_wrong_sha1", "manifest", "GetManifest reports a wrong sha1 for transferred files"),
    Deviation("manifest_wrong_size", "manifest", "GetManifest reports each transferred file one byte longer"),
    Deviation("manifest_missing_entry", "manifest", "GetManifest leaves out the entry of the lease's last device"),
    Deviation("manifest_extra_entry", "manifest", "GetManifest adds an entry for a key that is no deviceUrl key"),
    Deviation("manifest_disk_flag_wrong", "manifest",
              "GetManifest marks disks as files and files as disks (entry.disk inverted)"),
    Deviation("disk_file_size", "initializing", "deviceUrl entries of disks carry a fileSize (their capacity)"),
    # -- checksum type
    Deviation("checksum_type_ignored", "checksum",
              "SetManifestChecksumType is accepted but ignored: the manifest stays sha1 only"),
    Deviation("checksum_wrong_sha256", "checksum",
              "the manifest's sha256 checksum is not the digest of the bytes (the digest hashed again)"),
    Deviation("checksum_invalid_accepted", "checksum",
              "SetManifestChecksumType accepts unknown device keys and algorithms (md5) and drops them"),
    # -- pull mode
    Deviation("pull_mode_unchanged", "pull", "mode stays pushOrGet after a successful PullFromUrls"),
    Deviation("pull_http_fault_swallowed", "pull",
              "a source that cannot be fetched is skipped: the pull task succeeds instead of raising HttpFault"),
    Deviation("pull_wrong_fault", "pull",
              "a source that cannot be fetched ends the pull task in SystemError, not HttpFault"),
    Deviation("pull_ssl_unverified", "pull",
              "https sources are fetched without verifying their certificate (no SSLVerifyFault)"),
    Deviation("pull_ssl_fault_without_thumbprint", "pull",
              "an untrusted https source fails the pull with an SSLVerifyFault that carries no thumbprint"),
    Deviation("pull_capabilities_lie", "pull",
              "capabilities.pullModeSupported reads the opposite of what PullFromUrls does (false on imports)"),
    # -- transfers
    Deviation("transfer_after_release", "transfer",
              "device URLs keep accepting uploads and serving downloads after Complete or Abort"),
    Deviation("download_truncated", "transfer",
              "a download stops 512 bytes short (Content-Length says so) while the manifest has the whole file"),
    Deviation("download_corrupted", "transfer",
              "a download has one byte flipped while the manifest has the stored file's sha1"),
    Deviation("upload_status_204", "transfer", "a stored upload is answered 204 No Content instead of 200/201"),
    Deviation("expect_continue_final_first", "transfer",
              "with 'Expect: 100-continue' the final 200 comes at once and the body is never read"),
    # -- thumbprint
    Deviation("thumbprint_wrong", "thumbprint",
              "deviceUrl sslThumbprint is not the thumbprint of the certificate the device URL serves"),
    # -- fault messages
    Deviation("fault_message_missing", "fault-message", "every fault a lease method raises has an empty message"),
    # -- undeclared fault classes
    Deviation("released_runtime_fault", "undeclared-fault",
              "calls on a completed or aborted lease raise a plain SystemError where the spec names InvalidState"),
    Deviation("expired_runtime_fault", "undeclared-fault",
              "calls on an expired lease raise a plain SystemError where the spec names Timedout"),
    Deviation("progress_undeclared_fault", "undeclared-fault",
              "Progress outside 0-100 raises InvalidState, a fault Progress does not declare"),
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
