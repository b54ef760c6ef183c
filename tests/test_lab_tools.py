"""``nfclease clean`` finds planted leftovers and removes only them; ``nfclease doctor`` reports and
creates nothing; TLS fails closed on a wrong thumbprint and an unknown CA, saying how to pin or trust.
All against one shared ``nfclease sim`` child, planted and inspected with plain pyVmomi."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from pyVim.connect import Disconnect

from conftest import start_import, wait_ready, wait_task
from lab import LabSim, inspect, lab_fixture, nfclease
from nfclease.events import EventStream
from nfclease.session import acquire_import
from nfclease.target import TargetSpec, open_target
from nfclease.targetargs import export_to_environment


@pytest.fixture(scope="module")
def lab() -> Iterator[LabSim]:
    yield from lab_fixture()


@pytest.fixture
def planter(lab: LabSim) -> Iterator[Any]:
    si = lab.connect()
    yield si
    Disconnect(si)


def _complete_import(si: Any, name: str) -> Any:
    done = start_import(si, name=name)
    wait_ready(done.lease)
    done.lease.HttpNfcLeaseComplete()
    return done


def test_clean_lists_planted_leftovers_then_removes_only_them(lab: LabSim, planter: Any) -> None:
    run = f"plant-{uuid.uuid4().hex[:6]}"
    prefix = f"nfclease-{run}-"
    _complete_import(planter, f"{prefix}1")                      # a VM a killed run left
    held = start_import(planter, name=f"{prefix}2")              # an import whose lease is still held
    wait_ready(held.lease)
    vm = planter.content.searchIndex.FindByInventoryPath("DC0/vm/DC0_C0_RP0_VM2")
    wait_task(vm.CreateSnapshot_Task(name=f"{prefix}snap", description="", memory=False, quiesce=False))
    bystander = f"keep-{run}"
    _complete_import(planter, bystander)                         # not the suite's: must survive

    dry = nfclease(lab, "clean", "--target", lab.target, "--run", run)
    assert dry.returncode == 0, dry.stderr
    for name in (f"{prefix}1", f"{prefix}2", f"{prefix}snap"):
        assert name in dry.stdout, dry.stdout
    assert "lease" in dry.stdout and "dry run" in dry.stdout and bystander not in dry.stdout
    assert sorted(inspect(lab).named(prefix)) == [f"{prefix}1", f"{prefix}2", f"{prefix}snap"]  # untouched

    removed = nfclease(lab, "clean", "--target", lab.target, "--run", run, "--yes")
    assert removed.returncode == 1, removed.stdout + removed.stderr  # the held lease's VM cannot go yet
    assert inspect(lab).named(prefix) == [f"{prefix}2"]
    assert "after removal: 2 left" in removed.stdout and "TaskInProgress" in removed.stdout, removed.stdout
    assert "session[***]" in removed.stdout and not re.search(r"session\[[0-9a-f]{8}-", removed.stdout)  # keys masked

    held.lease.HttpNfcLeaseAbort()  # its session lets go: the import is undone by the server
    final = nfclease(lab, "clean", "--target", lab.target, "--run", run, "--yes")
    assert final.returncode == 0 and "0 leftover(s)" in final.stdout, final.stdout + final.stderr
    seen = inspect(lab)
    assert seen.named(prefix) == [] and bystander in seen.entities and seen.running == []
    vm_bystander = planter.content.searchIndex.FindByInventoryPath(f"DC0/vm/{bystander}")
    wait_task(vm_bystander.Destroy_Task())


def test_clean_refuses_a_prefix_that_is_not_the_suites(lab: LabSim) -> None:
    proc = nfclease(lab, "clean", "--target", lab.target, "--prefix", "DC0_", "--yes")
    assert proc.returncode == 2 and "does not start with 'nfclease-'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_doctor_reports_and_creates_nothing(lab: LabSim) -> None:
    before = inspect(lab)
    proc = nfclease(lab, "doctor", "--target", lab.target)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for expected in ("nfclease embedded simulator", "apiVersion 9.0.0.0", "pull (6.7+)", "placement",
                     "datacenter DC0", "datastore LocalDS_0", "leaseTimeout", "--allow-expiry", "ready for a run"):
        assert expected in out, out
    assert lab.cafile in out and "Lab-Pa55word" not in out + proc.stderr
    after = inspect(lab)
    assert (after.entities, after.snapshots, after.running) == (before.entities, before.snapshots, before.running)


def test_doctor_at_an_old_api_and_with_a_missing_placement(lab: LabSim) -> None:
    missing = nfclease(lab, "doctor", "--target", lab.target, "--datacenter", "NoSuchDC")
    assert missing.returncode == 1 and "NO  placement" in missing.stdout and "NoSuchDC" in missing.stdout


def test_tls_fails_closed_on_a_wrong_thumbprint(lab: LabSim) -> None:
    wrong = "AB:" * 19 + "CD"
    proc = nfclease(lab, "doctor", "--target", lab.target, "--thumbprint", wrong, GOVC_TLS_CA_CERTS="")
    assert proc.returncode == 2 and "does not match the pinned thumbprint" in proc.stderr, proc.stderr
    assert f"--thumbprint {lab.thumbprint}" in proc.stderr and "Nothing was sent" in proc.stderr
    assert "Traceback" not in proc.stderr and "Lab-Pa55word" not in proc.stderr


def test_tls_fails_closed_on_an_unknown_ca_and_says_how_to_pin_or_trust(lab: LabSim, tmp_path: Path) -> None:
    env = {"GOVC_TLS_CA_CERTS": "", "REQUESTS_CA_BUNDLE": lab.cafile}  # requests' variable must not decide
    proc = nfclease(lab, "doctor", "--target", lab.target, **env)
    assert proc.returncode == 2 and "is not trusted" in proc.stderr, proc.stdout + proc.stderr
    for way in (f"--thumbprint {lab.thumbprint}", "--ca-file", "GOVC_TLS_KNOWN_HOSTS", "--insecure"):
        assert way in proc.stderr, proc.stderr
    # each way the message offers works: a pin, a known_hosts line, the CA file, --insecure (warned)
    known = tmp_path / "known_hosts"
    known.write_text(f"127.0.0.1:{lab.port} {lab.thumbprint}\n")
    for extra, env_extra in ((["--thumbprint", lab.thumbprint], {}), ([], {"GOVC_TLS_KNOWN_HOSTS": str(known)}),
                             (["--ca-file", lab.cafile], {}), (["--insecure"], {})):
        ok = nfclease(lab, "doctor", "--target", lab.target, *extra, **{**env, **env_extra})
        assert ok.returncode == 0, (extra, env_extra, ok.stdout + ok.stderr)
        assert ("TLS verification is OFF" in ok.stderr) == (extra == ["--insecure"]), ok.stderr


def test_an_independent_client_sees_the_thumbprint_the_message_names(lab: LabSim) -> None:
    """openssl s_client, as the message suggests, reads the same SHA-1 the suite prints."""
    if not any(os.access(os.path.join(p, "openssl"), os.X_OK) for p in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.skip("no openssl binary")
    cert = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{lab.port}"], input="",
                          capture_output=True, text=True, timeout=30).stdout
    fingerprint = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha1"], input=cert,
                                 capture_output=True, text=True, timeout=30).stdout
    assert fingerprint.strip().split("=", 1)[1] == lab.thumbprint


def test_placement_flags_win_over_govc_variables_and_reach_child_processes(lab: LabSim) -> None:
    by_env = nfclease(lab, "doctor", "--target", lab.target, GOVC_HOST="DC0_C0_H1")
    assert by_env.returncode == 0 and "host DC0_C0_H1" in by_env.stdout, by_env.stdout + by_env.stderr
    by_flag = nfclease(lab, "doctor", "--target", lab.target, "--host", "DC0_C0_H0", GOVC_HOST="DC0_C0_H1")
    assert by_flag.returncode == 0 and "host DC0_C0_H0" in by_flag.stdout, by_flag.stdout
    missing = nfclease(lab, "doctor", "--target", lab.target, "--folder", "NoSuchFolder")
    assert missing.returncode == 1 and "NoSuchFolder" in missing.stdout
    environ = {"GOVC_FOLDER": "old"}
    export_to_environment(argparse.Namespace(folder="new", datastore=None, ca_file="ca.pem"), environ)
    assert environ == {"GOVC_FOLDER": "new", "GOVC_TLS_CA_CERTS": "ca.pem"}  # what conform/load/run children read


def _history(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_on_a_real_target_only_the_vm_named_is_exported_and_never_changed(lab: LabSim, planter: Any,
                                                                             tmp_path: Path) -> None:
    path = "DC0/vm/DC0_C0_RP0_VM3"
    vm = planter.content.searchIndex.FindByInventoryPath(path)
    before = (vm.runtime.powerState, vm.runtime.host._moId, vm.snapshot)
    run = f"named-{uuid.uuid4().hex[:6]}"
    proc = nfclease(lab, "conform", "--target", lab.target, "--profile", "smoke", "--seed", "5",
                    "--export-vm", path, "--report", str(tmp_path / "named"), run_id=run, timeout=240)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    events = _history(tmp_path / "named" / "history.jsonl")
    exports = {e["lease"]: e["args"]["entity"] for e in events
               if e["call"] == "Acquire" and e["args"].get("kind", "").startswith("export")}
    assert exports and set(exports.values()) == {vm._moId}, exports  # that VM, and no other of the target's
    writes = [e for e in events if e["lease"] in exports
              and e["call"] in ("Upload", "PowerOn", "Destroy", "Relocate", "PullFromUrls")]
    assert writes == [], writes[:3]
    assert any(e["lease"] in exports and e["call"] == "Download" for e in events)
    assert (vm.runtime.powerState, vm.runtime.host._moId, vm.snapshot) == before
    seen = inspect(lab)
    assert seen.named(f"nfclease-{run}-") == [] and seen.running == []

    unnamed = nfclease(lab, "conform", "--target", lab.target, "--profile", "smoke", "--seed", "5",
                       "--report", str(tmp_path / "unnamed"), timeout=240)
    assert unnamed.returncode in (0, 1), unnamed.stdout[-3000:]
    foreign = [e for e in _history(tmp_path / "unnamed" / "history.jsonl") if e["call"] == "Acquire"
               and e["args"].get("kind", "").startswith("export")]
    assert foreign == []  # without --export-vm nothing of the target's own is exported


def test_cleanup_logs_in_again_when_the_session_was_lost(lab: LabSim) -> None:
    spec = TargetSpec.parse(lab.target, cafile=lab.cafile, env={})
    with open_target(spec) as target:
        session = acquire_import(target, EventStream(), disks=[1 << 20])
        session.wait_ready(timeout=30)
        session.upload_all()
        session.complete()
        name = session.package.name
        assert name in inspect(lab).entities
        target.si.content.sessionManager.Logout()  # the server forgets the session mid-run
    assert name not in inspect(lab).entities, target.cleanup_log
    assert "session lost: logged in again for cleanup" in target.cleanup_log
