#!/usr/bin/env python3
"""Deploy an OVF, or export a VM to one, with pyVmomi: a script in the style of the community samples.

    pyvmomi_ovf.py -s HOST -o PORT -u USER -p PASSWORD --cafile CERT deploy \\
        --ovf-path vm.ovf --datacenter-name DC0 --datastore-name LocalDS_0 --cluster-name DC0_C0 [--name NAME]
    pyvmomi_ovf.py -s HOST -o PORT -u USER -p PASSWORD --cafile CERT export --vm-name NAME --workdir DIR

What a user's script does, and nothing the suite provides: find objects by
name through a container view, CreateImportSpec + ImportVApp (or ExportVm),
wait for the lease, move the files with ``requests`` while a thread keeps
the lease alive with HttpNfcLeaseProgress, Complete (Abort with the error if
anything fails), and for export write the descriptor CreateDescriptor gives.
TLS is verified against ``--cafile`` (or the system's CAs).
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import requests
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl

CHUNK = 1 << 20


def get_obj(content, vimtype, name):
    """The first managed object of ``vimtype`` named ``name`` (None if there is none)."""
    view = content.viewManager.CreateContainerView(content.rootFolder, [vimtype], True)
    try:
        return next((obj for obj in view.view if obj.name == name), None)
    finally:
        view.Destroy()


class LeaseKeepAlive(threading.Thread):
    """Reports progress every few seconds so the lease does not time out while files move."""

    def __init__(self, lease, interval=5.0):
        super().__init__(daemon=True)
        self.lease, self.interval = lease, interval
        self.percent = 0
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.interval):
            try:
                if self.lease.state != vim.HttpNfcLease.State.ready:
                    return
                self.lease.HttpNfcLeaseProgress(self.percent)
            except vmodl.MethodFault:
                return

    def stop(self):
        self.stopped.set()


def wait_for_lease(lease, timeout=120.0):
    deadline = time.monotonic() + timeout
    while lease.state == vim.HttpNfcLease.State.initializing:
        if time.monotonic() > deadline:
            raise TimeoutError("the lease stayed initializing")
        time.sleep(0.2)
    if lease.state == vim.HttpNfcLease.State.error:
        raise RuntimeError(f"the lease failed: {lease.error.msg}")
    return lease.info


def device_url(url, args):
    """The device URL with an ESXi-style ``*`` host replaced by the host we connected to (port kept)."""
    parts = urlsplit(url)
    if parts.hostname == "*":
        parts = parts._replace(netloc=f"{args.host}:{parts.port or args.port}")
    return urlunsplit(parts)


def verify(args):
    """``requests``' verify: the CA file, given per request (REQUESTS_CA_BUNDLE overrides Session.verify)."""
    return args.cafile if args.cafile else True


def deploy(si, args):
    content = si.RetrieveContent()
    datacenter = get_obj(content, vim.Datacenter, args.datacenter_name)
    datastore = get_obj(content, vim.Datastore, args.datastore_name)
    cluster = get_obj(content, vim.ClusterComputeResource, args.cluster_name)
    if datacenter is None or datastore is None or cluster is None:
        raise SystemExit("datacenter, datastore or cluster not found")
    with open(args.ovf_path, encoding="utf-8") as handle:
        descriptor = handle.read()
    params = vim.OvfManager.CreateImportSpecParams(entityName=args.name or "")
    spec = content.ovfManager.CreateImportSpec(descriptor, cluster.resourcePool, datastore, params)
    if spec.error:
        raise SystemExit("CreateImportSpec: " + "; ".join(e.msg for e in spec.error))
    lease = cluster.resourcePool.ImportVApp(spec.importSpec, datacenter.vmFolder)
    info = wait_for_lease(lease)
    keepalive = LeaseKeepAlive(lease)
    keepalive.start()
    try:
        files = {item.deviceId: item for item in spec.fileItem}
        total = sum(os.path.getsize(os.path.join(os.path.dirname(args.ovf_path), f.path)) for f in spec.fileItem)
        sent = 0
        session = requests.Session()
        for device in info.deviceUrl:
            item = files.get(device.importKey)
            if item is None:
                continue
            path = os.path.join(os.path.dirname(args.ovf_path), item.path)
            headers = {"Content-Type": "application/x-vnd.vmware-streamVmdk"} if device.disk else {"Overwrite": "t"}
            with open(path, "rb") as body:
                method = session.post if device.disk else session.put
                reply = method(device_url(device.url, args), data=body, verify=verify(args), headers={
                    **headers, "Content-Length": str(os.path.getsize(path))})
            reply.raise_for_status()
            sent += os.path.getsize(path)
            keepalive.percent = int(sent * 100 / max(total, 1))
        lease.HttpNfcLeaseComplete()
    except Exception as exc:
        lease.HttpNfcLeaseAbort(vmodl.fault.SystemError(reason=str(exc)))
        raise
    finally:
        keepalive.stop()
    print(f"deployed {info.entity.name}")


