"""``nfclease selftest``: the kill matrix -- would the suite notice each wrong server, under the right clause?

    nfclease selftest [--profile smoke|ci] [--only NAME...] [--report DIR] [--jobs N] [--seed N]

For every deliberate deviation of the simulator (``nfclease/sim/deviations.py``)
it runs ``nfclease conform --target sim --deviate NAME`` in a child process --
exactly what a user runs, nothing rebuilt here -- and once with no deviation.
A deviation is *killed* when the run FAILs at least one of the clauses this
module expects it to break (:data:`EXPECTED`); it *survives* when nothing
FAILs, and is *misnamed* when only other clauses FAIL. The undeviated run
must have no FAIL at all (a false FAIL makes every other row worthless).

Per deviation it reports the clauses flagged, the steps (events) and seconds
from the start of the run to the first FAIL of an expected clause, and the
length of that FAIL's repro (the lease's calls up to the failing one). The
figures come from the child's ``results.json`` (the FAIL message names the
event, ``event #N``) and ``history.jsonl`` (the event's time).

Runs are mostly waiting (for leases to become ready or to expire), so
``--jobs`` defaults to three per core (a smoke run keeps about a quarter of a
core busy); a deviation not killed beside the
others is rerun once alone (:func:`rerun_alone`), both outcomes in its row. Exit status: 0 when every deviation is
killed and the undeviated run is clean, 1 otherwise, 2 on a bad invocation.

Adding a deviation: one entry in the simulator's catalogue and one line in
:data:`EXPECTED` naming the clauses it must be flagged under.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
CONTROL = "(none)"  # the row of the undeviated run
PROFILE_SECONDS = {"smoke": 240.0, "ci": 900.0}  # bound on one child run (it is killed after that)

#: deviation -> the clauses the suite must flag it under (any one of them kills it)
EXPECTED: dict[str, tuple[str, ...]] = {
    # lifecycle, initializing
    "done_without_complete": ("state.lifecycle",),
    "deleted_lease_reappears": ("release.deleted",),
    "task_ends_at_handout": ("state.task-running",),
    "ready_without_info": ("state.ready-info",),
    "import_key_missing": ("state.ready-info",),
    "init_progress_per_mille": ("state.init-progress",),
    # timeout
    "no_timeout": ("timeout.expires",),
    "timeout_early": ("timeout.alive",),
    "timeout_from_acquisition": ("timeout.renewed",),
    "lease_timeout_understated": ("timeout.expires",),
    "timeout_wrong_fault": ("timeout.faults",),
    "timeout_task_succeeds": ("timeout.task",),
    "timeout_error_wrong_class": ("timeout.expires",),
    # progress
    "progress_range_unchecked": ("progress.range",),
    "progress_rejects_100": ("progress.accepted",),
    "transfer_progress_frozen": ("progress.transfer-progress",),
    "transfer_progress_per_mille": ("progress.transfer-range", "progress.transfer-progress"),
    # complete / abort
    "complete_twice_ok": ("complete.repeat",),
    "complete_repeat_wrong_fault": ("complete.repeat",),
    "complete_task_fails": ("complete.done",),
    "abort_twice_ok": ("abort.repeat",),
    "abort_after_complete_ok": ("abort.after-complete",),
    "abort_fault_lost": ("abort.fault-reported",),
    "abort_leaves_ready": ("abort.error",),
    "complete_leaves_ready": ("complete.done",),
    "abort_requires_fault": ("abort.error",),
    # error property
    "error_property_missing": ("state.error-property",),
    "error_property_while_ready": ("state.error-property",),
    # cleanup
    "import_not_cleaned": ("import.cleanup",),
    "import_not_cleaned_on_timeout": ("import.cleanup",),
    "import_removed_on_complete": ("lock.power-on", "lock.migrate", "lock.destroy"),
    # locks
    "locks_ignored": ("lock.power-on", "lock.destroy", "lock.migrate"),
    "power_on_not_locked": ("lock.power-on",),
    "destroy_not_locked": ("lock.destroy",),
    "relocate_not_locked": ("lock.migrate",),
    "locks_kept_after_release": ("lock.power-on", "lock.migrate", "lock.destroy"),
    # manifest
    "manifest_wrong_sha1": ("manifest.entries",),
    "manifest_wrong_size": ("manifest.entries",),
    "manifest_missing_entry": ("manifest.entries",),
    "manifest_extra_entry": ("manifest.entries",),
    "manifest_disk_flag_wrong": ("manifest.entries",),
    "disk_file_size": ("state.ready-info",),
    "checksum_type_ignored": ("checksum.type",),
    "checksum_wrong_sha256": ("checksum.type",),
    "checksum_invalid_accepted": ("checksum.invalid",),
    "pull_mode_unchanged": ("pull.mode",),
    "pull_http_fault_swallowed": ("pull.http-fault",),
    "pull_wrong_fault": ("pull.http-fault",),
    "pull_ssl_unverified": ("pull.ssl-verify",),
    "pull_ssl_fault_without_thumbprint": ("pull.ssl-verify",),
    "pull_capabilities_lie": ("pull.capabilities",),
    "transfer_after_release": ("release.transfers",),
    "download_truncated": ("transfer.download",),
    "download_corrupted": ("transfer.download",),
    "upload_status_204": ("transfer.upload",),
    "expect_continue_final_first": ("transfer.upload",),
    "thumbprint_wrong": ("transfer.thumbprint",),
    "fault_message_missing": ("faults.declared",),
    "released_runtime_fault": ("complete.repeat", "abort.repeat", "abort.after-complete", "manifest.state"),
    "expired_runtime_fault": ("timeout.faults",),
    "progress_undeclared_fault": ("faults.declared",),
}


@dataclass
class Row:
    """One run of the matrix: a deviation (or none) and what the suite made of it."""

    deviation: str
    family: str
    expected: list[str]
    flagged: list[str] = field(default_factory=list)
    verdict: str = ""  # killed | survived | misnamed | clean | false-fail | error
    steps: int | None = None  # events from the run's start to the first FAIL of an expected clause
    seconds: float | None = None  # seconds from the run's start to that FAIL
    repro_calls: int | None = None  # calls in that FAIL's repro
    wall_s: float = 0.0
    exit_code: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict in ("killed", "clean")


def check_mapping() -> None:
    """Every catalogue deviation has expected clauses, and every clause named exists."""
    from nfclease.conformance.clauses import BY_ID
    from nfclease.sim.deviations import CATALOGUE

    missing = sorted(set(CATALOGUE) - set(EXPECTED))
    extra = sorted(set(EXPECTED) - set(CATALOGUE))
    unknown = sorted({c for clauses in EXPECTED.values() for c in clauses} - set(BY_ID))
    if missing or extra or unknown or not all(EXPECTED.values()):
        raise ValueError(f"conformance/selftest.py EXPECTED out of step with the catalogue: no entry for {missing}, "
                         f"no such deviation {extra}, no such clause {unknown}")


# ------------------------------------------------------------------ one run
def _conform_command(name: str, profile: str, seed: int, out: Path) -> list[str]:
    command = [sys.executable, "-m", "nfclease", "conform", "--target", "sim", "--profile", profile,
               "--seed", str(seed), "--report", str(out)]
    return command + (["--deviate", name] if name != CONTROL else [])


def _event_times(history: Path) -> tuple[dict[int, float], float | None]:
    """seq -> end time of each event, and the start of the run (its first record)."""
    times: dict[int, float] = {}
    first = None
    with history.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            if first is None:
                first = float(record["start"])
            times[int(record["seq"])] = float(record["end"])
    return times, first


def judge_run(row: Row, out: Path) -> Row:
    """Fill ``row`` from a finished child's results.json and history.jsonl."""
    try:
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))["results"]
    except (OSError, ValueError, KeyError) as exc:
        row.verdict, row.detail = "error", f"no results.json ({exc}); see {out}/conform.log"
        return row
    fails = {r["clause"]: r for r in results if r["status"] == "FAIL"}
    row.flagged = sorted(fails)
    if row.deviation == CONTROL:
        row.verdict = "false-fail" if fails else "clean"
        return row
    hits = [fails[c] for c in row.expected if c in fails]
    if not hits:
        row.verdict = "misnamed" if fails else "survived"
        return row
    row.verdict = "killed"
    times, start = _event_times(out / "history.jsonl") if (out / "history.jsonl").exists() else ({}, None)
    firsts = []
    for hit in hits:
        found = re.match(r"event #(\d+) ", hit["message"] or "")
        if found:
            firsts.append((int(found[1]), hit))
    if firsts:
        seq, hit = min(firsts, key=lambda pair: pair[0])
        row.steps = seq - 1  # the first record is the Target bookkeeping, not a call
        if start is not None and seq in times:
            row.seconds = round(times[seq] - start, 2)
        repro = (hit.get("repro") or "").splitlines()
        row.repro_calls = max(0, len(repro) - 1) if repro else None
    return row


