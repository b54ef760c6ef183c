"""``pip install nfclease`` (no extras) serves ``nfclease sim`` and ``nfclease conform``.

The load stack (locust, gevent, matplotlib) and the report stack (allure,
jinja2) are extras (``nfclease[load]``, ``nfclease[report]``). Here they are
made unimportable in a child process, which then starts the simulator and
runs a conformance smoke run: neither may need them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("locust", "gevent", "matplotlib", "allure", "allure_commons", "allure_pytest", "jinja2")

#: Run nfclease's main() with the extras' packages refused at import.
_WITHOUT_EXTRAS = f"""
import sys
BLOCKED = {EXTRAS!r}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is an extra (blocked by the test)")
        return None
sys.meta_path.insert(0, Refuse())
from nfclease.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def _nfclease(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _WITHOUT_EXTRAS, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_the_blocker_blocks() -> None:
    proc = _nfclease("load", "--help")
    assert proc.returncode != 0 and "is an extra" in proc.stderr


def test_sim_needs_no_extra() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _WITHOUT_EXTRAS, "sim", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("https://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else line
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
def test_conform_needs_no_extra(tmp_path: Path) -> None:
    proc = _nfclease("conform", "--profile", "smoke", "--seed", "5", "--report", str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["summary"]["PASS"] > 0 and results["summary"]["FAIL"] == 0
