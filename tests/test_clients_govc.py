"""govc import.ovf / export.ovf and Ansible's vmware_deploy_ovf / vmware_export_ovf, unchanged, judged
against the simulator by ``nfclease clients``.

govc is built from Debian's govmomi 0.24.2 source by ``tools/build-govc`` (``tools/test`` runs it);
without it these tests are skipped, saying so. The expected verdicts are govc's real behaviour, each
explained from its source (build/govc-src/.../govmomi):

- ``govc/importx/ovf.go``: an upload error returns ``nil, err`` with no ``lease.Abort``: the import
  lease stays held until it times out (``client.abort-on-failure``);
- ``vim25/soap/client.go`` ``dialTLS``: the device URL's ``sslThumbprint`` is consulted only when the
  CA check fails, so under CA trust a certificate other than the announced one is accepted
  (``client.thumbprint``);
- ``nfc/lease_updater.go``: percent = 100*pos/total over the OVF's ``ovf:size`` values; an OVF
  without them makes total 0 and sends Progress(int32(NaN)) = -2147483648 (``client.progress-range``),
  which the server refuses, and the updater "stops for good after the first error".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GOVC = ROOT / "build" / "govc"

NO_GOVC = pytest.mark.skipif(not os.access(GOVC, os.X_OK),
                                reason="build/govc not built (tools/build-govc needs golang-go and Debian's "
                                       "govmomi source package)")


def run_clients(tmp: Path, client: str, *scenarios: str, clients_file: Path | None = None) -> dict:
    args = [sys.executable, "-m", "nfclease", "clients", "--client", client, "--report", str(tmp)]
    if clients_file is not None:
        args += ["--clients", str(clients_file)]
    for scenario in scenarios:
        args += ["--scenario", scenario]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads((tmp / "clients.json").read_text())["clients"][client]


def failed(cell: dict) -> set[str]:
    return {v["clause"] for v in cell["verdicts"] if v["status"] == "FAIL"}


@NO_GOVC
def test_govc_import_and_export_are_judged(tmp_path: Path) -> None:
    govc = run_clients(tmp_path, "govc", "baseline", "upload-500", "bad-thumbprint")
    cells = {(c["scenario"], c["operation"]): c for c in govc["cells"]}
    for operation in ("import", "export"):
        baseline = cells[("baseline", operation)]
        assert baseline["exit"] == 0 and baseline["sessions"] >= 1, baseline["stderr"]
        assert failed(baseline) == set() and baseline["outcome"]["status"] == "PASS"
        passed = {v["clause"] for v in baseline["verdicts"] if v["status"] == "PASS"}
        assert {"client.wait-ready", "client.release-unused"} <= passed
    assert "client.upload-method" in {v["clause"] for v in cells[("baseline", "import")]["verdicts"]
                                      if v["status"] == "PASS"}
    refused = cells[("upload-500", "import")]
    assert refused["exit"] != 0 and failed(refused) == {"client.abort-on-failure"}
    assert "left held" in next(v for v in refused["verdicts"] if v["clause"] == "client.abort-on-failure")["evidence"][0]
    for operation in ("import", "export"):
        assert "client.thumbprint" in failed(cells[("bad-thumbprint", operation)])
    assert (tmp_path / "matrix.md").read_text().count("FAIL (") >= 2


@NO_GOVC
@pytest.mark.slow
def test_govc_without_ovf_sizes_sends_progress_out_of_range(tmp_path: Path) -> None:
    govc = run_clients(tmp_path, "govc-unsized", "stall")
    cell = govc["cells"][0]
    assert {"client.progress-range", "client.abort-on-failure"} <= failed(cell)
    evidence = next(v for v in cell["verdicts"] if v["clause"] == "client.progress-range")["evidence"][0]
    assert "Progress(-2147483648)" in evidence


ANSIBLE = ROOT / "build" / "ansible" / "ansible_collections" / "community" / "vmware"


@pytest.mark.slow
@pytest.mark.skipif(not ANSIBLE.is_dir(), reason="no community.vmware (tools/fetch-ansible-collections)")
def test_ansible_export_renews_before_the_lease_is_ready(tmp_path: Path) -> None:
    """``vmware_export_ovf`` starts its lease updater (Progress) before it waits for ready: the
    ``lease_updater.start()`` precedes the ``while True: if http_nfc_lease.state == ready`` loop."""
    pytest.importorskip("ansible")
    spec = yaml.safe_load((ROOT / "conformance" / "clients.yaml").read_text())["clients"]["ansible"]
    del spec["import"]  # the export is what this test is about
    (tmp_path / "ansible.yaml").write_text(yaml.safe_dump({"clients": {"ansible": spec}}))
    ansible = run_clients(tmp_path / "report", "ansible", "bad-thumbprint", clients_file=tmp_path / "ansible.yaml")
    export = ansible["cells"][0]
    assert export["exit"] == 0, export["stdout"][-500:]
    assert {"client.wait-ready", "client.thumbprint"} <= failed(export)
    evidence = next(v for v in export["verdicts"] if v["clause"] == "client.wait-ready")["evidence"][0]
    assert evidence.startswith("session-1:L1: Progress at") and "before any read showed the lease ready" in evidence
