"""What ``OvfManager.CreateImportSpec`` needs from an OVF descriptor.

A real server parses the descriptor and answers a broken one not with a SOAP
fault but with a result whose ``error`` list holds the problems (an
``OvfXmlFormat`` for XML it cannot parse, ``OvfMissingElement`` for a missing
section, ...). Clients are expected to check ``result.error`` before
``ImportVApp``; this parser gives them the same shape.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from pyVmomi import vim

OVF_NS = "http://schemas.dmtf.org/ovf/envelope/1"
_UNITS = {"byte": 1, "byte * 2^10": 1 << 10, "byte * 2^20": 1 << 20, "byte * 2^30": 1 << 30,
          "byte * 2^40": 1 << 40, "kilobytes": 1 << 10, "megabytes": 1 << 20, "gigabytes": 1 << 30}


@dataclass
class OvfFile:
    id: str
    href: str
    size: int | None


@dataclass
class OvfDisk:
    disk_id: str
    file: OvfFile | None
    capacity: int  # bytes


@dataclass
class OvfNic:
    network: str   # the OVF network (rasd:Connection) it is on
    kind: str      # rasd:ResourceSubType: VmxNet3, E1000, ...


@dataclass
class OvfSystem:
    name: str
    disks: list[OvfDisk] = field(default_factory=list)
    files: list[OvfFile] = field(default_factory=list)  # non-disk files (nvram, iso...)
    cpus: int | None = None
    memory_mb: int | None = None
    guest_id: str | None = None  # vmw:osType of the OperatingSystemSection
    annotation: str = ""
    nics: list[OvfNic] = field(default_factory=list)


@dataclass
class OvfPackage:
    name: str
    systems: list[OvfSystem]
    is_vapp: bool
    errors: list[vim.fault.OvfFault] = field(default_factory=list)
    warnings: list[vim.fault.OvfFault] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)  # the NetworkSection's names


def _q(tag: str) -> str:
    return f"{{{OVF_NS}}}{tag}"


def _attr(element: ET.Element, name: str) -> str | None:
    return element.get(_q(name), element.get(name))


def _capacity(disk: ET.Element) -> int:
    raw = _attr(disk, "capacity") or "0"
    units = (_attr(disk, "capacityAllocationUnits") or "byte").strip().lower()
    try:
        return int(raw) * _UNITS.get(units, 1)
    except ValueError:
        raise ValueError(f"Disk {_attr(disk, 'diskId')}: capacity {raw!r} is not an integer") from None


_RASD_CPU, _RASD_MEMORY, _RASD_ETHERNET = "3", "4", "10"
_VMW_NS = "http://www.vmware.com/schema/ovf"
_MEMORY_UNITS = {"byte * 2^20": 1, "megabytes": 1, "mb": 1, "byte * 2^30": 1024, "gigabytes": 1024,
                 "gb": 1024, "byte * 2^10": 1 / 1024, "kilobytes": 1 / 1024}


def _child_text(element: ET.Element, name: str) -> str | None:
    """Text of the first child whose local name is ``name`` (rasd:/vssd: prefixes vary)."""
    for child in element:
        if child.tag.rsplit("}", 1)[-1] == name:
            return (child.text or "").strip()
    return None


def _quantity(item: ET.Element) -> int | None:
    raw = _child_text(item, "VirtualQuantity")
    return int(raw) if raw and raw.isdigit() else None


def _hardware(element: ET.Element, system: OvfSystem) -> None:
    """CPUs, memory (MB), NICs and guest OS of a VirtualSystem, from its VirtualHardwareSection items."""
    for os_section in element.iter(_q("OperatingSystemSection")):
        system.guest_id = os_section.get(f"{{{_VMW_NS}}}osType") or system.guest_id
    annotation = element.find(f"{_q('AnnotationSection')}/{_q('Annotation')}")
    if annotation is not None and annotation.text:
        system.annotation = annotation.text.strip()
    for item in element.iter():
        if item.tag.rsplit("}", 1)[-1] not in ("Item", "EthernetPortItem"):
            continue
        kind = _child_text(item, "ResourceType")
        if kind == _RASD_CPU:
            system.cpus = _quantity(item) or system.cpus
        elif kind == _RASD_MEMORY and _quantity(item):
            units = (_child_text(item, "AllocationUnits") or "byte * 2^20").lower()
            system.memory_mb = max(1, int(_quantity(item) * _MEMORY_UNITS.get(units, 1)))  # type: ignore[operator]
        elif kind == _RASD_ETHERNET:
            system.nics.append(OvfNic(_child_text(item, "Connection") or "",
                                      _child_text(item, "ResourceSubType") or "E1000"))


def _files_and_disks(root: ET.Element, errors: list) -> tuple[dict[str, OvfFile], dict[str, OvfDisk]]:
    """References/File by id and DiskSection/Disk by diskId; bad disks land in ``errors``."""
    files: dict[str, OvfFile] = {}
    for ref in root.iter(_q("File")):
        file_id, href = _attr(ref, "id"), _attr(ref, "href")
        if file_id and href:
            size = _attr(ref, "size")
            files[file_id] = OvfFile(file_id, href, int(size) if size and size.isdigit() else None)
    disks: dict[str, OvfDisk] = {}
    for disk in root.iter(_q("Disk")):
        disk_id = _attr(disk, "diskId") or ""
        file_ref = _attr(disk, "fileRef")
        try:
            capacity = _capacity(disk)
        except ValueError as exc:
            errors.append(vim.fault.OvfInvalidValue(value=_attr(disk, "capacity"), msg=str(exc)))
            continue
        if file_ref and file_ref not in files:
            errors.append(vim.fault.OvfMissingElement(
                name="File", msg=f"Disk {disk_id} refers to file {file_ref!r}, which References does not list"))
        disks[disk_id] = OvfDisk(disk_id, files.get(file_ref) if file_ref else None, capacity)
    return files, disks


def _systems(root: ET.Element, files: dict[str, OvfFile], disks: dict[str, OvfDisk], errors: list) -> list[OvfSystem]:
    """The VirtualSystems with their disks and files (unplaced ones go to the first VM)."""
    systems: list[OvfSystem] = []
    system_elements = list(root.iter(_q("VirtualSystem")))
    if not system_elements:
        errors.append(vim.fault.OvfMissingElement(name="VirtualSystem",
                                                  msg="the descriptor has no VirtualSystem"))
    used_files = {d.file.id for d in disks.values() if d.file}
    for index, element in enumerate(system_elements):
        name_el = element.find(_q("Name"))
        name = (name_el.text if name_el is not None and name_el.text else _attr(element, "id")) or f"vm{index}"
        system = OvfSystem(name.strip())
        _hardware(element, system)
        for rasd in element.iter():
            if not rasd.tag.endswith("HostResource") or not rasd.text:
                continue
            target = rasd.text.strip()
            if target.startswith("ovf:/disk/") and target[10:] in disks:
                system.disks.append(disks[target[10:]])
            elif target.startswith("ovf:/file/") and target[10:] in files:
                system.files.append(files[target[10:]])
                used_files.add(target[10:])
        systems.append(system)
    if systems and not any(s.disks for s in systems) and disks:
        systems[0].disks.extend(disks.values())  # disks not placed by any item: attach to the first VM
    if systems:
        for file_id, ovf_file in files.items():
            if file_id not in used_files:
                systems[0].files.append(ovf_file)
    return systems


def parse(descriptor: str, entity_name: str | None = None) -> OvfPackage:
    """Parse ``descriptor``; problems land in ``errors`` like a real server reports them."""
    try:
        root = ET.fromstring(descriptor)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else 0
        fault = vim.fault.OvfXmlFormat(lineNumber=line, description=str(exc),
                                       msg=f"Line {line}: unable to parse the XML: {exc}")
        return OvfPackage(entity_name or "", [], False, errors=[fault])
    if root.tag != _q("Envelope"):
        return OvfPackage(entity_name or "", [], False, errors=[vim.fault.OvfMissingElement(
            lineNumber=1, name="Envelope", msg="the root element is not an OVF Envelope")])
    errors: list = []
    files, disks = _files_and_disks(root, errors)
    collection = root.find(_q("VirtualSystemCollection"))
    systems = _systems(root, files, disks, errors)
    if collection is not None:
        name_el = collection.find(_q("Name"))
        package_name = (name_el.text if name_el is not None and name_el.text else _attr(collection, "id")) or "vApp"
    else:
        package_name = systems[0].name if systems else ""
    if entity_name:
        package_name = entity_name
        if collection is None and systems:
            systems[0].name = entity_name
    networks = [n for n in (_attr(net, "name") for net in root.iter(_q("Network"))) if n]
    return OvfPackage(package_name.strip(), systems, collection is not None, errors=errors, networks=networks)
