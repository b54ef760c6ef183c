"""Value checks: what a Read, a manifest, a transfer or a task showed, against the clauses on values.

The state x call rules are the table's (:mod:`nfclease.conformance.judging`); these
are the invariants on the values an answer carries (state.ready-info,
manifest.entries, transfer.upload...). A mixin of :class:`nfclease.conformance.model.Model`,
which supplies ``_check``, ``api_version`` and the lease records.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Mapping

from nfclease.conformance import table as T
from nfclease.conformance.observables import normalize_thumbprint as thumbprint_of
from nfclease.conformance.observables import unlisted_transfers
from nfclease.conformance.state import LeaseModel, Transfer
from nfclease.conformance.verdicts import Check
from nfclease.conformance.vmodl import is_a
from nfclease.events import Event
from nfclease import vocabulary as V

HEX = re.compile(r"^[0-9a-f]+$")


class ValueChecks:
    """The value invariants, one method per kind of answer; each returns its checks."""

    # ------------------------------------------------------ value invariants
    def _read_value(self, lease: LeaseModel, event: Event, value: Mapping[str, Any]) -> list[Check]:
        checks: list[Check] = []
        state = value.get("state")
        error = T.fault_name(value.get("error"))
        lease.reads += 1
        checks.append(self._check(
            "state.readable", True, "readable", "ok"))
        checks.append(self._check(
            "state.error-property", (state == "error") == bool(error), "error set iff state is error",
            f"state={state}, error={error}",
            f"state is {state} but error is {'set to ' + error if error else 'unset'}"))
        p = value.get("initializeProgress")
        if p is not None:
            ok = isinstance(p, int) and 0 <= p <= 100 and (lease.init_progress is None or p >= lease.init_progress)
            checks.append(self._check(
                "state.init-progress", ok, f"0..100, >= {lease.init_progress if lease.init_progress is not None else 0}",
                str(p), f"initializeProgress {p} after {lease.init_progress}" if not ok else ""))
            if isinstance(p, int):
                lease.init_progress = max(p, lease.init_progress or p)
        info = value.get("info")
        if state == "ready":
            checks += self._ready_info(lease, event, info)
        elif state is not None:
            shown = "present" if info else "absent"
            checks.append(self._check("state.info-valid", True, "observe", f"info {shown} in {state}",
                                      observation=f"info {shown} in {state}"))
        if len(lease.possible) == 1 and state == "error":
            (now,) = lease.possible
            row = T.row(now, V.READ, lease.released_as)
            if row.error_fault:
                checks.append(self._check(
                    row.clauses[0], bool(error) and is_a(error, row.error_fault), row.error_fault, str(error),
                    f"the {now} lease's error property is {error}, expected {row.error_fault}"))
        checks += self._v67_members(lease, value, state)
        return checks

    def _ready_info(self, lease: LeaseModel, event: Event, info: Any) -> list[Check]:
        problems: list[str] = []
        if not isinstance(info, Mapping):
            problems.append("info is missing")
            info = {}
        timeout = info.get("leaseTimeout")
        if not (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0):
            problems.append(f"leaseTimeout is {timeout!r}, expected > 0")
        else:
            lease.lease_timeout = float(timeout)
            self.timeout_hint = lease.lease_timeout
        if info and not info.get("entity"):
            problems.append("info.entity is missing")
        elif info.get("entity"):
            lease.entities.add(str(info["entity"]))
        urls = info.get("deviceUrl") or []
        if info and (not isinstance(urls, list) or not urls):
            problems.append("info.deviceUrl is empty")
            urls = []
        if lease.expected_devices is not None and urls:
            # an import gets one URL per file of its spec; an export at least one per disk
            # (servers may add non-disk files such as nvram)
            if lease.is_import and len(urls) != lease.expected_devices:
                problems.append(f"{len(urls)} deviceUrl entries for {lease.expected_devices} disks/files")
            elif not lease.is_import and len(urls) < lease.expected_devices:
                problems.append(f"{len(urls)} deviceUrl entries for {lease.expected_devices} disks")
        seen = set()
        for i, d in enumerate(urls):
            d = d if isinstance(d, Mapping) else {}
            key = d.get("key")
            if not key or not d.get("url"):
                problems.append(f"deviceUrl[{i}] lacks key or url")
                continue
            if key in seen:
                problems.append(f"deviceUrl key {key!r} appears twice")
            seen.add(key)
            if lease.is_import and not d.get("importKey"):
                problems.append(f"deviceUrl[{i}] ({key}) of an import lease lacks importKey")
            lease.keys[str(key)] = str(key)
            if d.get("importKey"):
                lease.keys[str(d["importKey"])] = str(key)
            lease.devices[str(key)] = dict(d)
        lease.info_seen = True
        return [self._check("state.ready-info", not problems, "info with entity, leaseTimeout > 0, one deviceUrl per file",
                            "; ".join(problems) or "complete", "; ".join(problems))]

    def _v67_members(self, lease: LeaseModel, value: Mapping[str, Any], state: Any) -> list[Check]:
        checks: list[Check] = []
        has_67 = any(k in value for k in ("capabilities", "mode", "transferProgress"))
        if not has_67 and self.api_version is None:
            return [self._check("pull.capabilities", None, "capabilities and mode", "absent",
                                "the Read value has no 6.7 members and the API version is unknown")]
        caps = value.get("capabilities")
        mode = value.get("mode")
        problems = []
        if not isinstance(caps, Mapping):
            problems.append(f"capabilities is {caps!r}")
        else:
            for k in ("pullModeSupported", "corsSupported"):
                if not isinstance(caps.get(k), bool):
                    problems.append(f"capabilities.{k} is {caps.get(k)!r}")
            if isinstance(caps.get("pullModeSupported"), bool):
                lease.pull_supported = caps["pullModeSupported"]
        if mode not in ("pushOrGet", "pull"):
            problems.append(f"mode is {mode!r}, expected pushOrGet or pull")
        checks.append(self._check("pull.capabilities", not problems, "capabilities with booleans; mode pushOrGet|pull",
                                  "; ".join(problems) or f"mode={mode}", "; ".join(problems)))
        if lease.pulled and state == "ready":
            checks.append(self._check("pull.mode", mode == "pull", "pull", str(mode),
                                      f"mode is {mode!r} after a successful PullFromUrls"))
        tp = value.get("transferProgress")
        if lease.out_of_range_accepted:
            checks.append(self._check("progress.transfer-range", None, "0..100", str(tp),
                                      "the target accepted an out-of-range Progress earlier"))
        else:
            ok = isinstance(tp, int) and not isinstance(tp, bool) and 0 <= tp <= 100
            checks.append(self._check("progress.transfer-range", ok, "0..100", str(tp),
                                      f"transferProgress is {tp!r}"))
        if lease.last_percent is not None and state == "ready":
            checks.append(self._check("progress.transfer-progress", tp == lease.last_percent,
                                      str(lease.last_percent), str(tp),
                                      f"transferProgress is {tp!r} after Progress({lease.last_percent})"))
        return checks

    def _manifest(self, lease: LeaseModel, value: Any) -> list[Check]:
        entries = value if isinstance(value, list) else []
        problems: list[str] = []
        keys: list[str] = []
        for e in entries:
            if not isinstance(e, Mapping) or e.get("key") is None:
                problems.append(f"entry without a key: {e!r}")
                continue
            keys.append(str(e["key"]))
            lease.manifest[str(e["key"])] = dict(e)
        lease.manifest_covers = {k for k in keys if k in lease.transfers}
        dupes = sorted(k for k, n in Counter(keys).items() if n > 1)
        if dupes:
            problems.append(f"keys appear more than once: {', '.join(dupes)}")
        device_keys = set(lease.devices)
        if device_keys:
            unknown = sorted(set(keys) - device_keys)
            if unknown:
                problems.append(f"entries for keys that are no deviceUrl key: {', '.join(unknown)}")
            missing = sorted(device_keys - set(keys))
            if missing and not lease.is_import:
                problems.append(f"no entry for deviceUrl keys: {', '.join(missing)}")
            unlisted = unlisted_transfers(lease.transfers, keys, device_keys) if lease.is_import else []
            if unlisted:
                problems.append(f"no entry for keys whose bytes were transferred: {', '.join(unlisted)}")
        pull_problems: list[str] = []
        for key, tr in lease.transfers.items():
            entry = lease.manifest.get(key) if key in keys else None
            if entry is None:
                continue
            bad = []
            if tr.size is not None and int_of(entry.get("size")) != tr.size:
                bad.append(f"size {entry.get('size')!r}, transferred {tr.size}")
            if tr.sha1 is not None and hex_of(entry.get("sha1")) != tr.sha1:
                bad.append(f"sha1 {entry.get('sha1')!r}, transferred {tr.sha1}")
            if bad:
                (pull_problems if tr.source == "pull" else problems).append(f"{key}: " + ", ".join(bad))
        checks = [self._check("manifest.entries", not problems, "one entry per key, size/sha1 of the bytes transferred",
                              "; ".join(problems) or f"{len(keys)} entries", "; ".join(problems))]
        if any(tr.source == "pull" for tr in lease.transfers.values()):
            checks.append(self._check("pull.transfer", not pull_problems, "manifest matches the pulled sources",
                                      "; ".join(pull_problems) or "matches", "; ".join(pull_problems)))
        checks += self._manifest_checksums(lease, keys)
        return checks

    def _manifest_checksums(self, lease: LeaseModel, keys: list[str]) -> list[Check]:
        """checksum.type: the entries whose sha256 checksum was requested carry the digest of the bytes."""
        checks: list[Check] = []
        for key, (alg, before) in lease.checksum_requested.items():
            entry = lease.manifest.get(key) if key in keys else None
            if alg != "sha256" or entry is None:
                continue
            if not before:
                checks.append(self._check("checksum.type", None, "sha256", str(entry.get("checksumType")),
                                          f"sha256 for {key} was requested after its transfer started"))
                continue
            got = hex_of(entry.get("checksum"))
            tr = lease.transfers.get(key)
            want = tr.sha256 if tr is not None else None
            problems = []
            if entry.get("checksumType") != "sha256":
                problems.append(f"checksumType is {entry.get('checksumType')!r}")
            if want is not None and got != want:
                problems.append(f"checksum {got!r}, sha256 of the bytes transferred is {want}")
            elif tr is not None and (got is None or len(got) != 64):  # nothing transferred: no digest due
                problems.append(f"checksum {entry.get('checksum')!r} is no sha256 digest")
            checks.append(self._check("checksum.type", not problems, "checksumType sha256 with the right digest",
                                      "; ".join(problems) or "sha256", f"{key}: " + "; ".join(problems)))
        return checks

    def _transfer(self, lease: LeaseModel, event: Event, value: Mapping[str, Any]) -> list[Check]:
        checks: list[Check] = []
        device = event.args.get("device")
        if device is None:
            return checks
        key = lease.key(device)
        tr = Transfer("upload" if event.call == V.UPLOAD else "download", int_of(value.get("bytes")),
                      hex_of(value.get("sha1")), hex_of(value.get("sha256")))
        lease.transfers[key] = tr
        if event.call == V.DOWNLOAD and key in lease.manifest and key in lease.manifest_covers:
            # only a manifest read after an earlier download of this key describes the stream
            entry = lease.manifest[key]
            bad = []
            if tr.size is not None and int_of(entry.get("size")) not in (None, tr.size):
                bad.append(f"served {tr.size} bytes, manifest size {entry.get('size')}")
            if tr.sha1 is not None and hex_of(entry.get("sha1")) not in (None, tr.sha1):
                bad.append(f"served sha1 {tr.sha1}, manifest sha1 {entry.get('sha1')}")
            checks.append(self._check("transfer.download", not bad, "stream matches the manifest entry",
                                      "; ".join(bad) or "matches", f"{key}: " + "; ".join(bad)))
        served = thumbprint_of(value.get("thumbprint"))
        wanted = thumbprint_of(lease.devices.get(key, {}).get("sslThumbprint"))
        if served and wanted:
            checks.append(self._check("transfer.thumbprint", served == wanted, wanted, served,
                                      f"{key}: served certificate {served}, deviceUrl says {wanted}"))
        return checks

    def _task_info(self, lease: LeaseModel, event: Event, value: Mapping[str, Any]) -> list[Check]:
        checks: list[Check] = []
        state = value.get("state")
        terminal = state if state in ("success", "error") else None
        if lease.task_terminal and state != lease.task_terminal:
            clause_id = {"success": "complete.done", "error": "abort.error"}[lease.task_terminal]
            if lease.possible & {T.EXPIRED}:
                clause_id = "timeout.task"
            checks.append(self._check(clause_id, False, lease.task_terminal, str(state),
                                      f"the task went from {lease.task_terminal} to {state}"))
        if terminal:
            lease.task_terminal = terminal
        if state == "error" and lease.aborted and lease.abort_fault:
            got = T.fault_name(value.get("error"))
            checks.append(self._check("abort.fault-reported", bool(got) and is_a(got, lease.abort_fault),
                                      lease.abort_fault, str(got),
                                      f"Abort({lease.abort_fault}) but the task's error is {got}"))
        if "entityExists" in value and lease.is_import:
            states = {lease.released_as if s == T.DELETED else s for s in lease.possible}
            lagging = T.EXPIRED in states and self._grace(lease, event, T.EXPIRED, "PowerOn:import")
            if states and states <= {T.ERROR, T.EXPIRED} and not lagging:
                checks.append(self._check("import.cleanup", value["entityExists"] is False, "entity removed",
                                          f"entityExists={value['entityExists']}",
                                          "the import lease is in error but its entity still exists"))
        return checks


def count_of(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)):
        return len(value)
    return None


def int_of(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def hex_of(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    v = value.replace(":", "").strip().lower()
    return v if HEX.match(v) else value




# ------------------------------------------------------------------ helpers
