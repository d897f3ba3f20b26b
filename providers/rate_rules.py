"""What Metronome accepts in a rate card's rates, written once.

The catalog loader (`metronome_iac.catalog`) reports these rules with file, entry, field and line before
anything is declared; the rate card provider's Check runs the same rules as the backstop for programs
that do not use the catalog, and the emulator refuses the same rates as the API does. Each rule's source
is in docs/emulator-fidelity.md, "Rate cards and rates" (mostly metronome-sdk 4.12
`types/v1/contracts/rate_cards/rate_add_many_params.py`).

A problem is `(field, message)`: `field` is the path under the rate (`("tiers", 1, "size")`), the message
says what is wrong and ends with "; to fix: ...".
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import datetime, timezone
from typing import Any, Protocol

Field = tuple[str | int, ...]
Problem = tuple[Field, str]

TIERED_TYPES = ("TIERED", "TIERED_PERCENTAGE")
PRICED_TYPES = ("FLAT", "SUBSCRIPTION", "PERCENTAGE")


class TierValues(Protocol):
    @property
    def price(self) -> float: ...
    @property
    def size(self) -> float | None: ...


class PriceValues(Protocol):
    """A rate's price (a rate, or its commit_rate)."""

    @property
    def rate_type(self) -> str: ...
    @property
    def price(self) -> float | None: ...
    @property
    def tiers(self) -> Sequence[TierValues] | None: ...


class RateValues(PriceValues, Protocol):
    @property
    def billing_frequency(self) -> str | None: ...
    @property
    def quantity(self) -> float | None: ...
    @property
    def is_prorated(self) -> bool | None: ...
    @property
    def custom_rate(self) -> dict[str, Any] | None: ...
    @property
    def credit_type_id(self) -> str | None: ...
    @property
    def commit_rate(self) -> PriceValues | None: ...


def price_problems(rate: PriceValues) -> list[Problem]:
    """Price and tiers for the rate type (shared by a rate and its commit_rate)."""
    kind = rate.rate_type
    out: list[Problem] = []
    if kind in PRICED_TYPES and rate.price is None:
        out.append(
            (
                ("price",),
                f"a {kind} rate needs a price; to fix: set price "
                "(in cents unless credit_type_id says otherwise)",
            )
        )
    if rate.price is not None and rate.price < 0:
        out.append((("price",), f"price must be >= 0, got {rate.price:g}; to fix: use a price of 0 or more"))
    elif kind == "PERCENTAGE" and rate.price is not None and rate.price > 1:
        out.append(
            (
                ("price",),
                f"a PERCENTAGE price is a fraction from 0 to 1, got {rate.price:g}; "
                "to fix: write 0.1 for 10%",
            )
        )
    tiers = list(rate.tiers or [])
    if kind in TIERED_TYPES and not tiers:
        out.append(
            (
                ("tiers",),
                f"a {kind} rate needs tiers; to fix: add tiers, "
                "e.g. [{size: 1000, price: 300}, {price: 250}]",
            )
        )
    if tiers and kind not in TIERED_TYPES:
        out.append(
            (("tiers",), f"a {kind} rate takes no tiers; to fix: use rate_type TIERED, or set price instead")
        )
    for j, tier in enumerate(tiers):
        last = j == len(tiers) - 1
        if not last and tier.size is None:
            out.append(
                (
                    ("tiers", j, "size"),
                    "every tier but the last needs a size (tiers apply in order); to fix: add size, "
                    "or move this tier last",
                )
            )
        if last and tier.size is not None:
            out.append(
                (
                    ("tiers", j, "size"),
                    f"the last tier has a size ({tier.size:g}), so usage above the tiers would have "
                    "no price; to fix: remove size from the last tier (it is open-ended), or add an "
                    "open-ended tier after it",
                )
            )
        if tier.size is not None and tier.size <= 0:
            out.append(
                (
                    ("tiers", j, "size"),
                    "a tier's size must be > 0; to fix: use the number of units in this tier",
                )
            )
        if tier.price < 0:
            out.append(
                (("tiers", j, "price"), f"price must be >= 0, got {tier.price:g}; to fix: use 0 or more")
            )
    return out


