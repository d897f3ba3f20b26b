"""Catalog entries for packages, alerts and offset notifications, and their checks.

`catalog.yaml` (promotable) holds `packages`, `alerts` (for every customer) and `notifications`;
`environment.yaml` holds per-customer alerts under the customer (`customers[].alerts`). Entries use the
provider's field names (metronome-sdk's), except that other entries are named by catalog name: `rate_card`,
`billable_metric`, and `product` / `applicable_products` wherever the API takes `product_id` /
`applicable_product_ids`. Each entry is checked by the provider's own schema and rules
(`providers.package`, `providers.alert`, `providers.notification`), so the catalog and the provider's
Check never disagree; problems come back with the entry's file, line and field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from metronome_iac.catalog_read import known
from metronome_iac.catalog_types import Model, Name, Timestamp

Loc = tuple[Any, ...]
Report = Callable[[Loc, str], None]  # (field location inside the entry, message)

# --------------------------------------------------------------------------------------------------
# entries


class PackageAlias(Model):
    name: str
    starting_at: Timestamp | None = None
    ending_before: Timestamp | None = None


class Package(Model):
    name: Name
    display_name: str | None = None
    previous_names: list[Name] | None = None  # earlier catalog names (renames keep the object)
    rate_card: str | None = None  # catalog name of a rate card
    contract_name: str | None = None
    aliases: list[PackageAlias] | None = None
    duration: dict[str, Any] | None = None
    billing_provider: str | None = None
    delivery_method: str | None = None
    net_payment_terms_days: float | None = None
    usage_statement_schedule: dict[str, Any] | None = None
    multiplier_override_prioritization: str | None = None
    scheduled_charges_on_usage_invoices: str | None = None
    commits: list[dict[str, Any]] | None = None
    credits: list[dict[str, Any]] | None = None
    recurring_commits: list[dict[str, Any]] | None = None
    recurring_credits: list[dict[str, Any]] | None = None
    subscriptions: list[dict[str, Any]] | None = None
    scheduled_charges: list[dict[str, Any]] | None = None
    overrides: list[dict[str, Any]] | None = None
    spend_threshold_configuration: dict[str, Any] | None = None
    prepaid_balance_threshold_configuration: dict[str, Any] | None = None
    spend_trackers: list[dict[str, Any]] | None = None
    adopt: dict[str, str] | None = None

    @property
    def metronome_name(self) -> str:
        return self.display_name or self.name


class Alert(Model):
    name: Name
    display_name: str | None = None
    previous_names: list[Name] | None = None
    alert_type: str
    threshold: float
    billable_metric: str | None = None  # catalog name (usage_threshold_reached)
    credit_type_id: str | None = None
    access_type: str | None = None
    group_values: list[dict[str, Any]] | None = None
    custom_field_filters: list[dict[str, Any]] | None = None
    alert_specifiers: list[dict[str, Any]] | None = None
    credit_grant_type_filters: list[str] | None = None
    invoice_types_filter: list[str] | None = None
    seat_filter: dict[str, Any] | None = None
    evaluate_on_create: bool | None = None
    adopt: dict[str, str] | None = None

    @property
    def metronome_name(self) -> str:
        return self.display_name or self.name


class Notification(Model):
    name: Name
    display_name: str | None = None
    previous_names: list[Name] | None = None
    policy: dict[str, Any]
    adopt: dict[str, str] | None = None

    @property
    def metronome_name(self) -> str:
        return self.display_name or self.name


CATALOG_SECTIONS: dict[str, type[Model]] = {
    "packages": Package,
    "alerts": Alert,
    "notifications": Notification,
}
LABELS = {"packages": "package", "alerts": "alert", "notifications": "notification"}
ADOPT_KEYS = {"packages": {"id", "name"}, "alerts": {"id"}, "notifications": {"id", "name"}}


def customer_alert_name(customer: str, alert: str) -> str:
    """The resource name of a customer's alert (unique in the stack)."""
    return f"{customer}.{alert}"


# --------------------------------------------------------------------------------------------------
# entry -> provider inputs (ids may be Outputs, live ids, or placeholders when checking)

# Catalog reference field -> API field.
_PRODUCT_REFS = {"product": "product_id", "applicable_products": "applicable_product_ids"}


