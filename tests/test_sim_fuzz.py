"""Hypothesis fuzz of the simulator's SOAP (``POST /sdk``) and NFC (``/nfc/``) endpoints.

Every input must get a proper answer: HTTP 200 with an envelope, HTTP 500 with
a ``soapenv:Fault`` whose detail is a vmodl fault type pyVmomi knows (never
``SystemError``, the simulator's report of its own crash), or a 4xx with a
message. Never a dropped connection, never an error in the simulator's log,
and after each input a normal ``RetrieveServiceContent`` is served on the
same persistent connection (or, when the server said ``Connection: close``,
on a new one).

The fuzz uses its own simulators (the mutated envelopes power VMs on, export
and import, abort leases...), one raw http.client connection each, and a
lease timeout long enough that the leases it aims at stay alive.
"""

from __future__ import annotations

import http.client
import logging
import os
import string
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyVim.connect import Disconnect
from pyVmomi import VmomiSupport, vmodl

from conftest import (
    SOAP_NS, STREAM_VMDK, Reply, chunked, connect, envelope, find, find_vm, nfc_connection, nfc_request,
    soap_fault, start_import, wait_ready,
)
from nfclease.ovf import build_import_ovf
from nfclease.sim import SimConfig, Simulator
from nfclease.vmdk import StreamOptimizedDisk

VIM = "urn:vim25"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True)
SCALE = float(os.environ.get("NFCLEASE_FUZZ_SCALE", "1"))  # e.g. 10 for a long local soak


def examples(n: int) -> int:
    return max(1, int(n * SCALE))
NOT_FOR_FUZZ = {"WaitForUpdates", "WaitForUpdatesEx", "Logout", "TerminateSession"}  # long polls, session end


# -- the simulator's error log --------------------------------------------------------------------------

