"""The machine's parts that need no target: the clause map, strategies, profiles,
foreign/bogus references in the model, NA reasons, the vocabulary additions."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from nfclease.conformance import context, sequences
from nfclease.conformance.clauses import BY_ID
from nfclease.conformance.model import Model
from nfclease.events import Event
from nfclease.transfer import TransferResult
from nfclease.strategies import BOGUS_KEY, checksum_mappings, out_of_range_percents, percents, resolve_mapping


def test_every_clause_has_a_direct_sequence_and_the_profiles_are_as_promised() -> None:
    assert all(BY_ID[c].sequences for c in BY_ID), [c for c in BY_ID if not BY_ID[c].sequences]
    assert set(sequences.SEQUENCE_OF) == set(BY_ID)
    assert all(name in sequences.SEQUENCES for names in sequences.SEQUENCE_OF.values() for name in names)
    assert context.PROFILES["ci"].steps >= 3000 and context.PROFILES["ci"].seconds <= 60
    assert context.PROFILES["smoke"].steps < context.PROFILES["ci"].steps < context.PROFILES["thorough"].steps


@settings(max_examples=200)
@given(percents())
def test_percents_are_int32(percent: int) -> None:
    assert -(2 ** 31) <= percent < 2 ** 31


@given(out_of_range_percents())
def test_out_of_range_percents_are_out_of_range(percent: int) -> None:
    assert not 0 <= percent <= 100


@given(checksum_mappings(), st.lists(st.text(min_size=1), min_size=1, max_size=4, unique=True))
def test_checksum_plans_resolve_against_the_lease_keys(plan: Any, keys: list[str]) -> None:
    mapping = resolve_mapping(plan, keys)
    assert set(mapping) <= set(keys) | {BOGUS_KEY}
    assert all(isinstance(v, str) for v in mapping.values())


class Clock:
    def __init__(self) -> None:
        self.t, self.seq = 100.0, 0

    def event(self, call: str, lease: str | None, args: dict[str, Any] | None = None, *, value: Any = None,
              fault: str | None = None) -> Event:
        self.seq += 1
        self.t += 0.01
        return Event(call=call, lease=lease, args=args or {}, outcome="fail" if fault else "ok", value=value,
                     fault=fault, message=f"{fault}: no" if fault else None, start=self.t, end=self.t + 0.005,
                     seq=self.seq)


def _owned(model: Model, clock: Clock) -> None:
    model.feed(clock.event("Acquire", "L1", {"kind": "export-vm", "disks": [], "files": 0, "entity": "vm-1"},
                           value={"moid": "session[a]1", "entity": "vm-1", "task": "task-1"}))


def test_foreign_and_bogus_references_must_raise_managed_object_not_found() -> None:
    model, clock = Model(api_version="9.0"), Clock()
    _owned(model, clock)
    model.feed(clock.event("Attach", "L2", {"kind": "foreign", "of": "L1"}, value={"moid": "session[a]1"}))
    ok = model.feed(clock.event("Progress", "L2", {"percent": 50}, fault="vmodl.fault.ManagedObjectNotFound"))
    read = model.feed(clock.event("Read", "L2", value={"state": "ready"}))
    assert ok.verdict == "pass" and read.verdict == "pass" and read.checks[0].observation
    model.feed(clock.event("Attach", "L3", {"kind": "bogus", "of": None}, value={"moid": "session[x]y"}))
    bad = model.feed(clock.event("Complete", "L3"))
    assert bad.verdict == "fail" and bad.failures[0].clause == "ref.foreign"
    verdict = model.verdicts["ref.foreign"]
    assert verdict.status == "FAIL" and "L3 = Attach(" in verdict.repro and "<-- FAIL ref.foreign" in verdict.repro


def test_a_foreign_complete_that_was_accepted_does_not_make_the_owner_fail_later() -> None:
    model, clock = Model(api_version="9.0"), Clock()
    _owned(model, clock)
    model.feed(clock.event("Attach", "L2", {"kind": "foreign", "of": "L1"}, value={"moid": "session[a]1"}))
    assert model.feed(clock.event("Complete", "L2")).verdict == "fail"
    owner = model.feed(clock.event("Complete", "L1", fault="vim.fault.InvalidState"))
    assert owner.verdict != "fail", owner.message


def test_transfer_values_carry_sha256_and_the_served_thumbprint_only_when_known() -> None:
    plain = TransferResult(200, 10, "ab" * 20, 0.1)
    assert plain.summary() == {"status": 200, "bytes": 10, "sha1": "ab" * 20}
    full = TransferResult(201, 10, "ab" * 20, 0.1, "cd" * 32, "", "AA:BB")
    assert full.summary() == {"status": 201, "bytes": 10, "sha1": "ab" * 20, "sha256": "cd" * 32,
                              "thumbprint": "AA:BB"}
