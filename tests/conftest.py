"""Shared fixtures for the simulator's own tests: a running simulator, pyvmomi
sessions on it (TLS verified against the simulator's generated certificate),
and small NFC HTTP helpers on plain :mod:`http.client`.

Every wait here is a bounded loop (count and time), per DEVELOPERS.md rule 5.
"""

from __future__ import annotations

import hashlib
import http.client
import ssl
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from nfclease.ovf import build_import_ovf
from nfclease.sim import SimConfig, Simulator
from nfclease.vmdk import StreamOptimizedDisk
from nfclease.vmdkread import read_stream_optimized

STREAM_VMDK = "application/x-vnd.vmware-streamVmdk"
POOL_PATH = "DC0/host/DC0_C0/Resources"
VM_FOLDER_PATH = "DC0/vm"


# -- the simulator and sessions -------------------------------------------------

@pytest.fixture(scope="session")
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(lease_timeout=2, init_seconds=0.2)) as running:
        yield running


def ssl_context(sim: Simulator) -> ssl.SSLContext:
    """Verifies the server against the simulator's generated certificate (never disabled)."""
    return ssl.create_default_context(cafile=sim.cafile)


def connect(sim: Simulator, user: str = "user", pwd: str = "pass", **kw: Any) -> vim.ServiceInstance:
    """An unmodified pyvmomi SmartConnect to ``sim`` over verified TLS."""
    host = urlsplit(sim.url).hostname
    return SmartConnect(host=host, port=sim.port, user=user, pwd=pwd, sslContext=ssl_context(sim), **kw)


@pytest.fixture(scope="session")
def si(sim: Simulator) -> Iterator[vim.ServiceInstance]:
    instance = connect(sim)
    yield instance
    Disconnect(instance)


def find(si: vim.ServiceInstance, path: str) -> Any:
    obj = si.content.searchIndex.FindByInventoryPath(path)
    assert obj is not None, f"inventory path {path!r} not found"
    return obj


def find_vm(si: vim.ServiceInstance, name: str) -> Any:
    """The VM named ``name`` in DC0/vm, or None."""
    return si.content.searchIndex.FindByInventoryPath(f"{VM_FOLDER_PATH}/{name}")


# -- bounded waits ----------------------------------------------------------------

def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.02, what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy; bounded in time and in count."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_state(lease: vim.HttpNfcLease, states: Iterable[str] = ("ready", "error", "done"),
               timeout: float = 5.0) -> str:
    """Wait until the lease's state is one of ``states``; return it."""
    wanted = set(states)
    return wait_for(lambda: lease.state if lease.state in wanted else None, timeout,
                    what=f"lease state in {sorted(wanted)}")


def wait_ready(lease: vim.HttpNfcLease, timeout: float = 5.0) -> vim.HttpNfcLease.Info:
    state = wait_state(lease, timeout=timeout)
    assert state == "ready", f"lease went to {state}: {lease.error}"
    return lease.info


def wait_task(task: vim.Task, timeout: float = 10.0) -> vim.TaskInfo:
    """Wait for a task to end (success or error); return its info."""
    return wait_for(lambda: task.info if task.info.state in ("success", "error") else None, timeout,
                    what=f"task {task} to end")


# -- leases -------------------------------------------------------------------------

@dataclass
class Import:
    lease: vim.HttpNfcLease
    package: Any            # nfclease.ovf.OvfPackage
    result: Any             # OvfManager.CreateImportSpecResult


def start_import(si: vim.ServiceInstance, disks: list[int] = (1 << 20,), files: list[int] = (),
                 name: str | None = None) -> Import:
    """CreateImportSpec + ImportVApp for an OVF of ``disks`` (capacities) and ``files`` (sizes)."""
    package = build_import_ovf(list(disks), list(files), name=name)
    pool = find(si, POOL_PATH)
    datacenter = find(si, "DC0")
    datastore = datacenter.datastore[0]
    params = vim.OvfManager.CreateImportSpecParams(entityName=package.name)
    result = si.content.ovfManager.CreateImportSpec(package.descriptor, pool, datastore, params)
    assert not result.error, result.error
    lease = pool.ImportVApp(result.importSpec, datacenter.vmFolder)
    return Import(lease, package, result)


def nfc_url(sim: Simulator, url: str) -> str:
    """Replace an ESXi-style ``*`` host with the host we connected to (port kept)."""
    parts = urlsplit(url)
    if parts.hostname == "*":
        host = urlsplit(sim.url).hostname
        netloc = f"{host}:{parts.port}" if parts.port else f"{host}:{sim.port}"
        return parts._replace(netloc=netloc).geturl()
    return url


def nfc_connection(sim: Simulator, timeout: float = 30.0) -> http.client.HTTPSConnection:
    host = urlsplit(sim.url).hostname
    return http.client.HTTPSConnection(host, sim.port, context=ssl_context(sim), timeout=timeout)