class ErrorLog(logging.Handler):
    """Collects ERROR records of the simulator's loggers (a crashed handler logs one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.lock_ = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self.lock_:
            self.records.append(record)

    def take(self) -> list[str]:
        with self.lock_:
            out, self.records = [self.format(r) for r in self.records], []
        return out


@pytest.fixture(scope="module")
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logger = logging.getLogger("nfclease.sim")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


# -- one persistent raw connection -------------------------------------------------------------------

class Wire:
    """A raw keep-alive connection to a simulator; reconnects only after ``Connection: close``."""

    def __init__(self, sim: Simulator, cookie: str) -> None:
        self.sim, self.cookie = sim, cookie
        self.conn = nfc_connection(sim, timeout=15)
        self.reconnects = 0

    def request(self, method: str, path: str, headers: dict[str, str | None], body: bytes | None) -> Reply:
        if self.conn.sock is None:
            self.reconnects += 1
        try:
            reply = nfc_request(self.sim, method, path, body, headers, conn=self.conn)
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            raise AssertionError(f"{method} {path}: connection dropped without a response: {exc!r}") from exc
        if (reply.headers.get("Connection") or "").lower() == "close":
            self.conn.close()
        return reply

    def soap(self, body: bytes, headers: dict[str, str | None] | None = None) -> Reply:
        hdrs: dict[str, str | None] = {"Content-Type": "text/xml; charset=utf-8",
                                       "SOAPAction": '"urn:vim25/9.0.0.0"',
                                       "Cookie": f'vmware_soap_session="{self.cookie}"'}
        hdrs.update(headers or {})
        return self.request("POST", "/sdk", hdrs, body)

    def normal(self) -> None:
        """After any input, a normal request is served."""
        reply = self.soap(envelope("RetrieveServiceContent", "ServiceInstance", "ServiceInstance"))
        assert reply.status == 200, reply.body[:300]
        assert b"RetrieveServiceContentResponse" in reply.body

    def close(self) -> None:
        self.conn.close()


def known_fault(kind: str) -> bool:
    try:
        typ = VmomiSupport.GetWsdlType(VIM, kind)
    except KeyError:
        return False
    return isinstance(typ, type) and issubclass(typ, vmodl.MethodFault)


def check(reply: Reply, error_log: ErrorLog, what: str = "", allow_501: bool = False) -> None:
    """The contract for every fuzzed input."""
    crashes = error_log.take()
    assert not crashes, f"{what}: the simulator logged an error:\n" + "\n".join(crashes)
    if 200 <= reply.status < 300:
        return
    if reply.status == 500:
        kind, message = soap_fault(reply)
        assert known_fault(kind), f"{what}: fault detail type {kind!r} is not a vmodl fault"
        assert kind != "SystemError", f"{what}: the simulator crashed: {message}"
        assert message, f"{what}: a fault without a faultstring"
        return
    assert 400 <= reply.status < 500 or (allow_501 and reply.status == 501), \
        f"{what}: HTTP {reply.status}: {reply.body[:300]!r}"
    assert reply.body.strip() or what.startswith("HEAD "), f"{what}: HTTP {reply.status} without a message"


# -- the SOAP target -------------------------------------------------------------------------------------

@dataclass
class SoapTarget:
    sim: Simulator
    si: Any
    wire: Wire
    morefs: list[tuple[str, str]]        # (type, moid) of real objects, and a foreign lease
    templates: dict[str, Callable[[], bytes]] = field(default_factory=dict)
    lease: Any = None
    lease_keys: tuple[str, str] = ("", "")
    moref_strategy: Any = None
    template_names: Any = None

    def ready_lease(self) -> Any:
        """A ready import lease of the fuzz session (a new one when the fuzz ended the last)."""
        if self.lease is None or self.lease.state != "ready":
            imp = start_import(self.si, [1 << 20])
            info = wait_ready(imp.lease)
            self.lease = imp.lease
            self.lease_keys = (info.deviceUrl[0].key, info.deviceUrl[0].importKey)
        return self.lease


@pytest.fixture(scope="module")
def soap_target(error_log) -> Iterator[SoapTarget]:
    with Simulator(SimConfig(lease_timeout=600, init_seconds=0.0)) as sim:
        si = connect(sim)
        other = connect(sim, user="other", pwd="other")
        foreign = find_vm(other, "DC0_C0_RP0_VM3").ExportVm()  # a lease of another session
        cookie = si._stub.cookie.split("=", 1)[1].split(";", 1)[0].strip('"')
        morefs = [("ServiceInstance", "ServiceInstance"), ("HttpNfcLease", foreign._moId)]
        for path in ("DC0", "DC0/vm", "DC0/host/DC0_C0", "DC0/host/DC0_C0/Resources", "DC0/vm/DC0_VAPP0",
                     *(f"DC0/vm/DC0_C0_RP0_VM{i}" for i in range(4))):
            obj = find(si, path)
            morefs.append((obj._wsdlName, obj._moId))
        for host in find(si, "DC0/host/DC0_C0").host:
            morefs.append(("HostSystem", host._moId))
        morefs.append(("Datastore", find(si, "DC0").datastore[0]._moId))
        wire = Wire(sim, cookie)
        target = SoapTarget(sim, si, wire, morefs)
        target.templates = make_templates(target)
        target.moref_strategy = moref_strategy(morefs)
        target.template_names = st.sampled_from(sorted(target.templates))
        yield target
        wire.close()
        Disconnect(other)
        Disconnect(si)


def make_templates(t: SoapTarget) -> dict[str, Callable[[], bytes]]:
    """Valid requests (each is checked to succeed unmutated); the fuzz mutates them."""
    vm = next(m for k, m in t.morefs if k == "VirtualMachine")
    host = next(m for k, m in t.morefs if k == "HostSystem")
    pool = next(m for k, m in t.morefs if k == "ResourcePool")
    datastore = next(m for k, m in t.morefs if k == "Datastore")
    descriptor = escape(build_import_ovf([1 << 20], [16], name="fuzz").descriptor)

    def lease_call(method: str, inner: Callable[[], str] = lambda: "") -> Callable[[], bytes]:
        return lambda: envelope(method, "HttpNfcLease", t.ready_lease()._moId, inner())

    return {
        "RetrieveServiceContent": lambda: envelope("RetrieveServiceContent", "ServiceInstance", "ServiceInstance"),
        "CurrentTime": lambda: envelope("CurrentTime", "ServiceInstance", "ServiceInstance"),
        "Fetch": lambda: envelope("Fetch", "VirtualMachine", vm, "<prop>runtime.powerState</prop>"),
        "FindByInventoryPath": lambda: envelope("FindByInventoryPath", "SearchIndex", "SearchIndex",
                                                "<inventoryPath>DC0/vm/DC0_C0_RP0_VM1</inventoryPath>"),
        "RetrievePropertiesEx": lambda: envelope(
            "RetrievePropertiesEx", "PropertyCollector", "propertyCollector",
            f'<specSet><propSet><type>VirtualMachine</type><all>false</all><pathSet>name</pathSet>'
            f'<pathSet>runtime</pathSet></propSet><objectSet><obj type="VirtualMachine">{vm}</obj>'
            f'<skip>false</skip></objectSet></specSet><options></options>'),
        "CreateContainerView": lambda: envelope(
            "CreateContainerView", "ViewManager", "ViewManager",
            '<container type="Folder">group-d1</container><type>VirtualMachine</type><recursive>true</recursive>'),
        "CreateImportSpec": lambda: envelope(
            "CreateImportSpec", "OvfManager", "OvfManager",
            f'<ovfDescriptor>{descriptor}</ovfDescriptor><resourcePool type="ResourcePool">{pool}</resourcePool>'
            f'<datastore type="Datastore">{datastore}</datastore><cisp><locale></locale>'
            f'<deploymentOption></deploymentOption><entityName>fuzz</entityName></cisp>'),
        "Login": lambda: envelope("Login", "SessionManager", "SessionManager",
                                  "<userName>fuzz</userName><password>fuzz</password>"),
        "PowerOnVM_Task": lambda: envelope("PowerOnVM_Task", "VirtualMachine", vm),
        "PowerOffVM_Task": lambda: envelope("PowerOffVM_Task", "VirtualMachine", vm),
        "RelocateVM_Task": lambda: envelope("RelocateVM_Task", "VirtualMachine", vm,
                                            f'<spec><host type="HostSystem">{host}</host></spec>'),
        "CreateSnapshot_Task": lambda: envelope("CreateSnapshot_Task", "VirtualMachine", vm,
                                                "<name>fuzz</name><memory>false</memory><quiesce>false</quiesce>"),
        "HttpNfcLeaseProgress": lease_call("HttpNfcLeaseProgress", lambda: "<percent>50</percent>"),
        "HttpNfcLeaseGetManifest": lease_call("HttpNfcLeaseGetManifest"),
        "HttpNfcLeaseSetManifestChecksumType": lease_call(
            "HttpNfcLeaseSetManifestChecksumType",
            lambda: f"<deviceUrlsToChecksumTypes><key>{t.lease_keys[0]}</key>"
                    f"<value>sha256</value></deviceUrlsToChecksumTypes>"),
        "HttpNfcLeasePullFromUrls_Task": lease_call(
            "HttpNfcLeasePullFromUrls_Task",
            lambda: f"<files><targetDeviceId>{t.lease_keys[1]}</targetDeviceId>"
                    f"<url>http://127.0.0.1:9/disk.vmdk</url><create>false</create></files>"),
        "HttpNfcLeaseAbort": lease_call(
            "HttpNfcLeaseAbort", lambda: '<fault><fault xsi:type="SystemError"><reason>fuzz</reason></fault>'
                                         '<localizedMessage>fuzz</localizedMessage></fault>'),  # as pyvmomi sends it
        "HttpNfcLeaseComplete": lease_call("HttpNfcLeaseComplete"),
    }


def test_templates_are_valid_requests(soap_target, error_log):
    """The unmutated templates succeed, so the mutated ones start from valid envelopes."""
    for name, make in soap_target.templates.items():
        reply = soap_target.wire.soap(make())
        check(reply, error_log, name)
        assert reply.status == 200, f"{name}: {reply.body[:400]!r}"
        if name == "PowerOnVM_Task":  # keep the VM off for the next templates
            assert soap_target.wire.soap(soap_target.templates["PowerOffVM_Task"]()).status == 200


# -- SOAP strategies -------------------------------------------------------------------------------------

ALL_METHODS = sorted({name for (ns, name) in VmomiSupport._wsdlMethodMap if ns == VIM} - NOT_FOR_FUZZ)  # noqa: SLF001
MANAGED_TYPES = ["ServiceInstance", "HttpNfcLease", "VirtualMachine", "Folder", "ResourcePool", "VirtualApp",
                 "HostSystem", "Datastore", "Datacenter", "ClusterComputeResource", "Task", "PropertyCollector",
                 "SearchIndex", "OvfManager", "SessionManager", "ViewManager", "VirtualMachineSnapshot",
                 "ManagedEntity", "ManagedObject", "NoSuchType", "KeyValue", "string", ""]
DATA_TYPES = ["SystemError", "InvalidState", "MethodFault", "KeyValue", "VirtualMachineRelocateSpec", "int",
              "string", "boolean", "xsd:int", "ArrayOfString", "HttpNfcLeaseSourceFile", "ManagedObjectReference",
              "NoSuchType", "vim25:VirtualMachine", "", "::"]
printable = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
xml_safe_text = st.text(alphabet=string.ascii_letters + string.digits + " -_.:/*[]", max_size=40)
values = st.one_of(
    xml_safe_text,
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70).map(str),
    st.sampled_from(["", "-1", "abc", "true", "false", "1e309", "NaN", "9" * 40, "0x10", " 5 ", "sha1", "md5",
                     "2026-13-45T99:99:99Z", "&amp;", "&lt;x&gt;"]),
)


def moref_strategy(target_morefs: list[tuple[str, str]]) -> st.SearchStrategy[tuple[str, str]]:
    return st.one_of(
        st.sampled_from(target_morefs),
        st.tuples(st.sampled_from(MANAGED_TYPES), st.sampled_from([m for _, m in target_morefs])),
        st.tuples(st.sampled_from(MANAGED_TYPES), xml_safe_text),
    )


def _tag(name: str) -> str:
    return f"{{{VIM}}}{name}"


@st.composite
def mutated_envelope(draw, target: SoapTarget) -> bytes:
    """A valid envelope with 1-3 of its fields mutated (text, type, structure), or cut short."""
    body = target.templates[draw(target.template_names)]()
    root = ET.fromstring(body)
    method = root.find(f"{{{SOAP_NS}}}Body")[0]
    for _ in range(draw(st.integers(1, 3))):
        nodes = [n for n in method.iter() if n is not method] or [method]
        node = nodes[draw(st.integers(0, 1 << 16)) % len(nodes)]  # draws must not depend on the lease ids
        parent = next((p for p in method.iter() if node in list(p)), method)
        op = draw(st.sampled_from(["text", "text", "drop", "dup", "retag", "xsitype", "moref", "insert"]))
        if op == "text":
            node.text = draw(values)
        elif op == "drop" and node is not method:
            parent.remove(node)
        elif op == "dup" and node is not method:
            parent.insert(list(parent).index(node), ET.fromstring(ET.tostring(node)))
        elif op == "retag":
            node.tag = _tag(draw(st.sampled_from(["_this", "percent", "fault", "files", "key", "value", "spec",
                                                  "prop", "specSet", "obj", "nosuch", "Envelope"])))
        elif op == "xsitype":
            node.set(f"{{{XSI}}}type", draw(st.sampled_from(DATA_TYPES)))
        elif op == "moref":
            kind, moid = draw(target.moref_strategy)
            node.set("type", kind)
            node.text = moid
        elif op == "insert":
            child = ET.SubElement(node, _tag(draw(st.sampled_from(["percent", "key", "x", "_this", "fault"]))))
            child.text = draw(values)
    data = ET.tostring(root, encoding="utf-8", default_namespace=None)
    if draw(st.integers(0, 9)) == 0:  # cut short: malformed XML
        data = data[: draw(st.integers(0, 1 << 16)) % len(data)]
    return data


@st.composite
def random_call(draw, target: SoapTarget) -> bytes:
    """Any vim method (known, unknown or not implemented) on any moref, with random arguments."""
    method = draw(st.one_of(st.sampled_from(ALL_METHODS), st.sampled_from(ALL_METHODS).map(lambda m: m + "X"),
                            st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)))
    kind, moid = draw(target.moref_strategy)
    args = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.one_of(st.sampled_from(["percent", "fault", "files", "spec", "name", "prop", "host",
                                               "deviceUrlsToChecksumTypes", "inventoryPath", "specSet"]),
                              st.from_regex(r"[a-z][A-Za-z]{0,10}", fullmatch=True)))
        typ = draw(st.one_of(st.none(), st.sampled_from(DATA_TYPES)))
        attr = f' xsi:type="{typ}"' if typ is not None else ""
        args.append(f"<{name}{attr}>{escape(draw(values))}</{name}>")
    return envelope(method, escape(kind, {'"': "&quot;"}), escape(moid), "".join(args))


MALFORMED = [
    b"", b"<", b"<?xml version='1.0'?>", b"<a/>", b"<soapenv:Envelope/>",
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"/>',
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body/></soapenv:Envelope>',
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><x>&d;&d;</x>',
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    "<é/>".encode("latin-1"), b"\xff\xfe<\x00a\x00/\x00>\x00", b"\x00" * 64,
]


soap_headers = st.fixed_dictionaries({}, optional={
    "SOAPAction": st.sampled_from(['"urn:vim25/6.5"', '"urn:vim25/4.1"', '"urn:vim25/nonsense"', "", '"urn:vim25"',
                                   '"urn:other/1.0"']),
    "Cookie": st.sampled_from(['vmware_soap_session="nope"', "garbage;;==", 'vmware_soap_session=""', ""]),
    "Content-Type": st.sampled_from(["application/json", "text/plain", ""]),
})


@settings(max_examples=examples(300), **SETTINGS)
@given(body=st.one_of(st.binary(max_size=2048), st.sampled_from(MALFORMED)), headers=soap_headers)
def test_fuzz_soap_random_bytes_and_malformed_xml(soap_target, error_log, body, headers):
    reply = soap_target.wire.soap(body, headers)
    check(reply, error_log, repr(body[:80]))
    assert reply.status != 200 or body.startswith(b"<")
    soap_target.wire.normal()


@settings(max_examples=examples(700), **SETTINGS)
@given(data=st.data())
def test_fuzz_soap_random_methods_and_arguments(soap_target, error_log, data):
    body = data.draw(random_call(soap_target))
    headers = data.draw(soap_headers) if data.draw(st.integers(0, 5)) == 0 else {}
    reply = soap_target.wire.soap(body, headers)
    check(reply, error_log, body.decode(errors="replace")[:300])
    soap_target.wire.normal()


@settings(max_examples=examples(800), **SETTINGS)
@given(data=st.data())
def test_fuzz_soap_mutated_valid_envelopes(soap_target, error_log, data):
    body = data.draw(mutated_envelope(soap_target))
    reply = soap_target.wire.soap(body)
    check(reply, error_log, body.decode(errors="replace")[:400])
    soap_target.wire.normal()


def test_soap_oversized_and_unframed_bodies(soap_target, error_log):
    wire = soap_target.wire
    # a declared length over the limit is refused before the body is read
    reply = wire.request("POST", "/sdk", {"Content-Type": "text/xml", "Content-Length": str(64 << 20)}, None)
    assert reply.status == 413
    check(reply, error_log, "oversized")
    assert soap_fault(reply)[0] == "InvalidRequest"
    wire.normal()
    # an actual 9 MiB body: same answer
    reply = wire.request("POST", "/sdk", {"Content-Type": "text/xml"}, b"<" * (9 << 20))
    assert reply.status == 413
    wire.normal()
    for bad in ("abc", "-5"):
        reply = wire.request("POST", "/sdk", {"Content-Type": "text/xml", "Content-Length": bad}, None)
        assert 400 <= reply.status < 500
        check(reply, error_log, f"Content-Length {bad}")
        wire.normal()
    reply = wire.request("POST", "/sdk", {"Content-Type": "text/xml"}, None)
    assert reply.status == 411
    wire.normal()
    reply = wire.request("POST", "/sdk", {"Content-Type": "text/xml", "Transfer-Encoding": "gzip"}, None)
    assert reply.status == 400 and b"gzip" in reply.body
    wire.normal()


# -- the NFC target -----------------------------------------------------------------------------------------

@dataclass
class NfcTarget:
    sim: Simulator
    wire: Wire
    paths: list[str]
    path_strategy: Any = None


@pytest.fixture(scope="module")
def nfc_target(error_log) -> Iterator[NfcTarget]:
    with Simulator(SimConfig(lease_timeout=600, init_seconds=0.0)) as sim:
        si = connect(sim)
        imp = start_import(si, [1 << 20], [16])
        info = wait_ready(imp.lease)
        export = find_vm(si, "DC0_C0_RP0_VM0").ExportVm()
        export_info = wait_ready(export)
        done = start_import(si, [1 << 20])
        done_url = wait_ready(done.lease).deviceUrl[0].url
        done.lease.HttpNfcLeaseComplete()
        urls = [u.url for u in info.deviceUrl] + [u.url for u in export_info.deviceUrl] + [done_url]
        paths = [urlsplit(u).path for u in urls]
        cookie = si._stub.cookie.split("=", 1)[1].split(";", 1)[0].strip('"')
        wire = Wire(sim, cookie)
        yield NfcTarget(sim, wire, paths, nfc_paths(paths))
        wire.close()
        Disconnect(si)


path_chars = string.ascii_letters + string.digits + "-._~%/:@!$&'()*+,;=?"


def nfc_paths(paths: list[str]) -> st.SearchStrategy[str]:
    """Real device paths, variations of them, and arbitrary paths (built once: strategies cost to build)."""
    tickets = sorted({p.split("/")[2] for p in paths})
    names = sorted({p.split("/")[3] for p in paths})
    ticket = st.sampled_from(tickets + ["", "..", "x" * 300]) | xml_safe_text.map(
        lambda s: s.replace(" ", "").replace("/", ""))
    name = st.sampled_from(names + ["disk-9.vmdk", "", "..", "%2e%2e"])
    return st.one_of(
        st.sampled_from(paths),
        st.tuples(st.sampled_from(paths), st.sampled_from(["/", "?x=1", "/extra", "%00", "/.."])).map("".join),
        st.builds(lambda t, n: f"/nfc/{t}/{n}", ticket, name),
        st.text(alphabet=path_chars, max_size=60).map(lambda s: "/" + s),
        st.sampled_from(["/", "/nfc", "/nfc/", "/sdk", "/sdk/", "/sdk/vimServiceVersions.xml", "//nfc//", "*",
                         *(f"/nfc/{t}" for t in tickets)]),
    )


nfc_methods = st.one_of(st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
                        st.sampled_from(["TRACE", "CONNECT", "PROPFIND", "FOO", "get"]))
nfc_header_values = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from([STREAM_VMDK, "application/octet-stream", "text/plain", "", "a/b; x=y"]),
    "Overwrite": st.sampled_from(["t", "f", "", "T"]),
    "Transfer-Encoding": st.sampled_from(["chunked", "gzip", "identity"]),
    # only unparsable lengths: a parsable one the client does not honour makes any server wait for the body
    "Content-Length": st.sampled_from(["abc", "-1", "", "1e3", "0x10", "1, 2"]),
    "Range": st.sampled_from(["bytes=0-10", "bytes=-5", "nonsense"]),
    "Cookie": st.sampled_from(['vmware_soap_session="x"', "=;="]),
    "X-Random": xml_safe_text,
})
vmdk_head = StreamOptimizedDisk(1 << 20, "sequence").open().read(4096)
nfc_bodies = st.one_of(st.none(), st.binary(max_size=1024), st.just(vmdk_head),
                       st.binary(max_size=512).map(lambda b: vmdk_head[:512] + b))


@settings(max_examples=examples(1000), **SETTINGS)
@given(data=st.data())
def test_fuzz_nfc_requests(nfc_target, error_log, data):
    method = data.draw(nfc_methods)
    path = data.draw(nfc_target.path_strategy)
    headers: dict[str, str | None] = dict(data.draw(nfc_header_values))
    body = data.draw(nfc_bodies)
    if headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in headers:
        body = chunked(body or b"")  # framed by its chunks: no Content-Length
        headers["Content-Length"] = None
    elif headers.get("Transfer-Encoding") or "Content-Length" in headers:
        body = None  # an unframed or badly framed body is refused before it is read: send none
    if body is not None and not body and data.draw(st.booleans()):
        headers["Expect"] = "100-continue"  # only without a body: a refusal must not race a body in flight
    reply = nfc_target.wire.request(method, path, headers, body)
    what = f"{method} {path} {headers} body={None if body is None else len(body)}"
    # RFC 9110: an unrecognised method is 501 -- with a message, and the connection stays coherent
    check(reply, error_log, what, allow_501=method not in ("GET", "HEAD", "POST", "PUT"))
    nfc_target.wire.normal()
