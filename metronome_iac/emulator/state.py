"""The emulator's run-time state besides its store: the settings it runs with (token, fault and latency
knobs, account-level switches) and the request statistics `/_emulator/stats` reports. Shared by the app
and the admin router."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Settings:
    token: str | None = None
    latency_ms: float = 0.0
    fail_rate: float = 0.0
    seed: int | None = None
    stripe_connected: bool = False
    # Account kind: contract editing (/v2/contracts/edit) or amendments (/v1/contracts/amend), never both
    # (SDK `contracts.amend` docstring: "Once contract editing is enabled, access to this endpoint will be
    # removed"; `contracts.edit`: "Contract editing must be enabled to use this endpoint").
    contract_editing: bool = True
    # How many commits (and credits) a contract get returns before cutting the list short with
    # `has_more` (ContractV2.HasMore). Metronome does not document the number: assumed.
    contract_item_limit: int = 100
    # How long an answer stays kept under its Idempotency-Key: Metronome guarantees at least 24 h.
    idempotency_ttl_s: float = 24 * 3600.0


@dataclass
class Stats:
    total: int = 0
    by_route: Counter = field(default_factory=Counter)
    injected_failures: Counter = field(default_factory=Counter)
    # Wall time the emulator spent answering, per route (the injected latency left out): what a
    # benchmark subtracts to tell the provider's time from the emulator's.
    seconds_by_route: Counter = field(default_factory=Counter)
    idempotent_replays: int = 0

    def as_json(self) -> dict:
        return {
            "total": self.total,
            "by_route": dict(self.by_route),
            "injected_failures": dict(self.injected_failures),
            "seconds": round(sum(self.seconds_by_route.values()), 6),
            "seconds_by_route": {k: round(v, 6) for k, v in self.seconds_by_route.items()},
            "idempotent_replays": self.idempotent_replays,
        }