def chunked(data: bytes, size: int = 4096, extension: str = "") -> bytes:
    """``data`` framed as a ``Transfer-Encoding: chunked`` body (chunks of ``size``, the final 0-size one)."""
    parts = [b"%x%s\r\n%s\r\n" % (len(data[i:i + size]), extension.encode(), data[i:i + size])
             for i in range(0, len(data), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@dataclass
class Reply:
    status: int
    body: bytes
    headers: Any


def nfc_request(sim: Simulator, method: str, url: str, body: bytes | Iterable[bytes] | None = None,
                headers: dict[str, str | None] | None = None, length: int | None = None,
                conn: http.client.HTTPSConnection | None = None) -> Reply:
    """One request to a device URL; ``body`` may be chunks (sent with ``length``)."""
    own = conn is None
    conn = conn or nfc_connection(sim)
    try:
        conn.putrequest(method, _path(nfc_url(sim, url)), skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None and "Content-Length" not in hdrs:
            hdrs["Content-Length"] = str(length if length is not None else len(body))  # type: ignore[arg-type]
        for key, value in hdrs.items():
            if value is not None:  # None: leave the header out
                conn.putheader(key, value)
        conn.endheaders()
        if isinstance(body, (bytes, bytearray)):
            conn.send(body)
        elif body is not None:
            for chunk in body:
                conn.send(chunk)
        response = conn.getresponse()
        return Reply(response.status, response.read(), response.headers)
    finally:
        if own:
            conn.close()


def upload_disk(sim: Simulator, url: str, disk: StreamOptimizedDisk, **kw: Any) -> Reply:
    """POST a streamOptimized stream to a disk device URL, as users send it."""
    return nfc_request(sim, "POST", url, disk.iter_chunks(), {"Content-Type": STREAM_VMDK},
                       length=disk.size, **kw)


def upload_file(sim: Simulator, url: str, data: bytes, **kw: Any) -> Reply:
    """PUT a non-disk file with ``Overwrite: t``."""
    return nfc_request(sim, "PUT", url, data,
                       {"Content-Type": "application/octet-stream", "Overwrite": "t"}, **kw)


@dataclass
class Download:
    status: int
    size: int
    sha1: str
    sha256: str
    data: bytes


def download(sim: Simulator, url: str, keep: bool = True) -> Download:
    """GET a device URL, hashing (sha1, sha256) while reading."""
    conn = nfc_connection(sim)
    try:
        conn.request("GET", _path(nfc_url(sim, url)))
        response = conn.getresponse()
        sha1, sha256, size, parts = hashlib.sha1(), hashlib.sha256(), 0, []
        while chunk := response.read(1 << 20):
            sha1.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
            if keep:
                parts.append(chunk)
        return Download(response.status, size, sha1.hexdigest(), sha256.hexdigest(), b"".join(parts))
    finally:
        conn.close()


def disk_bytes(disk: StreamOptimizedDisk) -> bytes:
    return b"".join(disk.iter_chunks())


def content_sha1(stream: bytes) -> str:
    """SHA-1 of the disk content a streamOptimized stream decodes to (gaps read as zeros)."""
    decoder = read_stream_optimized(stream)
    digest, position = hashlib.sha1(), 0
    for offset, data in decoder:
        assert offset >= position, "grains out of order"
        _zeros(digest, offset - position)
        digest.update(data)
        position = offset + len(data)
    assert decoder.header is not None
    _zeros(digest, decoder.header.capacity - position)
    return digest.hexdigest()


def _zeros(digest: Any, count: int) -> None:
    block = bytes(1 << 20)
    while count > 0:
        digest.update(block[:min(count, len(block))])
        count -= len(block)


def lease_task(si: vim.ServiceInstance, entity: Any, description_id: str) -> vim.Task:
    """The newest task in TaskManager.recentTask for ``entity`` with ``description_id``."""
    for task in reversed(si.content.taskManager.recentTask):
        info = task.info
        if info.descriptionId == description_id and info.entity == entity:
            return task
    raise AssertionError(f"no {description_id} task for {entity} in recentTask")


# -- raw SOAP (for what pyvmomi would refuse to send, and for the fuzz) -------------------

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"


def envelope(method: str, this_type: str, this_id: str, inner: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        f' xmlns:xsi="{XSI_NS}"><soapenv:Body><{method} xmlns="urn:vim25">'
        f'<_this type="{this_type}">{this_id}</_this>{inner}</{method}></soapenv:Body></soapenv:Envelope>'
    ).encode()


def soap_post(sim: Simulator, body: bytes, cookie: str | None = None, version: str = "9.0.0.0",
              conn: http.client.HTTPSConnection | None = None,
              headers: dict[str, str] | None = None) -> Reply:
    hdrs = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"urn:vim25/{version}"'}
    if cookie:
        hdrs["Cookie"] = f'vmware_soap_session="{cookie}"'
    hdrs.update(headers or {})
    return nfc_request(sim, "POST", sim.url, body, hdrs, conn=conn)


def soap_login(sim: Simulator, version: str = "9.0.0.0",
               conn: http.client.HTTPSConnection | None = None) -> str:
    """Log in by raw SOAP; return the session cookie value."""
    body = envelope("Login", "SessionManager", "SessionManager",
                    "<userName>raw</userName><password>raw</password>")
    reply = soap_post(sim, body, version=version, conn=conn)
    assert reply.status == 200, reply.body
    cookie = reply.headers["Set-Cookie"]
    return cookie.split("=", 1)[1].split(";", 1)[0].strip('"')


def soap_fault(reply: Reply) -> tuple[str, str]:
    """(fault type, faultstring) of a SOAP fault reply; asserts it is a well-formed one."""
    import xml.etree.ElementTree as ET
    root = ET.fromstring(reply.body)
    fault = root.find(f"{{{SOAP_NS}}}Body/{{{SOAP_NS}}}Fault")
    assert fault is not None, reply.body[:300]
    detail = fault.find("detail")
    assert detail is not None and len(detail) == 1, reply.body[:300]
    kind = detail[0].get(f"{{{XSI_NS}}}type") or ""
    return kind, fault.findtext("faultstring") or ""
