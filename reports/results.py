"""The conformance record: ``results.json``, JUnit XML and the terminal table.

``results.json`` is a stable format other tools read (ARCHITECTURE.md, "Records written")::

    {"run_info": {"target", "product", "version", "build", "api_version",
                  "profile", "seed", "duration_s"},
     "results": [{"clause", "level", "status", "message", "repro"}],
     "summary": {"PASS": n, "FAIL": n, "NA": n, "XFAIL": n, "XPASS": n}}

Exactly those keys, so a consumer can rely on them. The target is written
through :func:`nfclease.redaction.redact` (URL credentials, secret query
parameters, NFC tickets, cookies): a results file is meant to be attached to
a bug report.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

from nfclease.redaction import redact, redact_text
from nfclease.vocabulary import FAILING, STATUSES

RESULT_KEYS = ("clause", "level", "status", "message", "repro")
_STYLE = {"PASS": "green", "FAIL": "bold red", "NA": "dim", "XFAIL": "yellow", "XPASS": "bold magenta"}


@dataclass(frozen=True)
class ClauseResult:
    """One line of results.json: the verdict on a clause for a run."""

    clause: str
    level: str
    status: str
    message: str
    repro: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"clause": self.clause, "level": self.level, "status": self.status,
                "message": self.message, "repro": self.repro}


@dataclass
class RunInfo:
    """Where and how a conformance run happened (never with a password)."""

    target: str | None = None
    product: str | None = None
    version: str | None = None
    build: str | None = None
    api_version: str | None = None
    profile: str | None = None
    seed: int | None = None
    duration_s: float | None = None

    @classmethod
    def coerce(cls, value: "RunInfo | Mapping[str, Any] | None") -> "RunInfo":
        if value is None:
            return cls()
        if isinstance(value, RunInfo):
            return value
        unknown = set(value) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"run_info has unknown keys {sorted(unknown)}; results.json allows exactly "
                            f"{[f.name for f in fields(cls)]} (see ARCHITECTURE.md)")
        return cls(**value)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target"] = safe_target(self.target)
        if self.duration_s is not None:
            data["duration_s"] = round(float(self.duration_s), 3)
        return redact(data)


def scrub(text: str) -> str:
    """Free text as reports may show it (:func:`nfclease.redaction.redact_text`)."""
    return redact_text(text)


def safe_target(target: str | None) -> str | None:
    """The target without credentials: ``user:pw@`` and secret query parameters are masked."""
    return None if target is None else redact_text(str(target))


def _result_dict(r: Any) -> dict[str, Any]:
    d = r.to_dict() if hasattr(r, "to_dict") else dict(r)
    missing = [k for k in RESULT_KEYS if k not in d]
    if missing:
        raise ValueError(f"a result lacks {missing}; results are ClauseResult or dicts with {list(RESULT_KEYS)}")
    if d["status"] not in STATUSES:
        raise ValueError(f"result {d['clause']!r} has status {d['status']!r}; allowed: {', '.join(STATUSES)}")
    return {"clause": d["clause"], "level": d["level"], "status": d["status"],
            "message": scrub(str(d["message"] or "")), "repro": scrub(str(d["repro"])) if d["repro"] else None}


def summary(results: Iterable[Any]) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    for r in results:
        counts[_result_dict(r)["status"]] += 1
    return counts


def results_record(results: Iterable[Any], run_info: RunInfo | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The results.json document as a dict."""
    rows = [_result_dict(r) for r in results]
    return {"run_info": RunInfo.coerce(run_info).to_dict(), "results": rows, "summary": summary(rows)}


def write_results(directory: str | Path, results: Iterable[Any],
                  run_info: RunInfo | Mapping[str, Any] | None = None) -> Path:
    """Write ``DIR/results.json`` and return its path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps(results_record(results, run_info), indent=2) + "\n", encoding="utf-8")
    return path


def read_results(path: str | Path) -> dict[str, Any]:
    """Load a results.json (a file or a directory holding one), checking its shape."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    data = json.loads(p.read_text(encoding="utf-8"))
    for key in ("run_info", "results", "summary"):
        if key not in data:
            raise ValueError(f"{p}: not a results.json (no {key!r}); write it with nfclease.reports.results.write_results")
    return data


def write_junit(path: str | Path, results: Iterable[Any],
                run_info: RunInfo | Mapping[str, Any] | None = None) -> Path:
    """JUnit XML: one testcase per clause; FAIL/XPASS fail, NA and XFAIL are skipped with the reason."""
    rows = [_result_dict(r) for r in results]
    info = RunInfo.coerce(run_info).to_dict()
    counts = summary(rows)
    suite = ET.Element("testsuite", {
        "name": "nfclease.conformance",
        "tests": str(len(rows)),
        "failures": str(counts["FAIL"] + counts["XPASS"]),
        "errors": "0",
        "skipped": str(counts["NA"] + counts["XFAIL"]),
        "time": str(info.get("duration_s") or 0),
    })
    props = ET.SubElement(suite, "properties")
    for k, v in info.items():
        ET.SubElement(props, "property", {"name": k, "value": "" if v is None else str(v)})
    for r in rows:
        case = ET.SubElement(suite, "testcase", {"classname": f"conformance.{r['clause'].split('.')[0]}",
                                                 "name": r["clause"], "time": "0"})
        body = r["message"] + (f"\n\nrepro:\n{r['repro']}" if r["repro"] else "")
        if r["status"] == "FAIL":
            ET.SubElement(case, "failure", {"message": f"[{r['level']}] {r['message']}", "type": "FAIL"}).text = body
        elif r["status"] == "XPASS":
            ET.SubElement(case, "failure", {"message": f"XPASS: {r['message']}", "type": "XPASS"}).text = body
        elif r["status"] == "NA":
            ET.SubElement(case, "skipped", {"message": f"NA: {r['message']}"})
        elif r["status"] == "XFAIL":
            ET.SubElement(case, "skipped", {"message": f"XFAIL: {r['message']}", "type": "XFAIL"}).text = body
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(out, encoding="utf-8", xml_declaration=True)
    return out


def exit_code(results: Iterable[Any]) -> int:
    """0 when every clause is PASS, NA or XFAIL; 1 when any is FAIL or XPASS."""
    return 1 if any(_result_dict(r)["status"] in FAILING for r in results) else 0


def print_results(results: Iterable[Any], console: Any = None, title: str | None = None,
                  show_repro: bool = True) -> None:
    """A per-clause table on the terminal (rich), failures' repros below it."""
    from rich.console import Console
    from rich.table import Table

    rows = [_result_dict(r) for r in results]
    console = console or Console()
    table = Table(title=title or "HttpNfcLease conformance", show_lines=False)
    table.add_column("clause", no_wrap=True)
    table.add_column("level")
    table.add_column("status")
    table.add_column("message", overflow="fold")
    for r in rows:
        style = _STYLE[r["status"]]
        table.add_row(r["clause"], r["level"], f"[{style}]{r['status']}[/]", r["message"])
    console.print(table)
    counts = summary(rows)
    console.print("  ".join(f"[{_STYLE[s]}]{s} {n}[/]" for s, n in counts.items()))
    if show_repro:
        for r in rows:
            if r["status"] in FAILING and r["repro"]:
                console.rule(f"{r['clause']} repro")
                console.print(r["repro"], markup=False, highlight=False)
