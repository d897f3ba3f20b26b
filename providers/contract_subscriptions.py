"""A contract's subscriptions: seat and platform fees billed at a SUBSCRIPTION product's rate.

Schema from metronome-sdk 4.12 (`types/v1/contract_create_params.py` Subscription; read back as
`types/shared/contract_v2.py` Subscription). What changes in place (`update_subscriptions`,
`types/v2/contract_edit_params.py` UpdateSubscription): the name, the end, the proration rounding and the
quantity, which the catalog declares as `initial_quantity` and `quantity_schedule` (the quantity from each
later time on; sent as `quantity_updates`). The live schedule holds only the current quantity and those to
come ("Only includes the current quantity and future quantity changes"): quantities that ended before now
read back as declared. How subscriptions are read, ended and added with the recurring grants that can
name them is in `contract_recurring.py`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Timestamp
from .diff import UNKNOWN, instant, normalize, without_empty

Frequency = Literal["MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rounding(_Model):
    decimal_places: float
    rounding_method: Literal["HALF_UP", "FLOOR", "CEILING"]


class Proration(_Model):
    invoice_behavior: Literal["BILL_IMMEDIATELY", "BILL_ON_NEXT_COLLECTION_DATE"] | None = None
    is_prorated: bool | None = None
    rounding: Rounding | None = None  # changes in place (proration_rounding)


class SubscriptionRate(_Model):
    billing_frequency: Frequency
    product_id: str  # a SUBSCRIPTION product; with the frequency, a rate of the contract's rate card


class SeatConfig(_Model):
    initial_seat_ids: list[str]
    seat_group_key: str
    initial_unassigned_seats: float | None = None


class BillingCycleConfig(_Model):
    anchor_date: Timestamp | None = None
    invoice_placement: Literal["ON_SCHEDULED_INVOICE", "ON_USAGE_INVOICE"] | None = None


class QuantityChange(_Model):
    """The quantity from `starting_at` on (ContractV2 `quantity_schedule`, sent as `quantity_updates`)."""

    starting_at: Timestamp
    quantity: float = Field(ge=0)


class Subscription(_Model):
    collection_schedule: Literal["ADVANCE", "ARREARS"]
    proration: Proration
    subscription_rate: SubscriptionRate
    initial_quantity: float | None = Field(default=None, ge=0)  # required for QUANTITY_ONLY (the default)
    quantity_schedule: list[QuantityChange] | None = None  # later quantities; changes in place
    quantity_management_mode: Literal["SEAT_BASED", "QUANTITY_ONLY"] | None = None
    seat_config: SeatConfig | None = None
    starting_at: Timestamp | None = None  # none: the contract's start
    ending_before: Timestamp | None = None  # none: the contract's end; changes in place
    billing_cycle_config: BillingCycleConfig | None = None
    name: str | None = None  # changes in place
    description: str | None = None
    custom_fields: dict[str, str] | None = None
    temporary_id: str | None = None  # what a recurring grant's subscription_config names


def subscription_problems(subs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(field path, what is wrong and the fix) for what Metronome refuses in subscriptions."""
    out = []
    for i, sub in enumerate(subs):
        mode = sub.get("quantity_management_mode") or "QUANTITY_ONLY"
        if mode == "QUANTITY_ONLY" and sub.get("initial_quantity") is None:
            out.append(
                (
                    f"subscriptions[{i}].initial_quantity",
                    "a QUANTITY_ONLY subscription needs it; set it (e.g. 1)",
                )
            )
        if mode == "SEAT_BASED" and sub.get("seat_config") is None:
            out.append((f"subscriptions[{i}].seat_config", "a SEAT_BASED subscription needs it; add it"))
        start = sub.get("starting_at")
        for j, change in enumerate(sub.get("quantity_schedule") or []):
            if (
                start
                and known(start, change["starting_at"])
                and instant(change["starting_at"]) <= instant(start)
            ):
                out.append(
                    (
                        f"subscriptions[{i}].quantity_schedule[{j}].starting_at",
                        "a later quantity starts after the subscription does; set initial_quantity for its "
                        "start",
                    )
                )
    return out


def known(*values: Any) -> bool:
    return all(isinstance(v, str) and v != UNKNOWN for v in values)  # not a preview unknown


