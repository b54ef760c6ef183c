"""The HttpNfcLease methods: progress, complete, abort, manifest, checksum types, pull from URLs.

Each is a thin call into :class:`~nfclease.sim.leases.Lease`, where the
lease's rules live; pulling is :class:`~nfclease.sim.pull.PullClient`.
"""

from __future__ import annotations

from typing import Any

from pyVmomi import vim, vmodl

from nfclease.sim.leases import Lease
from nfclease.sim.pull import PullClient
from nfclease.sim.soap import SoapError
from nfclease.sim.world import Session, Task, World


class LeaseMethods:
    """The vim25 methods of HttpNfcLease."""

    def __init__(self, world: World, pull: PullClient) -> None:
        self.world = world
        self.pull = pull

    def HttpNfcLeaseProgress(self, session: Session, this: Lease, percent: int) -> None:
        this.progress(percent)

    def HttpNfcLeaseComplete(self, session: Session, this: Lease) -> None:
        this.complete()

    def HttpNfcLeaseAbort(self, session: Session, this: Lease, fault: Any = None) -> None:
        this.abort(fault)

    def HttpNfcLeaseGetManifest(self, session: Session, this: Lease) -> Any:
        return this.manifest()

    def HttpNfcLeaseSetManifestChecksumType(self, session: Session, this: Lease,
                                            deviceUrlsToChecksumTypes: Any = None) -> None:
        this.set_checksum_types(deviceUrlsToChecksumTypes or [])

    def HttpNfcLeasePullFromUrls_Task(self, session: Session, this: Lease, files: Any = None) -> Any:
        lease: Lease = this
        lease.check_live("HttpNfcLeasePullFromUrls_Task", expired_fault=False)
        if lease.state != "ready":
            raise SoapError(vim.fault.InvalidState(), "HttpNfcLeasePullFromUrls_Task: the lease is not ready")
        if lease.kind != "import":
            raise SoapError(vim.fault.InvalidState(),
                            "HttpNfcLeasePullFromUrls_Task: pull mode is for import leases "
                            "(capabilities.pullModeSupported is false)")
        files = files or []
        if len(files) != len(lease.devices):
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="files"),
                            f"{len(files)} source files for {len(lease.devices)} device URLs: "
                            "give one per device URL")
        by_import_key = {d.import_key: d for d in lease.devices}
        unknown = [f.targetDeviceId for f in files if f.targetDeviceId not in by_import_key]
        if unknown:
            raise SoapError(vmodl.fault.InvalidArgument(invalidProperty="files.targetDeviceId"),
                            f"no device URL has importKey {unknown[0]!r}")
        if not lease.deviation("pull_mode_unchanged"):  # DELIBERATE DEVIATION when set: mode stays
            lease.mode = "pull"
        task = Task(self.world, "HttpNfcLease.pullFromUrls", lease.entity, "PullFromUrls")
        self.pull.start(lease, task, [(f, by_import_key[f.targetDeviceId]) for f in files])
        self.world.touch()
        return task.ref
