"""Catalog checks of the pricing entries of `catalog.yaml`: billable metrics, products and rate cards
(their rates), across entries: references by catalog name, group keys, what only some product types take,
and the rate rules Metronome holds (`providers/rate_rules.py`, shared with the rate card provider's Check).
"""

from __future__ import annotations

from metronome_iac.catalog_models import BillableMetric, Product, RateCard
from metronome_iac.catalog_read import Doc, YamlPath, known
from metronome_iac.catalog_validator import Entries, Validator


def check_pricing(v: Validator, cat_doc: Doc, cat: dict[str, Entries]) -> None:
    _check_metrics(v, cat_doc, cat["billable_metrics"])
    _check_stripe_meters(v, cat_doc, cat["billable_metrics"])
    _check_products(v, cat_doc, cat)
    _check_rate_cards(v, cat_doc, cat)


def _check_metrics(v: Validator, cat_doc: Doc, metrics: Entries) -> None:
    for i, m in metrics:
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


def _check_stripe_meters(v: Validator, doc: Doc, metrics: Entries) -> None:
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


def _check_products(v: Validator, cat_doc: Doc, cat: dict[str, Entries]) -> None:
    metrics: dict[str, BillableMetric] = {m.name: m for _, m in cat["billable_metrics"]}  # type: ignore[misc]
    products: dict[str, Product] = {p.name: p for _, p in cat["products"]}  # type: ignore[misc]
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
                f"unknown billable metric '{p.billable_metric}' {known(metrics)}",
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
                        f"unknown product '{ref}' {known(products)}",
                    )


def _check_rate_cards(v: Validator, cat_doc: Doc, cat: dict[str, Entries]) -> None:
    # The rules of what Metronome accepts in a rate, shared with the rate card provider's Check.
    from providers.rate_rules import rate_problems, schedule_problems

    products: dict[str, Product] = {p.name: p for _, p in cat["products"]}  # type: ignore[misc]
    for i, card in cat["rate_cards"]:
        assert isinstance(card, RateCard)
        entry, path = f"rate card '{card.name}'", ("rate_cards", i)
        custom_units = {c.custom_credit_type_id for c in card.credit_type_conversions or []}
        for j, rate in enumerate(card.rates):
            loc: YamlPath = ("rates", j)
            product = products.get(rate.product) if v.unique("products", rate.product) else None
            if v.dangling("products", rate.product):
                v.add(
                    cat_doc,
                    path,
                    entry,
                    loc + ("product",),
                    f"unknown product '{rate.product}' {known(products)}",
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
