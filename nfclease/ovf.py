"""OVF descriptors for import leases: N disks of given capacities, optional files.

An import lease is acquired with ``OvfManager.CreateImportSpec`` then
``ResourcePool.ImportVApp``; both want a descriptor. The one made here is the
smallest a real vCenter accepts as well as the simulators: ``References/File``
per disk and per extra file, a ``DiskSection`` of streamOptimized disks, and
one ``VirtualSystem`` with CPU, memory, SCSI controller(s) and a disk item per
disk. A non-disk file is attached the way VMware tools export them: an
``nvram`` through ``vmw:ExtraConfig nvram = ovf:/file/...``, an ``iso`` as a
CD-ROM on an IDE controller.

Entity names are unique per run and start with ``nfclease-``, so whatever an
aborted run leaves on a shared vCenter is recognisable.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Literal, Sequence
from xml.sax.saxutils import quoteattr

PREFIX = "nfclease-"
SECTOR = 512
DISKS_PER_CONTROLLER = 15  # SCSI unit 7 is the controller itself
MAX_CONTROLLERS = 4
STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"

FileKind = Literal["nvram", "iso"]

#: a run's processes (Locust workers, children) share its id through this variable
RUN_ID_ENV = "NFCLEASE_RUN_ID"
_RUN_ID_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _run_id_of_this_process() -> tuple[str, str]:
    """``(run id, name stem)``: inherited ids get the pid in the stem, so processes never clash."""
    inherited = os.environ.get(RUN_ID_ENV, "")
    if _RUN_ID_SHAPE.fullmatch(inherited):
        return inherited, f"{inherited}-p{os.getpid()}"
    made = f"{time.strftime('%Y%m%d%H%M%S')}-{os.getpid() % 100000:05d}-{os.urandom(2).hex()}"
    return made, made


_RUN_ID, _NAME_STEM = _run_id_of_this_process()
_counter = itertools.count(1)
_counter_lock = threading.Lock()


def run_id() -> str:
    """This run's id (shared with the processes it starts via ``NFCLEASE_RUN_ID``)."""
    return _RUN_ID


def run_prefix(run: str | None = None) -> str:
    """``nfclease-<run id>-``: the start of the name of everything the run creates."""
    return f"{PREFIX}{run or _RUN_ID}-"


def unique_name(prefix: str = PREFIX) -> str:
    """``nfclease-<run>-<n>`` (``nfclease-<run>-p<pid>-<n>`` in a process that joined a run)."""
    with _counter_lock:
        n = next(_counter)
    return f"{prefix}{_NAME_STEM}-{n}"


@dataclass(frozen=True)
class OvfDiskItem:
    """One disk: its File (href) and capacity; ``index`` orders disks as the descriptor does."""

    index: int
    file_id: str
    disk_id: str
    href: str
    capacity: int
    size: int | None = None  # stream length, when known


@dataclass(frozen=True)
class OvfFileItem:
    """One non-disk file (nvram, iso) and its exact size."""

    index: int
    file_id: str
    href: str
    size: int
    kind: FileKind


@dataclass(frozen=True)
class OvfPackage:
    """A descriptor and what it promises to upload, so device URLs can be matched back."""

    name: str
    descriptor: str
    disks: tuple[OvfDiskItem, ...] = field(default_factory=tuple)
    files: tuple[OvfFileItem, ...] = field(default_factory=tuple)

    def by_href(self, href: str) -> OvfDiskItem | OvfFileItem | None:
        """The disk or file an ImportSpec fileItem (``path``) refers to."""
        for item in (*self.disks, *self.files):
            if item.href == href:
                return item
        return None