def rate_problems(
    rate: RateValues, *, product_type: str | None = None, custom_units: set[str] | None = None
) -> list[Problem]:
    """Every rule one rate breaks. `product_type` is the type of the rate's product (None when unknown: the
    rule needing it is skipped); `custom_units` the card's credit_type_conversions (None: not checked)."""
    kind = rate.rate_type
    out = price_problems(rate)
    if rate.is_prorated is not None and kind != "SUBSCRIPTION":
        out.append((("is_prorated",), "is_prorated applies to SUBSCRIPTION rates only; to fix: remove it"))
    elif rate.is_prorated is False:
        out.append(
            (
                ("is_prorated",),
                "is_prorated must be true where given (Metronome refuses false); "
                "to fix: remove it or set it to true",
            )
        )
    if kind == "SUBSCRIPTION" and rate.quantity is not None and rate.quantity < 0:
        out.append((("quantity",), f"quantity must be >= 0, got {rate.quantity:g}; to fix: use 0 or more"))
    if kind == "CUSTOM" and not rate.custom_rate:
        out.append((("custom_rate",), "a CUSTOM rate needs custom_rate; to fix: add it"))
    if kind == "FLAT" and product_type == "SUBSCRIPTION" and rate.billing_frequency is None:
        out.append(
            (
                ("billing_frequency",),
                "a FLAT rate on a SUBSCRIPTION product needs billing_frequency (Metronome refuses it "
                "otherwise); to fix: set billing_frequency to MONTHLY, QUARTERLY, ANNUAL or WEEKLY",
            )
        )
    if custom_units is not None and rate.credit_type_id and rate.credit_type_id not in custom_units:
        out.append(
            (
                ("credit_type_id",),
                f"custom pricing unit '{rate.credit_type_id}' has no conversion on the rate card; "
                "to fix: add it to credit_type_conversions",
            )
        )
    if rate.commit_rate is not None:
        out += [(("commit_rate", *field), message) for field, message in price_problems(rate.commit_rate)]
    return out


def _instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def schedule_problems(
    rates: Sequence[tuple[Hashable, str, str | None] | None],
) -> list[tuple[int, Field, str]]:
    """Rules across a card's rates, each given as (product and pricing group values, starting_at,
    ending_before), or None when not known yet (a preview unknown: skipped). A rate ending before it
    starts; two rates with the same identity (Metronome keeps one: the second overwrites the first); two
    rates of one product and group values in force at once (Metronome holds both, and which one bills is
    not what was declared). Returns (index of the rate, field, message)."""
    out: list[tuple[int, Field, str]] = []
    by_group: dict[Hashable, list[int]] = {}
    seen: dict[tuple[Hashable, datetime], int] = {}
    starts: dict[int, datetime] = {}
    ends: dict[int, datetime | None] = {}
    written: dict[int, str] = {}  # starting_at as given
    for i, rate in enumerate(rates):
        if rate is None:
            continue
        group, start, end = rate
        start_at, end_at = _instant(start), _instant(end) if end else None
        starts[i], ends[i], written[i] = start_at, end_at, start
        if end_at is not None and end_at <= start_at:
            out.append(
                (
                    i,
                    ("ending_before",),
                    f"ends ({end}) before it starts ({start}); to fix: move ending_before later or remove it",
                )
            )
        first = seen.setdefault((group, starts[i]), i)
        if first != i:
            out.append(
                (
                    i,
                    (),
                    f"duplicate rate: same product, pricing_group_values and starting_at as rates[{first}]; "
                    "to fix: merge them or change starting_at",
                )
            )
        by_group.setdefault(group, []).append(i)
    for indexes in by_group.values():
        ordered = sorted(indexes, key=lambda i: starts[i])
        for a, b in zip(ordered, ordered[1:], strict=False):
            if starts[a] == starts[b]:
                continue  # a duplicate, reported as such
            end_a = ends[a]
            if end_a is None or end_a > starts[b]:
                later = written[b]
                out.append(
                    (
                        a,
                        ("ending_before",),
                        f"overlaps rates[{b}] (same product and pricing_group_values, starting {later}); "
                        f'to fix: end this rate where the later one starts (ending_before: "{later}")',
                    )
                )
    return out
