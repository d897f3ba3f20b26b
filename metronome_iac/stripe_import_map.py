"""`import-stripe`: what each Stripe object becomes in the catalog.

A Billing Meter becomes a billable metric (`map_meter`), a metered price a USAGE product with a rate on the
imported rate card (`map_price`). A licensed price (a seat or platform fee: `recurring.usage_type`
licensed, per unit) becomes a SUBSCRIPTION product with a FLAT rate billed at the price's interval
(`billing_frequency`), and each live subscription item on it a `subscriptions` entry on the customer's
contract, with the item's quantity: Stripe bills licensed prices in advance and prorates quantity changes
by default, so the subscription does too.

Billing alerts (`/v1/billing/alerts`): a usage threshold on a meter (`usage_threshold`: `gte`, `meter`, an
optional customer filter; the `stripe` package's `billing.Alert`) becomes a `usage_threshold_reached` alert
on the metric imported from that meter, for that customer or for every customer; a credit balance threshold
(`credit_balance_threshold`: `lte.monetary` for one customer; Stripe's API reference and stripe-java's
`Alert.CreditBalanceThreshold`) becomes a `low_remaining_contract_credit_balance_reached` alert on the
customer (the credit grants become contract credits). Others are reported and left out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

# Stripe's recurring interval (and count) -> Metronome's billing frequency.
FREQUENCIES = {
    ("month", 1): "MONTHLY",
    ("month", 3): "QUARTERLY",
    ("year", 1): "ANNUAL",
    ("week", 1): "WEEKLY",
}
AGGREGATIONS = {"sum": "SUM", "count": "COUNT", "last": "LATEST"}
USAGE_ALERT = "usage_threshold_reached"
CREDIT_ALERT = "low_remaining_contract_credit_balance_reached"


def number(value: Any) -> float | int:
    """A Stripe amount (string or number) as a person writes it: 330, not 330.0."""
    exact = Decimal(str(value))
    return int(exact) if exact == exact.to_integral_value() else float(exact)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.strip().lower()).strip("_.-")


def ref_id(ref: Any) -> str | None:
    """An expandable field: an id string or an expanded object."""
    if isinstance(ref, Mapping):
        return ref.get("id")
    return ref


def map_meter(meter: Mapping[str, Any], name: str) -> tuple[dict[str, Any] | None, str | None]:
    """(billable metric entry, None) or (None, reason it cannot be mapped)."""
    if meter.get("status") not in (None, "active"):
        return None, f"status is {meter.get('status')}"
    formula = ((meter.get("default_aggregation") or {}).get("formula") or "").lower()
    if formula not in AGGREGATIONS:
        return None, f"aggregation formula {formula!r} has no Metronome equivalent (sum, count, last map)"
    metric: dict[str, Any] = {"name": name, "aggregation_type": AGGREGATIONS[formula]}
    if meter.get("display_name") and meter["display_name"] != name:
        metric["display_name"] = meter["display_name"]
    required: list[str] = []  # payload keys every event must carry
    if formula != "count":
        metric["aggregation_key"] = (meter.get("value_settings") or {}).get("event_payload_key") or "value"
        required.append(metric["aggregation_key"])  # Metronome wants the aggregated property filtered on
    metric["event_type_filter"] = {"in_values": [meter["event_name"]]}
    dimensions = meter.get("dimension_payload_keys") or meter.get("dimensions") or []
    # Metronome groups events without a key under an empty value; requiring the key drops them instead,
    # like Stripe rejects meter events missing a dimension.
    required += [key for key in dimensions if key not in required]
    if required:
        metric["property_filters"] = [{"name": key, "exists": True} for key in required]
    if dimensions:
        metric["group_keys"] = [list(dimensions)]
    metric["stripe_meter"] = meter["id"]  # what `metronome-iac reconcile` compares the metric with
    return metric, None


def map_price(
    price: Mapping[str, Any], metric_by_meter: Mapping[str, str]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]:
    """(product fields, rate fields, None) or (None, None, reason)."""
    recurring = price.get("recurring") or {}
    if is_licensed(price):
        return map_licensed_price(price)
    if price.get("type") != "recurring" or recurring.get("usage_type") != "metered":
        return None, None, "one-time price: bill it as a scheduled charge or a commit on the contract by hand"
    meter_id = recurring.get("meter")
    if not meter_id:
        return None, None, "metered price without a meter (legacy usage records): no event stream to map"
    if meter_id not in metric_by_meter:
        return None, None, f"its meter {meter_id} was not imported"
    currency = (price.get("currency") or "").lower()
    if currency != "usd":
        return None, None, f"currency {currency.upper()}: the catalog prices in USD cents"
    if not price.get("active", True):
        return None, None, "price is archived (inactive)"

    product: dict[str, Any] = {"type": "USAGE", "billable_metric": metric_by_meter[meter_id]}
    rate: dict[str, Any] = {}
    if price.get("billing_scheme") == "tiered" or price.get("tiers"):
        if price.get("tiers_mode") == "volume":
            return (
                None,
                None,
                ("volume tiers (the whole quantity at one tier's price): Metronome tiers are graduated"),
            )
        tiers = price.get("tiers")
        if not tiers:
            return None, None, "tiered price without tiers (read it with expand[]=data.tiers)"
        if any(number(t.get("flat_amount_decimal") or t.get("flat_amount") or 0) for t in tiers):
            return None, None, "tiers with a flat fee: Metronome tiers have a unit price only"
        converted, previous = [], 0
        for tier in tiers:
            unit = tier.get("unit_amount_decimal") or tier.get("unit_amount") or 0
            up_to = tier.get("up_to")
            if up_to in (None, "inf"):
                converted.append({"price": number(unit)})
                break
            # Stripe's up_to is cumulative; Metronome's size is the width of the tier.
            converted.append({"size": number(up_to) - previous, "price": number(unit)})
            previous = number(up_to)
        rate.update(rate_type="TIERED", tiers=converted)
    else:
        unit = price.get("unit_amount_decimal")
        if unit is None:
            unit = price.get("unit_amount")
        if unit is None:
            return None, None, "price without unit_amount (custom or free pricing)"
        rate.update(rate_type="FLAT", price=number(unit))

    transform = price.get("transform_quantity")
    if transform and transform.get("divide_by"):
        divide_by = number(transform["divide_by"])
        product["quantity_conversion"] = {
            "conversion_factor": divide_by,
            "operation": "DIVIDE",
            "name": f"per {divide_by:,}",
        }
        method = "ROUND_UP" if transform.get("round") == "up" else "ROUND_DOWN"
        product["quantity_rounding"] = {"decimal_places": 0, "rounding_method": method}
    return product, rate, None


def is_licensed(price: Mapping[str, Any]) -> bool:
    return price.get("type") == "recurring" and (price.get("recurring") or {}).get("usage_type") == "licensed"


def map_licensed_price(
    price: Mapping[str, Any],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]:
    """(product fields, rate fields, None) for a licensed price, or (None, None, reason)."""
    recurring = price.get("recurring") or {}
    interval = (recurring.get("interval"), int(recurring.get("interval_count") or 1))
    if interval not in FREQUENCIES:
        every = f"every {interval[1]} {interval[0]}(s)"
        return (
            None,
            None,
            f"licensed price billed {every}: Metronome bills subscriptions weekly, monthly, quarterly or "
            "yearly",
        )
    currency = (price.get("currency") or "").lower()
    if currency != "usd":
        return None, None, f"currency {currency.upper()}: the catalog prices in USD cents"
    if not price.get("active", True):
        return None, None, "price is archived (inactive)"
    if price.get("billing_scheme") == "tiered" or price.get("tiers"):
        return (
            None,
            None,
            "tiered licensed price: a subscription has one flat price per unit; model the tiers by hand",
        )
    unit = price.get("unit_amount_decimal")
    if unit is None:
        unit = price.get("unit_amount")
    if unit is None:
        return None, None, "price without unit_amount (custom or free pricing)"
    rate = {"rate_type": "FLAT", "price": number(unit), "billing_frequency": FREQUENCIES[interval]}
    return {"type": "SUBSCRIPTION"}, rate, None


def subscription_entry(product: str, display: str | None, frequency: str, quantity: Any) -> dict[str, Any]:
    """A contract's `subscriptions` entry for a subscription item on an imported licensed price."""
    entry: dict[str, Any] = {}
    if display:
        entry["name"] = display
    entry.update(
        subscription_rate={"product": product, "billing_frequency": frequency},
        collection_schedule="ADVANCE",  # Stripe bills licensed prices at the start of each period
        proration={"is_prorated": True},  # and prorates quantity changes (proration_behavior default)
        initial_quantity=number(quantity if quantity is not None else 1),
    )
    return entry


