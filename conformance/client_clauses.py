"""The client clause catalogue: what a *client* of HttpNfcLease must or should do.

The server clauses (``conformance/clauses.py``) judge a target; these judge
the other side of the conversation, as the simulator records it
(``nfclease sim --record DIR``), with ``nfclease judge-client``. Same format:
a stable ``client.*`` id, MUST or SHOULD as the spec words it ("must" for
renewal, "should" for Abort, Complete and checksum types), the API version,
one sentence, the exact quotes (checked verbatim by
``tests/test_client_judge.py``) and how the judge checks it. Where the
reference page says nothing and only reported behaviour speaks
(``FIELD-NOTES.md``), the clause says so through its source.

``conformance/CLIENT-CLAUSES.md`` is generated from this module
(``python -m nfclease.conformance.gen_clauses``); the judge (``conformance/client_judge.py``)
has one check per id here, and a test keeps the two sets equal.
"""

from __future__ import annotations

from nfclease.conformance.clauses import NOTES, SPEC, Clause, Source

_ABORT = "HttpNfcLeaseAbort"
_COMPLETE = "HttpNfcLeaseComplete"
_PROGRESS = "HttpNfcLeaseProgress"
_CHECKSUM = "HttpNfcLeaseSetManifestChecksumType"
_DEFECTS = "How real clients keep a lease alive (reported)"


def _spec(where: str, text: str) -> Source:
    return Source(SPEC, where, text)


def _notes(where: str, text: str) -> Source:
    return Source(NOTES, where, text)


_MUST_RENEW = _spec("States: Ready", "The client must call HttpNfcLeaseProgress periodically to keep the lease alive and "
                    "report progress to the corresponding import/export task. Failure to do so causes the lease to "
                    "time out and enter the error state.")
_NO_LONGER_VALID = _spec(f"{_COMPLETE} / {_ABORT}", "After calling this method, this lease will no longer be valid.")
_READY_INFO = _spec("States: Ready", "The leased objects are now ready, and the client can use the information "
                    "provided in the info property to determine where to up/download disks.")
_DISK_UPLOAD = _notes("How real servers behave (reported)",
                      "Disk upload: POST with `Content-Type: application/x-vnd.vmware-streamVmdk` and an explicit "
                      "Content-Length; non-disk files (nvram, iso): PUT with `Overwrite: t`; 200 or 201 is success.")

