"""Real clients, unchanged, against the simulator and against vcsim (the peer).

govc (built by tools/build-govc from Debian's govmomi source) sends every
SOAP body chunked and decodes answers with Go's strict XML decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from nfclease.sim import SimConfig, Simulator
from nfclease.vcsim import find_vcsim, run_vcsim
from realclients import NO_GOVC, Endpoint, govc, govc_available

needs_govc = pytest.mark.skipif(not govc_available(), reason=NO_GOVC)


@pytest.fixture(scope="module", params=["sim", "vcsim"])
def endpoint(request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    if request.param == "sim":
        with Simulator(SimConfig(lease_timeout=300, init_seconds=0.1)) as sim:
            yield Endpoint("sim", sim.url, sim.cafile)
    else:
        if find_vcsim() is None:
            pytest.skip("no vcsim binary: run tools/build-vcsim")
        with run_vcsim() as vc:
            yield Endpoint("vcsim", vc.url, vc.cafile)


@needs_govc
def test_govc_about(endpoint: Endpoint, tmp_path: Path) -> None:
    run = govc(endpoint, "about", "-json", home=tmp_path).check()
    assert '"ApiType":"VirtualCenter"' in run.stdout.replace(" ", "")
