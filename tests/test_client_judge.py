"""Judging clients: real clients (separate processes, unmodified pyvmomi, real sockets) against the
simulator's recording, under each fault-injection scenario.

- every defect of ``tests/clients/bad_client.py`` is flagged under its clause, and its defect-free
  twin passes;
- nfclease's own client (``nfclease.refclient``) breaks no clause and reacts correctly to every
  scenario: completes, or aborts and reports a categorised error, always within a bound;
- the recording hides secrets, the control endpoint switches scenarios without SOAP, and
  ``nfclease judge-client`` reads the files back.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from nfclease.conformance.client_judge import judge, judge_outcome, load_sessions
from nfclease.conformance.clients import ClientSpec, make_package, run_one
from nfclease.sim import SimConfig, Simulator
from nfclease.sim.scenarios import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
BAD_CLIENT = ROOT / "tests" / "clients" / "bad_client.py"
USER, PASSWORD = "judge", "s3cret-pw-for-the-recorder"
ENV = {"GOVC_USERNAME": "{user}", "GOVC_PASSWORD": "{password}"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    record = tmp_path_factory.mktemp("recorded")
    with Simulator(SimConfig(username=USER, password=PASSWORD, record=str(record))) as sim:
        yield sim


def run_recorded(sim: Simulator, tmp: Path, scenario: str, argv: list[str], timeout: float = 60.0
                 ) -> tuple[dict[str, Any], dict[str, str], Any]:
    """Run one client process under ``scenario``; its run, its clause verdicts and its outcome verdict."""
    sim.lab.switch.switch(scenario)
    run_dir = tmp / scenario
    sim.lab.recorder.redirect(run_dir)
    values = {"python": sys.executable, "url": sim.url, "port": str(sim.port), "cafile": sim.cafile,
              "user": USER, "password": PASSWORD, "workdir": str(tmp), "repo": str(ROOT)}
    result = run_one(ClientSpec("under-test", commands={"import": argv}, env=ENV), "import", values, timeout)
    sessions = load_sessions(sorted(run_dir.glob("session-*.jsonl")))
    assert sessions, f"nothing recorded; client said: {result['stderr']}"
    verdicts = {v.clause: v for v in judge(sessions)}
    return result, {k: v.status for k, v in verdicts.items()}, \
        (judge_outcome(sessions, result["exit"], result["timed_out"]), verdicts)


BAD = ["{python}", str(BAD_CLIENT), "--port", "{port}", "--cafile", "{cafile}", "--defect"]

DEFECTS = [
    pytest.param("progress-range", "baseline", "client.progress-range", id="progress-range"),
    pytest.param("progress-after-complete", "baseline", "client.progress-after-release", id="progress-after-complete"),
    pytest.param("use-after-release", "baseline", "client.release-unused", id="use-after-release"),
    pytest.param("no-abort", "upload-500", "client.abort-on-failure", id="no-abort"),
    pytest.param("abort-no-fault", "eof-upload", "client.abort-fault", id="abort-no-fault"),
    pytest.param("complete-early", "baseline", "client.complete-all", id="complete-early"),
    pytest.param("no-wait", "baseline", "client.wait-ready", id="no-wait"),
    pytest.param("wait-forever", "error-while-waiting", "client.wait-error", id="wait-forever"),
    pytest.param("no-star", "star-hosts", "client.star-host", id="no-star"),
    pytest.param("no-thumbprint", "bad-thumbprint", "client.thumbprint", id="no-thumbprint"),
    pytest.param("checksum-late", "baseline", "client.checksum-first", id="checksum-late"),
    pytest.param("put-disk", "baseline", "client.upload-method", id="put-disk"),
    pytest.param("wrong-type", "baseline", "client.upload-content-type", id="wrong-type"),
    pytest.param("flat-disk", "baseline", "client.upload-stream-vmdk", id="flat-disk"),
    pytest.param("no-renew", "slow-progress", "client.renew", marks=pytest.mark.slow, id="no-renew"),
]


@pytest.mark.parametrize("defect,scenario,clause", DEFECTS)
def test_each_defect_is_flagged_under_its_clause(lab: Simulator, tmp_path: Path, defect: str, scenario: str,
                                                 clause: str) -> None:
    timeout = 12.0 if defect == "wait-forever" else 60.0  # it never ends: killed after judging material
    result, status, (_outcome, verdicts) = run_recorded(lab, tmp_path, scenario, BAD + [defect], timeout)
    assert status[clause] == "FAIL", (verdicts[clause], result["stderr"])
    assert verdicts[clause].evidence and "L1" in verdicts[clause].evidence[0]


def test_the_same_client_without_its_defect_passes(lab: Simulator, tmp_path: Path) -> None:
    result, status, (outcome, verdicts) = run_recorded(lab, tmp_path, "baseline", BAD + ["good"])
    assert result["exit"] == 0, result["stderr"]
    assert "FAIL" not in status.values(), {k: v.evidence for k, v in verdicts.items() if v.status == "FAIL"}
    assert outcome.status == "PASS"


REF = ["{python}", "-m", "nfclease.refclient", "import", "--url", "{url}", "--cafile", "{cafile}",
       "--history", "{workdir}/own-events.jsonl", "--transfer-timeout"]
#: the own client's bound on a transfer without progress: short where the test is that it gives up
#: by itself (the stall lasts longer), else longer than the slow-progress transfer
TRANSFER_TIMEOUT = {"stall": "3"}

# scenario -> (exit status, the error category it reports, something the report must say)
OWN_REACTION = {
    "baseline": (0, None, "completed"),
    "eof-upload": (1, "transfer", "lease aborted"),
    "upload-500": (1, "transfer", "lease aborted"),
    "upload-503": (0, None, "completed"),  # retried once after the pause
    "stall": (1, "timeout", "lease aborted"),
    "timeout-mid-transfer": (1, "transfer", "Abort answered vim.fault.Timedout"),
    "error-while-waiting": (1, "lease", "InsufficientResourcesFault"),
    "star-hosts": (0, None, "completed"),
    "bad-thumbprint": (1, "tls", "lease aborted"),
    "slow-progress": (0, None, "completed"),
}


def test_every_scenario_has_an_expected_reaction() -> None:
    assert set(OWN_REACTION) == set(CATALOGUE)


@pytest.mark.parametrize("scenario", [pytest.param(s, marks=pytest.mark.slow) if s in ("stall", "slow-progress")
                                      else s for s in OWN_REACTION])
def test_own_client_reacts_correctly_to_each_scenario(lab: Simulator, tmp_path: Path, scenario: str) -> None:
    code, category, says = OWN_REACTION[scenario]
    argv = REF + [TRANSFER_TIMEOUT.get(scenario, "15")]
    result, status, (outcome, verdicts) = run_recorded(lab, tmp_path, scenario, argv)
    assert not result["timed_out"], "the suite's own client must never hang"
    assert result["exit"] == code, result["stderr"]
    if category:
        assert f"nfclease-client: {category}: " in result["stderr"], result["stderr"]
    assert says in result["stderr"], result["stderr"]
    assert "Traceback" not in result["stderr"]
    assert "FAIL" not in status.values(), {k: v.evidence for k, v in verdicts.items() if v.status == "FAIL"}
    assert outcome.status == "PASS", outcome.evidence
    if scenario == "upload-503":  # the retry is in the recording: a refused upload, then a whole one
        uploads = [v for v in verdicts["client.upload-method"].evidence]
        assert uploads and "2 uploads" in uploads[0], uploads
    if scenario == "slow-progress":  # a transfer longer than leaseTimeout: renewal is what kept it alive
        assert status["client.renew"] == "PASS" and status["client.renew-margin"] == "PASS"


def test_recording_hides_secrets(lab: Simulator, tmp_path: Path) -> None:
    run_recorded(lab, tmp_path, "baseline", REF + ["15"])
    text = "".join(p.read_text() for p in (tmp_path / "baseline").glob("session-*.jsonl"))
    tickets = list(lab.service.leases.by_ticket)
    assert PASSWORD not in text
    assert "Set-Cookie" not in text and "vmware_soap_session" not in text
    assert not [t for t in tickets if t in text], "an NFC ticket reached the recording"
    for line in text.splitlines():
        event = json.loads(line)
        moid = (event.get("value") or {}).get("moid") if isinstance(event.get("value"), dict) else None
        assert moid is None or moid.startswith("session[***]"), moid
    assert '"call": "Upload"' in text and '"call": "Read"' in text


def _control(sim: Simulator, method: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPSConnection("127.0.0.1", sim.port, context=ssl.create_default_context(cafile=sim.cafile),
                                       timeout=10)
    try:
        conn.request(method, "/nfclease/scenario", body=body or None)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_scenarios_switch_at_run_time_without_soap(lab: Simulator) -> None:
    status, answer = _control(lab, "PUT", b"star-hosts")
    assert status == 200 and answer["scenario"] == "star-hosts" and lab.lab.switch.active.name == "star-hosts"
    assert lab.service.leases.url_host.startswith("*:")
    status, answer = _control(lab, "PUT", b'{"scenario": "baseline"}')
    assert status == 200 and not lab.service.leases.url_host.startswith("*")
    status, answer = _control(lab, "PUT", b"stalll")
    assert status == 400 and "did you mean stall" in answer["error"]
    status, answer = _control(lab, "GET")
    assert status == 200 and set(answer["scenarios"]) == set(CATALOGUE)
    assert all(s["correct"] and s["outcome"] in ("complete", "fail", "either") for s in answer["scenarios"].values())


def test_judge_client_command_reads_the_recording(lab: Simulator, tmp_path: Path) -> None:
    run_recorded(lab, tmp_path, "upload-500", BAD + ["no-abort"])
    files = sorted(str(p) for p in (tmp_path / "upload-500").glob("session-*.jsonl"))
    done = subprocess.run([sys.executable, "-m", "nfclease", "judge-client", *files, "--exit-code", "1",
                           "--json", str(tmp_path / "v.json")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    line = next(x for x in done.stdout.splitlines() if "client.abort-on-failure" in x)
    assert line.startswith("FAIL") and "Complete after a failed transfer" in line
    verdicts = json.loads((tmp_path / "v.json").read_text())
    assert {v["clause"] for v in verdicts} >= {"client.renew", "scenario"}
    bad = subprocess.run([sys.executable, "-m", "nfclease", "judge-client", str(tmp_path / "nope.jsonl")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no such session file" in bad.stderr and "Traceback" not in bad.stderr


def test_clients_command_writes_the_matrix(tmp_path: Path) -> None:
    report = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "nfclease", "clients", "--client", "careless", "--clients",
                           str(ROOT / "tests" / "clients" / "bad-clients.yaml"), "--scenario", "upload-500",
                           "--report", str(report)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    matrix = (report / "matrix.md").read_text()
    assert "| client.abort-on-failure | SHOULD | FAIL (upload-500) |" in matrix
    assert "<td class=\"fail\">FAIL (upload-500)</td>" in (report / "matrix.html").read_text()
    results = json.loads((report / "clients.json").read_text())
    assert results["clients"]["careless"]["cells"][0]["outcome"]["status"] == "FAIL"
    assert PASSWORD not in (report / "clients.json").read_text()


def test_package_for_deploy_tools_is_an_ovf_with_its_disk(tmp_path: Path) -> None:
    ovf = make_package(tmp_path / "pkg", "pkgtest")
    from nfclease.vmdkread import read_stream_optimized

    disks = [p for p in ovf.parent.iterdir() if p.suffix == ".vmdk"]
    assert ovf.exists() and len(disks) == 1 and disks[0].name in ovf.read_text()
    assert read_stream_optimized(disks[0].read_bytes()) is not None


def test_sim_judges_each_session_live(tmp_path: Path) -> None:
    """``nfclease sim --record DIR --judge``: the verdicts of a session print when the client logs out."""
    from nfclease.child import read_lines, stop

    sim = subprocess.Popen([sys.executable, "-m", "nfclease", "sim", "--port", "0", "--record", str(tmp_path),
                            "--judge", "--scenario", "upload-503"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url, note = read_lines(sim, 2, 60, RuntimeError)
        cafile = note.split()[2]
        client = subprocess.run([sys.executable, str(BAD_CLIENT), "--defect", "no-abort", "--port",
                                 url.rsplit(":", 1)[1].split("/")[0], "--cafile", cafile],
                                capture_output=True, text=True, timeout=60)
        assert client.returncode == 1, client.stderr
    finally:
        stop(sim, 10)
    out = sim.stdout.read().decode()
    assert "# session-1.jsonl: " in out
    assert next(x for x in out.splitlines() if "client.abort-on-failure" in x).startswith("FAIL")


@pytest.mark.parametrize("argv,says", [
    (["--scenario", "stal"], "unknown client scenario 'stal': did you mean stall?"),
    (["--clients", "/nonexistent/clients.yaml"], "cannot read the clients file"),
    (["--client", "nobody"], "no client 'nobody'"),
])
def test_clients_command_refuses_a_bad_invocation_in_one_line(tmp_path: Path, argv: list[str], says: str) -> None:
    done = subprocess.run([sys.executable, "-m", "nfclease", "clients", "--report", str(tmp_path), *argv],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and says in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_session_reused_across_runs_is_recorded_in_the_new_run(lab: Simulator, tmp_path: Path) -> None:
    """A client reusing a saved session cookie (govc does) logs in once; its later calls still get recorded."""
    from pyVim.connect import Disconnect, SmartConnect
    from pyVmomi import vim, vmodl

    lab.lab.switch.switch("baseline")
    lab.lab.recorder.redirect(tmp_path / "first")
    si = SmartConnect(host="127.0.0.1", port=lab.port, user=USER, pwd=PASSWORD,
                      sslContext=ssl.create_default_context(cafile=lab.cafile))
    try:
        lab.lab.recorder.redirect(tmp_path / "second")
        vm = si.content.searchIndex.FindByInventoryPath("DC0/vm/DC0_C0_RP0_VM2")
        assert isinstance(vm, vim.VirtualMachine)
        lease = vm.ExportVm()
        lease.HttpNfcLeaseAbort(fault=vmodl.fault.RequestCanceled(msg="test"))
    finally:
        Disconnect(si)
    first = [json.loads(x)["call"] for p in (tmp_path / "first").glob("session-*.jsonl") for x in p.open()]
    second = [json.loads(x)["call"] for p in (tmp_path / "second").glob("session-*.jsonl") for x in p.open()]
    assert "Login" in first and "Acquire" not in first
    assert second[:2] == ["Target", "Scenario"] and {"Acquire", "Abort", "Logout"} <= set(second)


def test_a_client_that_overruns_is_killed_with_what_it_started(tmp_path: Path) -> None:
    """Ansible runs its module in a new session: killing the client's process group alone would leave it."""
    import psutil

    script = ("import subprocess, sys, time; "
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True); "
              "open(sys.argv[1], 'w').write(str(p.pid)); time.sleep(120)")
    spec = ClientSpec("overrun", commands={"import": ["{python}", "-c", script, "{workdir}/pid"]})
    result = run_one(spec, "import", {"python": sys.executable, "workdir": str(tmp_path)}, timeout=3)
    assert result["timed_out"] and result["exit"] is None
    grandchild = int((tmp_path / "pid").read_text())
    for _ in range(50):  # bounded: the kill is asynchronous
        if not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.1)
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