def build_import_ovf(
    disks: Sequence[int],
    files: Sequence[int] = (),
    *,
    name: str | None = None,
    disk_sizes: Sequence[int | None] | None = None,
    file_kind: FileKind = "nvram",
    memory_mb: int = 32,
) -> OvfPackage:
    """Describe a VM with ``disks`` (capacities in bytes) and ``files`` (sizes in bytes).

    ``disk_sizes`` are the streams' lengths if known (``ovf:size`` is optional
    for disks; a server must not rely on it). Capacities must be positive
    multiples of 512, as a VMDK's are. At most one nvram is meaningful, so
    further files are attached as ISO images whatever ``file_kind`` says.
    """
    if not disks and not files:
        raise ValueError("an import needs at least one disk or file")
    if len(disks) > DISKS_PER_CONTROLLER * MAX_CONTROLLERS:
        raise ValueError(f"at most {DISKS_PER_CONTROLLER * MAX_CONTROLLERS} disks fit {MAX_CONTROLLERS} SCSI controllers")
    for capacity in disks:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0 or capacity % SECTOR:
            raise ValueError(f"disk capacity must be a positive multiple of {SECTOR}, got {capacity!r}")
    for size in files:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"file size must be a non-negative int, got {size!r}")
    sizes = list(disk_sizes) if disk_sizes is not None else [None] * len(disks)
    if len(sizes) != len(disks):
        raise ValueError("disk_sizes must match disks")
    entity = name or unique_name()

    # Fixed-width ids: some parsers match a HostResource to a disk by suffix,
    # and "disk11" ends with "disk1".
    disk_items = tuple(
        OvfDiskItem(i, f"file-disk{i:03d}", f"vmdisk{i:03d}", f"{entity}-disk{i}.vmdk", capacity, sizes[i])
        for i, capacity in enumerate(disks)
    )
    file_items: list[OvfFileItem] = []
    for i, size in enumerate(files):
        kind: FileKind = file_kind if i == 0 else "iso"
        href = f"{entity}-file{i}.nvram" if kind == "nvram" else f"{entity}-file{i}.iso"
        file_items.append(OvfFileItem(i, f"file-extra{i:03d}", href, size, kind))

    return OvfPackage(entity, _render(entity, disk_items, tuple(file_items), memory_mb),
                      disk_items, tuple(file_items))


def _render(entity: str, disks: tuple[OvfDiskItem, ...], files: tuple[OvfFileItem, ...], memory_mb: int) -> str:
    out: list[str] = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"'
        ' xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"'
        ' xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"'
        ' xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"'
        ' xmlns:vmw="http://www.vmware.com/schema/ovf"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
        "  <References>",
    ]
    for d in disks:
        size = f" ovf:size={quoteattr(str(d.size))}" if d.size is not None else ""
        out.append(f"    <File ovf:id={quoteattr(d.file_id)} ovf:href={quoteattr(d.href)}{size}/>")
    for f in files:
        out.append(f"    <File ovf:id={quoteattr(f.file_id)} ovf:href={quoteattr(f.href)} ovf:size={quoteattr(str(f.size))}/>")
    out.append("  </References>")
    if disks:
        out += ["  <DiskSection>", "    <Info>Virtual disk information</Info>"]
        for d in disks:
            out.append(
                f"    <Disk ovf:diskId={quoteattr(d.disk_id)} ovf:fileRef={quoteattr(d.file_id)}"
                f" ovf:capacity={quoteattr(str(d.capacity))} ovf:capacityAllocationUnits=\"byte\""
                f" ovf:format={quoteattr(STREAM_OPTIMIZED)}/>"
            )
        out.append("  </DiskSection>")
    out += [
        f"  <VirtualSystem ovf:id={quoteattr(entity)}>",
        "    <Info>A virtual machine made by nfclease for a lease test</Info>",
        f"    <Name>{_text(entity)}</Name>",
        '    <OperatingSystemSection ovf:id="1" vmw:osType="otherGuest">',
        "      <Info>The kind of installed guest operating system</Info>",
        "    </OperatingSystemSection>",
        "    <VirtualHardwareSection>",
        "      <Info>Virtual hardware requirements</Info>",
        "      <System>",
        "        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>",
        "        <vssd:InstanceID>0</vssd:InstanceID>",
        f"        <vssd:VirtualSystemIdentifier>{_text(entity)}</vssd:VirtualSystemIdentifier>",
        "        <vssd:VirtualSystemType>vmx-10</vssd:VirtualSystemType>",
        "      </System>",
    ]
    out += _hardware(disks, files, memory_mb)
    out += ["    </VirtualHardwareSection>", "  </VirtualSystem>", "</Envelope>", ""]
    return "\n".join(out)


