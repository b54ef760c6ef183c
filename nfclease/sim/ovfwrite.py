"""``OvfManager.CreateDescriptor``: the OVF descriptor of a simulated VM or vApp, for export.

The client downloads the disks through an export lease and then asks for the
descriptor, passing the files it saved (``cdp.ovfFiles``: the lease device
key each came from, the path and size it was saved under). The descriptor
describes the entity as it is: its CPUs, memory, guest OS, SCSI controller,
one Disk per virtual disk (with the saved file as its ``fileRef``), and one
NIC per network adapter on a network of the NetworkSection; a vApp is a
VirtualSystemCollection of its VMs. Importing it again gives the same VM.
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape, quoteattr

from pyVmomi import vim

STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
NIC_SUBTYPE = {"VirtualVmxnet3": "VmxNet3", "VirtualE1000": "E1000", "VirtualE1000e": "E1000e",
               "VirtualVmxnet2": "VmxNet2", "VirtualPCNet32": "PCNet32"}
_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
         '<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"'
         ' xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"'
         ' xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"'
         ' xmlns:vmw="http://www.vmware.com/schema/ovf"'
         ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n')


def _item(instance: int, name: str, resource_type: int, body: str = "") -> str:
    return (f"      <Item>\n        <rasd:ElementName>{escape(name)}</rasd:ElementName>\n"
            f"        <rasd:InstanceID>{instance}</rasd:InstanceID>\n"
            f"        <rasd:ResourceType>{resource_type}</rasd:ResourceType>\n{body}      </Item>\n")


class _Writer:
    """Accumulates the References, DiskSection and networks while the systems are written."""

    def __init__(self, ovf_files: list[Any]) -> None:
        self.by_device = {f.deviceId: f for f in ovf_files or []}
        self.files: list[str] = []
        self.disks: list[str] = []
        self.networks: dict[str, None] = {}

    def system(self, vm: Any, indent: str = "") -> str:
        from nfclease.sim import vm_properties
        items = [
            _item(1, f"{vm.num_cpu} virtual CPU(s)", 3, "        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>\n"
                  f"        <rasd:VirtualQuantity>{vm.num_cpu}</rasd:VirtualQuantity>\n"),
            _item(2, f"{vm.memory_mb}MB of memory", 4, "        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>\n"
                  f"        <rasd:VirtualQuantity>{vm.memory_mb}</rasd:VirtualQuantity>\n"),
            _item(3, "SCSI controller 0", 6, "        <rasd:Address>0</rasd:Address>\n"
                  "        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>\n"),
        ]
        instance = 4
        for index, disk in enumerate(vm.disks):
            disk_id = f"vmdisk{len(self.disks) + 1}"
            saved = self.by_device.get(vm.device_key(index))
            file_ref = ""
            if saved is not None:
                file_id = f"file{len(self.files) + 1}"
                self.files.append(f'    <File ovf:href={quoteattr(saved.path)} ovf:id="{file_id}"'
                                  + (f' ovf:size="{saved.size}"' if saved.size is not None else "") + "/>\n")
                file_ref = f' ovf:fileRef="{file_id}"'
            self.disks.append(f'    <Disk ovf:capacity="{disk.capacity}" ovf:capacityAllocationUnits="byte"'
                              f' ovf:diskId="{disk_id}"{file_ref} ovf:format="{STREAM_OPTIMIZED}"/>\n')
            items.append(_item(instance, disk.label, 17,
                               f"        <rasd:AddressOnParent>{vm_properties.disk_unit(index)}</rasd:AddressOnParent>\n"
                               f"        <rasd:HostResource>ovf:/disk/{disk_id}</rasd:HostResource>\n"
                               "        <rasd:Parent>3</rasd:Parent>\n"))
            instance += 1
        for index, network in enumerate(vm.nics):
            self.networks[network] = None
            items.append(_item(instance, f"Network adapter {index + 1}", 10,
                               f"        <rasd:AddressOnParent>{7 + index}</rasd:AddressOnParent>\n"
                               "        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n"
                               f"        <rasd:Connection>{escape(network)}</rasd:Connection>\n"
                               f"        <rasd:ResourceSubType>{NIC_SUBTYPE.get(vm.nic_kind, 'VmxNet3')}"
                               "</rasd:ResourceSubType>\n"))
            instance += 1
        annotation = (f"    <AnnotationSection>\n      <Info>A human-readable annotation</Info>\n"
                      f"      <Annotation>{escape(vm.annotation)}</Annotation>\n    </AnnotationSection>\n"
                      if vm.annotation else "")
        text = (
            f"  <VirtualSystem ovf:id={quoteattr(vm.name)}>\n    <Info>A virtual machine</Info>\n"
            f"    <Name>{escape(vm.name)}</Name>\n{annotation}"
            f'    <OperatingSystemSection ovf:id="1" vmw:osType={quoteattr(vm.guest_id)}>\n'
            "      <Info>The kind of installed guest operating system</Info>\n    </OperatingSystemSection>\n"
            "    <VirtualHardwareSection>\n      <Info>Virtual hardware requirements</Info>\n      <System>\n"
            "        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n"
            "        <vssd:InstanceID>0</vssd:InstanceID>\n"
            f"        <vssd:VirtualSystemIdentifier>{escape(vm.name)}</vssd:VirtualSystemIdentifier>\n"
            "        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>\n      </System>\n"
            + "".join(items) + "    </VirtualHardwareSection>\n  </VirtualSystem>\n")
        return "".join(indent + line for line in text.splitlines(True))

    def envelope(self, content: str) -> str:
        networks = "".join(f"    <Network ovf:name={quoteattr(n)}>\n      <Description>The {escape(n)} network"
                           "</Description>\n    </Network>\n" for n in self.networks)
        network_section = (f"  <NetworkSection>\n    <Info>The list of logical networks</Info>\n{networks}"
                           "  </NetworkSection>\n" if networks else "")
        return (_HEAD + f"  <References>\n{''.join(self.files)}  </References>\n"
                f"  <DiskSection>\n    <Info>Virtual disk information</Info>\n{''.join(self.disks)}  </DiskSection>\n"
                + network_section + content + "</Envelope>\n")


def create_descriptor(entity: Any, cdp: Any) -> Any:
    """The OvfCreateDescriptorResult for a VirtualMachine or VirtualApp (``entity``: the simulator's object)."""
    writer = _Writer(getattr(cdp, "ovfFiles", None) or [])
    if entity.type_name == "VirtualApp":
        name = (cdp.name if cdp is not None and cdp.name else None) or entity.name
        systems = "".join(writer.system(vm, "  ") for vm in entity.vms)
        content = (f"  <VirtualSystemCollection ovf:id={quoteattr(name)}>\n    <Info>A vApp</Info>\n"
                   f"    <Name>{escape(name)}</Name>\n{systems}  </VirtualSystemCollection>\n")
    else:
        content = writer.system(entity)
    return vim.OvfManager.CreateDescriptorResult(ovfDescriptor=writer.envelope(content), includeImageFiles=False)
