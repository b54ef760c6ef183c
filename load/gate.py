"""The regression gate: compare a run's throughput and p95 latencies with a saved baseline.

Metrics (from the ``load.json`` figures of each run):

* ``throughput MB/s <scenario|aggregate>`` (higher is better) for scenarios that
  move data, ``leases/s <scenario>`` for those that do not (churn, keepalive,
  timeout-probe);
* ``p95 ms SOAP <method>`` for every SOAP method (aggregate over scenarios),
  ``p95 s NFC upload|download`` and ``p95 s time-to-ready`` (lower is better).

Noise. Shared machines are noisy, so a gate run is ``--repeat N`` runs and
every metric is the **median** over them; its spread is ``(max - min) /
median``. A metric regresses when its median is worse than the baseline's
median by more than the *effective tolerance*::

    effective = tolerance + max(spread of baseline, spread of current) / 2

i.e. the tolerance is widened by half the noise actually observed on either
side (documented, and printed per metric, so a gate that is loose because a
metric is noisy says so). Two more conditions keep single noisy runs from
failing a gate:

* the repeats must not overlap: every current run is worse than every
  baseline run (with one run a side this is the median rule again);
* a latency needs an absolute change above ``LATENCY_FLOOR_MS`` (1 ms;
  0.001 s for NFC/time-to-ready), and at least ``MIN_SAMPLES`` (100) calls in
  every run: a p95 of fewer rests on its five largest values. Such metrics,
  and any with a baseline median of zero, are shown as "not gated".

What the gate cannot see is a machine that is slower as a whole between the
baseline and the check (another job on a shared host): record the baseline
on the same kind of machine, close in time, and raise ``--repeat`` /
``--duration`` when the printed tolerances are wide.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

BASELINE_VERSION = 1
MIN_SAMPLES = 100
LATENCY_FLOOR_MS = 1.0


@dataclass
class Metric:
    name: str
    values: list[float]
    higher_is_better: bool
    unit: str
    samples: int = 0  # smallest per-run sample count (latency metrics)

    @property
    def median(self) -> float:
        return float(statistics.median(self.values)) if self.values else 0.0

    @property
    def spread(self) -> float:
        """(max - min) / median over the repeats (0 for a single run)."""
        if len(self.values) < 2 or self.median == 0:
            return 0.0
        return (max(self.values) - min(self.values)) / abs(self.median)

    def as_dict(self) -> dict[str, Any]:
        return {"median": round(self.median, 4), "min": round(min(self.values), 4) if self.values else None,
                "max": round(max(self.values), 4) if self.values else None, "spread": round(self.spread, 4),
                "values": [round(v, 4) for v in self.values], "higher_is_better": self.higher_is_better,
                "unit": self.unit, "samples": self.samples}

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> "Metric":
        return cls(name, [float(v) for v in data.get("values") or [data["median"]]],
                   bool(data["higher_is_better"]), str(data.get("unit", "")), int(data.get("samples", 0)))


def metrics_of(figures: dict[str, Any]) -> dict[str, tuple[float, bool, str, int]]:
    """``{name: (value, higher_is_better, unit, samples)}`` of one run's figures (load.json body)."""
    out: dict[str, tuple[float, bool, str, int]] = {}
    scenarios = figures.get("scenarios", {})
    aggregate = figures.get("aggregate", {})
    for name, fig in scenarios.items():
        if fig.get("bytes_transferred"):
            out[f"throughput MB/s {name}"] = (float(fig["throughput_mbps"]), True, "MB/s", fig.get("transfers", 0))
        elif fig.get("leases_acquired"):
            out[f"leases/s {name}"] = (float(fig.get("leases_per_s", 0.0)), True, "1/s", fig["leases_acquired"])
    if aggregate.get("bytes_transferred") and len([f for f in scenarios.values() if f.get("bytes_transferred")]) > 1:
        out["throughput MB/s aggregate"] = (float(aggregate["throughput_mbps"]), True, "MB/s",
                                            aggregate.get("transfers", 0))
    for method, dist in (aggregate.get("soap_latency_ms") or {}).items():
        if dist.get("count"):
            out[f"p95 ms SOAP {method}"] = (float(dist["p95"]), False, "ms", int(dist["count"]))
    for direction, nfc in (aggregate.get("nfc") or {}).items():
        dist = nfc.get("seconds") or {}
        if dist.get("count"):
            out[f"p95 s NFC {direction}"] = (float(dist["p95"]), False, "s", int(dist["count"]))
    ready = aggregate.get("time_to_ready_s") or {}
    if ready.get("count"):
        out["p95 s time-to-ready"] = (float(ready["p95"]), False, "s", int(ready["count"]))
    return out