def export(si, args):
    content = si.RetrieveContent()
    vm = get_obj(content, vim.VirtualMachine, args.vm_name)
    if vm is None:
        raise SystemExit(f"no VM named {args.vm_name}")
    lease = vm.ExportVm()
    info = wait_for_lease(lease)
    keepalive = LeaseKeepAlive(lease)
    keepalive.start()
    target = os.path.join(args.workdir, vm.name)
    os.makedirs(target, exist_ok=True)
    ovf_files = []
    try:
        session = requests.Session()
        for index, device in enumerate(info.deviceUrl):
            name = device.targetId or f"{vm.name}-{index}.vmdk"
            path = os.path.join(target, name)
            with session.get(device_url(device.url, args), stream=True, verify=verify(args)) as reply:
                reply.raise_for_status()
                size = 0
                with open(path, "wb") as out:
                    for chunk in reply.iter_content(CHUNK):
                        out.write(chunk)
                        size += len(chunk)
            ovf_files.append(vim.OvfManager.OvfFile(deviceId=device.key, path=name, size=size))
            keepalive.percent = int((index + 1) * 100 / len(info.deviceUrl))
        lease.HttpNfcLeaseComplete()
    except Exception as exc:
        lease.HttpNfcLeaseAbort(vmodl.fault.SystemError(reason=str(exc)))
        raise
    finally:
        keepalive.stop()
    params = vim.OvfManager.CreateDescriptorParams(name=vm.name, ovfFiles=ovf_files)
    result = content.ovfManager.CreateDescriptor(vm, params)
    if result.error:
        raise SystemExit("CreateDescriptor: " + "; ".join(e.msg for e in result.error))
    with open(os.path.join(target, f"{vm.name}.ovf"), "w", encoding="utf-8") as out:
        out.write(result.ovfDescriptor)
    print(f"exported {vm.name} to {target}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-s", "--host", required=True)
    parser.add_argument("-o", "--port", type=int, default=443)
    parser.add_argument("-u", "--user", required=True)
    parser.add_argument("-p", "--password", required=True)
    parser.add_argument("--cafile", help="PEM to verify the server against (default: the system's CAs)")
    commands = parser.add_subparsers(dest="command", required=True)
    deploy_args = commands.add_parser("deploy")
    deploy_args.add_argument("--ovf-path", required=True)
    deploy_args.add_argument("--datacenter-name", required=True)
    deploy_args.add_argument("--datastore-name", required=True)
    deploy_args.add_argument("--cluster-name", required=True)
    deploy_args.add_argument("--name")
    export_args = commands.add_parser("export")
    export_args.add_argument("--vm-name", required=True)
    export_args.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    context = ssl.create_default_context(cafile=args.cafile)
    si = SmartConnect(host=args.host, port=args.port, user=args.user, pwd=args.password, sslContext=context)
    try:
        (deploy if args.command == "deploy" else export)(si, args)
    finally:
        Disconnect(si)
    return 0


if __name__ == "__main__":
    sys.exit(main())
