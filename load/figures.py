"""The figures of a load run, gathered from events and merged across processes.

A :class:`Figures` holds raw records (one tuple per SOAP call, transfer,
time-to-ready, verification, expiry, timeout sample), appended by
:class:`nfclease.load.bridge.LocustBridge` as events arrive. Records are plain lists,
so a worker ships what it gathered since its last report to the master
(:meth:`Figures.drain`, Locust's ``report_to_master``) and the master
concatenates them (:meth:`Figures.merge`, ``worker_report``). The summary --
the ``load.json`` figures -- is computed once, at the end, from all records.

Units: bytes, seconds, milliseconds for latencies, **MB/s with MB = 10^6
bytes**. Times are wall-clock (``time.time()``) so records from several
processes share one axis.

Throughput of a scenario is the bytes of its *completed* transfers divided
by the span from its first transfer's start to its last transfer's end (the
aggregate uses the span of all transfers): the rate at which disk data
flowed, SOAP overheads between transfers included, ramp-up and the
in-flight transfers killed at the end excluded. ``steady_mbps`` is the same
rate over the middle of that span (the first and last 10 % left out, bytes
counted pro rata by overlap): the rate once every user is busy, without the
ramp-up and the tail of a graceful stop.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import defaultdict
from typing import Any, Iterable, Sequence

MB = 1_000_000
PERCENTILES = (50, 90, 95, 99)
#: steady-state throughput leaves out this fraction of the transfer span at each end (ramp-up, tail)
STEADY_TRIM = 0.1
AGGREGATE = "aggregate"

#: record kinds and their fields (positional, to keep worker reports small)
KINDS: dict[str, tuple[str, ...]] = {
    "soap": ("scenario", "method", "ms", "end", "ok"),
    "xfer": ("scenario", "direction", "bytes", "start", "end", "ok"),
    "ready": ("scenario", "seconds", "end"),
    "lease": ("scenario", "moid", "end"),
    "expired": ("scenario", "moid", "deliberate"),
    "verify": ("scenario", "bytes", "ok"),
    "timeout": ("scenario", "observed", "advertised", "uncertainty", "end"),
    "noexpiry": ("scenario", "advertised", "end"),
    "error": ("scenario", "call", "fault", "end"),
}


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear-interpolated percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def distribution(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """``{count, min, p50, p90, p95, p99, max, mean}`` of ``values`` (rounded)."""
    out: dict[str, Any] = {"count": len(values)}
    if not values:
        return out
    out["min"] = round(float(min(values)), digits)
    for p in PERCENTILES:
        out[f"p{p}"] = round(percentile(values, p) or 0.0, digits)
    out["max"] = round(float(max(values)), digits)
    out["mean"] = round(statistics.fmean(values), digits)
    return out


class Figures:
    """Thread-safe record store of one process (or, on the master, of all)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: dict[str, list[list[Any]]] = {kind: [] for kind in KINDS}

    def add(self, kind: str, *row: Any) -> None:
        if kind not in KINDS:
            raise KeyError(f"unknown record kind {kind!r}")
        with self._lock:
            self.records[kind].append(list(row))

    def drain(self) -> dict[str, list[list[Any]]]:
        """Everything recorded since the last drain, removed from this store."""
        with self._lock:
            out = {kind: rows for kind, rows in self.records.items() if rows}
            self.records = {kind: [] for kind in KINDS}
        return out

    def merge(self, data: dict[str, Iterable[Sequence[Any]]] | None) -> None:
        """Append records drained elsewhere (a worker's report)."""
        if not data:
            return
        with self._lock:
            for kind, rows in data.items():
                if kind in self.records:
                    self.records[kind].extend(list(r) for r in rows)

    def snapshot(self) -> dict[str, list[list[Any]]]:
        with self._lock:
            return {kind: [list(r) for r in rows] for kind, rows in self.records.items()}

    def clear(self) -> None:
        with self._lock:
            self.records = {kind: [] for kind in KINDS}

    # -- summaries --------------------------------------------------------

    def scenarios(self) -> list[str]:
        names: set[str] = set()
        with self._lock:
            for rows in self.records.values():
                names.update(r[0] for r in rows)
        return sorted(n for n in names if n not in ("setup", "teardown"))

    def summary(self, bucket: float = 1.0) -> dict[str, Any]:
        """The load.json figures: ``{"scenarios": {name: {...}}, "aggregate": {...}, "series": {...}}``."""
        recs = self.snapshot()
        names = sorted({r[0] for rows in recs.values() for r in rows} - {"setup", "teardown"})
        scenarios = {name: _summarize(recs, {name}) for name in names}
        aggregate = _summarize(recs, set(names))
        return {"scenarios": scenarios, "aggregate": aggregate, "series": _series(recs, set(names), bucket)}


