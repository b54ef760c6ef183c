"""A deliberately bad HttpNfcLease client: unmodified pyvmomi for SOAP, http.client for NFC, one defect at a time.

    python tests/clients/bad_client.py --defect no-abort --host 127.0.0.1 --port 8989 --cafile ca.pem

Each ``--defect`` is one mistake real clients make (FIELD-NOTES.md lists
them); everything else it does right: verified TLS, wait for ready, renew,
POST streamOptimized disks, PUT files, Complete. The client judge must flag
each defect under its clause (``tests/test_client_judge.py``). ``good`` has no
defect. Credentials from ``GOVC_USERNAME``/``GOVC_PASSWORD``. Every loop here
is bounded except ``wait-forever``'s, which is the defect (its runner kills it).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

from nfclease.ovf import build_import_ovf
from nfclease.vmdk import ContentPattern, StreamOptimizedDisk

DEFECTS = ("good", "no-renew", "progress-range", "progress-after-complete", "use-after-release", "no-abort",
           "abort-no-fault", "complete-early", "no-wait", "wait-forever", "no-star", "no-thumbprint",
           "checksum-late", "put-disk", "wrong-type", "flat-disk")
STREAM_VMDK = "application/x-vnd.vmware-streamVmdk"


class Client:
    """One import, done right except for ``defect``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.defect = args.defect
        self.host, self.port = args.host, args.port
        self.context = ssl.create_default_context(cafile=args.cafile)
        self.si = SmartConnect(host=args.host, port=args.port, user=os.environ.get("GOVC_USERNAME", "user"),
                               pwd=os.environ.get("GOVC_PASSWORD", "pass"), sslContext=self.context)
        self.lease: vim.HttpNfcLease | None = None
        self.stop = threading.Event()

    def import_lease(self) -> vim.HttpNfcLease:
        files = [8192] if self.defect == "complete-early" else []
        package = build_import_ovf([1 << 20], files, name=f"bad-{self.defect}-{os.getpid()}")
        content = self.si.content
        pool = content.searchIndex.FindByInventoryPath("DC0/host/DC0_C0/Resources")
        datacenter = content.searchIndex.FindByInventoryPath("DC0")
        spec = content.ovfManager.CreateImportSpec(package.descriptor, pool, datacenter.datastore[0],
                                                   vim.OvfManager.CreateImportSpecParams(entityName=package.name))
        self.lease = pool.ImportVApp(spec.importSpec, datacenter.vmFolder)
        return self.lease

    def wait_ready(self) -> None:
        lease = self.lease
        if self.defect == "no-wait":
            time.sleep(1.0)  # "long enough": never reads the state
            return
        if self.defect == "wait-forever":
            while lease.state != vim.HttpNfcLease.State.ready:  # DEFECT: never ends on error
                time.sleep(0.2)
            return
        for _ in range(300):
            state = lease.state
            if state == vim.HttpNfcLease.State.ready:
                return
            if state == vim.HttpNfcLease.State.error:
                raise RuntimeError(f"lease error: {lease.error.localizedMessage if lease.error else '?'}")
            time.sleep(0.1)
        raise RuntimeError("lease not ready after 30 s")

    def renew(self) -> None:
        while not self.stop.wait(1.0):
            try:
                self.lease.HttpNfcLeaseProgress(percent=50)
            except vmodl.MethodFault:
                return

    def connection(self, url: str) -> tuple[http.client.HTTPSConnection, str]:
        parts = urlsplit(url)
        host = parts.hostname if self.defect == "no-star" else (self.host if parts.hostname == "*" else parts.hostname)
        context = self.context
        return http.client.HTTPSConnection(host, parts.port or self.port, context=context, timeout=30), parts.path

    def upload(self, device: vim.HttpNfcLease.DeviceUrl) -> int:
        conn, path = self.connection(device.url)
        if self.defect != "no-thumbprint" and device.sslThumbprint:
            conn.connect()
            served = hashlib.sha1(conn.sock.getpeercert(binary_form=True)).hexdigest()
            if served != device.sslThumbprint.replace(":", "").lower():
                conn.close()
                raise ssl.SSLError(f"certificate thumbprint {served} is not the lease's {device.sslThumbprint}")
        if device.disk:
            if self.defect == "flat-disk":
                body = b"\0" * (1 << 20)  # DEFECT: a flat disk, not streamOptimized
            else:
                body = b"".join(StreamOptimizedDisk(1 << 20, ContentPattern("random", device.key)))
            method = "PUT" if self.defect == "put-disk" else "POST"
            kind = "application/octet-stream" if self.defect == "wrong-type" else STREAM_VMDK
            headers = {"Content-Type": kind}
        else:
            body, method, headers = b"\1" * 8192, "PUT", {"Content-Type": "application/octet-stream", "Overwrite": "t"}
        conn.request(method, path, body=body, headers={**headers, "Content-Length": str(len(body))})
        status = conn.getresponse().status
        conn.close()
        return status

    def run(self) -> int:
        lease = self.import_lease()
        self.wait_ready()
        info = lease.info
        if self.defect == "progress-range":
            try:
                lease.HttpNfcLeaseProgress(percent=150)  # DEFECT
            except vmodl.MethodFault:
                pass  # a server may refuse it; carry on
        keepalive = threading.Thread(target=self.renew, daemon=True)
        if self.defect != "no-renew":
            keepalive.start()
        failed = None
        devices = list(info.deviceUrl)
        if self.defect == "complete-early":
            devices = [d for d in devices if d.disk]  # DEFECT: the nvram never goes up
        try:
            for device in devices:
                status = self.upload(device)
                if status >= 300:
                    failed = f"upload of {device.key}: HTTP {status}"
                    break
        except (OSError, http.client.HTTPException) as exc:
            failed = f"upload: {exc}"
        if self.defect == "checksum-late":
            lease.HttpNfcLeaseSetManifestChecksumType([vim.KeyValue(key=d.key, value="sha256") for d in devices])
        self.stop.set()
        if failed and self.defect not in ("no-abort",):
            fault = None if self.defect == "abort-no-fault" else vmodl.fault.SystemError(reason=failed, msg=failed)
            try:
                lease.HttpNfcLeaseAbort(fault=fault)
            except vmodl.MethodFault:
                pass
            print(f"bad_client: {failed}", file=sys.stderr)
            return 1
        lease.HttpNfcLeaseComplete()  # DEFECT for no-abort: completes after a failed upload
        if self.defect == "progress-after-complete":
            lease.HttpNfcLeaseProgress(percent=100)
        if self.defect == "use-after-release":
            try:
                lease.HttpNfcLeaseGetManifest()  # DEFECT: the lease is no longer valid
            except vmodl.MethodFault:
                pass
        return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--defect", choices=DEFECTS, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cafile", required=True)
    args = parser.parse_args()
    client = Client(args)
    try:
        return client.run()
    except (vmodl.MethodFault, OSError, RuntimeError) as exc:
        print(f"bad_client: {type(exc).__name__}: {getattr(exc, 'msg', None) or exc}", file=sys.stderr)
        return 1
    finally:
        Disconnect(client.si)


if __name__ == "__main__":
    raise SystemExit(main())
