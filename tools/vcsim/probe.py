#!/usr/bin/env python3
"""Probe govmomi vcsim's HttpNfcLease behaviour with unmodified pyvmomi.

    python tools/vcsim/probe.py [--json] [--wait SECONDS]

Starts build/vcsim (or $NFCLEASE_VCSIM) through nfclease.vcsim, runs every
check below against it over real TLS (verified against the certificate vcsim
wrote) and prints one row per check: section, check, what was observed.
``tools/vcsim/NOTES.md`` is written from this output. Exit status 0 when every
check ran (whatever vcsim answered), 2 when vcsim is missing.

Calls go straight to pyvmomi on purpose: this is a tool that describes the
peer, not part of the suite (which goes through nfclease.session).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pyVim.connect import Disconnect, SmartConnect  # noqa: E402
from pyVmomi import SoapStubAdapter, VmomiSupport, vim, vmodl  # noqa: E402

from nfclease.vcsim import VcsimProcess, find_vcsim  # noqa: E402

# A 6.7+ stub for the 6.7 members (transferProgress, mode, capabilities,
# SetManifestChecksumType, PullFromUrls) and 7.0.2 ProbeUrls, which pyvmomi
# does not send on the 6.5 stub that SmartConnect negotiates with vcsim.
NEWER = "vim.version.v7_0_3_0"

OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:href="disk-0.vmdk" ovf:id="file1" ovf:size="1024"/>
    <File ovf:href="cd.iso" ovf:id="file2" ovf:size="2048"/>
  </References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="vmdisk1" ovf:fileRef="file1"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="probe">
    <Info>probe</Info><Name>probe</Name>
    <OperatingSystemSection ovf:id="1"><Info>os</Info></OperatingSystemSection>
    <VirtualHardwareSection><Info>hw</Info>
      <System><vssd:ElementName>hw</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType></System>
      <Item><rasd:ElementName>cpu</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:ElementName>mem</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>32</rasd:VirtualQuantity></Item>
      <Item><rasd:ElementName>scsi</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>disk0</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:ElementName>ide</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item><rasd:ElementName>cd</rasd:ElementName><rasd:HostResource>ovf:/file/file2</rasd:HostResource>
        <rasd:InstanceID>6</rasd:InstanceID><rasd:Parent>5</rasd:Parent><rasd:ResourceType>15</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""

LEASE_PROPS = ["state", "initializeProgress", "info", "error", "transferProgress", "mode", "capabilities"]


class Probe:
    def __init__(self, vc: VcsimProcess, wait: float) -> None:
        self.vc = vc
        self.wait = wait
        self.rows: list[tuple[str, str, str]] = []
        self.ctx = vc.ssl_context()
        self.si = SmartConnect(
            host=vc.host, port=vc.port, user=vc.username, pwd=vc.password, sslContext=self.ctx
        )
        # The same session (leases are session-scoped) on a stub speaking a
        # newer version: vcsim serves one object model whatever version a
        # request names.
        stub7 = SoapStubAdapter(host=vc.host, port=vc.port, version=NEWER, sslContext=self.ctx)
        stub7.cookie = self.si._stub.cookie
        self.si7 = vim.ServiceInstance("ServiceInstance", stub7)
        self.content = self.si.RetrieveContent()
        self.dc = self.content.rootFolder.childEntity[0]
        cluster = next(e for e in self.dc.hostFolder.childEntity if isinstance(e, vim.ClusterComputeResource))
        self.pool = cluster.resourcePool
        self.ds = self.dc.datastore[0]
        self.n = 0
        self._panics = 0

    # -- helpers ---------------------------------------------------------------

    def row(self, section: str, check: str, observed: Any) -> None:
        text = str(observed)
        panics = self.vc.stderr_text().count("http: panic serving")
        if panics > self._panics:  # the server crashed a handler while this row ran
            text += f" [vcsim logged {panics - self._panics} Go panic(s)]"
            self._panics = panics
        self.rows.append((section, check, text))

    @staticmethod
    def outcome(fn: Callable[[], Any]) -> str:
        """'ok', 'ok: <value>', '<fault type name>' or 'net.<Exception>'."""
        try:
            value = fn()
        except vmodl.MethodFault as exc:
            return type(exc).__name__ + _fault_detail(exc)
        except (OSError, http.client.HTTPException) as exc:
            return f"net.{type(exc).__name__}"
        return "ok" if value is None else f"ok: {_short(value)}"

    def on7(self, mo: Any) -> Any:
        """The same managed object on the newer stub."""
        return type(mo)(mo._moId, self.si7._stub)

    def read(self, lease: Any) -> dict[str, Any] | str:
        """Lease properties through PropertyCollector.RetrievePropertiesEx (6.7+ stub)."""
        pc = self.si7.content.propertyCollector
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=self.on7(lease))],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.HttpNfcLease, pathSet=LEASE_PROPS)],
        )
        try:
            res = pc.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
        except vmodl.MethodFault as exc:
            return type(exc).__name__
        if res is None or not res.objects:
            return "no object returned"
        obj = res.objects[0]
        out: dict[str, Any] = {p.name: p.val for p in obj.propSet}
        for missing in obj.missingSet or []:
            out[missing.path] = f"missing ({type(missing.fault).__name__})"
        return out

    def wait_task(self, task: Any, limit: float = 15.0) -> str:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            info = task.info
            if info.state in ("success", "error"):
                return info.state if info.error is None else f"error {type(info.error).__name__}"
            time.sleep(0.05)
        return f"still {task.info.state} after {limit:g} s"

    def import_lease(self, name: str | None = None) -> tuple[Any, Any]:
        """ImportVApp of OVF (one disk, one ISO) -> (lease, created VM)."""
        self.n += 1
        name = name or f"probe{self.n}"
        params = vim.OvfManager.CreateImportSpecParams(entityName=name)
        spec = self.content.ovfManager.CreateImportSpec(OVF, self.pool, self.ds, params)
        lease = self.pool.ImportVApp(spec.importSpec, self.dc.vmFolder)
        vm = self.content.searchIndex.FindChild(self.dc.vmFolder, name)
        return lease, vm

    def device_url(self, lease: Any, disk: bool = True) -> str:
        urls = [d for d in lease.info.deviceUrl if bool(d.disk) == disk]
        return urls[0].url

    def http(self, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> str:
        """One HTTPS request to a device URL with '*' replaced by host:port of the SDK."""
        u = urllib.parse.urlsplit(url)
        path = u.path + (f"?{u.query}" if u.query else "")
        conn = http.client.HTTPSConnection(self.vc.host, self.vc.port, context=self.ctx, timeout=10)
        try:
            hdrs = {"Content-Length": str(len(body))} if method in ("PUT", "POST") else {}
            hdrs.update(headers or {})
            conn.request(method, path, body=body if method in ("PUT", "POST") else None, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return f"{resp.status} ({len(data)} bytes)"
        except (OSError, http.client.HTTPException) as exc:
            return f"net.{type(exc).__name__}"
        finally:
            conn.close()

    def truncated(self, url: str) -> str:
        """POST announcing 1 MiB, send 1 KiB, wait, close: what the server says and logs."""
        path = urllib.parse.urlsplit(url).path
        raw = socket.create_connection((self.vc.host, self.vc.port), timeout=10)
        with self.ctx.wrap_socket(raw, server_hostname=self.vc.host) as s:
            s.sendall(
                f"POST {path} HTTP/1.1\r\nHost: {self.vc.host}:{self.vc.port}\r\n"
                "Content-Type: application/x-vnd.vmware-streamVmdk\r\nContent-Length: 1048576\r\n"
                "Connection: close\r\n\r\n".encode()
                + b"\0" * 1024
            )
            # TLS has no half-close: stop sending and wait for an answer.
            s.settimeout(3)
            try:
                head = s.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
            except TimeoutError:
                head = ""
        answer = repr(head) if head else "no response within 3 s (server waits for the rest)"
        time.sleep(0.3)
        logged = [ln[ln.index("nfc POST "):] for ln in self.vc.stderr_text().splitlines() if " nfc POST " in ln]
        return f"{answer}; after the client closed, vcsim logged: {logged[-1] if logged else '-'}"

    # -- the checks ------------------------------------------------------------

    def run(self) -> None:
        self.version()
        self.fresh_import()
        self.methods()
        self.transfers()
        self.after_complete()
        self.after_abort()
        self.blocked_while_held()
        self.sessions()
        self.exports()
        self.expiry()

    def version(self) -> None:
        about = self.content.about
        self.row("version", "about.apiVersion / version / build",
                 f"{about.apiVersion} / {about.version} / {about.build}")
        self.row("version", "about.apiType / productLineId", f"{about.apiType} / {about.productLineId}")
        self.row("version", "version pyvmomi SmartConnect negotiates", self.si._stub.version)
        conn = http.client.HTTPSConnection(self.vc.host, self.vc.port, context=self.ctx, timeout=10)
        conn.request("GET", "/sdk/vimServiceVersions.xml")
        body = conn.getresponse().read().decode()
        conn.close()
        versions = [v.split("</version>")[0] for v in body.split("<version>")[1:]]
        self.row("version", "/sdk/vimServiceVersions.xml versions", ", ".join(versions))
        self.row("tls", "served certificate SHA-1 (vc.thumbprint)", self.vc.thumbprint)

    def fresh_import(self) -> None:
        t0 = time.monotonic()
        lease, vm = self.import_lease()
        dt = time.monotonic() - t0
        self.row("import", "ImportVApp returns", f"{lease._moId!r} in {dt * 1000:.0f} ms (synchronous)")
        self.row("import", "lease moid session-scoped form", lease._moId.startswith("session["))
        self.row("import", "state right after ImportVApp (accessor)", lease.state)
        self.row("import", "initializeProgress", lease.initializeProgress)
        props = self.read(lease)
        assert isinstance(props, dict), props
        info = props["info"]
        self.row("import", "RetrievePropertiesEx members present", sorted(props))
        self.row("import", "error (RetrievePropertiesEx)", props.get("error", "absent (unset)"))
        self.row("import", "error (pyvmomi accessor lease.error)", self.outcome(lambda: lease.error))
        self.row("import", "transferProgress / mode / capabilities",
                 f"{props.get('transferProgress')!r} / {props.get('mode')!r} / {_short(props.get('capabilities'))}")
        self.row("import", "transferProgress via accessor on the 6.5 stub (pyvmomi refuses, sends nothing)",
                 self.outcome(lambda: lease.transferProgress))
        self.row("import", "info.leaseTimeout", info.leaseTimeout)
        self.row("import", "info.totalDiskCapacityInKB (disk is 1 MiB)", info.totalDiskCapacityInKB)
        self.row("import", "info.entity", f"{info.entity._moId} (the VM exists: {vm is not None}, "
                 f"powerState {vm.runtime.powerState if vm else '-'})")
        self.row("import", "info.lease", info.lease._moId == lease._moId)
        self.row("import", "info.hostMap", _short(info.hostMap))
        self.row("import", "number of deviceUrl (OVF: 1 disk, 1 ISO)", len(info.deviceUrl))
        for d in info.deviceUrl:
            self.row("import", f"deviceUrl {'disk' if d.disk else 'file'}",
                     f"key={d.key!r} importKey={d.importKey!r} url={d.url!r} targetId={d.targetId!r} "
                     f"disk={d.disk} fileSize={d.fileSize!r} datastoreKey={d.datastoreKey!r}")
            self.row("import", f"deviceUrl {'disk' if d.disk else 'file'} sslThumbprint",
                     repr(d.sslThumbprint))
            host = urllib.parse.urlsplit(d.url).netloc
            self.row("import", f"deviceUrl {'disk' if d.disk else 'file'} host[:port]", repr(host))
        tasks = [f"{t.info.descriptionId} {t.info.state} (result {_short(t.info.result)})"
                 for t in self.content.taskManager.recentTask
                 if vm is not None and getattr(t.info.result, "_moId", None) == vm._moId]
        self.row("import", "recentTask whose result is the imported VM", tasks)
        lease.HttpNfcLeaseAbort()

    def methods(self) -> None:
        lease, _ = self.import_lease()
        l7 = self.on7(lease)
        self.row("methods", "Progress(50)", self.outcome(lambda: lease.HttpNfcLeaseProgress(50)))
        self.row("methods", "  transferProgress after it", _get(self.read(lease), "transferProgress"))
        self.row("methods", "Progress(50) again", self.outcome(lambda: lease.HttpNfcLeaseProgress(50)))
        self.row("methods", "Progress(10) (going back)", self.outcome(lambda: lease.HttpNfcLeaseProgress(10)))
        self.row("methods", "Progress(101)", self.outcome(lambda: lease.HttpNfcLeaseProgress(101)))
        self.row("methods", "Progress(-1)", self.outcome(lambda: lease.HttpNfcLeaseProgress(-1)))
        self.row("methods", "  transferProgress after them", _get(self.read(lease), "transferProgress"))
        self.row("methods", "  state after them", _get(self.read(lease), "state"))
        self.row("methods", "GetManifest (6.5 stub)", self.outcome(lambda: lease.HttpNfcLeaseGetManifest()))
        self.row("methods", "GetManifest (7.0.3 stub)", self.outcome(lambda: l7.HttpNfcLeaseGetManifest()))
        mapping = [vim.KeyValue(key=lease.info.deviceUrl[0].key, value="sha256")]
        self.row("methods", "SetManifestChecksumType (6.5 stub: pyvmomi refuses, sends nothing)",
                 self.outcome(lambda: lease.HttpNfcLeaseSetManifestChecksumType(mapping)))
        self.row("methods", "SetManifestChecksumType (7.0.3 stub)",
                 self.outcome(lambda: l7.HttpNfcLeaseSetManifestChecksumType(mapping)))
        self.row("methods", "SetManifestChecksumType twice",
                 self.outcome(lambda: l7.HttpNfcLeaseSetManifestChecksumType(mapping)))
        src = [vim.HttpNfcLease.SourceFile(targetDeviceId=lease.info.deviceUrl[0].importKey,
                                           url="https://127.0.0.1:9/disk.vmdk", create=False)]
        self.row("methods", "PullFromUrls (7.0.3 stub)", self.outcome(lambda: l7.HttpNfcLeasePullFromUrls_Task(src)))
        self.row("methods", "PullFromUrls twice", self.outcome(lambda: l7.HttpNfcLeasePullFromUrls_Task(src)))
        self.row("methods", "ProbeUrls (7.0.3 stub)", self.outcome(lambda: l7.HttpNfcLeaseProbeUrls(src, 5)))
        self.row("methods", "Complete (nothing uploaded)", self.outcome(lambda: lease.HttpNfcLeaseComplete()))

    def transfers(self) -> None:
        lease, vm = self.import_lease()
        disk = self.device_url(lease, disk=True)
        iso = self.device_url(lease, disk=False)
        vmdk = {"Content-Type": "application/x-vnd.vmware-streamVmdk"}
        self.row("upload", "GET disk URL before any upload", self.http("GET", disk))
        self.row("upload", "GET ISO URL before any upload", self.http("GET", iso))
        self.row("upload", "POST 1 KiB of zeros to disk (streamVmdk content type)",
                 self.http("POST", disk, b"\0" * 1024, vmdk))
        self.row("upload", "PUT 1 KiB to disk", self.http("PUT", disk, b"\0" * 1024))
        self.row("upload", "POST garbage (not a VMDK) to disk", self.http("POST", disk, b"garbage!" * 128, vmdk))
        self.row("upload", "POST empty body to disk", self.http("POST", disk, b"", vmdk))
        self.row("upload", "PUT 2 KiB to ISO (Overwrite: t)", self.http("PUT", iso, b"\1" * 2048, {"Overwrite": "t"}))
        self.row("upload", "POST 2 KiB to ISO (non-disk by POST)", self.http("POST", iso, b"\1" * 2048))
        self.row("upload", "GET disk URL after uploads", self.http("GET", disk))
        self.row("upload", "GET ISO URL after uploads", self.http("GET", iso))
        self.row("upload", "POST announcing 1 MiB, sending 1 KiB", self.truncated(disk))
        self.row("upload", "DELETE disk URL", self.http("DELETE", disk))
        bad_dev = disk.rsplit("/", 1)[0] + "/nosuch.vmdk"
        self.row("upload", "POST to an unknown device name", self.http("POST", bad_dev, b"x"))
        bad_lease = disk.replace("/nfc/", "/nfc/x")
        self.row("upload", "POST to an unknown lease id", self.http("POST", bad_lease, b"x"))
        self.row("upload", "uploads need a session cookie", "no: every request above was sent without one")
        self.row("upload", "lease state after uploads (no Progress)", _get(self.read(lease), "state"))
        self.row("upload", "Complete after uploads", self.outcome(lambda: lease.HttpNfcLeaseComplete()))
        self.row("upload", "imported VM after Complete", _vm_state(vm))
        self.row("upload", "POST to disk URL after Complete", self.http("POST", disk, b"x", vmdk))
        self.row("upload", "GET disk URL after Complete", self.http("GET", disk))

    def after_complete(self) -> None:
        lease, _ = self.import_lease()
        self.row("complete", "Complete", self.outcome(lambda: lease.HttpNfcLeaseComplete()))
        self.row("complete", "state via accessor after Complete", self.outcome(lambda: lease.state))
        self.row("complete", "RetrievePropertiesEx after Complete", _short(self.read(lease)))
        self.row("complete", "Complete twice", self.outcome(lambda: lease.HttpNfcLeaseComplete()))
        self.row("complete", "Abort after Complete", self.outcome(lambda: lease.HttpNfcLeaseAbort()))
        self.row("complete", "Progress after Complete", self.outcome(lambda: lease.HttpNfcLeaseProgress(100)))
        self.row("complete", "GetManifest after Complete", self.outcome(lambda: lease.HttpNfcLeaseGetManifest()))
        self.after_end("complete", lease)

    def after_end(self, section: str, lease: Any) -> None:
        l7 = self.on7(lease)
        mapping = [vim.KeyValue(key="/vm-1/disk:0", value="sha256")]
        src = [vim.HttpNfcLease.SourceFile(targetDeviceId="/x/disk:0", url="https://127.0.0.1:9/d.vmdk", create=False)]
        self.row(section, f"SetManifestChecksumType after {section} (7.0.3 stub)",
                 self.outcome(lambda: l7.HttpNfcLeaseSetManifestChecksumType(mapping)))
        self.row(section, f"PullFromUrls after {section} (7.0.3 stub)",
                 self.outcome(lambda: l7.HttpNfcLeasePullFromUrls_Task(src)))

    def after_abort(self) -> None:
        lease, vm = self.import_lease()
        fault = vmodl.fault.SystemError(reason="probe abort")
        self.row("abort", "Abort(fault)", self.outcome(lambda: lease.HttpNfcLeaseAbort(fault)))
        self.row("abort", "state via accessor after Abort", self.outcome(lambda: lease.state))
        self.row("abort", "RetrievePropertiesEx after Abort", _short(self.read(lease)))
        self.row("abort", "imported VM after Abort", _vm_state(vm))
        self.row("abort", "Abort twice", self.outcome(lambda: lease.HttpNfcLeaseAbort()))
        self.row("abort", "Complete after Abort", self.outcome(lambda: lease.HttpNfcLeaseComplete()))
        self.row("abort", "Progress after Abort", self.outcome(lambda: lease.HttpNfcLeaseProgress(5)))
        self.row("abort", "GetManifest after Abort", self.outcome(lambda: lease.HttpNfcLeaseGetManifest()))
        self.after_end("abort", lease)
        lease2, vm2 = self.import_lease()
        self.row("abort", "Abort() without fault", self.outcome(lambda: lease2.HttpNfcLeaseAbort()))
        self.row("abort", "imported VM after Abort()", _vm_state(vm2))
        same = self.outcome(lambda: self.import_lease(f"probe{self.n}"))
        self.row("abort", "ImportVApp again with the aborted import's name", same)

    def blocked_while_held(self) -> None:
        lease, vm = self.import_lease()
        self.row("held", "imported VM powerState while lease ready", vm.runtime.powerState)
        self.row("held", "PowerOn imported VM while held", self.wait_task(vm.PowerOnVM_Task()))
        self.row("held", "  powerState after", vm.runtime.powerState)
        self.row("held", "PowerOff it again", self.wait_task(vm.PowerOffVM_Task()))
        host = next(h for h in self.pool.owner.host if h._moId != vm.runtime.host._moId)
        spec = vim.vm.RelocateSpec(host=host)
        self.row("held", "Relocate imported VM (other host) while held", self.wait_task(vm.RelocateVM_Task(spec)))
        self.row("held", "Destroy imported VM while held", self.wait_task(vm.Destroy_Task()))
        self.row("held", "  lease state after Destroy", _get(self.read(lease), "state"))
        disk = self.device_url(lease, disk=True)
        self.row("held", "  POST to disk URL after Destroy", self.http("POST", disk, b"x"))
        self.row("held", "  Complete after Destroy", self.outcome(lambda: lease.HttpNfcLeaseComplete()))

    def sessions(self) -> None:
        lease, _ = self.import_lease()
        other = SmartConnect(host=self.vc.host, port=self.vc.port, user=self.vc.username, pwd=self.vc.password,
                             sslContext=self.ctx)
        try:
            foreign = vim.HttpNfcLease(lease._moId, other._stub)
            self.row("session", "state of the lease read from another session", self.outcome(lambda: foreign.state))
            self.row("session", "Complete from another session", self.outcome(lambda: foreign.HttpNfcLeaseComplete()))
        finally:
            Disconnect(other)
        lease.HttpNfcLeaseAbort()

    def exports(self) -> None:
        vm = self.content.searchIndex.FindByInventoryPath("DC0/vm/DC0_C0_RP0_VM0")
        self.row("export", "ExportVm (powered-on DC0_C0_RP0_VM0)", self.outcome(lambda: vm.ExportVm()))
        self.wait_task(vm.PowerOffVM_Task())
        self.row("export", "ExportVm (after PowerOff)", self.outcome(lambda: vm.ExportVm()))
        snap_task = vm.CreateSnapshot_Task(name="snap0", memory=False, quiesce=False)
        self.row("export", "CreateSnapshot for ExportSnapshot", self.wait_task(snap_task))
        snap = snap_task.info.result
        self.row("export", "ExportSnapshot", self.outcome(lambda: snap.ExportSnapshot()) if snap else "no snapshot")
        spec = vim.ResourceConfigSpec(
            cpuAllocation=vim.ResourceAllocationInfo(reservation=0, expandableReservation=True, limit=-1,
                                                     shares=vim.SharesInfo(level="normal", shares=0)),
            memoryAllocation=vim.ResourceAllocationInfo(reservation=0, expandableReservation=True, limit=-1,
                                                        shares=vim.SharesInfo(level="normal", shares=0)),
        )
        try:
            vapp = self.pool.CreateVApp("probe-vapp", spec, vim.VAppConfigSpec(), self.dc.vmFolder)
        except vmodl.MethodFault as exc:
            self.row("export", "ExportVApp", f"CreateVApp failed: {type(exc).__name__}")
        else:
            self.row("export", "ExportVApp (empty vApp made by CreateVApp)", self.outcome(lambda: vapp.ExportVApp()))

    def expiry(self) -> None:
        lease, _ = self.import_lease()
        timeout = lease.info.leaseTimeout
        time.sleep(self.wait)
        self.row("expiry", f"state {self.wait:g} s after ImportVApp, no Progress (leaseTimeout {timeout})",
                 _get(self.read(lease), "state"))
        lease.HttpNfcLeaseAbort()


def _fault_detail(exc: Any) -> str:
    bits = []
    for attr in ("method", "obj", "invalidProperty"):
        value = getattr(exc, attr, None)
        if value:
            bits.append(f"{attr}={getattr(value, '_moId', value)}")
    return f" ({', '.join(bits)})" if bits else ""


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if hasattr(value, "_moId"):
        return f"{type(value).__name__}:{value._moId}"
    if isinstance(value, VmomiSupport.DataObject):
        fields = {p.name: getattr(value, p.name) for p in value._GetPropertyList()}
        kept = {k: v for k, v in fields.items() if v not in (None, [], "") and k not in ("dynamicProperty",)}
        return type(value).__name__ + _short(kept)
    return repr(value)


def _get(props: dict[str, Any] | str, key: str) -> str:
    if isinstance(props, str):
        return props
    return repr(props.get(key, "absent"))


def _vm_state(vm: Any) -> str:
    try:
        return f"still exists ({vm.name}, {vm.runtime.powerState})"
    except vmodl.fault.ManagedObjectNotFound:
        return "gone (ManagedObjectNotFound)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    ap.add_argument("--wait", type=float, default=5.0, help="seconds to hold a lease untouched (expiry check)")
    args = ap.parse_args(argv)
    binary = find_vcsim()
    if binary is None:
        print("probe: no vcsim binary: run tools/build-vcsim (or set $NFCLEASE_VCSIM)", file=sys.stderr)
        return 2
    with VcsimProcess(binary) as vc:
        probe = Probe(vc, args.wait)
        try:
            probe.run()
        finally:
            Disconnect(probe.si)
        panics = vc.stderr_text().count("http: panic serving")
        probe.row("server", "Go panics in vcsim's log during the probe", panics)
    if args.json:
        print(json.dumps([{"section": s, "check": c, "observed": o} for s, c, o in probe.rows], indent=1))
        return 0
    w1 = max(len(r[0]) for r in probe.rows)
    w2 = max(len(r[1]) for r in probe.rows)
    print(f"vcsim probe: {binary}")
    for section, check, observed in probe.rows:
        print(f"{section:<{w1}}  {check:<{w2}}  {observed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
