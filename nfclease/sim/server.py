"""HTTPS front of the simulator: vim25 SOAP on ``/sdk``, NFC transfers on ``/nfc/``.

One HTTP/1.1 server serves both, as vCenter does on 443: keep-alive,
``Expect: 100-continue`` (answered only after the request is checked, so a
refused upload never sends its body), exact status codes with a message in
the body, and ``Content-Length`` enforced on uploads. TLS is negotiated in
the connection's own thread so a slow handshake never blocks ``accept``.
"""

from __future__ import annotations

import functools
import json
import logging
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from http.cookies import CookieError, SimpleCookie
from typing import Any

from pyVmomi import VmomiSupport, vmodl

from nfclease.sim.chunked import ChunkedBodyError, ChunkedReader
from nfclease.sim.hooks import CONTROL_PATH
from nfclease.sim.http1 import CHUNKED, LINGER_BYTES, MAX_SOAP_BODY, Http1Handler
from nfclease.sim.leases import Device, Lease
from nfclease.sim.nfc import NfcError
from nfclease.sim.service import Service
from nfclease.sim.soap import SoapError, decode_request, encode_fault, encode_response, prior_versions

log = logging.getLogger("nfclease.sim")

COOKIE = "vmware_soap_session"


# Per-call header parsing that is a pure function of the header's text, cached
# (bounded: LRU, short values only). SimpleCookie alone cost ~17 us of a ~200 us
# SOAP call, the version scan ~6 us.
@functools.lru_cache(maxsize=1024)
def _cookie_session(raw: str) -> str | None:
    """The ``vmware_soap_session`` value of a Cookie header, or None."""
    try:
        cookie = SimpleCookie(raw)
    except CookieError:
        return None
    morsel = cookie.get(COOKIE)
    return morsel.value.strip('"') if morsel else None


@functools.lru_cache(maxsize=64)
def _client_version(action: str, server_version: str) -> str:
    """pyVmomi's name of the version a SOAPAction (``urn:vim25/6.7``) names, capped at ours."""
    if action.startswith("urn:vim25/"):
        wanted = action.split("/", 1)[1]
        for name, vid in VmomiSupport.versionIdMap.items():
            if vid == wanted and VmomiSupport.serviceNsMap.get(name) == "vim25":
                if VmomiSupport.IsChildVersion(server_version, name):
                    return name
    return server_version


class SimHTTPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Threaded TCP server that wraps each accepted socket in TLS in its own thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], service: Service, context: ssl.SSLContext | None,
                 version: str) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.service = service
        self.tls = context
        self.version = version
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, NfcRequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops its connection is routine under load: log it, no traceback."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, TimeoutError, socket.timeout)):
            log.info("connection from %s ended: %r", client_address, exc)
        else:
            log.error("request from %s failed:\n%s", client_address, traceback.format_exc())

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Serve one connection, tracked in :attr:`connections` as the socket actually served.

        After the TLS handshake the raw socket no longer owns its descriptor:
        the set must hold the TLS socket, or the entry is never removed and
        :meth:`close_connections` cannot end the connection.
        """
        conn = request
        with self.connections_lock:
            self.connections.add(conn)
        try:
            if self.tls is not None:
                conn.settimeout(30)
                try:
                    wrapped = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    log.debug("TLS handshake with %s failed: %s", client_address, exc)
                    return
                with self.connections_lock:
                    self.connections.discard(conn)
                    self.connections.add(wrapped)
                conn = wrapped
                conn.settimeout(None)
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self.connections_lock:
                self.connections.discard(conn)

    def close_connections(self) -> None:
        with self.connections_lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class NfcRequestHandler(Http1Handler):
    """The simulator's routes: SOAP on ``/sdk``, NFC under ``/nfc/``, the client lab's control path."""

    server: SimHTTPServer

    status_sent: int | None = None  # the status of the answer sent, if any
    answered_at: float | None = None  # when that answer went out
    body: Any = None  # what an upload read its body from (it counts the bytes)

    def request_timeout(self) -> float:
        return self.server.service.config.request_timeout

    def handle_expect_100(self) -> bool:
        """Check an upload before inviting its body; refuse early with the real status."""
        if self.path.startswith("/nfc/"):
            try:
                self._nfc_target(self.command)
                self._content_length(required=True)
            except NfcError as exc:
                self.close_connection = True
                self._error(exc.status, str(exc))
                return False
            if self.server.service.config.deviates("expect_continue_final_first"):
                self.close_connection = True  # DELIBERATE DEVIATION: 200 before the body, which is never read
                self._error(200, "received")
                return False
        return super().handle_expect_100()

    # ------------------------------------------------------------------ routing
    def do_GET(self) -> None:
        self._drain_or_close()  # a body on GET/HEAD is legal; unread, it would be parsed as the next request
        path = self.path.split("?", 1)[0]
        if path in ("/sdk/vimServiceVersions.xml", "/sdk/vimServiceVersions.xml/"):
            self._send(200, self._service_versions(), "text/xml; charset=utf-8")
        elif path.startswith("/nfc/"):
            self._nfc(self._nfc_download)
        elif path == CONTROL_PATH:
            self._control()
        elif path in ("/", "/sdk", "/sdk/"):
            self._error(200 if path == "/" else 405,
                        "nfclease simulator: SOAP is POST /sdk; transfers are under /nfc/",
                        headers={"Allow": "POST"} if path != "/" else None)
        else:
            self._error(404, f"no such resource: {path}")

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/sdk", "/sdk/"):
            self._soap()
        elif path.startswith("/nfc/"):
            self._nfc(self._nfc_upload)
        elif path == CONTROL_PATH:
            self._control()
        else:
            self._drain_or_close()
            self._error(404, f"no such resource: {path}")

    def do_PUT(self) -> None:
        if self.path.startswith("/nfc/"):
            self._nfc(self._nfc_upload)
        elif self.path.split("?", 1)[0] == CONTROL_PATH:
            self._control()
        else:
            self._drain_or_close()
            self._error(405, "PUT is for non-disk files under /nfc/", headers={"Allow": "GET, POST"})

    def _control(self) -> None:
        """``/nfclease/scenario``: switch the client scenario without SOAP (loopback only, as the server)."""
        try:
            length = self._content_length(required=False) or 0
        except NfcError as exc:
            self.close_connection = True
            self._error(exc.status, str(exc))
            return
        body = self.rfile.read(length) if 0 <= length <= 4096 else b""
        if not 0 <= length <= 4096:  # chunked or big: not a scenario name
            self.close_connection = True
        status, answer = self.server.service.leases.hooks.control(self.command, body)
        self._send(status, (json.dumps(answer, indent=1) + "\n").encode(), "application/json")

    # ------------------------------------------------------------------ SOAP
    def _service_versions(self) -> bytes:
        version = self.server.version
        current = VmomiSupport.versionIdMap[version]
        prior = "".join(f"<version>{v}</version>" for v in prior_versions(version))
        return (f'<?xml version="1.0" encoding="UTF-8" ?>\n<namespaces version="1.0"><namespace>'
                f"<name>urn:vim25</name><version>{current}</version>"
                f"<priorVersions>{prior}</priorVersions></namespace></namespaces>\n").encode()

    def _soap_version(self) -> str:
        """The version the client speaks (SOAPAction ``urn:vim25/6.7``), capped at ours."""
        action = (self.headers.get("SOAPAction") or "").strip('"')
        if len(action) <= 64:  # every call of a client sends the same one: look it up once
            return _client_version(action, self.server.version)
        return _client_version.__wrapped__(action, self.server.version)

    def _soap(self) -> None:
        version = self._soap_version()
        try:
            length = self._content_length(required=True)
        except NfcError as exc:
            self.close_connection = True
            self._soap_fault(vmodl.fault.InvalidRequest(), str(exc), version, status=exc.status)
            return
        if length == CHUNKED:
            try:
                body = ChunkedReader(self.rfile, limit=MAX_SOAP_BODY).read()
            except ChunkedBodyError as exc:
                self._refuse_chunked(exc, functools.partial(self._soap_fault, vmodl.fault.InvalidRequest(),
                                                            version=version))
                return
        elif length > MAX_SOAP_BODY:
            self.close_connection = True
            self._soap_fault(vmodl.fault.InvalidRequest(),
                             f"request body of {length} bytes exceeds the limit of {MAX_SOAP_BODY}",
                             version, status=413)
            self.unread = length
            return
        else:
            body = self.rfile.read(length)
            if len(body) < length:
                self.close_connection = True
                return
        delay = self.server.service.config.delay
        if delay:
            time.sleep(delay / 1000)
        session_key = self._session_cookie()
        hooks = self.server.service.leases.hooks
        request = None
        started = time.monotonic()
        try:
            request = decode_request(body, version)
            time.sleep(hooks.soap_pause(request.method))
            result, result_type, new_session = self.server.service.dispatch(request, session_key)
            payload = encode_response(request.method, result, result_type, version)
        except SoapError as exc:
            if request is not None:
                hooks.soap_done(request.method, request.this, request.args, session_key, None, exc.fault,
                                str(exc), started, time.monotonic())
            message = str(exc)
            if request is not None and request.method.startswith("HttpNfcLease") and \
                    self.server.service.config.deviates("fault_message_missing"):
                message = exc.fault.msg = ""  # DELIBERATE DEVIATION: a fault without a message
            self._soap_fault(exc.fault, message, version)
            return
        except Exception as exc:  # a bug in the simulator: report it as a fault, keep serving
            log.error("SOAP handler failed:\n%s", traceback.format_exc())
            self._soap_fault(vmodl.fault.SystemError(reason=repr(exc)),
                             f"internal error in the simulator: {exc!r}", version)
            return
        hooks.soap_done(request.method, request.this, request.args, session_key, result, None, None, started,
                        time.monotonic())
        headers = {}
        if new_session is not None:
            headers["Set-Cookie"] = f'{COOKIE}="{new_session.key}"; Path=/; HttpOnly; Secure'
        self._send(200, payload, "text/xml; charset=utf-8", headers)

    def _soap_fault(self, fault: Any, message: str, version: str, status: int = 500) -> None:
        self._send(status, encode_fault(fault, message, version), "text/xml; charset=utf-8")

    def _refuse_chunked(self, exc: ChunkedBodyError, answer: Any) -> None:
        """Answer a chunked body that cannot be read (``answer(message, status=...)``), then close.

        What follows a broken chunk is not a request; an oversized body is
        drained a while first (lingering close) so the refusal is read.
        """
        self.close_connection = True
        if exc.status == 413:
            self.unread = LINGER_BYTES
        try:
            answer(str(exc), status=exc.status)
        except OSError:
            pass  # the client is gone (e.g. it closed inside the body): nobody to tell

    def _session_cookie(self) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        if len(raw) <= 512:  # a session sends the same header on every call: parse it once
            return _cookie_session(raw)
        return _cookie_session.__wrapped__(raw)

    # ------------------------------------------------------------------ NFC
    def _nfc_target(self, method: str) -> tuple[Lease, Device]:
        parts = self.path.split("?", 1)[0].split("/")
        if len(parts) != 4 or not parts[2] or not parts[3]:
            raise NfcError(404, "NFC URLs look like /nfc/<ticket>/<file>")
        overwrite = (self.headers.get("Overwrite") or "").lower() == "t"
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        return self.server.service.nfc.target(parts[2], parts[3], method, overwrite, content_type)

    def _nfc_upload(self) -> None:
        try:
            lease, device = self._nfc_target(self.command)
            length = self._content_length(required=True)
        except NfcError as exc:
            self._drain_or_close()
            self._error(exc.status, str(exc))
            return
        existed = device.complete
        nfc = self.server.service.nfc
        hooks = self.server.service.leases.hooks
        fault = hooks.upload_fault(lease, device)
        if fault in ("500", "503"):  # a client scenario: the upload is refused before its body
            self._drain_or_close()
            self._error(int(fault), f"injected by the simulator: upload refused with {fault}",
                        headers={"Retry-After": "1"} if fault == "503" else None)
            return
        body = self.rfile if length != CHUNKED else ChunkedReader(self.rfile)
        self.body = hooks.upload_body(lease, device, body, None if length == CHUNKED else length, fault)
        try:
            received = nfc.receive(lease, device, self.body, None if length == CHUNKED else length)
        except ChunkedBodyError as exc:
            log.info("chunked upload of %s refused: %s", device.name, exc)
            self._refuse_chunked(exc, lambda message, status: self._error(status, message))
            return
        except NfcError as exc:
            self.close_connection = True
            self._error(exc.status, str(exc))
            return
        except OSError as exc:
            self.close_connection = True
            log.info("upload of %s broken: %s", device.name, exc)
            return
        try:
            nfc.check_still_ready(lease)
        except NfcError as exc:
            self._error(exc.status, str(exc))
            return
        status = 201 if (self.command == "PUT" and not existed) else 200
        if lease.deviation("upload_status_204"):
            self._send(204, b"")  # DELIBERATE DEVIATION: no 200/201 for a stored upload
            return
        self._error(status, f"received {received} bytes for {device.name}")

    def _nfc(self, action: Any) -> None:
        """Run an NFC request and tell the hooks how it ended (the recorder writes it down)."""
        self.answer, self.body, self.status_sent, self.answered_at = None, None, None, None
        started = time.monotonic()
        try:
            action()
        finally:
            self._nfc_done(started)

    def _nfc_done(self, started: float) -> None:
        parts = self.path.split("?", 1)[0].split("/")
        service = self.server.service
        with service.world.lock:
            lease = service.leases.lease_for(parts[2]) if len(parts) == 4 else None
            device = next((d for d in lease.devices if d.name == parts[3]), None) if lease else None
        if lease is None or device is None:
            return
        status, message = self.answer or (self.status_sent, None)
        call = "Download" if self.command in ("GET", "HEAD") else "Upload"
        headers = {"method": self.command, "contentType": self.headers.get("Content-Type"),
                   "contentLength": self.headers.get("Content-Length"),
                   "transferEncoding": self.headers.get("Transfer-Encoding"),
                   "overwrite": self.headers.get("Overwrite")}
        moved = getattr(self.body, "count", None)
        if moved is None and call == "Download" and status == 200:
            moved = device.bytes_transferred
        value = {"bytes": moved, "injected": getattr(self.body, "kind", "") or ""}
        # an upload ends when it is answered: the client may act on the answer before this thread gets here
        ended = self.answered_at if call == "Upload" and self.answered_at else time.monotonic()
        service.leases.hooks.transfer_done(lease, device, call, headers, status, value, message, started, ended)

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status_sent, self.answered_at = code, time.monotonic()
        super().send_response(code, message)

    def _nfc_download(self) -> None:
        try:
            lease, device = self._nfc_target(self.command)
        except NfcError as exc:
            self._error(exc.status, str(exc))
            return
        try:
            size = device.path.stat().st_size
        except OSError:
            self._error(404, f"{device.name} has no content")
            return
        size, write = self.server.service.nfc.served(lease, size, self.wfile.write)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        if not self.server.service.nfc.send(device, write):
            self.close_connection = True
