"""Catalog checks of `environment.yaml` across entries: the Stripe section's reconcile condition, customers
(ingest aliases unique across customers, Stripe fields, their alerts via `catalog_packages.py`) and contracts
(`catalog_contracts.py`).
"""

from __future__ import annotations

from metronome_iac.catalog_contracts import check_contract
from metronome_iac.catalog_models import BillableMetric, Contract, Customer, Product, RateCard, Stripe
from metronome_iac.catalog_packages import check_customer_alerts
from metronome_iac.catalog_read import Doc
from metronome_iac.catalog_types import Model
from metronome_iac.catalog_validator import Entries, Validator


def check_environment(
    v: Validator,
    cat_doc: Doc,
    env_doc: Doc,
    cat: dict[str, Entries],
    env: dict[str, Entries],
    single: dict[str, Model | None],
) -> None:
    _check_reconcile_condition(
        v, cat_doc, env_doc, single.get("stripe"), cat["billable_metrics"], env["customers"]
    )
    _check_customers(v, env_doc, env["customers"])
    _check_contracts(v, env_doc, cat, env)


def _check_reconcile_condition(
    v: Validator, cat_doc: Doc, env_doc: Doc, stripe: Model | None, metrics: Entries, customers: Entries
) -> None:
    """`require_reconciled_days` needs something reconcile compares: a metered metric, a linked customer."""
    by_name: dict[str, BillableMetric] = {m.name: m for _, m in metrics}  # type: ignore[misc]
    if isinstance(stripe, Stripe) and stripe.require_reconciled_days is not None:
        metered = [m.name for m in by_name.values() if m.stripe_meter]
        linked = [c.name for _, c in customers if getattr(c, "stripe_customer_id", None)]
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


def _check_customers(v: Validator, env_doc: Doc, customers: Entries) -> None:
    alias_owner: dict[str, str] = {}
    for i, c in customers:
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


def _check_contracts(v: Validator, env_doc: Doc, cat: dict[str, Entries], env: dict[str, Entries]) -> None:
    customers: dict[str, Customer] = {c.name: c for _, c in env["customers"]}  # type: ignore[misc]
    products: dict[str, Product] = {p.name: p for _, p in cat["products"]}  # type: ignore[misc]
    cards: dict[str, RateCard] = {c.name: c for _, c in cat["rate_cards"]}  # type: ignore[misc]
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
