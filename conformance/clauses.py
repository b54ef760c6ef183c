"""The clause catalogue: every rule the suite gives a verdict on.

Each clause has a stable id (published ids never change meaning or go away),
a level (MUST or SHOULD), the API version it applies from, one RFC 2119
sentence, and the exact sentence(s) of the spec it comes from, so a reader can
check the suite's reading of the spec without the suite. Sources are
``conformance/spec/HttpNfcLease.txt`` (the reference page) or
``conformance/spec/FIELD-NOTES.md`` (reported behaviour: marked as such, and
weaker evidence). ``tests/test_conformance_model.py`` checks every quote is
verbatim in its document.

Where the spec is silent the clause is SHOULD, and its table rows say
``observe``: the suite reports what the target did instead of inventing a rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["MUST", "SHOULD"]

SPEC = "HttpNfcLease.txt"
NOTES = "FIELD-NOTES.md"


@dataclass(frozen=True)
class Source:
    """One quoted passage: which document, where in it, the exact words."""

    doc: str
    where: str
    text: str


@dataclass(frozen=True)
class Clause:
    """One rule with a verdict of its own."""

    id: str
    level: Level
    since: str
    sentence: str
    sources: tuple[Source, ...]
    how: str = ""
    #: the direct sequences (``nfclease.conformance.sequences.SEQUENCES``) that exercise it, in order of preference
    sequences: tuple[str, ...] = ()
    #: run facts an NA may be due to: "expiry" (waiting allowed), "task", "export", "pull" (see explain_na)
    needs: tuple[str, ...] = ()
    #: why it may be NA though its sequences ran (the model could only say "not exercised")
    na_hint: str = ""

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]


def _spec(where: str, text: str) -> Source:
    return Source(SPEC, where, text)


def _notes(where: str, text: str) -> Source:
    return Source(NOTES, where, text)


_ABORT = "HttpNfcLeaseAbort"
_COMPLETE = "HttpNfcLeaseComplete"
_MANIFEST = "HttpNfcLeaseGetManifest"
_PROGRESS = "HttpNfcLeaseProgress"
_PULL = "HttpNfcLeasePullFromUrls_Task"
_CHECKSUM = "HttpNfcLeaseSetManifestChecksumType"
_BLOCKED = _spec(
    "Managed Object Description",
    "While the lease is held, operations that alter the state of the virtual machines covered by "
    "the lease are blocked. Examples of blocked operations are PowerOn, Destroy, Migrate, etc.",
)
_UNBLOCKED = _spec(
    f"{_COMPLETE} / {_ABORT}", "Operations on the objects contained in this lease will no longer be blocked."
)
_NO_LONGER_VALID = _spec(f"{_COMPLETE} / {_ABORT}", "After calling this method, this lease will no longer be valid.")
_DELETED_NOTE = _notes(
    "How real servers behave (reported)",
    'Once a lease is finished, calls on it have been seen to fail with a "has already been deleted '
    'or has not been completely created" fault (ManagedObjectNotFound-style).',
)

CLAUSES: tuple[Clause, ...] = (
    # ---------------------------------------------------------------- state
    Clause(
        "state.initial", "MUST", "4.0",
        "A new lease MUST be initializing or ready when first read; it MAY be in error only because "
        "its initialization failed, and MUST NOT be done before Complete.",
        (_spec("States: Initializing", "This is the initial state."),
         _spec("States: Error", "If an error occurs during initialization or the lease times out, it will change to this state.")),
        "the first Read/WaitReady of each lease",
        sequences=("initializing", "import"),
    ),
    Clause(
        "state.lifecycle", "MUST", "4.0",
        "A lease MUST only move forward: initializing to ready or error, ready to done (Complete) or "
        "error (Abort, timeout); done and error are final.",
        (_spec("States: Ready", "The lease changes to this state once the corresponding import/export task is done preparing the lease."),
         _spec("States: Done", "When the client is done transferring disks, it calls HttpNfcLeaseComplete to signal the end of the import/export session."),
         _spec("States: Error", "If an error occurs during initialization or the lease times out, it will change to this state.")),
        "every Read/WaitReady: the state shown must be one the table allows from the model's state",
        sequences=("export", "import"),
    ),
    Clause(
        "state.readable", "MUST", "4.0",
        "A lease's properties MUST be readable while it exists; reading MAY fail with "
        "ManagedObjectNotFound only once the lease object was deleted after Complete or Abort.",
        (_spec("States: Error", "In this state, the error property can be read to determine the cause."),
         _DELETED_NOTE),
        "every Read/WaitReady that fails",
        sequences=("export", "import"),
    ),
    Clause(
        "state.init-progress", "MUST", "4.0",
        "initializeProgress MUST stay within 0-100 and MUST NOT decrease.",
        (_spec("Properties: initializeProgress", "Provides progress information (0-100 percent) for the initializing state of the lease."),),
        "every Read value",
        sequences=("export", "import"),
    ),
    Clause(
        "state.ready-info", "MUST", "4.0",
        "In ready, info MUST be present with the entity, a leaseTimeout > 0 and one deviceUrl per "
        "disk or file, each with a key and a url, and on an import lease an importKey.",
        (_spec("States: Ready", "The leased objects are now ready, and the client can use the information provided in the info property to determine where to up/download disks."),
         _notes("Data model", "For export a device has one id (`key`); for import two: `importKey` (names from the ImportSpec) and `key` (ids of the created objects, matching a later export lease).")),
        "every Read value showing ready",
        sequences=("export", "import"),
    ),
    Clause(
        "state.info-valid", "SHOULD", "4.0",
        "Outside ready, clients MUST NOT rely on info; whether the server still shows it there is "
        "not specified, and the suite reports what it observed.",
        (_spec("Properties: info", "The info property is only valid when the lease is in the ready state."),),
        "observe: every Read value not in ready",
        sequences=("export", "abort"),
        na_hint="no Read showed a lease outside ready (the target deletes released leases)",
    ),
    Clause(
        "state.error-property", "MUST", "4.0",
        "error MUST be set when, and only when, state is error.",
        (_spec("Properties: error", "If the lease is in the error state, this property contains the error that caused the lease to be aborted."),
         _spec("States: Error", "In this state, the error property can be read to determine the cause.")),
        "every Read value",
        sequences=("abort",),
    ),
    Clause(
        "state.task-running", "MUST", "4.0",
        "While the lease is held (initializing or ready), its import/export task MUST be queued or running.",
        (_spec("States", "The import/export task corresponding to the lease continues running while the lease is held."),),
        "TaskInfo while held",
        sequences=("export", "import"),
        needs=("task",),
    ),
    # -------------------------------------------------------------- timeout
    Clause(
        "timeout.expires", "MUST", "4.0",
        "A ready lease not renewed by Progress within info.leaseTimeout seconds MUST time out: it "
        "enters error, with a Timedout error.",
        (_spec("States: Ready", "The client must call HttpNfcLeaseProgress periodically to keep the lease alive and report progress to the corresponding import/export task. Failure to do so causes the lease to time out and enter the error state."),
         _spec("States: Error", "If an error occurs during initialization or the lease times out, it will change to this state.")),
        "any call clearly after last renewal + leaseTimeout + tolerance must see the lease expired",
        sequences=("expiry",),
        needs=("expiry",),
    ),
    Clause(
        "timeout.renewed", "MUST", "4.0",
        "Progress on a ready lease MUST restart its timeout clock: the lease stays alive for "
        "leaseTimeout seconds after the call.",
        (_spec(_PROGRESS, "Sets the disk up/download progress, and renews this lease."),
         _spec(_PROGRESS, "If the client wishes to continue using it, for example if it is not done accessing the disks, this method must be called periodically.")),
        "a call clearly before renewal + leaseTimeout, that would be clearly expired without the renewal, must see the lease alive",
        sequences=("expiry",),
        needs=("expiry",),
    ),
    Clause(
        "timeout.alive", "MUST", "4.0",
        "A ready lease MUST NOT time out before info.leaseTimeout seconds have passed since it "
        "became ready or was last renewed.",
        (_spec(_PROGRESS, "A lease will time out automatically after a while."),
         _notes("How real servers behave (reported)", "Default lease timeout: `info.leaseTimeout` is 300 s on vCenter; leases expire about five minutes after the last Progress call.")),
        "any call clearly before last renewal + leaseTimeout - tolerance must see the lease alive",
        sequences=("expiry", "import"),
        needs=("expiry",),
    ),
    Clause(
        "timeout.faults", "MUST", "4.0",
        "After a lease timed out, Complete, Abort, Progress and GetManifest MUST raise Timedout.",
        (_spec(f"{_COMPLETE} / {_ABORT}, Faults: Timedout", "Thrown if the lease has timed out before this call."),
         _spec(f"{_PROGRESS}, Faults: Timedout", "Thrown if the lease has timed out."),
         _notes("Methods and the faults pyVmomi declares for them", "`HttpNfcLeaseGetManifest()` 4.1: Timedout, InvalidState")),
        sequences=("expiry",),
        needs=("expiry",),
    ),
    Clause(
        "timeout.task", "SHOULD", "4.0",
        "After a lease timed out, its import/export task SHOULD end in error, never in success.",
        (_spec("States: Done", "This causes the corresponding import/export task to complete successfully."),
         _spec("States", "The import/export task corresponding to the lease continues running while the lease is held.")),
        "TaskInfo after expiry (running is accepted as not yet finished)",
        sequences=("expiry",),
        needs=("expiry", "task"),
    ),
    # ------------------------------------------------------------- progress
    Clause(
        "progress.accepted", "MUST", "4.0",
        "Progress(percent) with 0 <= percent <= 100 on a ready lease MUST succeed.",
        (_spec(_PROGRESS, "Sets the disk up/download progress, and renews this lease."),
         _spec(f"{_PROGRESS}, Parameters: percent", "[in] Completion status represented as an integer in the 0-100 range.")),
        sequences=("export", "import"),
    ),
    Clause(
        "progress.transfer-progress", "MUST", "6.7",
        "After Progress(percent) succeeds, transferProgress MUST read as that percent until another "
        "Progress or a transfer changes it.",
        (_spec("Properties: transferProgress", "Provides progress information (0-100 percent) for current transfer. Transfer covers download, upload and pull scenario. Can be externally updated by progress method."),),
        "Read after Progress with no transfer in between",
        sequences=("export",),
    ),
    Clause(
        "progress.transfer-range", "MUST", "6.7",
        "transferProgress MUST stay within 0-100.",
        (_spec("Properties: transferProgress", "Provides progress information (0-100 percent) for current transfer."),),
        "every Read value (not judged after the server accepted an out-of-range Progress)",
        sequences=("export", "import"),
    ),
    Clause(
        "progress.range", "SHOULD", "4.0",
        "Progress with a percent outside 0-100 SHOULD be refused with a fault.",
        (_spec(f"{_PROGRESS}, Parameters: percent", "[in] Completion status represented as an integer in the 0-100 range."),),
        sequences=("import",),
    ),
    Clause(
        "progress.after-release", "SHOULD", "4.0",
        "Progress on a completed or aborted lease: the spec is silent (Progress declares only "
        "Timedout), so any outcome is accepted and reported.",
        (_spec(f"{_PROGRESS}, Faults: Timedout", "Thrown if the lease has timed out."),
         _notes("How real clients keep a lease alive (reported)", "Progress called after Complete.")),
        "observe",
        sequences=("release",),
    ),
    # ------------------------------------------------------------- complete
    Clause(
        "complete.done", "MUST", "4.0",
        "Complete on a ready lease MUST succeed; the lease MUST then be done and its task MUST end in success.",
        (_spec("States: Done", "When the client is done transferring disks, it calls HttpNfcLeaseComplete to signal the end of the import/export session. This causes the corresponding import/export task to complete successfully."),
         _spec(_COMPLETE, "The status of the corresponding task will be set to success.")),
        sequences=("export", "import"),
    ),
    Clause(
        "complete.repeat", "MUST", "4.0",
        "Complete on a completed or aborted lease MUST raise InvalidState (ManagedObjectNotFound "
        "once the lease object is deleted).",
        (_spec(f"{_COMPLETE}, Faults: InvalidState", "Thrown if the lease has already been completed or aborted."),
         _NO_LONGER_VALID),
        sequences=("release",),
    ),
    # ---------------------------------------------------------------- abort
    Clause(
        "abort.error", "MUST", "4.0",
        "Abort on an initializing or ready lease MUST succeed; the lease MUST then be in error and its task MUST end in error.",
        (_spec("States: Error", "The client can also abort the lease manually by calling HttpNfcLeaseAbort."),
         _spec(_ABORT, "Aborts the import/export and releases this lease.")),
        sequences=("abort",),
    ),
    Clause(
        "abort.fault-reported", "MUST", "4.0",
        "The fault given to Abort MUST be the error of the lease's task.",
        (_spec(_ABORT, "The client can report the cause of the abort to other clients listening on the task with the fault parameter."),),
        "TaskInfo after Abort(fault)",
        sequences=("abort",),
        needs=("task",),
    ),
    Clause(
        "abort.repeat", "MUST", "4.0",
        "Abort on an aborted lease MUST raise InvalidState (ManagedObjectNotFound once the lease object is deleted).",
        (_spec(f"{_ABORT}, Faults: InvalidState", "Thrown if the lease has already been aborted."), _NO_LONGER_VALID),
        sequences=("release",),
    ),
    Clause(
        "abort.after-complete", "SHOULD", "4.0",
        "Abort on a completed lease SHOULD raise InvalidState: the lease is no longer valid, but "
        "Abort's InvalidState names only aborted leases.",
        (_NO_LONGER_VALID, _spec(f"{_ABORT}, Faults: InvalidState", "Thrown if the lease has already been aborted.")),
        sequences=("release",),
    ),
    # -------------------------------------------------------------- release
    Clause(
        "release.transfers", "MUST", "4.0",
        "After the lease is done or in error, transfers to its device URLs MUST be refused.",
        (_spec(_COMPLETE, "Completes the import/export and releases this lease."), _NO_LONGER_VALID),
        sequences=("export", "import"),
    ),
    Clause(
        "release.invalid-state", "SHOULD", "6.7",
        "SetManifestChecksumType and PullFromUrls on a completed or timed-out lease SHOULD raise "
        "InvalidState, the only state fault they declare.",
        (_spec(f"{_PULL}, Faults: InvalidState", "Thrown if the lease has already been aborted."),
         _notes("Methods and the faults pyVmomi declares for them", "`HttpNfcLeaseSetManifestChecksumType(deviceUrlsToChecksumTypes: KeyValue[])` 6.7: InvalidState")),
        sequences=("export",),
    ),
    Clause(
        "release.deleted", "MUST", "4.0",
        "Once a call on a released lease raised ManagedObjectNotFound, every later call on it MUST "
        "raise ManagedObjectNotFound: a deleted lease does not come back.",
        (_NO_LONGER_VALID, _DELETED_NOTE),
        sequences=("export", "release"),
        na_hint=("the target never deleted a released lease (no ManagedObjectNotFound after Complete/Abort), so "
                 "there was no deleted lease to check"),
    ),
    # --------------------------------------------------------------- import
    Clause(
        "import.cleanup", "MUST", "4.0",
        "When an import lease enters error, every object the import created MUST be removed.",
        (_spec("States: Error", "If the lease belongs to an import session, all objects created during the import are removed when the lease enters this state."),),
        "PowerOn/Destroy/Relocate of the imported entity fail with ManagedObjectNotFound; TaskInfo's entityExists is false",
        sequences=("abort",),
    ),
    Clause(
        "initializing.calls", "SHOULD", "4.0",
        "Calls other than Read and Abort on an initializing lease: the spec is silent, so any "
        "outcome is accepted and reported.",
        (_spec("States: Initializing", "The lease remains in this state while the corresponding import/export task is preparing the objects."),
         _spec("Properties: info", "The info property is only valid when the lease is in the ready state.")),
        "observe",
        sequences=("initializing",),
        na_hint="no call was refused on a lease known to be initializing (the target readies leases fast)",
    ),
    # ----------------------------------------------------------------- lock
    Clause(
        "lock.power-on", "MUST", "4.0",
        "While the lease is held, PowerOn of a covered VM MUST be refused; after Complete or Abort it MUST work.",
        (_BLOCKED, _UNBLOCKED),
        sequences=("import",),
    ),
    Clause(
        "lock.destroy", "MUST", "4.0",
        "While the lease is held, Destroy of a covered VM MUST be refused; after Complete or Abort it MUST work.",
        (_BLOCKED, _UNBLOCKED),
        sequences=("import",),
    ),
    Clause(
        "lock.migrate", "MUST", "4.0",
        "While the lease is held, Relocate of a covered VM MUST be refused; after Complete or Abort it MUST work.",
        (_BLOCKED, _UNBLOCKED),
        sequences=("import",),
    ),
    # ------------------------------------------------------------- manifest
    Clause(
        "manifest.entries", "MUST", "4.1",
        "GetManifest on a ready lease MUST return at most one entry per deviceUrl key (on an export "
        "lease exactly one), each with the size and sha1 of the bytes transferred for that device.",
        (_spec(_MANIFEST, "Gets the download manifest for this lease."),
         _notes("Data model", "HttpNfcLeaseManifestEntry (4.1): `key`, `sha1`, `size`, `disk`, optional `capacity`, `populatedSize`; 6.7 adds `checksum`, `checksumType`.")),
        "GetManifest value against recorded Upload/Download/PullFromUrls",
        sequences=("import",),
    ),
    Clause(
        "manifest.state", "MUST", "4.1",
        "GetManifest on a completed or aborted lease MUST raise InvalidState (ManagedObjectNotFound "
        "once the lease object is deleted).",
        (_spec(f"{_MANIFEST}, Faults", "InvalidState"),
         _notes("Methods and the faults pyVmomi declares for them", "`HttpNfcLeaseGetManifest()` 4.1: Timedout, InvalidState")),
        sequences=("release",),
    ),
    # ------------------------------------------------------------- checksum
    Clause(
        "checksum.type", "MUST", "6.7",
        "SetManifestChecksumType with known keys and algorithms MUST succeed on a ready lease; once a "
        "key is mapped to sha256 before its transfer, its manifest entry MUST carry checksumType "
        "sha256 and the sha256 of the bytes transferred.",
        (_spec(_CHECKSUM, "Sets desired checksum algorithm per each file that will be returned in ManifestEntry. Should be set before any transfer starts."),),
        sequences=("import",),
    ),
    Clause(
        "checksum.invalid", "SHOULD", "6.7",
        "SetManifestChecksumType with a key that is not a deviceUrl key of the lease, or an "
        "algorithm other than sha1/sha256, SHOULD be refused.",
        (_spec(f"{_CHECKSUM}, Parameters", "[in] Should contain key value pairs: where key is DeviceUrl#key returned in this lease info and value is desired algorithm from ChecksumType."),
         _notes("Data model", "HttpNfcLeaseManifestEntryChecksumType `sha1 sha256`")),
        sequences=("import",),
    ),
    Clause(
        "checksum.state", "MUST", "6.7",
        "SetManifestChecksumType on an aborted lease MUST raise InvalidState (ManagedObjectNotFound "
        "once the lease object is deleted).",
        (_spec(f"{_CHECKSUM}, Faults", "InvalidState"),
         _notes("Methods and the faults pyVmomi declares for them", "`HttpNfcLeaseSetManifestChecksumType(deviceUrlsToChecksumTypes: KeyValue[])` 6.7: InvalidState")),
        sequences=("abort",),
    ),
    # ----------------------------------------------------------------- pull
    Clause(
        "pull.capabilities", "MUST", "6.7",
        "From 6.7 a lease MUST show capabilities (pullModeSupported, corsSupported) and a mode of "
        "pushOrGet or pull.",
        (_spec("Properties: capabilities", "Current supported capabilities by this lease"),
         _spec("Properties: mode", "Current mode of the lease."),
         _notes("Data model", "HttpNfcLeaseMode `pushOrGet pull`")),
        "every Read value",
        sequences=("export", "import"),
        needs=("pull",),
    ),
    Clause(
        "pull.transfer", "MUST", "6.7",
        "When pullModeSupported, PullFromUrls with one reachable source per device URL MUST "
        "succeed (its task ends in success) and the manifest MUST then match the sources.",
        (_spec(_PULL, "Upgrades current lease from push to pull mode."),),
        sequences=("pull",),
        needs=("pull",),
    ),
    Clause(
        "pull.mode", "MUST", "6.7",
        "After a successful PullFromUrls the lease's mode MUST be pull.",
        (_spec(_PULL, "Upgrades current lease from push to pull mode."),),
        "Read after PullFromUrls",
        sequences=("pull",),
        needs=("pull",),
    ),
    Clause(
        "pull.count", "SHOULD", "6.7",
        "PullFromUrls with a number of source files different from the number of device URLs SHOULD "
        "be refused (the spec words it as a client 'should').",
        (_spec(f"{_PULL}, Parameters: files", "There should be the same number of SourceFile as DeviceUrl provided by this lease."),),
        sequences=("pull",),
        needs=("pull",),
    ),
    Clause(
        "pull.http-fault", "MUST", "6.7",
        "PullFromUrls from an unreachable or failing source MUST fail with HttpFault, raised or as "
        "its task's error.",
        (_spec(f"{_PULL}, Faults", "HttpFault"),
         _notes("Methods and the faults pyVmomi declares for them", "`HttpNfcLeasePullFromUrls_Task(files: HttpNfcLeaseSourceFile[])` 6.7: InvalidState, HttpFault, SSLVerifyFault")),
        sequences=("pull",),
        needs=("pull",),
    ),
    Clause(
        "pull.ssl-verify", "MUST", "6.7",
        "PullFromUrls from an https source whose certificate the server cannot verify, given without "
        "sslThumbprint, MUST fail with SSLVerifyFault (raised or as its task's error), and the fault's "
        "thumbprint MUST be that certificate's.",
        (_spec(f"{_PULL}, Faults", "SSLVerifyFault"),
         _notes("Data model", "HttpNfcLeaseSourceFile (6.7): `targetDeviceId`, `url`, `create` (true: the target is written with PUT, else POST), optional `memberName` (OVA member), `sslThumbprint`")),
        "PullFromUrls with an https source on a self-signed certificate; the task error's thumbprint",
        sequences=("pull",),
        needs=("pull",),
    ),
    Clause(
        "pull.state", "MUST", "6.7",
        "PullFromUrls on an aborted lease MUST raise InvalidState (ManagedObjectNotFound once the "
        "lease object is deleted).",
        (_spec(f"{_PULL}, Faults: InvalidState", "Thrown if the lease has already been aborted."),),
        sequences=("abort",),
        needs=("pull",),
    ),
    Clause(
        "pull.unsupported", "SHOULD", "6.7",
        "PullFromUrls on a lease that does not offer pull mode (pullModeSupported false, or an "
        "export lease): the spec is silent, so any outcome is accepted and reported.",
        (_spec("Properties: capabilities", "Current supported capabilities by this lease"),),
        "observe",
        sequences=("export",),
        needs=("export", "pull"),
    ),
    # ------------------------------------------------------------- transfer
    Clause(
        "transfer.upload", "MUST", "4.0",
        "Uploading a whole file to an import deviceUrl of a ready lease MUST succeed (disks: POST "
        "streamVmdk; other files: PUT with Overwrite: t; 200 or 201).",
        (_spec("States: Ready", "The leased objects are now ready, and the client can use the information provided in the info property to determine where to up/download disks."),
         _notes("How real servers behave (reported)", "Disk upload: POST with `Content-Type: application/x-vnd.vmware-streamVmdk` and an explicit Content-Length; non-disk files (nvram, iso): PUT with `Overwrite: t`; 200 or 201 is success.")),
        sequences=("import",),
    ),
    Clause(
        "transfer.download", "MUST", "4.0",
        "Each export deviceUrl of a ready lease MUST serve a stream whose size and sha1 match the "
        "manifest entry for its key.",
        (_spec("States: Ready", "The leased objects are now ready, and the client can use the information provided in the info property to determine where to up/download disks."),
         _spec(_MANIFEST, "Gets the download manifest for this lease.")),
        sequences=("export",),
        needs=("export",),
    ),
    Clause(
        "transfer.thumbprint", "MUST", "4.0",
        "When a deviceUrl carries an sslThumbprint, the certificate served at that URL MUST have "
        "that SHA-1 thumbprint.",
        (_notes("Data model", "HttpNfcLeaseDeviceUrl (4.0): `key`, `importKey` (imports only), `url`, `sslThumbprint`"),),
        "Upload/Download values carrying the served certificate's thumbprint",
        sequences=("export", "import"),
        na_hint="no device URL announced an sslThumbprint, so there was nothing to compare",
    ),
    Clause(
        "transfer.bad-upload", "SHOULD", "4.0",
        "A truncated or garbage disk upload: the spec is silent, so the outcome is accepted and "
        "reported (a refusal is what clients hope for).",
        (_notes("How real servers behave (reported)", "An import lease that expires or is aborted removes the files and objects it created: there is no resume after a dropped upload."),),
        "observe",
        sequences=("abort",),
    ),
    Clause(
        "transfer.direction", "SHOULD", "4.0",
        "An upload to an export lease's device URL, or a download from an import lease's: the spec "
        "is silent, so the outcome is accepted and reported.",
        (_spec("Managed Object Description", "Represents a lease on a VirtualMachine or a VirtualApp, which can be used to import or export disks for the entity."),),
        "observe",
        sequences=("export", "import"),
        needs=("export",),
    ),
    # ----------------------------------------------------------- references
    Clause(
        "ref.foreign", "SHOULD", "4.0",
        "A lease method called through a reference that names no lease of the caller's session "
        "(another session's lease, or a moid never handed out) SHOULD raise ManagedObjectNotFound and "
        "act on nothing; reading a bogus reference SHOULD raise it too, while what another session's "
        "read shows is reported, not judged.",
        (_notes("How real servers behave (reported)", "Lease references are session scoped (`session[<uuid>]<uuid>`)."),
         _spec("Faults: RuntimeFault", "Thrown if any type of runtime fault is thrown that is not covered by the other faults; for example, a communication error.")),
        "every call on a handle introduced by an Attach record (kind foreign or bogus)",
        sequences=("references",),
    ),
    # ------------------------------------------------------------------ api
    Clause(
        "api.implemented", "MUST", "4.0",
        "Every lease method, and every call that hands out a lease (ImportVApp, ExportVm, ExportVApp, "
        "ExportSnapshot), that the target's advertised API version has MUST be implemented: answering "
        "MethodNotFound (or NotImplemented) for one is a FAIL, not a clause that does not apply.",
        (_spec("Returned by", "ExportSnapshot, ExportVApp, ExportVm, ImportVApp"),
         _spec("Methods defined in this Managed Object", "HttpNfcLeaseAbort, HttpNfcLeaseComplete, HttpNfcLeaseGetManifest, HttpNfcLeaseProgress, HttpNfcLeasePullFromUrls_Task, HttpNfcLeaseSetManifestChecksumType"),
         _notes("Data model", "Calls that hand out a lease: `ResourcePool.ImportVApp` (4.0), `VirtualMachine.ExportVm` and `VirtualApp.ExportVApp` (4.0), `VirtualMachineSnapshot.ExportSnapshot` (5.5).")),
        "every call answered MethodNotFound/NotImplemented, against the API version the call appeared in",
        sequences=("export", "import"),
    ),
    # --------------------------------------------------------------- faults
    Clause(
        "faults.declared", "MUST", "4.0",
        "Every fault a lease method raises MUST be one the method declares, or a RuntimeFault, and "
        "MUST carry a message.",
        (_spec("Faults: RuntimeFault", "Thrown if any type of runtime fault is thrown that is not covered by the other faults; for example, a communication error."),
         _notes("Data model", "Methods and the faults pyVmomi declares for them")),
        "every failed lease method call, against pyVmomi's declared faults",
        sequences=("export", "import", "release"),
    ),
)

BY_ID: dict[str, Clause] = {c.id: c for c in CLAUSES}


def clause(clause_id: str) -> Clause:
    """The clause with this id, or a KeyError that lists near misses."""
    try:
        return BY_ID[clause_id]
    except KeyError:
        import difflib

        near = difflib.get_close_matches(clause_id, BY_ID, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else "; see conformance/CLAUSES.md"
        raise KeyError(f"unknown clause id {clause_id!r}{hint}") from None
