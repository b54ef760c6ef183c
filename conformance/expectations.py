"""Known deviations of a target: expected FAILs become XFAIL, and stay honest.

``conformance/expectations/<name>.yaml`` maps clause ids to what a target is
known to do::

    complete.repeat:
      status: FAIL
      reason: Complete on a completed lease succeeds
      link: https://github.com/vmware/govmomi/issues/NNNN

A FAIL that is expected reports XFAIL (the run stays green); an expected FAIL
that now PASSes reports XPASS, which fails the run, so a vendor's list cannot
quietly go stale. ``NA`` documents a clause the target cannot exercise.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from nfclease.conformance.clauses import BY_ID
from nfclease.reports.results import ClauseResult

EXPECTATIONS_DIR = Path(__file__).resolve().parent / "expectations"
EXPECTABLE = ("FAIL", "NA", "PASS")
_ALIASES = {"XFAIL": "FAIL"}
_ENTRY_KEYS = {"status", "reason", "link"}


class ExpectationError(ValueError):
    """An expectations file that cannot be trusted as written."""


@dataclass(frozen=True)
class Expectation:
    clause: str
    status: str
    reason: str
    link: str | None = None

    def why(self) -> str:
        return self.reason + (f" ({self.link})" if self.link else "")


def expectations_path(name_or_path: str | Path) -> Path:
    """``vcsim-0.24`` -> ``conformance/expectations/vcsim-0.24.yaml``; a path is taken as is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    candidate = EXPECTATIONS_DIR / f"{name_or_path}.yaml"
    if not candidate.exists():
        known = sorted(x.stem for x in EXPECTATIONS_DIR.glob("*.yaml"))
        raise ExpectationError(
            f"no expectations file {candidate}; give a path to a .yaml file or one of: "
            f"{', '.join(known) or '(none yet)'}")
    return candidate


def parse_expectations(data: Any, source: str = "<expectations>") -> dict[str, Expectation]:
    """Validate a loaded YAML document; every problem is named with its fix."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ExpectationError(f"{source}: the top level must map clause ids to entries, got {type(data).__name__}")
    unknown = [str(k) for k in data if str(k) not in BY_ID]
    if unknown:
        hints = []
        for k in unknown:
            near = difflib.get_close_matches(k, BY_ID, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        raise ExpectationError(
            f"{source}: unknown clause id{'s' if len(unknown) > 1 else ''}: {', '.join(hints)}; "
            f"the ids are listed in conformance/CLAUSES.md")
    out: dict[str, Expectation] = {}
    for clause_id, entry in data.items():
        clause_id = str(clause_id)
        if isinstance(entry, str):
            entry = {"status": entry}
        if not isinstance(entry, Mapping):
            raise ExpectationError(f"{source}: {clause_id}: expected a mapping with status and reason, got {entry!r}")
        extra = set(map(str, entry)) - _ENTRY_KEYS
        if extra:
            raise ExpectationError(f"{source}: {clause_id}: unknown keys {sorted(extra)}; allowed: {sorted(_ENTRY_KEYS)}")
        status = str(entry.get("status", "")).upper()
        status = _ALIASES.get(status, status)
        if status not in EXPECTABLE:
            raise ExpectationError(f"{source}: {clause_id}: status {entry.get('status')!r} is not one of {', '.join(EXPECTABLE)}")
        reason = str(entry.get("reason") or "").strip()
        if status != "PASS" and not reason:
            raise ExpectationError(f"{source}: {clause_id}: an expected {status} needs a reason "
                                   f"(what the target does, so a reader can check it)")
        link = entry.get("link")
        out[clause_id] = Expectation(clause_id, status, reason, str(link) if link else None)
    return out


def load_expectations(name_or_path: str | Path) -> dict[str, Expectation]:
    """Load and validate ``conformance/expectations/<name>.yaml`` (or a path)."""
    path = expectations_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ExpectationError(f"{path}: not valid YAML: {exc}") from exc
    return parse_expectations(data, str(path))


def apply_expectations(results: Iterable[ClauseResult], expectations: Mapping[str, Expectation],
                       source: str = "the expectations file") -> list[ClauseResult]:
    """Turn expected FAILs into XFAIL and stale ones into XPASS; other results pass through."""
    unknown = sorted(set(expectations) - set(BY_ID))
    if unknown:
        raise ExpectationError(f"{source}: unknown clause ids {unknown}; the ids are listed in conformance/CLAUSES.md")
    out = []
    for r in results:
        exp = expectations.get(r.clause)
        if exp is None or exp.status == "PASS":
            out.append(r)
        elif exp.status == "FAIL":
            if r.status == "FAIL":
                out.append(replace(r, status="XFAIL", message=f"expected failure: {exp.why()}; observed: {r.message}"))
            elif r.status == "PASS":
                out.append(replace(r, status="XPASS", message=(
                    f"expected to FAIL ({exp.why()}) but PASSED: {r.message}; if the deviation is fixed, "
                    f"remove {r.clause} from {source}")))
            else:
                out.append(replace(r, message=f"{r.message} (expected FAIL: {exp.why()})"))
        else:  # expected NA
            if r.status == "NA":
                out.append(replace(r, message=f"{r.message}; expected: {exp.why()}"))
            else:
                out.append(r)
    return out
