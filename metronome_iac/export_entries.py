"""Live objects turned into catalog entries, each adopting its object (`adopt: {id: ...}`), for `export`.

References use catalog names: `ids` ({section: {live id: catalog name}}) holds the names given so far,
so each kind is turned after the kinds it references. An object the catalog cannot hold (a field it does
not model, a reference to an object left out) is left out with a warning naming it, not the whole export.
Alerts are seen only through customers: one every customer sees goes to `catalog.yaml`, one a single
customer sees under that customer. A notification's listing carries no key, so its catalog name comes
from its Metronome name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from metronome_iac.catalog_contracts import TERMS
from metronome_iac.catalog_models import BillableMetric, Contract, Customer, Product, RateCard
from metronome_iac.catalog_packages import Alert, Notification, Package
from metronome_iac.live import IDENTITY_FIELD, Listing, identity_of

Entry = TypeVar("Entry", BillableMetric, Product, RateCard, Customer, Contract)
Warn = Callable[[str], None]


def _slug(text: str | None) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", (text or "").strip().lower()).strip("_.-")
    return slug


def _tag_name(tag: str | None) -> str:
    """The resource name in an identity tag ("<project>/<stack>/<name>#<fingerprint>"), else ""."""
    return tag.split("#", 1)[0].rsplit("/", 1)[-1] if tag else ""


class Names:
    """Catalog names for live objects: the resource name from iac_identity, else a slug of the name."""

    def __init__(self) -> None:
        self.used: dict[str, set[str]] = {}

    def pick(self, section: str, obj: dict[str, Any], object_id: str, fallback: str) -> str:
        tag = identity_of(obj)  # the same tag drift and the providers match on
        base = _slug(_tag_name(tag)) or _slug(obj.get("name")) or f"{fallback}_{object_id[:8]}"
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


# --------------------------------------------------------------------------------------------------
# per kind, each after the kinds it references


def _standalone_entries(
    section: str,
    model: type[Entry],
    label: str,
    fallback: str,
    listing: Listing,
    names: Names,
    ids: dict[str, dict[str, str]],
    warn: Warn,
) -> list[Entry]:
    """Entries of a kind that references no other; `fallback`: the name stem of an object with neither
    tag nor name."""
    entries: list[Entry] = []
    for object_id, obj in listing:
        name = names.pick(section, obj, object_id, fallback)
        entry = _built(f"{label} {object_id} ('{obj.get('name')}')", warn, model, name, object_id, obj)
        if entry is not None:
            entries.append(entry)
            ids[section][object_id] = name
    return entries


def metric_entries(
    listing: Listing, names: Names, ids: dict[str, dict[str, str]], warn: Warn
) -> list[BillableMetric]:
    return _standalone_entries(
        "billable_metrics", BillableMetric, "billable metric", "metric", listing, names, ids, warn
    )


def product_entries(
    listing: Listing, names: Names, ids: dict[str, dict[str, str]], warn: Warn
) -> tuple[list[Product], dict[str, str]]:
    """The products, and {live id: catalog name} of those exported (what other kinds may reference)."""
    live_products = dict(listing)
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
    return products, product_names


def rate_card_entries(
    listing: Listing, product_names: dict[str, str], names: Names, ids: dict[str, dict[str, str]], warn: Warn
) -> list[RateCard]:
    """Rate cards (listed with their rates) whose every rate is on an exported product."""
    cards: list[RateCard] = []
    for object_id, obj in listing:
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
    return cards


def customer_entries(
    listing: Listing, names: Names, ids: dict[str, dict[str, str]], warn: Warn
) -> list[Customer]:
    return _standalone_entries("customers", Customer, "customer", "customer", listing, names, ids, warn)


def contract_entries(
    by_customer: dict[str, Listing],
    product_names: dict[str, str],
    names: Names,
    ids: dict[str, dict[str, str]],
    warn: Warn,
) -> tuple[list[Contract], dict[str, dict[str, str | None]]]:
    """The exported customers' contracts (after the packages: a contract made from one names it), and
    {customer id: {contract name: the billing provider configuration it invoices through}}."""
    contracts: list[Contract] = []
    billing_refs: dict[str, dict[str, str | None]] = {}  # customer id -> {contract name: its configuration}
    for customer_id, customer_name in ids["customers"].items():
        for object_id, obj in by_customer[customer_id]:
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
    return contracts, billing_refs


# --------------------------------------------------------------------------------------------------
# packages, alerts and notifications


def _package_contract(
    obj: dict[str, Any],
    object_id: str,
    customer_name: str,
    ids: dict[str, dict[str, str]],
    names: Names,
    warn: Warn,
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


def package_entries(
    listing: Listing, product_names: dict[str, str], names: Names, ids: dict[str, dict[str, str]], warn: Warn
) -> list[Package]:
    packages: list[Package] = []
    for object_id, obj in listing:
        what = f"package {object_id} ('{obj.get('name')}')"
        card = obj.get("rate_card_id")
        if card and card not in ids["rate_cards"]:
            warn(f"{what} uses rate card {card}, archived or not exported: skipped")
            continue
        name = names.pick("packages", obj, object_id, "package")
        terms = {k: v for k, v in obj.items() if k not in ("name", "rate_card_id", "uniqueness_key")}
        try:
            terms = _product_names(terms, product_names)
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
    return packages


def notification_entries(listing: Listing, names: Names) -> list[Notification]:
    notifications: list[Notification] = []
    for object_id, obj in listing:
        name = names.pick("notifications", obj, object_id, "notification")
        display = _display(name, obj.get("name"))
        notifications.append(
            Notification(name=name, display_name=display, policy=obj["policy"], adopt={"id": object_id})
        )
    return notifications


def alert_entries(
    by_customer: dict[str, Listing],
    customers: list[Customer],
    names: Names,
    ids: dict[str, dict[str, str]],
    warn: Warn,
) -> list[Alert]:
    """The account-wide alerts; a customer's own alerts are set on its entry in `customers`.

    `by_customer`: the alerts each exported customer sees (the only way to see them). One every customer
    sees is account-wide, one a single customer sees is that customer's. With fewer than two customers the
    two cannot be told apart: such alerts are left out."""
    seen_by: dict[str, set[str]] = {}
    live: dict[str, dict[str, Any]] = {}
    by_name = {c.name: c for c in customers}
    for customer_id, listed in by_customer.items():
        customer_name = ids["customers"][customer_id]
        for object_id, obj in listed:
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
        base = _tag_name(identity_of(obj))
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
    return alerts
