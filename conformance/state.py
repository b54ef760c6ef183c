"""What the reference model knows of each lease and VM of a run (plain records, no judging)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nfclease.conformance import table as T
from nfclease.events import Event


@dataclass
class Transfer:
    """What an Upload/Download/PullFromUrls recorded for one device key."""

    source: str  # "upload" | "download" | "pull"
    size: int | None
    sha1: str | None
    sha256: str | None = None


@dataclass
class LeaseModel:
    """Everything the model knows about one lease."""

    lease: str
    kind: str | None
    acquired_at: float
    possible: set[str] = field(default_factory=lambda: {T.INITIALIZING})
    prev_possible: set[str] = field(default_factory=set)
    last_end: float = float("-inf")
    via: dict[str, str] = field(default_factory=dict)
    released_as: str | None = None
    entered_hi: float | None = None
    # timing
    lease_timeout: float | None = None
    renew_lo: float | None = None
    renew_hi: float | None = None
    renewed_by_progress: bool = False
    outlived: bool = False  # seen alive when it surely had expired: its timing is judged no more (reported once)
    # what values showed
    reads: int = 0
    ready_known: bool = False
    init_progress: int | None = None
    info_seen: bool = False
    keys: dict[str, str] = field(default_factory=dict)  # key or importKey -> key
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    expected_devices: int | None = None  # imports: exactly this many; exports: at least
    entities: set[str] = field(default_factory=set)
    pull_supported: bool | None = None
    pulled: bool = False
    last_percent: int | None = None
    out_of_range_accepted: bool = False
    abort_fault: str | None = None
    aborted: bool = False
    task_terminal: str | None = None
    transfers: dict[str, Transfer] = field(default_factory=dict)
    transfer_started: set[str] = field(default_factory=set)
    checksum_requested: dict[str, tuple[str, bool]] = field(default_factory=dict)
    manifest: dict[str, dict[str, Any]] = field(default_factory=dict)
    manifest_covers: set[str] = field(default_factory=set)  # keys whose entry was read after their transfer
    history: list[Event] = field(default_factory=list)

    @property
    def is_import(self) -> bool:
        return self.kind == "import"

    def key(self, device: Any) -> str:
        """A device argument (key or importKey) as the deviceUrl key."""
        return self.keys.get(str(device), str(device))

    def device_keys(self) -> frozenset[str] | None:
        return frozenset(self.keys) if self.keys else None

    def t(self, when: float) -> str:
        return f"+{when - self.acquired_at:.2f}s"


@dataclass
class EntityModel:
    """A VM the blocked operations touch: only what changes the expected answer."""

    powered_on: bool = False
    destroyed: bool = False
