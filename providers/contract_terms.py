"""A contract's one-off terms: commits, credits, overrides, discounts and scheduled charges.

Everything about such a term lives here: its schema (the `Inputs` of `providers/contract.py` holds lists
of these models), how the live contract reads back in input shape (`to_terms`, `live_items`), and
how a declared change becomes API calls (`plan_terms`, then `edit_changes` for /v2/contracts/edit
or `amend_changes` for /v1/contracts/amend). A new kind of one-off term adds its model, its reader in
`READERS`, and its add/archive keys in `LIST_EDITS` here. The money rule on the plans (a commit, credit
or scheduled charge archived and added again) is in `contract_money.py`; terms that recur (subscriptions,
recurring commits and credits) in `contract_recurring.py`; threshold billing in `contract_thresholds.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from .base import Timestamp
from .client import USD_CENTS_ID
from .diff import instant, match_items, normalize, project

# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def usd_is_unset(value: Any) -> Any:
    """USD cents written out is the default left out: Metronome reads it back as no credit type."""
    if isinstance(value, dict) and value.get("credit_type_id") == USD_CENTS_ID:
        return {k: v for k, v in value.items() if k != "credit_type_id"}
    return value


class ScheduleItem(_Model):
    amount: float
    starting_at: Timestamp
    ending_before: Timestamp


class AccessSchedule(_Model):
    schedule_items: list[ScheduleItem]
    credit_type_id: str | None = None
    access_type: Literal["SPEND", "QUANTITY"] | None = None

    _usd = model_validator(mode="before")(usd_is_unset)


class Commit(_Model):
    product_id: str
    type: Literal["PREPAID", "POSTPAID"]
    name: str | None = None
    description: str | None = None
    priority: float | None = None
    rate_type: Literal["COMMIT_RATE", "LIST_RATE"] | None = None
    applicable_product_ids: list[str] | None = None
    applicable_product_tags: list[str] | None = None
    rollover_fraction: float | None = None
    access_schedule: AccessSchedule
    invoice_schedule: dict[str, Any] | None = None

    _usd = field_validator("invoice_schedule")(usd_is_unset)


class Credit(_Model):
    product_id: str
    name: str | None = None
    description: str | None = None
    priority: float | None = None
    applicable_product_ids: list[str] | None = None
    applicable_product_tags: list[str] | None = None
    access_schedule: AccessSchedule


class OverrideTier(_Model):
    multiplier: float
    size: float | None = None


class OverrideSpecifier(_Model):
    """What an override applies to (instead of `product_id` / `applicable_product_tags`). Metronome's
    commit references (`commit_ids`, `recurring_commit_ids`, `any_commit_or_credit_ids`) name commits by
    the ids it gives them, which a catalog cannot know: not taken here."""

    product_id: str | None = None
    product_tags: list[str] | None = None
    pricing_group_values: dict[str, str] | None = None
    presentation_group_values: dict[str, str] | None = None
    billing_frequency: Literal["MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY"] | None = None


class Override(_Model):
    starting_at: Timestamp
    ending_before: Timestamp | None = None
    type: Literal["OVERWRITE", "MULTIPLIER", "TIERED"] | None = None
    product_id: str | None = None
    applicable_product_tags: list[str] | None = None
    override_specifiers: list[OverrideSpecifier] | None = None
    multiplier: float | None = None
    overwrite_rate: dict[str, Any] | None = None
    tiers: list[OverrideTier] | None = None
    entitled: bool | None = None
    is_commit_specific: bool | None = None
    priority: float | None = None
    target: Literal["COMMIT_RATE", "LIST_RATE"] | None = None

    _usd = field_validator("overwrite_rate")(usd_is_unset)

    @model_validator(mode="after")
    def _inferred_type(self) -> Override:
        """Metronome infers the type from what is given and echoes it: state it the same way."""
        if self.type is None:
            if self.overwrite_rate is not None:
                self.type = "OVERWRITE"
            elif self.tiers is not None:
                self.type = "TIERED"
            elif self.multiplier is not None:
                self.type = "MULTIPLIER"
        return self


class Discount(_Model):
    product_id: str
    schedule: dict[str, Any]
    name: str | None = None

    _usd = field_validator("schedule")(usd_is_unset)


class ScheduledCharge(_Model):
    """A charge invoiced on its schedule's dates (`schedule_items` or a `recurring_schedule`)."""

    product_id: str
    schedule: dict[str, Any]
    name: str | None = None

    _usd = field_validator("schedule")(usd_is_unset)


