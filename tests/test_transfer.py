"""The NFC HTTP client against a real local TLS server (no mocks).

The server is ``http.server`` over ``ssl`` with a throwaway certificate made
here with ``cryptography``; it records what arrived (method, headers, body
length and SHA-1, which TCP connection) so the tests check the wire, not the
client's idea of it.
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import io
import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nfclease.transfer import (
    STREAM_VMDK,
    BodyLengthError,
    HashingBody,
    NfcClient,
    NfcHttpError,
    NfcTransportError,
    make_ssl_context,
    replace_star_host,
)


# -- certificates -------------------------------------------------------------

@dataclass
class Cert:
    certfile: Path
    keyfile: Path
    der: bytes

    @property
    def sha1(self) -> str:
        return ":".join(f"{b:02X}" for b in hashlib.sha1(self.der).digest())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.der).hexdigest()


def make_cert(directory: Path, name: str = "server") -> Cert:
    """A self-signed CA-capable certificate for 127.0.0.1 / ::1 / localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"nfclease test {name}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile = directory / f"{name}.pem"
    keyfile = directory / f"{name}.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return Cert(certfile, keyfile, cert.public_bytes(serialization.Encoding.DER))


# -- the recording NFC-like server ---------------------------------------------

@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    connection: tuple[str, int]
    body_bytes: int = 0
    body_sha1: str = ""


@dataclass
class Server:
    port: int
    cert: Cert
    seen: list[Seen] = field(default_factory=list)
    continues_sent: int = 0

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"


def _payload(n: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(n))


def _make_handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            self.request.settimeout(10)

        def handle_expect_100(self) -> bool:
            if self.path.startswith("/nfc/refuse-expect"):
                self._reply(403, b"lease is not ready")
                self.close_connection = True
                return False
            if self.path.startswith("/nfc/silent-expect"):
                return True  # never says 100: the client must send after its wait
            server.continues_sent += 1
            return super().handle_expect_100()

        def _record(self) -> Seen:
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                        self.client_address)
            server.seen.append(seen)
            return seen

        def _read_body(self, seen: Seen, limit: int | None = None) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            todo = length if limit is None else min(limit, length)
            digest = hashlib.sha1()
            while todo:
                block = self.rfile.read(min(todo, 65536))
                if not block:
                    break
                digest.update(block)
                seen.body_bytes += len(block)
                todo -= len(block)
            seen.body_sha1 = digest.hexdigest()

        def _reply(self, status: int, body: bytes = b"", close: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            seen = self._record()
            if self.path.startswith("/nfc/early-400"):
                self._read_body(seen, limit=512)
                self._reply(400, b"not a streamOptimized VMDK: bad magic", close=True)
                return
            self._read_body(seen)
            if self.path.startswith("/nfc/gone"):
                self._reply(404, b"lease ticket not found")
            elif self.headers.get("Content-Type") != STREAM_VMDK:
                self._reply(415, b"wrong content type")
            else:
                self._reply(200)

        def do_PUT(self) -> None:
            seen = self._record()
            self._read_body(seen)
            if self.headers.get("Overwrite") != "t":
                self._reply(412, b"missing Overwrite: t")
            else:
                self._reply(201, b"created")

        def do_GET(self) -> None:
            self._record()
            if self.path.startswith("/nfc/missing"):
                self._reply(404, b"no such device")
                return
            size = int(self.path.rsplit("/", 1)[1])
            close = self.path.startswith("/nfc/close/")
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            block = _payload(65536)
            left = size
            while left:
                piece = block[: min(left, len(block))]
                self.wfile.write(piece)
                left -= len(piece)

    return Handler


class _TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(("127.0.0.1", 0), handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        # Handshake in the handler thread, so a failing client cannot stall accept().
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused handshakes and dropped clients are part of the tests


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cert, Cert]:
    directory = tmp_path_factory.mktemp("certs")
    return make_cert(directory, "trusted"), make_cert(directory, "other")


@pytest.fixture
def server(certs: tuple[Cert, Cert]) -> Iterator[Server]:
    cert = certs[0]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.certfile, cert.keyfile)
    state = Server(0, cert)
    httpd = _TLSServer(_make_handler(state), context)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def client(server: Server) -> Iterator[NfcClient]:
    with NfcClient(make_ssl_context(cafile=str(server.cert.certfile)), server.hostport, timeout=10) as c:
        yield c


# -- tests ----------------------------------------------------------------------

def test_disk_upload_posts_stream_vmdk_with_content_length(server: Server, client: NfcClient) -> None:
    data = _payload(300_000)
    result = client.upload_disk(server.url("/nfc/ticket/disk-0.vmdk"), iter([data[:1000], data[1000:]]), len(data))
    assert result.status == 200
    assert result.bytes == len(data)
    assert result.sha1 == hashlib.sha1(data).hexdigest()
    (seen,) = server.seen
    assert seen.method == "POST"
    assert seen.headers["content-type"] == "application/x-vnd.vmware-streamVmdk"
    assert seen.headers["content-length"] == str(len(data))
    assert "transfer-encoding" not in seen.headers
    assert seen.body_bytes == len(data) and seen.body_sha1 == result.sha1


