"""The stack model: what `stacks/<stack>/{catalog,environment}.yaml` hold, entry by entry, and `Stack`.

`catalog.yaml` is the promotable part (billable metrics, products, rate cards; packages, alerts and
notifications are entries of `catalog_packages.py`); `environment.yaml` is per environment (settings,
Stripe, customers, contracts) and never promoted. Entries refer to each other by catalog name. The tables
at the end say which sections each file holds, their labels in messages and which `adopt` keys each kind
takes; `catalog_validator.py` reads the files by them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from metronome_iac.catalog_packages import ADOPT_KEYS as PACKAGE_ADOPT_KEYS
from metronome_iac.catalog_packages import CATALOG_SECTIONS as PACKAGE_SECTIONS
from metronome_iac.catalog_packages import LABELS as PACKAGE_LABELS
from metronome_iac.catalog_packages import Alert, Notification, Package
from metronome_iac.catalog_types import Alias, CustomFields, HourTimestamp, Model, Name, Timestamp

CATALOG_FILE = "catalog.yaml"
ENVIRONMENT_FILE = "environment.yaml"


# --------------------------------------------------------------------------------------------------
# catalog.yaml (promotable)


class EventTypeFilter(Model):
    in_values: list[str] | None = None
    not_in_values: list[str] | None = None


class PropertyFilter(Model):
    name: str
    exists: bool | None = None
    in_values: list[str] | None = None
    not_in_values: list[str] | None = None


class BillableMetric(Model):
    name: Name
    display_name: str | None = None
    previous_names: list[Name] | None = None  # earlier catalog names (renames keep the object)
    aggregation_type: Literal["COUNT", "SUM", "MAX", "LATEST", "UNIQUE"]
    aggregation_key: str | None = None
    event_type_filter: EventTypeFilter | None = None
    property_filters: list[PropertyFilter] | None = None
    group_keys: list[list[str]] | None = None
    # The Stripe Billing Meter this metric measures the same usage as (written by `import-stripe`, or by
    # hand): `metronome-iac reconcile` compares the two per customer and window. Never sent to Metronome,
    # so changing it changes nothing live. One metric per meter.
    stripe_meter: str | None = Field(default=None, pattern=r"^mtr_[A-Za-z0-9_]+$")
    custom_fields: CustomFields | None = None
    adopt: dict[str, str] | None = None

    @property
    def metronome_name(self) -> str:
        return self.display_name or self.name


class QuantityConversion(Model):
    conversion_factor: float = Field(gt=0)
    operation: Literal["MULTIPLY", "DIVIDE"]
    name: str | None = None


class QuantityRounding(Model):
    decimal_places: int = Field(ge=0)
    rounding_method: Literal["ROUND_UP", "ROUND_DOWN", "ROUND_HALF_UP"]


class Product(Model):
    name: Name
    display_name: str | None = None
    previous_names: list[Name] | None = None  # earlier catalog names (renames keep the object)
    type: Literal["USAGE", "FIXED", "COMPOSITE", "SUBSCRIPTION", "PRO_SERVICE"]
    billable_metric: str | None = None  # catalog name of a billable metric (USAGE only)
    pricing_group_key: list[str] | None = None
    presentation_group_key: list[str] | None = None
    quantity_conversion: QuantityConversion | None = None
    quantity_rounding: QuantityRounding | None = None
    tags: list[str] | None = None
    is_refundable: bool | None = None
    composite_products: list[str] | None = None  # catalog names (COMPOSITE only)
    composite_tags: list[str] | None = None
    custom_fields: CustomFields | None = None
    adopt: dict[str, str] | None = None

    @property
    def metronome_name(self) -> str:
        return self.display_name or self.name


class Tier(Model):
    size: float | None = Field(default=None, gt=0)
    price: float


class CommitRate(Model):
    rate_type: Literal["FLAT", "PERCENTAGE", "SUBSCRIPTION", "TIERED", "TIERED_PERCENTAGE", "CUSTOM"]
    price: float | None = None
    tiers: list[Tier] | None = None


RateType = Literal["FLAT", "PERCENTAGE", "SUBSCRIPTION", "TIERED", "TIERED_PERCENTAGE", "CUSTOM"]


class Rate(Model):
    product: str  # catalog name of a product
    starting_at: Timestamp
    ending_before: Timestamp | None = None
    entitled: bool = True
    rate_type: RateType
    price: float | None = None
    tiers: list[Tier] | None = None
    pricing_group_values: dict[str, str] | None = None
    credit_type_id: str | None = None  # a custom pricing unit; needs a conversion on the rate card
    commit_rate: CommitRate | None = None
    billing_frequency: Literal["MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY"] | None = None
    quantity: float | None = None
    is_prorated: bool | None = None
    custom_rate: dict[str, Any] | None = None


class CreditTypeConversion(Model):
    custom_credit_type_id: str
    fiat_per_custom_credit: float = Field(gt=0)


class RateCardAlias(Model):
    name: str
    starting_at: Timestamp | None = None
    ending_before: Timestamp | None = None


class RateCard(Model):
    name: Name
    display_name: str | None = None
    previous_names: list[Name] | None = None  # earlier catalog names (renames keep the object)
    description: str | None = None
    fiat_credit_type_id: str | None = None
    credit_type_conversions: list[CreditTypeConversion] | None = None
    aliases: list[RateCardAlias] | None = None
    rates: list[Rate] = Field(default_factory=list)
    custom_fields: CustomFields | None = None
    adopt: dict[str, str] | None = None

    @property
    def metronome_name(self) -> str:
        return self.display_name or self.name


class Catalog(Model):
    billable_metrics: list[BillableMetric] = Field(default_factory=list)
    products: list[Product] = Field(default_factory=list)
    rate_cards: list[RateCard] = Field(default_factory=list)
    # packages, alerts and notifications: entries in catalog_packages.py
    packages: list[Package] = Field(default_factory=list)
    alerts: list[Alert] = Field(default_factory=list)
    notifications: list[Notification] = Field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# environment.yaml (per environment)


class Settings(Model):
    # Hour-aligned time used for in-place product updates (Metronome versions products by time).
    product_update_starting_at: HourTimestamp | None = None
    # Default payment terms for contracts that do not set their own.
    net_payment_terms_days: int | None = Field(default=None, ge=0)


CollectionMethod = Literal["charge_automatically", "send_invoice"]


class Stripe(Model):
    expected_account_id: str = Field(pattern=r"^acct_[A-Za-z0-9]+$")
    collection_method: CollectionMethod = "charge_automatically"
    go_live: bool = False
    # Go-live condition: `go_live: true` is refused at preview unless the last `metronome-iac reconcile`
    # of this stack (its record, stacks/<stack>/reconcile.json) passed over at least this many whole days
    # ending at most 2 days before the preview. It only gates the switch: once live it changes nothing.
    require_reconciled_days: int | None = Field(default=None, ge=1)
    # Invoices sent to Stripe stay drafts there (true) or auto-advance (false). Metronome's own default,
    # when nothing sets it, is drafts; the stack always sets it.
    leave_invoices_in_draft: bool = False
    # With several Stripe accounts connected to Metronome: the delivery method id of this one.
    delivery_method_id: str | None = None


class Customer(Model):
    name: Name
    display_name: str | None = None
    previous_names: list[Name] | None = None  # earlier catalog names (renames keep the object)
    ingest_aliases: list[Alias] = Field(default_factory=list)
    external_id: Alias | None = None
    stripe_customer_id: str | None = Field(default=None, pattern=r"^cus_[A-Za-z0-9]+$")
    stripe_collection_method: CollectionMethod | None = None
    custom_fields: CustomFields | None = None
    alerts: list[Alert] | None = None  # this customer's alerts (catalog_packages.py)
    adopt: dict[str, str] | None = None

    @property
    def metronome_name(self) -> str:
        return self.display_name or self.name


class ScheduleItem(Model):
    amount: float = Field(ge=0)
    starting_at: Timestamp
    ending_before: Timestamp


class AccessSchedule(Model):
    schedule_items: list[ScheduleItem] = Field(min_length=1)
    credit_type_id: str | None = None
    access_type: Literal["SPEND", "QUANTITY"] | None = None


class InvoiceScheduleItem(Model):
    timestamp: Timestamp
    amount: float | None = None
    unit_price: float | None = None
    quantity: float | None = None


class RecurringSchedule(Model):
    amount_distribution: Literal["DIVIDED", "DIVIDED_ROUNDED", "EACH"]
    frequency: Literal["MONTHLY", "QUARTERLY", "SEMI_ANNUAL", "ANNUAL"]
    starting_at: Timestamp
    ending_before: Timestamp
    amount: float | None = None
    unit_price: float | None = None
    quantity: float | None = None


class InvoiceSchedule(Model):
    credit_type_id: str | None = None
    do_not_invoice: bool | None = None
    schedule_items: list[InvoiceScheduleItem] | None = None
    recurring_schedule: RecurringSchedule | None = None


class Commit(Model):
    product: str
    type: Literal["PREPAID", "POSTPAID"]
    name: str | None = None
    description: str | None = None
    priority: float | None = None
    rollover_fraction: float | None = Field(default=None, ge=0, le=1)
    rate_type: Literal["COMMIT_RATE", "LIST_RATE"] | None = None
    applicable_products: list[str] | None = None  # catalog names
    applicable_product_tags: list[str] | None = None
    access_schedule: AccessSchedule
    invoice_schedule: InvoiceSchedule | None = None


class Credit(Model):
    product: str
    name: str | None = None
    description: str | None = None
    priority: float | None = None
    applicable_products: list[str] | None = None
    applicable_product_tags: list[str] | None = None
    access_schedule: AccessSchedule


class OverwriteRate(Model):
    rate_type: RateType
    price: float | None = None
    tiers: list[Tier] | None = None
    credit_type_id: str | None = None
    quantity: float | None = None  # SUBSCRIPTION rates
    is_prorated: bool | None = None  # SUBSCRIPTION rates
    custom_rate: dict[str, Any] | None = None  # CUSTOM rates


class OverrideTier(Model):
    multiplier: float = Field(ge=0)
    size: float | None = None


class OverrideSpecifier(Model):
    product: str | None = None  # catalog name
    product_tags: list[str] | None = None
    pricing_group_values: dict[str, str] | None = None
    presentation_group_values: dict[str, str] | None = None
    billing_frequency: Literal["MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY"] | None = None


class Override(Model):
    starting_at: Timestamp
    ending_before: Timestamp | None = None
    type: Literal["OVERWRITE", "MULTIPLIER", "TIERED"]
    product: str | None = None
    applicable_product_tags: list[str] | None = None
    override_specifiers: list[OverrideSpecifier] | None = None  # instead of product / tags
    multiplier: float | None = Field(default=None, ge=0)
    overwrite_rate: OverwriteRate | None = None
    tiers: list[OverrideTier] | None = None
    entitled: bool | None = None
    is_commit_specific: bool | None = None
    priority: float | None = None
    target: Literal["COMMIT_RATE", "LIST_RATE"] | None = None

    @model_validator(mode="after")
    def _scoped(self) -> Override:
        if self.product is None and not self.applicable_product_tags and not self.override_specifiers:
            raise ValueError(
                "an override applies to a product, to applicable_product_tags or to override_specifiers: "
                "set one"
            )
        return self


class Discount(Model):
    product: str
    name: str | None = None
    schedule: InvoiceSchedule


class Contract(Model):
    name: Name
    display_name: str | None = None
    previous_names: list[Name] | None = None  # earlier catalog names (renames keep the object)
    customer: str  # catalog name of a customer
    rate_card: str | None = None  # catalog name of a rate card
    # Made from a package instead (a package's catalog name or alias): takes its rate card and terms.
    package: str | None = None
    starting_at: Timestamp
    ending_before: Timestamp | None = None
    net_payment_terms_days: int | None = Field(default=None, ge=0)
    commits: list[Commit] | None = None
    credits: list[Credit] | None = None
    overrides: list[Override] | None = None
    discounts: list[Discount] | None = None
    # Terms in metronome-sdk's shapes, catalog names for products (checked in catalog_contracts.py).
    scheduled_charges: list[dict[str, Any]] | None = None
    subscriptions: list[dict[str, Any]] | None = None
    recurring_commits: list[dict[str, Any]] | None = None
    recurring_credits: list[dict[str, Any]] | None = None
    spend_threshold_configuration: dict[str, Any] | None = None
    prepaid_balance_threshold_configuration: dict[str, Any] | None = None
    usage_statement_schedule: dict[str, Any] | None = None
    custom_fields: CustomFields | None = None
    allow_replacement: bool = False
    # A change that drops a term and adds one in its place bills it again: refused unless meant.
    allow_reinvoice: bool = False
    adopt: dict[str, str] | None = None

    @property
    def metronome_name(self) -> str | None:
        # A contract's Metronome name is optional: only display_name sets it.
        return self.display_name


class Environment(Model):
    settings: Settings = Field(default_factory=Settings)
    stripe: Stripe | None = None
    customers: list[Customer] = Field(default_factory=list)
    contracts: list[Contract] = Field(default_factory=list)


@dataclass
class Stack:
    """A loaded, validated stack directory."""

    name: str
    path: Path
    catalog: Catalog
    environment: Environment

    # convenience look-ups by catalog name
    def metric(self, name: str) -> BillableMetric:
        return next(m for m in self.catalog.billable_metrics if m.name == name)

    def product(self, name: str) -> Product:
        return next(p for p in self.catalog.products if p.name == name)

    def rate_card(self, name: str) -> RateCard:
        return next(r for r in self.catalog.rate_cards if r.name == name)

    def customer(self, name: str) -> Customer:
        return next(c for c in self.environment.customers if c.name == name)


# --------------------------------------------------------------------------------------------------
# the files' sections

# Each section's label in messages: "<label> '<name>'".
KIND_LABELS = {
    "billable_metrics": "billable metric",
    "products": "product",
    "rate_cards": "rate card",
    "customers": "customer",
    "contracts": "contract",
}

# Which `adopt` keys each kind accepts (the provider's natural keys).
ADOPT_KEYS: dict[str, set[str]] = {
    "billable_metrics": {"id", "name"},
    "products": {"id", "name"},
    "rate_cards": {"id", "name"},
    "customers": {"id", "ingest_alias"},
    "contracts": {"id", "uniqueness_key"},
}

# The list sections of each file and their entry model.
SECTIONS: dict[str, dict[str, type[Model]]] = {
    CATALOG_FILE: {"billable_metrics": BillableMetric, "products": Product, "rate_cards": RateCard},
    ENVIRONMENT_FILE: {"customers": Customer, "contracts": Contract},
}
# Packages, alerts and notifications (catalog_packages.py): promotable sections of catalog.yaml.
KIND_LABELS.update(PACKAGE_LABELS)
ADOPT_KEYS.update(PACKAGE_ADOPT_KEYS)
SECTIONS[CATALOG_FILE].update(PACKAGE_SECTIONS)
# The sections of each file that hold one mapping, not a list.
SINGLE: dict[str, dict[str, type[Model]]] = {
    CATALOG_FILE: {},
    ENVIRONMENT_FILE: {"settings": Settings, "stripe": Stripe},
}