def discounts_only_added(old: list[dict[str, Any]] | None, new: list[dict[str, Any]] | None) -> bool:
    remaining = [normalize(d) for d in new or []]
    for d in old or []:
        if normalize(d) not in remaining:
            return False
        remaining.remove(normalize(d))
    return True


# ---------------------------------------------------------------------------------------------
# Read-back: the live contract's terms in input shape
# ---------------------------------------------------------------------------------------------


def _credit_type_id(obj: dict[str, Any] | None) -> str | None:
    ct = (obj or {}).get("credit_type") or {}
    ct_id = ct.get("id") or (obj or {}).get("credit_type_id")
    return ct_id if ct_id and ct_id != USD_CENTS_ID else None


def _schedule(schedule: dict[str, Any] | None, items_keys: tuple[str, ...]) -> dict[str, Any] | None:
    if not schedule:
        return None
    out: dict[str, Any] = {
        "schedule_items": [
            {k: i[k] for k in items_keys if i.get(k) is not None}
            for i in schedule.get("schedule_items") or []
        ]
    }
    for key in ("access_type", "do_not_invoice"):
        if schedule.get(key) is not None:
            out[key] = schedule[key]
    if _credit_type_id(schedule):
        out["credit_type_id"] = _credit_type_id(schedule)
    return out


def _grant_to_inputs(item: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"product_id": (item.get("product") or {}).get("id") or item.get("product_id")}
    for field in fields:
        if item.get(field) not in (None, [], {}):
            out[field] = item[field]
    access = _schedule(item.get("access_schedule"), ("amount", "starting_at", "ending_before"))
    if access:
        out["access_schedule"] = access
    invoice = _schedule(item.get("invoice_schedule"), ("amount", "timestamp", "unit_price", "quantity"))
    if invoice and "invoice_schedule" in fields:
        out["invoice_schedule"] = invoice
    return out


