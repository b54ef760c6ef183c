"""The pytest plugin (entry point ``pytest11: nfclease``): targets, profiles and fixtures.

    pytest conformance --nfclease-target sim|vcsim|https://user:pass@host/sdk
                       [--nfclease-insecure] [--nfclease-thumbprint TP]
                       [--nfclease-expectations vcsim-0.24] [--nfclease-profile smoke|ci|thorough]
                       [--nfclease-allow-expiry] [--nfclease-report DIR]

Every option and fixture is named ``nfclease...``: the plugin is loaded by
every pytest session of an environment where nfclease is installed, so it
must not take generic names (``--target``, ``target``, ``model``) another
plugin or project may use.

``GOVC_URL``/``GOVC_USERNAME``/``GOVC_PASSWORD``/``GOVC_INSECURE`` (and the
placement variables) are honoured through :class:`nfclease.target.TargetSpec`
when ``--nfclease-target`` is not given. The simulator is started by the suite with a
short lease timeout (2 s) and a quick initialisation.

Fixtures (session-scoped, so one target and one model serve the whole run):

* ``nfclease_target`` -- the connected :class:`nfclease.target.Target` (closed, and
  everything the suite created removed, at the end);
* ``nfclease_run`` -- the :class:`nfclease.conformance.context.RunContext`: event
  stream, history (``DIR/history.jsonl``), rules raise on a FAIL unless the
  expectations list the clause;
* ``nfclease_model`` -- the run's :class:`nfclease.conformance.model.Model`: every event of
  every test is judged by it; the per-clause table is printed at the end;
* ``nfclease_profile``, ``nfclease_expectations``, ``nfclease_seed``.

Everything heavy is imported inside the fixtures: the plugin is loaded by
every pytest run once nfclease is installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

PROFILE_NAMES = ("smoke", "ci", "thorough")
_RUN_KEY = "_nfclease_run"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nfclease", "HttpNfcLease conformance (nfclease)")
    group.addoption("--nfclease-target", default=None,
                    help="sim (default; started by the suite), vcsim, or https://user:pass@host/sdk "
                         "(default: $GOVC_URL, else sim)")
    group.addoption("--nfclease-insecure", action="store_true", default=False,
                    help="do not verify the target's TLS certificate")
    group.addoption("--nfclease-thumbprint", default=None, help="pin the target's certificate (SHA-1 or SHA-256)")
    group.addoption("--nfclease-expectations", default=None,
                    help="known deviations: a name in conformance/expectations/ (vcsim-0.24) or a YAML path")
    group.addoption("--nfclease-profile", default=None, choices=PROFILE_NAMES,
                    help="how much the state machine explores (default smoke; $NFCLEASE_PROFILE)")
    group.addoption("--nfclease-allow-expiry", action="store_true", default=False,
                    help="wait for leases to expire whatever the advertised leaseTimeout (by default only "
                         "when it fits the profile's expiry budget)")
    group.addoption("--nfclease-report", default=None,
                    help="directory for history.jsonl, results.json and junit.xml of the conformance run")


def _opt(config: pytest.Config, name: str, default: Any = None) -> Any:
    # the plugin may be registered late (conformance/test_*.py name it when nfclease is
    # not installed): then its options were never parsed and the defaults apply
    try:
        value = config.getoption(name, default)
    except ValueError:
        return default
    return default if value is None else value


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vcsim: needs govmomi's vcsim binary (tools/build-vcsim)")


@pytest.fixture(scope="session")
def nfclease_profile(pytestconfig: pytest.Config) -> Any:
    from nfclease.conformance.context import PROFILES

    return PROFILES[_opt(pytestconfig, "--nfclease-profile") or os.environ.get("NFCLEASE_PROFILE") or "smoke"]


@pytest.fixture(scope="session")
def nfclease_expectations(pytestconfig: pytest.Config) -> dict[str, Any]:
    from nfclease.conformance.expectations import load_expectations

    name = _opt(pytestconfig, "--nfclease-expectations")
    return load_expectations(name) if name else {}


@pytest.fixture(scope="session")
def nfclease_seed(pytestconfig: pytest.Config) -> int | None:
    """Hypothesis' ``--hypothesis-seed`` if given (the machine's runs are seeded from it)."""
    seed = _opt(pytestconfig, "hypothesis_seed")
    return int(seed) if seed is not None else None


@pytest.fixture(scope="session")
def nfclease_target(pytestconfig: pytest.Config) -> Iterator[Any]:
    from nfclease.target import TargetSpec, open_target
    from nfclease.vcsim import find_vcsim

    spec = TargetSpec.parse(_opt(pytestconfig, "--nfclease-target"),
                            insecure=True if _opt(pytestconfig, "--nfclease-insecure", False) else None,
                            thumbprint=_opt(pytestconfig, "--nfclease-thumbprint"))
    if spec.kind == "vcsim" and find_vcsim() is None:
        pytest.skip("no vcsim binary: run tools/build-vcsim")
    with open_target(spec, sim_config="conformance" if spec.kind == "sim" else None,
                     task_timeout=120.0) as connected:
        yield connected


@pytest.fixture(scope="session")
def nfclease_run(pytestconfig: pytest.Config, nfclease_target: Any, nfclease_profile: Any,
                 nfclease_expectations: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from nfclease.conformance.context import RunContext

    report = _opt(pytestconfig, "--nfclease-report")
    directory = Path(report) if report else tmp_path_factory.mktemp("nfclease")
    allow = True if _opt(pytestconfig, "--nfclease-allow-expiry", False) else None  # None: the profile's budget decides
    expected_fail = {c for c, e in nfclease_expectations.items() if e.status == "FAIL"}
    ctx = RunContext(nfclease_target, history=directory / "history.jsonl", allow_expiry=allow,
                     sleep_budget=nfclease_profile.sleep_budget, raise_on_fail=True, no_raise=expected_fail,
                     expiry_budget=nfclease_profile.expiry_budget,
                     expiry_budget_source=f"the {nfclease_profile.name} profile's expiry budget")
    ctx.report_dir = directory  # type: ignore[attr-defined]
    setattr(pytestconfig, _RUN_KEY, ctx)
    from nfclease.reports.allure_steps import wire

    ctx.allure_steps = wire(pytestconfig, ctx)  # type: ignore[attr-defined]  (None without --alluredir)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(autouse=True)
def _nfclease_allure(request: pytest.FixtureRequest) -> None:
    """Under allure-pytest: each conformance test labelled (clause, level, API, target), its steps its own."""
    if "nfclease_run" not in request.fixturenames or getattr(request.config.option, "allure_report_dir", None) is None:
        return
    ctx = request.getfixturevalue("nfclease_run")
    if getattr(ctx, "allure_steps", None) is not None:
        from nfclease.reports.allure_steps import clause_labels

        ctx.allure_steps.new_test()
        clause_labels(request, ctx)


@pytest.fixture(scope="session")
def nfclease_model(nfclease_run: Any) -> Any:
    """The run's reference model (judges every event of the session)."""
    return nfclease_run.model


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    ctx = getattr(config, _RUN_KEY, None)
    if ctx is None:
        return
    import io

    from rich.console import Console

    from nfclease.conformance.explain import finalize
    from nfclease.conformance.expectations import apply_expectations, load_expectations
    from nfclease.reports.results import RunInfo, print_results, write_junit, write_results

    results = finalize(ctx)
    name = _opt(config, "--expectations")
    if name:
        results = apply_expectations(results, load_expectations(name), str(name))
    info = RunInfo(**ctx.target.run_info(), profile=_opt(config, "--nfclease-profile") or "smoke")
    directory = getattr(ctx, "report_dir", None)
    from nfclease.reports.allure_steps import finish

    finish(config, info.to_dict())
    if directory is not None:
        write_results(directory, results, info)
        write_junit(Path(directory) / "junit.xml", results, info)
    buffer = io.StringIO()
    print_results(results, console=Console(file=buffer, width=max(100, terminalreporter._tw.fullwidth),
                                           force_terminal=False),
                  title=f"HttpNfcLease conformance: {info.product} (API {info.api_version})", show_repro=False)
    terminalreporter.section("nfclease conformance")
    terminalreporter.write(buffer.getvalue())
    if directory is not None:
        terminalreporter.write_line(f"history, results.json, junit.xml: {directory}")