def run_one(name: str, profile: str, seed: int, report: Path, suffix: str = "") -> Row:
    """``nfclease conform`` against the simulator with one deviation (or none), judged."""
    from nfclease.sim.deviations import CATALOGUE

    family = CATALOGUE[name].family if name in CATALOGUE else "-"
    row = Row(name, family, list(EXPECTED.get(name, ())))
    out = report / (("control" if name == CONTROL else name) + suffix)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("GOVC_URL", None)
    started = time.monotonic()
    with (out / "conform.log").open("w", encoding="utf-8") as log:
        try:
            proc = subprocess.run(_conform_command(name, profile, seed, out), stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env, cwd=str(ROOT),
                                  timeout=PROFILE_SECONDS[profile])
            row.exit_code = proc.returncode
        except subprocess.TimeoutExpired:
            row.wall_s = round(time.monotonic() - started, 1)
            row.verdict, row.detail = "error", f"no verdict within {PROFILE_SECONDS[profile]:g} s"
            return row
    row.wall_s = round(time.monotonic() - started, 1)
    if row.exit_code not in (0, 1):
        row.verdict, row.detail = "error", f"nfclease conform exited {row.exit_code}; see {out}/conform.log"
        return row
    row = judge_run(row, out)
    broke = [line for line in (out / "conform.log").read_text(encoding="utf-8", errors="replace").splitlines()
             if line.startswith("the run broke off")]
    if broke:  # the suite itself gave up: whatever it judged, that is a bug of the suite
        row.detail = f"{broke[-1]} (see {out}/conform.log)"
        if row.deviation == CONTROL:
            row.verdict = "error"
    return row


