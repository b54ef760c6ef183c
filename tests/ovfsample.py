"""An OVF package like the ones vSphere exports, written to disk for real clients to import.

One VM with CPUs, memory, an LSI Logic SCSI controller, streamOptimized disks
of known content, and a VMXNET3 NIC on a named network; as a directory
(``NAME.ovf`` + ``NAME-diskN.vmdk``) and as an OVA (the same files in a tar,
the descriptor first).
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from nfclease.vmdk import ContentPattern, StreamOptimizedDisk


@dataclass
class Sample:
    name: str
    ovf: Path
    disks: list[Path]     # the VMDK files, in descriptor order
    capacities: list[int]
    network: str
    cpus: int
    memory_mb: int
    guest_id: str


RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"


def _item(instance: int, name: str, resource_type: int, extra: str = "") -> str:
    return (f"      <Item>\n        <rasd:ElementName>{escape(name)}</rasd:ElementName>\n"
            f"        <rasd:InstanceID>{instance}</rasd:InstanceID>\n"
            f"        <rasd:ResourceType>{resource_type}</rasd:ResourceType>\n{extra}      </Item>\n")


def descriptor(name: str, disks: list[tuple[str, int, int]], network: str, cpus: int, memory_mb: int,
               guest_id: str) -> str:
    """The OVF of one VM; ``disks`` are (href, stream size, capacity)."""
    files = "".join(f'    <File ovf:href={quoteattr(href)} ovf:id="file{i + 1}" ovf:size="{size}"/>\n'
                    for i, (href, size, _) in enumerate(disks))
    disk_section = "".join(
        f'    <Disk ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk{i + 1}" '
        f'ovf:fileRef="file{i + 1}" ovf:format='
        '"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>\n'
        for i, (_, _, capacity) in enumerate(disks))
    items = [
        _item(1, f"{cpus} virtual CPU(s)", 3, f"        <rasd:VirtualQuantity>{cpus}</rasd:VirtualQuantity>\n"
              "        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>\n"),
        _item(2, f"{memory_mb}MB of memory", 4, f"        <rasd:VirtualQuantity>{memory_mb}</rasd:VirtualQuantity>\n"
              "        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>\n"),
        _item(3, "SCSI controller 0", 6, "        <rasd:Address>0</rasd:Address>\n"
              "        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>\n"),
    ]
    for i in range(len(disks)):
        items.append(_item(4 + i, f"Hard disk {i + 1}", 17,
                           f"        <rasd:AddressOnParent>{i}</rasd:AddressOnParent>\n"
                           f"        <rasd:HostResource>ovf:/disk/vmdisk{i + 1}</rasd:HostResource>\n"
                           "        <rasd:Parent>3</rasd:Parent>\n"))
    items.append(_item(4 + len(disks), "Network adapter 1", 10,
                       "        <rasd:AddressOnParent>7</rasd:AddressOnParent>\n"
                       "        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n"
                       f"        <rasd:Connection>{escape(network)}</rasd:Connection>\n"
                       "        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType>\n"))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"'
        f' xmlns:rasd="{RASD}"'
        ' xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"'
        ' xmlns:vmw="http://www.vmware.com/schema/ovf">\n'
        f"  <References>\n{files}  </References>\n"
        f"  <DiskSection>\n    <Info>Virtual disk information</Info>\n{disk_section}  </DiskSection>\n"
        "  <NetworkSection>\n    <Info>The list of logical networks</Info>\n"
        f"    <Network ovf:name={quoteattr(network)}>\n      <Description>The {escape(network)} network"
        "</Description>\n    </Network>\n  </NetworkSection>\n"
        f"  <VirtualSystem ovf:id={quoteattr(name)}>\n    <Info>A virtual machine</Info>\n"
        f"    <Name>{escape(name)}</Name>\n"
        f'    <OperatingSystemSection ovf:id="102" vmw:osType="{guest_id}">\n'
        "      <Info>The kind of installed guest operating system</Info>\n    </OperatingSystemSection>\n"
        "    <VirtualHardwareSection>\n      <Info>Virtual hardware requirements</Info>\n"
        "      <System>\n        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n"
        "        <vssd:InstanceID>0</vssd:InstanceID>\n"
        f"        <vssd:VirtualSystemIdentifier>{escape(name)}</vssd:VirtualSystemIdentifier>\n"
        "        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>\n      </System>\n"
        + "".join(items) +
        "    </VirtualHardwareSection>\n  </VirtualSystem>\n</Envelope>\n")


def write_sample(directory: Path, name: str, capacities: list[int], network: str = "VM Network",
                 cpus: int = 2, memory_mb: int = 64, guest_id: str = "otherGuest64") -> Sample:
    """``directory/NAME.ovf`` and its disks (random content seeded by the name)."""
    directory.mkdir(parents=True, exist_ok=True)
    disks, entries = [], []
    for index, capacity in enumerate(capacities):
        path = directory / f"{name}-disk{index + 1}.vmdk"
        stream = StreamOptimizedDisk(capacity, ContentPattern("random", seed=f"{name}/{index}"))
        with path.open("wb") as out:
            for chunk in stream.iter_chunks():
                out.write(chunk)
        disks.append(path)
        entries.append((path.name, path.stat().st_size, capacity))
    ovf = directory / f"{name}.ovf"
    ovf.write_text(descriptor(name, entries, network, cpus, memory_mb, guest_id), encoding="utf-8")
    return Sample(name, ovf, disks, list(capacities), network, cpus, memory_mb, guest_id)


def write_ova(sample: Sample, path: Path) -> Path:
    """The sample as an OVA: a tar holding the descriptor first, then the disks."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for member in (sample.ovf, *sample.disks):
            tar.add(member, arcname=member.name)
    return path
