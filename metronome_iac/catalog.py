"""Catalog models and loader for `stacks/<stack>/{catalog,environment}.yaml`.

`catalog.yaml` is the promotable part (billable metrics, products, rate cards); `environment.yaml` is
per environment (settings, Stripe, customers, contracts) and never promoted. Entries refer to each other
by catalog name. `load_stack` validates everything (schema, enums, cross references, dates) before any
resource is declared and raises one `CatalogError` listing every problem with file, entry, field, line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from metronome_iac.catalog_contracts import check_contract
from metronome_iac.catalog_packages import ADOPT_KEYS as PACKAGE_ADOPT_KEYS
from metronome_iac.catalog_packages import CATALOG_SECTIONS as PACKAGE_SECTIONS
from metronome_iac.catalog_packages import LABELS as PACKAGE_LABELS
from metronome_iac.catalog_packages import (
    Alert,
    Notification,
    Package,
    check_alert,
    check_customer_alerts,
    check_notification,
    check_package,
)
from metronome_iac.catalog_types import Alias, CustomFields, HourTimestamp, Model, Name, Timestamp

CATALOG_FILE = "catalog.yaml"
ENVIRONMENT_FILE = "environment.yaml"


# --------------------------------------------------------------------------------------------------
# errors


@dataclass(frozen=True)
class Problem:
    """One validation problem, located as precisely as the YAML allows."""

    file: str
    line: int | None
    entry: str | None  # "<kind> '<name>'" or None for file-level problems
    field: str | None  # dotted path inside the entry, e.g. "rates[1].tiers"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.entry:
            parts.append(self.entry)
        if self.field:
            parts.append(f"field '{self.field}'")
        return ": ".join(parts) + f": {self.message}"


class CatalogError(Exception):
    """Raised by the loaders; `problems` holds every problem found, `str()` is a readable list."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(self._render())

    def _render(self) -> str:
        n = len(self.problems)
        lines = [f"catalog has {n} problem{'s' if n != 1 else ''}:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# shared field types


# Model, Name and Timestamp live in catalog_types (the new entry modules use them too).


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
# YAML with line numbers


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings (the models normalise them) and rejects duplicate keys."""


class _FastLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The same loader on libyaml's parser where PyYAML has it: a 1,000-customer stack parses in a
    sixth of the time (the program parses the catalog on every preview and up). The pure-Python
    `_Loader` words syntax errors better, so a file that does not parse is read again with it."""


def _construct_str(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_str)
_FastLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_str)


Path_ = tuple[Any, ...]


@dataclass
class _Doc:
    """A parsed YAML file: plain data plus the line of every mapping key and sequence item."""

    file: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    unreadable: bool = False  # not YAML: its sections are unknown, not empty (see _Validator.unknown)

    def line(self, path: Iterable[Any]) -> int | None:
        # The deepest known prefix: a missing field reports its parent's line.
        p = tuple(path)
        while True:
            if p in self.lines:
                return self.lines[p]
            if not p:
                return None
            p = p[:-1]


