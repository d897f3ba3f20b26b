"""Catalog -> Pulumi resources.

`declare(stack)` declares, in dependency order, BillableMetric -> Product -> RateCard -> Package, Alert,
Notification -> Customer -> its alerts -> Contract (and StripeIntegration when `environment.yaml` has a
`stripe:` section). References go by
output (`metric.id`), so the engine orders creates/replacements itself. The `*_inputs` builders are
pure functions shared with `drift` (which passes live ids instead of outputs), so the drift report
and `pulumi preview` compare the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metronome_iac.catalog import Stack
from metronome_iac.catalog_contracts import contract_terms
from metronome_iac.catalog_models import BillableMetric, Contract, Customer, Product, RateCard, Settings
from metronome_iac.catalog_packages import (
    alert_inputs,
    customer_alert_name,
    notification_inputs,
    package_inputs,
    with_product_ids,
)
from metronome_iac.reconcile_record import load_record

# Section name -> (provider module, Resource class name); also the order of declaration.
KINDS: dict[str, tuple[str, str]] = {
    "billable_metrics": ("providers.billable_metric", "BillableMetric"),
    "products": ("providers.product", "Product"),
    "rate_cards": ("providers.rate_card", "RateCard"),
    "packages": ("providers.package", "Package"),
    "alerts": ("providers.alert", "Alert"),  # for every customer (catalog.yaml)
    "notifications": ("providers.notification", "Notification"),
    "customers": ("providers.customer", "Customer"),
    "customer_alerts": ("providers.alert", "Alert"),  # `customers[].alerts` (environment.yaml)
    "contracts": ("providers.contract", "Contract"),
}
STRIPE_RESOURCE_NAME = "stripe"


def _dump(value: Any) -> Any:
    """Pydantic sub-models -> plain JSON-able values, dropping unset (None) fields."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    # None means "not set": the provider treats a missing key the same way, and set_mocks drops them.
    return {k: v for k, v in d.items() if v is not None}


# --------------------------------------------------------------------------------------------------
# catalog entry -> provider inputs (ids may be Outputs or plain strings)


def metric_inputs(m: BillableMetric) -> dict[str, Any]:
    return _clean(
        {
            "name": m.metronome_name,
            "aggregation_type": m.aggregation_type,
            "aggregation_key": m.aggregation_key,
            "event_type_filter": _dump(m.event_type_filter),
            "property_filters": _dump(m.property_filters),
            "group_keys": m.group_keys,
            "custom_fields": m.custom_fields,
            "adopt": m.adopt,
        }
    )


def product_inputs(
    p: Product, metric_ids: Mapping[str, Any], product_ids: Mapping[str, Any], settings: Settings
) -> dict[str, Any]:
    return _clean(
        {
            "name": p.metronome_name,
            "type": p.type,
            "billable_metric_id": metric_ids[p.billable_metric] if p.billable_metric else None,
            "pricing_group_key": p.pricing_group_key,
            "presentation_group_key": p.presentation_group_key,
            "quantity_conversion": _dump(p.quantity_conversion),
            "quantity_rounding": _dump(p.quantity_rounding),
            "tags": p.tags,
            "is_refundable": p.is_refundable,
            "composite_product_ids": (
                [product_ids[n] for n in p.composite_products] if p.composite_products is not None else None
            ),
            "composite_tags": p.composite_tags,
            "custom_fields": p.custom_fields,
            "update_starting_at": settings.product_update_starting_at,
            "adopt": p.adopt,
        }
    )


def rate_card_inputs(card: RateCard, product_ids: Mapping[str, Any]) -> dict[str, Any]:
    rates = []
    for r in card.rates:
        rate = r.model_dump(mode="json", exclude_none=True)
        rate["product_id"] = product_ids[rate.pop("product")]
        rates.append(rate)
    return _clean(
        {
            "name": card.metronome_name,
            "description": card.description,
            "fiat_credit_type_id": card.fiat_credit_type_id,
            "credit_type_conversions": _dump(card.credit_type_conversions),
            "aliases": _dump(card.aliases),
            "rates": rates,
            "custom_fields": card.custom_fields,
            "adopt": card.adopt,
        }
    )


def customer_inputs(c: Customer) -> dict[str, Any]:
    return _clean(
        {
            "name": c.metronome_name,
            "ingest_aliases": list(c.ingest_aliases),
            "external_id": c.external_id,
            "custom_fields": c.custom_fields,
            "adopt": c.adopt,
        }
    )


