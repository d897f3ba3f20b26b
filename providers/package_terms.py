"""A package's terms, relative to the start of each contract made from it (metronome/types/v1/
package_create_params.py), and how the package read-back (package_retrieve_response.py) maps onto them.

Every date is an offset from the contract start (`{unit: DAYS|WEEKS|MONTHS|YEARS, value}`). Items may carry
a `temporary_id` that overrides (`commit_ids`, `recurring_commit_ids`, `any_commit_or_credit_ids`) and
recurring grants (`subscription_config.subscription_id`) refer to within the same package; Metronome reads
them back as the template ids of the items they named.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from .base import Timestamp
from .client import USD_CENTS_ID

Unit = Literal["DAYS", "WEEKS", "MONTHS", "YEARS"]
Frequency = Literal["MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY"]
RateTarget = Literal["COMMIT_RATE", "LIST_RATE"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Offset(_Model):
    unit: Unit
    value: int


class _Priced(_Model):
    credit_type_id: str | None = None

    @model_validator(mode="after")
    def _usd_is_unset(self) -> _Priced:
        # USD (cents) written out is the default left out: both read back the same.
        if self.credit_type_id == USD_CENTS_ID:
            self.credit_type_id = None
        return self


class AccessItem(_Model):
    amount: float
    starting_at_offset: Offset
    duration: Offset


class AccessSchedule(_Priced):
    schedule_items: list[AccessItem]
    access_type: Literal["SPEND", "QUANTITY"] | None = None


class ChargeItem(_Model):
    date_offset: Offset
    quantity: float
    unit_price: float


class ChargeSchedule(_Priced):
    schedule_items: list[ChargeItem]
    do_not_invoice: bool | None = None

    @model_validator(mode="after")
    def _invoiced_is_unset(self) -> ChargeSchedule:
        if self.do_not_invoice is False:  # the default, read back explicitly
            self.do_not_invoice = None
        return self


class Specifier(_Model):
    product_id: str | None = None
    product_tags: list[str] | None = None
    pricing_group_values: dict[str, str] | None = None
    presentation_group_values: dict[str, str] | None = None


class _Grant(_Model):
    product_id: str
    name: str | None = None
    description: str | None = None
    priority: float | None = None
    rate_type: RateTarget | None = None
    applicable_product_ids: list[str] | None = None
    applicable_product_tags: list[str] | None = None
    specifiers: list[Specifier] | None = None
    custom_fields: dict[str, str] | None = None


class Commit(_Grant):
    type: Literal["PREPAID", "POSTPAID"]
    access_schedule: AccessSchedule
    invoice_schedule: ChargeSchedule | None = None  # none on a PREPAID commit: complimentary
    rollover_fraction: float | None = None
    temporary_id: str | None = None


class Credit(_Grant):
    access_schedule: AccessSchedule


class ScheduledCharge(_Model):
    product_id: str
    schedule: ChargeSchedule
    name: str | None = None
    description: str | None = None
    custom_fields: dict[str, str] | None = None


class OverrideSpecifier(Specifier):
    billing_frequency: Frequency | None = None
    commit_ids: list[str] | None = None
    recurring_commit_ids: list[str] | None = None
    any_commit_or_credit_ids: list[str] | None = None


class OverrideTier(_Model):
    multiplier: float
    size: float | None = None


class Override(_Model):
    override_specifiers: list[OverrideSpecifier]
    starting_at_offset: Offset
    duration: Offset | None = None
    type: Literal["OVERWRITE", "MULTIPLIER", "TIERED"] | None = None
    multiplier: float | None = None
    overwrite_rate: dict[str, Any] | None = None
    tiers: list[OverrideTier] | None = None
    entitled: bool | None = None
    is_commit_specific: bool | None = None
    priority: float | None = None
    target: RateTarget | None = None

    @model_validator(mode="after")
    def _inferred_type(self) -> Override:
        """Metronome infers the type from what is given and echoes it: state it the same way."""
        if self.type is None:
            self.type = "OVERWRITE" if self.overwrite_rate else "TIERED" if self.tiers else "MULTIPLIER"
        return self


class RecurringAmount(_Priced):
    unit_price: float
    quantity: float | None = None  # required unless a subscription_config is given
    access_type: Literal["SPEND", "QUANTITY"] | None = None


class CommitDuration(_Model):
    value: float
    unit: Literal["PERIODS"] | None = None


class SeatIncrease(_Model):
    is_prorated: bool


class SubscriptionConfig(_Model):
    subscription_id: str  # a subscription's temporary_id
    apply_seat_increase_config: SeatIncrease
    allocation: Literal["INDIVIDUAL", "POOLED"] | None = None


class RecurringCredit(_Grant):
    priority: float
    access_amount: RecurringAmount
    commit_duration: CommitDuration
    starting_at_offset: Offset
    duration: Offset | None = None
    proration: Literal["NONE", "FIRST", "LAST", "FIRST_AND_LAST"] | None = None
    proration_rounding: dict[str, Any] | None = None
    recurrence_frequency: Literal["MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY", "DAILY"] | None = None
    rollover_fraction: float | None = None
    subscription_config: SubscriptionConfig | None = None
    temporary_id: str | None = None


class RecurringCommit(RecurringCredit):
    invoice_amount: dict[str, Any] | None = None


class Proration(_Model):
    is_prorated: bool | None = None
    invoice_behavior: Literal["BILL_IMMEDIATELY", "BILL_ON_NEXT_COLLECTION_DATE"] | None = None
    rounding: dict[str, Any] | None = None


class SubscriptionRate(_Model):
    billing_frequency: Frequency
    product_id: str  # a SUBSCRIPTION product


class Subscription(_Model):
    collection_schedule: Literal["ADVANCE", "ARREARS"]
    proration: Proration
    subscription_rate: SubscriptionRate
    initial_quantity: float | None = None
    quantity_management_mode: Literal["SEAT_BASED", "QUANTITY_ONLY"] | None = None
    seat_config: dict[str, Any] | None = None
    starting_at_offset: Offset | None = None
    duration: Offset | None = None
    billing_cycle_config: dict[str, Any] | None = None
    name: str | None = None
    description: str | None = None
    custom_fields: dict[str, str] | None = None
    temporary_id: str | None = None


class Alias(_Model):
    """An alias names the package for contracts starting in [starting_at, ending_before)."""

    name: str
    starting_at: Timestamp | None = None
    ending_before: Timestamp | None = None


class UsageStatementSchedule(_Model):
    frequency: Frequency
    day: Literal["FIRST_OF_MONTH", "CONTRACT_START", "CUSTOM_DATE"] | None = None


# ---------------------------------------------------------------------------------------------
# Temporary ids: which item each reference names
# ---------------------------------------------------------------------------------------------

# Where a reference may point: {field of an override specifier or subscription config: item lists}.
REFERENCES: dict[str, tuple[str, ...]] = {
    "commit_ids": ("commits",),
    "recurring_commit_ids": ("recurring_commits",),
    "any_commit_or_credit_ids": ("commits", "recurring_commits", "recurring_credits"),
    "subscription_id": ("subscriptions",),
}
# How the read-back names each reference field.
TEMPLATE_FIELDS = {
    "commit_template_ids": "commit_ids",
    "recurring_commit_template_ids": "recurring_commit_ids",
    "any_commit_or_credit_template_ids": "any_commit_or_credit_ids",
    "subscription_template_id": "subscription_id",
}
ITEM_LISTS = (
    "commits",
    "credits",
    "recurring_commits",
    "recurring_credits",
    "subscriptions",
    "overrides",
    "scheduled_charges",
)


def temporary_ids(inputs: dict[str, Any], lists: tuple[str, ...]) -> set[str]:
    return {item["temporary_id"] for f in lists for item in inputs.get(f) or [] if item.get("temporary_id")}


def dangling_references(inputs: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(path, reference, the fix) for every reference that names no temporary_id of the package."""
    out = []

    def check(path: str, ref: str, field: str) -> None:
        known = sorted(temporary_ids(inputs, REFERENCES[field]))
        if ref not in known:
            where = " or ".join(REFERENCES[field])
            out.append((path, ref, f"name a temporary_id of the package's {where} ({known or 'none given'})"))

    for i, override in enumerate(inputs.get("overrides") or []):
        for j, spec in enumerate(override.get("override_specifiers") or []):
            for field in ("commit_ids", "recurring_commit_ids", "any_commit_or_credit_ids"):
                for n, ref in enumerate(spec.get(field) or []):
                    check(f"overrides[{i}].override_specifiers[{j}].{field}[{n}]", ref, field)
    for section in ("recurring_commits", "recurring_credits"):
        for i, item in enumerate(inputs.get(section) or []):
            ref = (item.get("subscription_config") or {}).get("subscription_id")
            if ref is not None:
                check(f"{section}[{i}].subscription_config.subscription_id", ref, "subscription_id")
    return out