def product_id_of(value: dict[str, Any] | None) -> str | None:
    """A read-back `product {id, name}` (or a `product_id`) as the id."""
    return ((value or {}).get("product") or {}).get("id") or (value or {}).get("product_id")


def subscription_to_inputs(live: dict[str, Any], declared: dict[str, Any] | None) -> dict[str, Any]:
    out = without_empty(
        {
            k: live.get(k)
            for k in (
                "collection_schedule",
                "proration",
                "quantity_management_mode",
                "starting_at",
                "ending_before",
                "billing_cycle_config",
                "name",
                "description",
                "custom_fields",
            )
        }
    )
    rate = live.get("subscription_rate") or {}
    out["subscription_rate"] = {
        "billing_frequency": rate.get("billing_frequency"),
        "product_id": product_id_of(rate),
    }
    if live.get("seat_config"):
        out["seat_config"] = {**((declared or {}).get("seat_config") or {}), **live["seat_config"]}
    out.update(_quantities(live, declared))
    return out


def _quantities(live: dict[str, Any], declared: dict[str, Any] | None) -> dict[str, Any]:
    """`initial_quantity` and `quantity_schedule` from the live schedule, which holds only the current
    quantity and those to come (ContractV2.Subscription.quantity_schedule): quantities that ended before
    now are taken as declared, since nothing live can show them."""
    start = live.get("starting_at")
    items = sorted(live.get("quantity_schedule") or [], key=lambda q: instant(q["starting_at"]))
    out: dict[str, Any] = {}
    later = [{"starting_at": q["starting_at"], "quantity": q["quantity"]} for q in items]
    if items and start and instant(items[0]["starting_at"]) <= instant(start):
        out["initial_quantity"] = later.pop(0)["quantity"]
    elif declared and declared.get("initial_quantity") is not None:
        out["initial_quantity"] = declared["initial_quantity"]
    shown_from = instant(items[0]["starting_at"]) if items else None
    past = [
        c
        for c in (declared or {}).get("quantity_schedule") or []
        if shown_from is not None and instant(c["starting_at"]) < shown_from
    ]
    if past or later:
        out["quantity_schedule"] = past + later
    return out


def _schedule(item: dict[str, Any], start: Any) -> dict[str, float]:
    """A subscription's quantities as {canonical start: quantity} (the start under `start`)."""
    out = {}
    if item.get("initial_quantity") is not None:
        out[normalize(start)] = float(item["initial_quantity"])
    for change in item.get("quantity_schedule") or []:
        out[normalize(change["starting_at"])] = float(change["quantity"])
    return out


def _quantity_updates(have: dict[str, Any], want: dict[str, Any], start: Any) -> list[dict[str, Any]]:
    old, new = _schedule(have, start), _schedule(want, start)
    updates = [{"starting_at": t, "quantity": q} for t, q in sorted(new.items()) if old.get(t) != q]
    for t in sorted(set(old) - set(new)):  # a dropped change: the quantity declared before it goes on
        before = [q for s, q in sorted(new.items()) if s < t]
        updates.append({"starting_at": t, "quantity": before[-1] if before else 0.0})
    return updates


def subscription_update(have: dict[str, Any], want: dict[str, Any], start: Any) -> dict[str, Any] | None:
    """The update_subscriptions entry turning `have` into `want` (without its id); None when something
    differs that only a new subscription can carry."""
    fixed = {"name", "ending_before", "initial_quantity", "quantity_schedule", "proration", "temporary_id"}
    for key in {k for k in have if k != "_id"} | set(want):
        if key not in fixed and normalize(have.get(key)) != normalize(want.get(key)):
            return None
    old_pr, new_pr = dict(have.get("proration") or {}), dict(want.get("proration") or {})
    if normalize({**old_pr, "rounding": None}) != normalize({**new_pr, "rounding": None}):
        return None
    if have.get("name") and not want.get("name"):
        return None  # a name can be changed, not cleared
    change: dict[str, Any] = {}
    if normalize(have.get("name")) != normalize(want.get("name")):
        change["name"] = want["name"]
    if normalize(have.get("ending_before")) != normalize(want.get("ending_before")):
        change["ending_before"] = want.get("ending_before")
    if normalize(old_pr.get("rounding")) != normalize(new_pr.get("rounding")):
        change["proration_rounding"] = new_pr.get("rounding")
    quantities = _quantity_updates(have, want, start)
    if quantities:
        change["quantity_updates"] = quantities
    return change
