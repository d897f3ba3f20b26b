"""`metronome-iac export --out DIR`: write a live account as `catalog.yaml` + `environment.yaml`.

Every entry carries `adopt: {id: ...}` so the first `pulumi up` with the exported files takes the
objects over instead of creating them; references use catalog names. Objects are read through the
providers' `list_objects` (input shape), so what is written is exactly what the provider will compare
against: after adoption the next plan is empty. The written files must pass `load_stack`.

Packages and notifications are exported as listed; alerts through the exported customers (the API lists
them per customer only): one every customer sees goes to `catalog.yaml`, one a single customer sees under
that customer. A notification's listing carries no key, so its catalog name comes from its Metronome name.

Customers' Stripe links (their active Stripe billing provider configurations) become
`stripe_customer_id` / `stripe_collection_method`, and with Stripe connected a `stripe:` section with
`go_live: true`: the links are already live, and a live StripeIntegration re-uses configurations that
match instead of setting new ones. The Stripe account id cannot be read from Metronome: it comes from
`--stripe-account`, else a placeholder that the preview refuses until it is filled in.

An `--out` that already holds catalog.yaml or environment.yaml is refused unless `--force` (a reviewed
stack's comments, `settings:` and `stripe:` would be lost); nothing is written when the export fails.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from metronome_iac.catalog import (
    CATALOG_FILE,
    ENVIRONMENT_FILE,
    Catalog,
    CatalogError,
    Environment,
    catalog_to_yaml,
    dump_yaml,
    environment_to_yaml,
    load_stack,
)
from metronome_iac.catalog_contracts import TERMS
from metronome_iac.catalog_models import (
    KIND_LABELS,
    BillableMetric,
    Contract,
    Customer,
    Product,
    RateCard,
    Stripe,
)
from metronome_iac.catalog_packages import Alert, Notification, Package
from metronome_iac.cli import EXIT_OK, CommandError, refuse_overwrite
from metronome_iac.cli import warn as print_warning
from metronome_iac.drift import (
    DEFAULT_BASE_URL,
    IDENTITY_FIELD,
    describe_failure,
    identity_of,
    provider_module,
    resolve_base_url,
    stripe_connections,
    stripe_link,
)
from metronome_iac.program import KINDS
from metronome_iac.progress import CONCURRENCY, Progress, quiet, run_concurrently

HEADER = (
    "# Exported from {url} by `metronome-iac export`.\n"
    "# Every entry adopts its live object (adopt: {{id: ...}}): the first `pulumi up` creates nothing.\n"
)
# Accepted by the catalog (acct_ + letters/digits) so the files load; with go_live true the preview's
# account check refuses it, so a stack is never applied with it.
ACCOUNT_PLACEHOLDER = "acct_FILLME"
ACCOUNT_HINT = (
    "stripe.expected_account_id is the placeholder {placeholder}: set it to the id (acct_...) of the "
    "Stripe account connected to this Metronome account, or export again with --stripe-account acct_...; "
    "until then the preview refuses the stack"
)
STRIPE_CUSTOMER_ID = re.compile(r"^cus_[A-Za-z0-9]+$")  # the catalog's pattern
Entry = TypeVar("Entry", BillableMetric, Product, RateCard, Customer, Contract)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="directory to write catalog.yaml and environment.yaml")
    parser.add_argument("--base-url", help="Metronome API URL (default: METRONOME_BASE_URL or the real API)")
    parser.add_argument(
        "--force", action="store_true", help="overwrite catalog.yaml / environment.yaml already in --out"
    )
    parser.add_argument(
        "--stripe-account",
        help="Stripe account id (acct_...) for stripe.expected_account_id (Metronome does not expose it)",
    )


def _slug(text: str | None) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", (text or "").strip().lower()).strip("_.-")
    return slug


class _Names:
    """Catalog names for live objects: the resource name from iac_identity, else a slug of the name."""

    def __init__(self) -> None:
        self.used: dict[str, set[str]] = {}

    def pick(self, section: str, obj: dict[str, Any], object_id: str, fallback: str) -> str:
        tag = identity_of(obj)  # the same tag drift and the providers match on
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


def _entry(
    model: type[Entry],
    name: str,
    object_id: str,
    obj: dict[str, Any],
    drop: tuple[str, ...] = (),
    **refs: Any,
) -> Entry:
    """A catalog entry adopting live object `obj`: its input-shaped fields minus `drop` (fields the
    caller turns into catalog references, passed in `refs`), `display_name` from the live name."""
    data = {k: v for k, v in obj.items() if k not in ("name", "custom_fields", *drop)}
    refs.setdefault("display_name", _display(name, obj.get("name")))
    return model(name=name, custom_fields=_custom_fields(obj), adopt={"id": object_id}, **refs, **data)


def _built(
    what: str, warn: Callable[[str], None], model: type[Entry], *args: Any, **refs: Any
) -> Entry | None:
    """`_entry(model, ...)`, or None with the reason when the catalog cannot hold the live object (a field
    it does not model, a shape it refuses): one object left out, not the whole export."""
    try:
        return _entry(model, *args, **refs)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first.get("loc") or ()) or "entry"
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        warn(f"{what}: {where}: {first.get('msg')}{more}: the catalog cannot hold it: skipped")
        return None


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


def _stripe_links(
    client: Any,
    customer_names: dict[str, str],
    billing_refs: dict[str, dict[str, str | None]],
    live: bool,
    warn: Callable[[str], None],
    delivery_methods: set[str] | None = None,
) -> dict[str, tuple[str, str]]:
    """{customer_id: (stripe_customer_id, collection method)} from each customer's active Stripe
    billing provider configuration. `billing_refs`: {customer_id: {contract name: configuration id the
    contract invoices through}}; `live`: the links will be exported with go_live true. The delivery
    method ids of the exported configurations are added to `delivery_methods`."""
    from providers.stripe_configurations import stripe_configurations

    active = stripe_configurations(client, sorted(customer_names), None, "export", missing_ok=True)
    links: dict[str, tuple[str, str]] = {}
    for customer_id, configs in sorted(active.items()):
        if not configs:
            continue
        name, refs = customer_names[customer_id], billing_refs.get(customer_id, {})
        # Several active ones: the one its contracts invoice through is the customer's real route.
        chosen = next((c for c in configs if c["id"] in refs.values()), configs[0])
        stripe_customer_id, method = stripe_link(chosen)
        if not stripe_customer_id or not STRIPE_CUSTOMER_ID.match(stripe_customer_id):
            warn(
                f"customer '{name}': Stripe configuration {chosen['id']} has no usable Stripe customer id "
                f"({stripe_customer_id!r}): its Stripe link is left out"
            )
            continue
        links[customer_id] = (stripe_customer_id, method)
        if delivery_methods is not None and chosen.get("delivery_method_id"):
            delivery_methods.add(chosen["delivery_method_id"])
        if len(configs) > 1:
            others = ", ".join(c["id"] for c in configs if c is not chosen)
            warn(
                f"customer '{name}' has {len(configs)} active Stripe configurations: exported {chosen['id']} "
                f"({stripe_customer_id}, {method}); once live, `pulumi up` archives the other(s) on the same "
                f"Stripe account ({others})"
            )
        for contract, ref in sorted(refs.items()):
            if live and ref != chosen["id"]:
                warn(
                    f"contract '{contract}' of customer '{name}' does not invoice through its Stripe "
                    f"configuration {chosen['id']} (it uses {ref or 'none'}): with go_live: true the first "
                    "`pulumi up` sets that configuration on the contract"
                )
    return links


def _with_stripe(
    customers: list[Customer], links: dict[str, tuple[str, str]], default_method: str
) -> list[Customer]:
    out = []
    for c in customers:
        link = links.get((c.adopt or {}).get("id", ""))
        if link:
            method = link[1] if link[1] != default_method else None  # only an override is written
            data = {**c.model_dump(exclude_none=True), "stripe_customer_id": link[0]}
            c = Customer.model_validate({**data, "stripe_collection_method": method})
        out.append(c)
    return out


def _read_account(client: Any, progress: Progress, workers: int) -> dict[str, Any]:
    """Every listing the export needs, `workers` calls at a time: {section: [(id, object)]} plus the
    Stripe connections ("stripe_connections"); rate cards with their rates."""
    with progress.task("listing the account's objects", 5) as task:
        listings: dict[str, Callable[[], Any]] = {
            "billable_metrics": lambda: provider_module("billable_metrics").list_objects(client),
            "products": lambda: provider_module("products").list_objects(client),
            "rate_cards": lambda: provider_module("rate_cards").list_objects(client, with_rates=False),
            "customers": lambda: provider_module("customers").list_objects(client),
            "stripe_connections": lambda: stripe_connections(client),
        }
        listed = run_concurrently(lambda list_all: list_all(), listings.values(), task, workers)
    live = dict(zip(listings, listed, strict=True))
    cards = live["rate_cards"]
    with progress.task("reading rate cards and their rates", len(cards)) as task:
        read = run_concurrently(
            lambda card: provider_module("rate_cards").read_object(client, card[0]), cards, task, workers
        )
    # A card archived between the listing and its read is no longer live.
    live["rate_cards"] = [(card_id, card) for (card_id, _), card in zip(cards, read, strict=True) if card]
    customers = [object_id for object_id, _ in live["customers"]]
    with progress.task("listing each customer's contracts", len(customers)) as task:
        contracts = run_concurrently(
            lambda customer_id: provider_module("contracts").list_objects(client, customer_id),
            customers,
            task,
            workers,
        )
    live["contracts"] = dict(zip(customers, contracts, strict=True))
    return live


def export_account(
    client: Any,
    warn: Callable[[str], None] | None = None,
    stripe_account: str | None = None,
    progress: Progress | None = None,
    workers: int = CONCURRENCY,
) -> tuple[Catalog, Environment]:
    """Everything live (non-archived) in the account, as catalog + environment models.

    `stripe_account`: the Stripe account id for `stripe.expected_account_id` (else a placeholder).
    """
    warn = warn or print_warning
    progress = progress or quiet()
    live = _read_account(client, progress, workers)
    names = _Names()
    ids: dict[str, dict[str, str]] = {s: {} for s in KINDS}  # section -> live id -> catalog name

    metrics: list[BillableMetric] = []
    for object_id, obj in live["billable_metrics"]:
        name = names.pick("billable_metrics", obj, object_id, "metric")
        metric = _built(
            f"billable metric {object_id} ('{obj.get('name')}')", warn, BillableMetric, name, object_id, obj
        )
        if metric is not None:
            metrics.append(metric)
            ids["billable_metrics"][object_id] = name

    live_products = dict(live["products"])
    for object_id, obj in live_products.items():
        ids["products"][object_id] = names.pick("products", obj, object_id, "product")
    # A product is exported when its metric is, and a composite one when all its parts are.
    exportable = set(live_products)
    for object_id, obj in live_products.items():
        metric_id = obj.get("billable_metric_id")
        if metric_id and metric_id not in ids["billable_metrics"]:
            warn(
                f"product {object_id} ('{obj.get('name')}') uses billable metric {metric_id}, "
                "which is archived or not exported: skipped"
            )
            exportable.discard(object_id)
    changed = True
    while changed:
        changed = False
        for object_id in sorted(exportable):
            missing = [
                i for i in live_products[object_id].get("composite_product_ids") or [] if i not in exportable
            ]
            if missing:
                warn(
                    f"product {object_id} ('{live_products[object_id].get('name')}') bundles product(s) "
                    f"{', '.join(missing)}, archived or not exported: skipped"
                )
                exportable.discard(object_id)
                changed = True
    products: list[Product] = []
    for object_id, obj in live_products.items():
        if object_id not in exportable:
            continue
        name = ids["products"][object_id]
        metric_id = obj.get("billable_metric_id")
        composite = obj.get("composite_product_ids")
        product = _built(
            f"product {object_id} ('{obj.get('name')}')",
            warn,
            Product,
            name,
            object_id,
            obj,
            ("billable_metric_id", "composite_product_ids", "update_starting_at"),
            billable_metric=ids["billable_metrics"].get(metric_id) if metric_id else None,
            composite_products=[ids["products"][i] for i in composite] if composite else None,
        )
        if product is not None:
            products.append(product)
    kept_products = {p.name for p in products}
    product_names = {i: n for i, n in ids["products"].items() if n in kept_products}

    cards: list[RateCard] = []
    for object_id, obj in live["rate_cards"]:
        name = names.pick("rate_cards", obj, object_id, "rate_card")
        unexported = sorted({r.get("product_id") for r in obj.get("rates") or []} - set(product_names))
        if unexported:
            # Adopted without those rates, the next `pulumi up` would end them: a billing change no
            # export should make. Export the products first (or end those rates), then export again.
            warn(
                f"rate card {object_id} ('{obj.get('name')}') has active rates on product(s) "
                f"{', '.join(map(str, unexported))}, archived or not exported: skipped (adopting it without "
                "them would end those rates)"
            )
            continue
        rates = [
            {**{k: v for k, v in r.items() if k != "product_id"}, "product": product_names[r["product_id"]]}
            for r in obj.get("rates") or []
        ]
        card = _built(
            f"rate card {object_id} ('{obj.get('name')}')",
            warn,
            RateCard,
            name,
            object_id,
            obj,
            ("rates",),
            rates=rates,
        )
        if card is not None:
            cards.append(card)
            ids["rate_cards"][object_id] = name

    customers: list[Customer] = []
    for object_id, obj in live["customers"]:
        name = names.pick("customers", obj, object_id, "customer")
        customer = _built(f"customer {object_id} ('{obj.get('name')}')", warn, Customer, name, object_id, obj)
        if customer is not None:
            customers.append(customer)
            ids["customers"][object_id] = name

    # Packages before contracts: a contract made from one names it.
    packages, alerts, notifications = _packages_alerts(client, ids, product_names, customers, names, warn)
    contracts: list[Contract] = []
    billing_refs: dict[str, dict[str, str | None]] = {}  # customer id -> {contract name: its configuration}
    for customer_id, customer_name in ids["customers"].items():
        for object_id, obj in live["contracts"][customer_id]:
            if obj.get("package_id"):
                contract = _package_contract(obj, object_id, customer_name, ids, names, warn)
                if contract is not None:
                    contracts.append(contract)
                continue
            card_id = obj.get("rate_card_id")
            if card_id not in ids["rate_cards"]:
                warn(f"contract {object_id} of customer '{customer_name}' has no exported rate card: skipped")
                continue
            fallback = f"{customer_name}_contract"
            name = names.pick(
                "contracts", {**obj, "name": obj.get("name") or fallback}, object_id, "contract"
            )
            skip = (
                "customer_id",
                "rate_card_id",
                "commits",
                "credits",
                "overrides",
                "discounts",
                *TERMS,
                "uniqueness_key",
                "billing_provider_configuration",
                "allow_replacement",
                "allow_reinvoice",
            )
            try:
                contract = _built(
                    f"contract {object_id} of customer '{customer_name}'",
                    warn,
                    Contract,
                    name,
                    object_id,
                    obj,
                    skip,
                    # A contract's Metronome name is optional: only a live name becomes display_name.
                    display_name=obj.get("name") or None,
                    customer=customer_name,
                    rate_card=ids["rate_cards"][card_id],
                    commits=_refs(obj.get("commits"), product_names),
                    credits=_refs(obj.get("credits"), product_names),
                    overrides=_refs(obj.get("overrides"), product_names),
                    discounts=_refs(obj.get("discounts"), product_names),
                    **{f: _product_names(obj[f], product_names) for f in TERMS if obj.get(f) is not None},
                )
            except KeyError as err:
                warn(
                    f"contract {object_id} of customer '{customer_name}' uses product {err} "
                    "(archived or not exported): skipped"
                )
                continue
            if contract is not None:
                contracts.append(contract)
                billing_refs.setdefault(customer_id, {})[name] = (
                    obj.get("billing_provider_configuration") or {}
                ).get("billing_provider_configuration_id")

    # Stripe links, and with Stripe connected the StripeIntegration: live already, so go_live true
    # (false would leave the live configurations unmanaged while the stack claims Stripe is not in use).
    connections = live["stripe_connections"]
    connected = bool(connections)
    used: set[str] = set()
    with progress.task("reading customers' Stripe configurations", len(ids["customers"])) as task:
        links = _stripe_links(client, ids["customers"], billing_refs, connected, warn, used)
        task.advance(len(ids["customers"]))
    stripe = None
    if links and connected:
        stripe = Stripe(expected_account_id=stripe_account or ACCOUNT_PLACEHOLDER, go_live=True)
        if len(connections) > 1:  # configurations must then name their Stripe connection
            if len(used) == 1:
                stripe.delivery_method_id = next(iter(used))
            else:
                warn(
                    f"several Stripe accounts are connected and the exported configurations use "
                    f"{len(used)} of them ({', '.join(sorted(used))}): set stripe.delivery_method_id to "
                    "the one this stack manages"
                )
    elif links:
        warn(
            f"{len(links)} customer(s) have Stripe configurations but Stripe is not connected to the "
            "account: their stripe_customer_id is written, without a stripe: section"
        )
    if stripe_account and stripe is None:
        warn("--stripe-account ignored: no customer has a Stripe configuration on a connected Stripe account")
    default_method = stripe.collection_method if stripe else "charge_automatically"
    return (
        Catalog(
            billable_metrics=metrics,
            products=products,
            rate_cards=cards,
            packages=packages,
            alerts=alerts,
            notifications=notifications,
        ),
        Environment(
            stripe=stripe, customers=_with_stripe(customers, links, default_method), contracts=contracts
        ),
    )


# --------------------------------------------------------------------------------------------------
# packages, alerts and notifications


def _package_contract(
    obj: dict[str, Any],
    object_id: str,
    customer_name: str,
    ids: dict[str, dict[str, str]],
    names: _Names,
    warn: Callable[[str], None],
) -> Contract | None:
    """A contract made from a package: the customer, the start and the package's catalog name (its terms
    are the package's)."""
    package = ids["packages"].get(obj["package_id"])
    what = f"contract {object_id} of customer '{customer_name}'"
    if package is None:
        warn(f"{what} was made from package {obj['package_id']}, archived or not exported: skipped")
        return None
    name = names.pick(
        "contracts", {**obj, "name": obj.get("name") or f"{customer_name}_{package}"}, object_id, "contract"
    )
    return _built(
        what,
        warn,
        Contract,
        name,
        object_id,
        {k: v for k, v in obj.items() if k in ("starting_at", "custom_fields", "uniqueness_key")},
        ("uniqueness_key",),
        customer=customer_name,
        package=package,
    )