def _rows(recs: dict[str, list[list[Any]]], kind: str, names: set[str]) -> list[dict[str, Any]]:
    fields = KINDS[kind]
    return [dict(zip(fields, r)) for r in recs.get(kind, []) if r[0] in names]


def _summarize(recs: dict[str, list[list[Any]]], names: set[str]) -> dict[str, Any]:
    xfers = _rows(recs, "xfer", names)
    done = [x for x in xfers if x["ok"]]
    total = sum(x["bytes"] for x in done)
    span = (max(x["end"] for x in done) - min(x["start"] for x in done)) if done else 0.0
    busy = sum(x["end"] - x["start"] for x in done)
    up = [x for x in done if x["direction"] == "upload"]
    down = [x for x in done if x["direction"] == "download"]

    soap_rows = _rows(recs, "soap", names)
    starts = [r["end"] - r["ms"] / 1000.0 for r in soap_rows] + [x["start"] for x in xfers]
    ends = [r["end"] for r in soap_rows] + [x["end"] for x in xfers]
    active = (max(ends) - min(starts)) if starts else 0.0
    leases = len({r["moid"] for r in _rows(recs, "lease", names)})

    soap, all_soap = _soap_latency(soap_rows)
    nfc = _nfc_figures(up, down)

    expired = _rows(recs, "expired", names)
    unintended = {e["moid"] for e in expired if not e["deliberate"]}
    deliberate = {e["moid"] for e in expired if e["deliberate"]}
    verify = _rows(recs, "verify", names)
    timeouts = _rows(recs, "timeout", names)
    errors_by: dict[str, int] = defaultdict(int)
    for row in _rows(recs, "error", names):
        errors_by[f"{row['call']} {row['fault']}"] += 1

    steady = _steady_mbps(done, span)

    out: dict[str, Any] = {
        "throughput_mbps": round(total / MB / span, 3) if span > 0 else 0.0,
        "steady_mbps": round(steady, 3),
        "stream_mbps": round(total / MB / busy, 3) if busy > 0 else 0.0,
        "transfers": len(done),
        "transfers_failed": len(xfers) - len(done),
        "bytes_transferred": total,
        "bytes_uploaded": sum(x["bytes"] for x in up),
        "bytes_downloaded": sum(x["bytes"] for x in down),
        "bytes_verified": sum(v["bytes"] for v in verify if v["ok"]),
        "bytes_corrupted": sum(v["bytes"] for v in verify if not v["ok"]),
        "bytes_unverified": total - sum(v["bytes"] for v in verify),
        "transfer_span_s": round(span, 3),
        "active_s": round(active, 3),
        "leases_acquired": leases,
        "leases_per_s": round(leases / active, 3) if active > 0 else 0.0,
        "soap_calls_per_s": round(len(soap_rows) / active, 3) if active > 0 else 0.0,
        "leases_expired": len(unintended),
        "leases_expired_deliberately": len(deliberate),
        "time_to_ready_s": distribution([r["seconds"] for r in _rows(recs, "ready", names)], 3),
        "soap_latency_ms": soap,
        "soap_latency_all_ms": distribution(all_soap, 2),
        "nfc": nfc,
        "errors": dict(sorted(errors_by.items())),
    }
    if timeouts or _rows(recs, "noexpiry", names):
        out["timeout_accuracy"] = _timeout_accuracy(timeouts, len(_rows(recs, "noexpiry", names)))
    return out


def _soap_latency(soap_rows: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]], list[float]]:
    """Per SOAP method: the latency distribution (ms) and its failures; and every latency."""
    soap: dict[str, dict[str, Any]] = {}
    by_method: dict[str, list[float]] = defaultdict(list)
    failures: dict[str, int] = defaultdict(int)
    for row in soap_rows:
        by_method[row["method"]].append(row["ms"])
        if not row["ok"]:
            failures[row["method"]] += 1
    for method in sorted(by_method):
        soap[method] = {**distribution(by_method[method], 2), "failures": failures.get(method, 0)}
    return soap, [ms for values in by_method.values() for ms in values]


