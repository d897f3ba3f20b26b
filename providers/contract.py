"""Contract: a Metronome contract binding a customer to a rate card (plus commits, credits, ...).

Contracts have a `uniqueness_key`: creates send "iac:<identity>#<fingerprint>" and a 409 means the
contract already exists, so it is found by that key and taken over. Changes go through
/v2/contracts/edit, computed against the LIVE contract, with a uniqueness key per edit.

A billing provider configuration can be added to a contract that has none (going live), never changed
to another one: Metronome only adds one to a contract without one, and none can be provisioned once the
contract's configuration is archived. Such a change is refused at check and diff (and, against the live
contract, before any edit is sent); on a contract that has ended it is ignored (it bills nothing more).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import metronome
import pulumi
from pulumi.dynamic import CheckFailure, CreateResult, DiffResult
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from .base import InputsBase, MetronomeProvider, Timestamp, declare_props
from .client import (
    HOST_TOKEN,
    USD_CENTS_ID,
    MetronomeError,
    archive,
    create_once,
    data_of,
    get_live,
    paginate,
    raw_request,
    request,
)
from .diff import (
    UNKNOWN,
    canonical_time,
    changed_fields,
    compute_diff,
    contains_unknown,
    describe,
    instant,
    match_items,
    normalize,
    project,
)
from .identity import contract_uniqueness_key, create_key, edit_uniqueness_key
from .schema import RequiresReplace, replacement_rules
from .schema import replacing_fields as replacing_by_rules

ENTITY = "contract"

# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _default_credit_type_unset(value: Any) -> Any:
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

    _usd = model_validator(mode="before")(_default_credit_type_unset)


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

    _usd = field_validator("invoice_schedule")(_default_credit_type_unset)


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


class Override(_Model):
    starting_at: Timestamp
    ending_before: Timestamp | None = None
    type: Literal["OVERWRITE", "MULTIPLIER", "TIERED"] | None = None
    product_id: str | None = None
    applicable_product_tags: list[str] | None = None
    multiplier: float | None = None
    overwrite_rate: dict[str, Any] | None = None
    tiers: list[OverrideTier] | None = None
    entitled: bool | None = None
    is_commit_specific: bool | None = None
    priority: float | None = None
    target: Literal["COMMIT_RATE", "LIST_RATE"] | None = None

    _usd = field_validator("overwrite_rate")(_default_credit_type_unset)

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

    _usd = field_validator("schedule")(_default_credit_type_unset)


class BillingProviderConfiguration(_Model):
    billing_provider_configuration_id: str | None = None
    billing_provider: str | None = None
    delivery_method: str | None = None


# A contract's customer, rate card and start date can never change (Metronome: start a new contract);
# replacing a contract archives the old one and voids its invoices, so check refuses it unless
# `allow_replacement: true`. Everything else (name, end date, payment terms, commits, credits, overrides,
# billing provider) is an edit.
FIXED_AT_START = RequiresReplace("Metronome cannot change a contract's customer, rate card or start")


class Inputs(InputsBase):
    customer_id: Annotated[str, FIXED_AT_START]
    rate_card_id: Annotated[str | None, FIXED_AT_START] = None
    starting_at: Annotated[Timestamp, FIXED_AT_START]
    ending_before: Timestamp | None = None
    name: str | None = None
    net_payment_terms_days: int | None = None
    commits: list[Commit] | None = None
    credits: list[Credit] | None = None
    overrides: list[Override] | None = None
    # Discounts can be added by an edit but not removed or changed.
    discounts: Annotated[
        list[Discount] | None,
        RequiresReplace(
            "discounts can be added by an edit, never changed or removed",
            unless=lambda old, new: discounts_only_added(old, new),
        ),
    ] = None
    billing_provider_configuration: BillingProviderConfiguration | None = None
    allow_replacement: bool = False


HINTS = {
    "customer_id": "reference the customer's id (customer_id=customer.id)",
    "rate_card_id": "reference the rate card's id (rate_card_id=card.id)",
    "starting_at": "use an RFC 3339 time such as 2026-01-01T00:00:00Z",
}

# ---------------------------------------------------------------------------------------------
# Diff rules
# ---------------------------------------------------------------------------------------------

REPLACEMENT_RULES = replacement_rules(Inputs)
ALWAYS_REPLACE = tuple(f for f, rule in REPLACEMENT_RULES.items() if rule.unless is None)
# Fields the uniqueness key's fingerprint covers: what identifies this contract.
IDENTITY_FIELDS = ("customer_id", "rate_card_id", "starting_at")


BPC = "billing_provider_configuration"
BPC_ID = "billing_provider_configuration_id"


def configuration_changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool | None:
    """Whether `new` names another billing provider configuration than `old` (both as declared).

    False when either is absent (none -> one is going live, an edit; one -> none changes nothing in
    Metronome); None when it cannot be told yet: a preview unknown, or one named by id and the other by
    provider and delivery method (decided against the live contract before the edit is sent).
    """
    if not old or not new:
        return False
    if contains_unknown(old) or contains_unknown(new):
        return None
    if old.get(BPC_ID) and new.get(BPC_ID):
        return old[BPC_ID] != new[BPC_ID]
    if old.get(BPC_ID) or new.get(BPC_ID):
        return None
    return normalize(old) != normalize(new)


def has_ended(inputs: dict[str, Any]) -> bool:
    """The contract's (declared) end is in the past: it bills nothing more."""
    end = inputs.get("ending_before")
    if not end or contains_unknown(end):
        return False
    return instant(end) <= datetime.now(timezone.utc)


