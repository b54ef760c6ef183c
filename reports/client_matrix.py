"""The client x clause matrix of ``nfclease clients``: ``matrix.md`` and a self-contained ``matrix.html``.

Three tables from ``clients.json``: each client clause against each client
(FAIL names the scenario runs that broke it), each scenario against each
client (did it end as a correct client does), and the evidence behind every
FAIL. Both files come from the same rows, so they never disagree.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from nfclease.conformance.client_clauses import CLIENT_CLAUSES

Row = list[str]


def clause_rows(results: dict[str, Any]) -> tuple[Row, list[Row]]:
    """Header and rows: one per clause, one column per client."""
    names = list(results["clients"])
    rows = []
    for clause in CLIENT_CLAUSES:
        row = [clause.id, clause.level]
        for name in names:
            entry = results["clients"][name]["clauses"].get(clause.id, {"status": "NA"})
            where = ", ".join(dict.fromkeys(w.split("/")[0] for w in entry.get("failed_in", [])))
            row.append(f"FAIL ({where})" if entry["status"] == "FAIL" else entry["status"])
        rows.append(row)
    return ["clause", "level", *names], rows


def scenario_rows(results: dict[str, Any]) -> tuple[Row, list[Row]]:
    """Header and rows: one per scenario and operation, one column per client (how the run ended)."""
    names = list(results["clients"])
    keys: dict[tuple[str, str], None] = {}
    for name in names:
        for cell in results["clients"][name]["cells"]:
            keys[(cell["scenario"], cell["operation"])] = None
    rows = []
    for scenario, operation in keys:
        row = [f"{scenario} ({operation})", results["scenarios"].get(scenario, {}).get("outcome", "")]
        for name in names:
            cell = next((c for c in results["clients"][name]["cells"]
                         if (c["scenario"], c["operation"]) == (scenario, operation)), None)
            if cell is None:
                row.append("-")
                continue
            ended = "killed" if cell["timed_out"] else f"exit {cell['exit']}"
            row.append(f"{cell['outcome']['status']} ({ended}, {cell['seconds']:g} s)")
        rows.append(row)
    return ["scenario", "correct ends", *names], rows


def evidence(results: dict[str, Any]) -> list[str]:
    """One line per failed clause per client: where and what."""
    lines = []
    for name, client in results["clients"].items():
        for clause_id, entry in client["clauses"].items():
            for text in entry.get("evidence", [])[:3]:
                lines.append(f"{name} `{clause_id}`: {text}")
        for cell in client["cells"]:
            if cell["outcome"]["status"] == "FAIL":
                lines.append(f"{name} scenario {cell['scenario']}/{cell['operation']}: {cell['outcome']['evidence'][0]}")
    return lines


def _markdown_table(header: Row, rows: list[Row]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def render_markdown(results: dict[str, Any]) -> str:
    out = ["# Client x clause matrix", "",
           "Each client ran unchanged against nfclease's simulator under each scenario; its recorded "
           "conversation was judged against `conformance/CLIENT-CLAUSES.md`. FAIL names the scenarios "
           "whose runs broke the clause.", ""]
    out += _markdown_table(*clause_rows(results))
    out += ["", "## How each run ended", ""]
    out += _markdown_table(*scenario_rows(results))
    if results.get("skipped"):
        out += ["", "## Skipped", ""] + [f"- {n}: {why}" for n, why in results["skipped"].items()]
    out += ["", "## Evidence", ""] + [f"- {line}" for line in evidence(results)] + [""]
    return "\n".join(out)


def _html_table(header: Row, rows: list[Row]) -> str:
    def cell(text: str) -> str:
        kind = text.split(" ", 1)[0].lower() if text.split(" ", 1)[0] in ("PASS", "FAIL", "NA") else ""
        return f'<td class="{kind}">{html.escape(text)}</td>'

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(results: dict[str, Any]) -> str:
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}.pass{background:#d8f5d8}"
             ".fail{background:#f8d0d0}.na{color:#888}")
    items = "".join(f"<li>{html.escape(line)}</li>" for line in evidence(results))
    skipped = "".join(f"<li>{html.escape(n)}: {html.escape(w)}</li>" for n, w in results.get("skipped", {}).items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Client x clause matrix</title>"
            f"<style>{style}</style></head><body><h1>Client x clause matrix</h1>"
            f"{_html_table(*clause_rows(results))}<h2>How each run ended</h2>{_html_table(*scenario_rows(results))}"
            + (f"<h2>Skipped</h2><ul>{skipped}</ul>" if skipped else "")
            + f"<h2>Evidence</h2><ul>{items}</ul></body></html>\n")


def write_matrix(results: dict[str, Any], directory: Path) -> None:
    """``matrix.md`` and ``matrix.html`` in ``directory``."""
    (directory / "matrix.md").write_text(render_markdown(results), encoding="utf-8")
    (directory / "matrix.html").write_text(render_html(results), encoding="utf-8")