def _nfc_figures(up: list[dict[str, Any]], down: list[dict[str, Any]]) -> dict[str, Any]:
    """Per direction: transfers, bytes, durations and the rate while streaming."""
    nfc = {}
    for direction, rows in (("upload", up), ("download", down)):
        if rows:
            nfc[direction] = {
                "transfers": len(rows), "bytes": sum(x["bytes"] for x in rows),
                "seconds": distribution([x["end"] - x["start"] for x in rows], 3),
                "stream_mbps": round(sum(x["bytes"] for x in rows) / MB / max(1e-9, sum(x["end"] - x["start"] for x in rows)), 2),
            }
    return nfc


def _steady_mbps(done: list[dict[str, Any]], span: float) -> float:
    """MB/s over the transfer span without its first and last STEADY_TRIM (ramp up and down)."""
    if span <= 0:
        return 0.0
    lo = min(x["start"] for x in done) + STEADY_TRIM * span
    hi = max(x["end"] for x in done) - STEADY_TRIM * span
    moved = sum(x["bytes"] * max(0.0, min(hi, x["end"]) - max(lo, x["start"])) / max(1e-9, x["end"] - x["start"])
                for x in done)
    return moved / MB / (hi - lo)


def _timeout_accuracy(timeouts: list[dict[str, Any]], not_expired: int) -> dict[str, Any]:
    """Observed - advertised leaseTimeout over the timeout-probe samples."""
    errs = [t["observed"] - t["advertised"] for t in timeouts]
    return {
        "samples": len(timeouts),
        "advertised_s": sorted({t["advertised"] for t in timeouts}),
        "error_s": distribution(errs, 4),                  # observed - advertised
        "abs_error_s": distribution([abs(e) for e in errs], 4),
        "uncertainty_s": distribution([t["uncertainty"] for t in timeouts], 4),
        "not_expired": not_expired,
    }


def _series(recs: dict[str, list[list[Any]]], names: set[str], bucket: float) -> dict[str, Any]:
    """Per-``bucket`` time series: MB/s per scenario (bytes spread over each transfer), SOAP p50/p95, failures."""
    xfers = [x for x in _rows(recs, "xfer", names) if x["ok"]]
    soap = _rows(recs, "soap", names)
    starts = [x["start"] for x in xfers] + [s["end"] - s["ms"] / 1000 for s in soap]
    ends = [x["end"] for x in xfers] + [s["end"] for s in soap]
    if not starts:
        return {"t0": None, "bucket_s": bucket, "t": [], "mbps": {}, "soap_p50_ms": [], "soap_p95_ms": [],
                "soap_calls": [], "failures": []}
    t0 = min(starts)
    n = int((max(ends) - t0) // bucket) + 1
    mbps: dict[str, list[float]] = {name: [0.0] * n for name in sorted({x["scenario"] for x in xfers})}
    for x in xfers:
        _spread(mbps[x["scenario"]], x["start"] - t0, x["end"] - t0, x["bytes"], bucket)
    if mbps:
        mbps[AGGREGATE] = [sum(values[i] for values in mbps.values()) for i in range(n)]
    per: list[list[float]] = [[] for _ in range(n)]
    fails = [0] * n
    for s in soap:
        i = min(n - 1, int((s["end"] - t0) // bucket))
        per[i].append(s["ms"])
        fails[i] += 0 if s["ok"] else 1
    for x in _rows(recs, "xfer", names):
        if not x["ok"]:
            fails[min(n - 1, max(0, int((x["end"] - t0) // bucket)))] += 1
    return {
        "t0": t0, "bucket_s": bucket,
        "t": [round(i * bucket, 3) for i in range(n)],
        "mbps": {k: [round(v / MB / bucket, 3) for v in values] for k, values in mbps.items()},
        "soap_p50_ms": [round(percentile(p, 50), 2) if p else None for p in per],
        "soap_p95_ms": [round(percentile(p, 95), 2) if p else None for p in per],
        "soap_calls": [len(p) for p in per],
        "failures": fails,
    }


def _spread(buckets: list[float], start: float, end: float, amount: float, bucket: float) -> None:
    """Add ``amount`` to the buckets overlapping [start, end], in proportion to the overlap."""
    n = len(buckets)
    start = max(0.0, start)
    if end <= start:
        buckets[min(n - 1, int(start // bucket))] += amount
        return
    rate = amount / (end - start)
    i = int(start // bucket)
    while i < n and i * bucket < end:
        lo, hi = max(start, i * bucket), min(end, (i + 1) * bucket)
        if hi > lo:
            buckets[i] += rate * (hi - lo)
        i += 1
