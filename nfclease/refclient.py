"""nfclease's own lease client as a command: the reference row of ``nfclease clients``.

    python -m nfclease.refclient import --url https://127.0.0.1:8989/sdk --cafile ca.pem [--disk-mib 1]
    python -m nfclease.refclient export --url https://127.0.0.1:8989/sdk --cafile ca.pem [--vm DC0/vm/VM0]

Credentials come from the URL or ``GOVC_USERNAME``/``GOVC_PASSWORD``. It does
what the client clauses (``conformance/CLIENT-CLAUSES.md``) ask: waits for
ready and stops at error, renews every min(2 s, leaseTimeout/4) from a thread
that stops before Complete/Abort, uploads disks as streamOptimized VMDKs by
POST and files by PUT (retrying once after a 503), replaces ``*`` hosts,
checks each device URL's ``sslThumbprint``, Completes only after every device
moved, and on any other failure Aborts with a fault naming the cause. Every wait is bounded. Exit status 0
on success; 1 with one line ``nfclease-client: <category>: <what>`` on a
failure (categories: ``lease``, ``transfer``, ``tls``, ``timeout``,
``target``); 2 for a bad invocation.
"""

from __future__ import annotations

import argparse
import ssl
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from nfclease.events import EventStream, HistoryWriter
from nfclease.session import LeaseSession, acquire_export_vm, acquire_import, attempt
from nfclease.target import WaitTimeout
from nfclease.transfer import NfcHttpError, NfcTransportError

RENEW_EVERY = 2.0  # seconds, as govmomi's lease updater; never more than leaseTimeout / 4
RETRY_AFTER = 1.0  # seconds before the one retry of an upload answered 503 Service Unavailable


class ClientError(Exception):
    """A failure the client reports: ``category`` says which kind (lease, transfer, tls, timeout, target)."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(f"{category}: {message}")
        self.category = category


def categorise(exc: BaseException) -> ClientError:
    """The reported form of what went wrong during a lease's work."""
    if isinstance(exc, ClientError):
        return exc
    if isinstance(exc, NfcTransportError) and isinstance(exc.cause, ssl.SSLCertVerificationError):
        return ClientError("tls", str(exc.cause))
    if isinstance(exc, NfcTransportError) and isinstance(exc.cause, TimeoutError):
        return ClientError("timeout", f"the transfer stalled: {exc.cause or 'no data within the timeout'}")
    if isinstance(exc, (NfcHttpError, NfcTransportError)):
        return ClientError("transfer", str(exc))
    if isinstance(exc, WaitTimeout):
        return ClientError("timeout", str(exc))
    if isinstance(exc, KeyboardInterrupt):
        return ClientError("cancelled", "interrupted")
    name = type(exc).__name__
    return ClientError("lease" if name.startswith(("vim.", "vmodl.")) else "client", f"{name}: {exc}")


def _abort_fault(error: ClientError, exc: BaseException) -> Any:
    """The fault handed to Abort: what caused it, for whoever watches the task."""
    from pyVmomi import vim, vmodl

    if error.category == "cancelled":
        return vmodl.fault.RequestCanceled(msg="cancelled by the client")
    if isinstance(exc, NfcHttpError):
        return vim.fault.HttpFault(statusCode=exc.status, statusMessage=exc.message[:200], msg=str(error)[:500])
    return vmodl.fault.SystemError(reason=str(error)[:500], msg=str(error)[:500])


def run_lease(session: LeaseSession, work: Callable[[], Any], *, ready_timeout: float = 120.0) -> None:
    """Wait for ready, do ``work`` while renewing, Complete; on any failure Abort with its cause and raise."""
    try:
        ready = session.wait_ready(ready_timeout)
    except BaseException as exc:
        error = categorise(exc)
        attempt(session.abort, _abort_fault(error, exc))  # cancel: the lease may still initialize
        raise error from exc
    if ready.get("state") != "ready":
        fault = ready.get("error") or {}
        raise ClientError("lease", f"the lease went to {ready.get('state')} while waiting for ready: "
                                   f"{fault.get('fault')}: {fault.get('message')}")
    lease_timeout = float((ready.get("info") or {}).get("leaseTimeout") or 300)
    try:
        with session.keep_alive(interval=max(0.2, min(RENEW_EVERY, lease_timeout / 4))):
            work()
    except BaseException as exc:
        error = categorise(exc)
        aborted = attempt(session.abort, _abort_fault(error, exc))
        note = "; lease aborted" if aborted.ok else f"; Abort answered {aborted.event.fault}"
        raise ClientError(error.category, str(error).split(": ", 1)[1] + note) from exc
    session.complete()


