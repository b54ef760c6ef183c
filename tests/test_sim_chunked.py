"""Request bodies in ``Transfer-Encoding: chunked`` (govmomi sends every SOAP body so, curl a piped upload).

Good bodies are served on ``/sdk`` and NFC uploads like Content-Length ones;
malformed ones (bad size line, missing final chunk, oversized) get a 4xx with
a message, and the next request, on a new connection, is served.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import subprocess
import time
from typing import Iterator

import pytest
from pyVmomi import vim

from conftest import (
    STREAM_VMDK, Reply, chunked, connect, envelope, nfc_request, nfc_url, soap_fault, start_import,
    upload_disk, wait_ready,
)
from nfclease.sim import SimConfig, Simulator
from nfclease.sim.server import MAX_SOAP_BODY
from nfclease.vmdk import StreamOptimizedDisk

ABOUT = envelope("RetrieveServiceContent", "ServiceInstance", "ServiceInstance")


@pytest.fixture(scope="module")
def chunk_sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(lease_timeout=600, init_seconds=0.0, request_timeout=1.0)) as sim:
        yield sim


@pytest.fixture(scope="module")
def plain_sim() -> Iterator[Simulator]:
    """Without TLS, so a client can half-close (end its body) and still read the answer."""
    with Simulator(SimConfig(tls=False, request_timeout=5.0)) as sim:
        yield sim


def raw_connection(sim: Simulator) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", sim.port), timeout=15)
    if not sim.url.startswith("https:"):
        return sock
    context = ssl.create_default_context(cafile=sim.cafile)
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def soap_head(path: str = "/sdk", extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
            f'SOAPAction: "urn:vim25/9.0.0.0"\r\nTransfer-Encoding: chunked\r\n{extra}\r\n').encode()


def read_reply(sock: socket.socket, limit: float = 15.0) -> Reply:
    """One HTTP response from a raw socket (bounded by ``limit`` seconds)."""
    data, deadline = b"", time.monotonic() + limit
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), f"no HTTP response: {data[:200]!r}"
    lines = head.decode("iso-8859-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length and time.monotonic() < deadline:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return Reply(int(lines[0].split()[1]), body[:length], headers)


def served_after(sim: Simulator) -> None:
    """A fresh connection gets a normal chunked SOAP call answered."""
    with raw_connection(sim) as sock:
        sock.sendall(soap_head() + chunked(ABOUT, 100))
        reply = read_reply(sock)
    assert reply.status == 200 and b"RetrieveServiceContentResponse" in reply.body, reply.body[:300]


# -- good bodies ---------------------------------------------------------------------------------------------

def test_chunked_soap_calls_share_a_keepalive_connection(chunk_sim: Simulator) -> None:
    with raw_connection(chunk_sim) as sock:
        for size, extension in ((7, ""), (len(ABOUT), ";name=value"), (1, "")):
            sock.sendall(soap_head() + chunked(ABOUT, size, extension))
            reply = read_reply(sock)
            assert reply.status == 200, reply.body[:300]
            assert b"RetrieveServiceContentResponse" in reply.body
            assert reply.headers.get("connection", "") != "close"


def test_chunked_soap_with_expect_100_continue_and_trailers(chunk_sim: Simulator) -> None:
    with raw_connection(chunk_sim) as sock:
        sock.sendall(soap_head(extra="Expect: 100-continue\r\n"))
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        body = chunked(ABOUT, 50)[:-2] + b"X-Trailer: yes\r\n\r\n"
        sock.sendall(body)
        reply = read_reply(sock)
        assert reply.status == 200 and b"RetrieveServiceContentResponse" in reply.body


def test_chunked_disk_upload_stores_every_byte(chunk_sim: Simulator) -> None:
    si = connect(chunk_sim)
    imp = start_import(si, [1 << 20])
    info = wait_ready(imp.lease)
    disk = StreamOptimizedDisk(1 << 20, "random")
    data = b"".join(disk.iter_chunks())
    url = info.deviceUrl[0].url
    reply = nfc_request(chunk_sim, "POST", url, chunked(data, 65521),
                        {"Content-Type": STREAM_VMDK, "Content-Length": None, "Transfer-Encoding": "chunked"})
    assert reply.status == 200, reply.body
    assert f"received {len(data)} bytes".encode() in reply.body
    manifest = imp.lease.HttpNfcLeaseGetManifest()
    assert manifest[0].sha1 == hashlib.sha1(data).hexdigest()
    assert manifest[0].size == len(data)
    imp.lease.HttpNfcLeaseComplete()


# -- malformed bodies -----------------------------------------------------------------------------------------

MALFORMED = {
    "bad size line": (b"zz\r\n", 400, b"bad chunk-size line"),
    "size line with 0x": (b"0x10\r\n", 400, b"bad chunk-size line"),
    "negative size": (b"-5\r\nhello\r\n0\r\n\r\n", 400, b"bad chunk-size line"),
    "chunk longer than its size": (b"3\r\nhello\r\n0\r\n\r\n", 400, b"longer than its size line"),
    "size beyond 64 bits": (b"1" + b"0" * 16 + b"\r\n", 413, b"does not fit in 64 bits"),
    "size line too long": (b"1;" + b"x" * 5000 + b"\r\n", 400, b"longer than 4096"),
    "oversized soap body": (b"%x\r\n" % (MAX_SOAP_BODY + 1), 413, b"exceeds the limit"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_chunked_soap_body_is_4xx_and_the_next_request_is_served(chunk_sim: Simulator,
                                                                           case: str) -> None:
    body, status, message = MALFORMED[case]
    with raw_connection(chunk_sim) as sock:
        sock.sendall(soap_head() + body)
        reply = read_reply(sock)
    assert reply.status == status, (reply.status, reply.body[:300])
    kind, text = soap_fault(reply)
    assert kind == "InvalidRequest" and message in text.encode(), text
    assert reply.headers.get("connection") == "close"
    served_after(chunk_sim)


def test_missing_final_chunk_then_silence_is_408(chunk_sim: Simulator) -> None:
    with raw_connection(chunk_sim) as sock:
        sock.sendall(soap_head() + b"5\r\n<soap\r\n")  # ...and nothing more
        reply = read_reply(sock)
    assert reply.status == 408
    assert b"no final 0-size chunk" in soap_fault(reply)[1].encode()
    served_after(chunk_sim)


def test_missing_final_chunk_then_end_of_body_is_400(plain_sim: Simulator) -> None:
    with raw_connection(plain_sim) as sock:
        sock.sendall(soap_head() + b"5\r\n<soap\r\n")
        sock.shutdown(socket.SHUT_WR)  # the body ends without its final chunk
        reply = read_reply(sock)
    assert reply.status == 400
    assert b"final 0-size chunk is missing" in soap_fault(reply)[1].encode()
    served_after(plain_sim)


@pytest.mark.parametrize("case", ["bad size line", "chunk longer than its size", "missing final chunk"])
def test_malformed_chunked_upload_is_4xx_and_a_retry_succeeds(chunk_sim: Simulator, case: str) -> None:
    si = connect(chunk_sim)
    imp = start_import(si, [1 << 20])
    url = nfc_url(chunk_sim, wait_ready(imp.lease).deviceUrl[0].url)
    disk = StreamOptimizedDisk(1 << 20, "sequence")
    good = chunked(b"".join(disk.iter_chunks()), 4096)
    broken = {"bad size line": good[:9000] + b"\r\nnot-hex\r\n",
              "chunk longer than its size": b"2\r\n" + good[2 + 3 + 2:4000],
              "missing final chunk": good[:20000]}[case]
    path = "/" + url.split("/", 3)[3]
    with raw_connection(chunk_sim) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {STREAM_VMDK}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode() + broken)
        reply = read_reply(sock)
    assert reply.status in (400, 408), (reply.status, reply.body)
    assert b"chunk" in reply.body
    assert imp.lease.state == "ready"
    assert upload_disk(chunk_sim, url, disk).status == 200  # the next request, on a new connection
    imp.lease.HttpNfcLeaseComplete()


def test_transfer_encoding_beside_content_length_is_refused(chunk_sim: Simulator) -> None:
    with raw_connection(chunk_sim) as sock:
        sock.sendall(soap_head(extra=f"Content-Length: {len(ABOUT)}\r\n") + ABOUT)
        reply = read_reply(sock)
    assert reply.status == 400 and b"both Transfer-Encoding and Content-Length" in reply.body
    served_after(chunk_sim)


# -- curl ------------------------------------------------------------------------------------------------------

CURL = shutil.which("curl")


def curl(sim: Simulator, url: str, stdin: bytes, *args: str) -> tuple[int, bytes]:
    """curl reading its body from a pipe (so it sends it chunked); returns (status, body)."""
    assert CURL is not None
    done = subprocess.run([CURL, "-sS", "--noproxy", "*", "--cacert", sim.cafile, "--max-time", "60",
                           "-w", "\n%{http_code}", *args, url],
                          input=stdin, capture_output=True, timeout=90, check=False)
    body, _, status = done.stdout.rpartition(b"\n")
    assert done.returncode == 0, done.stderr
    return int(status), body


@pytest.mark.skipif(CURL is None, reason="curl is not installed (Debian package curl)")
def test_curl_sends_chunked_soap_and_uploads(chunk_sim: Simulator) -> None:
    status, body = curl(chunk_sim, chunk_sim.url, ABOUT, "-H", "Content-Type: text/xml",
                        "-H", "Transfer-Encoding: chunked", "--data-binary", "@-")
    assert status == 200 and b"RetrieveServiceContentResponse" in body
    si = connect(chunk_sim)
    imp = start_import(si, [1 << 20])
    url = nfc_url(chunk_sim, wait_ready(imp.lease).deviceUrl[0].url)
    data = b"".join(StreamOptimizedDisk(1 << 20, "random").iter_chunks())
    status, body = curl(chunk_sim, url, data, "-X", "POST", "-H", f"Content-Type: {STREAM_VMDK}", "-T", "-")
    assert status == 200, body
    assert imp.lease.HttpNfcLeaseGetManifest()[0].sha1 == hashlib.sha1(data).hexdigest()
    imp.lease.HttpNfcLeaseComplete()
    # a malformed body by raw socket, then curl on a new connection is served
    with raw_connection(chunk_sim) as sock:
        sock.sendall(soap_head() + b"g\r\n")
        assert read_reply(sock).status == 400
    status, body = curl(chunk_sim, chunk_sim.url, ABOUT, "-H", "Content-Type: text/xml",
                        "-H", "Transfer-Encoding: chunked", "--data-binary", "@-")
    assert status == 200
    assert isinstance(si.content.about, vim.AboutInfo)
