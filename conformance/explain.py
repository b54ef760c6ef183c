"""Why a clause is NA: a specific reason where the model could only say "not exercised" or "not judged".

The reasons come from the clause's own declaration (:attr:`Clause.needs`,
:attr:`Clause.na_hint`) and from what the run saw (its context).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nfclease.conformance.clauses import BY_ID
from nfclease.conformance.context import RunContext, unsupported

GENERIC_NA = "not exercised by this run"


def explain_na(clause_id: str, message: str, ctx: RunContext) -> str:
    """A specific reason for an NA the model could only call 'not exercised' or 'not judged'."""
    if "applies from vSphere API" in message:
        return message
    clause = BY_ID.get(clause_id)
    needs = clause.needs if clause is not None else ()
    if "expiry" in needs:
        decision = ctx.expiry_decision()
        if not (ctx.allow_expiry and decision.run):
            return f"expiry not checked: {decision.reason}"
    if "task" in needs and ctx.no_task:
        return "the target shows no import/export task for its leases (TaskInfo: client.NoTask)"
    if GENERIC_NA not in message:
        return message
    if clause is not None and clause.na_hint:
        return clause.na_hint
    exports = [f"{k}: {v}" for k, v in ctx.acquire_failures.items() if k.startswith("export")]
    if "export" in needs and exports:
        unimplemented = any(unsupported(v) for k, v in ctx.acquire_failures.items() if k.startswith("export"))
        return ("no export lease could be acquired (" + "; ".join(exports) + ")"
                + ("; an export call the API version has is missing: judged under api.implemented"
                   if unimplemented else ""))
    if "pull" in needs and not any(lm.pull_supported for lm in ctx.model.leases.values()):
        return "no lease offered pull mode (capabilities.pullModeSupported false or unread)"
    return message


def finalize(ctx: RunContext) -> list[Any]:
    """The model's per-clause results, NA messages made specific where the run knows why."""
    out = []
    for r in ctx.model.verdicts.results():
        if r.status == "NA":
            r = replace(r, message=explain_na(r.clause, r.message, ctx))
        out.append(r)
    return out
