"""``nfclease run`` and ``nfclease report`` invoked wrongly: one line naming what was wrong, exit 2, no traceback.

Each case is the real thing going wrong (a closed port, a refused login on a
running simulator, a certificate nobody trusts), not a mock of it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from nfclease.cli import main
from nfclease.sim import SimConfig, Simulator

PASSWORD = "Tr0ub4dor-run-cli"
ROOT = Path(__file__).resolve().parents[1]


def exit_status(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture(scope="module")
def locked_sim() -> Iterator[Simulator]:
    """A simulator that accepts one user only."""
    with Simulator(SimConfig(username="alice", password=PASSWORD)) as sim:
        yield sim


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = exit_status(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert PASSWORD not in err
    return lines[0]


def test_help_says_what_run_does_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "report"):
        assert exit_status([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "example" in text and f"nfclease {command}" in text


def test_unknown_profile(capsys, tmp_path: Path) -> None:
    line = one_line_error(capsys, ["run", "--profile", "quick", "--report", str(tmp_path)])
    assert "invalid choice: 'quick'" in line and "smoke" in line and "--help" in line


def test_bad_duration(capsys, tmp_path: Path) -> None:
    line = one_line_error(capsys, ["run", "--load-duration", "soon", "--report", str(tmp_path)])
    assert "duration 'soon'" in line and "30s" in line


def test_malformed_expectations_file(capsys, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("complete.repeat: [status: FAIL\n")
    line = one_line_error(capsys, ["run", "--expectations", str(broken), "--report", str(tmp_path / "out")])
    assert "broken.yaml" in line and "--expectations" in line


def test_unreachable_target(capsys, tmp_path: Path) -> None:
    url = f"https://alice:{PASSWORD}@127.0.0.1:{closed_port()}/sdk"
    line = one_line_error(capsys, ["run", "--target", url, "--insecure", "--report", str(tmp_path)])
    assert line.startswith("nfclease run: cannot reach https://alice:***@127.0.0.1:") and "refused" in line


def test_bad_credentials(capsys, tmp_path: Path, locked_sim: Simulator) -> None:
    url = f"https://alice:wrong-{PASSWORD}@127.0.0.1:{locked_sim.port}/sdk"
    line = one_line_error(capsys, ["run", "--target", url, "--thumbprint", locked_sim.thumbprint,
                                   "--report", str(tmp_path)])
    assert "login was refused" in line and "GOVC_PASSWORD" in line


def test_tls_refused(capsys, tmp_path: Path, locked_sim: Simulator) -> None:
    url = f"https://alice:{PASSWORD}@127.0.0.1:{locked_sim.port}/sdk"
    line = one_line_error(capsys, ["run", "--target", url, "--report", str(tmp_path)])
    assert "not trusted" in line and "--thumbprint" in line and "--insecure" in line


COMMANDS = ("run", "sim", "conform", "load", "selftest", "check-history", "judge-client", "clients", "doctor",
            "clean", "report")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_an_example_and_one_line_errors(command: str) -> None:
    """In a child process: some commands import Locust, which patches the standard library."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    helped = subprocess.run([sys.executable, "-m", "nfclease", command, "--help"], capture_output=True, text=True,
                            env=env, cwd=ROOT, timeout=120)
    assert helped.returncode == 0 and "example" in helped.stdout.lower() and f"nfclease {command}" in helped.stdout
    wrong = subprocess.run([sys.executable, "-m", "nfclease", command, "--no-such-option"], capture_output=True,
                           text=True, env=env, cwd=ROOT, timeout=120)
    lines = wrong.stderr.strip().splitlines()
    assert wrong.returncode == 2 and len(lines) == 1 and "--help" in lines[0], wrong.stderr


def test_an_unknown_command_is_one_line(capsys) -> None:
    line = one_line_error(capsys, ["frobnicate"])
    assert "invalid choice: 'frobnicate'" in line and "nfclease --help" in line