CLIENT_CLAUSES: tuple[Clause, ...] = (
    # ---------------------------------------------------------------- renewal
    Clause(
        "client.renew", "MUST", "4.0",
        "While it holds a ready lease it still needs, a client MUST call Progress at intervals shorter than "
        "info.leaseTimeout, so that the lease never times out under it.",
        (_MUST_RENEW,
         _spec(_PROGRESS, "If the client wishes to continue using it, for example if it is not done accessing the "
                          "disks, this method must be called periodically.")),
        "the gaps between ready, each renewal and the release against info.leaseTimeout, and any timeout the "
        "server recorded while the client held the lease (NA when the lease was held less than half of "
        "leaseTimeout and never renewed)",
    ),
    Clause(
        "client.renew-margin", "SHOULD", "4.0",
        "A client SHOULD renew with a margin: no gap between renewals longer than three quarters of "
        "info.leaseTimeout, since network and server delays eat the rest.",
        (_notes("How real servers behave (reported)", "Default lease timeout: `info.leaseTimeout` is 300 s on "
                "vCenter; leases expire about five minutes after the last Progress call."),
         _notes(_DEFECTS, "govmomi's lease updater calls Progress every 2 s with the current percent (even when "
                "unchanged or 0) and stops for good after the first error.")),
        "the same gaps against 0.75 x leaseTimeout",
    ),
    # --------------------------------------------------------------- progress
    Clause(
        "client.progress-range", "MUST", "4.0",
        "A client MUST send Progress percents within 0-100.",
        (_spec(f"{_PROGRESS}, Parameters: percent",
               "[in] Completion status represented as an integer in the 0-100 range."),),
        "every Progress the client sent",
    ),
    Clause(
        "client.progress-after-release", "MUST", "4.0",
        "A client MUST NOT call Progress on a lease after its own Complete or Abort of it.",
        (_NO_LONGER_VALID, _notes(_DEFECTS, "Progress called after Complete.")),
        "Progress after the client's Complete/Abort of the same lease (whatever the server answered)",
    ),
    Clause(
        "client.release-unused", "MUST", "4.0",
        "After its Complete or Abort of a lease succeeded, a client MUST NOT call that lease's methods or transfer "
        "to its device URLs (reading its properties is allowed).",
        (_NO_LONGER_VALID, _spec(_COMPLETE, "Completes the import/export and releases this lease.")),
        "lease calls other than Read, and transfers, after a successful Complete/Abort",
    ),
    # ------------------------------------------------------------------ abort
    Clause(
        "client.abort-on-failure", "SHOULD", "4.0",
        "When a transfer fails and is not retried successfully, or the operation is cancelled, a client SHOULD "
        "call Abort: never Complete, and never leave the lease held until it times out.",
        (_spec(_ABORT, "Clients should call this method if an error occurs while accessing the disks, or if the "
                       "operation is cancelled."),
         _notes(_DEFECTS, "no Abort on failure (orphaned imports until timeout)")),
        "a device whose last transfer failed must be followed by Abort; Complete fails, and so does no release "
        "at all, unless the server had already ended the lease (it timed out) when the transfer failed",
    ),
    Clause(
        "client.abort-fault", "SHOULD", "4.0",
        "A client's Abort SHOULD carry the fault that caused it, so clients listening on the task learn the cause.",
        (_spec(_ABORT, "The client can report the cause of the abort to other clients listening on the task with "
                       "the fault parameter."),),
        "every Abort the client sent (NA without one)",
    ),
    # --------------------------------------------------------------- complete
    Clause(
        "client.complete-all", "SHOULD", "4.0",
        "A client SHOULD call Complete on an import lease only after every device URL of the lease was uploaded "
        "successfully.",
        (_spec(_COMPLETE, "Clients should call this method when they are done accessing the disks for the "
                          "VirtualMachines in this lease."),),
        "Complete of an import lease against the devices its ready info listed and the successful Uploads",
    ),
    # ------------------------------------------------------------------ ready
    Clause(
        "client.wait-ready", "MUST", "4.0",
        "A client MUST see the lease ready before it transfers, renews, completes or reads the manifest.",
        (_READY_INFO,
         _spec("Properties: info", "The info property is only valid when the lease is in the ready state.")),
        "the first such call on each lease must follow a Read that showed state ready",
    ),
    Clause(
        "client.wait-error", "SHOULD", "4.0",
        "A client waiting for ready SHOULD stop waiting once the lease shows error, and report that error "
        "instead of polling on or transferring.",
        (_spec("States: Error", "In this state, the error property can be read to determine the cause."),
         _notes(_DEFECTS, "a `while state != ready` loop that never ends when the lease goes to `error`")),
        "after a Read showed error on a lease never seen ready: no transfer, and reads of it stop within 5 s "
        "(at most 25 more)",
    ),
    # ------------------------------------------------------------- device URLs
    Clause(
        "client.star-host", "MUST", "4.0",
        "A client MUST replace a device URL's host `*` with the host it connected to, keeping the port.",
        (_notes("Data model", "The url holds an IP, a host name or `*`, which the client replaces with the host it "
                "connected to."),
         _notes("How real servers behave (reported)", "clients must put in the host they connected to, keeping "
                "the port.")),
        "a lease whose ready info carried `*` hosts must see a transfer reach the simulator",
    ),
    Clause(
        "client.thumbprint", "SHOULD", "4.0",
        "When a device URL carries an sslThumbprint, a client SHOULD check the NFC server's certificate against "
        "it and refuse to transfer when they differ.",
        (_notes("Data model", "HttpNfcLeaseDeviceUrl (4.0): `key`, `importKey` (imports only), `url`, "
                "`sslThumbprint`"),),
        "a lease announcing a thumbprint that is not the served certificate's must see no transfer (NA when "
        "they matched)",
    ),
    Clause(
        "client.checksum-first", "SHOULD", "6.7",
        "A client that sets manifest checksum types SHOULD set them before any transfer on the lease starts.",
        (_spec(_CHECKSUM, "Should be set before any transfer starts."),),
        "SetManifestChecksumType after an Upload/Download of the same lease",
    ),
    # ---------------------------------------------------------------- uploads
    Clause(
        "client.upload-method", "MUST", "4.0",
        "A client MUST upload a disk with POST and a non-disk file with PUT and 'Overwrite: t'.",
        (_DISK_UPLOAD, _notes("How real servers behave (reported)", "POSTing a non-disk file has drawn 405.")),
        "the method and Overwrite header of every upload against the device's kind",
    ),
    Clause(
        "client.upload-content-type", "SHOULD", "4.0",
        "A disk upload SHOULD carry 'Content-Type: application/x-vnd.vmware-streamVmdk' and an explicit "
        "Content-Length.",
        (_DISK_UPLOAD,),
        "the headers of every disk upload",
    ),
    Clause(
        "client.upload-stream-vmdk", "MUST", "4.0",
        "A disk upload MUST be a streamOptimized VMDK stream.",
        (_DISK_UPLOAD,),
        "the simulator walks every disk upload's VMDK structure and records a body that is not one",
    ),
)

BY_ID: dict[str, Clause] = {c.id: c for c in CLIENT_CLAUSES}