def _product_names(value: Any, products: dict[str, str]) -> Any:
    """Terms with product ids as catalog names (`product`, `applicable_products`); KeyError when a
    product is not exported."""
    if isinstance(value, list):
        return [_product_names(v, products) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "product_id":
            out["product"] = products[item]
        elif key == "applicable_product_ids":
            out["applicable_products"] = [products[i] for i in item]
        else:
            out[key] = _product_names(item, products)
    return out


def _packages_alerts(
    client: Any,
    ids: dict[str, dict[str, str]],
    products: dict[str, str],
    customers: list[Customer],
    names: _Names,
    warn: Callable[[str], None],
) -> tuple[list[Package], list[Alert], list[Notification]]:
    """Packages and notifications as listed; alerts through the exported customers (the only way to see
    them): one every customer sees is account-wide, one a single customer sees is that customer's (set on
    its entry). With fewer than two customers the two cannot be told apart: such alerts are left out."""
    packages: list[Package] = []
    for object_id, obj in provider_module("packages").list_objects(client):
        what = f"package {object_id} ('{obj.get('name')}')"
        card = obj.get("rate_card_id")
        if card and card not in ids["rate_cards"]:
            warn(f"{what} uses rate card {card}, archived or not exported: skipped")
            continue
        name = names.pick("packages", obj, object_id, "package")
        terms = {k: v for k, v in obj.items() if k not in ("name", "rate_card_id", "uniqueness_key")}
        try:
            terms = _product_names(terms, products)
            packages.append(
                Package(
                    name=name,
                    display_name=_display(name, obj.get("name")),
                    rate_card=ids["rate_cards"].get(card) if card else None,
                    adopt={"id": object_id},
                    **terms,
                )
            )
            ids["packages"][object_id] = name
        except KeyError as err:
            warn(f"{what} uses product {err} (archived or not exported): skipped")
        except ValidationError as err:
            warn(f"{what}: {err.errors()[0].get('msg')}: the catalog cannot hold it: skipped")

    notifications = []
    for object_id, obj in provider_module("notifications").list_objects(client):
        name = names.pick("notifications", obj, object_id, "notification")
        display = _display(name, obj.get("name"))
        notifications.append(
            Notification(name=name, display_name=display, policy=obj["policy"], adopt={"id": object_id})
        )

    seen_by: dict[str, set[str]] = {}
    live: dict[str, dict[str, Any]] = {}
    by_name = {c.name: c for c in customers}
    for customer_id, customer_name in ids["customers"].items():
        if customer_name not in by_name:
            continue
        for object_id, obj in provider_module("alerts").list_objects(client, customer_id):
            seen_by.setdefault(object_id, set()).add(customer_name)
            live[object_id] = obj
    alerts: list[Alert] = []
    for object_id, obj in live.items():
        what = f"alert {object_id} ('{obj.get('name')}')"
        seen = seen_by[object_id]
        account_wide = len(by_name) > 1 and seen == set(by_name)
        if not account_wide and (len(by_name) < 2 or len(seen) != 1):
            warn(f"{what}: cannot tell whether it is for every customer or for {sorted(seen)}: skipped")
            continue
        owner = None if account_wide else next(iter(seen))
        tag = identity_of(obj)
        base = tag.split("#", 1)[0].rsplit("/", 1)[-1] if tag else ""
        if owner is not None and base.startswith(owner + "."):  # `<customer>.<alert>`: the alert's own name
            base = base[len(owner) + 1 :]
        name = names.pick(
            "alerts" if owner is None else f"alerts of {owner}",
            {**obj, "iac_identity": None},
            object_id,
            "alert",
        )
        name = _slug(base) or name
        fields = {k: v for k, v in obj.items() if k not in ("name", "uniqueness_key")}
        try:
            alert = Alert(
                name=name, display_name=_display(name, obj.get("name")), adopt={"id": object_id}, **fields
            )
        except ValidationError as err:
            warn(f"{what}: {err.errors()[0].get('msg')}: the catalog cannot hold it: skipped")
            continue
        if owner is None:
            alerts.append(alert)
        else:
            by_name[owner].alerts = [*(by_name[owner].alerts or []), alert]
    return packages, alerts, notifications


def placeholder_hint(environment: Environment) -> str | None:
    """What the user must fill in before the next `pulumi up`, if anything."""
    if environment.stripe is not None and environment.stripe.expected_account_id == ACCOUNT_PLACEHOLDER:
        return ACCOUNT_HINT.format(placeholder=ACCOUNT_PLACEHOLDER)
    return None


def stack_files(catalog: Catalog, environment: Environment, source: str) -> dict[str, str]:
    """{file name: YAML text} for the two stack files."""
    header = HEADER.format(url=source)
    hint = placeholder_hint(environment)
    todo = "".join(f"# {line}\n" for line in textwrap.wrap(f"TODO: {hint}", 106)) if hint else ""
    return {
        CATALOG_FILE: catalog_to_yaml(catalog, header),
        ENVIRONMENT_FILE: environment_to_yaml(environment, header + todo),
    }


def check_loads(files: dict[str, str]) -> None:
    """Raise CatalogError unless `files` load as a stack (checked in a scratch directory)."""
    with tempfile.TemporaryDirectory() as scratch:
        for name, text in files.items():
            (Path(scratch) / name).write_text(text, encoding="utf-8")
        load_stack(scratch)


_ENTRY = re.compile(r"^(?P<label>.+?) '(?P<name>.*)'$")


def loadable(
    catalog: Catalog, environment: Environment, source: str, warn: Callable[[str], None]
) -> tuple[Catalog, Environment]:
    """The export minus the entries the stack checks refuse (a group key without its `exists` filter,
    a reference to an entry left out, ...), each named with its reason; what depends on a dropped entry
    is refused in the next round and dropped in turn."""
    sections = {label: section for section, label in KIND_LABELS.items()}
    models = {"catalog": catalog, "environment": environment}
    while True:
        try:
            check_loads(stack_files(models["catalog"], models["environment"], source))
            return models["catalog"], models["environment"]
        except CatalogError as err:
            live_ids = {
                (section, e.name): (e.adopt or {}).get("id")
                for model in models.values()
                for section in KIND_LABELS
                if section in type(model).model_fields
                for e in getattr(model, section)
            }
            dropped: dict[str, set[str]] = {}
            for problem in err.problems:
                hit = _ENTRY.match(problem.entry or "")
                if not hit or hit["label"] not in sections:
                    raise  # a file-level problem: nothing to leave out
                section = sections[hit["label"]]
                dropped.setdefault(section, set()).add(hit["name"])
                field = f" field '{problem.field}':" if problem.field else ""
                live_id = live_ids.get((section, hit["name"]))
                warn(f"{problem.entry} ({live_id}):{field} {problem.message}: skipped")
            for key, model in models.items():
                update = {
                    section: [e for e in getattr(model, section) if e.name not in names]
                    for section, names in dropped.items()
                    if section in type(model).model_fields
                }
                models[key] = model.model_copy(update=update)


def write_stack(out: Path, catalog: Catalog, environment: Environment, source: str) -> None:
    """Write both files, after checking in a scratch copy that they load."""
    files = stack_files(catalog, environment, source)
    check_loads(files)  # raises CatalogError: never write files that would not load
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")


def plural(count: int, noun: str) -> str:
    """ "1 rate card", "2 rate cards"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


STACK_CONFIG_HEADER = """\
# The {stack} stack, exported from {url} by `metronome-iac export`.
# Set its API token once, encrypted (never commit it in clear):
#   pulumi config set --secret metronome:apiToken <token> --stack {stack}
# and, for a stripe: section, the Stripe key:
#   pulumi config set --secret stripe:apiKey <key> --stack {stack}
"""


def write_stack_config(out: Path, url: str) -> Path | None:
    """`Pulumi.<stack>.yaml` beside the project's `Pulumi.yaml` for a stack exported into
    `<project>/stacks/<stack>`, laid out as the existing stacks' files, with `metronome:baseUrl` the URL
    the export read (so `pulumi up --stack <stack>` adopts from the same account). Never overwrites
    one; returns the path written, or None when `out` is not a stack folder of a project."""
    project = out.resolve().parent.parent
    if out.resolve().parent.name != "stacks" or not (project / "Pulumi.yaml").is_file():
        return None
    path = project / f"Pulumi.{out.name}.yaml"
    if path.exists():
        return None
    config = {"config": {"metronome:baseUrl": url}}
    path.write_text(STACK_CONFIG_HEADER.format(stack=out.name, url=url) + dump_yaml(config), encoding="utf-8")
    return path


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    refuse_overwrite(out, args.force)  # before anything is read: a reviewed stack is never clobbered
    token = os.environ.get("METRONOME_BEARER_TOKEN")
    if not token:
        raise CommandError("set METRONOME_BEARER_TOKEN to the account's API token")
    base_url, source = resolve_base_url(None, args.base_url)
    if args.stripe_account and not re.match(r"^acct_[A-Za-z0-9]+$", args.stripe_account):
        raise CommandError(
            f"--stripe-account must be a Stripe account id (acct_...), not {args.stripe_account!r}"
        )
    url = base_url or DEFAULT_BASE_URL
    try:
        from providers.client import make_client

        client = make_client(base_url, token)  # the provider's retry rules (429, 5xx, Retry-After)
        # One call with a single retry first: a wrong URL or token fails in seconds, not after backoffs.
        client.with_options(max_retries=1).v1.billable_metrics.list(limit=1)
        with Progress("export") as progress:
            catalog, environment = export_account(
                client, stripe_account=args.stripe_account, progress=progress
            )
    except Exception as err:  # the API conversation failed: nothing is written
        reason = describe_failure(err, base_url, source, "METRONOME_BEARER_TOKEN")
        raise CommandError(f"export failed, nothing written: {reason}") from None
    try:
        catalog, environment = loadable(catalog, environment, url, warn=print_warning)
        write_stack(out, catalog, environment, url)
        config = write_stack_config(out, url)
    except CatalogError as err:
        raise CommandError(f"the export would not load as a stack, nothing written:\n{err}") from None
    except OSError as err:
        raise CommandError(f"cannot write {err.filename or out}: {err.strerror or err}") from None
    counts = ", ".join(
        [
            plural(len(catalog.billable_metrics), "metric"),
            plural(len(catalog.products), "product"),
            plural(len(catalog.rate_cards), "rate card"),
            plural(len(environment.customers), "customer"),
            plural(len(environment.contracts), "contract"),
        ]
    )
    linked = [c for c in environment.customers if c.stripe_customer_id]
    print(f"wrote {out / CATALOG_FILE} and {out / ENVIRONMENT_FILE}: {counts}")
    if config is not None:
        print(f"wrote {config}: the stack's settings (metronome:baseUrl {url}); set its token there")
    if environment.stripe is not None:
        print(
            f"stripe: go_live true (their Stripe configurations are live), {plural(len(linked), 'customer')} "
            "linked"
        )
    hint = placeholder_hint(environment)
    if hint:
        print(f"fill in: {hint}")
    return EXIT_OK
