"""A contract's threshold billing and statement cadence: `spend_threshold_configuration` (a charge each
time usage reaches an amount), `prepaid_balance_threshold_configuration` (auto-recharge: a charge that
tops the balance up when it falls to an amount) and `usage_statement_schedule`.

Schema from metronome-sdk 4.12 (`types/shared_params/spend_threshold_configuration.py`,
`prepaid_balance_threshold_configuration.py`, `payment_gate_config.py`; the usage statement schedule in
`types/v1/contract_create_params.py`). A threshold configuration is added by an edit where the contract has
none (`add_spend_threshold_configuration` / `add_prepaid_balance_threshold_configuration`) and changed in
place (`update_...`, any of its fields); Metronome cannot remove one, so one the catalog drops is disabled
(`is_enabled: false`), and a disabled one nobody declares reads back as none. An amendment can do none of
it. The usage statement schedule is set at creation only (no edit key): changing it replaces the contract.

A configuration gated on payment (`payment_gate_config.payment_gate_type` STRIPE or EXTERNAL) holds the
commit it creates until the payment succeeds: `payment_gated` names such terms, for `drift`'s reminder of
the webhooks they need (docs/stripe-migration.md, section 5).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Timestamp
from .diff import normalize, project, without_empty

RateTarget = Literal["COMMIT_RATE", "LIST_RATE"]
CONFIGURATIONS = ("spend_threshold_configuration", "prepaid_balance_threshold_configuration")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Specifier(_Model):
    product_id: str | None = None
    product_tags: list[str] | None = None
    pricing_group_values: dict[str, str] | None = None
    presentation_group_values: dict[str, str] | None = None


class CommitDuration(_Model):
    unit: Literal["DAYS", "WEEKS", "MONTHS", "YEARS"]
    value: int


class ThresholdCommit(_Model):
    """The commit each threshold charge creates (BaseThresholdCommit, plus the prepaid kind's extras)."""

    product_id: str
    name: str | None = None
    description: str | None = None
    priority: float | None = None


class PrepaidCommit(ThresholdCommit):
    applicable_product_ids: list[str] | None = None
    applicable_product_tags: list[str] | None = None
    duration: CommitDuration | None = None  # none: a year
    rate_type: RateTarget | None = None
    rollover_fraction: float | None = Field(default=None, ge=0, le=1)
    specifiers: list[Specifier] | None = None


class PrecalculatedTax(_Model):
    tax_amount: float
    tax_name: str | None = None


class StripeGate(_Model):
    payment_type: Literal["INVOICE", "PAYMENT_INTENT"]
    invoice_metadata: dict[str, str] | None = None
    on_session_payment: bool | None = None


class PaymentGateConfig(_Model):
    payment_gate_type: Literal["NONE", "STRIPE", "EXTERNAL"]
    precalculated_tax_config: PrecalculatedTax | None = None
    stripe_config: StripeGate | None = None
    tax_type: Literal["NONE", "STRIPE", "ANROK", "PRECALCULATED"] | None = None


class DiscountCap(_Model):
    amount: float
    spend_tracker_alias: str


class DiscountConfiguration(_Model):
    payment_fraction: float
    cap: DiscountCap | None = None


class CustomFieldFilter(_Model):
    entity: Literal["Commit", "ContractCredit", "ContractCreditOrCommit"]
    key: str
    value: str


class BalanceExclude(_Model):
    custom_field_filters: list[CustomFieldFilter]


class BalanceSpecifier(_Model):
    exclude: list[BalanceExclude]


class SpendThresholdConfiguration(_Model):
    commit: ThresholdCommit
    is_enabled: bool
    payment_gate_config: PaymentGateConfig
    threshold_amount: float
    discount_configuration: DiscountConfiguration | None = None


class PrepaidBalanceThresholdConfiguration(_Model):
    commit: PrepaidCommit
    is_enabled: bool
    payment_gate_config: PaymentGateConfig
    recharge_to_amount: float
    threshold_amount: float
    custom_credit_type_id: str | None = None
    discount_configuration: DiscountConfiguration | None = None
    threshold_balance_specifiers: list[BalanceSpecifier] | None = None


class UsageStatementSchedule(_Model):
    frequency: Literal["MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY"]
    day: Literal["FIRST_OF_MONTH", "CONTRACT_START", "CUSTOM_DATE"] | None = None  # not read back
    billing_anchor_date: Timestamp | None = None  # required with CUSTOM_DATE
    invoice_generation_starting_at: Timestamp | None = None  # not read back


DEFAULT_STATEMENTS = {"frequency": "MONTHLY"}  # what Metronome sets when none is given
# Sent at creation, never read back (ContractV2.UsageStatementSchedule has neither): kept as recorded.
UNREAD_STATEMENT_KEYS = ("day", "invoice_generation_starting_at")


def problems(inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, what is wrong and the fix) for what Metronome refuses in these terms."""
    out = []
    schedule = inputs.get("usage_statement_schedule") or {}
    if schedule.get("day") == "CUSTOM_DATE" and not schedule.get("billing_anchor_date"):
        out.append(
            (
                "usage_statement_schedule.billing_anchor_date",
                "required with day CUSTOM_DATE; set it or pick a day",
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Read-back
# ---------------------------------------------------------------------------------------------


def to_threshold_terms(contract: dict[str, Any], desired: dict[str, Any] | None = None) -> dict[str, Any]:
    """The live configurations and statement schedule in input shape, projected onto `desired` (what
    Metronome fills in is no difference); a disabled configuration nobody declares reads back as none
    (the stack disables what it drops: Metronome cannot remove it)."""
    desired = desired or {}
    out: dict[str, Any] = {}
    for field in CONFIGURATIONS:
        live = without_empty(contract.get(field) or {})
        if live and desired.get(field):
            out[field] = project(live, desired[field])  # what Metronome fills in is no difference
        elif live and live.get("is_enabled"):
            out[field] = live
    schedule = contract.get("usage_statement_schedule") or {}
    declared = desired.get("usage_statement_schedule")
    if schedule:
        shaped = {"frequency": schedule.get("frequency")}
        if (declared or {}).get("billing_anchor_date"):
            shaped["billing_anchor_date"] = schedule.get("billing_anchor_date")
        shaped.update({k: declared[k] for k in UNREAD_STATEMENT_KEYS if (declared or {}).get(k)})
        if declared or shaped != DEFAULT_STATEMENTS:
            out["usage_statement_schedule"] = shaped
    return out


# ---------------------------------------------------------------------------------------------
# Edit building
# ---------------------------------------------------------------------------------------------


def threshold_edit(have: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """The /v2/contracts/edit keys turning the configurations of `have` into those of `want`: add where
    the contract has none, update the fields that differ, disable one no longer declared."""
    edit: dict[str, Any] = {}
    for field in CONFIGURATIONS:
        old, new = have.get(field), want.get(field)
        if normalize(old) == normalize(new):
            continue
        if not old:
            edit[f"add_{field}"] = new
        elif not new:
            if old.get("is_enabled"):
                edit[f"update_{field}"] = {"is_enabled": False}
        else:
            edit[f"update_{field}"] = {
                k: new.get(k) for k in set(old) | set(new) if normalize(old.get(k)) != normalize(new.get(k))
            }
    return edit


def amend_cannot(have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    return [
        f"add or change the {key.removeprefix('add_').removeprefix('update_')}"
        for key in threshold_edit(have, want)
    ]


def payment_gated(terms: dict[str, Any]) -> list[str]:
    """The threshold configurations of `terms` (a contract's or a package's inputs) whose commits wait for a
    payment: their field names with the gate (e.g. "prepaid_balance_threshold_configuration (STRIPE)")."""
    out = []
    for field in CONFIGURATIONS:
        gate = ((terms.get(field) or {}).get("payment_gate_config") or {}).get("payment_gate_type")
        if gate in ("STRIPE", "EXTERNAL"):
            out.append(f"{field} ({gate})")
    return out
