"""A tap on a pyvmomi stub: the raw SOAP request and response of recent calls, redacted.

Reports attach the exchange behind a failing step (what pyvmomi sent, what the
target answered) so a vendor can see the wire, not only our reading of it.
The tap wraps the connections the stub hands out (``GetConnection``), records
each request body and the response bytes as pyvmomi reads them, and keeps the
exchanges in a small bounded buffer per thread until :meth:`SoapTap.take`.
Nothing is recorded unless a tap was installed (the Allure wiring does it).

Every recorded text goes through :func:`nfclease.redaction.redact_text`
(URL credentials, NFC tickets, session cookies, remembered passwords) and
the ``<password>`` and ``<cookie>``-like elements of the XML are masked.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field
from typing import Any

from nfclease.redaction import redact_text

MAX_BODY = 64 * 1024  # bytes kept of one request or response


def redact_soap(text: str) -> str:
    """A SOAP exchange fit for a report: :func:`nfclease.redaction.redact_text` (secret elements,
    cookies, session keys, tickets, remembered passwords)."""
    return redact_text(text)


@dataclass
class Exchange:
    """One SOAP request and its response, as bytes went over the wire (truncated at MAX_BODY)."""

    action: str
    target: str = ""  # method and path of the request
    request: bytearray = field(default_factory=bytearray)
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    response: bytearray = field(default_factory=bytearray)

    def as_text(self) -> str:
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items())  # Cookie:/Authorization: masked below
        return redact_soap(f"{self.target}\n{head}\n\n{_text(self.request)}\n\n"
                           f"--- response {self.status} ---\n{_text(self.response)}\n")


def _text(data: bytearray) -> str:
    more = "\n... (truncated)" if len(data) >= MAX_BODY else ""
    return bytes(data[:MAX_BODY]).decode("utf-8", errors="replace") + more


def _keep(buffer: bytearray, data: Any) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8", errors="replace")
    if isinstance(data, (bytes, bytearray)) and len(buffer) < MAX_BODY:
        buffer.extend(data[: MAX_BODY - len(buffer)])


class _TappedResponse:
    def __init__(self, response: Any, exchange: Exchange) -> None:
        self._response = response
        self._exchange = exchange
        exchange.status = getattr(response, "status", None)

    def read(self, *args: Any) -> bytes:
        data = self._response.read(*args)
        _keep(self._exchange.response, data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)


class _TappedConnection:
    def __init__(self, connection: Any, tap: "SoapTap") -> None:
        self._connection = connection
        self._tap = tap
        self._exchange: Exchange | None = None

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **kwargs: Any) -> Any:
        headers = dict(headers or {})
        self._exchange = Exchange(str(headers.get("SOAPAction", "")), f"{method} {url}",
                                  headers={k: str(v) for k, v in headers.items()})
        _keep(self._exchange.request, body)
        self._tap.record(self._exchange)
        return self._connection.request(method, url, body, headers, **kwargs)

    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        response = self._connection.getresponse(*args, **kwargs)
        return _TappedResponse(response, self._exchange) if self._exchange is not None else response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class SoapTap:
    """Records the SOAP exchanges of the stubs it is installed on; per thread, the last ``keep``."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._local = threading.local()

    def _buffer(self) -> collections.deque[Exchange]:
        buffer = getattr(self._local, "buffer", None)
        if buffer is None:
            buffer = self._local.buffer = collections.deque(maxlen=self.keep)
        return buffer

    def record(self, exchange: Exchange) -> None:
        self._buffer().append(exchange)

    def take(self) -> list[Exchange]:
        """The exchanges this thread made since the last take (at most ``keep``), oldest first."""
        buffer = self._buffer()
        taken = list(buffer)
        buffer.clear()
        return taken

    def install(self, stub: Any) -> None:
        """Wrap ``stub.GetConnection`` (a pyVmomi ``SoapStubAdapter``); idempotent."""
        if getattr(stub, "_nfclease_tap", None) is self:
            return
        original = stub.GetConnection

        def get_connection() -> Any:
            connection = original()
            if isinstance(connection, _TappedConnection):  # back from the pool
                connection = connection._connection
            return _TappedConnection(connection, self)

        stub.GetConnection = get_connection
        stub._nfclease_tap = self