def _customer_filter(config: Mapping[str, Any]) -> str | None:
    for f in config.get("filters") or []:
        if f.get("type") == "customer" and f.get("customer"):
            return ref_id(f["customer"])
    return None


def map_alert(
    alert: Mapping[str, Any], metric_by_meter: Mapping[str, str], name_by_stripe: Mapping[str, str]
) -> tuple[str | None, dict[str, Any] | None, str | None]:
    """(catalog name of the customer it is for, or None for every customer; the alert entry; None), or
    (None, None, the reason it is left out)."""
    if alert.get("status") not in (None, "active"):
        return None, None, f"status is {alert.get('status')}"
    title = alert.get("title") or alert["id"]
    entry: dict[str, Any] = {"name": slug(title) or slug(alert["id"])}
    if title != entry["name"]:
        entry["display_name"] = title
    kind = alert.get("alert_type")
    config = alert.get(kind) or {}
    customer = _customer_filter(config)
    owner = None
    if customer is not None:
        owner = name_by_stripe.get(customer)
        if owner is None:
            return None, None, f"it watches customer {customer}, which has no imported subscription"
    if kind == "usage_threshold":
        meter = ref_id(config.get("meter"))
        if meter not in metric_by_meter:
            return None, None, f"its meter {meter} was not imported"
        entry.update(
            alert_type=USAGE_ALERT, billable_metric=metric_by_meter[meter], threshold=number(config["gte"])
        )
        return owner, entry, None
    if kind == "credit_balance_threshold":
        lte = config.get("lte") or {}
        monetary = lte.get("monetary") or {}
        if lte.get("balance_type") != "monetary" or (monetary.get("currency") or "").lower() != "usd":
            return None, None, "a credit balance threshold not in USD: the imported credits are USD cents"
        if owner is None:
            return None, None, "a credit balance threshold without a customer filter"
        entry.update(alert_type=CREDIT_ALERT, threshold=number(monetary.get("value") or 0))
        return owner, entry, None
    return None, None, f"alert type {kind!r} has no Metronome equivalent here"


