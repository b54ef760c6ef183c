"""Allure results from a conformance record, one Allure test per clause.

``pytest --alluredir DIR`` (allure-pytest) already reports the suite's own
tests. A conformance *run* is judged clause by clause, not test by test, so
this module turns a ``results.json`` record into Allure result files: each
clause is a test named by its id, grouped by clause family (``timeout``,
``manifest``...) as the feature, labelled with the target as the suite and
with its level as the severity, with the repro attached when the clause
FAILed. ``allure generate DIR`` then shows the same verdicts as the terminal
table and the JUnit file, from the same record.

Status mapping: PASS -> passed, FAIL/XPASS -> failed, XFAIL -> skipped
(``known`` set, with the expectation's reason), NA -> skipped.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

from allure_commons.logger import AllureFileLogger
from allure_commons.model2 import Label, Link, StatusDetails, TestResult

_STATUS = {"PASS": "passed", "FAIL": "failed", "XPASS": "failed", "XFAIL": "skipped", "NA": "skipped"}
_SEVERITY = {"MUST": "critical", "SHOULD": "normal"}
CLAUSES_DOC = "conformance/CLAUSES.md"


def _result(entry: Mapping[str, Any], run_info: Mapping[str, Any], now_ms: int) -> TestResult:
    clause = str(entry["clause"])
    target = str(run_info.get("target") or "target")
    status = str(entry["status"])
    details = StatusDetails(message=f"{status}: {entry.get('message') or ''}".strip(),
                            trace=entry.get("repro") or None,
                            known=True if status == "XFAIL" else None)
    history_id = hashlib.sha1(f"{target}/{clause}".encode()).hexdigest()
    return TestResult(
        uuid=str(uuid.uuid4()), historyId=history_id, testCaseId=clause,
        fullName=f"conformance.{clause}", name=clause, status=_STATUS.get(status, "unknown"),
        statusDetails=details, start=now_ms, stop=now_ms,
        labels=[Label("suite", target), Label("feature", clause.split(".")[0]), Label("story", clause),
                Label("severity", _SEVERITY.get(str(entry.get("level")), "normal")),
                Label("tag", status), Label("framework", "nfclease"), *clause_labels(
                    clause, str(entry.get("level") or ""), str(run_info.get("api_version") or ""), target)],
        links=[Link(type="link", url=f"{CLAUSES_DOC}#{clause.replace('.', '')}", name="clause")],
        titlePath=["conformance", target])


def clause_labels(clause: str, level: str, api_version: str, target: str) -> list[Label]:
    """The labels every clause's result carries, from ``nfclease run`` and from pytest alike."""
    pairs = (("clause", clause), ("level", level), ("api_version", api_version), ("target", target))
    return [Label(name, value) for name, value in pairs if value]


# Allure applies the first category whose statuses and message match (the regex must match the
# whole message). A target that broke (connection reset, 5xx) is told apart from a clause it
# broke; an exception in the suite's own code is "broken" in pytest; XFAIL is a listed deviation.
CATEGORIES = [
    {"name": "Target errors (connection reset, 5xx)", "matchedStatuses": ["failed", "broken"],
     "messageRegex": r"(?s).*(net\.[A-Za-z]+|ConnectionReset|RemoteDisconnected|BrokenPipe|http\.5\d\d"
                     r"|HTTP Error 5\d\d|the run broke off).*"},
    {"name": "Expected deviations (XFAIL)", "matchedStatuses": ["skipped"],
     "messageRegex": r"(?s).*(XFAIL|known deviation).*"},
    {"name": "Stale expectations (XPASS: a listed deviation no longer happens)", "matchedStatuses": ["failed"],
     "messageRegex": r"(?s).*XPASS.*"},
    {"name": "Conformance violations", "matchedStatuses": ["failed"]},
    {"name": "Suite errors", "matchedStatuses": ["broken"]},
]


def write_categories(directory: str | Path) -> Path:
    """``categories.json``: how Allure sorts failures into the kinds above."""
    path = Path(directory) / "categories.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(CATEGORIES, indent=2) + "\n", encoding="utf-8")
    return path


def write_environment(directory: str | Path, run_info: Mapping[str, Any]) -> Path:
    """``environment.properties``: the target's ``about`` (product, version, build, API) and the suite's version."""
    import platform

    import pyVmomi

    from nfclease import __version__
    from nfclease.redaction import redact_text

    values = {key: run_info.get(key) for key in ("target", "product", "version", "build", "api_version",
                                                   "profile", "seed")}
    values.update({"suite": f"nfclease {__version__}", "pyvmomi": getattr(pyVmomi, "__version__", "?"),
                   "python": platform.python_version()})
    lines = [f"{key}={_property(redact_text(str(value)))}" for key, value in values.items() if value is not None]
    path = Path(directory) / "environment.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _property(value: str) -> str:
    """A Java properties value: backslashes and line breaks escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def write_allure_run(directory: str | Path, results: Iterable[Any], run_info: Mapping[str, Any]) -> Path:
    """A conformance run's whole Allure directory: one result per clause, environment, categories."""
    from nfclease.reports.results import results_record

    record = results_record(results, run_info)  # validated and scrubbed, as results.json
    write_allure(directory, record["results"], record["run_info"])
    write_environment(directory, record["run_info"])
    write_categories(directory)
    return Path(directory)


def write_allure(directory: str | Path, results: Iterable[Mapping[str, Any] | Any],
                 run_info: Mapping[str, Any]) -> Path:
    """Write one Allure result per clause into ``directory`` (created if needed)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    logger = AllureFileLogger(str(out))
    now_ms = int(time.time() * 1000)
    for entry in results:
        record = entry if isinstance(entry, Mapping) else entry.to_dict()
        logger.report_result(_result(record, run_info, now_ms))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m nfclease.reports.allure results.json OUTDIR``."""
    import argparse

    from nfclease.reports.results import read_results

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("results")
    parser.add_argument("outdir")
    args = parser.parse_args(argv)
    record = read_results(args.results)
    write_allure_run(args.outdir, record["results"], record["run_info"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