def archived_configuration_warning(label: str, config_id: str) -> str:
    return (
        f"warning: {label}: its billing provider configuration {config_id} was archived outside this stack: "
        "the contract no longer invoices through it, and Metronome cannot give it another. End it "
        "(ending_before) and start a new contract on the customer's current configuration"
    )


def configuration_change_refused(old: Any, new: Any) -> str:
    return (
        f"billing_provider_configuration cannot change from {describe(old)} to {describe(new)}: this "
        "contract already has a billing provider configuration, and Metronome only adds one to a contract "
        "that has none (nor can a new one be provisioned once the contract's configuration is archived), so "
        "the edit would fail and the contract would keep invoicing through the old one (or, if that one is "
        "archived, through none). To bill it through the new configuration: end this contract (set "
        "ending_before) and start a new one on the new configuration (e.g. a renewal starting where this one "
        "ends); or make the change in the Metronome dashboard with Metronome's help. To fix: keep "
        f"billing_provider_configuration at {describe(old)} (in a stack it follows the customer's Stripe "
        "configuration: keep the customer's stripe_customer_id and collection method until this contract "
        "has ended)"
    )


def _is_bound(bound: dict[str, Any], want: dict[str, Any]) -> bool:
    """`want` (as declared) names the configuration the live contract has (`bound`)."""
    if want.get(BPC_ID):
        return bound.get("id") == want[BPC_ID]
    return all(bound.get(k) == want[k] for k in ("billing_provider", "delivery_method") if want.get(k))


