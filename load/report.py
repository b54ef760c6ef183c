"""What a load run leaves in its report directory.

* ``load.json`` -- the record described in ARCHITECTURE.md: ``run_info`` (target without
  secrets, product, version, build, api_version, scenario, users, workers,
  duration, ...) and, per scenario and in aggregate, throughput (MB/s, MB =
  10^6 bytes), transfers, bytes verified and corrupted, SOAP latency
  percentiles per method, leases expired, time-to-ready and timeout accuracy;
  plus the time series the plot is drawn from, the knee of a stepped run and
  the medians of repeated runs;
* ``locust_stats.csv``, ``locust_stats_history.csv``, ``locust_failures.csv``,
  ``locust_exceptions.csv`` and ``locust.html`` -- Locust's own reports;
* ``load.png`` -- throughput per scenario and SOAP latency over time.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from nfclease.events import redact

LOAD_JSON_VERSION = 1


def write_load_json(path: str | Path, run_info: dict[str, Any], figures: dict[str, Any],
                    extra: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"version": LOAD_JSON_VERSION, "run_info": redact(run_info),
              "scenarios": figures.get("scenarios", {}), "aggregate": figures.get("aggregate", {}),
              "series": figures.get("series", {})}
    record.update(extra or {})
    path.write_text(json.dumps(record, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    return path


def write_locust_reports(environment: Any, directory: str | Path, prefix: str = "locust") -> list[Path]:
    """Locust's CSV files (final numbers) and its HTML report."""
    from locust.html import get_html_report
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    written = []
    for suffix, method in (("stats", writer.requests_csv), ("failures", writer.failures_csv),
                           ("exceptions", writer.exceptions_csv)):
        out = directory / f"{prefix}_{suffix}.csv"
        with out.open("w", newline="", encoding="utf-8") as handle:
            method(csv.writer(handle))
        written.append(out)
    html = directory / f"{prefix}.html"
    html.write_text(get_html_report(environment, show_download_link=False), encoding="utf-8")
    written.append(html)
    return written


def plot(series: dict[str, Any], path: str | Path, title: str = "", knee: dict[str, Any] | None = None) -> Path | None:
    """Throughput (MB/s per scenario) and SOAP latency (p50, p95) over time, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = series.get("t") or []
    if not t:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6.5))
    for name, values in sorted((series.get("mbps") or {}).items()):
        top.plot(t, values, label=name, linewidth=2.2 if name == "aggregate" else 1.2)
    top.set_ylabel("throughput MB/s")
    if series.get("mbps"):
        top.legend(loc="upper left", fontsize="small")
    top.grid(alpha=0.3)
    p50 = [v if v is not None else float("nan") for v in series.get("soap_p50_ms") or []]
    p95 = [v if v is not None else float("nan") for v in series.get("soap_p95_ms") or []]
    bottom.plot(t, p50, label="SOAP p50", linewidth=1.2)
    bottom.plot(t, p95, label="SOAP p95", linewidth=1.2)
    fails = series.get("failures") or []
    if any(fails):
        twin = bottom.twinx()
        twin.bar(t, fails, width=series.get("bucket_s", 1.0) * 0.8, alpha=0.25, color="red", label="failures")
        twin.set_ylabel("failures / bucket")
    bottom.set_ylabel("SOAP latency ms")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper left", fontsize="small")
    bottom.grid(alpha=0.3)
    if knee and knee.get("steps") and series.get("t0"):
        for step in knee.get("windows", []):
            x = step[1] - series["t0"]
            top.axvline(x, color="grey", alpha=0.3, linestyle=":")
            top.text(x, top.get_ylim()[1] * 0.95, f"{step[0]}u", fontsize="x-small", color="grey")
    fig.suptitle(title or "nfclease load")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
