"""The one redaction function: every kind of secret it knows, in text, mappings, logs and tracebacks."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nfclease import redaction
from nfclease.events import Event, EventStream
from nfclease.redaction import MASK, redact, redact_text, remember, remember_cookie

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _forget_literals() -> Iterator[None]:
    """Secrets these tests teach the module must not mask text in other tests of the session."""
    saved = list(redaction._remembered)
    yield
    redaction._remembered[:] = saved
    redaction._literals = sorted(saved, key=len, reverse=True)


def test_url_credentials_query_secrets_tickets_cookies() -> None:
    assert redact_text("https://root:pw@vc/sdk") == f"https://root:{MASK}@vc/sdk"
    assert redact_text("https://vc/sdk?password=pw&insecure=1") == f"https://vc/sdk?password={MASK}&insecure=1"
    assert redact_text("GET /x?ticket=abc;x=1") == f"GET /x?ticket={MASK};x=1"
    assert (redact_text("https://esx/nfc/52a1-bc/disk-0.vmdk") == f"https://esx/nfc/{MASK}/disk-0.vmdk")
    assert redact_text('vmware_soap_session="52ab"; Path=/') == f'vmware_soap_session="{MASK}"; Path=/'
    assert redact_text("Cookie: a=b; c=d") == f"Cookie: {MASK}"
    assert redact_text("Authorization: Basic cm9vdDpwdw==") == f"Authorization: {MASK}"
    assert (redact_text("<userName>root</userName><password>pw</password><ns:sessionId a='1'>k</ns:sessionId>")
            == f"<userName>root</userName><password>{MASK}</password><ns:sessionId a='1'>{MASK}</ns:sessionId>")
    assert redact_text("session[52ab-cd]5e2f-11") == f"session[{MASK}]5e2f-11"
    # what is not a secret stays: device keys, state names, object names
    for plain in ("/vm-26/VirtualLsiLogicController0:0", "ready", "nfclease-2026-1", "https://vc:443/sdk"):
        assert redact_text(plain) == plain


def test_mappings_mask_secret_keys_and_walk_values() -> None:
    value = {"password": "pw", "session_cookie": "c", "sessionId": "s", "key": "/vm-1/disk:0",
             "importKey": "/x/disk:0", "sslThumbprint": "AB:CD", "nested": [{"url": "https://esx/nfc/t1/d"}]}
    out = redact(value)
    assert out["password"] == out["session_cookie"] == out["sessionId"] == MASK
    assert out["key"] == "/vm-1/disk:0" and out["importKey"] == "/x/disk:0" and out["sslThumbprint"] == "AB:CD"
    assert out["nested"] == [{"url": f"https://esx/nfc/{MASK}/d"}]
    assert value["password"] == "pw"  # a copy: the caller's value is untouched


def test_remembered_literals_are_masked_anywhere() -> None:
    remember("Zq-9!literal-password")
    remember_cookie('vmware_soap_session="52feedface0123"; Path=/; HttpOnly; Secure;')
    remember("short")  # below MIN_LITERAL: not a literal (it would blank out words)
    text = redact_text("login Zq-9!literal-password failed for session[52feedface0123]vm short")
    assert "Zq-9" not in text and "52feedface0123" not in text and "short" in text


@settings(max_examples=200, deadline=None)
@given(secret=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=6, max_size=30))
def test_a_remembered_secret_never_survives(secret: str) -> None:
    remember(secret)
    assert secret not in redact_text(f"x {secret} y"), secret
    assert secret not in str(redact({"any": [f"{secret}!"]}))


def test_the_event_boundary_masks_args_value_and_message() -> None:
    seen: list[Event] = []
    stream = EventStream([seen.append])
    stream.emit(Event(call="Read", args={"password": "pw"}, value={"info": {"deviceUrl": [
        {"url": "https://127.0.0.1:1/nfc/TICKET123/disk-0.vmdk"}]}},
        message="retry https://u:pw@h/sdk"))
    text = seen[0].to_json()
    assert "TICKET123" not in text and ":pw@" not in text and '"pw"' not in text


def test_logging_and_uncaught_tracebacks_are_masked() -> None:
    remember("Logged-Secret-42")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    logger = logging.getLogger("test_redaction")
    logger.addHandler(handler)
    handler.addFilter(redaction.RedactingFilter())
    try:
        logger.warning("login %s", "Logged-Secret-42")
        try:
            raise RuntimeError("https://root:Logged-Secret-42@vc/sdk refused")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert "Logged-Secret-42" not in buffer.getvalue() and "RuntimeError" in buffer.getvalue()
    code = ("import logging; from nfclease import redaction; redaction.install(); logging.basicConfig(); "
            "redaction.remember('Uncaught-Secret'); "
            "logging.getLogger('x').warning('pw Uncaught-Secret'); "
            "raise RuntimeError('https://root:Uncaught-Secret@vc/nfc/T1CKET/disk-0.vmdk')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1 and "RuntimeError" in proc.stderr
    assert "Uncaught-Secret" not in proc.stderr and "T1CKET" not in proc.stderr