def _ask_sha256(session: LeaseSession) -> bool:
    """From API 6.7, ask for sha256 manifest entries before any transfer starts (client.checksum-first)."""
    if not session.target.api_at_least("6.7"):
        return False
    session.set_manifest_checksum_type({url.key: "sha256" for url in session.device_urls()})
    return True


def _check_manifest(session: LeaseSession, moved: dict[str, Any], sha256: bool) -> None:
    """Every device's bytes against the lease's manifest entry; a mismatch aborts the lease."""
    for entry in session.get_manifest():
        got = moved.get(entry.key)
        want = (entry.checksum if sha256 and entry.checksum else entry.sha1) or ""
        have = (got.sha256 if sha256 and entry.checksum else got.sha1) if got is not None else None
        if have != want.lower():
            raise ClientError("transfer", f"{entry.key}: the bytes moved do not match the lease's manifest")


def _upload(session: LeaseSession, url: Any, sha256: bool) -> Any:
    """Upload one device; a 503 (the server is busy, not broken) is retried once, after a pause."""
    try:
        return session.upload(url, sha256=sha256)
    except NfcHttpError as exc:
        if exc.status != 503:
            raise
    time.sleep(RETRY_AFTER)
    return session.upload(url, sha256=sha256)


def import_disks(target: Any, stream: EventStream, disks: Sequence[int], files: int = 0, *,
                 transfer_timeout: float = 60.0, ready_timeout: float = 120.0) -> LeaseSession:
    """Import a VM with these disks (and files) through a lease, the way the clauses ask."""
    nfc = target.nfc_client(timeout=transfer_timeout)
    session = acquire_import(target, stream, disks=list(disks), files=files, nfc=nfc)

    def work() -> None:
        sha256 = _ask_sha256(session)
        session.expected_bytes()
        sent = {url.key: _upload(session, url, sha256) for url in session.device_urls()}
        _check_manifest(session, sent, sha256)

    run_lease(session, work, ready_timeout=ready_timeout)
    return session


def export_vm(target: Any, stream: EventStream, vm: str | None = None, *, transfer_timeout: float = 60.0,
              ready_timeout: float = 120.0) -> LeaseSession:
    """Export a VM's disks through a lease and check them against the manifest."""
    nfc = target.nfc_client(timeout=transfer_timeout)
    session = acquire_export_vm(target, stream, vm, nfc=nfc)

    def work() -> None:
        sha256 = _ask_sha256(session)
        received = {url.key: session.download(url, sha256=sha256) for url in session.device_urls()}
        _check_manifest(session, received, sha256)

    run_lease(session, work, ready_timeout=ready_timeout)
    return session


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nfclease.refclient", description=__doc__.split("\n\n")[0],
                                     epilog="example: python -m nfclease.refclient import --url "
                                            "https://127.0.0.1:8989/sdk --cafile ca.pem")
    parser.add_argument("operation", choices=["import", "export"])
    parser.add_argument("--url", required=True, help="the SDK URL (https://[user:pass@]host:port/sdk)")
    parser.add_argument("--cafile", help="PEM file of the CA (or self-signed certificate) to trust")
    parser.add_argument("--thumbprint", help="pin the target's certificate instead")
    parser.add_argument("--disk-mib", type=float, default=1.0, help="import: capacity of the disk (MiB)")
    parser.add_argument("--files", type=int, default=0, help="import: non-disk files (nvram) to upload too")
    parser.add_argument("--vm", default=None, help="export: the VM (inventory path or name; default: the first)")
    parser.add_argument("--transfer-timeout", type=float, default=60.0,
                        help="seconds a transfer may go without progress before it is given up")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for ready")
    parser.add_argument("--history", help="write the client's own events to this JSONL file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from nfclease.target import TargetSpec, open_target

    args = build_parser().parse_args(argv)
    listeners = [HistoryWriter(args.history)] if args.history else []
    stream = EventStream(listeners)
    try:
        spec = TargetSpec.parse(args.url, cafile=args.cafile, thumbprint=args.thumbprint)
        with open_target(spec) as target:
            if args.operation == "import":
                import_disks(target, stream, [int(args.disk_mib * (1 << 20))], args.files,
                             transfer_timeout=args.transfer_timeout, ready_timeout=args.ready_timeout)
            else:
                export_vm(target, stream, args.vm, transfer_timeout=args.transfer_timeout,
                          ready_timeout=args.ready_timeout)
    except ClientError as exc:
        print(f"nfclease-client: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"nfclease-client: target: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a fault outside a lease (login, import spec...): reported, never a traceback
        print(f"nfclease-client: {categorise(exc)}", file=sys.stderr)
        return 1
    finally:
        for listener in listeners:
            listener.close()
    print(f"nfclease-client: {args.operation} completed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