def test_file_upload_puts_with_overwrite(server: Server, client: NfcClient) -> None:
    data = _payload(8192)
    result = client.upload_file(server.url("/nfc/ticket/nvram"), io.BytesIO(data), len(data), sha256=True)
    assert result.status == 201
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    (seen,) = server.seen
    assert seen.method == "PUT"
    assert seen.headers["overwrite"] == "t"
    assert seen.headers["content-length"] == "8192"
    assert seen.body_sha1 == hashlib.sha1(data).hexdigest()


def test_keep_alive_reuses_one_connection(server: Server, client: NfcClient) -> None:
    for _ in range(3):
        client.upload_disk(server.url("/nfc/t/disk-0.vmdk"), b"x" * 1000)
        client.download(server.url("/nfc/get/70000"))
    assert len(server.seen) == 6
    assert len({s.connection for s in server.seen}) == 1
    assert client.connections_opened == 1


def test_connection_close_is_honoured(server: Server, client: NfcClient) -> None:
    client.download(server.url("/nfc/close/10"))
    client.download(server.url("/nfc/get/10"))
    assert len({s.connection for s in server.seen}) == 2


def test_download_streams_and_hashes(server: Server, client: NfcClient) -> None:
    chunks: list[int] = []
    result = client.download(server.url("/nfc/get/1000000"), sha256=True, sink=lambda c: chunks.append(len(c)))
    expected = (_payload(65536) * 16)[:1000000]
    assert result.status == 200
    assert result.bytes == 1000000 == sum(chunks)
    assert max(chunks) <= client.chunk_size
    assert result.sha1 == hashlib.sha1(expected).hexdigest()
    assert result.sha256 == hashlib.sha256(expected).hexdigest()
    assert server.seen[0].method == "GET"


def test_expect_100_continue(server: Server, client: NfcClient) -> None:
    data = _payload(50_000)
    result = client.upload_disk(server.url("/nfc/t/disk-0.vmdk"), data, expect_continue=True)
    assert result.status == 200 and result.sha1 == hashlib.sha1(data).hexdigest()
    assert server.seen[0].headers["expect"] == "100-continue"
    assert server.continues_sent == 1
    # the connection stays usable after an interim response
    client.download(server.url("/nfc/get/10"))
    assert len({s.connection for s in server.seen}) == 1


def test_expect_refused_before_body_is_not_sent(server: Server, client: NfcClient) -> None:
    with pytest.raises(NfcHttpError) as info:
        client.upload_disk(server.url("/nfc/refuse-expect/disk-0.vmdk"), _payload(10_000), expect_continue=True)
    assert info.value.status == 403
    assert info.value.message == "lease is not ready"
    client.download(server.url("/nfc/get/10"))  # a fresh connection works afterwards


def test_expect_without_interim_response_sends_after_wait(server: Server, certs: tuple[Cert, Cert]) -> None:
    with NfcClient(make_ssl_context(cafile=str(server.cert.certfile)), server.hostport,
                   continue_timeout=0.2, timeout=10) as c:
        result = c.upload_disk(server.url("/nfc/silent-expect/disk-0.vmdk"), _payload(5000), expect_continue=True)
    assert result.status == 200
    assert server.seen[0].body_bytes == 5000


def test_error_status_raises_with_server_message(server: Server, client: NfcClient) -> None:
    with pytest.raises(NfcHttpError) as info:
        client.download(server.url("/nfc/missing/disk-0.vmdk"))
    assert info.value.status == 404 and info.value.message == "no such device"
    with pytest.raises(NfcHttpError) as info:
        client.upload_disk(server.url("/nfc/gone/disk-0.vmdk"), b"abc")
    assert info.value.status == 404 and "not found" in info.value.message
    # error responses with a complete body keep the connection alive
    client.download(server.url("/nfc/get/10"))
    assert len({s.connection for s in server.seen}) == 1


def test_early_refusal_mid_body_reports_the_status(server: Server, client: NfcClient) -> None:
    with pytest.raises((NfcHttpError, NfcTransportError)) as info:
        client.upload_disk(server.url("/nfc/early-400/disk-0.vmdk"), iter([_payload(65536)] * 64), 65536 * 64)
    if isinstance(info.value, NfcHttpError):
        assert info.value.status == 400 and "bad magic" in info.value.message
    else:  # the kernel may reset before the answer is readable: then the outcome is unknown
        assert info.value.request_sent
    client.download(server.url("/nfc/get/10"))


