"""No secret in any artefact: ``nfclease run`` (conformance, load, reports, Allure, history) against a
simulator with a known password; the session cookies and NFC tickets it handed out are read from the
simulator afterwards, and every byte of every file the run wrote, and its output, is searched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from nfclease.sim import SimConfig, Simulator

ROOT = Path(__file__).resolve().parents[1]
USER = "lab-user"
PASSWORD = "P@ss:w0rd/Lab-9f%e"   # characters a URL must escape, so both spellings are looked for

pytestmark = pytest.mark.slow


def _issued_secrets(sim: Simulator) -> tuple[set[str], set[str]]:
    """``(session cookies, NFC tickets)`` the simulator handed out (released leases are retained)."""
    leases = list(sim.service.leases.by_ticket.values())
    cookies = {lease.session_key for lease in leases} | set(sim.service.sessions.by_key)
    return cookies, {lease.ticket for lease in leases}


def test_no_password_cookie_or_ticket_in_any_artefact(tmp_path: Path) -> None:
    report = tmp_path / "report"
    with Simulator(SimConfig(username=USER, password=PASSWORD, init_seconds=0.05)) as sim:
        target = sim.url.replace("https://", f"https://{USER}:{quote(PASSWORD, safe='')}@")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVC_")}
        env.update(GOVC_TLS_CA_CERTS=sim.cafile, PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
        proc = subprocess.run([sys.executable, "-m", "nfclease", "run", "--target", target, "--profile", "smoke",
                               "--load-duration", "3s", "--report", str(report), "--seed", "11"],
                              cwd=ROOT, env=env, capture_output=True, timeout=300)
        cookies, tickets = _issued_secrets(sim)
    output = proc.stdout + proc.stderr
    assert proc.returncode in (0, 1), output.decode(errors="replace")[-3000:]
    files = [p for p in report.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    for expected in ("results.json", "junit.xml", "history.jsonl", "load.json", "report.html"):
        assert expected in names, sorted(names)
    assert any(p.parent.name == "allure-results" for p in files) and any(n.endswith(".csv") for n in names)
    assert len(cookies) >= 2 and len(tickets) >= 5, (len(cookies), len(tickets))  # the run did hand some out
    secrets = {PASSWORD, quote(PASSWORD, safe=""), *cookies, *tickets}
    leaks = []
    for path in files:
        data = path.read_bytes()
        leaks += [f"{path.relative_to(report)}: {secret[:6]}..." for secret in secrets if secret.encode() in data]
    leaks += [f"output: {secret[:6]}..." for secret in secrets if secret.encode() in output]
    assert leaks == [], leaks
    history = (report / "history.jsonl").read_text()
    assert "/nfc/***/" in history and "session[***]" in history  # masked, not dropped: the record stays whole