def contract_inputs(
    k: Contract,
    customer_ids: Mapping[str, Any],
    rate_card_ids: Mapping[str, Any],
    product_ids: Mapping[str, Any],
    settings: Settings,
    package_ids: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A contract entry as provider inputs. One made from a package names it by id when `package` is a
    package's catalog name (`package_ids`), else by alias; `package` itself is kept: it names the
    package across its versions (a replaced package keeps its contracts)."""
    common = {
        "customer_id": customer_ids[k.customer],
        "starting_at": k.starting_at,
        "custom_fields": k.custom_fields,
        "allow_replacement": k.allow_replacement or None,
        "allow_reinvoice": k.allow_reinvoice or None,
        "adopt": k.adopt,
    }
    if k.package is not None:
        by_id = k.package in (package_ids or {})
        return _clean(
            {
                **common,
                "package_id": (package_ids or {})[k.package] if by_id else None,
                "package_alias": None if by_id else k.package,
                "package": k.package,
            }
        )
    return _clean(
        {
            **common,
            "rate_card_id": rate_card_ids[k.rate_card] if k.rate_card else None,
            "ending_before": k.ending_before,
            "name": k.metronome_name,
            "net_payment_terms_days": (
                k.net_payment_terms_days
                if k.net_payment_terms_days is not None
                else settings.net_payment_terms_days
            ),
            **{
                f: with_product_ids(_dump(getattr(k, f)), product_ids)
                for f in ("commits", "credits", "overrides", "discounts")
                if getattr(k, f) is not None
            },
            **contract_terms(k, product_ids),
        }
    )


def stripe_inputs(stack: Stack, customer_ids: Mapping[str, Any]) -> dict[str, Any] | None:
    stripe = stack.environment.stripe
    if stripe is None:
        return None
    customers = []
    for c in stack.environment.customers:
        if c.stripe_customer_id:
            customers.append(
                _clean(
                    {
                        "customer_id": customer_ids[c.name],
                        "stripe_customer_id": c.stripe_customer_id,
                        "collection_method": c.stripe_collection_method,
                    }
                )
            )
    inputs: dict[str, Any] = {
        "expected_account_id": stripe.expected_account_id,
        "collection_method": stripe.collection_method,
        "go_live": stripe.go_live,
        "customers": customers,
        "leave_invoices_in_draft": stripe.leave_invoices_in_draft,
        "stripe_delivery_method_id": stripe.delivery_method_id,
    }
    if stripe.require_reconciled_days is not None:  # the go-live condition and its evidence
        inputs["require_reconciled_days"] = stripe.require_reconciled_days
        inputs["reconciliation"] = load_record(stack.path)
    return _clean(inputs)


def ordered_products(stack: Stack) -> list[Product]:
    """Composite products refer to other products: declare those first."""
    done: list[Product] = []
    pending = list(stack.catalog.products)
    names: set[str] = set()
    while pending:
        ready = [p for p in pending if all(n in names for n in p.composite_products or [])]
        if not ready:  # a cycle: let the provider report it rather than loop forever
            ready = pending[:1]
        for p in ready:
            done.append(p)
            names.add(p.name)
            pending.remove(p)
    return done


# --------------------------------------------------------------------------------------------------
# the program


def _resource_class(section: str) -> Any:
    # Imported on first use: a stack without contracts never imports the contract module.
    import importlib

    module_name, class_name = KINDS[section]
    return getattr(importlib.import_module(module_name), class_name)


def renamed_from(entry: Any, previous: list[str] | None = None) -> Any:
    """Resource options for an entry renamed with `previous_names` (or the `previous` resource names given):
    one alias per old name, so the engine takes the old resource's state over (an update that re-tags the
    object, never a new one)."""
    import pulumi

    previous = previous if previous is not None else getattr(entry, "previous_names", None) or []
    if not previous:
        return None
    return pulumi.ResourceOptions(aliases=[pulumi.Alias(name=old) for old in previous])


def previous_alert_names(customer: Any, alert: Any) -> list[str]:
    """The earlier resource names of a customer's alert: the alert's or its customer's rename."""
    customers = [customer.name, *(customer.previous_names or [])]
    alerts = [alert.name, *(alert.previous_names or [])]
    return [customer_alert_name(c, a) for c in customers for a in alerts][1:]


