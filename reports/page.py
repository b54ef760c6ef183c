"""The report page: several runs side by side, one HTML file and its Markdown twin.

A *run* is a directory holding ``results.json`` (conformance) and/or
``load.json`` (load), as ``nfclease run``, ``conform`` and ``load`` write
them. The page puts clauses as rows and runs as columns (catalogue order,
then any clause only a results file knows), a summary per run, the load
figures side by side with a throughput chart, and -- against a baseline run
-- what changed: new FAILs, new PASSes, throughput and latency deltas judged
by the load regression gate (:mod:`nfclease.load.gate`) with their spread.

The HTML is self-contained (inline CSS and SVG, no script, no network) and
rendered from Jinja2 templates shipped in ``reports/templates/``. Every text
that came from a run is passed through :func:`nfclease.reports.results.scrub` again,
so a report can be attached to a bug without leaking a password.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from nfclease.reports.results import FAILING, STATUSES, read_results, scrub

STATUS_COLOURS = {
    "PASS": ("#1a7f37", "#dafbe1"),
    "FAIL": ("#cf222e", "#ffebe9"),
    "NA": ("#57606a", "#eaeef2"),
    "XFAIL": ("#9a6700", "#fff8c5"),
    "XPASS": ("#8250df", "#fbefff"),
    "": ("#8c959f", "#ffffff"),
}
DEFAULT_TOLERANCE = 0.10
PROGRESS_METHOD = "HttpNfcLeaseProgress"


class ReportError(ValueError):
    """A run directory the report cannot read (says which and why)."""


@dataclass
class Run:
    """One column: a run directory's conformance record and load figures."""

    label: str
    source: str
    run_info: dict[str, Any]
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, int] = field(default_factory=dict)
    load: dict[str, Any] | None = None

    @property
    def has_conformance(self) -> bool:
        return bool(self.cells)

    @property
    def failing(self) -> bool:
        return any(self.summary.get(s, 0) for s in FAILING)

    def status(self, clause: str) -> str:
        cell = self.cells.get(clause)
        return cell["status"] if cell else ""

    @property
    def mbps(self) -> float | None:
        aggregate = (self.load or {}).get("aggregate") or {}
        return aggregate.get("throughput_mbps")

    @property
    def corrupted(self) -> int:
        """Bytes the load run found corrupted (0 without a load run)."""
        return int(((self.load or {}).get("aggregate") or {}).get("bytes_corrupted") or 0)

    @property
    def progress_p95_ms(self) -> float | None:
        latency = ((self.load or {}).get("aggregate") or {}).get("soap_latency_ms") or {}
        return (latency.get(PROGRESS_METHOD) or {}).get("p95")


@dataclass
class Changes:
    """What a run changed against the baseline run."""

    run: Run
    new_fail: list[str]
    new_pass: list[str]
    other: list[tuple[str, str, str]]  # (clause, baseline status, current status)
    load_rows: list[Any]  # nfclease.load.gate.Row


@dataclass
class Report:
    title: str
    clauses: list[tuple[str, str]]  # (clause id, level)
    runs: list[Run]
    baseline: Run | None = None
    changes: list[Changes] = field(default_factory=list)
    tolerance: float = DEFAULT_TOLERANCE
    sentences: dict[str, str] = field(default_factory=dict)  # clause id -> the spec's sentence


def read_run(path: str | Path, label: str | None = None) -> Run:
    """A run directory (or a results.json/load.json file) as one column."""
    p = Path(path)
    directory = p if p.is_dir() else p.parent
    results_file, load_file = directory / "results.json", directory / "load.json"
    if p.is_file():
        results_file = p if p.name != "load.json" else results_file
        load_file = p if p.name == "load.json" else load_file
    if not results_file.is_file() and not load_file.is_file():
        raise ReportError(f"{path}: no results.json or load.json there; pass a directory written by "
                          "nfclease run, conform or load")
    run = Run(label or directory.resolve().name, str(path), {})
    try:
        if results_file.is_file():
            data = read_results(results_file)
            run.run_info = dict(data.get("run_info") or {})
            run.cells = {r["clause"]: r for r in data["results"]}
            run.summary = {s: int(data.get("summary", {}).get(s, 0)) for s in STATUSES}
        if load_file.is_file():
            run.load = json.loads(load_file.read_text(encoding="utf-8"))
            if not isinstance(run.load, dict) or "aggregate" not in run.load:
                raise ReportError(f"{load_file}: not a load.json (no 'aggregate')")
            for key, value in (run.load.get("run_info") or {}).items():
                run.run_info.setdefault(key, value)
    except (ValueError, KeyError, TypeError) as exc:  # json errors are ValueErrors
        raise ReportError(f"{path}: cannot read the run: {exc}") from exc
    return run


def _unique_labels(runs: Sequence[Run]) -> None:
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
        if seen[run.label] > 1:
            run.label = f"{run.label} #{seen[run.label]}"


def clause_rows(runs: Sequence[Run]) -> list[tuple[str, str]]:
    """Catalogue order, then clauses only some record knows (an older or newer suite)."""
    from nfclease.conformance.clauses import CLAUSES

    rows = [(c.id, c.level) for c in CLAUSES]
    known = {c for c, _ in rows}
    for run in runs:
        for clause, cell in run.cells.items():
            if clause not in known:
                rows.append((clause, str(cell.get("level", ""))))
                known.add(clause)
    return rows


def load_metrics(run: Run) -> dict[str, Any]:
    """The gate's metrics of a run (medians over its repeats when it has them)."""
    from nfclease.load.gate import Metric, combine

    if run.load is None:
        return {}
    repeats = (run.load.get("repeats") or {}).get("metrics")
    if repeats:
        return {name: Metric.from_dict(name, data) for name, data in repeats.items()}
    return combine([run.load])