def certain_replacements(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Fields whose change replaces the contract, known for certain now.

    An id not known yet (preview) belongs to a resource this update creates or replaces: it never
    equals the recorded id, so the change is certain. Other values holding unknowns (discounts naming a
    new product) may turn out to be additions only: up checks them again with known values.
    """
    return [
        f
        for f in replacing_fields(old, new)
        if (f in ALWAYS_REPLACE and old.get(f) not in (None, UNKNOWN))
        or (new.get(f) != UNKNOWN and UNKNOWN not in str(new.get(f)))
    ]


def replacement_refused(field: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    to = "the id of a resource this update creates or replaces" if new.get(field) == UNKNOWN else None
    return (
        f"changing {field} (from {describe(old.get(field))} to {to or describe(new.get(field))}) "
        "replaces the contract: the old one is archived, its invoices voided; to fix: "
        "revert the change, or set allow_replacement: true if a new contract is wanted"
    )


def discounts_only_added(old: list[dict[str, Any]] | None, new: list[dict[str, Any]] | None) -> bool:
    remaining = [normalize(d) for d in new or []]
    for d in old or []:
        if normalize(d) not in remaining:
            return False
        remaining.remove(normalize(d))
    return True


def replacing_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return replacing_by_rules(REPLACEMENT_RULES, old, new, changed_fields(old, new, REPLACEMENT_RULES))


# ---------------------------------------------------------------------------------------------
# API calls
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


_LISTS = {
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
}


def live_items(
    contract: dict[str, Any], field: str, desired: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Active live items of a list field in input shape, each with its Metronome id under `_id`.

    Items matching a declared one are projected onto its keys (Metronome expands schedules and
    echoes defaults); unmatched ones keep the full mapping, so out-of-band additions show.
    """
    items = [i for i in contract.get(field) or [] if not i.get("archived_at")]
    mapped = [(_LISTS[field](i), i.get("id")) for i in items]
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


def to_inputs(contract: dict[str, Any], desired: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ContractV2 in input shape (list items keep `_id`; strip with `strip_ids`)."""
    out: dict[str, Any] = {
        "customer_id": contract.get("customer_id"),
        "starting_at": contract.get("starting_at"),
    }
    for field in ("rate_card_id", "ending_before", "name", "net_payment_terms_days"):
        if contract.get(field) is not None:
            out[field] = contract[field]
    if desired is not None and "net_payment_terms_days" not in desired:
        out.pop("net_payment_terms_days", None)  # Metronome fills a default in when none was declared
    for field in _LISTS:
        items = live_items(contract, field, (desired or {}).get(field))
        if items:
            out[field] = items
    bpc = contract.get("customer_billing_provider_configuration")
    declared = (desired or {}).get("billing_provider_configuration") or {}
    if bpc:
        if "billing_provider_configuration_id" in declared or not declared:
            out["billing_provider_configuration"] = {"billing_provider_configuration_id": bpc.get("id")}
        else:
            out["billing_provider_configuration"] = {
                k: bpc.get(k) for k in ("billing_provider", "delivery_method") if bpc.get(k)
            }
    if contract.get("custom_fields"):
        out["custom_fields"] = dict(contract["custom_fields"])
    return out


def strip_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items() if k != "_id"}
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


def _list_raw(client: metronome.Metronome, customer_id: str, label: str, include_archived: bool = False):
    body: dict[str, Any] = {"customer_id": customer_id}
    if include_archived:
        body["include_archived"] = True
    return list(
        paginate(
            client, "POST", "/v2/contracts/list", label=label, body=body, limit=None, cursor_in_body="cursor"
        )
    )


def list_objects(client: metronome.Metronome, customer_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The customer's active contracts, input-shaped (uniqueness_key kept as an extra key)."""
    out = []
    for c in _list_raw(client, customer_id, f"Contract listing for {customer_id}"):
        if c.get("archived_at"):
            continue
        shaped = strip_ids(to_inputs(c))
        if c.get("uniqueness_key"):
            shaped["uniqueness_key"] = c["uniqueness_key"]
        out.append((c["id"], shaped))
    return out


def active_contracts(client: metronome.Metronome, customer_id: str, label: str) -> list[dict[str, Any]]:
    """Contracts not archived and not ended (raw objects)."""
    now = datetime.now(timezone.utc)
    out = []
    for c in _list_raw(client, customer_id, label):
        if c.get("archived_at"):
            continue
        end = c.get("ending_before")
        if end and instant(end) <= now:
            continue
        out.append(c)
    return out


def _get(
    client: metronome.Metronome, customer_id: str, contract_id: str, label: str
) -> dict[str, Any] | None:
    body = {"customer_id": customer_id, "contract_id": contract_id}
    return get_live(client, "POST", "/v2/contracts/get", label=label, body=body)


def read_object(
    client: metronome.Metronome,
    object_id: str,
    customer_id: str | None = None,
    desired: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The live contract in input shape; None if archived/missing. Contracts live under a customer:
    pass `customer_id` (or `desired` holding it), else the customers are scanned to find it."""
    customer_id = customer_id or (desired or {}).get("customer_id") or _owner_of(client, object_id)
    if not customer_id:
        return None
    obj = _get(client, customer_id, object_id, f"Contract {object_id}")
    return strip_ids(to_inputs(obj, desired)) if obj else None


def _owner_of(client: metronome.Metronome, contract_id: str) -> str | None:
    """The customer a contract belongs to (a scan over customers: only when no customer_id is known)."""
    from .customer import _list_raw as customers

    for cust in customers(client):
        contracts = _list_raw(client, cust["id"], f"Contract {contract_id}", include_archived=True)
        if any(c["id"] == contract_id for c in contracts):
            return cust["id"]
    return None


def _key_matches(live_key: str | None, key: str) -> bool:
    # Metronome may read keys back with a prefix ("x" becomes "contract:x"): compare the tail.
    return bool(live_key) and (live_key == key or live_key.endswith(":" + key))


def find_by_uniqueness_key(
    client: metronome.Metronome, customer_id: str, key: str, label: str, include_archived: bool = True
) -> dict[str, Any] | None:
    hits = [
        c
        for c in _list_raw(client, customer_id, label, include_archived)
        if _key_matches(c.get("uniqueness_key"), key)
    ]
    active = [c for c in hits if not c.get("archived_at")]
    return (active or hits or [None])[0]


def _create_body(inputs: dict[str, Any], key: str) -> dict[str, Any]:
    fields = (
        "customer_id",
        "rate_card_id",
        "starting_at",
        "ending_before",
        "name",
        "net_payment_terms_days",
        "commits",
        "credits",
        "overrides",
        "discounts",
        "billing_provider_configuration",
        "custom_fields",
    )
    body = {k: inputs[k] for k in fields if inputs.get(k) is not None}
    body["uniqueness_key"] = key
    return body


GRANT_UPDATES = {"commits": "update_commits", "credits": "update_credits"}
# Grant fields /v2/contracts/edit can change in place (update_commits / update_credits); schedules
# change item by item. A difference anywhere else archives the grant and adds the new one.
GRANT_UPDATABLE = (
    "name",
    "description",
    "priority",
    "rate_type",
    "applicable_product_ids",
    "applicable_product_tags",
)
SCHEDULE_TIME = {"access_schedule": "starting_at", "invoice_schedule": "timestamp"}


def _counterpart(have: list[dict[str, Any]], want: dict[str, Any]) -> dict[str, Any] | None:
    """The live grant a changed declared one stands for: same product, type and name. (Not a mere
    same-product grant: dropping last year's commit and adding this year's must not rewrite the
    schedule of a commit already invoiced.)"""
    keys = ("product_id", "type", "name")
    return next((h for h in have if all(normalize(h.get(k)) == normalize(want.get(k)) for k in keys)), None)


def _grant_update(
    contract: dict[str, Any], field: str, have: dict[str, Any], want: dict[str, Any]
) -> dict[str, Any] | None:
    """The update_commits/update_credits entry turning live grant `have` into `want`; None when
    something differs that only a new grant can carry."""
    id_field = "commit_id" if field == "commits" else "credit_id"
    raw = next((g for g in contract.get(field) or [] if g.get("id") == have.get("_id")), None)
    if raw is None:
        return None
    change: dict[str, Any] = {id_field: raw["id"]}
    for key in set(strip_ids(have)) | set(want):
        if key in SCHEDULE_TIME or normalize(have.get(key)) == normalize(want.get(key)):
            continue
        if key not in GRANT_UPDATABLE or (want.get(key) is None and key in ("name", "description")):
            return None
        change[key] = want.get(key) if want.get(key) is not None else ([] if key.startswith("appl") else None)
    for key, time_key in SCHEDULE_TIME.items():
        old, new = strip_ids(have.get(key) or {}), want.get(key) or {}
        if normalize(old) == normalize(new):
            continue
        rest = {k for k in set(old) | set(new) if k != "schedule_items"}
        if not raw.get(key) or any(normalize(old.get(k)) != normalize(new.get(k)) for k in rest):
            return None
        live_items_ = sorted(raw[key].get("schedule_items") or [], key=lambda i: normalize(i.get(time_key)))
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
        if schedule:
            change[key] = schedule
    return change if len(change) > 1 else None


class ContractProvider(MetronomeProvider[Inputs]):
    kind = "Contract"
    entity = ENTITY
    tagged = False  # found by its uniqueness key; `iac_identity` is set only after a rename
    inputs_model = Inputs
    natural_key = "uniqueness_key"
    hints = HINTS

    def validate(self, inputs: Inputs, olds: dict[str, Any]) -> list[CheckFailure]:
        failures = []
        start, end = inputs.starting_at, inputs.ending_before
        if end and UNKNOWN not in (start, end) and canonical_time(end) <= canonical_time(start):
            failures.append(
                CheckFailure(
                    "ending_before",
                    f"the contract ends ({end}) before it starts ({start}); "
                    "to fix: move ending_before after starting_at or remove it",
                )
            )
        for field in ("commits", "credits"):
            for i, grant in enumerate(getattr(inputs, field) or []):
                for j, item in enumerate(grant.access_schedule.schedule_items):
                    if canonical_time(item.ending_before) <= canonical_time(item.starting_at):
                        failures.append(
                            CheckFailure(
                                f"{field}[{i}].access_schedule.schedule_items[{j}].ending_before",
                                "ends before it starts; to fix: swap or correct the dates",
                            )
                        )
        # A change of billing provider configuration is refused by diff (at preview too), which knows the
        # contract: one whose configuration was archived outside the stack is not refused (see there).
        if olds and not inputs.allow_replacement:
            new = inputs.model_dump(mode="json", exclude_none=True)
            old = self.shape(olds)
            for field in certain_replacements(old, new):
                failures.append(CheckFailure(field, replacement_refused(field, old, new)))
        return failures

    def diff_pair(self, olds: dict[str, Any], news: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """As the base, but a billing provider configuration nothing can change is no difference (for
        diff and drift alike): none declared (Metronome cannot take one off a contract), or an ended
        contract's (it bills nothing more; it keeps the one it billed through)."""
        old, new = super().diff_pair(olds, news)
        if old.get(BPC) and (not new.get(BPC) or has_ended(new)):
            new = {**new, BPC: old[BPC]}
        return old, new

    def diff_inputs(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old, new = self.diff_pair(olds, news)
        result = compute_diff(old, new, self.api_fields(), self.replace_rules)
        replaces = list(result.replaces or [])
        # Check compares with the recorded inputs; after a refresh the old side is the live contract,
        # so a hand edit (a discount added in the dashboard) can only show up here. Refused the same way.
        refused = [f for f in certain_replacements(old, new) if f in replaces]
        if refused and not new.get("allow_replacement"):
            raise MetronomeError(
                f"{self.label(news)}: "
                + "; ".join(replacement_refused(f, old, new) for f in refused)
                + ". If the live contract was changed outside this stack (a refresh brings such edits in; "
                "`metronome-iac drift` lists them), declare what it has now instead"
            )
        if not replaces and configuration_changes(old.get(BPC), new.get(BPC)):  # an edit could not do it
            if not self._bound_configuration_archived(_id, old, self.label(news)):
                raise MetronomeError(
                    f"{self.label(news)}: {configuration_change_refused(old.get(BPC), new.get(BPC))}"
                )
            # Archived outside the stack: nothing can bind this contract again, so nothing to refuse.
            new = {**new, BPC: old[BPC]}
            result = compute_diff(old, new, self.api_fields(), self.replace_rules)
        return DiffResult(changes=result.changes, replaces=replaces, stables=[], delete_before_replace=False)

    @staticmethod
    def _bound_configuration_archived(contract_id: str, old: dict[str, Any], label: str) -> bool:
        """The live contract's billing provider configuration is archived (one look-up, made only when a
        configuration change would otherwise be refused); says what that means for invoicing."""
        from .client import get_client

        try:
            live = _get(get_client(), str(old.get("customer_id")), contract_id, label) or {}
        except MetronomeError:
            return False
        bound = live.get("customer_billing_provider_configuration") or {}
        if not bound.get("archived_at"):
            return False
        print(archived_configuration_warning(label, bound["id"]), file=sys.stderr, flush=True)
        return True

    def uniqueness_key(self, inputs: dict[str, Any]) -> str:
        identity = inputs.get("identity") or "unknown"
        return contract_uniqueness_key(identity, inputs, IDENTITY_FIELDS)

    def create_object(self, client: metronome.Metronome, inputs: dict[str, Any], label: str) -> str:
        if inputs.get("custom_fields"):
            from .client import ensure_custom_field_keys

            ensure_custom_field_keys(client, ENTITY, inputs["custom_fields"], label=label)
        base_key = self.uniqueness_key(inputs)
        customer_id = inputs["customer_id"]
        # An archived contract keeps its key forever: after it, use the next suffix.
        for attempt in range(1, 6):
            key = base_key if attempt == 1 else f"{base_key}~{attempt}"
            body = _create_body(inputs, key)

            def made_by_this_create(c: metronome.Metronome, key: str = key) -> str | None:
                existing = find_by_uniqueness_key(c, customer_id, key, label, include_archived=False)
                return existing["id"] if existing and self._same_terms(existing, inputs) else None

            def still_ours(c: metronome.Metronome, object_id: str) -> bool:
                live = _get(c, customer_id, object_id, label)
                return live is not None and self._same_terms(live, inputs)

            try:
                # The uniqueness key finds another host run's contract (a 409), so the
                # Idempotency-Key is this host's own: it never replays a create made before.
                object_id, _ = create_once(
                    client,
                    label=label,
                    scope=ENTITY,
                    tag=key,
                    key=f"{create_key(key, body)}.{HOST_TOKEN}",
                    call="POST /v1/contracts/create",
                    post=lambda single, headers, sent=body: raw_request(
                        single, "POST", "/v1/contracts/create", body=sent, headers=headers, label=label
                    ),
                    find=made_by_this_create,
                    still_ours=still_ours,
                )
                return object_id
            except MetronomeError as err:
                if err.status_code != 409 or find_by_uniqueness_key(client, customer_id, key, label) is None:
                    raise
                # Archived, or live on other terms: the contract this one replaces (a discount change
                # keeps customer, rate card and start, so the key) is never taken over: next suffix.
        raise MetronomeError(f"{label}: uniqueness keys {base_key}~1..5 all belong to archived contracts")

    def _same_terms(self, live: dict[str, Any], inputs: dict[str, Any]) -> bool:
        """`live` has the terms a replacement would change (its discounts): an earlier attempt of this
        very create, not the contract being replaced."""
        have = strip_ids(to_inputs(live, self.shape(inputs)))
        return not replacing_fields(self.shape(have), self.shape(inputs))

    def computed_outputs(
        self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any]
    ) -> dict[str, Any]:
        return {"uniqueness_key": inputs.get("uniqueness_key") or self.uniqueness_key(inputs)}

    def tag_adopted(
        self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any], label: str
    ) -> None:
        pass  # contracts are identified by id/uniqueness key; nothing to tag

    def retag(self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any], label: str) -> None:
        # A renamed contract: its uniqueness key cannot change (it keeps the old name, and stays the
        # recorded `uniqueness_key` output), so the new identity is recorded in the state and on the
        # contract as `iac_identity`, which drift and export read before the key.
        from .client import IDENTITY_FIELD, set_custom_field_values

        tag = self.uniqueness_key(inputs)[len("iac:") :]
        set_custom_field_values(client, ENTITY, object_id, {IDENTITY_FIELD: tag}, label=label)

    def read_live(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        props = props or {}
        customer_id = props.get("customer_id")
        if not customer_id or customer_id == UNKNOWN:  # e.g. an import: find the owner (a scan)
            customer_id = _owner_of(client, object_id)
            if customer_id is None:
                return None
        obj = _get(client, customer_id, object_id, self.label(props))
        return strip_ids(to_inputs(obj, self.shape(props))) if obj else None

    def find_live(self, client: metronome.Metronome, key: str, value: str, label: str) -> str | None:
        raise NotImplementedError  # needs the customer: see _adopt_lookup

    def create(self, props: dict[str, Any]) -> CreateResult:
        adopt = props.get("adopt") or {}
        if adopt.get("uniqueness_key") and not adopt.get("id"):
            from .client import get_client

            found = find_by_uniqueness_key(
                get_client(),
                props["customer_id"],
                adopt["uniqueness_key"],
                self.label(props),
                include_archived=False,
            )
            if found is None:
                raise MetronomeError(
                    f"{self.label(props)}: no live contract of customer {props['customer_id']} "
                    f"has uniqueness_key {adopt['uniqueness_key']!r}"
                )
            props = {**props, "adopt": {"id": found["id"]}}
            result = super().create(props)
            result.outs["adopt"] = adopt
            result.outs["uniqueness_key"] = found.get("uniqueness_key") or adopt["uniqueness_key"]
            return result
        return super().create(props)

    def update_object(
        self,
        client: metronome.Metronome,
        object_id: str,
        olds: dict[str, Any],
        news: dict[str, Any],
        changed: list[str],
        label: str,
    ) -> dict[str, Any]:
        if not changed:
            return {}
        live_obj = _get(client, news["customer_id"], object_id, label)
        if live_obj is None:
            raise MetronomeError(
                f"{label}: contract {object_id} is archived or missing; refresh and recreate it"
            )
        live = to_inputs(live_obj, news)
        edit: dict[str, Any] = {}
        if normalize(live.get("name")) != normalize(news.get("name")):
            edit["update_contract_name"] = news.get("name") or ""  # cleared explicitly, not null
        if normalize(live.get("ending_before")) != normalize(news.get("ending_before")):
            edit["update_contract_end_date"] = news.get("ending_before")  # None = open-ended
        if "net_payment_terms_days" in changed:
            edit["update_net_payment_terms_days"] = news.get("net_payment_terms_days")
        for field, add_key, drop_key in (
            ("commits", "add_commits", "archive_commits"),
            ("credits", "add_credits", "archive_credits"),
            ("overrides", "add_overrides", "remove_overrides"),
            ("discounts", "add_discounts", None),
        ):
            have = list(live.get(field) or [])
            want = list(news.get(field) or [])
            unmatched_want = []
            for item in want:
                hit = next((h for h in have if normalize(strip_ids(h)) == normalize(item)), None)
                if hit is None:
                    unmatched_want.append(item)
                else:
                    have.remove(hit)
            if field in GRANT_UPDATES:
                # A changed commit/credit (same product, type and name) is updated in place: archiving
                # it and adding a new one would invoice the commit again.
                updates = []
                for item in list(unmatched_want):
                    hit = _counterpart(have, item)
                    change = _grant_update(live_obj, field, hit, item) if hit else None
                    if change is not None:
                        assert hit is not None
                        updates.append(change)
                        have.remove(hit)
                        unmatched_want.remove(item)
                if updates:
                    edit[GRANT_UPDATES[field]] = updates
            if unmatched_want:
                edit[add_key] = unmatched_want
            if have and drop_key:
                edit[drop_key] = [{"id": h["_id"]} for h in have if h.get("_id")]
            elif have:
                raise MetronomeError(
                    f"{label}: existing {field} cannot be removed or changed by an edit; "
                    "replace the contract (allow_replacement: true)"
                )
        bound = live_obj.get("customer_billing_provider_configuration")
        if BPC in changed and news.get(BPC) and not bound:
            edit["add_billing_provider_configuration_update"] = {  # going live: none -> one
                "billing_provider_configuration": news[BPC],
                "schedule": {"effective_at": "START_OF_CURRENT_PERIOD"},
            }
        elif BPC in changed and news.get(BPC) and bound.get("archived_at"):
            print(archived_configuration_warning(label, bound["id"]), file=sys.stderr, flush=True)
        elif BPC in changed and news.get(BPC) and not _is_bound(bound, news[BPC]) and not has_ended(news):
            # Refused at check; checked here against the live contract before anything is sent.
            live_bpc = live.get(BPC) or {BPC_ID: bound.get("id")}
            raise MetronomeError(f"{label}: {configuration_change_refused(live_bpc, news[BPC])}")
        if not edit:
            return {}
        body = {"customer_id": news["customer_id"], "contract_id": object_id, **edit}
        body["uniqueness_key"] = edit_uniqueness_key(
            object_id, {"edit": edit, "seq": self._edit_count(client, body, label)}
        )
        try:
            request(client, "POST", "/v2/contracts/edit", label=label, body=body)
        except MetronomeError as err:
            if err.status_code != 409:
                raise
            print(f"{label}: edit {body['uniqueness_key']} was already applied", file=sys.stderr)
        return {}

    @staticmethod
    def _edit_count(client: metronome.Metronome, body: dict[str, Any], label: str) -> int:
        """How many edits the contract has had: makes a repeated identical change a new edit."""
        try:
            history = request(
                client,
                "POST",
                "/v2/contracts/getEditHistory",
                label=label,
                body={"customer_id": body["customer_id"], "contract_id": body["contract_id"]},
            )
        except MetronomeError:
            return -1
        return len(data_of(history) or [])

    def archive_object(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any], label: str
    ) -> None:
        # void_invoices=true: we only get here because the user removed the contract from the
        # program (or allowed its replacement); Metronome requires the choice to be explicit.
        archive(
            client,
            "/v1/contracts/archive",
            {"customer_id": props["customer_id"], "contract_id": object_id, "void_invoices": True},
            label=label,
        )


class Contract(pulumi.dynamic.Resource, module="metronome", name="Contract"):
    """A Metronome contract.

    Project additions: `uniqueness_key` (output) is "iac:<identity>#<fingerprint>", so a retried
    create never duplicates (a 409 takes the existing contract over). `adopt` ({"id": ...} or
    {"uniqueness_key": ...}) takes over a live contract of `customer_id`. `allow_replacement`
    (default false): changing customer_id, rate_card_id or starting_at (or removing a discount)
    replaces the contract, which archives the old one and voids its invoices; check refuses that
    unless allow_replacement is true. Other changes go through /v2/contracts/edit with a
    uniqueness key per edit. Deleting archives with void_invoices=true.
    """

    customer_id: pulumi.Output[str]
    rate_card_id: pulumi.Output[str]
    starting_at: pulumi.Output[str]
    ending_before: pulumi.Output[str]
    name: pulumi.Output[str]
    net_payment_terms_days: pulumi.Output[float]
    commits: pulumi.Output[list]
    credits: pulumi.Output[list]
    overrides: pulumi.Output[list]
    discounts: pulumi.Output[list]
    billing_provider_configuration: pulumi.Output[dict]
    custom_fields: pulumi.Output[dict]
    uniqueness_key: pulumi.Output[str]
    adopt_report: pulumi.Output[list]

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        customer_id: pulumi.Input[str],
        starting_at: pulumi.Input[str],
        rate_card_id: pulumi.Input[str] | None = None,
        ending_before: pulumi.Input[str] | None = None,
        name: pulumi.Input[str] | None = None,
        net_payment_terms_days: pulumi.Input[float] | None = None,
        commits: pulumi.Input[list] | None = None,
        credits: pulumi.Input[list] | None = None,
        overrides: pulumi.Input[list] | None = None,
        discounts: pulumi.Input[list] | None = None,
        billing_provider_configuration: pulumi.Input[dict] | None = None,
        custom_fields: pulumi.Input[dict] | None = None,
        allow_replacement: pulumi.Input[bool] | None = None,
        adopt: pulumi.Input[dict] | None = None,
    ) -> None:
        props = declare_props(
            resource_name,
            dict(
                customer_id=customer_id,
                rate_card_id=rate_card_id,
                starting_at=starting_at,
                ending_before=ending_before,
                name=name,
                net_payment_terms_days=net_payment_terms_days,
                commits=commits,
                credits=credits,
                overrides=overrides,
                discounts=discounts,
                billing_provider_configuration=billing_provider_configuration,
                custom_fields=custom_fields,
                allow_replacement=allow_replacement,
                adopt=adopt,
            ),
            computed=("uniqueness_key",),
        )
        super().__init__(ContractProvider(), resource_name, props, opts)


__all__ = [
    "Contract",
    "ContractProvider",
    "Inputs",
    "active_contracts",
    "list_objects",
    "read_object",
]
