"""`metronome-iac export --out DIR`: write a live account as `catalog.yaml` + `environment.yaml`.

Every entry carries `adopt: {id: ...}` so the first `pulumi up` with the exported files takes the
objects over instead of creating them; references use catalog names. Objects are read through the
providers' `list_objects` (input shape), so what is written is exactly what the provider will compare
against: after adoption the next plan is empty. The written files must pass `load_stack`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from metronome_iac.catalog import (
    CATALOG_FILE,
    ENVIRONMENT_FILE,
    BillableMetric,
    Catalog,
    CatalogError,
    Contract,
    Customer,
    Environment,
    Product,
    RateCard,
    catalog_to_yaml,
    environment_to_yaml,
    load_stack,
)
from metronome_iac.program import KINDS

IDENTITY_FIELD = "iac_identity"
HEADER = (
    "# Exported from {url} by `metronome-iac export`.\n"
    "# Every entry adopts its live object (adopt: {{id: ...}}): the first `pulumi up` creates nothing.\n"
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="directory to write catalog.yaml and environment.yaml")
    parser.add_argument("--base-url", help="Metronome API URL (default: METRONOME_BASE_URL or the real API)")


def _slug(text: str | None) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", (text or "").strip().lower()).strip("_.-")
    return slug


class _Names:
    """Catalog names for live objects: the resource name from iac_identity, else a slug of the name."""

    def __init__(self) -> None:
        self.used: dict[str, set[str]] = {}

    def pick(self, section: str, obj: dict[str, Any], object_id: str, fallback: str) -> str:
        tag = (obj.get("custom_fields") or {}).get(IDENTITY_FIELD) or ""
        if not tag and str(obj.get("uniqueness_key", "")).startswith("iac:"):
            tag = obj["uniqueness_key"][4:]
        base = tag.split("#", 1)[0].rsplit("/", 1)[-1] if tag else ""
        base = _slug(base) or _slug(obj.get("name")) or f"{fallback}_{object_id[:8]}"
        if not re.match(r"^[A-Za-z0-9]", base):
            base = f"{fallback}_{base}"
        used = self.used.setdefault(section, set())
        name, n = base, 2
        while name in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name)
        return name


def _custom_fields(obj: dict[str, Any]) -> dict[str, str] | None:
    fields = {k: v for k, v in (obj.get("custom_fields") or {}).items() if k != IDENTITY_FIELD}
    return fields or None


def _display(catalog_name: str, live_name: str | None) -> str | None:
    return live_name if live_name and live_name != catalog_name else None


def _refs(items: list[dict[str, Any]] | None, products: dict[str, str]) -> list[dict[str, Any]] | None:
    """product_id / applicable_product_ids -> catalog names (commits, credits, overrides, discounts)."""
    if not items:
        return None
    out = []
    for item in items:
        d = dict(item)
        if "product_id" in d:
            d["product"] = products[d.pop("product_id")]
        if "applicable_product_ids" in d:
            d["applicable_products"] = [products[i] for i in d.pop("applicable_product_ids")]
        out.append(d)
    return out


def _module(section: str) -> Any:
    return importlib.import_module(KINDS[section][0])


def export_account(client: Any, warn: Any = None) -> tuple[Catalog, Environment]:
    """Everything live (non-archived) in the account, as catalog + environment models."""
    warn = warn or (lambda msg: print(f"warning: {msg}", file=sys.stderr))
    names = _Names()
    ids: dict[str, dict[str, str]] = {s: {} for s in KINDS}  # section -> live id -> catalog name

    metrics: list[BillableMetric] = []
    for object_id, obj in _module("billable_metrics").list_objects(client):
        name = names.pick("billable_metrics", obj, object_id, "metric")
        data = {k: v for k, v in obj.items() if k not in ("name", "custom_fields")}
        metrics.append(
            BillableMetric(
                name=name,
                display_name=_display(name, obj.get("name")),
                custom_fields=_custom_fields(obj),
                adopt={"id": object_id},
                **data,
            )
        )
        ids["billable_metrics"][object_id] = name

    live_products = list(_module("products").list_objects(client))
    for object_id, obj in live_products:
        ids["products"][object_id] = names.pick("products", obj, object_id, "product")
    products: list[Product] = []
    for object_id, obj in live_products:
        name = ids["products"][object_id]
        data = {
            k: v
            for k, v in obj.items()
            if k
            not in (
                "name",
                "custom_fields",
                "billable_metric_id",
                "composite_product_ids",
                "update_starting_at",
            )
        }
        metric_id = obj.get("billable_metric_id")
        if metric_id and metric_id not in ids["billable_metrics"]:
            warn(
                f"product {object_id} ('{obj.get('name')}') uses billable metric {metric_id}, "
                "which is archived: skipped"
            )
            continue
        composite = obj.get("composite_product_ids")
        products.append(
            Product(
                name=name,
                display_name=_display(name, obj.get("name")),
                billable_metric=ids["billable_metrics"].get(metric_id) if metric_id else None,
                composite_products=[ids["products"][i] for i in composite] if composite else None,
                custom_fields=_custom_fields(obj),
                adopt={"id": object_id},
                **data,
            )
        )
    kept_products = {p.name for p in products}
    product_names = {i: n for i, n in ids["products"].items() if n in kept_products}

    cards: list[RateCard] = []
    for object_id, obj in _module("rate_cards").list_objects(client):
        name = names.pick("rate_cards", obj, object_id, "rate_card")
        rates = []
        for rate in obj.get("rates") or []:
            r = dict(rate)
            product_id = r.pop("product_id", None)
            if product_id not in product_names:
                warn(f"rate card '{name}': a rate on product {product_id} (not exported) is left out")
                continue
            r["product"] = product_names[product_id]
            rates.append(r)
        data = {k: v for k, v in obj.items() if k not in ("name", "custom_fields", "rates")}
        cards.append(
            RateCard(
                name=name,
                display_name=_display(name, obj.get("name")),
                rates=rates,
                custom_fields=_custom_fields(obj),
                adopt={"id": object_id},
                **data,
            )
        )
        ids["rate_cards"][object_id] = name

    customers: list[Customer] = []
    for object_id, obj in _module("customers").list_objects(client):
        name = names.pick("customers", obj, object_id, "customer")
        data = {k: v for k, v in obj.items() if k not in ("name", "custom_fields")}
        customers.append(
            Customer(
                name=name,
                display_name=_display(name, obj.get("name")),
                custom_fields=_custom_fields(obj),
                adopt={"id": object_id},
                **data,
            )
        )
        ids["customers"][object_id] = name

    contracts: list[Contract] = []
    contract_module = _module("contracts")
    for customer_id, customer_name in ids["customers"].items():
        for object_id, obj in contract_module.list_objects(client, customer_id):
            card_id = obj.get("rate_card_id")
            if card_id not in ids["rate_cards"]:
                warn(f"contract {object_id} of customer '{customer_name}' has no exported rate card: skipped")
                continue
            fallback = f"{customer_name}_contract"
            name = names.pick(
                "contracts", {**obj, "name": obj.get("name") or fallback}, object_id, "contract"
            )
            skip = (
                "name",
                "custom_fields",
                "customer_id",
                "rate_card_id",
                "commits",
                "credits",
                "overrides",
                "discounts",
                "uniqueness_key",
                "billing_provider_configuration",
                "allow_replacement",
            )
            data = {k: v for k, v in obj.items() if k not in skip}
            try:
                contracts.append(
                    Contract(
                        name=name,
                        # A contract's Metronome name is optional: only a live name becomes display_name.
                        display_name=obj.get("name") or None,
                        customer=customer_name,
                        rate_card=ids["rate_cards"][card_id],
                        commits=_refs(obj.get("commits"), product_names),
                        credits=_refs(obj.get("credits"), product_names),
                        overrides=_refs(obj.get("overrides"), product_names),
                        discounts=_refs(obj.get("discounts"), product_names),
                        custom_fields=_custom_fields(obj),
                        adopt={"id": object_id},
                        **data,
                    )
                )
            except KeyError as err:
                warn(
                    f"contract {object_id} of customer '{customer_name}' uses product {err} "
                    "(not exported): skipped"
                )
    return (
        Catalog(billable_metrics=metrics, products=products, rate_cards=cards),
        Environment(customers=customers, contracts=contracts),
    )


def write_stack(out: Path, catalog: Catalog, environment: Environment, source: str) -> None:
    """Write both files, after checking in a scratch copy that they load."""
    header = HEADER.format(url=source)
    files = {
        CATALOG_FILE: catalog_to_yaml(catalog, header),
        ENVIRONMENT_FILE: environment_to_yaml(environment, header),
    }
    with tempfile.TemporaryDirectory() as scratch:
        for name, text in files.items():
            (Path(scratch) / name).write_text(text, encoding="utf-8")
        load_stack(scratch)  # raises CatalogError: never write files that would not load
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    token = os.environ.get("METRONOME_BEARER_TOKEN")
    if not token:
        print("error: set METRONOME_BEARER_TOKEN to the account's API token", file=sys.stderr)
        return 1
    base_url = args.base_url or os.environ.get("METRONOME_BASE_URL")
    try:
        from providers.client import make_client

        client = make_client(base_url, token, max_retries=2)
        catalog, environment = export_account(client)
        write_stack(Path(args.out), catalog, environment, base_url or "https://api.metronome.com")
    except CatalogError as err:
        print(f"error: the export would not load as a stack:\n{err}", file=sys.stderr)
        return 1
    except Exception as err:
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    counts = (
        f"{len(catalog.billable_metrics)} metrics, {len(catalog.products)} products, "
        f"{len(catalog.rate_cards)} rate cards, {len(environment.customers)} customers, "
        f"{len(environment.contracts)} contracts"
    )
    print(f"wrote {Path(args.out) / CATALOG_FILE} and {Path(args.out) / ENVIRONMENT_FILE}: {counts}")
    return 0
