"""Benchmark: Locust users against ``curl``, and lease-timeout accuracy, in one run.

Both sides upload to the same embedded simulator, started in a process of
its own (``nfclease sim``) so that it shares no core scheduling with either
client:

Throughput runs against a simulator with vCenter's 300 s lease timeout, the
timeout probe against one advertising 3 s.

Shared machines are noisy, so the two are interleaved (``--pairs``, default
5: a curl round, then a Locust run, five times) and the ratio is the median
of the per-pair ratios; every pair is printed, so a run disturbed by other
jobs on the host shows as scatter.

1. ``curl``: 8 disks' streamOptimized streams are written to files; per
   round, 8 import leases are acquired (through LeaseSession, kept alive by
   Progress) and 8 ``curl`` processes POST the files in parallel; the
   manifest is checked and the leases completed. Throughput = bytes / the
   time curl ran (lease calls not counted: the native reference).
2. Locust: 8 users run the ``import-upload`` scenario (1 disk of the same
   size, same content pattern, streams generated on the fly) for
   ``--seconds`` (each pair); throughput = bytes moved in the middle 80 % of the
   transfer span / its length (``steady_mbps`` in nfclease.load.figures: without the
   ramp-up and the graceful-stop tail; the whole-span figure is printed
   too). Target: Locust / curl >= 0.8.
3. Timeout accuracy: ``timeout-probe`` users against the same simulator
   (leaseTimeout 3 s): observed - advertised per lease. Target: every
   |error| within max(50 ms, 2 % of the timeout).

Usage: ``python benchmarks/bench_load.py [--disk-mib 64] [--seconds 8] [--users 8] [--pairs 5]``
(needs ``curl``). Prints the figures and the ratios; exits 1 if a target is missed.
"""

from __future__ import annotations

import locust  # noqa: F401  (gevent first)

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nfclease.load.figures import MB  # noqa: E402
from nfclease.load.runner import RunSpec, run_load  # noqa: E402
from nfclease.load.scenarios import LoadOptions  # noqa: E402
from nfclease.sim.process import SimProcess  # noqa: E402
from nfclease.events import EventStream  # noqa: E402
from nfclease.session import acquire_import  # noqa: E402
from nfclease.launcher import SIM_PASSWORD, SIM_USER  # noqa: E402
from nfclease.target import TargetSpec, open_target  # noqa: E402

LEASE_TIMEOUT = 3               # timeout accuracy: a short advertised timeout
THROUGHPUT_LEASE_TIMEOUT = 300  # throughput: vCenter's default (a saturated server must not expire leases)


