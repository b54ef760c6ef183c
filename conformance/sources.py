"""A loopback HTTP server serving the bytes a PullFromUrls call should fetch (pull mode's sources),
and an https twin on a self-signed certificate no target trusts (for SSLVerifyFault)."""

from __future__ import annotations

import http.server
import itertools
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any


class SourceServer:
    """A loopback HTTP server serving what PullFromUrls should fetch (bounded, in memory)."""

    def __init__(self) -> None:
        files: dict[str, bytes] = {}
        self.files = files

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, head_only: bool) -> None:
                data = files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head_only:
                    self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._send(False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._send(True)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="nfclease-pull-sources", daemon=True)
        self._thread.start()
        with socket.socket() as probe:  # a loopback port nobody listens on
            probe.bind(("127.0.0.1", 0))
            self.dead_port = probe.getsockname()[1]
        self._names = itertools.count(1)
        self._tls: tuple[http.server.ThreadingHTTPServer, str, Path] | None = None

    def add(self, data: bytes, suffix: str = "") -> str:
        path = f"/src/{next(self._names)}{suffix}"
        self.files[path] = data
        if len(self.files) > 64:  # bounded: old sources are long pulled
            for old in list(self.files)[:-64]:
                del self.files[old]
        return f"http://127.0.0.1:{self.port}{path}"

    def dead_url(self, suffix: str = "") -> str:
        return f"http://127.0.0.1:{self.dead_port}/unreachable{suffix}"

    def add_untrusted(self, data: bytes, suffix: str = "") -> tuple[str, str]:
        """An https URL serving ``data`` on a self-signed certificate no target trusts, and that
        certificate's SHA-1 thumbprint (what an SSLVerifyFault must name)."""
        if self._tls is None:
            from nfclease.sim.tls import generate_self_signed, server_context, thumbprint

            directory = Path(tempfile.mkdtemp(prefix="nfclease-untrusted-source-"))
            cert, key = generate_self_signed(directory, "nfclease-untrusted-source")
            httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.httpd.RequestHandlerClass)
            httpd.socket = server_context(cert, key).wrap_socket(httpd.socket, server_side=True)
            httpd.daemon_threads = True
            threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                             name="nfclease-pull-untrusted", daemon=True).start()
            self._tls = (httpd, thumbprint(cert.read_bytes()), directory)
        httpd, served_thumbprint, _ = self._tls
        path = self.add(data, suffix).split(str(self.port), 1)[1]
        return f"https://127.0.0.1:{httpd.server_address[1]}{path}", served_thumbprint

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._tls is not None:
            httpd, _, directory = self._tls
            httpd.shutdown()
            httpd.server_close()
            shutil.rmtree(directory, ignore_errors=True)
            self._tls = None
