"""A contract's recurring terms: subscriptions (seat and platform fees), recurring commits and recurring
credits. Their schema (metronome-sdk 4.12, `types/v1/contract_create_params.py`), how the live contract
(`types/shared/contract_v2.py`) reads back in input shape, and how a declared change becomes
/v2/contracts/edit keys.

Metronome changes these in place only in part (`types/v2/contract_edit_params.py`): a subscription's
name, end, proration rounding and quantity (`update_subscriptions`, its `quantity_updates`); a recurring
commit's or credit's amounts, end, proration rounding and rate type (`update_recurring_commits` /
`update_recurring_credits`). None of them can be archived or removed: one the catalog drops is ended
(`ending_before` set to the current hour, or to its start when it has not started), and a change nothing
updates in place ends the live one and adds the declared one, which the money rule (`contract_money.py`)
refuses when it would bill or grant again. An amendment (accounts without contract editing) can do none
of this: `contract_changes.py` refuses it.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .base import Timestamp
from .client import USD_CENTS_ID
from .diff import UNKNOWN, instant, normalize, project

Frequency = Literal["MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY"]
RateTarget = Literal["COMMIT_RATE", "LIST_RATE"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _usd_is_unset(value: Any) -> Any:
    """USD cents written out is the default left out (Metronome reads it back on every amount)."""
    if isinstance(value, dict) and value.get("credit_type_id") == USD_CENTS_ID:
        return {k: v for k, v in value.items() if k != "credit_type_id"}
    return value


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


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


class AccessAmount(_Model):
    unit_price: float  # changes in place
    quantity: float | None = None  # changes in place; required unless a subscription_config is given
    credit_type_id: str | None = None
    access_type: Literal["SPEND", "QUANTITY"] | None = None


class InvoiceAmount(_Model):
    unit_price: float  # changes in place
    quantity: float  # changes in place
    credit_type_id: str | None = None  # the SDK requires it: USD cents is sent when left out


class CommitDuration(_Model):
    value: float
    unit: Literal["PERIODS"] | None = None


class RecurringRounding(_Model):
    access: Rounding | None = None
    invoice: Rounding | None = None


class SeatIncrease(_Model):
    is_prorated: bool


class SubscriptionConfig(_Model):
    subscription_id: str  # the temporary_id of a subscription of this contract
    apply_seat_increase_config: SeatIncrease
    allocation: Literal["INDIVIDUAL", "POOLED"] | None = None


class Specifier(_Model):
    product_id: str | None = None
    product_tags: list[str] | None = None
    pricing_group_values: dict[str, str] | None = None
    presentation_group_values: dict[str, str] | None = None


class RecurringCredit(_Model):
    product_id: str
    access_amount: AccessAmount
    commit_duration: CommitDuration
    priority: float
    starting_at: Timestamp
    ending_before: Timestamp | None = None  # changes in place
    name: str | None = None
    description: str | None = None
    applicable_product_ids: list[str] | None = None
    applicable_product_tags: list[str] | None = None
    specifiers: list[Specifier] | None = None
    proration: Literal["NONE", "FIRST", "LAST", "FIRST_AND_LAST"] | None = None
    proration_rounding: RecurringRounding | None = None  # changes in place
    rate_type: RateTarget | None = None  # changes in place
    recurrence_frequency: Literal["MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY", "DAILY"] | None = None
    rollover_fraction: float | None = Field(default=None, ge=0, le=1)
    subscription_config: SubscriptionConfig | None = None
    temporary_id: str | None = None

    _usd = field_validator("access_amount", mode="before")(_usd_is_unset)


class RecurringCommit(RecurringCredit):
    invoice_amount: InvoiceAmount | None = None  # none: granted, not invoiced

    _usd_invoice = field_validator("invoice_amount", mode="before")(_usd_is_unset)


FIELDS = ("subscriptions", "recurring_commits", "recurring_credits")
# The edit keys of each list: (add, update, the update's id field).
EDIT_KEYS = {
    "subscriptions": ("add_subscriptions", "update_subscriptions", "subscription_id"),
    "recurring_commits": ("add_recurring_commits", "update_recurring_commits", "recurring_commit_id"),
    "recurring_credits": ("add_recurring_credits", "update_recurring_credits", "recurring_credit_id"),
}


def problems(inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, what is wrong and the fix) for what Metronome refuses in these terms (its docstrings)."""
    out = []
    subs = inputs.get("subscriptions") or []
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
                and _known(start, change["starting_at"])
                and instant(change["starting_at"]) <= instant(start)
            ):
                out.append(
                    (
                        f"subscriptions[{i}].quantity_schedule[{j}].starting_at",
                        "a later quantity starts after the subscription does; set initial_quantity for its "
                        "start",
                    )
                )
    temporary = {s.get("temporary_id") for s in subs if s.get("temporary_id")}
    for field in FIELDS[1:]:
        for i, grant in enumerate(inputs.get(field) or []):
            config = grant.get("subscription_config")
            if config is None and (grant.get("access_amount") or {}).get("quantity") is None:
                out.append(
                    (
                        f"{field}[{i}].access_amount.quantity",
                        "required unless a subscription_config is given; set it (e.g. 1)",
                    )
                )
            if config is not None and config.get("subscription_id") not in temporary:
                out.append(
                    (
                        f"{field}[{i}].subscription_config.subscription_id",
                        f"names no subscription of this contract; set it to the temporary_id of one "
                        f"({sorted(temporary) or 'none given'})",
                    )
                )
    for field in FIELDS:
        for i, item in enumerate(inputs.get(field) or []):
            start, end = item.get("starting_at"), item.get("ending_before")
            if start and end and _known(start, end) and instant(end) <= instant(start):
                out.append((f"{field}[{i}].ending_before", "ends before it starts; correct the dates"))
    return out


