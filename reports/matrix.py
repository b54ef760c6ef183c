"""The clause x target matrix: several results.json side by side.

One row per clause (catalogue order, then any clause only a results file
knows), one column per target run, one status per cell. Markdown for a README
or a PR comment, and a self-contained HTML page (no scripts, no external
files) coloured by status, with each cell's message as its tooltip.
"""

from __future__ import annotations

import argparse
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from reports.results import STATUSES, read_results

COLOURS = {
    "PASS": ("#1a7f37", "#dafbe1"),
    "FAIL": ("#cf222e", "#ffebe9"),
    "NA": ("#57606a", "#f6f8fa"),
    "XFAIL": ("#9a6700", "#fff8c5"),
    "XPASS": ("#8250df", "#fbefff"),
    "": ("#57606a", "#ffffff"),
}


@dataclass
class Column:
    label: str
    source: str
    run_info: dict[str, Any]
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: dict[str, int] = field(default_factory=dict)


@dataclass
class Matrix:
    clauses: list[tuple[str, str]]  # (clause, level)
    columns: list[Column]

    def status(self, clause: str, column: Column) -> str:
        cell = column.cells.get(clause)
        return cell["status"] if cell else ""


def _label(info: dict[str, Any], path: Path) -> str:
    product = " ".join(str(info[k]) for k in ("product", "version") if info.get(k))
    return product or str(info.get("target") or "") or path.parent.name or path.stem


def build_matrix(paths: Sequence[str | Path]) -> Matrix:
    """Read each results.json (or directory holding one) into one matrix."""
    from conformance.clauses import CLAUSES

    columns: list[Column] = []
    seen_labels: dict[str, int] = {}
    order = [(c.id, c.level) for c in CLAUSES]
    known = {c for c, _ in order}
    for raw in paths:
        path = Path(raw)
        data = read_results(path)
        info = data.get("run_info") or {}
        label = _label(info, path if path.is_file() else path / "results.json")
        seen_labels[label] = seen_labels.get(label, 0) + 1
        if seen_labels[label] > 1:
            label = f"{label} #{seen_labels[label]}"
        col = Column(label, str(path), info, {r["clause"]: r for r in data["results"]}, data.get("summary", {}))
        for r in data["results"]:
            if r["clause"] not in known:
                order.append((r["clause"], r.get("level", "")))
                known.add(r["clause"])
        columns.append(col)
    return Matrix(order, columns)


def to_markdown(matrix: Matrix) -> str:
    """A Markdown table; FAIL and XPASS in bold so they stand out in plain text too."""
    def cell(status: str) -> str:
        return f"**{status}**" if status in ("FAIL", "XPASS") else (status or "-")

    head = "| clause | level | " + " | ".join(c.label.replace("|", "/") for c in matrix.columns) + " |"
    rule = "| --- | --- | " + " | ".join(":---:" for _ in matrix.columns) + " |"
    lines = [head, rule]
    for clause, level in matrix.clauses:
        lines.append(f"| `{clause}` | {level} | " + " | ".join(cell(matrix.status(clause, c)) for c in matrix.columns) + " |")
    for s in STATUSES:
        counts = [str(sum(1 for cl, _ in matrix.clauses if matrix.status(cl, c) == s)) for c in matrix.columns]
        lines.append(f"| *{s}* | | " + " | ".join(counts) + " |")
    return "\n".join(lines) + "\n"


def to_html(matrix: Matrix, title: str = "HttpNfcLease conformance matrix") -> str:
    """A self-contained HTML page: colour per status, message on hover."""
    esc = html.escape
    css = "\n".join(
        f".s-{s or 'none'} {{ color: {fg}; background: {bg}; }}" for s, (fg, bg) in COLOURS.items())
    head_cells = "".join(
        f'<th title="{esc(c.source)}">{esc(c.label)}<br><small>API {esc(str(c.run_info.get("api_version") or "?"))}'
        f'</small></th>' for c in matrix.columns)
    body = []
    group = None
    for clause, level in matrix.clauses:
        g = clause.split(".", 1)[0]
        if g != group:
            group = g
            body.append(f'<tr class="group"><td colspan="{2 + len(matrix.columns)}">{esc(g)}</td></tr>')
        cells = []
        for c in matrix.columns:
            r = c.cells.get(clause) or {}
            status = r.get("status", "")
            tip = r.get("message") or ""
            if r.get("repro"):
                tip += "\n\n" + r["repro"]
            cells.append(f'<td class="s-{status or "none"}" title="{esc(tip)}">{esc(status or "-")}</td>')
        body.append(f'<tr><th class="clause"><code>{esc(clause)}</code></th><td class="level">{esc(level)}</td>'
                    + "".join(cells) + "</tr>")
    totals = []
    for s in STATUSES:
        counts = "".join(
            f'<td class="s-{s}">{sum(1 for cl, _ in matrix.clauses if matrix.status(cl, c) == s)}</td>'
            for c in matrix.columns)
        totals.append(f'<tr class="total"><th>{s}</th><td></td>{counts}</tr>')
    legend = " ".join(f'<span class="s-{s} legend">{s}</span>' for s in STATUSES)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1f2328; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #d0d7de; padding: 3px 8px; text-align: center; }}
th.clause {{ text-align: left; font-weight: normal; }}
thead th {{ position: sticky; top: 0; background: #fff; }}
td.level {{ color: #57606a; font-size: 12px; }}
tr.group td {{ background: #eaeef2; text-align: left; font-weight: bold; }}
tr.total th {{ text-align: left; }}
td[class^="s-"] {{ font-weight: 600; }}
.legend {{ padding: 2px 8px; border-radius: 4px; margin-right: 4px; }}
{css}
</style></head><body>
<h1>{esc(title)}</h1>
<p>{legend} &nbsp; hover a cell for its message and repro.</p>
<table>
<thead><tr><th>clause</th><th>level</th>{head_cells}</tr></thead>
<tbody>
{chr(10).join(body)}
{chr(10).join(totals)}
</tbody></table>
</body></html>
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.matrix",
                                     description="Clause x target matrix from several results.json files.")
    parser.add_argument("results", nargs="+", help="results.json files or report directories")
    parser.add_argument("--md", help="write Markdown here (default: print it)")
    parser.add_argument("--html", help="write the HTML page here")
    args = parser.parse_args(argv)
    matrix = build_matrix(args.results)
    md = to_markdown(matrix)
    if args.md:
        Path(args.md).write_text(md, encoding="utf-8")
    else:
        print(md, end="")
    if args.html:
        Path(args.html).write_text(to_html(matrix), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