def declare(stack: Stack) -> dict[str, dict[str, Any]]:
    """Declare every resource of `stack`; returns {section: {catalog name: resource}}.

    Sections: those of KINDS (customer alerts under "customer_alerts", named `<customer>.<alert>`), and
    `stripe` ({"stripe": StripeIntegration} or {}).
    """
    env = stack.environment
    settings = env.settings
    out: dict[str, dict[str, Any]] = {section: {} for section in KINDS}
    out["stripe"] = {}

    for m in stack.catalog.billable_metrics:
        out["billable_metrics"][m.name] = _resource_class("billable_metrics")(
            m.name, opts=renamed_from(m), **metric_inputs(m)
        )
    metric_ids = {name: r.id for name, r in out["billable_metrics"].items()}

    product_ids: dict[str, Any] = {}
    for p in ordered_products(stack):
        resource = _resource_class("products")(
            p.name, opts=renamed_from(p), **product_inputs(p, metric_ids, product_ids, settings)
        )
        out["products"][p.name] = resource
        product_ids[p.name] = resource.id

    for card in stack.catalog.rate_cards:
        out["rate_cards"][card.name] = _resource_class("rate_cards")(
            card.name, opts=renamed_from(card), **rate_card_inputs(card, product_ids)
        )
    card_ids = {name: r.id for name, r in out["rate_cards"].items()}

    for pkg in stack.catalog.packages:
        out["packages"][pkg.name] = _resource_class("packages")(
            pkg.name, opts=renamed_from(pkg), **package_inputs(pkg, card_ids, product_ids)
        )
    for a in stack.catalog.alerts:
        out["alerts"][a.name] = _resource_class("alerts")(
            a.name, opts=renamed_from(a), **alert_inputs(a, metric_ids)
        )
    for n in stack.catalog.notifications:
        out["notifications"][n.name] = _resource_class("notifications")(
            n.name, opts=renamed_from(n), **notification_inputs(n)
        )

    for c in env.customers:
        out["customers"][c.name] = _resource_class("customers")(
            c.name, opts=renamed_from(c), **customer_inputs(c)
        )
    customer_ids = {name: r.id for name, r in out["customers"].items()}
    for c in env.customers:
        for a in c.alerts or []:
            name = customer_alert_name(c.name, a.name)
            out["customer_alerts"][name] = _resource_class("customer_alerts")(
                name,
                opts=renamed_from(a, previous_alert_names(c, a)),
                **alert_inputs(a, metric_ids, customer_ids[c.name]),
            )

    # The integration comes before contracts: a contract bills through Stripe only once go-live has
    # set its customer's Stripe configuration, and then it takes that configuration's id.
    stripe = stripe_inputs(stack, customer_ids)
    integration = None
    if stripe is not None:
        from providers.stripe_integration import StripeIntegration

        integration = StripeIntegration(STRIPE_RESOURCE_NAME, **stripe)
        out["stripe"][STRIPE_RESOURCE_NAME] = integration
    billed_through_stripe = {c.name for c in env.customers if c.stripe_customer_id}

    package_ids = {name: r.id for name, r in out["packages"].items()}
    for k in env.contracts:
        inputs = contract_inputs(k, customer_ids, card_ids, product_ids, settings, package_ids)
        # A contract made from a package takes the package's billing provider (no configuration of its own).
        if (
            integration is not None
            and stripe["go_live"]
            and k.customer in billed_through_stripe
            and not k.package
        ):
            inputs["billing_provider_configuration"] = stripe_configuration_for(
                integration, customer_ids[k.customer]
            )
        out["contracts"][k.name] = _resource_class("contracts")(
            k.name, opts=_with_package(renamed_from(k), k, stack, out["packages"]), **inputs
        )
    return out


def _with_package(opts: Any, k: Contract, stack: Stack, packages: dict[str, Any]) -> Any:
    """A contract made from a package by alias depends on the packages holding the alias: the engine
    makes them first (by catalog name, the package's id output already orders them)."""
    if k.package is None or k.package in packages:
        return opts
    import pulumi

    holders = [
        packages[p.name] for p in stack.catalog.packages if any(a.name == k.package for a in p.aliases or [])
    ]
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=holders))


def stripe_configuration_for(integration: Any, customer_id: Any) -> Any:
    """The contract's `billing_provider_configuration`: its customer's Stripe configuration id."""
    import pulumi

    def pick(args: list[Any]) -> dict[str, str] | None:
        ids, cid = args
        if cid in (ids or {}):
            return {"billing_provider_configuration_id": ids[cid]}
        if pulumi.runtime.is_dry_run():
            # A preview that sees the integration's previous outputs (going live, a configuration to set
            # again): the id exists only once the integration's update has run, before this contract's.
            pulumi.log.info(f"customer {cid}: its Stripe configuration is set by this update (go-live)")
            return None
        # `up`: never let a live contract silently miss its invoicing route.
        raise ValueError(f"StripeIntegration has no Stripe configuration for customer {cid}")

    return pulumi.Output.all(integration.billing_provider_configuration_ids, customer_id).apply(pick)