def unique_names(entries: list[dict[str, Any]]) -> None:
    """Alert names unique in their list (`_2`, `_3`... on repeats)."""
    seen: set[str] = set()
    for entry in entries:
        base, n = entry["name"], 2
        while entry["name"] in seen:
            entry["name"], n = f"{base}_{n}", n + 1
        seen.add(entry["name"])


def named_apart(subscriptions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A contract's subscriptions with distinct names (the stack tells its subscriptions apart by name)."""
    seen: dict[str, int] = {}
    for sub in subscriptions:
        name = sub.get("name")
        if name:
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                sub["name"] = f"{name} ({seen[name]})"
    return subscriptions


def import_alerts(
    alerts: list[dict[str, Any]],
    metric_by_meter: Mapping[str, str],
    name_by_stripe: Mapping[str, str],
    customers: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Billing alerts as catalog alerts: (those for every customer, for `catalog.yaml`; what was left
    out, with why; notes). A customer's alerts are set on its entry in `customers`."""
    account_wide: list[dict[str, Any]] = []
    skipped: list[str] = []
    by_name = {c["name"]: c for c in customers}
    for alert in alerts:
        owner, entry, reason = map_alert(alert, metric_by_meter, name_by_stripe)
        if entry is None:
            skipped.append(f"billing alert {alert['id']} ({alert.get('title')}): {reason}")
        elif owner is None:
            account_wide.append(entry)
        else:
            by_name[owner].setdefault("alerts", []).append(entry)
    for entries in [account_wide, *(c["alerts"] for c in customers if c.get("alerts"))]:
        unique_names(entries)
    notes = []
    if account_wide or any(c.get("alerts") for c in customers):
        notes.append(
            "billing alerts imported as Metronome alerts: their webhooks come from Metronome once an "
            "endpoint is set up in its dashboard (docs/stripe-migration.md, section 5)"
        )
    return account_wide, skipped, notes
