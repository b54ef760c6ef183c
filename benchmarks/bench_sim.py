#!/usr/bin/env python3
"""Benchmark: the embedded simulator against govmomi's vcsim, measured in one run.

    python benchmarks/bench_sim.py [--quick] [--json FILE] [--skip progress|upload|leases|big]

Both servers are started by this script on 127.0.0.1, each as its own process
(``python -m nfclease sim --port 0`` and ``build/vcsim``), so their resident
memory can be read from ``/proc/<pid>/status``. Both are stopped on the way
out, on error and on SIGINT/SIGTERM too. What is measured (issue 2, "What it
must show"):

1. **Progress round trip**: ``HttpNfcLeaseProgress`` on one ready import lease
   per target, timed call by call with an unmodified pyvmomi client
   (``SmartConnect``, TLS verified against each server's certificate). The
   two targets are measured in alternating blocks so a burst of load on this
   shared machine hits both. Median, p95, ratio ours/vcsim (target <= 1.3,
   aim <= 1.0).
2. **Disk upload throughput**: a 256 MiB streamOptimized VMDK (random,
   incompressible content) generated once to a file, POSTed by ``curl`` as
   users send it (``-T file -X POST``, ``Content-Type:
   application/x-vnd.vmware-streamVmdk``, ``Content-Length`` from the file,
   curl's default ``Expect: 100-continue``, TLS verified with ``--cacert``).
   Ours stores and hashes every byte; vcsim discards them. Repeated, each
   repetition on a fresh lease, targets alternating; medians and spread;
   ratio ours/vcsim (target >= 0.8). GetManifest's sha1 of ours must equal
   the file's sha1.
3. **Memory**: a fresh simulator process holding N (1000) ready import leases
   kept alive by Progress round-robin for ~10 s (target <= 200 MB RSS); its
   lease timeout (20 s) is shorter than creating them and the keepalive take,
   so "all ready" at the end shows the renewals worked. The same on a fresh
   vcsim for comparison (its leases never time out); and a fresh simulator's RSS growth
   during a 4 GiB upload generated on the fly
   (``StreamOptimizedDisk(4 GiB, ContentPattern('random'))`` through
   ``NfcClient.upload_disk``), sampled every 0.2 s and cross-checked with the
   kernel's high-water mark ``VmHWM`` (target growth <= 50 MB).

The machine is shared (2 cores, other test runs): ``/proc/loadavg`` is printed
beside every section. Throughputs are MB/s with MB = 10^6 bytes; memory in
MB = 2^20 bytes (as ``VmRSS`` kB / 1024).

Calls go straight to pyvmomi on purpose, as ``tools/vcsim/probe.py`` does:
this measures what a pyvmomi user sees of the server, without the suite's
event layer (``nfclease.session``) in the timings.

Exit status: 0 when every figure was measured (whether or not it met its
target), 1 when a section failed, 2 when vcsim or curl is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pyVim.connect import Disconnect, SmartConnect  # noqa: E402
from pyVmomi import vim, vmodl  # noqa: E402

from nfclease.ovf import build_import_ovf  # noqa: E402
from nfclease.sim.process import SimProcess  # noqa: E402
from nfclease.transfer import NfcClient  # noqa: E402
from nfclease.vcsim import VcsimProcess, find_vcsim  # noqa: E402
from nfclease.vmdk import ContentPattern, StreamOptimizedDisk  # noqa: E402

STREAM_VMDK = "application/x-vnd.vmware-streamVmdk"
LEASE_TIMEOUT_3A = 20.0  # seconds; vcsim's leases never time out
MiB = 1 << 20
MB = 10**6
USER, PASSWORD = "user", "pass"

# (full, quick)
PLAN = {
    "progress_calls": (2000, 300),     # timed Progress calls per target
    "progress_block": (250, 100),      # calls per target before switching to the other
    "progress_warmup": (100, 20),
    "upload_bytes": (256 * MiB, 32 * MiB),
    "upload_reps": (3, 2),
    "leases": (1000, 100),
    "keepalive_seconds": (10.0, 3.0),
    "big_upload_bytes": (4 << 30, 256 * MiB),
}


# ---------------------------------------------------------------------------- helpers
def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / Threads of a process, in kB (Threads: a count)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def rss_mb(pid: int) -> float:
    return proc_status(pid)["VmRSS"] / 1024


def hwm_mb(pid: int) -> float:
    return proc_status(pid)["VmHWM"] / 1024


class RssSampler:
    """Samples a process's VmRSS every ``interval`` seconds in a thread (bounded by ``limit`` s)."""

    def __init__(self, pid: int, interval: float = 0.2, limit: float = 3600.0) -> None:
        self.pid, self.interval, self.limit = pid, interval, limit
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(OSError, KeyError):
                self.samples.append(rss_mb(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def peak(self) -> float:
        return max(self.samples) if self.samples else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


# ---------------------------------------------------------------------------- targets
class Vcsim:
    """govmomi's vcsim through nfclease.vcsim; verified TLS against the certificate it writes."""

    name = "vcsim"

    def __init__(self) -> None:
        self.vc = VcsimProcess()

    def __enter__(self) -> "Vcsim":
        self.vc.start()
        if self.vc.cafile is None:
            self.vc.stop()
            raise RuntimeError("vcsim wrote no certificate (-cert-out): cannot verify TLS")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.vc.stop()

    @property
    def url(self) -> str:
        return self.vc.url

    @property
    def port(self) -> int:
        return self.vc.port

    @property
    def cafile(self) -> str:
        return str(self.vc.cafile)

    @property
    def pid(self) -> int:
        return self.vc.pid

    def ssl_context(self) -> ssl.SSLContext:
        return self.vc.ssl_context()


# ---------------------------------------------------------------------------- pyvmomi side
class Client:
    """A pyvmomi session on a target and what an import needs (pool, datastore, folder)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.si = SmartConnect(host="127.0.0.1", port=target.port, user=USER, pwd=PASSWORD,
                               sslContext=target.ssl_context(), connectionPoolTimeout=-1)
        self.content = self.si.RetrieveContent()
        self.dc = next(e for e in self.content.rootFolder.childEntity if isinstance(e, vim.Datacenter))
        cluster = next(e for e in self.dc.hostFolder.childEntity if isinstance(e, vim.ClusterComputeResource))
        self.pool = cluster.resourcePool
        self.datastore = self.dc.datastore[0]
        self.folder = self.dc.vmFolder

    def import_lease(self, capacity: int) -> vim.HttpNfcLease:
        package = build_import_ovf([capacity])
        params = vim.OvfManager.CreateImportSpecParams(entityName=package.name)
        result = self.content.ovfManager.CreateImportSpec(package.descriptor, self.pool, self.datastore, params)
        if result.error:
            raise RuntimeError(f"CreateImportSpec: {[e.msg for e in result.error]}")
        return self.pool.ImportVApp(result.importSpec, self.folder)

    @staticmethod
    def wait_ready(lease: vim.HttpNfcLease, timeout: float = 30.0) -> vim.HttpNfcLease.Info:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = lease.state
            if state == "ready":
                return lease.info
            if state != "initializing":
                raise RuntimeError(f"lease became {state}: {lease.error}")
            time.sleep(0.02)
        raise RuntimeError(f"lease not ready within {timeout:g} s")

    def states(self, leases: list[vim.HttpNfcLease]) -> dict[str, int]:
        """``state`` of every lease in one RetrievePropertiesEx (continued if paged)."""
        pc = self.content.propertyCollector
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=lease) for lease in leases],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.HttpNfcLease, pathSet=["state"])])
        counts: dict[str, int] = {}
        result = pc.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
        for _ in range(100):  # bounded paging
            if result is None:
                break
            for obj in result.objects or []:
                for prop in obj.propSet or []:
                    counts[str(prop.val)] = counts.get(str(prop.val), 0) + 1
            if not result.token:
                break
            result = pc.ContinueRetrievePropertiesEx(result.token)
        missing = len(leases) - sum(counts.values())
        if missing:
            counts["(not returned)"] = missing
        return counts

    def close(self) -> None:
        with contextlib.suppress(Exception):
            Disconnect(self.si)


def device_url(target: Any, info: vim.HttpNfcLease.Info) -> str:
    """The first disk's URL with an ESXi-style ``*`` host replaced by the SDK's."""
    url = next(d.url for d in info.deviceUrl if d.disk)
    parts = urlsplit(url)
    if parts.hostname in ("*", None) or parts.netloc.startswith("*"):
        url = urlunsplit((parts.scheme, f"127.0.0.1:{target.port}", parts.path, parts.query, parts.fragment))
    return url


# ---------------------------------------------------------------------------- 1. Progress
def bench_progress(targets: list[Any], calls: int, block: int, warmup: int) -> dict[str, Any]:
    clients = {t.name: Client(t) for t in targets}
    try:
        leases = {}
        for name, client in clients.items():
            lease = client.import_lease(1 * MiB)
            client.wait_ready(lease)
            leases[name] = lease
        for name, lease in leases.items():
            for i in range(warmup):
                lease.HttpNfcLeaseProgress(i % 100)
        times: dict[str, list[float]] = {name: [] for name in leases}
        load_before = loadavg()
        started = time.monotonic()
        for _ in range(-(-calls // block)):  # alternate blocks: load bursts hit both targets
            for name, lease in leases.items():
                todo = min(block, calls - len(times[name]))
                out = times[name]
                perf = time.perf_counter
                for i in range(todo):
                    t0 = perf()
                    lease.HttpNfcLeaseProgress(i % 101)
                    out.append(perf() - t0)
        elapsed = time.monotonic() - started
        result: dict[str, Any] = {"calls": calls, "load_before": load_before, "load_after": loadavg(),
                                  "elapsed_s": round(elapsed, 2)}
        for name, values in times.items():
            ms = [v * 1000 for v in values]
            result[name] = {"median_ms": statistics.median(ms), "p95_ms": percentile(ms, 95),
                            "p99_ms": percentile(ms, 99), "min_ms": min(ms), "n": len(ms)}
        for name, lease in leases.items():
            with contextlib.suppress(Exception):
                lease.HttpNfcLeaseAbort()
        return result
    finally:
        for client in clients.values():
            client.close()


# ---------------------------------------------------------------------------- 2. upload by curl
def sha1_of(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as src:
        while chunk := src.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def curl_upload(curl: str, url: str, path: Path, cafile: str, timeout: float) -> dict[str, Any]:
    argv = [curl, "-sS", "-o", "/dev/null", "--max-time", f"{timeout:g}", "--cacert", cafile,
            "-X", "POST", "-T", str(path), "-H", f"Content-Type: {STREAM_VMDK}",
            "-w", "%{http_code} %{size_upload} %{time_total} %{time_appconnect}", url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30)
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) != 4:
        raise RuntimeError(f"curl exited {done.returncode}: {done.stderr.strip()} {done.stdout.strip()}")
    status, uploaded, total, tls = int(fields[0]), int(float(fields[1])), float(fields[2]), float(fields[3])
    return {"status": status, "bytes": uploaded, "seconds": total, "tls_s": tls,
            "mb_s": uploaded / total / MB if total > 0 else float("nan")}


def bench_upload(targets: list[Any], size: int, reps: int, workdir: Path, curl: str) -> dict[str, Any]:
    disk = StreamOptimizedDisk(size, ContentPattern("random", seed="bench"))
    path = workdir / "bench-upload.vmdk"
    t0 = time.monotonic()
    length = disk.write_to(path)
    generated = time.monotonic() - t0
    file_sha1 = sha1_of(path)
    clients = {t.name: Client(t) for t in targets}
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    manifest_ok: list[bool] = []
    load_before = loadavg()
    try:
        for rep in range(reps):
            order = targets if rep % 2 == 0 else list(reversed(targets))  # alternate who goes first
            for target in order:
                client = clients[target.name]
                lease = client.import_lease(size)
                info = client.wait_ready(lease)
                url = device_url(target, info)
                lease.HttpNfcLeaseProgress(1)
                run = curl_upload(curl, url, path, target.cafile, timeout=600)
                run["load"] = loadavg()
                if run["status"] not in (200, 201) or run["bytes"] != length:
                    raise RuntimeError(f"{target.name}: upload answered {run['status']} after {run['bytes']} "
                                       f"of {length} bytes")
                if target.name == "ours":
                    entries = lease.HttpNfcLeaseGetManifest() or []
                    got = entries[0].sha1 if entries else None
                    size_ok = bool(entries) and entries[0].size == length
                    run["manifest_sha1"] = got
                    manifest_ok.append(got == file_sha1 and size_ok)
                runs[target.name].append(run)
                # Abort: an import in error removes what it created (ours deletes the stored disk).
                with contextlib.suppress(Exception):
                    lease.HttpNfcLeaseAbort()
    finally:
        for client in clients.values():
            client.close()
        path.unlink(missing_ok=True)
    result: dict[str, Any] = {"bytes": length, "capacity": size, "reps": reps, "file_sha1": file_sha1,
                              "generate_s": round(generated, 2), "load_before": load_before,
                              "load_after": loadavg(), "manifest_sha1_ok": all(manifest_ok) and bool(manifest_ok)}
    for name, values in runs.items():
        speeds = [r["mb_s"] for r in values]
        result[name] = {"median_mb_s": statistics.median(speeds), "min_mb_s": min(speeds),
                        "max_mb_s": max(speeds), "runs": values}
    return result


# ---------------------------------------------------------------------------- 3. memory
def bench_leases(target: Any, count: int, keepalive: float, create_budget: float) -> dict[str, Any]:
    """RSS of ``target`` with ``count`` ready import leases kept alive by round-robin Progress."""
    client = Client(target)
    try:
        baseline = rss_mb(target.pid)
        leases: list[vim.HttpNfcLease] = []
        started = time.monotonic()
        renew = 0
        with RssSampler(target.pid) as creating:
            while len(leases) < count and time.monotonic() - started < create_budget:
                leases.append(client.import_lease(1 * MiB))
                # keep the early ones alive while the rest are made: one renewal per creation
                if len(leases) > 1:
                    leases[renew % (len(leases) - 1)].HttpNfcLeaseProgress(0)
                    renew += 1
        create_s = time.monotonic() - started
        # every lease was born with init_seconds; give the last ones time, then check
        deadline = time.monotonic() + 30
        states = client.states(leases)
        while states.get("ready", 0) < len(leases) and states.get("initializing") and time.monotonic() < deadline:
            time.sleep(0.2)
            states = client.states(leases)
        after_create = rss_mb(target.pid)
        calls, rounds = 0, 0
        ka_start = time.monotonic()
        with RssSampler(target.pid) as keeping:
            while time.monotonic() - ka_start < keepalive:
                for lease in leases:
                    lease.HttpNfcLeaseProgress(rounds % 100)
                    calls += 1
                    if time.monotonic() - ka_start >= keepalive * 3:  # hard bound on a slow round
                        break
                rounds += 1
        ka_s = time.monotonic() - ka_start
        final_states = client.states(leases)
        final_rss = rss_mb(target.pid)
        status = proc_status(target.pid)
        return {
            "leases": len(leases), "create_s": round(create_s, 2), "baseline_mb": round(baseline, 1),
            "after_create_mb": round(after_create, 1),
            "peak_mb": round(max(creating.peak, keeping.peak, final_rss), 1),
            "hwm_mb": round(status["VmHWM"] / 1024, 1), "final_mb": round(final_rss, 1),
            "threads": status.get("Threads"),
            "keepalive_s": round(ka_s, 2), "progress_calls": calls, "rounds": rounds,
            "progress_per_s": round(calls / ka_s, 1) if ka_s else None,
            "states_after_create": states, "states_after_keepalive": final_states,
            "load": loadavg(),
        }
    finally:
        client.close()


def bench_big_upload(target: Any, size: int) -> dict[str, Any]:
    """RSS growth of ``target`` while a ``size`` disk generated on the fly is uploaded."""
    client = Client(target)
    nfc = NfcClient(target.ssl_context(), timeout=300)
    try:
        disk = StreamOptimizedDisk(size, ContentPattern("random", seed="bench-big"))
        lease = client.import_lease(size)
        info = client.wait_ready(lease)
        url = device_url(target, info)
        lease.HttpNfcLeaseProgress(0)
        time.sleep(0.5)
        baseline = rss_mb(target.pid)
        hwm_before = hwm_mb(target.pid)
        stop = threading.Event()
        renewals = [0]

        def keepalive() -> None:  # as deploy-OVF clients do: Progress every few seconds
            while not stop.wait(5.0):
                with contextlib.suppress(Exception):
                    lease.HttpNfcLeaseProgress(50)
                    renewals[0] += 1

        # pyvmomi's stub is shared by the keepalive thread: it pools connections per thread call.
        ka = threading.Thread(target=keepalive, name="keepalive", daemon=True)
        load_before = loadavg()
        with RssSampler(target.pid, interval=0.2) as sampler:
            ka.start()
            try:
                t0 = time.monotonic()
                result = nfc.upload_disk(url, disk, disk.size)
                elapsed = time.monotonic() - t0
            finally:
                stop.set()
                ka.join(timeout=30)
        after = rss_mb(target.pid)
        hwm_after = hwm_mb(target.pid)
        entries = lease.HttpNfcLeaseGetManifest() or []
        manifest_ok = bool(entries) and entries[0].sha1 == result.sha1 and entries[0].size == result.bytes
        with contextlib.suppress(Exception):
            lease.HttpNfcLeaseAbort()
        peak = max(sampler.peak, after)
        return {
            "bytes": result.bytes, "capacity": size, "status": result.status, "seconds": round(elapsed, 2),
            "mb_s": round(result.bytes / elapsed / MB, 1), "baseline_mb": round(baseline, 1),
            "peak_sampled_mb": round(peak, 1), "after_mb": round(after, 1),
            "hwm_before_mb": round(hwm_before, 1), "hwm_after_mb": round(hwm_after, 1),
            "growth_mb": round(max(peak, hwm_after) - baseline, 1), "samples": len(sampler.samples),
            "manifest_sha1_ok": manifest_ok, "renewals": renewals[0],
            "load_before": load_before, "load_after": loadavg(),
        }
    finally:
        nfc.close()
        client.close()


# ---------------------------------------------------------------------------- report
def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("ok" if ok else "MISSED")


def render(fig: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str, str, str]] = []
    p = fig.get("progress")
    if p:
        o, v = p["ours"], p["vcsim"]
        r_med = o["median_ms"] / v["median_ms"]
        r_p95 = o["p95_ms"] / v["p95_ms"]
        p["ratio_median"], p["ratio_p95"] = r_med, r_p95
        rows.append((f"Progress round trip, median ms (n={o['n']})", f"{o['median_ms']:.3f}",
                     f"{v['median_ms']:.3f}", f"{r_med:.2f}", "<= 1.3 (aim 1.0)", verdict(r_med <= 1.3)))
        rows.append(("Progress round trip, p95 ms", f"{o['p95_ms']:.3f}", f"{v['p95_ms']:.3f}", f"{r_p95:.2f}",
                     "", ""))
        rows.append(("Progress round trip, p99 / min ms", f"{o['p99_ms']:.2f} / {o['min_ms']:.2f}",
                     f"{v['p99_ms']:.2f} / {v['min_ms']:.2f}", "", "", ""))
    u = fig.get("upload")
    if u:
        o, v = u["ours"], u["vcsim"]
        ratio = o["median_mb_s"] / v["median_mb_s"]
        u["ratio"] = ratio
        rows.append((f"curl upload {u['capacity'] / MiB:.0f} MiB disk, median MB/s (x{u['reps']})",
                     f"{o['median_mb_s']:.1f}", f"{v['median_mb_s']:.1f}", f"{ratio:.2f}", ">= 0.8",
                     verdict(ratio >= 0.8)))
        rows.append(("curl upload, spread min..max MB/s", f"{o['min_mb_s']:.1f}..{o['max_mb_s']:.1f}",
                     f"{v['min_mb_s']:.1f}..{v['max_mb_s']:.1f}", "", "", ""))
        rows.append(("GetManifest sha1 == file sha1", "yes" if u["manifest_sha1_ok"] else "NO", "(discards)", "",
                     "equal", verdict(u["manifest_sha1_ok"])))
    m = fig.get("leases")
    if m:
        o = m.get("ours", {})
        v = m.get("vcsim", {})
        n = o.get("leases", "?")
        vtext = f"{v['peak_mb']:.1f}" if v.get("peak_mb") is not None else v.get("error", "n/a")
        rows.append((f"RSS with {n} ready leases kept alive, peak MB", f"{o['peak_mb']:.1f}", vtext,
                     f"{o['peak_mb'] / v['peak_mb']:.2f}" if v.get("peak_mb") else "", "<= 200 (ours)",
                     verdict(o["peak_mb"] <= 200 and o["leases"] >= fig["plan"]["leases"])))
        rows.append(("  RSS at start / after creating, MB", f"{o['baseline_mb']:.1f} / {o['after_create_mb']:.1f}",
                     f"{v['baseline_mb']:.1f} / {v['after_create_mb']:.1f}" if v.get("peak_mb") else "", "", "", ""))
        rows.append(("  leases ready after keepalive",
                     f"{o['states_after_keepalive'].get('ready', 0)}/{o['leases']}",
                     f"{v['states_after_keepalive'].get('ready', 0)}/{v['leases']}" if v.get("peak_mb") else "",
                     "", "all", verdict(o['states_after_keepalive'].get('ready', 0) == o['leases'])))
        rows.append(("  Progress calls/s round-robin (1 client)", f"{o['progress_per_s']}",
                     f"{v['progress_per_s']}" if v.get("peak_mb") else "", "", "", ""))
    b = fig.get("big_upload")
    if b:
        rows.append((f"RSS growth during {b['capacity'] / (1 << 30):g} GiB disk upload, MB", f"{b['growth_mb']:.1f}",
                     "", "", "<= 50", verdict(b["growth_mb"] <= 50)))
        rows.append(("  RSS before / sampled peak / VmHWM after, MB",
                     f"{b['baseline_mb']:.1f} / {b['peak_sampled_mb']:.1f} / {b['hwm_after_mb']:.1f}", "", "", "", ""))
        rows.append(("  upload MB/s (NfcClient, stream generated and hashed)", f"{b['mb_s']:.1f}", "", "", "", ""))
        rows.append(("  GetManifest sha1 == sent sha1", "yes" if b["manifest_sha1_ok"] else "NO", "", "", "equal",
                     verdict(b["manifest_sha1_ok"])))
    head = ("figure", "ours", "vcsim", "ours/vcsim", "target", "")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(head), line(tuple("-" * w for w in widths)), *map(line, rows)]
    return "\n".join(out)




# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer calls, smaller sizes")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    parser.add_argument("--skip", action="append", default=[], choices=["progress", "upload", "leases", "big"],
                        help="leave a section out (repeatable)")
    args = parser.parse_args(argv)
    plan = {k: v[1 if args.quick else 0] for k, v in PLAN.items()}

    if find_vcsim() is None:
        print("bench_sim: no vcsim binary; run sh tools/build-vcsim (or set $NFCLEASE_VCSIM)", file=sys.stderr)
        return 2
    curl = shutil.which("curl")
    if curl is None:
        print("bench_sim: curl is not installed", file=sys.stderr)
        return 2

    # SIGTERM unwinds like Ctrl-C, so every server is stopped by its context manager.
    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)

    curl_version = subprocess.run([curl, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    fig: dict[str, Any] = {
        "plan": plan, "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "curl": curl_version,
                    "loadavg_start": loadavg()},
    }
    print(f"bench_sim: {'quick' if args.quick else 'full'} run, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, {curl_version}; loadavg {loadavg()}", flush=True)
    failures: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="nfclease-bench-"))

    def run_section(name: str, title: str, fn: Callable[[], Any]) -> None:
        if name in args.skip:
            return
        print(f"\n== {title}  (loadavg {loadavg()})", flush=True)
        try:
            fig[name if name != "big" else "big_upload"] = fn()
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # report and go on: the other sections still say something
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)

    try:
        with SimProcess(init_seconds=0.2) as ours, Vcsim() as vc:
            print(f"ours  {ours.url} pid {ours.pid} (python -m nfclease sim)\nvcsim {vc.url} pid {vc.pid}", flush=True)

            def progress() -> Any:
                r = bench_progress([ours, vc], plan["progress_calls"], plan["progress_block"],
                                   plan["progress_warmup"])
                for name in ("ours", "vcsim"):
                    print(f"   {name:5} median {r[name]['median_ms']:.3f} ms  p95 {r[name]['p95_ms']:.3f} ms", flush=True)
                return r
            run_section("progress", f"1. Progress round trip: {plan['progress_calls']} calls per target, "
                        f"alternating blocks of {plan['progress_block']}", progress)


            def upload() -> Any:
                r = bench_upload([ours, vc], plan["upload_bytes"], plan["upload_reps"], workdir, curl)
                for name in ("ours", "vcsim"):
                    print(f"   {name:5} " + ", ".join(f"{x['mb_s']:.1f}" for x in r[name]["runs"]) + " MB/s",
                          flush=True)
                return r
            run_section("upload", f"2. curl upload of {plan['upload_bytes'] / MiB:.0f} MiB, "
                        f"{plan['upload_reps']} reps per target", upload)
            fig["rss_after_1_2_mb"] = {"ours": round(rss_mb(ours.pid), 1), "vcsim": round(rss_mb(vc.pid), 1)}


        def leases() -> Any:
            out: dict[str, Any] = {}
            # A lease timeout shorter than creating them and keeping them alive takes:
            # "ready" at the end then shows that the round-robin Progress renewed each.
            with SimProcess(lease_timeout=LEASE_TIMEOUT_3A, init_seconds=0.2) as fresh:
                out["ours"] = bench_leases(fresh, plan["leases"], plan["keepalive_seconds"], create_budget=150)
            print(f"   ours  peak {out['ours']['peak_mb']} MB, created in {out['ours']['create_s']} s", flush=True)
            try:
                with Vcsim() as fresh_vc:
                    out["vcsim"] = bench_leases(fresh_vc, plan["leases"], plan["keepalive_seconds"],
                                                create_budget=150)
                print(f"   vcsim peak {out['vcsim']['peak_mb']} MB, created in {out['vcsim']['create_s']} s",
                      flush=True)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # the comparison is optional
                out["vcsim"] = {"error": f"{type(exc).__name__}: {exc}"[:60]}
                print(f"   vcsim: {exc}", flush=True)
            return out
        run_section("leases", f"3a. memory: {plan['leases']} ready import leases, Progress round-robin "
                    f"{plan['keepalive_seconds']:g} s, lease timeout {LEASE_TIMEOUT_3A:g} s (fresh processes)", leases)


        def big() -> Any:
            with SimProcess(init_seconds=0.2) as fresh:
                r = bench_big_upload(fresh, plan["big_upload_bytes"])
            print(f"   growth {r['growth_mb']} MB over {r['seconds']} s ({r['mb_s']} MB/s)", flush=True)
            return r
        run_section("big", f"3b. memory: RSS growth during a {plan['big_upload_bytes'] / (1 << 30):.2f} GiB "
                    "upload (fresh process)", big)
    except KeyboardInterrupt as exc:
        print(f"\nbench_sim: interrupted ({exc}); servers stopped", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    fig["machine"]["loadavg_end"] = loadavg()
    print(f"\n== Results ({'quick' if args.quick else 'full'} run; loadavg start {fig['machine']['loadavg_start']}, "
          f"end {fig['machine']['loadavg_end']}; MB/s = 10^6 B/s, RSS MB = MiB)")
    print(render(fig))
    if failures:
        fig["failures"] = failures
        print("\nfailed sections:\n  " + "\n  ".join(failures))
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2, default=str) + "\n")
        print(f"\nfigures written to {args.json}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
