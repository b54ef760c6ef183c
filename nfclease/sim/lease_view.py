"""What an HttpNfcLease shows of itself: its properties and its ``info``.

Kept apart from the lease's rules (``leases.py``) because this is where most
deliberate deviations that distort what a client *reads* act (a missing
``info``, a wrong ``error``, a frozen ``transferProgress``, an understated
``leaseTimeout``, a wrong thumbprint): each is marked ``DELIBERATE DEVIATION``
and off by default (``nfclease/sim/deviations.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from pyVmomi import vim, vmodl

if TYPE_CHECKING:
    from nfclease.sim.leases import Lease


def lease_properties(lease: "Lease") -> dict[str, Callable[[], Any]]:
    """The property getters of the managed object (the lease has applied its transitions)."""
    return {
        "state": lambda: lease.state,
        "initializeProgress": lambda: lease.initialize_progress,
        "info": lambda: lease.info if lease.state == "ready" and _info_shown(lease) else None,
        "error": lambda: _error_shown(lease),
        "transferProgress": lambda: _transfer_progress_shown(lease),
        "mode": lambda: lease.mode,
        "capabilities": lambda: vim.HttpNfcLease.Capabilities(  # DELIBERATE DEVIATION when lying
            pullModeSupported=(lease.kind == "import") != lease.deviation("pull_capabilities_lie"),
            corsSupported=False),
    }


def _info_shown(lease: "Lease") -> bool:
    return lease.progressed or not lease.deviation("ready_without_info")  # DELIBERATE DEVIATION


def _error_shown(lease: "Lease") -> vmodl.MethodFault | None:
    if lease.deviation("error_property_missing"):
        return None  # DELIBERATE DEVIATION: never set, even in error
    if lease.deviation("error_property_while_ready"):
        return lease.error  # DELIBERATE DEVIATION: whatever was stored, in any state
    return lease.error if lease.state == "error" else None


def _transfer_progress_shown(lease: "Lease") -> int:
    if lease.deviation("transfer_progress_frozen"):
        return 0  # DELIBERATE DEVIATION: Progress never shows
    if lease.deviation("transfer_progress_per_mille"):
        return lease.transfer_progress * 10  # DELIBERATE DEVIATION: 0-1000
    return lease.transfer_progress


def _announced_thumbprint(lease: "Lease") -> str:
    if lease.deviation("thumbprint_wrong"):  # DELIBERATE DEVIATION: the bytes in reverse order
        return ":".join(reversed(lease.manager.thumbprint.split(":")))
    return lease.manager.thumbprint


def _advertised_timeout(lease: "Lease") -> int:
    """info.leaseTimeout: whole seconds, at least 1 (DELIBERATE DEVIATION lease_timeout_understated: half)."""
    timeout = lease.timeout / 2 if lease.deviation("lease_timeout_understated") else lease.timeout
    return max(1, int(timeout))


def _file_size(lease: "Lease", device: Any) -> int | None:
    """Non-disk files only (DELIBERATE DEVIATION disk_file_size: disks carry their capacity too)."""
    if device.disk:
        return device.capacity_kb * 1024 if lease.deviation("disk_file_size") else None
    return device.file_size


def build_info(lease: "Lease") -> vim.HttpNfcLease.Info:
    """``info`` of a lease that just became ready: device URLs, entity, leaseTimeout, host map."""
    manager = lease.manager
    urls = [vim.HttpNfcLease.DeviceUrl(
        key=d.key, importKey="" if lease.deviation("import_key_missing") else d.import_key,
        url=lease.device_url(d),
        sslThumbprint=_announced_thumbprint(lease), disk=d.disk, targetId=d.target_id,
        datastoreKey=manager.datastore_key, fileSize=_file_size(lease, d))
        for d in lease.devices]
    host = vim.HttpNfcLease.HostInfo(url=f"https://{manager.url_host}", sslThumbprint=manager.thumbprint)
    return vim.HttpNfcLease.Info(
        lease=lease.ref, entity=lease.entity.ref, deviceUrl=urls,
        totalDiskCapacityInKB=sum(d.capacity_kb for d in lease.devices if d.disk),
        leaseTimeout=_advertised_timeout(lease),
        hostMap=[vim.HttpNfcLease.DatastoreLeaseInfo(datastoreKey=manager.datastore_key, hosts=[host])])
