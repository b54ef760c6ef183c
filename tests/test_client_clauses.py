"""The client clause catalogue: quotes verbatim, levels worded, the generated page current."""

from __future__ import annotations

import re
from pathlib import Path

from nfclease.conformance.client_clauses import BY_ID, CLIENT_CLAUSES
from nfclease.conformance.clauses import BY_ID as SERVER_IDS
from nfclease.conformance.clauses import NOTES, SPEC
from nfclease.conformance.gen_clauses import CLIENT_OUTPUT, render_client

SPEC_DIR = Path(__file__).resolve().parents[1] / "conformance" / "spec"


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_every_client_quote_is_verbatim_in_its_document() -> None:
    docs = {SPEC: _norm((SPEC_DIR / "HttpNfcLease.txt").read_text()),
            NOTES: _norm((SPEC_DIR / "FIELD-NOTES.md").read_text())}
    for c in CLIENT_CLAUSES:
        assert c.sources, c.id
        for s in c.sources:
            assert _norm(s.text) in docs[s.doc], f"{c.id}: {s.text!r} is not in {s.doc}"


def test_client_ids_are_their_own_and_levels_are_worded() -> None:
    assert len(BY_ID) == len(CLIENT_CLAUSES)
    assert not set(BY_ID) & set(SERVER_IDS)
    for c in CLIENT_CLAUSES:
        assert c.id.startswith("client.") and c.group == "client"
        assert c.level in ("MUST", "SHOULD") and re.fullmatch(r"\d+\.\d+", c.since)
        assert c.level in c.sentence, c.id
        assert c.how, f"{c.id} says how it is judged"


def test_client_clauses_page_is_generated_from_the_catalogue() -> None:
    assert CLIENT_OUTPUT.read_text(encoding="utf-8") == render_client(), "run: python -m nfclease.conformance.gen_clauses"