def compare_runs(baseline: Run, run: Run, tolerance: float = DEFAULT_TOLERANCE) -> Changes:
    """New FAILs, new PASSes, other status moves, and the load gate's rows."""
    from nfclease.load.gate import Baseline, compare

    new_fail, new_pass, other = [], [], []
    for clause in sorted(set(baseline.cells) | set(run.cells)):
        before, after = baseline.status(clause), run.status(clause)
        if before == after:
            continue
        if after in FAILING:
            new_fail.append(clause)
        elif after == "PASS":
            new_pass.append(clause)
        else:
            other.append((clause, before or "-", after or "-"))
    rows = []
    if baseline.load is not None and run.load is not None:
        rows = compare(Baseline(load_metrics(baseline)), load_metrics(run), tolerance)
    return Changes(run, new_fail, new_pass, other, rows)


def build_report(paths: Sequence[str | Path], baseline: str | Path | None = None,
                 title: str = "HttpNfcLease conformance and load",
                 tolerance: float = DEFAULT_TOLERANCE) -> Report:
    """Read the runs (and the baseline) into one report model."""
    from nfclease.conformance.clauses import CLAUSES

    runs = [read_run(p) for p in paths]
    _unique_labels(runs)
    base = read_run(baseline, label=f"baseline ({Path(baseline).resolve().name})") if baseline else None
    report = Report(title, clause_rows(runs + ([base] if base else [])), runs, base, tolerance=tolerance)
    report.sentences = {c.id: f"{c.sentence} (API {c.since}+)" for c in CLAUSES}
    if base is not None:
        same = Path(baseline).resolve()
        report.changes = [compare_runs(base, run, tolerance) for run in runs
                          if Path(run.source).resolve() != same]  # the baseline itself changed nothing
    return report


def _environment() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    from nfclease.reports.chart import throughput_chart

    env = Environment(loader=PackageLoader("nfclease.reports", "templates"),
                      autoescape=select_autoescape(enabled_extensions=("html", "svg"), default=False),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["scrub"] = lambda text: scrub(str(text)) if text is not None else ""
    env.filters["md"] = lambda text: scrub(str(text or "")).replace("|", "\\|").replace("\n", " ")
    env.filters["num"] = _number
    env.globals.update(STATUSES=STATUSES, COLOURS=STATUS_COLOURS, FAILING=FAILING, chart=throughput_chart,
                       load_rows=load_rows, pct=_percent, spread=_spread)
    return env


def _number(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, (int, float)):
        return f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"
    return str(value)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def _spread(metric: Any) -> str:
    """A metric's spread over its repeats ((max - min) / median); '1 run' when there was one."""
    if metric is None:
        return "-"
    return "1 run" if len(metric.values) < 2 else f"{metric.spread * 100:.1f}%"


def load_rows(runs: Sequence[Run]) -> list[tuple[str, list[Any], int]]:
    """The load figures shown side by side: (label, one value per run, decimals)."""
    def agg(run: Run, *keys: str) -> Any:
        value: Any = (run.load or {}).get("aggregate") or {}
        for key in keys:
            value = (value or {}).get(key) if isinstance(value, dict) else None
        return value

    scenarios = sorted({name for run in runs for name in ((run.load or {}).get("scenarios") or {})})
    rows: list[tuple[str, list[Any], int]] = [("throughput MB/s (aggregate)", [run.mbps for run in runs], 1)]
    for name in scenarios:
        rows.append((f"throughput MB/s {name}",
                     [(((run.load or {}).get("scenarios") or {}).get(name) or {}).get("throughput_mbps")
                      for run in runs], 1))
    rows += [
        ("transfers", [agg(run, "transfers") for run in runs], 0),
        ("bytes verified (MB)", [None if agg(run, "bytes_verified") is None else agg(run, "bytes_verified") / 1e6
                                 for run in runs], 1),
        ("bytes corrupted", [agg(run, "bytes_corrupted") for run in runs], 0),
        ("Progress p95 ms", [run.progress_p95_ms for run in runs], 2),
        ("SOAP p95 ms (all calls)", [agg(run, "soap_latency_all_ms", "p95") for run in runs], 1),
        ("time to ready p95 s", [agg(run, "time_to_ready_s", "p95") for run in runs], 3),
        ("leases expired", [agg(run, "leases_expired") for run in runs], 0),
        ("calls failed", [None if run.load is None else sum((agg(run, "errors") or {}).values()) for run in runs], 0),
        ("users / seconds", [None if run.load is None else
                             f"{run.load['run_info'].get('users', '?')} / {run.load['run_info'].get('duration', '?')}"
                             for run in runs], 0),
    ]
    return rows


def render(report: Report) -> tuple[str, str]:
    """The HTML page and its Markdown twin."""
    from nfclease import __version__

    env = _environment()
    context = {"report": report, "version": __version__,
               "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    return (env.get_template("report.html").render(**context), env.get_template("report.md").render(**context))


def write_report(report: Report, out: str | Path, step_summary: bool = True) -> tuple[Path, Path]:
    """Write ``out`` (HTML) and ``out`` with ``.md`` beside it; append the Markdown to
    ``$GITHUB_STEP_SUMMARY`` when that is set and ``step_summary``."""
    page, markdown = render(report)
    html_path = Path(out)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(page, encoding="utf-8")
    md_path = html_path.with_suffix(".md")
    md_path.write_text(markdown, encoding="utf-8")
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary and summary_file:
        with open(summary_file, "a", encoding="utf-8") as handle:
            handle.write(markdown)
    return html_path, md_path