# ---------------------------------------------------------------------------------------------
# Read-back -> input shape
# ---------------------------------------------------------------------------------------------


def _plain(value: Any, names: dict[str, str]) -> Any:
    """A read-back value in input shape: ids dropped, {id, name} references as ids, template ids as the
    temporary ids the declaration gave (`names`), an override's `override_tiers` as `tiers`."""
    if isinstance(value, list):
        return [_plain(v, names) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None or key == "id":
            continue
        if key == "product" and isinstance(item, dict):
            out["product_id"] = item.get("id")
        elif key == "credit_type" and isinstance(item, dict):
            if item.get("id") != USD_CENTS_ID:
                out["credit_type_id"] = item.get("id")
        elif key in TEMPLATE_FIELDS:
            refs = item if isinstance(item, list) else [item]
            mapped = [names.get(r, r) for r in refs]
            out[TEMPLATE_FIELDS[key]] = mapped if isinstance(item, list) else mapped[0]
        elif key == "override_tiers":
            out["tiers"] = _plain(item, names)
        else:
            out[key] = _plain(item, names)
    return out


def terms_to_inputs(obj: dict[str, Any], declared: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The item lists of a package read-back in input shape. Each live item's template id is named by the
    `temporary_id` the declaration gave the item in the same place (else by the id itself)."""
    names: dict[str, str] = {}
    for field in ("commits", "recurring_commits", "recurring_credits", "subscriptions"):
        wanted = (declared or {}).get(field) or []
        for i, item in enumerate(obj.get(field) or []):
            if item.get("id"):
                temporary = wanted[i].get("temporary_id") if i < len(wanted) else None
                names[item["id"]] = temporary or item["id"]
    out = {}
    for field in ITEM_LISTS:
        items = []
        for item in obj.get(field) or []:
            plain = _plain(item, names)
            if item.get("id") in names:
                plain["temporary_id"] = names[item["id"]]
            items.append(plain)
        if items:
            out[field] = items
    return out
