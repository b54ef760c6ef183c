"""A loopback HTTP server serving the bytes a PullFromUrls call should fetch (pull mode's sources)."""

from __future__ import annotations

import http.server
import itertools
import socket
import threading
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

    def add(self, data: bytes, suffix: str = "") -> str:
        path = f"/src/{next(self._names)}{suffix}"
        self.files[path] = data
        if len(self.files) > 64:  # bounded: old sources are long pulled
            for old in list(self.files)[:-64]:
                del self.files[old]
        return f"http://127.0.0.1:{self.port}{path}"

    def dead_url(self, suffix: str = "") -> str:
        return f"http://127.0.0.1:{self.dead_port}/unreachable{suffix}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
