"""A client that goes silent inside a request loses its connection, not a thread forever."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

from nfclease.sim import SimConfig, Simulator
from tests.conftest import connect


@pytest.fixture(scope="module")
def impatient_sim():
    with Simulator(SimConfig(request_timeout=0.5)) as sim:
        yield sim


def _tls(sim: Simulator) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=sim.cafile)
    return context.wrap_socket(socket.create_connection(("127.0.0.1", sim.port), timeout=10),
                               server_hostname="127.0.0.1")


@pytest.mark.parametrize("stall", ["inside the headers", "inside the body"])
def test_silent_client_is_disconnected_and_others_are_served(impatient_sim: Simulator, stall: str) -> None:
    conn = _tls(impatient_sim)
    head = b"POST /sdk HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
    conn.sendall(head if stall == "inside the headers" else head + b"Content-Length: 1000\r\n\r\n<soapenv")
    started = time.monotonic()
    leftover = conn.recv(4096)  # blocks until the server gives up on us
    waited = time.monotonic() - started
    assert leftover == b"" or b"HTTP/1.1" in leftover, leftover
    assert 0.4 < waited < 5.0, f"the server waited {waited:.2f} s, its request_timeout is 0.5 s"
    conn.close()
    si = connect(impatient_sim)  # the server still serves a well-behaved client
    assert si.RetrieveContent().about.apiVersion


def test_idle_keepalive_connection_outlives_the_request_timeout(impatient_sim: Simulator) -> None:
    si = connect(impatient_sim)
    about = si.RetrieveContent().about
    time.sleep(1.2)  # longer than request_timeout, between requests: the connection stays usable
    assert si.RetrieveContent().about.apiVersion == about.apiVersion