def _known(*values: Any) -> bool:
    return all(isinstance(v, str) and v != UNKNOWN for v in values)  # not a preview unknown


# ---------------------------------------------------------------------------------------------
# Read-back: the live contract's recurring terms in input shape
# ---------------------------------------------------------------------------------------------


def _product_id(value: dict[str, Any] | None) -> str | None:
    return ((value or {}).get("product") or {}).get("id") or (value or {}).get("product_id")


def _clean(value: Any) -> Any:
    """None, empty lists and maps dropped (Metronome echoes them)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _subscription_to_inputs(live: dict[str, Any], declared: dict[str, Any] | None) -> dict[str, Any]:
    out = _clean(
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
        "product_id": _product_id(rate),
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


def _recurring_to_inputs(live: dict[str, Any], sub_names: dict[str, str]) -> dict[str, Any]:
    skip = {"id", "product", "contract", "anchor_date", "netsuite_sales_order_id", "hierarchy_configuration"}
    out = _clean({k: v for k, v in live.items() if k not in skip})
    out["product_id"] = _product_id(live)
    for key in ("access_amount", "invoice_amount"):
        if out.get(key):
            out[key] = _usd_is_unset(out[key])
    config = out.get("subscription_config")
    if config and config.get("subscription_id") in sub_names:
        out["subscription_config"] = {**config, "subscription_id": sub_names[config["subscription_id"]]}
    return out


def _gone(item: dict[str, Any], now: datetime) -> bool:
    """Ended (by the stack, which ends what it drops, or by hand) or archived: no longer a live term."""
    end = item.get("ending_before")
    if item.get("archived_at"):
        return True
    if not end:
        return False
    start = item.get("starting_at")
    return instant(end) <= now or (bool(start) and instant(end) <= instant(start))


def _pairs(
    field: str, shaped: list[dict[str, Any]], live: list[dict[str, Any]], wanted: list[dict[str, Any]]
):
    """(live index, declared item) pairs: the same item first, then the same term (`same_term`), then
    declared items left over with live items still running, in order (a changed term reads back
    projected onto its declaration). An ended live item is paired only as the same item or term."""
    free = list(range(len(shaped)))
    pairs: dict[int, dict[str, Any]] = {}
    rest = []
    for t in wanted:
        hit = next((i for i in free if normalize(project(shaped[i], t)) == normalize(t)), None)
        if hit is None:
            found = counterpart(field, [shaped[i] for i in free], t)
            hit = next((i for i in free if shaped[i] is found), None)
        if hit is None:
            rest.append(t)
        else:
            free.remove(hit)
            pairs[hit] = t
    now = datetime.now(timezone.utc)
    for t in rest:
        hit = next((i for i in free if not _gone(live[i], now)), None)
        if hit is not None:
            free.remove(hit)
            pairs[hit] = t
    return pairs


def to_recurring_terms(contract: dict[str, Any], desired: dict[str, Any] | None = None) -> dict[str, Any]:
    """The live contract's recurring terms in input shape (items keep `_id`), projected onto `desired`.

    A declared item reads back as declared where Metronome fills in or expands (defaults, the contract's
    end, billing cycles); an undeclared live item shows in full unless it has ended (the stack ends what
    it drops, Metronome cannot remove it), so one added by hand is seen."""
    desired = desired or {}
    now = datetime.now(timezone.utc)
    out: dict[str, Any] = {}
    sub_names: dict[str, str] = {}  # live subscription id -> the temporary_id declared for it
    for field in FIELDS:
        wanted = desired.get(field) or []
        live = [i for i in contract.get(field) or [] if not i.get("archived_at")]
        if field == "subscriptions":
            shaped = [_subscription_to_inputs(i, None) for i in live]
        else:
            shaped = [_recurring_to_inputs(i, sub_names) for i in live]
        pairs = _pairs(field, shaped, live, wanted)
        items = []
        for i, raw in enumerate(live):
            template = pairs.get(i)
            if template is None:
                if _gone(raw, now):
                    continue
                value = shaped[i]
            else:
                item = _subscription_to_inputs(raw, template) if field == "subscriptions" else shaped[i]
                value = project(item, template)
                if field == "subscriptions":  # the quantities always (a change made by hand shows)
                    value.update({k: item[k] for k in ("initial_quantity", "quantity_schedule") if k in item})
                if template.get("temporary_id"):
                    value["temporary_id"] = template["temporary_id"]
                    if field == "subscriptions" and raw.get("id"):
                        sub_names[raw["id"]] = template["temporary_id"]
            items.append({**value, "_id": raw.get("id")})
        if items:
            out[field] = items
    return out


# ---------------------------------------------------------------------------------------------
# Edit building
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RecurringPlan:
    """What turns the live recurring terms into the declared ones: items to add (declared shape), live
    items to end (with the end to set), in-place updates (edit entries)."""

    adds: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    ends: dict[str, list[tuple[dict[str, Any], str | None]]] = dataclasses.field(default_factory=dict)
    updates: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.adds.values()) or any(self.ends.values()) or any(self.updates.values())


def _strip_id(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "_id"}


def same_term(field: str, have: dict[str, Any], want: dict[str, Any], by_name: bool = True) -> bool:
    """`want` declares the term `have` is: the same name; or (`by_name` false: a renamed term), the same
    product (and billing frequency) and start (a start left out matches any)."""
    if by_name and (have.get("name") or want.get("name")):
        return normalize(have.get("name")) == normalize(want.get("name"))
    if field == "subscriptions":
        a, b = have.get("subscription_rate") or {}, want.get("subscription_rate") or {}
        if (a.get("product_id"), a.get("billing_frequency")) != (
            b.get("product_id"),
            b.get("billing_frequency"),
        ):
            return False
    elif have.get("product_id") != want.get("product_id"):
        return False
    return want.get("starting_at") is None or normalize(have.get("starting_at")) == normalize(
        want["starting_at"]
    )


def counterpart(field: str, have: list[dict[str, Any]], want: dict[str, Any]) -> dict[str, Any] | None:
    """The live term a changed declared one stands for: by name, else (renamed) by product and start."""
    for by_name in (True, False):
        hit = next((h for h in have if same_term(field, h, want, by_name)), None)
        if hit is not None:
            return hit
    return None


def end_time(item: dict[str, Any], now: datetime | None = None) -> str | None:
    """When ending a live item takes effect: the current hour, or its start if it has not started yet."""
    now = now or datetime.now(timezone.utc)
    hour = now.replace(minute=0, second=0, microsecond=0)
    start = item.get("starting_at")
    if isinstance(start, str) and _known(start) and instant(start) > hour:
        return start
    return hour.strftime("%Y-%m-%dT%H:%M:%SZ")


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


def _subscription_update(have: dict[str, Any], want: dict[str, Any], start: Any) -> dict[str, Any] | None:
    """The update_subscriptions entry turning `have` into `want` (without its id); None when something
    differs that only a new subscription can carry."""
    fixed = {"name", "ending_before", "initial_quantity", "quantity_schedule", "proration", "temporary_id"}
    for key in set(_strip_id(have)) | set(want):
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


def _recurring_update(have: dict[str, Any], want: dict[str, Any]) -> dict[str, Any] | None:
    """The update_recurring_* entry turning `have` into `want` (without its id), or None."""
    movable = {
        "access_amount",
        "invoice_amount",
        "ending_before",
        "proration_rounding",
        "rate_type",
        "temporary_id",
    }
    for key in set(_strip_id(have)) | set(want):
        if key not in movable and normalize(have.get(key)) != normalize(want.get(key)):
            return None
    change: dict[str, Any] = {}
    for key in ("access_amount", "invoice_amount"):
        old, new = have.get(key), want.get(key)
        if normalize(old) == normalize(new):
            continue
        if not old or not new:
            return None  # an invoice amount can be changed, not added or taken away
        rest = {k for k in set(old) | set(new) if k not in ("unit_price", "quantity")}
        if any(normalize(old.get(k)) != normalize(new.get(k)) for k in rest):
            return None
        change[key] = {k: new[k] for k in ("unit_price", "quantity") if new.get(k) is not None}
    if normalize(have.get("rate_type")) != normalize(want.get("rate_type")):
        if want.get("rate_type") is None:
            return None
        change["rate_type"] = want["rate_type"]
    for key in ("ending_before", "proration_rounding"):
        if normalize(have.get(key)) != normalize(want.get(key)):
            change[key] = want.get(key)
    return change


def plan_recurring(
    have: dict[str, Any], want: dict[str, Any], raw: dict[str, Any] | None = None
) -> RecurringPlan:
    """The plan turning the recurring terms of `have` (input shape, items with `_id`: the live contract,
    or the recorded outputs at preview) into those of `want`. `raw` is the live contract when known (the
    subscriptions' starts, for quantity updates)."""
    plan = RecurringPlan()
    starts = {s.get("id"): s.get("starting_at") for s in (raw or {}).get("subscriptions") or []}
    for field in FIELDS:
        remaining = list(have.get(field) or [])
        for item in want.get(field) or []:
            hit = next((h for h in remaining if normalize(_strip_id(h)) == normalize(item)), None)
            if hit is None:
                hit = counterpart(field, remaining, item)
                change = None
                if hit is not None:
                    if field == "subscriptions":
                        start = starts.get(hit.get("_id")) or hit.get("starting_at") or "start"
                        change = _subscription_update(hit, item, start)
                    else:
                        change = _recurring_update(hit, item)
                    if change is None:
                        hit = None
                if hit is None:
                    plan.adds.setdefault(field, []).append(item)
                    continue
                if change:
                    _, _, id_field = EDIT_KEYS[field]
                    plan.updates.setdefault(field, []).append({id_field: hit.get("_id"), **change})
            remaining.remove(hit)
        if remaining:
            plan.ends[field] = [(h, end_time(h)) for h in remaining]
    return plan


def recurring_edit(plan: RecurringPlan, live_subscriptions: dict[str, str]) -> dict[str, Any]:
    """The /v2/contracts/edit keys carrying `plan`. `live_subscriptions` maps the temporary_id of each
    live subscription to its id: a grant added for a subscription already on the contract names it by id
    (a temporary id refers only to items of the same request)."""
    edit: dict[str, Any] = {}
    added_subs = {s.get("temporary_id") for s in plan.adds.get("subscriptions") or []}
    for field in FIELDS:
        add_key, update_key, id_field = EDIT_KEYS[field]
        adds = []
        for item in plan.adds.get(field) or []:
            config = item.get("subscription_config")
            if (
                config
                and config["subscription_id"] not in added_subs
                and config["subscription_id"] in live_subscriptions
            ):
                item = {
                    **item,
                    "subscription_config": {
                        **config,
                        "subscription_id": live_subscriptions[config["subscription_id"]],
                    },
                }
            adds.append(item)
        if adds:
            edit[add_key] = adds
        updates = list(plan.updates.get(field) or [])
        updates += [
            {id_field: live.get("_id"), "ending_before": end} for live, end in plan.ends.get(field) or []
        ]
        if updates:
            edit[update_key] = updates
    return edit


def live_subscription_ids(have: dict[str, Any]) -> dict[str, str]:
    """{temporary_id: live id} of the live subscriptions read back with a declared temporary_id."""
    return {
        s["temporary_id"]: s["_id"]
        for s in have.get("subscriptions") or []
        if s.get("temporary_id") and s.get("_id")
    }


def amend_cannot(plan: RecurringPlan) -> list[str]:
    """What an amendment cannot do of `plan` (all of it: /v1/contracts/amend takes none of these)."""
    out = []
    for field in FIELDS:
        what = field.replace("_", " ")
        if plan.adds.get(field):
            out.append(f"add {len(plan.adds[field])} {what} ({describe_items(field, plan.adds[field])})")
        if plan.updates.get(field):
            out.append(f"change {len(plan.updates[field])} existing {what} in place")
        if plan.ends.get(field):
            ended = [live for live, _ in plan.ends[field]]
            out.append(f"end {len(ended)} existing {what} ({describe_items(field, ended)})")
    return out


def describe_item(field: str, item: dict[str, Any]) -> str:
    what = f"'{item['name']}'" if item.get("name") else "unnamed"
    if field == "subscriptions":
        rate = item.get("subscription_rate") or {}
        return f"{what} on product {rate.get('product_id')} ({rate.get('billing_frequency')})"
    return f"{what} on product {item.get('product_id')}"


def describe_items(field: str, items: list[dict[str, Any]]) -> str:
    return ", ".join(describe_item(field, i) for i in items)
