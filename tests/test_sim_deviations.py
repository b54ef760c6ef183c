"""The catalogue of deliberate deviations: validated names, ``--deviate``, and one acting as named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nfclease.sim import SimConfig, Simulator
from nfclease.sim.deviations import CATALOGUE, FAMILIES, parse_deviations

ROOT = Path(__file__).resolve().parents[1]


def test_every_entry_is_named_grouped_and_described() -> None:
    assert {"complete_twice_ok", "no_timeout", "manifest_wrong_sha1", "locks_ignored"} <= set(CATALOGUE)
    for name, d in CATALOGUE.items():
        assert d.name == name and name.isidentifier() and d.family in FAMILIES, d
        assert d.description and "\n" not in d.description, d


def test_an_unknown_name_is_refused_with_a_did_you_mean() -> None:
    with pytest.raises(ValueError, match=r"unknown deviation 'no_timout': did you mean no_timeout\?"):
        SimConfig(deviations=("no_timout",))
    with pytest.raises(ValueError, match="unknown deviation 'zzz'"):
        parse_deviations("no_timeout,zzz")
    assert parse_deviations(" no_timeout , no_timeout,locks_ignored") == ("no_timeout", "locks_ignored")
    assert SimConfig(deviations=["no_timeout"]).deviations == ("no_timeout",)  # as JSON hands it over


def test_a_name_set_after_construction_is_checked_when_the_simulator_starts() -> None:
    config = SimConfig()
    config.deviations = ("complete_twice_okay",)
    with pytest.raises(ValueError, match="did you mean complete_twice_ok"):
        Simulator(config).start()


def test_asking_for_a_name_outside_the_catalogue_is_a_bug() -> None:
    with pytest.raises(KeyError):
        SimConfig().deviates("not_a_deviation")


def _sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nfclease", "sim", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_the_command_line_refuses_an_unknown_name_in_one_line_and_lists_the_catalogue() -> None:
    bad = _sim("--port", "0", "--deviate", "no_timeout,lock_ignored")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "unknown deviation 'lock_ignored': did you mean locks_ignored" in bad.stderr.splitlines()[-1]
    listed = _sim("--list-deviations")
    assert listed.returncode == 0
    assert {line.split()[0] for line in listed.stdout.splitlines() if line and not line.startswith("#")} == set(CATALOGUE)
    assert "# vcsim-like: " in listed.stdout


def test_deviate_switches_the_behaviour_on_in_the_served_simulator() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "nfclease", "sim", "--port", "0", "--deviate", "no_timeout"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("https://127.0.0.1:")
        assert "DELIBERATELY WRONG: no_timeout;" in proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