def with_product_ids(value: Any, product_ids: Mapping[str, Any]) -> Any:
    """Terms with every `product` / `applicable_products` (catalog names) as `product_id` / ids."""
    if isinstance(value, list):
        return [with_product_ids(v, product_ids) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key == "product":
            out["product_id"] = product_ids[item]
        elif key == "applicable_products":
            out["applicable_product_ids"] = [product_ids[n] for n in item]
        else:
            out[key] = with_product_ids(item, product_ids)
    return out


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


_TERMS = (
    "contract_name",
    "duration",
    "billing_provider",
    "delivery_method",
    "net_payment_terms_days",
    "usage_statement_schedule",
    "multiplier_override_prioritization",
    "scheduled_charges_on_usage_invoices",
    "commits",
    "credits",
    "recurring_commits",
    "recurring_credits",
    "subscriptions",
    "scheduled_charges",
    "overrides",
    "spend_threshold_configuration",
    "prepaid_balance_threshold_configuration",
    "spend_trackers",
)


def package_inputs(
    p: Package, rate_card_ids: Mapping[str, Any], product_ids: Mapping[str, Any]
) -> dict[str, Any]:
    return _clean(
        {
            "name": p.metronome_name,
            "rate_card_id": rate_card_ids[p.rate_card] if p.rate_card else None,
            "aliases": [a.model_dump(mode="json", exclude_none=True) for a in p.aliases]
            if p.aliases
            else None,
            **{f: with_product_ids(getattr(p, f), product_ids) for f in _TERMS},
            "adopt": p.adopt,
        }
    )


_ALERT_FIELDS = (
    "alert_type",
    "threshold",
    "credit_type_id",
    "access_type",
    "group_values",
    "custom_field_filters",
    "alert_specifiers",
    "credit_grant_type_filters",
    "invoice_types_filter",
    "seat_filter",
    "evaluate_on_create",
)


def alert_inputs(a: Alert, metric_ids: Mapping[str, Any], customer_id: Any = None) -> dict[str, Any]:
    return _clean(
        {
            "name": a.metronome_name,
            "customer_id": customer_id,
            "billable_metric_id": metric_ids[a.billable_metric] if a.billable_metric else None,
            **{f: getattr(a, f) for f in _ALERT_FIELDS},
            "adopt": a.adopt,
        }
    )


def notification_inputs(n: Notification) -> dict[str, Any]:
    return _clean({"name": n.metronome_name, "policy": n.policy, "adopt": n.adopt})


# --------------------------------------------------------------------------------------------------
# checks


class _Placeholders(dict[str, str]):
    """Stands in for the ids of referenced entries while checking: any name gives an id."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


_API_TO_CATALOG = {
    "product_id": "product",
    "applicable_product_ids": "applicable_products",
    "rate_card_id": "rate_card",
    "billable_metric_id": "billable_metric",
}
_REFERENCE_FIX = {
    "product": "name a product of the catalog",
    "applicable_products": "name products of the catalog",
    "rate_card": "name a rate card of the catalog",
    "billable_metric": "name a billable metric of the catalog",
}
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _catalog_loc(loc: Iterable[Any]) -> Loc:
    """A provider field location (tuple or "a[0].b" text) as the catalog entry's."""
    if isinstance(loc, str):
        loc = [int(i) if i else name for name, i in _PATH_PART.findall(loc)]
    return tuple(_API_TO_CATALOG.get(p, p) if isinstance(p, str) else p for p in loc)


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field (check the spelling; see docs/architecture.md 'Catalog files')"
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "").replace("'", "")
        return f"must be one of {expected}; got {err.get('input')!r}"
    return str(err["msg"]).removeprefix("Value error, ")


def _check_with_provider(provider: Any, inputs: dict[str, Any], report: Report, prefix: Loc = ()) -> None:
    """The provider's schema and its Check rules, on inputs built from the entry."""
    inputs = {k: v for k, v in inputs.items() if k != "adopt"}
    try:
        model = provider.inputs_model.model_validate(inputs)
    except ValidationError as exc:
        for err in exc.errors():
            report(prefix + _catalog_loc(err["loc"]), _message(err))
        return
    for failure in provider.validate(model, {}):
        loc = _catalog_loc(failure.property)
        reason = failure.reason
        for api, field in _API_TO_CATALOG.items():
            reason = reason.replace(api, field)
        if loc and loc[-1] in _REFERENCE_FIX:  # the provider's fix speaks of ids: say it in catalog terms
            reason = reason.split("; to fix:", 1)[0] + f"; to fix: {_REFERENCE_FIX[loc[-1]]}"
        report(prefix + loc, reason)


def _product_refs(value: Any, loc: Loc, products: set[str], report: Report) -> None:
    if isinstance(value, list):
        for i, v in enumerate(value):
            _product_refs(v, loc + (i,), products, report)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key == "product" and isinstance(item, str) and item not in products:
                report(loc + (key,), f"unknown product '{item}' {known(products)}")
            elif key == "applicable_products" and isinstance(item, list):
                for i, name in enumerate(item):
                    if name not in products:
                        report(loc + (key, i), f"unknown product '{name}' {known(products)}")
            else:
                _product_refs(item, loc + (key,), products, report)


def check_package(p: Package, declared: Mapping[str, set[str]], report: Report) -> None:
    from providers.package import PackageProvider

    cards = declared.get("rate_cards", set())
    if p.rate_card is not None and p.rate_card not in cards:
        report(("rate_card",), f"unknown rate card '{p.rate_card}' {known(cards)}")
    products = declared.get("products", set())
    for field in _TERMS:
        _product_refs(getattr(p, field), (field,), products, report)
    _check_with_provider(PackageProvider(), package_inputs(p, _Placeholders(), _Placeholders()), report)


def check_alert(a: Alert, declared: Mapping[str, set[str]], report: Report, prefix: Loc = ()) -> None:
    from providers.alert import AlertProvider

    metrics = declared.get("billable_metrics", set())
    if a.billable_metric is not None and a.billable_metric not in metrics:
        report(
            prefix + ("billable_metric",), f"unknown billable metric '{a.billable_metric}' {known(metrics)}"
        )
    customer = "<customer>" if prefix else None
    _check_with_provider(AlertProvider(), alert_inputs(a, _Placeholders(), customer), report, prefix)


def check_notification(n: Notification, report: Report) -> None:
    from providers.notification import NotificationProvider

    _check_with_provider(NotificationProvider(), notification_inputs(n), report)


def check_customer_alerts(customer: Any, declared: Mapping[str, set[str]], report: Report) -> None:
    """`customers[].alerts`: each checked like an account-wide one, names unique within the customer and
    their resource names (`<customer>.<alert>`) unused by account-wide alerts."""
    seen: set[str] = set()
    account_wide = declared.get("alerts", set())
    for i, alert in enumerate(customer.alerts or []):
        if alert.name in seen:
            report(("alerts", i, "name"), f"duplicate alert name '{alert.name}' for this customer")
        seen.add(alert.name)
        resource = customer_alert_name(customer.name, alert.name)
        if resource in account_wide:
            report(("alerts", i, "name"), f"'{resource}' is also an account-wide alert's name: rename one")
        check_alert(alert, declared, report, ("alerts", i))