def _record_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[str]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key == "<<":
                continue
            if key in seen:
                problems.append(f"{key_node.start_mark.line + 1}:duplicate key '{key}'")
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _record_lines(value_node, path + (key,), lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[path + (i,)] = item.start_mark.line + 1
            _record_lines(item, path + (i,), lines, problems)


def _compose(text: str, loader_class: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, Any]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _parse(text: str, file: str) -> tuple[_Doc, list[Problem]]:
    problems: list[Problem] = []
    try:
        try:
            node, data = _compose(text, _FastLoader)
        except yaml.YAMLError:
            node, data = _compose(text, _Loader)  # raises again, with the clearer message
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        msg = str(getattr(exc, "problem", None) or exc)
        return _Doc(file, None, unreadable=True), [Problem(file, line, None, None, f"invalid YAML: {msg}")]
    doc = _Doc(file, data)
    if node is not None:
        dup: list[str] = []
        _record_lines(node, (), doc.lines, dup)
        for d in dup:
            line, msg = d.split(":", 1)
            problems.append(Problem(file, int(line), None, None, msg))
    return doc, problems


# --------------------------------------------------------------------------------------------------
# validation


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

_SECTIONS: dict[str, dict[str, type[Model]]] = {
    CATALOG_FILE: {"billable_metrics": BillableMetric, "products": Product, "rate_cards": RateCard},
    ENVIRONMENT_FILE: {"customers": Customer, "contracts": Contract},
}
# Packages, alerts and notifications (catalog_packages.py): promotable sections of catalog.yaml.
KIND_LABELS.update(PACKAGE_LABELS)
ADOPT_KEYS.update(PACKAGE_ADOPT_KEYS)
_SECTIONS[CATALOG_FILE].update(PACKAGE_SECTIONS)
_SINGLE: dict[str, dict[str, type[Model]]] = {
    CATALOG_FILE: {},
    ENVIRONMENT_FILE: {"settings": Settings, "stripe": Stripe},
}


def _field_path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _fields_at(model: type[BaseModel], loc: Iterable[Any]) -> set[str]:
    """The field names of the model found at `loc` inside `model` (list indexes and dict keys skipped)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return set()
        current = _model_in(info.annotation)
    return (
        set(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else set()
    )


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation such as `list[Rate] | None` (None when there is none)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _pydantic_message(err: dict[str, Any], model: type[BaseModel] | None = None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        loc = tuple(err.get("loc") or ())
        known = _fields_at(model, loc[:-1]) if model is not None and loc else set()
        close = difflib.get_close_matches(str(loc[-1]), sorted(known), n=1) if loc else []
        if close:
            return f"unknown field: did you mean `{close[0]}`?"
        return "unknown field (check the spelling; see docs/architecture.md 'Catalog files')"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "").replace("'", "")
        return f"must be one of {expected}; got {err.get('input')!r}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg


class _Validator:
    """Collects problems across both files; entries that fail schema validation skip the cross checks."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.single: dict[str, Model | None] = {}
        # Every name declared per section, valid or not: a reference to an entry that failed its own
        # schema check is not reported again as dangling.
        self.declared: dict[str, set[str]] = {}
        # Entries that failed their schema check, raw: their references are still checked.
        self.failed: list[tuple[_Doc, str, int, str, dict[str, Any]]] = []
        # One mistake, one error: what follows from a problem already reported is not reported again.
        # Sections whose entries could not be read (the file is not YAML, the section not a list): a
        # reference into them is not "unknown", the file's own error is the cause.
        self.unknown: set[str] = set()
        # Names declared twice in a section: which entry a reference means is not known, so checks
        # against the referenced entry's fields are skipped (the duplicate name is the cause).
        self.ambiguous: dict[str, set[str]] = {}

    def dangling(self, section: str, ref: Any) -> bool:
        """True when `ref` names no entry of `section`, and that is the first cause to report."""
        return (
            isinstance(ref, str)
            and section not in self.unknown
            and ref not in self.declared.get(section, set())
        )

    def unique(self, section: str, name: str | None) -> bool:
        """False when `name` is declared more than once in `section` (see `ambiguous`)."""
        return name not in self.ambiguous.get(section, set())

    def add(self, doc: _Doc, path: Path_, entry: str | None, field_loc: Iterable[Any], message: str) -> None:
        loc = tuple(field_loc)
        self.problems.append(
            Problem(doc.file, doc.line(path + loc), entry, _field_path(loc) or None, message)
        )

    def sections(self, doc: _Doc) -> dict[str, list[tuple[int, Model]]]:
        """Validate each entry of each section of one file on its own, so all problems surface at once."""
        name = Path(doc.file).name
        out: dict[str, list[tuple[int, Model]]] = {s: [] for s in _SECTIONS[name]}
        if doc.unreadable:
            self.unknown.update(_SECTIONS[name])
        data = doc.data
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.add(doc, (), None, (), "the file must be a mapping of sections")
            return out
        allowed = set(_SECTIONS[name]) | set(_SINGLE[name])
        for key in data:
            if key not in allowed:
                self.add(
                    doc, (key,), None, (), f"unknown section '{key}' (allowed: {', '.join(sorted(allowed))})"
                )
        for key, model in _SINGLE[name].items():
            value = data.get(key)
            if value is None:
                self.single[key] = None
                continue
            try:
                self.single[key] = model.model_validate(value)
            except ValidationError as exc:
                self.single[key] = None
                for err in exc.errors():
                    self.add(doc, (key,), f"{key} section", err["loc"], _pydantic_message(err, model))
        for section, model in _SECTIONS[name].items():
            entries = data.get(section)
            if entries is None:
                continue
            if not isinstance(entries, list):
                self.add(doc, (section,), None, (), f"'{section}' must be a list of entries")
                self.unknown.add(section)
                continue
            label = KIND_LABELS[section]
            seen: dict[str, int] = {}
            adopted: dict[tuple[str, str], str] = {}  # (adopt key, value) -> the entry adopting it
            declared = self.declared.setdefault(section, set())
            for i, raw in enumerate(entries):
                path = (section, i)
                if not isinstance(raw, dict):
                    self.add(doc, path, f"{label} #{i + 1}", (), "each entry must be a mapping")
                    continue
                entry_name = raw.get("name")
                entry = f"{label} '{entry_name}'" if entry_name else f"{label} #{i + 1}"
                if isinstance(entry_name, str):
                    declared.add(entry_name)
                    if entry_name in seen:
                        self.ambiguous.setdefault(section, set()).add(entry_name)
                        self.add(
                            doc,
                            path,
                            entry,
                            ("name",),
                            f"duplicate name: '{entry_name}' is already used by the {label} on line "
                            f"{doc.line((section, seen[entry_name]))}",
                        )
                    else:
                        seen[entry_name] = i
                adopt = raw.get("adopt")
                if isinstance(adopt, dict):
                    bad = set(adopt) - ADOPT_KEYS[section]
                    if bad or len(adopt) != 1:
                        self.add(
                            doc,
                            path,
                            entry,
                            ("adopt",),
                            f"adopt takes exactly one of {sorted(ADOPT_KEYS[section])}, got {sorted(adopt)}",
                        )
                    for key, value in adopt.items():
                        other = adopted.setdefault((key, str(value)), entry)
                        if other != entry:  # two resources over one live object: each undoes the other
                            self.add(
                                doc,
                                path,
                                entry,
                                ("adopt", key),
                                f"{other} already adopts {key} {value!r}; to fix: adopt it once",
                            )
                try:
                    out[section].append((i, model.model_validate(raw)))
                except ValidationError as exc:
                    self.failed.append((doc, section, i, entry, raw))
                    for err in exc.errors():
                        self.add(doc, path, entry, err["loc"], _pydantic_message(err, model))
            self.check_previous_names(doc, section, entries, seen)
        return out

    def check_previous_names(
        self, doc: _Doc, section: str, entries: list[Any], current: dict[str, int]
    ) -> None:
        """`previous_names`: each old name once (in the whole section), and never another entry's
        current name of the same kind (the engine would not know which resource the state belongs to)."""
        label = KIND_LABELS[section]
        claimed: dict[str, str] = {}  # previous name -> entry that claims it
        for i, raw in enumerate(entries):
            if not isinstance(raw, dict) or not isinstance(raw.get("previous_names"), list):
                continue
            entry_name = raw.get("name")
            entry = f"{label} '{entry_name}'" if entry_name else f"{label} #{i + 1}"
            for j, old in enumerate(raw["previous_names"]):
                if not isinstance(old, str):
                    continue  # reported by the schema check
                where = ("previous_names", j)
                if old == entry_name:
                    self.add(
                        doc,
                        (section, i),
                        entry,
                        where,
                        f"'{old}' is the entry's own name; to fix: remove it from previous_names",
                    )
                elif old in current:
                    self.add(
                        doc,
                        (section, i),
                        entry,
                        where,
                        f"previous name '{old}' is the current name of the {label} on line "
                        f"{doc.line((section, current[old]))}; to fix: remove it from previous_names "
                        "(or rename that entry)",
                    )
                elif old in claimed:
                    self.add(
                        doc,
                        (section, i),
                        entry,
                        where,
                        f"duplicate previous name: '{old}' is already listed by {claimed[old]}; to fix: "
                        "keep it on one entry only",
                    )
                else:
                    claimed[old] = entry


# Top-level reference fields of each kind: (field, referenced section). Checked on raw entries too.
_RAW_REFS: dict[str, tuple[tuple[str, str], ...]] = {
    "products": (("billable_metric", "billable_metrics"),),
    "contracts": (("customer", "customers"), ("rate_card", "rate_cards")),
}


def _check_raw_references(v: _Validator) -> None:
    """Dangling references of entries that failed their schema check (so all problems show at once)."""
    for doc, section, i, entry, raw in v.failed:
        for field_name, target in _RAW_REFS.get(section, ()):
            ref = raw.get(field_name)
            known = v.declared.get(target, set())
            if v.dangling(target, ref):
                v.add(
                    doc,
                    (section, i),
                    entry,
                    (field_name,),
                    f"unknown {KIND_LABELS[target]} '{ref}' {_known(known)}",
                )
        if section == "rate_cards" and isinstance(raw.get("rates"), list):
            known = v.declared.get("products", set())
            for j, rate in enumerate(raw["rates"]):
                ref = rate.get("product") if isinstance(rate, dict) else None
                if v.dangling("products", ref):
                    v.add(
                        doc,
                        (section, i),
                        entry,
                        ("rates", j, "product"),
                        f"unknown product '{ref}' {_known(known)}",
                    )


def _known(names: Iterable[str]) -> str:
    names = sorted(names)
    return f"(known: {', '.join(names)})" if names else "(none declared)"


def _check_stripe_meters(v: _Validator, doc: _Doc, metrics: list[tuple[int, Model]]) -> None:
    """One metric per Stripe meter: reconcile compares a meter's totals with one metric's."""
    owner: dict[str, str] = {}
    for i, m in metrics:
        assert isinstance(m, BillableMetric)
        if m.stripe_meter is None:
            continue
        first = owner.setdefault(m.stripe_meter, m.name)
        if first != m.name:
            v.add(
                doc,
                ("billable_metrics", i),
                f"billable metric '{m.name}'",
                ("stripe_meter",),
                f"Stripe meter {m.stripe_meter} is already the stripe_meter of billable metric '{first}'; "
                "to fix: keep it on the one metric that measures the same usage as the meter",
            )


def _check_references(
    v: _Validator,
    cat_doc: _Doc,
    env_doc: _Doc | None,
    cat: dict[str, list[tuple[int, Model]]],
    env: dict[str, list[tuple[int, Model]]],
    single: dict[str, Model | None],
) -> None:
    # The rules of what Metronome accepts in a rate, shared with the rate card provider's Check.
    from providers.rate_rules import rate_problems, schedule_problems

    metrics: dict[str, BillableMetric] = {m.name: m for _, m in cat["billable_metrics"]}  # type: ignore[misc]
    products: dict[str, Product] = {p.name: p for _, p in cat["products"]}  # type: ignore[misc]
    cards: dict[str, RateCard] = {c.name: c for _, c in cat["rate_cards"]}  # type: ignore[misc]

    for i, m in cat["billable_metrics"]:
        assert isinstance(m, BillableMetric)
        entry, path = f"billable metric '{m.name}'", ("billable_metrics", i)
        if m.aggregation_type != "COUNT" and not m.aggregation_key:
            v.add(
                cat_doc,
                path,
                entry,
                ("aggregation_key",),
                f"aggregation_key is required for aggregation_type {m.aggregation_type}",
            )
        filter_names = {f.name for f in m.property_filters or []}
        if m.aggregation_type != "COUNT" and m.aggregation_key and m.aggregation_key not in filter_names:
            v.add(
                cat_doc,
                path,
                entry,
                ("aggregation_key",),
                f"aggregation_key '{m.aggregation_key}' must be one of the property filter names (Metronome "
                f"refuses it otherwise): add {{name: {m.aggregation_key}, exists: true}} to property_filters",
            )
        # Same rule as the provider's check: events lacking a group key would land in an empty group.
        required = {
            f.name for f in m.property_filters or [] if f.exists or (f.in_values and f.exists is not False)
        }
        for j, compound in enumerate(m.group_keys or []):
            for n, key in enumerate(compound):
                if key not in required:
                    v.add(
                        cat_doc,
                        path,
                        entry,
                        ("group_keys", j, n),
                        f"group key '{key}' needs a property filter {{name: {key}, exists: true}}",
                    )
    _check_stripe_meters(v, cat_doc, cat["billable_metrics"])

    for i, p in cat["products"]:
        assert isinstance(p, Product)
        entry, path = f"product '{p.name}'", ("products", i)
        usage_only = (
            "billable_metric",
            "pricing_group_key",
            "presentation_group_key",
            "quantity_conversion",
            "quantity_rounding",
        )
        if p.type != "USAGE":
            for f in usage_only:
                if getattr(p, f) is not None:
                    v.add(cat_doc, path, entry, (f,), f"only USAGE products take {f} (type is {p.type})")
        elif p.billable_metric is None:
            v.add(cat_doc, path, entry, ("billable_metric",), "USAGE products need a billable_metric")
        elif v.dangling("billable_metrics", p.billable_metric):
            v.add(
                cat_doc,
                path,
                entry,
                ("billable_metric",),
                f"unknown billable metric '{p.billable_metric}' {_known(metrics)}",
            )
        elif v.unique("billable_metrics", p.billable_metric) and p.billable_metric in metrics:
            metric = metrics[p.billable_metric]
            wanted = set(p.pricing_group_key or []) | set(p.presentation_group_key or [])
            compound = [set(k) for k in (metric.group_keys or [])]
            if wanted and wanted not in compound:
                field_name = "pricing_group_key" if p.pricing_group_key else "presentation_group_key"
                v.add(
                    cat_doc,
                    path,
                    entry,
                    (field_name,),
                    f"group key {sorted(wanted)} (pricing + presentation) is not one of billable metric "
                    f"'{metric.name}' group_keys {metric.group_keys or []}",
                )
        if p.composite_products is not None:
            if p.type != "COMPOSITE":
                v.add(cat_doc, path, entry, ("composite_products",), "only COMPOSITE products take it")
            for j, ref in enumerate(p.composite_products):
                if v.dangling("products", ref):
                    v.add(
                        cat_doc,
                        path,
                        entry,
                        ("composite_products", j),
                        f"unknown product '{ref}' {_known(products)}",
                    )

    for i, card in cat["rate_cards"]:
        assert isinstance(card, RateCard)
        entry, path = f"rate card '{card.name}'", ("rate_cards", i)
        custom_units = {c.custom_credit_type_id for c in card.credit_type_conversions or []}
        for j, rate in enumerate(card.rates):
            loc: Path_ = ("rates", j)
            product = products.get(rate.product) if v.unique("products", rate.product) else None
            if v.dangling("products", rate.product):
                v.add(
                    cat_doc,
                    path,
                    entry,
                    loc + ("product",),
                    f"unknown product '{rate.product}' {_known(products)}",
                )
            elif product is not None:
                keys = set(product.pricing_group_key or [])
                given = set((rate.pricing_group_values or {}).keys())
                if given and given != keys:
                    v.add(
                        cat_doc,
                        path,
                        entry,
                        loc + ("pricing_group_values",),
                        f"keys {sorted(given)} must match product '{product.name}' pricing_group_key "
                        f"{sorted(keys)}",
                    )
            for field_loc, message in rate_problems(
                rate, product_type=product.type if product else None, custom_units=custom_units
            ):
                v.add(cat_doc, path, entry, loc + field_loc, message)
        schedule = [
            (
                (r.product, tuple(sorted((r.pricing_group_values or {}).items()))),
                r.starting_at,
                r.ending_before,
            )
            for r in card.rates
        ]
        for j, field_loc, message in schedule_problems(schedule):
            v.add(cat_doc, path, entry, ("rates", j, *field_loc), message)

    _check_packages_alerts(v, cat_doc, cat)
    if env_doc is None:
        return
    stripe = single.get("stripe")
    if isinstance(stripe, Stripe) and stripe.require_reconciled_days is not None:
        metered = [m.name for m in metrics.values() if m.stripe_meter]
        linked = [c.name for _, c in env["customers"] if getattr(c, "stripe_customer_id", None)]
        missing = []
        if not metered:
            missing.append(f"no billable metric in {cat_doc.file} has a stripe_meter (mtr_...)")
        if not linked:
            missing.append("no customer has a stripe_customer_id")
        if missing:
            v.add(
                env_doc,
                ("stripe",),
                "stripe section",
                ("require_reconciled_days",),
                f"nothing to reconcile: {' and '.join(missing)}, so no reconcile could ever pass and go_live "
                "would stay refused; to fix: set stripe_meter on the metrics imported from Stripe meters "
                "(`import-stripe` writes it) and stripe_customer_id on their customers, or remove "
                "require_reconciled_days",
            )
    customers: dict[str, Customer] = {c.name: c for _, c in env["customers"]}  # type: ignore[misc]
    alias_owner: dict[str, str] = {}
    for i, c in env["customers"]:
        assert isinstance(c, Customer)
        entry, path = f"customer '{c.name}'", ("customers", i)
        for j, alias in enumerate(c.ingest_aliases):
            owner = alias_owner.get(alias)
            if owner is not None:
                what = "listed twice" if owner == c.name else f"already used by customer '{owner}'"
                v.add(env_doc, path, entry, ("ingest_aliases", j), f"ingest alias '{alias}' is {what}")
            else:
                alias_owner[alias] = c.name
        if c.stripe_collection_method and not c.stripe_customer_id:
            v.add(env_doc, path, entry, ("stripe_collection_method",), "needs stripe_customer_id")
        check_customer_alerts(c, v.declared, lambda loc, msg, p=path, e=entry: v.add(env_doc, p, e, loc, msg))

    for i, k in env["contracts"]:
        assert isinstance(k, Contract)
        entry, path = f"contract '{k.name}'", ("contracts", i)
        check_contract(
            k,
            v.dangling,
            v.unknown,
            {"customers": customers, "products": products, "rate_cards": cards},
            [p for _, p in cat["packages"]],
            lambda loc, msg, p=path, e=entry: v.add(env_doc, p, e, loc, msg),
        )


# --------------------------------------------------------------------------------------------------
# packages, alerts and notifications: the checks live in catalog_packages.py


def _check_packages_alerts(v: _Validator, doc: _Doc, cat: dict[str, list[tuple[int, Model]]]) -> None:
    checks: dict[str, Any] = {
        "packages": lambda entry, report: check_package(entry, v.declared, report),
        "alerts": lambda entry, report: check_alert(entry, v.declared, report),
        "notifications": lambda entry, report: check_notification(entry, report),
    }
    for section, check in checks.items():
        for i, entry in cat[section]:
            label = f"{KIND_LABELS[section]} '{getattr(entry, 'name', i)}'"
            check(entry, lambda loc, msg, p=(section, i), e=label: v.add(doc, p, e, loc, msg))


def _read(path: Path, v: _Validator, required: bool) -> _Doc | None:
    if not path.exists():
        if required:
            v.problems.append(Problem(str(path), None, None, None, "file not found"))
        return None
    doc, problems = _parse(path.read_text(encoding="utf-8"), str(path))
    v.problems.extend(problems)
    return doc


def _build(v: _Validator, cat_doc: _Doc | None, env_doc: _Doc | None) -> tuple[Catalog, Environment]:
    empty_cat: dict[str, list[tuple[int, Model]]] = {s: [] for s in _SECTIONS[CATALOG_FILE]}
    empty_env: dict[str, list[tuple[int, Model]]] = {s: [] for s in _SECTIONS[ENVIRONMENT_FILE]}
    v.single = {}
    cat = v.sections(cat_doc) if cat_doc is not None else empty_cat
    env = v.sections(env_doc) if env_doc is not None else empty_env
    single = dict(v.single)
    if cat_doc is not None:
        _check_references(v, cat_doc, env_doc, cat, env, single)
        _check_raw_references(v)
    if v.problems:
        raise CatalogError(sorted(v.problems, key=lambda p: (p.file, p.line or 0)))
    catalog = Catalog(**{s: [m for _, m in items] for s, items in cat.items()})
    settings = single.get("settings") or Settings()
    environment = Environment(
        settings=settings,
        stripe=single.get("stripe"),
        **{s: [m for _, m in items] for s, items in env.items()},
    )
    return catalog, environment


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate one promotable `catalog.yaml` on its own (promote uses this)."""
    v = _Validator()
    doc = _read(Path(path), v, required=True)
    if doc is None:
        raise CatalogError(v.problems)
    catalog, _ = _build(v, doc, None)
    return catalog


def load_stack(stack_dir: str | Path) -> Stack:
    """Load `<stack_dir>/catalog.yaml` and `<stack_dir>/environment.yaml` (optional) as one validated stack.

    Raises CatalogError listing every problem (file:line: entry: field: message).
    """
    stack_dir = Path(stack_dir)
    v = _Validator()
    if not stack_dir.is_dir():
        raise CatalogError([Problem(str(stack_dir), None, None, None, "stack directory not found")])
    cat_doc = _read(stack_dir / CATALOG_FILE, v, required=True)
    env_doc = _read(stack_dir / ENVIRONMENT_FILE, v, required=False)
    if cat_doc is None:
        raise CatalogError(v.problems)
    catalog, environment = _build(v, cat_doc, env_doc or _Doc(str(stack_dir / ENVIRONMENT_FILE), None))
    return Stack(name=stack_dir.name, path=stack_dir, catalog=catalog, environment=environment)


# --------------------------------------------------------------------------------------------------
# writing (export, Stripe importer)


def _dump_model(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


def _section(items: list[Model], first: tuple[str, ...] = ("name",)) -> list[dict[str, Any]]:
    out = []
    for item in items:
        d = _dump_model(item)
        # `name` first, `adopt` last: easier to read.
        ordered = {k: d[k] for k in first if k in d}
        ordered.update({k: v for k, v in d.items() if k not in first and k != "adopt"})
        if "adopt" in d:
            ordered["adopt"] = d["adopt"]
        out.append(ordered)
    return out


def as_written(value: Any) -> Any:
    """Numbers as a person writes them: the models hold prices as floats, the YAML says 330, not 330.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: as_written(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_written(v) for v in value]
    return value


def dump_yaml(data: Any, header: str = "") -> str:
    text = yaml.safe_dump(
        as_written(data), sort_keys=False, allow_unicode=True, default_flow_style=False, width=110
    )
    return header + text


def catalog_to_yaml(catalog: Catalog, header: str = "") -> str:
    data = {
        "billable_metrics": _section(catalog.billable_metrics),  # type: ignore[arg-type]
        "products": _section(catalog.products),  # type: ignore[arg-type]
        "rate_cards": _section(catalog.rate_cards),  # type: ignore[arg-type]
    }
    for section in PACKAGE_SECTIONS:  # only when there are any: older catalogs stay as they were
        if getattr(catalog, section):
            data[section] = _section(getattr(catalog, section))
    return dump_yaml(data, header)


def environment_to_yaml(environment: Environment, header: str = "") -> str:
    data: dict[str, Any] = {}
    settings = _dump_model(environment.settings)
    if settings:
        data["settings"] = settings
    if environment.stripe is not None:
        data["stripe"] = environment.stripe.model_dump(mode="json", exclude_none=True)
    data["customers"] = _section(environment.customers)  # type: ignore[arg-type]
    data["contracts"] = _section(environment.contracts)  # type: ignore[arg-type]
    return dump_yaml(data, header)
