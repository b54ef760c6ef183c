"""Load: the Locust scenarios against the embedded simulator, the distributed mode and the gate.

Every Locust run happens in a child process (``python -m nfclease.load.harness``, or
``python -m nfclease load`` for the gate): Locust monkey-patches socket, ssl
and threading with gevent on import, which must happen before anything else
exists (as it does under ``locust`` and ``nfclease load``) and must not leak
into the rest of this test session. Inside the child it is Locust's own
``Environment`` and local runner (or master + worker processes) driving
unmodified pyVmomi against a real simulator over TLS on loopback.

Each run is a few seconds, bounded by its duration, a graceful stop timeout
and the subprocess timeout here. The figures asserted are sanity figures
(bytes verified = bytes sent, nothing corrupted, no lease expired that was
kept alive, timeout observed within tolerance), never speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nfclease.load.bridge import LocustBridge
from nfclease.load.figures import Figures, percentile
from nfclease.load.gate import Baseline, Metric, combine, compare, parse_tolerance, regressions
from nfclease.load.knee import find_knee
from nfclease.load.scenarios import parse_selection
from nfclease.events import Event

ROOT = Path(__file__).resolve().parents[1]
LEASE_TIMEOUT = 2          # seconds the test simulator advertises (info.leaseTimeout is whole seconds)
FAST_SIM = {"lease_timeout": LEASE_TIMEOUT, "init_seconds": 0.05}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def harness(request: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    """One load run in a fresh process (see load/harness.py); its figures as a dict."""
    proc = subprocess.run([sys.executable, "-m", "nfclease.load.harness", json.dumps(request)], capture_output=True,
                          text=True, timeout=timeout, cwd=str(ROOT), env=_env())
    assert proc.returncode == 0, f"harness failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out["exceptions"], out["exceptions"]
    return out


def harness_batch(requests: dict[str, dict[str, Any]], timeout: float = 150) -> dict[str, dict[str, Any]]:
    """Several runs in one fresh process (one interpreter start, shared simulators): results by name."""
    names = list(requests)
    proc = subprocess.run([sys.executable, "-m", "nfclease.load.harness", json.dumps({"runs": [requests[n] for n in names]})],
                          capture_output=True, text=True, timeout=timeout, cwd=str(ROOT), env=_env())
    assert proc.returncode == 0, f"harness failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])["results"]
    return dict(zip(names, results))


#: the single-process scenario runs, made once for the module (see ``runs``)
SCENARIO_RUNS: dict[str, dict[str, Any]] = {
    "import-upload": {"selection": {"import-upload": 1}, "users": 2, "duration": 2, "sim": FAST_SIM,
                      "options": {"disks": 2, "disk_mib": 3, "keepalive": 0.5}},
    "export-download": {"selection": {"export-download": 1}, "users": 2, "duration": 2.5, "sim": FAST_SIM,
                        "options": {"disk_mib": 4, "keepalive": 0.5}},
    "churn": {"selection": {"churn": 1}, "users": 2, "duration": 1.5, "sim": FAST_SIM},
    "keepalive": {"selection": {"keepalive": 1}, "users": 2, "duration": 2.6, "sim": FAST_SIM,
                  "options": {"held_leases": 3, "keepalive": 0.4, "hold_seconds": 2.3}},
    # Progress less often than the lease timeout: the leases must be seen to expire
    "keepalive-too-slow": {"selection": {"keepalive": 1}, "users": 1, "duration": 3, "sim": FAST_SIM,
                           "options": {"held_leases": 2, "keepalive": 5.0, "hold_seconds": 2.5, "max_iterations": 1}},
    "timeout-probe": {"selection": {"timeout-probe": 1}, "users": 3, "duration": 3, "sim": FAST_SIM,
                      "options": {"probe_poll": 0.02, "probe_lead": 0.3}},
    "mixed": {"selection": parse_selection(["mixed"]), "users": 5, "spawn_rate": 50, "duration": 3.5,
              "sim": FAST_SIM, "options": {"disk_mib": 2, "keepalive": 0.5, "held_leases": 2, "hold_seconds": 2}},
    # a target whose manifest disagrees with the bytes sent
    "corrupting": {"selection": {"import-upload": 1}, "users": 1, "duration": 1.5,
                   "sim": {**FAST_SIM, "deviations": ["manifest_wrong_sha1"]}, "options": {"disk_mib": 2}},
}


@pytest.fixture(scope="module")
def runs() -> dict[str, dict[str, Any]]:
    results = harness_batch(SCENARIO_RUNS)
    for name, out in results.items():
        assert not out["exceptions"], (name, out["exceptions"])
    return results


def sane_transfers(fig: dict[str, Any]) -> None:
    assert fig["transfers"] > 0
    assert fig["transfers_failed"] == 0
    assert fig["bytes_transferred"] > 0
    assert fig["bytes_verified"] == fig["bytes_transferred"]
    assert fig["bytes_corrupted"] == 0
    assert fig["leases_expired"] == 0
    assert fig["throughput_mbps"] > 0
    assert fig["errors"] == {}


# -- the scenarios, each against the simulator ----------------------------------------

def test_import_upload(runs: dict[str, dict[str, Any]]) -> None:
    out = runs["import-upload"]
    fig = out["summary"]["scenarios"]["import-upload"]
    sane_transfers(fig)
    assert fig["bytes_uploaded"] == fig["bytes_transferred"] and fig["bytes_downloaded"] == 0
    assert fig["transfers"] == 2 * fig["soap_latency_ms"]["HttpNfcLeaseComplete"]["count"]
    assert fig["time_to_ready_s"]["count"] >= fig["soap_latency_ms"]["HttpNfcLeaseComplete"]["count"]
    # the Locust request events carry the same numbers
    assert out["stats"]["NFC upload"]["requests"] == fig["transfers"]
    assert out["stats"]["NFC upload"]["bytes"] == fig["bytes_uploaded"]
    assert out["stats"]["SOAP ImportVApp"]["requests"] >= fig["leases_acquired"]
    assert all(v["failures"] == 0 for v in out["stats"].values())
    assert "setup" not in out["summary"]["scenarios"] and "teardown" not in out["summary"]["scenarios"]


def test_export_download(runs: dict[str, dict[str, Any]]) -> None:
    out = runs["export-download"]
    fig = out["summary"]["scenarios"]["export-download"]
    sane_transfers(fig)
    assert fig["bytes_downloaded"] == fig["bytes_transferred"] and fig["bytes_uploaded"] == 0
    assert fig["soap_latency_ms"]["ExportVm"]["count"] == fig["leases_acquired"] >= 2
    assert out["stats"]["NFC download"]["bytes"] == fig["bytes_downloaded"]
    assert out["stats"]["NFC upload"]["requests"] == 2  # each user's own VM, imported once (setup)


def test_churn(runs: dict[str, dict[str, Any]]) -> None:
    out = runs["churn"]
    fig = out["summary"]["scenarios"]["churn"]
    aborts = fig["soap_latency_ms"]["HttpNfcLeaseAbort"]
    assert fig["leases_acquired"] >= 10
    assert aborts["count"] == fig["leases_acquired"] and aborts["failures"] == 0
    assert fig["transfers"] == 0 and fig["errors"] == {} and fig["leases_per_s"] > 0


def test_keepalive_keeps_leases_alive(runs: dict[str, dict[str, Any]]) -> None:
    fig = runs["keepalive"]["summary"]["scenarios"]["keepalive"]
    progress = fig["soap_latency_ms"]["HttpNfcLeaseProgress"]
    assert fig["leases_acquired"] >= 6
    assert progress["count"] >= 6 * 4 and progress["failures"] == 0  # 2.3 s (> leaseTimeout) / 0.4 s, per lease
    assert progress["p95"] > 0
    assert fig["leases_expired"] == 0 and fig["errors"] == {}


def test_keepalive_counts_leases_that_expire(runs: dict[str, dict[str, Any]]) -> None:
    """Progress less often than the lease timeout: the figure must show the expiries."""
    fig = runs["keepalive-too-slow"]["summary"]["scenarios"]["keepalive"]
    assert fig["leases_acquired"] == 2
    assert fig["leases_expired"] == 2


def test_corruption_is_counted(runs: dict[str, dict[str, Any]]) -> None:
    """A target whose manifest disagrees with the bytes sent: every byte counts as corrupted."""
    fig = runs["corrupting"]["summary"]["scenarios"]["import-upload"]
    assert fig["transfers"] > 0
    assert fig["bytes_verified"] == 0
    assert fig["bytes_corrupted"] == fig["bytes_transferred"] > 0


def test_timeout_probe_accuracy(runs: dict[str, dict[str, Any]]) -> None:
    fig = runs["timeout-probe"]["summary"]["scenarios"]["timeout-probe"]
    accuracy = fig["timeout_accuracy"]
    tolerance = max(0.050, 0.02 * LEASE_TIMEOUT)
    assert accuracy["samples"] >= 3
    assert accuracy["advertised_s"] == [LEASE_TIMEOUT]
    assert accuracy["not_expired"] == 0
    # the observed expiry is bracketed (+- uncertainty); that interval must reach the tolerance band
    assert accuracy["abs_error_s"]["max"] - accuracy["uncertainty_s"]["max"] <= tolerance, accuracy
    assert accuracy["abs_error_s"]["p50"] <= tolerance, accuracy
    assert fig["leases_expired"] == 0 and fig["leases_expired_deliberately"] >= accuracy["samples"]


def test_mixed(runs: dict[str, dict[str, Any]]) -> None:
    selection = parse_selection(["mixed"])
    assert set(selection) == {"import-upload", "export-download", "churn", "keepalive", "timeout-probe"}
    out = runs["mixed"]
    scenarios = out["summary"]["scenarios"]
    assert set(scenarios) == set(selection)  # one user each: the weights place one per class
    for name in ("import-upload", "export-download"):
        sane_transfers(scenarios[name])
    for name, fig in scenarios.items():
        assert fig["bytes_corrupted"] == 0 and fig["leases_expired"] == 0, name
    aggregate = out["summary"]["aggregate"]
    assert aggregate["bytes_transferred"] == sum(f["bytes_transferred"] for f in scenarios.values())
    assert aggregate["throughput_mbps"] > 0
    assert scenarios["timeout-probe"]["timeout_accuracy"]["samples"] >= 1


# -- gevent: pyVmomi's sockets cooperate -------------------------------------------------

def test_pyvmomi_cooperates_with_gevent() -> None:
    """N users' Progress calls overlap in time against a slow server in another process.

    The simulator runs in its own process with 100 ms added to every SOAP
    call. If pyVmomi's http.client/ssl sockets blocked the gevent hub, one
    user's Progress would stop every other greenlet until it returned, and
    at most one call would ever be in flight. The socket classes are checked
    too: gevent's SSLSocket under a gevent SSLContext.
    """
    users = 6
    out = harness({"selection": {"keepalive": 1}, "users": users, "spawn_rate": 100, "duration": 5,
                   "sim": {"lease_timeout": 5, "init_seconds": 0.05, "delay": 100}, "sim_process": True,
                   "options": {"held_leases": 1, "keepalive": 0.3, "hold_seconds": 2},
                   "intervals": ["HttpNfcLeaseProgress"], "check_sockets": True}, timeout=90)
    sockets = out["sockets"]
    assert sockets["patched"] == {"socket": True, "ssl": True, "threading": True, "time": True}
    assert sockets["soap_socket_is_gevent"], sockets
    assert sockets["ssl_context_is_gevent"], sockets
    calls = out["intervals"]["HttpNfcLeaseProgress"]
    assert len(calls) >= users * 2
    assert all(duration >= 0.095 for duration in (end - start for start, end, _ok in calls))
    points = sorted([(start, 1) for start, _end, _ok in calls] + [(end, -1) for _start, end, _ok in calls])
    in_flight = peak = 0
    for _t, step in points:
        in_flight += step
        peak = max(peak, in_flight)
    assert peak >= users // 2, f"at most {peak} Progress calls in flight at once: the hub was blocked"


# -- distributed: a master and two worker processes --------------------------------------

def test_two_workers() -> None:
    out = harness({"selection": {"import-upload": 2, "churn": 1}, "users": 4, "spawn_rate": 50, "duration": 2.5,
                   "workers": 2, "sim": FAST_SIM, "options": {"disk_mib": 2, "keepalive": 0.5}}, timeout=120)
    assert len(out["workers"]) == 2 and all(count >= 1 for count in out["workers"].values()), out["workers"]
    upload = out["summary"]["scenarios"]["import-upload"]
    sane_transfers(upload)
    assert out["summary"]["scenarios"]["churn"]["leases_acquired"] > 0
    # Locust's stats (aggregated by the master) and the figures (shipped by the workers) agree
    assert out["stats"]["NFC upload"]["requests"] == upload["transfers"]
    assert out["stats"]["NFC upload"]["bytes"] == upload["bytes_uploaded"]


# -- the regression gate --------------------------------------------------------------------

def _load_cli(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "nfclease", "load", "--scenario", "import-upload", "--users", "1",
            "--duration", "1.5s", "--disk-mib", "4", "--init-seconds", "0.05", "--repeat", "3", *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=str(ROOT),
                          env={**_env(), "COLUMNS": "200"})


GATE_BASE_DELAY = 0.05  # s per MiB on top of the CPU work: see test_gate_catches_slowdown


def test_gate_catches_slowdown_and_passes_unchanged(tmp_path: Path) -> None:
    """--save-baseline, then --baseline: an unchanged target passes, one ~30 % slower fails.

    This machine is shared: other processes steal CPU, and a CPU-bound
    transfer's time swings by tens of percent between seconds. So the
    simulator used here spends most of each MiB in its delay knob (50 ms per
    MiB, a sleep) rather than in CPU, which keeps repeat-to-repeat spread at
    a few percent; the gate itself (medians over 3 repeats, tolerance 10 %
    widened by half the observed spread) is what a noisier run would get.
    The slowed target adds 30 % to the measured time of an iteration (one
    user, one lease after the other), spread over its MiB: throughput / 1.3.
    """
    baseline = tmp_path / "baseline.json"
    base = _load_cli(tmp_path, "--delay", str(GATE_BASE_DELAY), "--report", str(tmp_path / "base"),
                     "--save-baseline", str(baseline))
    assert base.returncode == 0, base.stdout + base.stderr
    saved = json.loads(baseline.read_text())
    throughput = saved["metrics"]["throughput MB/s import-upload"]
    assert len(throughput["values"]) == 3 and throughput["median"] > 0

    record = json.loads((tmp_path / "base" / "load.json").read_text())
    fig = record["scenarios"]["import-upload"]
    mib_per_iteration = fig["bytes_transferred"] / fig["leases_acquired"] / (1 << 20)
    seconds_per_iteration = fig["active_s"] / fig["leases_acquired"]
    slow_delay = GATE_BASE_DELAY + 0.3 * seconds_per_iteration / mib_per_iteration

    same = _load_cli(tmp_path, "--delay", str(GATE_BASE_DELAY), "--report", str(tmp_path / "same"),
                     "--baseline", str(baseline), "--tolerance", "10%")
    slow = _load_cli(tmp_path, "--delay", f"{slow_delay:.4f}", "--report", str(tmp_path / "slow"),
                     "--baseline", str(baseline), "--tolerance", "10%")
    print(f"\n--- unchanged target (delay {GATE_BASE_DELAY} s/MiB) ---\n{same.stdout}"
          f"\n--- slowed target (delay {slow_delay:.4f} s/MiB) ---\n{slow.stdout}")
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no regression" in same.stdout
    assert slow.returncode == 1, slow.stdout + slow.stderr
    gate = json.loads((tmp_path / "slow" / "load.json").read_text())["gate"]
    flagged = {row["metric"] for row in gate["rows"] if row["verdict"] == "REGRESSION"}
    assert "throughput MB/s import-upload" in flagged, gate
    record = json.loads((tmp_path / "same" / "load.json").read_text())
    assert record["run_info"]["users"] == 1 and record["run_info"]["repeat"] == 3
    assert "password" not in json.dumps(record["run_info"]).lower()
    for name in ("load.json", "locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv",
                 "locust.html", "load.png"):
        assert (tmp_path / "same" / name).stat().st_size > 0, name


# -- pure parts: the gate's arithmetic, the knee, the bridge ---------------------------------

def _metric(name: str, values: list[float], higher: bool = True, unit: str = "MB/s", samples: int = 500) -> Metric:
    return Metric(name, values, higher, unit, samples)


def test_gate_arithmetic() -> None:
    assert parse_tolerance("10%") == pytest.approx(0.10) and parse_tolerance("0.2") == pytest.approx(0.2)
    base = Baseline({"tp": _metric("tp", [100, 104, 98]), "lat": _metric("lat", [10, 10.5, 9.5], False, "ms")})
    # unchanged within noise
    assert not regressions(compare(base, {"tp": _metric("tp", [97, 101, 103]),
                                          "lat": _metric("lat", [10.2, 9.9, 10.8], False, "ms")}, 0.10))
    # 30 % slower: throughput down 23 %, latency up 30 %
    rows = compare(base, {"tp": _metric("tp", [77, 78, 76]), "lat": _metric("lat", [13, 13.2, 12.9], False, "ms")}, 0.10)
    assert {r.name for r in regressions(rows)} == {"tp", "lat"}
    # a noisy current run widens the tolerance by half its spread (documented), so noise alone does not fail
    noisy = compare(base, {"tp": _metric("tp", [70, 88, 105])}, 0.10)
    tp = next(r for r in noisy if r.name == "tp")
    assert tp.allowed == pytest.approx(0.10 + (105 - 70) / 88 / 2) and tp.verdict == "ok"
    # one outlier run does not make a regression: the repeats must not overlap
    outlier = next(r for r in compare(base, {"tp": _metric("tp", [70, 72, 101])}, 0.10) if r.name == "tp")
    assert outlier.verdict != "REGRESSION" and outlier.change is not None
    # sub-millisecond latency changes and thinly sampled latencies (p95 of < 100 calls) are not gated
    tiny = compare(Baseline({"l": _metric("l", [1.0, 1.0, 1.0], False, "ms")}),
                   {"l": _metric("l", [1.5, 1.5, 1.5], False, "ms")}, 0.10)
    assert tiny[0].verdict == "ok"
    thin = compare(Baseline({"l": _metric("l", [10, 10, 10], False, "ms", samples=60)}),
                   {"l": _metric("l", [30, 30, 30], False, "ms", samples=60)}, 0.10)
    assert thin[0].verdict == "not gated"
    # metrics from load.json figures, medians over repeats, saved and read back
    figures = {"scenarios": {"import-upload": {"bytes_transferred": 10, "throughput_mbps": 50.0, "transfers": 30}},
               "aggregate": {"soap_latency_ms": {"HttpNfcLeaseProgress": {"count": 40, "p95": 3.0}}}}
    combined = combine([figures, figures])
    assert combined["throughput MB/s import-upload"].values == [50.0, 50.0]
    assert combined["p95 ms SOAP HttpNfcLeaseProgress"].higher_is_better is False


def test_knee() -> None:
    """Synthetic steps: throughput doubles from 1 to 2 users, then stalls at 4: the knee is 2."""
    figures = Figures()
    windows = [(1, 0.0, 10.0), (2, 10.0, 20.0), (4, 20.0, 30.0)]
    rates = {1: 10e6, 2: 20e6, 4: 21e6}  # bytes per second
    for users, start, end in windows:
        t = start
        while t < end:
            figures.add("xfer", "import-upload", "upload", rates[users], t, t + 1.0, True)
            figures.add("soap", "import-upload", "HttpNfcLeaseProgress", 2.0, t + 0.5, True)
            t += 1.0
    knee = find_knee(figures, windows)
    assert knee["reached"] and knee["knee_users"] == 2, knee
    assert [s["saturated"] for s in knee["steps"]] == [False, False, True]
    assert knee["steps"][1]["efficiency"] == pytest.approx(1.0, abs=0.05)


def _event(call: str, lease: str = "L1", *, outcome: str = "ok", value: Any = None, fault: str | None = None,
           start: float = 0.0, end: float = 0.0, **args: Any) -> Event:
    return Event(call=call, lease=lease, args=args, outcome=outcome, value=value, fault=fault, start=start, end=end)  # type: ignore[arg-type]


def test_bridge_turns_events_into_requests_and_figures() -> None:
    fired: list[dict[str, Any]] = []
    figures = Figures()
    bridge = LocustBridge(lambda **kw: fired.append(kw), figures, "timeout-probe")
    info = {"leaseTimeout": 3, "deviceUrl": []}
    for event in [
        _event("Acquire", value={"moid": "lease-1"}, start=0.0, end=0.05, kind="import"),
        _event("WaitReady", value={"state": "ready", "info": info}, start=0.05, end=0.25, timeout=60),
        _event("Upload", value={"status": 200, "bytes": 1000, "sha1": "aa"}, start=0.3, end=0.4, device="d0"),
        _event("Upload", value={"status": 200, "bytes": 500, "sha1": "bb"}, start=0.4, end=0.5, device="d1"),
        _event("GetManifest", value=[{"key": "d0", "sha1": "aa", "size": 1000}, {"key": "d1", "sha1": "XX", "size": 500}],
               start=0.5, end=0.51),
        _event("Progress", start=1.0, end=1.02, percent=0),
        _event("Read", value={"state": "ready", "info": info}, start=3.98, end=3.99),
        _event("Read", value={"state": "error", "error": {"fault": "vim.fault.Timedout"}}, start=4.01, end=4.03),
        _event("Abort", outcome="fail", fault="client.GreenletExit", start=4.1, end=4.1),  # a killed call: dropped
    ]:
        bridge(event)
    names = [(f["request_type"], f["name"]) for f in fired]
    assert names == [("SOAP", "ImportVApp"), ("LEASE", "time-to-ready"), ("NFC", "upload"), ("NFC", "upload"),
                     ("SOAP", "HttpNfcLeaseGetManifest"), ("SOAP", "HttpNfcLeaseProgress"),
                     ("SOAP", "RetrievePropertiesEx"), ("SOAP", "RetrievePropertiesEx")]
    assert fired[2]["response_length"] == 1000 and fired[2]["response_time"] == pytest.approx(100.0)
    assert fired[1]["response_time"] == pytest.approx(250.0)  # Acquire start to ready
    summary = figures.summary()["scenarios"]["timeout-probe"]
    assert summary["bytes_verified"] == 1000 and summary["bytes_corrupted"] == 500
    assert summary["leases_expired"] == 0 and summary["leases_expired_deliberately"] == 1
    accuracy = summary["timeout_accuracy"]
    # renewal at 1.01 (mid-Progress); expiry between 3.985 and 4.02 -> about 3.0 s observed
    assert accuracy["samples"] == 1
    assert accuracy["error_s"]["p50"] == pytest.approx(4.0025 - 1.01 - 3, abs=1e-3)


def test_figures_merge_like_worker_reports() -> None:
    worker, master = Figures(), Figures()
    worker.add("soap", "churn", "HttpNfcLeaseAbort", 4.0, 100.0, True)
    master.merge(worker.drain())
    assert worker.drain() == {}
    worker.add("soap", "churn", "HttpNfcLeaseAbort", 6.0, 101.0, False)
    master.merge(worker.drain())
    fig = master.summary()["scenarios"]["churn"]["soap_latency_ms"]["HttpNfcLeaseAbort"]
    assert fig["count"] == 2 and fig["failures"] == 1 and fig["p50"] == 5.0
    assert percentile([1, 2, 3, 4], 50) == 2.5
