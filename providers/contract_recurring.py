"""A contract's recurring terms: subscriptions (seat and platform fees; their schema, read-back and
in-place updates in `contract_subscriptions.py`), recurring commits and recurring credits. Their schema
(metronome-sdk 4.12, `types/v1/contract_create_params.py`), how the live contract
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
from .contract_subscriptions import (
    Rounding,
    known,
    product_id_of,
    subscription_problems,
    subscription_to_inputs,
    subscription_update,
)
from .contract_terms import usd_is_unset
from .diff import instant, normalize, project, without_empty

RateTarget = Literal["COMMIT_RATE", "LIST_RATE"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


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

    _usd = field_validator("access_amount", mode="before")(usd_is_unset)


class RecurringCommit(RecurringCredit):
    invoice_amount: InvoiceAmount | None = None  # none: granted, not invoiced

    _usd_invoice = field_validator("invoice_amount", mode="before")(usd_is_unset)


FIELDS = ("subscriptions", "recurring_commits", "recurring_credits")
# The edit keys of each list: (add, update, the update's id field).
EDIT_KEYS = {
    "subscriptions": ("add_subscriptions", "update_subscriptions", "subscription_id"),
    "recurring_commits": ("add_recurring_commits", "update_recurring_commits", "recurring_commit_id"),
    "recurring_credits": ("add_recurring_credits", "update_recurring_credits", "recurring_credit_id"),
}


def problems(inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, what is wrong and the fix) for what Metronome refuses in these terms (its docstrings)."""
    subs = inputs.get("subscriptions") or []
    out = subscription_problems(subs)
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
            if start and end and known(start, end) and instant(end) <= instant(start):
                out.append((f"{field}[{i}].ending_before", "ends before it starts; correct the dates"))
    return out


# ---------------------------------------------------------------------------------------------
# Read-back: the live contract's recurring terms in input shape
# ---------------------------------------------------------------------------------------------


def _recurring_to_inputs(live: dict[str, Any], sub_names: dict[str, str]) -> dict[str, Any]:
    skip = {"id", "product", "contract", "anchor_date", "netsuite_sales_order_id", "hierarchy_configuration"}
    out = without_empty({k: v for k, v in live.items() if k not in skip})
    out["product_id"] = product_id_of(live)
    for key in ("access_amount", "invoice_amount"):
        if out.get(key):
            out[key] = usd_is_unset(out[key])
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
    referenced = {
        (g.get("subscription_config") or {}).get("subscription_id")
        for field in FIELDS[1:]
        for g in contract.get(field) or []
    }
    for field in FIELDS:
        wanted = desired.get(field) or []
        live = [i for i in contract.get(field) or [] if not i.get("archived_at")]
        if field == "subscriptions":
            shaped = [subscription_to_inputs(i, None) for i in live]
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
                if field == "subscriptions" and raw.get("id") in referenced:
                    value["temporary_id"] = raw["id"]  # what the grants naming it read back as
            else:
                item = subscription_to_inputs(raw, template) if field == "subscriptions" else shaped[i]
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
    if isinstance(start, str) and known(start) and instant(start) > hour:
        return start
    return hour.strftime("%Y-%m-%dT%H:%M:%SZ")


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
                        change = subscription_update(hit, item, start)
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