def curl_uploads(sim: SimProcess, users: int, disk_bytes: int, workdir: Path, rounds: int) -> dict[str, float]:
    """``rounds`` batches of ``users`` parallel curl POSTs, each to a fresh import lease; only curl is timed."""
    from nfclease.vmdk import ContentPattern, StreamOptimizedDisk

    spec = TargetSpec.parse(sim.url, cafile=sim.cafile, username=SIM_USER, password=SIM_PASSWORD)
    stream = EventStream()
    files = []
    for index in range(users):  # the same kind of disk the scenario streams: random content, level 0
        disk = StreamOptimizedDisk(disk_bytes, ContentPattern("random", f"bench-curl-{index}"))
        path = workdir / f"disk-{index}.vmdk"
        disk.write_to(path)
        files.append((path, disk.size, disk.sha1))
    command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", sim.cafile,
               "-X", "POST", "-H", "Content-Type: application/x-vnd.vmware-streamVmdk", "-H", "Expect:"]
    total, seconds, verified = 0, 0.0, 0
    with open_target(spec) as target:
        for _round in range(rounds):
            sessions = [acquire_import(target, stream, disks=[disk_bytes], pattern="random") for _ in range(users)]
            jobs, keepers = [], []
            for index, session in enumerate(sessions):
                value = session.wait_ready(timeout=30)
                if value.get("state") != "ready":
                    raise RuntimeError(f"lease {index} went to {value.get('state')}")
                keepers.append(session.keep_alive(interval=1.0, percent=0, max_seconds=600))
                url = session.device_urls()[0]
                path, size, sha1 = files[index]
                jobs.append((session, target.nfc.resolve(url.url), path, size, url.key, sha1))
            try:
                started = time.monotonic()
                procs = [subprocess.Popen([*command, "-T", str(path), url], stdout=subprocess.PIPE)
                         for _session, url, path, _size, _key, _sha1 in jobs]
                codes = [p.communicate(timeout=600)[0].decode().strip() for p in procs]
                seconds += time.monotonic() - started
            finally:
                for keeper in keepers:
                    keeper.stop()
            if any(code not in ("200", "201") for code in codes):
                raise RuntimeError(f"curl uploads answered {codes}")
            for session, _url, _path, size, key, digest in jobs:
                entry = next(e for e in session.get_manifest() if e.key == key)
                if entry.size != size or entry.sha1 != digest:
                    raise RuntimeError(f"curl upload {key} does not match the manifest")
                verified += size
                total += size
                session.complete()
                if session.entity is not None:
                    session.destroy(session.entity)
    return {"bytes": total, "seconds": seconds, "mbps": total / MB / seconds, "verified": verified}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--disk-mib", type=float, default=64)
    parser.add_argument("--seconds", type=float, default=8, help="length of each Locust run")
    parser.add_argument("--pairs", type=int, default=5, help="curl round + Locust run, interleaved, this many times")
    parser.add_argument("--probe-users", type=int, default=4)
    parser.add_argument("--probe-seconds", type=float, default=10)
    args = parser.parse_args(argv)
    if shutil.which("curl") is None:
        print("bench_load: curl is not installed", file=sys.stderr)
        return 2
    options = LoadOptions(disk_mib=args.disk_mib, keepalive=1.0, pattern="random")
    ok = True
    with SimProcess(lease_timeout=THROUGHPUT_LEASE_TIMEOUT, init_seconds=0.05) as sim, \
            tempfile.TemporaryDirectory(prefix="nfclease-bench-") as tmp:
        options.cafile = sim.cafile
        print(f"simulator {sim.url} (own process, leaseTimeout {THROUGHPUT_LEASE_TIMEOUT} s), "
              f"{args.users} x {args.disk_mib:g} MiB disks, random content; {args.pairs} interleaved pairs")
        ratios, curls, locusts = [], [], []
        for pair in range(args.pairs):
            curl = curl_uploads(sim, args.users, options.disk_bytes, Path(tmp), 1)
            spec = RunSpec(host=sim.url, selection={"import-upload": 1}, users=args.users, spawn_rate=args.users,
                           duration=args.seconds, options=options, username=SIM_USER,
                           password=SIM_PASSWORD, stop_timeout=30)
            agg = run_load(spec).summary["aggregate"]
            ratio = agg["steady_mbps"] / curl["mbps"] if curl["mbps"] else 0.0
            ratios.append(ratio)
            curls.append(curl["mbps"])
            locusts.append(agg["steady_mbps"])
            ok &= agg["bytes_corrupted"] == 0 and agg["bytes_verified"] == agg["bytes_transferred"]
            print(f"pair {pair + 1}: curl {curl['mbps']:6.1f} MB/s ({curl['bytes'] / MB:.0f} MB in {curl['seconds']:.2f} s)"
                  f" | locust {agg['steady_mbps']:6.1f} MB/s steady, {agg['throughput_mbps']:6.1f} whole span "
                  f"({agg['transfers']} uploads, {agg['bytes_transferred'] / MB:.0f} MB, verified "
                  f"{agg['bytes_verified'] / MB:.0f} MB, corrupted {agg['bytes_corrupted']}, SOAP p95 "
                  f"{agg['soap_latency_all_ms'].get('p95')} ms) | ratio {ratio:.2f}")
        median = statistics.median(ratios)
        verdict = "ok" if median >= 0.8 else "MISSED"
        ok &= median >= 0.8
        print(f"upload : locust / curl = {median:.2f} (median of {len(ratios)} pairs; min {min(ratios):.2f}, "
              f"max {max(ratios):.2f}; medians {statistics.median(locusts):.1f} / {statistics.median(curls):.1f} MB/s)"
              f" target >= 0.80 {verdict}")

    with SimProcess(lease_timeout=LEASE_TIMEOUT, init_seconds=0.05) as sim:
        options.cafile = sim.cafile
        probe = RunSpec(host=sim.url, selection={"timeout-probe": 1}, users=args.probe_users,
                        spawn_rate=args.probe_users, duration=args.probe_seconds, options=options,
                        username=SIM_USER, password=SIM_PASSWORD, stop_timeout=15)
        accuracy = run_load(probe).summary["aggregate"].get("timeout_accuracy") or {}
        errors = accuracy.get("error_s") or {}
        abs_errors = accuracy.get("abs_error_s") or {}
        allowed = max(0.050, 0.02 * LEASE_TIMEOUT)
        if errors.get("count"):
            worst = abs_errors["max"]
            verdict = "ok" if worst <= allowed else "MISSED"
            ok &= worst <= allowed
            print(f"timeout: {errors['count']} leases, advertised {LEASE_TIMEOUT} s, observed - advertised "
                  f"median {errors['p50'] * 1000:+.1f} ms, min {errors['min'] * 1000:+.1f} ms, "
                  f"max {errors['max'] * 1000:+.1f} ms; worst |error| {worst * 1000:.1f} ms "
                  f"(target <= {allowed * 1000:.0f} ms) {verdict}; bracket uncertainty median "
                  f"{accuracy['uncertainty_s']['p50'] * 1000:.1f} ms")
        else:
            ok = False
            print("timeout: no sample (no probe saw its lease expire)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
