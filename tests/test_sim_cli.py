"""``nfclease sim`` as users run it: URL first, loopback only, clean stop on signals."""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from pyVim.connect import Disconnect, SmartConnect

ROOT = Path(__file__).resolve().parents[1]


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "nfclease", "sim", "--port", "0", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_line_is_the_sdk_url_and_a_signal_stops_it_cleanly(signum: int) -> None:
    proc = _start("--lease-timeout", "5")
    try:
        url = proc.stdout.readline().strip()
        certificate = proc.stdout.readline()
        assert url.startswith("https://127.0.0.1:") and url.endswith("/sdk"), url
        cafile = certificate.split("certificate ", 1)[1].split(" ", 1)[0]
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        si = SmartConnect(host="127.0.0.1", port=port, user="u", pwd="p",
                          sslContext=ssl.create_default_context(cafile=cafile))
        assert si.RetrieveContent().about.apiType == "VirtualCenter"
        Disconnect(si)
        proc.send_signal(signum)
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        proc.wait()


def test_reading_only_the_url_does_not_stop_the_simulator() -> None:
    proc = _start()
    try:
        url = proc.stdout.readline().strip()
        proc.stdout.close()  # like `nfclease sim | head -1`
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the CA path was not read
        si = SmartConnect(host="127.0.0.1", port=port, user="u", pwd="p", sslContext=context)
        assert si.RetrieveContent().about.apiType == "VirtualCenter"
        Disconnect(si)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_a_non_loopback_address_is_refused_with_a_reason() -> None:
    proc = _start("--host", "0.0.0.0")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "loopback only" in err and "0.0.0.0" in err
