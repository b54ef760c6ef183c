"""One registry of load scenarios (``nfclease.load.scenarios.REGISTRY``); everything else agrees with it.

The Locust user classes, the locustfile's namespace, the ``mixed`` weights,
``nfclease load --help`` and load/README.md are derived from or checked
against the registry, so adding a scenario is one entry there. Locust
patches the standard library when imported, so what needs it runs in a child.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nfclease.load.scenarios import BY_NAME, MIXED_WEIGHTS, REGISTRY, RUNNERS, SCENARIOS, SETUP, parse_selection

ROOT = Path(__file__).resolve().parents[1]


def _child(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_the_registry_is_consistent() -> None:
    assert len(BY_NAME) == len(REGISTRY), "two scenarios share a name"
    assert len({s.user_class for s in REGISTRY}) == len(REGISTRY), "two scenarios share a user class"
    assert all(s.mixed_weight >= 1 and callable(s.run) for s in REGISTRY)
    assert SCENARIOS == tuple(s.name for s in REGISTRY)
    assert set(RUNNERS) == set(MIXED_WEIGHTS) == set(SCENARIOS) and set(SETUP) <= set(SCENARIOS)
    assert parse_selection(["mixed"]) == MIXED_WEIGHTS


def test_the_locustfile_offers_one_user_class_per_scenario() -> None:
    found = json.loads(_child(
        "import json, nfclease.load.locustfile as f\n"
        "from locust import User\n"
        "print(json.dumps({n: [c.scenario, c.weight] for n, c in vars(f).items()\n"
        "                  if isinstance(c, type) and issubclass(c, User) and getattr(c, 'scenario', None)\n"
        "                  and n in f.__all__}))"))
    assert found == {s.user_class: [s.name, s.mixed_weight] for s in REGISTRY}


def test_help_and_readme_name_every_scenario() -> None:
    help_text = _child("from nfclease.cli import main; main(['load', '--help'])")
    readme = (ROOT / "load" / "README.md").read_text(encoding="utf-8")
    for scenario in REGISTRY:
        assert scenario.name in " ".join(help_text.split()), scenario.name
        assert scenario.name in readme and scenario.user_class in readme, scenario.name