def _hardware(disks: tuple[OvfDiskItem, ...], files: tuple[OvfFileItem, ...], memory_mb: int) -> list[str]:
    """The VirtualHardwareSection's items: CPU, memory, SCSI controllers and disks, IDE and CD drives, NVRAM."""
    out: list[str] = []
    instance = itertools.count(1)
    out += _item(next(instance), "1 virtual CPU(s)", 3, quantity=1, units="hertz * 10^6")
    out += _item(next(instance), f"{memory_mb}MB of memory", 4, quantity=memory_mb, units="byte * 2^20")
    controllers: list[int] = []
    for c in range(-(-len(disks) // DISKS_PER_CONTROLLER)):
        cid = next(instance)
        controllers.append(cid)
        out += _item(cid, f"SCSI controller {c}", 6, subtype="lsilogic", address=c)
    for d in disks:
        unit = d.index % DISKS_PER_CONTROLLER
        unit += unit >= 7  # skip the controller's own unit 7
        out += _item(next(instance), f"Hard disk {d.index + 1}", 17,
                     parent=controllers[d.index // DISKS_PER_CONTROLLER], address_on_parent=unit,
                     host_resource=f"ovf:/disk/{d.disk_id}")
    isos = [f for f in files if f.kind == "iso"]
    if isos:
        ide = [next(instance) for _ in range(-(-len(isos) // 2))]
        for n, cid in enumerate(ide):
            out += _item(cid, f"IDE controller {n}", 5, address=n)
        for n, f in enumerate(isos):
            out += _item(next(instance), f"CD/DVD drive {n + 1}", 15, parent=ide[n // 2],
                         address_on_parent=n % 2, host_resource=f"ovf:/file/{f.file_id}")
    for f in files:
        if f.kind == "nvram":
            out.append(f'      <vmw:ExtraConfig ovf:required="false" vmw:key="nvram" vmw:value="ovf:/file/{f.file_id}"/>')
    return out


def _item(instance: int, name: str, resource_type: int, *, subtype: str | None = None,
          quantity: int | None = None, units: str | None = None, parent: int | None = None,
          address: int | None = None, address_on_parent: int | None = None,
          host_resource: str | None = None) -> list[str]:
    """One ``Item`` with its rasd elements in the schema's (alphabetical) order."""
    lines = ["      <Item>"]
    if address is not None:
        lines.append(f"        <rasd:Address>{address}</rasd:Address>")
    if address_on_parent is not None:
        lines.append(f"        <rasd:AddressOnParent>{address_on_parent}</rasd:AddressOnParent>")
    if units is not None:
        lines.append(f"        <rasd:AllocationUnits>{_text(units)}</rasd:AllocationUnits>")
    lines.append(f"        <rasd:Description>{_text(name)}</rasd:Description>")
    lines.append(f"        <rasd:ElementName>{_text(name)}</rasd:ElementName>")
    if host_resource is not None:
        lines.append(f"        <rasd:HostResource>{_text(host_resource)}</rasd:HostResource>")
    lines.append(f"        <rasd:InstanceID>{instance}</rasd:InstanceID>")
    if parent is not None:
        lines.append(f"        <rasd:Parent>{parent}</rasd:Parent>")
    if subtype is not None:
        lines.append(f"        <rasd:ResourceSubType>{_text(subtype)}</rasd:ResourceSubType>")
    lines.append(f"        <rasd:ResourceType>{resource_type}</rasd:ResourceType>")
    if quantity is not None:
        lines.append(f"        <rasd:VirtualQuantity>{quantity}</rasd:VirtualQuantity>")
    lines.append("      </Item>")
    return lines


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
