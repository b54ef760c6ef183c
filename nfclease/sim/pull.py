"""Pull mode (``HttpNfcLeasePullFromUrls_Task``): the simulator fetches each device's bytes itself.

:class:`PullClient` runs a task's fetches in a thread; the bytes are stored
by the same ``receive`` that stores uploads (passed in by the service), so
both ways of filling a device are checked and hashed alike. Only loopback
sources are fetched.
"""

from __future__ import annotations

import http.client
import ipaddress
import ssl
import threading
from typing import Any, Callable
from urllib.parse import SplitResult, urlsplit

from pyVmomi import vim, vmodl

from nfclease.sim.leases import Device, Lease
from nfclease.sim.soap import SoapError
from nfclease.sim.tls import thumbprint
from nfclease.sim.world import Task, World

#: ``receive(lease, device, body, length)``: stores a device's bytes (:meth:`NfcTransfers.receive`).
Receive = Callable[[Lease, Device, Any, "int | None"], int]


class PullClient:
    """Fetches source URLs into a lease's devices, one task per pull."""

    def __init__(self, world: World, receive: Receive) -> None:
        self.world = world
        self.receive = receive

    def start(self, lease: Lease, task: Task, pairs: list[tuple[Any, Device]]) -> None:
        """Fetch every (source file, device) pair in a thread; settle ``task`` when done."""
        threading.Thread(target=self._pull, args=(lease, task, pairs), daemon=True,
                         name=f"pull-{lease.moid[-8:]}").start()

    def _pull(self, lease: Lease, task: Task, pairs: list[tuple[Any, Device]]) -> None:
        try:
            total = len(pairs)
            for index, (source, device) in enumerate(pairs):
                try:
                    self._pull_one(lease, source, device)
                except SoapError as exc:
                    if not isinstance(exc.fault, vim.fault.HttpFault):
                        raise
                    if lease.deviation("pull_http_fault_swallowed"):
                        continue  # DELIBERATE DEVIATION: the source is skipped, the task succeeds
                    if lease.deviation("pull_wrong_fault"):  # DELIBERATE DEVIATION: not HttpFault
                        raise SoapError(vmodl.fault.SystemError(reason="pull"), str(exc)) from None
                    raise
                with self.world.lock:
                    task.set_progress(int(100 * (index + 1) / total))
            with self.world.lock:
                task.succeed(None)
        except SoapError as exc:
            with self.world.lock:
                task.fail(exc.fault)
        except Exception as exc:  # never leave the task running
            with self.world.lock:
                task.fail(vmodl.fault.SystemError(reason=str(exc), msg=f"pull failed: {exc}"))

    def _pull_one(self, lease: Lease, source: Any, device: Device) -> None:
        url = urlsplit(source.url)
        _check_source(source.url, url)
        port = url.port or (443 if url.scheme == "https" else 80)
        if url.scheme == "https":
            context = ssl.create_default_context()
            if source.sslThumbprint or lease.deviation("pull_ssl_unverified"):  # DELIBERATE DEVIATION when set
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(url.hostname, port, context=context,
                                                                           timeout=30)
        else:
            conn = http.client.HTTPConnection(url.hostname, port, timeout=30)
        headers = {kv.key: kv.value for kv in (source.httpHeaders or [])}
        try:
            conn.connect()
            if url.scheme == "https":
                _check_thumbprint(source, conn.sock.getpeercert(binary_form=True))
            conn.request("GET", url.path + (f"?{url.query}" if url.query else ""), headers=headers)
            response = conn.getresponse()
            if response.status >= 400:
                raise _http_fault(source.url, response.status, response.reason)
            self.receive(lease, device, response, response.length)
        except ssl.SSLCertVerificationError as exc:
            actual = ""
            try:
                actual = _peer_thumbprint(url.hostname or "", port)
            except OSError:
                pass
            if lease.deviation("pull_ssl_fault_without_thumbprint"):
                actual = ""  # DELIBERATE DEVIATION: the client is not told which certificate it met
            raise SoapError(vim.fault.SSLVerifyFault(selfSigned=True, thumbprint=actual),
                            f"{source.url}: certificate not trusted ({exc.verify_message}); "
                            f"pass its sslThumbprint {actual}") from None
        except OSError as exc:
            raise _http_fault(source.url, 503, f"cannot reach the source: {exc}") from None
        finally:
            conn.close()


def _http_fault(source_url: str, code: int, text: str) -> SoapError:
    return SoapError(vim.fault.HttpFault(statusCode=code, statusMessage=text), f"pulling {source_url}: {code} {text}")


def _check_source(source_url: str, url: SplitResult) -> None:
    """Refuse a source that is not http(s) on a loopback address."""
    if url.scheme not in ("http", "https") or not url.hostname:
        raise _http_fault(source_url, 400, "the source URL must be http or https")
    try:
        if not ipaddress.ip_address(url.hostname).is_loopback:
            raise _http_fault(source_url, 403, "the simulator pulls only from loopback addresses")
    except ValueError:
        if url.hostname != "localhost":
            raise _http_fault(source_url, 403, "the simulator pulls only from loopback addresses") from None


def _check_thumbprint(source: Any, der: bytes) -> None:
    """Refuse a peer certificate whose thumbprint is not the source's ``sslThumbprint``."""
    pem = ssl.DER_cert_to_PEM_cert(der)
    actual = thumbprint(pem.encode())
    if source.sslThumbprint and source.sslThumbprint.upper() not in (actual, thumbprint(pem.encode(), "sha256")):
        raise SoapError(vim.fault.SSLVerifyFault(selfSigned=True, thumbprint=actual),
                        f"{source.url}: certificate thumbprint {actual} does not match "
                        f"{source.sslThumbprint}")


def _peer_thumbprint(host: str, port: int) -> str:
    pem = ssl.get_server_certificate((host, port))
    return thumbprint(pem.encode())
