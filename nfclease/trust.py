"""Why a server was not trusted, said so the user knows how to pin or trust it.

TLS fails closed: an unknown CA, a wrong pinned thumbprint or a name the
certificate does not carry stops the connection before the password is
sent. :func:`untrusted` turns the bare ``ssl`` error into
:class:`UntrustedServer`, whose message names the certificate the server
served (SHA-1 and SHA-256 thumbprints, read by a second handshake that sends
nothing) and the three ways forward: ``--thumbprint`` (or
``GOVC_TLS_KNOWN_HOSTS``), ``--ca-file`` (or ``GOVC_TLS_CA_CERTS``), or
``--insecure``.
"""

from __future__ import annotations

import hashlib
import socket
import ssl


class UntrustedServer(ssl.SSLCertVerificationError):
    """The server's certificate was refused; the message says what was served and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(1, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def served_thumbprints(host: str, port: int, timeout: float = 10.0) -> tuple[str, str] | None:
    """``(sha1, sha256)`` of the certificate ``host:port`` serves, or None if it cannot be read.

    A handshake without verification that sends no request: for the message only, never to trust.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True) or b""
    except (OSError, ValueError):
        return None
    return colon_hex(hashlib.sha1(der).digest()), colon_hex(hashlib.sha256(der).digest())


def untrusted(exc: ssl.SSLError, host: str, port: int, *, pinned: str | None = None) -> UntrustedServer:
    """An :class:`UntrustedServer` explaining ``exc`` for ``host:port`` (``pinned``: the thumbprint asked for)."""
    where = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    served = served_thumbprints(host, port)
    sha1 = served[0] if served else "<SHA-1 of its certificate>"
    check = (f"check it out of band (e.g. `openssl s_client -connect {where} </dev/null | openssl x509 "
             f"-noout -fingerprint -sha1`)")
    reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or str(exc)
    if pinned:
        head = (f"TLS: {where} served a certificate (SHA-1 {sha1}"
                + (f", SHA-256 {served[1]}" if served else "") + f") that does not match the pinned thumbprint "
                f"{pinned}: this is not the server you pinned, or its certificate changed. Nothing was sent.")
        way = f"If the change is expected, {check} and pin the new one: --thumbprint {sha1}."
    else:
        head = (f"TLS: the certificate of {where} is not trusted ({reason}). Nothing was sent."
                + (f" It serves SHA-1 {sha1}, SHA-256 {served[1]}." if served else ""))
        way = (f"If this is the server you mean, {check}, then pin it with --thumbprint {sha1} (or a line "
               f"'{where} {sha1}' in the file GOVC_TLS_KNOWN_HOSTS names), or trust the CA that signed it with "
               "--ca-file CA.pem (GOVC_TLS_CA_CERTS). --insecure skips verification altogether (not recommended).")
    return UntrustedServer(f"{head} {way}")


__all__ = ["UntrustedServer", "colon_hex", "served_thumbprints", "untrusted"]
