"""Durations on the command line (``30s``, ``2m``, ``1m30s``), without importing Locust.

Locust monkey-patches the standard library when imported, so commands that
only need to check a duration (``nfclease run --load-duration``) read it here.
"""

from __future__ import annotations

import re


def parse_duration(text: str | float) -> float:
    """``30s``, ``2m``, ``1m30s``, ``1h``, ``45`` (seconds) -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text.replace(" ", ""):
        raise ValueError(f"duration {text!r}: use e.g. 30s, 2m, 1m30s, 1h")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