def combine(runs: Iterable[dict[str, Any]]) -> dict[str, Metric]:
    """Metrics over repeated runs (a metric missing from a run is left out of that run)."""
    metrics: dict[str, Metric] = {}
    for figures in runs:
        for name, (value, higher, unit, samples) in metrics_of(figures).items():
            metric = metrics.get(name)
            if metric is None:
                metric = metrics[name] = Metric(name, [], higher, unit, samples)
            metric.values.append(value)
            metric.samples = min(metric.samples, samples) if metric.values[:-1] else samples
    return metrics


@dataclass
class Baseline:
    metrics: dict[str, Metric]
    run_info: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    def save(self, path: str | Path) -> None:
        data = {"version": BASELINE_VERSION, "created": self.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "run_info": self.run_info, "repeat": max((len(m.values) for m in self.metrics.values()), default=0),
                "metrics": {name: m.as_dict() for name, m in sorted(self.metrics.items())}}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Baseline":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("version") != BASELINE_VERSION:
            raise ValueError(f"{path}: baseline version {data.get('version')!r}, expected {BASELINE_VERSION}")
        return cls({name: Metric.from_dict(name, m) for name, m in data["metrics"].items()},
                   data.get("run_info") or {}, data.get("created", ""))


@dataclass
class Row:
    name: str
    baseline: Metric | None
    current: Metric | None
    change: float | None = None       # relative, signed so that positive = worse
    allowed: float | None = None
    verdict: str = "ok"               # ok | REGRESSION | improved | not gated | new | missing

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.name,
                "baseline": None if self.baseline is None else self.baseline.as_dict(),
                "current": None if self.current is None else self.current.as_dict(),
                "worse_by": None if self.change is None else round(self.change, 4),
                "allowed": None if self.allowed is None else round(self.allowed, 4), "verdict": self.verdict}


def parse_tolerance(text: str | float) -> float:
    """``"10%"`` or ``0.1`` -> 0.1."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        text = text.strip()
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        if not text.endswith("%") and value >= 1:
            value /= 100  # "10" means 10 %
    if not 0 <= value < 10:
        raise ValueError(f"tolerance {text!r} is out of range")
    return value


def compare(baseline: Baseline, current: dict[str, Metric], tolerance: float) -> list[Row]:
    rows: list[Row] = []
    for name in sorted(set(baseline.metrics) | set(current)):
        base, cur = baseline.metrics.get(name), current.get(name)
        row = Row(name, base, cur)
        rows.append(row)
        if base is None:
            row.verdict = "new"
            continue
        if cur is None:
            row.verdict = "missing"
            continue
        row.allowed = tolerance + max(base.spread, cur.spread) / 2
        if base.median == 0:
            row.verdict = "not gated"
            continue
        delta = (base.median - cur.median) if base.higher_is_better else (cur.median - base.median)
        row.change = delta / abs(base.median)
        gated = base.higher_is_better or (min(base.samples, cur.samples) >= MIN_SAMPLES)
        floor = LATENCY_FLOOR_MS if base.unit == "ms" else (LATENCY_FLOOR_MS / 1000 if base.unit == "s" else 0.0)
        apart = (max(cur.values) < min(base.values)) if base.higher_is_better else (min(cur.values) > max(base.values))
        if row.change > row.allowed and gated and apart and (base.higher_is_better or delta > floor):
            row.verdict = "REGRESSION"
        elif not gated:
            row.verdict = "not gated"
        elif row.change < -row.allowed:
            row.verdict = "improved"
    return rows


def regressions(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.verdict == "REGRESSION"]


def _fmt(metric: Metric | None) -> str:
    if metric is None:
        return "-"
    value = metric.median
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    if len(metric.values) > 1:
        text += f" ±{metric.spread * 50:.0f}%"
    return text


def print_table(rows: list[Row], console: Any | None = None, title: str = "regression gate") -> None:
    """A rich table: metric, baseline median (± half spread), current, worse by, allowed, verdict."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=title)
    for column, justify in (("metric", "left"), ("baseline", "right"), ("current", "right"),
                            ("worse by", "right"), ("allowed", "right"), ("verdict", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    styles = {"REGRESSION": "bold red", "improved": "green", "ok": "", "not gated": "dim", "new": "cyan",
              "missing": "yellow"}
    for row in rows:
        table.add_row(row.name, _fmt(row.baseline), _fmt(row.current),
                      "-" if row.change is None else f"{row.change * 100:+.1f}%",
                      "-" if row.allowed is None else f"{row.allowed * 100:.1f}%",
                      f"[{styles[row.verdict]}]{row.verdict}[/]" if styles[row.verdict] else row.verdict)
    console.print(table)