def _override_to_inputs(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    product_id = (item.get("product") or {}).get("id") or item.get("product_id")
    if product_id:
        out["product_id"] = product_id
    if item.get("override_tiers") and not item.get("tiers"):
        out["tiers"] = item["override_tiers"]  # the response's name for tiers
    for field in (
        "starting_at",
        "ending_before",
        "type",
        "applicable_product_tags",
        "multiplier",
        "tiers",
        "entitled",
        "is_commit_specific",
        "priority",
        "target",
    ):
        if item.get(field) not in (None, [], {}):
            out[field] = item[field]
    if item.get("override_specifiers"):
        out["override_specifiers"] = [
            {k: v for k, v in spec.items() if v not in (None, [], {})} for spec in item["override_specifiers"]
        ]
    if item.get("overwrite_rate"):
        rate = {k: v for k, v in item["overwrite_rate"].items() if v is not None and k != "credit_type"}
        if _credit_type_id(item["overwrite_rate"]):
            rate["credit_type_id"] = _credit_type_id(item["overwrite_rate"])
        out["overwrite_rate"] = rate
    return out


def _discount_to_inputs(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"product_id": (item.get("product") or {}).get("id") or item.get("product_id")}
    if item.get("name"):
        out["name"] = item["name"]
    schedule = _schedule(item.get("schedule"), ("amount", "timestamp", "unit_price", "quantity"))
    if schedule:
        out["schedule"] = schedule
    return out


# Each list of terms and how a live item of it reads back in input shape.
READERS = {
    "commits": lambda c: _grant_to_inputs(
        c,
        (
            "type",
            "name",
            "description",
            "priority",
            "rate_type",
            "applicable_product_ids",
            "applicable_product_tags",
            "rollover_fraction",
            "invoice_schedule",
        ),
    ),
    "credits": lambda c: _grant_to_inputs(
        c, ("name", "description", "priority", "applicable_product_ids", "applicable_product_tags")
    ),
    "overrides": _override_to_inputs,
    "discounts": _discount_to_inputs,
    "scheduled_charges": _discount_to_inputs,  # the same shape: product, name, schedule
}


def live_items(
    contract: dict[str, Any], field: str, desired: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Active live items of a list field in input shape, each with its Metronome id under `_id`.

    Items matching a declared one are projected onto its keys (Metronome expands schedules and
    echoes defaults); unmatched ones keep the full mapping, so out-of-band additions show.
    """
    items = [i for i in contract.get(field) or [] if not i.get("archived_at")]
    mapped = [(READERS[field](i), i.get("id")) for i in items]
    shaped = [m for m, _ in mapped]
    out = []
    for (item, template), (_, item_id) in zip(match_items(shaped, desired or []), mapped, strict=True):
        value = project(item, template) if template is not None else item
        if template is not None:
            value = _recurring_as_declared(value, item, template)
        out.append({**value, "_id": item_id})
    return out


def _recurring_as_declared(
    value: dict[str, Any], item: dict[str, Any], template: dict[str, Any]
) -> dict[str, Any]:
    """A declared recurring_schedule reads back as declared while the live schedule items (Metronome
    expands the recurrence into them and returns only those) all fall inside its window and their
    amounts agree with its total; items moved out, amounts changed, a DIVIDED item added or removed, or
    none left, show as drift. (Item dates within the window are not re-derived: the expansion is
    Metronome's.)"""
    for key in ("invoice_schedule", "schedule"):
        want = (template.get(key) or {}).get("recurring_schedule")
        items = (item.get(key) or {}).get("schedule_items") or []
        if not isinstance(want, dict) or not items:
            continue
        try:
            start, end = instant(want["starting_at"]), instant(want["ending_before"])
            inside = all(start <= instant(i["timestamp"]) < end for i in items)
            fits = inside and _amounts_fit(want, [float(i["amount"]) for i in items])
        except (KeyError, TypeError, ValueError):
            fits = False
        if fits:
            value = {**value, key: {**(value.get(key) or {}), "recurring_schedule": want}}
    return value


def _amounts_fit(recurring: dict[str, Any], amounts: list[float]) -> bool:
    """The live item amounts agree with the recurrence's total, by its distribution: EACH item carries
    it, DIVIDED items add up to it (DIVIDED_ROUNDED: within a cent per item). Without a total, as for
    unit_price x quantity, quantity: True."""
    total = recurring.get("amount")
    if total is None and recurring.get("unit_price") is not None:
        total = float(recurring["unit_price"]) * float(recurring.get("quantity") or 1)
    if total is None:
        return True
    total = float(total)
    if recurring.get("amount_distribution") == "EACH":
        return all(abs(a - total) <= 1e-9 * max(1.0, abs(total)) for a in amounts)
    slack = 0.01 * len(amounts) if recurring.get("amount_distribution") == "DIVIDED_ROUNDED" else 0.0
    return abs(sum(amounts) - total) <= slack + 1e-9 * max(1.0, abs(total))


def to_terms(contract: dict[str, Any], desired: dict[str, Any] | None = None) -> dict[str, Any]:
    """The live contract's lists of terms in input shape (items keep `_id`), projected onto `desired`."""
    out = {}
    for name in READERS:
        items = live_items(contract, name, (desired or {}).get(name))
        if items:
            out[name] = items
    return out


def strip_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items() if k != "_id"}
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Edit building: declared terms against the live (or recorded) ones
# ---------------------------------------------------------------------------------------------

# How /v2/contracts/edit adds and drops each list (None: it cannot drop them; a discount removed
# replaces the contract, see the `discounts` field of the contract's Inputs).
LIST_EDITS: dict[str, tuple[str, str | None]] = {
    "commits": ("add_commits", "archive_commits"),
    "credits": ("add_credits", "archive_credits"),
    "overrides": ("add_overrides", "remove_overrides"),
    "discounts": ("add_discounts", None),
    "scheduled_charges": ("add_scheduled_charges", "archive_scheduled_charges"),
}
GRANT_UPDATES = {"commits": "update_commits", "credits": "update_credits"}
# A scheduled charge changes in place only in its schedule's items (update_scheduled_charges, SDK
# ContractEditParams.UpdateScheduledCharge: `invoice_schedule` add/remove/update items).
CHARGE_UPDATES = {"scheduled_charges": "update_scheduled_charges"}
# Grant fields /v2/contracts/edit changes in place (update_commits / update_credits, SDK
# ContractEditParams.UpdateCommit / UpdateCredit); schedules change item by item. A difference anywhere
# else can only be carried by a new grant: archive the live one, add the declared one.
GRANT_UPDATABLE = (
    "name",
    "description",
    "priority",
    "rate_type",
    "product_id",
    "rollover_fraction",
    "applicable_product_ids",
    "applicable_product_tags",
)
SCHEDULE_TIME = {"access_schedule": "starting_at", "invoice_schedule": "timestamp"}


@dataclasses.dataclass
class TermsPlan:
    """What turns the live terms into the declared ones: items to add (declared shape), live items to
    drop (with their `_id` when read from the live contract), in-place grant updates."""

    adds: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    drops: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    updates: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.adds.values()) or any(self.drops.values()) or any(self.updates.values())


def _counterpart(have: list[dict[str, Any]], want: dict[str, Any]) -> dict[str, Any] | None:
    """The live grant a changed declared one stands for: same product, type and name; or, for a named
    grant, same type and name on another product (its product was replaced: updated in place). (Not a
    mere same-product grant: dropping last year's commit and adding this year's must not rewrite the
    schedule of a commit already invoiced.)"""
    exact = ("product_id", "type", "name")
    hit = next((h for h in have if all(normalize(h.get(k)) == normalize(want.get(k)) for k in exact)), None)
    if hit is None and want.get("name"):
        named = ("type", "name")
        hit = next(
            (h for h in have if all(normalize(h.get(k)) == normalize(want.get(k)) for k in named)), None
        )
    return hit


def _schedule_change(
    raw_schedule: dict[str, Any] | None, old: dict[str, Any], new: dict[str, Any], time_key: str, live: bool
) -> dict[str, Any] | None:
    """The add/remove/update_schedule_items change turning schedule `old` into `new` item by item; None
    when something besides the items differs. `raw_schedule` is the live one (its item ids); without it
    (`live` false: planning against recorded state) the changed items are named but carry no ids."""
    rest = {k for k in set(old) | set(new) if k != "schedule_items"}
    if not old or any(normalize(old.get(k)) != normalize(new.get(k)) for k in rest):
        return None
    if not live:
        return {"update_schedule_items": new.get("schedule_items") or []}
    if not raw_schedule:
        return None
    live_items_ = sorted(raw_schedule.get("schedule_items") or [], key=lambda i: normalize(i.get(time_key)))
    want_items = sorted(new.get("schedule_items") or [], key=lambda i: normalize(i.get(time_key)))
    updates, adds = [], []
    for i, item in enumerate(want_items):
        if i >= len(live_items_):
            adds.append(item)
        elif normalize(project(live_items_[i], item)) != normalize(item):
            updates.append({"id": live_items_[i]["id"], **item})
    removes = [{"id": i["id"]} for i in live_items_[len(want_items) :]]
    schedule: dict[str, Any] = {}
    for name, items in (
        ("update_schedule_items", updates),
        ("add_schedule_items", adds),
        ("remove_schedule_items", removes),
    ):
        if items:
            schedule[name] = items
    return schedule


def _grant_update(
    raw: dict[str, Any] | None, field: str, have: dict[str, Any], want: dict[str, Any], live: bool
) -> dict[str, Any] | None:
    """The update_commits/update_credits entry turning grant `have` into `want`; None when something
    differs that only a new grant can carry. `raw` is the live grant (its schedule item ids)."""
    id_field = "commit_id" if field == "commits" else "credit_id"
    change: dict[str, Any] = {id_field: (raw or {}).get("id") or have.get("_id")}
    for key in set(strip_ids(have)) | set(want):
        if key in SCHEDULE_TIME or normalize(have.get(key)) == normalize(want.get(key)):
            continue
        if key not in GRANT_UPDATABLE or (
            want.get(key) is None and key in ("name", "description", "product_id")
        ):
            return None
        change[key] = want.get(key) if want.get(key) is not None else ([] if key.startswith("appl") else None)
    for key, time_key in SCHEDULE_TIME.items():
        old, new = strip_ids(have.get(key) or {}), want.get(key) or {}
        if normalize(old) == normalize(new):
            continue
        schedule = _schedule_change((raw or {}).get(key), old, new, time_key, live)
        if schedule is None:
            return None
        if schedule:
            change[key] = schedule
    return change if len(change) > 1 else None


def _charge_update(
    raw: dict[str, Any] | None, have: dict[str, Any], want: dict[str, Any], live: bool
) -> dict[str, Any] | None:
    """The update_scheduled_charges entry turning charge `have` into `want` (only its schedule's items
    can change in place; a recurring schedule is expanded by Metronome: changed only by a new charge)."""
    if any(normalize(have.get(k)) != normalize(want.get(k)) for k in ("product_id", "name")):
        return None
    old, new = strip_ids(have.get("schedule") or {}), want.get("schedule") or {}
    if old.get("recurring_schedule") or new.get("recurring_schedule"):
        return None
    schedule = _schedule_change((raw or {}).get("schedule"), old, new, "timestamp", live)
    if not schedule:
        return None
    return {"scheduled_charge_id": (raw or {}).get("id") or have.get("_id"), "invoice_schedule": schedule}


def plan_terms(have: dict[str, Any], want: dict[str, Any], raw: dict[str, Any] | None = None) -> TermsPlan:
    """The plan turning the terms of `have` (input shape: the live contract, items with `_id`, or the
    recorded outputs at preview) into those of `want`. `raw` is the live contract when `have` is read
    from it. Identical items stay; a changed commit or credit with a counterpart is updated in place
    when the edit can carry the change; the rest is dropped and added."""
    plan = TermsPlan()
    for name in LIST_EDITS:
        remaining = list(have.get(name) or [])
        unmatched = []
        for item in want.get(name) or []:
            hit = next((h for h in remaining if normalize(strip_ids(h)) == normalize(item)), None)
            if hit is None:
                unmatched.append(item)
            else:
                remaining.remove(hit)
        if name in GRANT_UPDATES or name in CHARGE_UPDATES:
            for item in list(unmatched):
                hit = _counterpart(remaining, item)
                if hit is None:
                    continue
                raw_item = next(
                    (g for g in (raw or {}).get(name) or [] if g.get("id") == hit.get("_id")), None
                )
                if raw is not None and raw_item is None:
                    continue
                if name in GRANT_UPDATES:
                    change = _grant_update(raw_item, name, hit, item, raw is not None)
                else:
                    change = _charge_update(raw_item, hit, item, raw is not None)
                if change is not None:
                    plan.updates.setdefault(name, []).append(change)
                    remaining.remove(hit)
                    unmatched.remove(item)
        if unmatched:
            plan.adds[name] = unmatched
        if remaining:
            plan.drops[name] = remaining
    return plan


def edit_changes(plan: TermsPlan) -> tuple[dict[str, Any], list[str]]:
    """The /v2/contracts/edit keys carrying `plan`, and what the edit cannot do (a discount dropped)."""
    edit: dict[str, Any] = {}
    cannot = []
    for name, (add_key, drop_key) in LIST_EDITS.items():
        if plan.adds.get(name):
            edit[add_key] = plan.adds[name]
        if plan.drops.get(name):
            if drop_key is None:
                cannot.append(f"remove or change existing {name}")
            else:
                edit[drop_key] = [{"id": h["_id"]} for h in plan.drops[name] if h.get("_id")]
        if plan.updates.get(name):
            edit[{**GRANT_UPDATES, **CHARGE_UPDATES}[name]] = plan.updates[name]
    return edit, cannot


def amend_changes(plan: TermsPlan) -> tuple[dict[str, Any], list[str]]:
    """The /v1/contracts/amend body keys carrying `plan`, and what an amendment cannot do.

    An amendment (SDK `contracts.amend`: commits, credits, overrides, discounts, scheduled charges,
    custom fields...) only adds terms: it cannot archive a commit, credit or charge, remove an override
    or change one in place."""
    body: dict[str, Any] = {}
    cannot = []
    for name in LIST_EDITS:
        if plan.adds.get(name):
            body[name] = plan.adds[name]
        if plan.drops.get(name):
            cannot.append(
                f"remove {len(plan.drops[name])} existing {name} ({describe_items(plan.drops[name])})"
            )
        if plan.updates.get(name):
            cannot.append(f"change {len(plan.updates[name])} existing {name} in place")
    return body, cannot


def describe_items(items: list[dict[str, Any]]) -> str:
    return ", ".join(describe_item(i) for i in items)


def describe_item(item: dict[str, Any]) -> str:
    what = f"'{item['name']}'" if item.get("name") else "unnamed"
    return f"{what} on product {item.get('product_id')}"
