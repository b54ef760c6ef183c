"""Geometry of the report's throughput chart, drawn as inline SVG by the template.

Two panels, no script: MB/s per scenario (and in aggregate) as grouped bars,
one bar per run; and aggregate MB/s over time, one line per run. Only numbers
are computed here; ``reports/templates/chart.svg`` draws them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

PALETTE = ("#0969da", "#bf3989", "#1a7f37", "#bc4c00", "#8250df", "#57606a")
WIDTH = 680
LABEL_W = 150
BAR_H = 14
GROUP_GAP = 12
LINE_H = 180
PAD = 28


@dataclass
class Bar:
    y: float
    width: float
    colour: str
    value: float
    run: str


@dataclass
class Group:
    label: str
    y: float
    bars: list[Bar]


@dataclass
class Line:
    run: str
    colour: str
    points: str  # "x,y x,y ..." for <polyline>


@dataclass
class Chart:
    """What the template draws; ``empty`` when no run has load figures."""

    legend: list[tuple[str, str]]
    groups: list[Group] = field(default_factory=list)
    bars_height: float = 0.0
    x_ticks: list[tuple[float, str]] = field(default_factory=list)  # bar panel: (x, label)
    lines: list[Line] = field(default_factory=list)
    line_top: float = 0.0
    line_x_ticks: list[tuple[float, str]] = field(default_factory=list)
    line_y_ticks: list[tuple[float, str]] = field(default_factory=list)
    height: float = 0.0
    width: int = WIDTH
    label_w: int = LABEL_W
    pad: int = PAD
    line_h: int = LINE_H

    @property
    def empty(self) -> bool:
        return not self.groups


def nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _ticks(top: float, start: float, span: float, count: int = 5) -> list[tuple[float, str]]:
    return [(start + span * i / count, f"{top * i / count:g}") for i in range(count + 1)]


def _bar_panel(chart: Chart, runs: Sequence[Any], colours: dict[str, str]) -> float:
    scenarios = sorted({name for run in runs for name in ((run.load or {}).get("scenarios") or {})})
    categories = scenarios + ["aggregate"]
    values: dict[tuple[str, str], float] = {}
    for run in runs:
        figures = run.load or {}
        for name in categories:
            fig = figures.get("aggregate") if name == "aggregate" else (figures.get("scenarios") or {}).get(name)
            if fig and fig.get("throughput_mbps") is not None:
                values[(name, run.label)] = float(fig["throughput_mbps"])
    top = nice_max(max(values.values(), default=0.0))
    span = WIDTH - LABEL_W - PAD
    y = float(PAD)
    for name in categories:
        bars = []
        group_y = y
        for run in runs:
            value = values.get((name, run.label))
            if value is None:
                continue
            bars.append(Bar(y, span * value / top, colours[run.label], value, run.label))
            y += BAR_H + 2
        if bars:
            chart.groups.append(Group(name, group_y, bars))
            y += GROUP_GAP
    chart.x_ticks = _ticks(top, LABEL_W, span)
    chart.bars_height = y
    return y


def _line_panel(chart: Chart, runs: Sequence[Any], colours: dict[str, str], top_y: float) -> float:
    series = []
    for run in runs:
        data = (run.load or {}).get("series") or {}
        t, mbps = data.get("t") or [], (data.get("mbps") or {}).get("aggregate") or []
        if len(t) >= 2 and len(mbps) == len(t):
            series.append((run, [float(v) for v in t], [float(v or 0.0) for v in mbps]))
    if not series:
        return top_y
    chart.line_top = top_y + PAD
    x_top = nice_max(max(t[-1] for _, t, _ in series))
    y_top = nice_max(max(max(v) for _, _, v in series))
    span_x = WIDTH - LABEL_W - PAD
    bottom = chart.line_top + LINE_H
    for run, t, v in series:
        points = " ".join(f"{LABEL_W + span_x * ti / x_top:.1f},{bottom - LINE_H * vi / y_top:.1f}"
                          for ti, vi in zip(t, v))
        chart.lines.append(Line(run.label, colours[run.label], points))
    chart.line_x_ticks = _ticks(x_top, LABEL_W, span_x)
    chart.line_y_ticks = [(bottom - LINE_H * i / 4, f"{y_top * i / 4:g}") for i in range(5)]
    return bottom + PAD + 6


def throughput_chart(runs: Sequence[Any]) -> Chart:
    """The chart of the runs that have load figures (``Chart.empty`` when none has)."""
    loaded = [run for run in runs if run.load]
    colours = {run.label: PALETTE[i % len(PALETTE)] for i, run in enumerate(loaded)}
    chart = Chart(legend=[(run.label, colours[run.label]) for run in loaded])
    if not loaded:
        return chart
    bottom = _bar_panel(chart, loaded, colours)
    chart.height = _line_panel(chart, loaded, colours, bottom + 10)
    return chart
