"""A pyVmomi script in the style of the community deploy/export samples, unchanged, against both targets.

``tests/samples/pyvmomi_ovf.py`` runs as a user runs it (its own process,
its own arguments); the test only prepares the OVF and judges the outcome:
the deployed VM has the OVF's hardware, and exporting it gives back the
imported disks byte for byte.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pyVim.connect import Disconnect

from ovfsample import Sample, write_sample
from realclients import Endpoint, Run, endpoint, pyvmomi, vcsim_lacks  # noqa: F401

SCRIPT = Path(__file__).resolve().parent / "samples" / "pyvmomi_ovf.py"
MiB = 1 << 20
VM = "sample-import"


def script(endpoint: Endpoint, *args: str, cwd: Path) -> Run:
    parts = urlsplit(endpoint.url)
    argv = [sys.executable, str(SCRIPT), "-s", parts.hostname or "", "-o", str(parts.port), "-u",
            endpoint.username, "-p", endpoint.password, "--cafile", endpoint.cafile, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False, cwd=cwd,
                          stdin=subprocess.DEVNULL)
    return Run(argv, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def deployed(endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> tuple[Sample, Run]:
    home = tmp_path_factory.mktemp(f"sample-{endpoint.name}")
    sample = write_sample(home / "ovf", "pyvmomi-sample", [3 * MiB, 1 * MiB], cpus=4, memory_mb=128)
    run = script(endpoint, "deploy", "--ovf-path", str(sample.ovf), "--datacenter-name", "DC0",
                 "--datastore-name", "LocalDS_0", "--cluster-name", "DC0_C0", "--name", VM, cwd=home)
    return sample, run


def test_sample_deploy_ovf(endpoint: Endpoint, deployed: tuple[Sample, Run]) -> None:
    sample, run = deployed
    run.check()
    si = pyvmomi(endpoint)
    try:
        vm = si.content.searchIndex.FindByInventoryPath(f"DC0/vm/{VM}")
        assert vm is not None
        hardware = vm.config.hardware
        assert (hardware.numCPU, hardware.memoryMB) == (sample.cpus, sample.memory_mb)
        disks = [d for d in hardware.device if d.key >= 2000 and hasattr(d, "capacityInKB")]
        assert [d.capacityInKB * 1024 for d in disks] == sample.capacities
    finally:
        Disconnect(si)


def test_sample_export_vm_gives_back_the_imported_disks(endpoint: Endpoint, deployed: tuple[Sample, Run],
                                                        tmp_path: Path) -> None:
    sample, deploy_run = deployed
    deploy_run.check()
    run = script(endpoint, "export", "--vm-name", VM, "--workdir", str(tmp_path), cwd=tmp_path)
    vcsim_lacks(endpoint, "vcsim 0.24 has no VirtualMachine.ExportVm (MethodNotFound)",
                run.returncode != 0 and "ExportVm" in run.stderr)
    run.check()
    exported = sorted((tmp_path / VM).glob("*.vmdk"))
    assert len(exported) == len(sample.disks), exported
    for source, copy in zip(sample.disks, exported):
        assert copy.read_bytes() == source.read_bytes(), f"{copy.name} differs from the imported {source.name}"
    assert "<VirtualSystem" in (tmp_path / VM / f"{VM}.ovf").read_text()