def test_star_host_is_replaced(server: Server, client: NfcClient) -> None:
    client.upload_disk("https://*/nfc/ticket/disk-0.vmdk", b"abc")
    assert server.seen[0].path == "/nfc/ticket/disk-0.vmdk"
    assert replace_star_host("https://*/nfc/a/b", "10.0.0.1:8443") == "https://10.0.0.1:8443/nfc/a/b"
    assert replace_star_host("https://*:902/nfc/a", "esx.example:443") == "https://esx.example:902/nfc/a"
    assert replace_star_host("https://*/nfc/a", "[::1]:9000") == "https://[::1]:9000/nfc/a"
    assert replace_star_host("https://esx1/nfc/a", "vc:443") == "https://esx1/nfc/a"
    with pytest.raises(ValueError):
        replace_star_host("https://*/x", None)


def test_untrusted_certificate_is_refused_unless_insecure(server: Server, certs: tuple[Cert, Cert]) -> None:
    other = certs[1]
    with NfcClient(make_ssl_context(cafile=str(other.certfile)), server.hostport, timeout=10) as c:
        with pytest.raises(NfcTransportError) as info:
            c.download(server.url("/nfc/get/10"))
    assert isinstance(info.value.cause, ssl.SSLCertVerificationError)
    assert info.value.fault == "net.SSLCertVerificationError"
    assert info.value.request_sent is False
    assert server.seen == []
    with NfcClient(make_ssl_context(insecure=True), server.hostport, timeout=10) as c:
        assert c.download(server.url("/nfc/get/10")).status == 200


def test_system_store_does_not_trust_a_throwaway_cert(server: Server) -> None:
    with NfcClient(make_ssl_context(), server.hostport, timeout=10) as c:
        with pytest.raises(NfcTransportError):
            c.download(server.url("/nfc/get/10"))


@pytest.mark.parametrize("which", ["sha1", "sha256"])
def test_thumbprint_pinning(server: Server, which: str) -> None:
    pin = server.cert.sha1 if which == "sha1" else server.cert.sha256
    with NfcClient(make_ssl_context(thumbprint=pin), server.hostport, timeout=10) as c:
        assert c.download(server.url("/nfc/get/10")).status == 200
    wrong = "AA:" * 19 + "AA"
    with NfcClient(make_ssl_context(thumbprint=wrong), server.hostport, timeout=10) as c:
        with pytest.raises(NfcTransportError) as info:
            c.download(server.url("/nfc/get/10"))
    assert isinstance(info.value.cause, ssl.SSLCertVerificationError)


def test_body_length_mismatch_is_refused(server: Server, client: NfcClient) -> None:
    with pytest.raises(BodyLengthError):
        client.upload_disk(server.url("/nfc/t/disk-0.vmdk"), iter([b"a" * 10]), 20)
    with pytest.raises(BodyLengthError):
        client.upload_disk(server.url("/nfc/t/disk-0.vmdk"), iter([b"a" * 30]), 20)
    with pytest.raises(ValueError):
        client.upload_disk(server.url("/nfc/t/disk-0.vmdk"), iter([b"a"]))  # no length


def test_connection_refused_is_a_transport_error_before_sending() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with NfcClient(make_ssl_context(insecure=True), f"127.0.0.1:{port}", timeout=5) as c:
        with pytest.raises(NfcTransportError) as info:
            c.upload_disk("https://*/nfc/x/disk-0.vmdk", b"abc")
    assert info.value.fault == "net.ConnectionRefusedError"
    assert info.value.request_sent is False


def test_hashing_body_over_file_and_iterator() -> None:
    data = _payload(1_000_001)
    for source in (io.BytesIO(data), iter([data[:5], data[5:]]), data):
        body = HashingBody(source, sha256=True, chunk_size=4096)
        assert b"".join(body) == data
        assert body.bytes == len(data)
        assert body.sha1 == hashlib.sha1(data).hexdigest()
        assert body.sha256 == hashlib.sha256(data).hexdigest()


def test_device_thumbprint_pins_the_nfc_host(server: Server, certs: tuple[Cert, Cert]) -> None:
    """A pinned target trusts each NFC host by the sslThumbprint the lease announced."""
    untrusting = make_ssl_context(thumbprint=certs[1].sha1)  # the SOAP pin: some other certificate
    with NfcClient(untrusting, server.hostport, timeout=10, device_pins=True) as c:
        assert c.download(server.url("/nfc/get/10"), thumbprint=server.cert.sha1).status == 200
        with pytest.raises(NfcTransportError):
            c.download(server.url("/nfc/get/10"), thumbprint=certs[1].sha1)
        with pytest.raises(NfcTransportError):
            c.download(server.url("/nfc/get/10"))  # no announced thumbprint: the client's own policy
    with NfcClient(make_ssl_context(cafile=str(certs[1].certfile)), server.hostport, timeout=10) as c:
        with pytest.raises(NfcTransportError):  # without device_pins an announced thumbprint grants nothing
            c.download(server.url("/nfc/get/10"), thumbprint=server.cert.sha1)