def run_matrix(names: Sequence[str], profile: str, seed: int, report: Path, jobs: int,
               progress: Any = None) -> list[Row]:
    """The control run and one run per deviation, ``jobs`` at a time; rows in the order asked."""
    order = [CONTROL, *names]
    rows: dict[str, Row] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run_one, name, profile, seed, report): name for name in order}
        for future in concurrent.futures.as_completed(futures):
            row = future.result()
            rows[row.deviation] = row
            if progress is not None:
                progress(row, len(rows), len(order))
    for name in names:
        if not rows[name].ok:
            rows[name] = rerun_alone(rows[name], profile, seed, report, progress)
    return [rows[name] for name in order]


def rerun_alone(first: Row, profile: str, seed: int, report: Path, progress: Any = None) -> Row:
    """A deviation that was not killed, run once more with nothing else running.

    Timing verdicts are conservative: a read delayed by a loaded machine lands in
    the tolerance window and judges nothing, so under ``--jobs`` a timeout
    deviation may go unjudged. Rerun alone, the same seed can only turn it into
    a kill if the deviation really shows (a false FAIL of the undeviated run is
    never rerun away). Both outcomes stay in the row.
    """
    again = run_one(first.deviation, profile, seed, report, suffix="-rerun")
    if progress is not None:
        progress(again, 0, 0)
    if again.ok:
        again.detail = f"killed when rerun alone (first run, beside others: {first.verdict}) {again.detail}".strip()
        return again
    first.detail = f"rerun alone: {again.verdict} {first.detail}".strip()
    return first


# ------------------------------------------------------------------ reports
def tally(rows: Iterable[Row]) -> tuple[int, int]:
    """(killed, deviations run)."""
    deviated = [r for r in rows if r.deviation != CONTROL]
    return sum(r.verdict == "killed" for r in deviated), len(deviated)


def by_family(rows: Iterable[Row]) -> dict[str, tuple[int, int]]:
    """family -> (killed, deviations run), families in the catalogue's order."""
    out: dict[str, list[int]] = {}
    for row in rows:
        if row.deviation != CONTROL:
            counts = out.setdefault(row.family, [0, 0])
            counts[0] += row.verdict == "killed"
            counts[1] += 1
    return {family: (k, n) for family, (k, n) in out.items()}


def _cell(value: Any) -> str:
    return "-" if value is None or value == [] else (", ".join(value) if isinstance(value, list) else str(value))


COLUMNS = ("deviation", "family", "expected", "flagged", "verdict", "steps", "seconds", "repro_calls", "wall_s")


