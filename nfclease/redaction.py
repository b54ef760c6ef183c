"""The one redaction function: what may leave the process (events, logs, reports, tracebacks).

Every record the suite writes passes through :func:`redact` once, at its
boundary: :meth:`nfclease.events.EventStream.emit` (args, value, message of
every event, hence histories, Locust stats, results), the report writers
(``results.json``, JUnit, allure, ``load.json``), and the log/traceback
filter :func:`install` puts on logging and ``sys.excepthook``. There is no
other regex for secrets in the repository.

What it removes:

* the password in a URL (``https://user:***@host``);
* secret query parameters (``?password=***``, ``ticket=``, ``token=`` ...);
* NFC tickets in device URLs (``/nfc/***/disk-0.vmdk``: the path segment a
  transfer is authorised by);
* session cookies (``vmware_soap_session="***"``, ``Cookie:`` headers) and
  session keys (``session[***]`` inside lease moids: on vcsim and the
  simulator the key is the cookie);
* secret SOAP elements (``<password>***</password>``, ``<sessionId>``...);
* values of mapping keys that name a secret (``password``, ``cookie``,
  ``ticket``, ``token``, ``authorization``, ``secret``, ``session_cookie``);
* any literal the process learnt is secret (:func:`remember`: the password
  and the session cookie of a connected target), wherever it appears.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from typing import Any, Callable

MASK = "***"
#: secrets shorter than this are not masked as literals (a 3-letter password would blank out words)
MIN_LITERAL = 6
MAX_LITERALS = 64

_SECRET_WORD = r"pass(?:word|wd)?|pwd|secret|token|cookie|authorization|ticket"
SECRET_KEY = re.compile(rf"(?:{_SECRET_WORD}|^session$|session[_-]?(?:id|key|cookie))", re.I)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@", re.I)
_SECRET_PARAM = re.compile(rf"(?P<lead>[?&;][\w.-]*(?:{_SECRET_WORD}|session)[\w.-]*=)(?P<value>[^&;#\s\"']+)", re.I)
_NFC_TICKET = re.compile(r"(?P<lead>/nfc/)(?P<ticket>[^/\s\"'?#]+)(?=/)")
_COOKIE = re.compile(r"(?P<lead>vmware_soap_session\s*=\s*\"?|vmware_cgi_ticket\s*=\s*\"?)(?P<value>[^\";\s]+)", re.I)
_XML_ELEMENT = re.compile(rf"(?P<lead><(?:\w+:)?(?:{_SECRET_WORD}|sessionId)(?:\s[^>]*)?>)(?P<value>[^<]*)(?=<)", re.I)
_SESSION_IN_MOID = re.compile(r"(?P<lead>session\[)(?P<key>[^\]\s]+)(?=\])")
_HEADER = re.compile(r"(?P<lead>\b(?:cookie|set-cookie|authorization)\s*:\s*)(?P<value>[^\r\n]+)", re.I)

_remembered: list[str] = []  # oldest first
_literals: list[str] = []    # the same, longest first (a secret containing another is masked whole)
_literals_lock = threading.Lock()


def remember(secret: str | None) -> None:
    """Mask ``secret`` wherever it appears from now on (a password, a cookie's value).

    Bounded (the last :data:`MAX_LITERALS`); secrets shorter than
    :data:`MIN_LITERAL` are still masked by the patterns, not as literals.
    """
    if not secret or len(secret) < MIN_LITERAL:
        return
    global _literals
    with _literals_lock:
        if secret in _remembered:
            return
        _remembered.append(secret)
        del _remembered[:-MAX_LITERALS]
        _literals = sorted(_remembered, key=len, reverse=True)


def remember_cookie(cookie: str | None) -> None:
    """Remember the value of a ``vmware_soap_session`` cookie (the whole Set-Cookie text is fine)."""
    if not cookie:
        return
    match = _COOKIE.search(cookie)
    remember(match["value"] if match else cookie.split(";", 1)[0].split("=", 1)[-1].strip('"'))


def redact_text(text: str) -> str:
    """A string with every secret the module knows of masked."""
    if not text:
        return text
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    if "/nfc/" in text:
        text = _NFC_TICKET.sub(lambda m: m["lead"] + MASK, text)
    if "=" in text:
        text = _SECRET_PARAM.sub(lambda m: m["lead"] + MASK, text)
        text = _COOKIE.sub(lambda m: m["lead"] + MASK, text)
    if ":" in text:
        text = _HEADER.sub(lambda m: m["lead"] + MASK, text)
    if "<" in text:
        text = _XML_ELEMENT.sub(lambda m: m["lead"] + MASK, text)
    if "session[" in text:
        text = _SESSION_IN_MOID.sub(lambda m: m["lead"] + MASK, text)
    for literal in _literals:
        if literal in text:
            text = text.replace(literal, MASK)
    return text


def redact(value: Any) -> Any:
    """``value`` with passwords, cookies, tickets and URL credentials removed (a copy).

    Strings, mappings (secret-named keys masked whole), lists and tuples are
    walked; other values are returned as they are.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: (MASK if v and SECRET_KEY.search(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Formats a record's message and traceback, then masks them (kept on the record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging to complain
            return True
        record.msg, record.args = redact_text(message), None
        if record.exc_info:
            record.exc_text = redact_text("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


_FILTER = RedactingFilter()
_installed = False


def install() -> None:
    """Mask secrets in every log record (whatever handler writes it) and in uncaught tracebacks.

    Idempotent. A record factory masks each record as it is made, so
    handlers added later (Locust's, ``basicConfig``'s) write masked text too.
    """
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _FILTER.filter(record)
        return record

    logging.setLogRecordFactory(masked_record)

    def excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        sys.stderr.write(redact_text("".join(traceback.format_exception(kind, exc, tb))))

    sys.excepthook = excepthook


def format_exception(exc: BaseException) -> str:
    """A traceback as text, masked: for code that prints one itself."""
    return redact_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


__all__ = ["MASK", "RedactingFilter", "format_exception", "install", "redact", "redact_text", "remember",
           "remember_cookie"]
