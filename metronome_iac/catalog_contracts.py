"""Catalog checks of contracts (`environment.yaml` `contracts:`): their references, their dates, the terms
the provider takes (subscriptions, scheduled charges, recurring commits and credits, threshold
configurations, usage statement schedule), and contracts made from a package.

Terms use metronome-sdk's field names with catalog names for references (`product`, `applicable_products`
wherever the API takes `product_id` / `applicable_product_ids`, `subscription_rate.product` too), and are
checked by the contract provider's own schema and Check rules (`providers/contract.py`), so the catalog
and the provider never disagree. On top, what only the catalog can see: a subscription's product is a
SUBSCRIPTION product with a rate of its billing frequency on the contract's rate card (the create
docstring: "Together with product_id, must match existing rate on the rate card").

A contract may name `package:` (a package of the catalog, by its name or by one of its aliases) instead of
a rate card and terms: it is then made from the package and takes only what Metronome allows with a
package (customer, start, custom fields).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from metronome_iac.catalog_packages import _check_with_provider, _Placeholders, _product_refs
from metronome_iac.catalog_packages import with_product_ids as with_product_ids
from metronome_iac.catalog_read import known
from metronome_iac.catalog_types import parse_ts

Loc = tuple[Any, ...]
Report = Callable[[Loc, str], None]

# Terms (besides commits, credits, overrides, discounts, which are typed catalog models) taken as written.
TERMS = (
    "scheduled_charges",
    "subscriptions",
    "recurring_commits",
    "recurring_credits",
    "spend_threshold_configuration",
    "prepaid_balance_threshold_configuration",
    "usage_statement_schedule",
)
# What a contract made from a package may not set: the package gives it (ContractCreateParams.package_id).
NOT_WITH_PACKAGE = (
    "rate_card",
    "display_name",
    "ending_before",
    "net_payment_terms_days",
    "commits",
    "credits",
    "overrides",
    "discounts",
    *TERMS,
)


def package_reference(ref: str, packages: list[Any]) -> tuple[str, Any] | None:
    """("id", the package entry) when `ref` is a package's catalog name, ("alias", the entries holding
    the alias) when it is an alias; None when it is neither."""
    by_name = next((p for p in packages if p.name == ref), None)
    if by_name is not None:
        return "id", by_name
    holders = [p for p in packages if any(a.name == ref for a in p.aliases or [])]
    return ("alias", holders) if holders else None


def _alias_covers(alias: Any, at: str) -> bool:
    when = parse_ts(at)
    start = parse_ts(alias.starting_at) if alias.starting_at else None
    end = parse_ts(alias.ending_before) if alias.ending_before else None
    return (start is None or start <= when) and (end is None or when < end)


def _check_package(k: Any, packages: list[Any], report: Report) -> None:
    for field in NOT_WITH_PACKAGE:
        if getattr(k, field, None) not in (None, []):
            report(
                (field,),
                f"a contract made from a package takes its rate card and terms from package '{k.package}' "
                f"(Metronome allows only the customer, start and custom fields with a package); to fix: "
                f"remove {field} here (set it on the package), or drop package for a contract of its own",
            )
    found = package_reference(k.package, packages)
    if found is None:
        names = [p.name for p in packages] + [a.name for p in packages for a in p.aliases or []]
        report(("package",), f"names no package or package alias of the catalog {known(names)}")
        return
    kind, target = found
    if kind == "alias":
        covering = [
            p
            for p in target
            for a in p.aliases or []
            if a.name == k.package and _alias_covers(a, k.starting_at)
        ]
        if not covering:
            report(
                ("package",),
                f"alias '{k.package}' names no package at the contract's start ({k.starting_at}): Metronome "
                "resolves an alias as of the start; to fix: move starting_at into the alias window, or name "
                "the package by its catalog name",
            )


def _check_subscriptions(
    k: Any, products: Mapping[str, Any], cards: Mapping[str, Any], report: Report
) -> None:
    card = cards.get(k.rate_card) if k.rate_card else None
    for i, sub in enumerate(k.subscriptions or []):
        rate = sub.get("subscription_rate") if isinstance(sub, dict) else None
        if not isinstance(rate, dict) or rate.get("product") not in products:
            continue  # reported by the schema or reference checks
        product = products[rate["product"]]
        loc = ("subscriptions", i, "subscription_rate", "product")
        if product.type != "SUBSCRIPTION":
            report(
                loc,
                f"product '{product.name}' is {product.type}: a subscription bills a SUBSCRIPTION product",
            )
            continue
        frequency = rate.get("billing_frequency")
        if card is not None and not any(
            r.product == product.name and r.billing_frequency == frequency for r in card.rates
        ):
            report(
                loc,
                f"rate card '{card.name}' has no rate for '{product.name}' billed {frequency} (a "
                "subscription's product and billing_frequency must match a rate of the contract's rate card);"
                f" to fix: add a FLAT rate for it with billing_frequency {frequency}",
            )


def check_contract(
    k: Any,
    dangling: Callable[[str, Any], bool],
    unknown: set[str],
    entries: Mapping[str, Mapping[str, Any]],
    packages: list[Any],
    report: Report,
) -> None:
    """The checks of one contract entry beyond its schema (see the module docstring). `dangling(section,
    name)`: the name is declared nowhere in the section, and that is the first cause to report;
    `unknown`: sections whose file could not be read; `entries`: the valid customers, products and rate
    cards by name."""
    products, cards = entries["products"], entries["rate_cards"]
    if dangling("customers", k.customer):
        report(("customer",), f"unknown customer '{k.customer}' {known(entries['customers'])}")
    if dangling("rate_cards", k.rate_card):
        report(("rate_card",), f"unknown rate card '{k.rate_card}' {known(cards)}")
    if k.ending_before and parse_ts(k.ending_before) <= parse_ts(k.starting_at):
        report(
            ("ending_before",), f"the contract ends ({k.ending_before}) before it starts ({k.starting_at})"
        )
    if k.package is not None:
        if "packages" not in unknown:
            _check_package(k, packages, report)
        return
    if k.rate_card is None:
        report(("rate_card",), "a contract needs a rate card, or a package to be made from; to fix: set one")

    def product_ref(loc: Loc, ref: Any) -> None:
        if dangling("products", ref):
            report(loc, f"unknown product '{ref}' {known(products)}")

    _check_grants(k, product_ref, report)
    if "products" not in unknown:
        for field in TERMS:
            _product_refs(getattr(k, field), (field,), set(products), report)
    _check_subscriptions(k, products, cards, report)
    from providers.contract import ContractProvider

    inputs = {
        "customer_id": "<customer>",
        "rate_card_id": "<rate card>",
        "starting_at": k.starting_at,
        **{f: with_product_ids(getattr(k, f), _Placeholders()) for f in TERMS if getattr(k, f) is not None},
    }
    _check_with_provider(ContractProvider(), inputs, report)


def _check_grants(k: Any, product_ref: Callable[[Loc, Any], Any], report: Report) -> None:
    """Commits, credits, overrides and discounts (typed catalog models): references and dates."""
    for section in ("commits", "credits"):
        for j, item in enumerate(getattr(k, section) or []):
            loc = (section, j)
            product_ref(loc + ("product",), item.product)
            for n, ref in enumerate(item.applicable_products or []):
                product_ref(loc + ("applicable_products", n), ref)
            for n, si in enumerate(item.access_schedule.schedule_items):
                if parse_ts(si.ending_before) <= parse_ts(si.starting_at):
                    report(
                        loc + ("access_schedule", "schedule_items", n, "ending_before"),
                        f"ends ({si.ending_before}) before it starts ({si.starting_at})",
                    )
            if section == "commits" and item.type == "POSTPAID" and item.invoice_schedule is None:
                report(loc + ("invoice_schedule",), "POSTPAID commits need an invoice_schedule (the true-up)")
    for j, o in enumerate(k.overrides or []):
        product_ref(("overrides", j, "product"), o.product)
        for n, spec in enumerate(o.override_specifiers or []):
            product_ref(("overrides", j, "override_specifiers", n, "product"), spec.product)
        if o.ending_before and parse_ts(o.ending_before) <= parse_ts(o.starting_at):
            report(
                ("overrides", j, "ending_before"),
                f"ends ({o.ending_before}) before it starts ({o.starting_at})",
            )
    for j, d in enumerate(k.discounts or []):
        product_ref(("discounts", j, "product"), d.product)


def contract_terms(k: Any, product_ids: Mapping[str, Any]) -> dict[str, Any]:
    """The entry's terms (TERMS) as provider inputs: catalog product names as ids."""
    return {f: with_product_ids(getattr(k, f), product_ids) for f in TERMS if getattr(k, f) is not None}


WEBHOOK_CHECKLIST = "docs/stripe-migration.md, section 5 (Webhooks: the dashboard checklist)"


def payment_gate_reminders(contracts: list[Any], packages: list[Any]) -> list[str]:
    """A reminder for each contract or package declaring a payment-gated threshold configuration: its
    commits wait for a payment, and the payment gate webhooks that say how it went are configured in
    Metronome's dashboard, not through the API (so nothing here can check them)."""
    from providers.contract_thresholds import payment_gated

    out = []
    for kind, entries in (("contract", contracts), ("package", packages)):
        for entry in entries:
            gated = payment_gated({f: getattr(entry, f, None) for f in TERMS})
            if gated:
                out.append(
                    f"{kind} '{entry.name}' declares payment-gated {', '.join(gated)}: its threshold "
                    "commits wait for the payment, and Metronome reports a failed or pending one only by "
                    "webhook; make sure the payment gate webhooks are configured in Metronome's dashboard "
                    f"({WEBHOOK_CHECKLIST})"
                )
    return out
