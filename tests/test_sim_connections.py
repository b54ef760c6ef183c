"""The simulator's HTTP server keeps track of its live connections, and stop() ends them.

``SimHTTPServer`` used to store the raw socket in its connection set and then
serve the TLS socket wrapped around it: the entry was never removed (one more
per connection, for ever) and ``close_connections`` shut down a socket that
no longer owned its descriptor, leaving TLS keep-alive connections open after
``Simulator.stop()``. Both are judged here by outcome, never by speed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time

from nfclease.launcher import start


def _open(url: str, cafile: str) -> http.client.HTTPSConnection:
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    conn = http.client.HTTPSConnection(host, int(port), context=ssl.create_default_context(cafile=cafile), timeout=10)
    conn.request("GET", "/sdk/vimServiceVersions.xml")
    reply = conn.getresponse()
    reply.read()
    assert reply.status == 200
    return conn


def test_finished_connections_leave_the_connection_set() -> None:
    with start("sim") as reach:
        server = reach.server.server
        for _ in range(3):
            _open(reach.url, reach.cafile).close()
        deadline = time.monotonic() + 10  # the handler threads notice the close and return
        while server.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.connections, f"{len(server.connections)} closed connections are still tracked"


def test_stop_ends_live_keep_alive_connections() -> None:
    with start("sim") as reach:
        conn = _open(reach.url, reach.cafile)  # kept alive: the server waits for its next request
        tracked = list(reach.server.server.connections)
        assert tracked and all(isinstance(c, ssl.SSLSocket) for c in tracked), tracked
        reach.server.stop()
        conn.sock.settimeout(10)
        try:
            data = conn.sock.recv(1)
        except (ConnectionError, ssl.SSLError):
            data = b""
        except socket.timeout:
            data = None
        assert data == b"", "the connection stayed open after Simulator.stop()"
        conn.close()