def markdown(rows: Sequence[Row], meta: dict[str, Any]) -> str:
    killed, total = tally(rows)
    lines = [f"# nfclease selftest: profile {meta['profile']}, seed {meta['seed']}", "",
             f"killed {killed}/{total}; undeviated run: {rows[0].verdict}; wall {meta['wall_s']:.0f} s", "",
             "by family: " + ", ".join(f"{f} {k}/{n}" for f, (k, n) in by_family(rows).items()), "",
             "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(getattr(row, c)).replace("|", "\\|") for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_report(report: Path, rows: Sequence[Row], meta: dict[str, Any]) -> None:
    killed, total = tally(rows)
    record = {**meta, "killed": killed, "total": total,
              "families": {f: {"killed": k, "total": n} for f, (k, n) in by_family(rows).items()},
              "rows": [asdict(r) for r in rows]}
    report.mkdir(parents=True, exist_ok=True)
    (report / "selftest.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (report / "selftest.md").write_text(markdown(rows, meta), encoding="utf-8")


def print_table(rows: Sequence[Row], meta: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    style = {"killed": "green", "clean": "green", "survived": "bold red", "misnamed": "bold red",
             "false-fail": "bold red", "error": "bold red"}
    table = Table(title=f"nfclease selftest ({meta['profile']}, seed {meta['seed']})")
    for column in COLUMNS:
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in rows:
        cells = [_cell(getattr(row, c)) for c in COLUMNS]
        cells[4] = f"[{style.get(row.verdict, '')}]{row.verdict}[/]"
        table.add_row(*cells)
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    for row in rows:
        if row.detail:
            console.print(f"[red]{row.deviation}: {row.detail}[/]")
    killed, total = tally(rows)
    console.print("by family: " + ", ".join(f"{f} {k}/{n}" for f, (k, n) in by_family(rows).items()))
    console.print(f"killed {killed}/{total}; undeviated run {rows[0].verdict}; "
                  f"{meta['wall_s']:.0f} s with {meta['jobs']} jobs; wrote {meta['report']}/selftest.json, "
                  f"{meta['report']}/selftest.md")


# ------------------------------------------------------------------ the command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Kill matrix: run the conformance suite against the simulator once per deliberate "
                          "deviation and once without, and check each deviation is flagged under its expected "
                          "clause. Example: nfclease selftest --profile smoke --only no_timeout complete_twice_ok")
    parser.add_argument("--profile", choices=sorted(PROFILE_SECONDS), default="smoke",
                        help="the conformance profile of every run (default smoke)")
    parser.add_argument("--only", nargs="+", metavar="NAME", default=None,
                        help="only these deviations (the undeviated run always runs)")
    parser.add_argument("--report", default="nfclease-selftest",
                        help="directory for selftest.json, selftest.md and each run's report")
    parser.add_argument("--jobs", type=int, default=None,
                        help="runs at once (default: three per core; runs mostly wait for leases)")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed of every run (default random)")


def run(args: argparse.Namespace) -> int:
    from nfclease.sim.deviations import CATALOGUE, validate_deviations

    try:
        check_mapping()
        names = list(validate_deviations(args.only)) if args.only else sorted(
            CATALOGUE, key=lambda n: (CATALOGUE[n].family, n))
        if args.jobs is not None and args.jobs < 1:
            raise ValueError(f"--jobs {args.jobs}: give at least 1")
    except ValueError as exc:
        print(f"nfclease selftest: {exc}", file=sys.stderr)
        return 2
    import random

    seed = args.seed if args.seed is not None else random.randrange(2 ** 31)
    jobs = args.jobs or 3 * (os.cpu_count() or 1)
    report = Path(args.report)
    print(f"nfclease selftest: {len(names)} deviations + the undeviated run, profile {args.profile}, seed {seed}, "
          f"{jobs} at a time", flush=True)

    def progress(row: Row, done: int, total: int) -> None:
        where = f"[{done}/{total}]" if total else "[rerun alone]"
        print(f"  {where} {row.deviation}: {row.verdict} ({row.wall_s:g} s)", flush=True)

    started = time.monotonic()
    rows = run_matrix(names, args.profile, seed, report, jobs, progress)
    meta = {"profile": args.profile, "seed": seed, "jobs": jobs, "report": str(report),
            "wall_s": round(time.monotonic() - started, 1)}
    write_report(report, rows, meta)
    print_table(rows, meta)
    return 0 if all(row.ok for row in rows) else 1
