"""`metronome-iac import-stripe`: write a stack (catalog.yaml + environment.yaml) from a Stripe account.

Billing Meters become billable metrics, metered prices become USAGE products with rates on one rate card
(`stripe_import`), customers with metered subscriptions become customers (with a contract on that rate
card), and Billing credit grants become contract credits. Whatever cannot be mapped is reported with the
reason and left out. Files are validated by the catalog loader in a temporary directory before they are
moved to `--out`, so a file that fails validation is never written.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from metronome_iac.catalog import (
    CATALOG_FILE,
    ENVIRONMENT_FILE,
    Catalog,
    CatalogError,
    Environment,
    catalog_to_yaml,
    environment_to_yaml,
    load_stack,
)
from metronome_iac.cli import EXIT_OK, CommandError, refuse_overwrite
from metronome_iac.progress import CONCURRENCY, Progress, quiet, run_concurrently
from metronome_iac.stripe_import_map import (
    import_alerts,
    map_meter,
    map_price,
    named_apart,
    number,
    ref_id,
    slug,
    subscription_entry,
)

RATE_CARD = "stripe_import"
CREDIT_PRODUCT = "stripe_credit"
LIVE_SUBSCRIPTION_STATUSES = {"active", "trialing", "past_due", "unpaid", "incomplete"}
# Credit grants without an expiry: Metronome access schedules need an end.
NO_EXPIRY = "2100-01-01T00:00:00Z"
MAX_NAME = 160  # Metronome truncates longer names (the Customer resource refuses them)
STRIPE_API = "https://api.stripe.com"
HEADER = "# Written by `metronome-iac import-stripe` from Stripe account {account}. Review before use.\n"


@dataclass
class StripeAccount:
    """What the importer reads from Stripe, as plain dicts (Stripe's field names)."""

    account_id: str | None
    meters: list[dict[str, Any]]
    prices: list[dict[str, Any]]
    subscriptions: list[dict[str, Any]]
    customers: list[dict[str, Any]]
    credit_grants: list[dict[str, Any]]
    # Billing alerts (usage and credit balance thresholds); empty where the account cannot list them.
    alerts: list[dict[str, Any]] = field(default_factory=list)
    # What is left of each live grant in Stripe (cents), from the credit balance summary; None where
    # Stripe would not say. A migration moves what the customer still has, not what was granted.
    grant_balances: dict[str, int | None] = field(default_factory=dict)


@dataclass
class ImportResult:
    catalog: dict[str, list[dict[str, Any]]]
    environment: dict[str, Any]
    skipped: list[str] = field(default_factory=list)  # "<what>: <why>", one per object left out
    notes: list[str] = field(default_factory=list)  # mapped, but worth a look


# ---------------------------------------------------------------------------------------------- reading


def make_client(api_key: str, api_base: str | None = None) -> Any:
    import stripe

    base = {"api": api_base} if api_base else None
    return stripe.StripeClient(api_key, base_addresses=base)  # type: ignore[arg-type]


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict(for_json=True) if hasattr(obj, "to_dict") else dict(obj)


def _all(list_object: Any) -> Iterator[dict[str, Any]]:
    # auto_paging_iter follows has_more/starting_after: accounts have thousands of customers.
    for obj in list_object.auto_paging_iter():
        yield _plain(obj)


def read_account(client: Any, progress: Progress | None = None, workers: int = CONCURRENCY) -> StripeAccount:
    """Everything the import needs from Stripe: the listings at once (each paged in turn), then the
    subscriptions' further items and the live grants' balances, `workers` calls at a time."""
    import stripe

    progress = progress or quiet()
    v1 = client.v1
    try:
        account_id = v1.accounts.retrieve_current().id
    except (stripe.AuthenticationError, stripe.APIConnectionError):
        raise  # nothing else can be read either: one error, not a warning and then the same error
    except stripe.StripeError as exc:  # some keys (restricted) cannot read the account: import anyway
        print(
            f"warning: could not read the Stripe account id ({_one_line(exc)}); "
            "set stripe.expected_account_id by hand",
            file=sys.stderr,
        )
        account_id = None
    listings = {
        "subscriptions": lambda: v1.subscriptions.list(params={"status": "all", "limit": 100}),
        "credit_grants": lambda: v1.billing.credit_grants.list(params={"limit": 100}),
        "meters": lambda: v1.billing.meters.list(params={"limit": 100}),
        # tiers and product are only returned when expanded
        "prices": lambda: v1.prices.list(params={"limit": 100, "expand": ["data.tiers", "data.product"]}),
        "customers": lambda: v1.customers.list(params={"limit": 100}),
    }
    with progress.task("listing the Stripe account", len(listings)) as task:
        listed = run_concurrently(
            lambda first_page: list(_all(first_page())), listings.values(), task, workers
        )
    data = dict(zip(listings, listed, strict=True))

    subscriptions = data["subscriptions"]
    more_items = [sub for sub in subscriptions if (sub.get("items") or {}).get("has_more")]
    now = datetime.now(timezone.utc)
    live_grants = [g for g in data["credit_grants"] if not g.get("voided_at") and not _expired(g, now)]
    with progress.task(
        "reading subscription items and credit balances", len(more_items) + len(live_grants)
    ) as task:
        # A subscription lists 10 items inline; page through the rest.
        items = run_concurrently(
            lambda sub: list(
                _all(v1.subscription_items.list(params={"subscription": sub["id"], "limit": 100}))
            ),
            more_items,
            task,
            workers,
        )
        balances = run_concurrently(lambda g: remaining_balance(client, g), live_grants, task, workers)
    for sub, sub_items in zip(more_items, items, strict=True):
        sub["items"]["data"] = sub_items
    try:
        alerts = list(_all(v1.billing.alerts.list(params={"limit": 100})))
    except stripe.PermissionError:
        raise  # a key that cannot read everything: one error, as for the listings above
    except stripe.StripeError as exc:  # billing alerts are a Stripe preview: an account may have none
        print(
            f"warning: could not list Stripe billing alerts ({_one_line(exc)}): none imported",
            file=sys.stderr,
        )
        alerts = []
    return StripeAccount(
        account_id=account_id,
        meters=data["meters"],
        prices=data["prices"],
        subscriptions=subscriptions,
        customers=data["customers"],
        credit_grants=data["credit_grants"],
        alerts=alerts,
        grant_balances={g["id"]: balance for g, balance in zip(live_grants, balances, strict=True)},
    )


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (Stripe's are often several), without the request id."""
    text = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def stripe_error(exc: Exception, api_base: str) -> str:
    """One `error:` line for a failed read of Stripe: what went wrong and what to check."""
    import stripe

    if isinstance(exc, stripe.AuthenticationError):
        return f"Stripe at {api_base} refused the key ({_one_line(exc)}); check --api-key or STRIPE_API_KEY"
    if isinstance(exc, stripe.APIConnectionError):
        found = re.search(r"\[Errno -?\d+\] ([^\"')\]]+)", str(exc))
        reason = found.group(1).strip() if found else "network error"
        return (
            f"cannot reach Stripe at {api_base} ({reason}); check that URL (--api-base or STRIPE_API_BASE) "
            "and that this machine can reach it (network, proxy)"
        )
    if isinstance(exc, stripe.PermissionError):
        return (
            f"the Stripe key may not read everything the import needs ({_one_line(exc)}); use a key that can"
        )
    return f"reading Stripe at {api_base} failed: {_one_line(exc)}"


def _expired(grant: Mapping[str, Any], now: datetime) -> bool:
    return bool(grant.get("expires_at")) and grant["expires_at"] <= now.timestamp()


def remaining_balance(client: Any, grant: Mapping[str, Any]) -> int | None:
    """The grant's available balance in Stripe (one call per live grant), or None if Stripe won't say."""
    import stripe

    params = {
        "customer": ref_id(grant.get("customer")),
        "filter": {"type": "credit_grant", "credit_grant": grant["id"]},
    }
    try:
        summary = _plain(client.v1.billing.credit_balance_summary.retrieve(params=params))
    except stripe.StripeError:
        return None
    balances = summary.get("balances") or []
    available = ((balances[0].get("available_balance") or {}).get("monetary") or {}) if balances else {}
    value = available.get("value")
    return int(value) if value is not None else None


# ---------------------------------------------------------------------------------------------- mapping


class _Names:
    """Catalog names are `[A-Za-z0-9][A-Za-z0-9_.-]*` and unique per section."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def take(self, *candidates: str | None) -> str:
        base = next((slug(c) for c in candidates if c and slug(c)), "item")
        name, n = base, 2
        while name in self.used:
            name, n = f"{base}_{n}", n + 1
        self.used.add(name)
        return name


def _instant(rfc3339: str) -> datetime:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))


def _rfc3339(unix: int | float) -> str:
    return datetime.fromtimestamp(unix, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_rates_start(now: datetime | None = None) -> str:
    """Rates start at the beginning of the current month (UTC) unless told otherwise."""
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y-%m-01T00:00:00Z")


_START = re.compile(r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?)?")


def rates_start(text: str) -> str:
    """argparse type for --rates-starting-at: a date (midnight UTC) or an RFC 3339 time (with an offset;
    without one, UTC). Any instant: Metronome's docs put no hour rule on rates, contracts or access
    schedules (only on product updates; docs/emulator-fidelity.md, "Timestamps"). Returns it in UTC with
    a Z (`YYYY-MM-DDTHH:MM:SSZ`, fractions kept)."""
    example = "e.g. 2026-01-01 or 2026-01-01T00:00:00Z"
    try:
        if not _START.fullmatch(text.strip()):
            raise ValueError
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date or an RFC 3339 time ({example})") from None
    when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if when.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def _price_label(price: Mapping[str, Any]) -> str:
    product = price.get("product")
    product_name = product.get("name") if isinstance(product, Mapping) else product
    nickname = price.get("nickname")
    return f"price {price['id']} ({nickname or product_name or 'unnamed'})"


def build_stack(account: StripeAccount, rates_starting_at: str, now: datetime | None = None) -> ImportResult:
    """Map the Stripe account to catalog and environment entries (plain dicts in the YAML shape)."""
    now = now or datetime.now(timezone.utc)
    result = ImportResult(catalog={"billable_metrics": [], "products": [], "rate_cards": []}, environment={})

    metric_names, metric_by_meter = _Names(), {}
    for meter in account.meters:
        name = metric_names.take(meter.get("event_name"), meter["id"])
        metric, reason = map_meter(meter, name)
        if metric is None:
            metric_names.used.discard(name)
            result.skipped.append(f"meter {meter['id']} ({meter.get('event_name')}): {reason}")
            continue
        customer_key = (meter.get("customer_mapping") or {}).get("event_payload_key")
        if customer_key and customer_key != "stripe_customer_id":
            result.notes.append(
                f"meter {meter['id']} reads the customer from payload key {customer_key!r}: "
                f"translate its events with `metronome-iac events translate --customer-key {customer_key}`"
            )
        result.catalog["billable_metrics"].append(metric)
        metric_by_meter[meter["id"]] = name

    product_names, product_by_price, rates = _Names(), {}, []
    fee_by_price: dict[str, tuple[str, str | None, str]] = {}  # licensed: (product, display, frequency)
    product_names.used.add(CREDIT_PRODUCT)
    for price in account.prices:
        product, rate, reason = map_price(price, metric_by_meter)
        if product is None or rate is None:
            result.skipped.append(f"{_price_label(price)}: {reason}")
            continue
        stripe_product = price.get("product")
        product_name = stripe_product.get("name") if isinstance(stripe_product, Mapping) else None
        name = product_names.take(price.get("lookup_key"), price.get("nickname"), product_name, price["id"])
        display = " - ".join(x for x in (product_name, price.get("nickname")) if x)
        entry = {
            "name": name,
            **({"display_name": display} if display and display != name else {}),
            **product,
        }
        result.catalog["products"].append(entry)
        rates.append({"product": name, "starting_at": rates_starting_at, "entitled": True, **rate})
        product_by_price[price["id"]] = name
        if rate.get("billing_frequency"):  # a licensed price: its subscription items bill it
            fee_by_price[price["id"]] = (
                name,
                product_name or price.get("nickname"),
                rate["billing_frequency"],
            )
    if rates:
        result.catalog["rate_cards"].append(
            {"name": RATE_CARD, "display_name": "Imported from Stripe", "rates": rates}
        )

    # Customers with at least one live subscription item whose price was imported (metered or licensed);
    # each item on a licensed price becomes a subscription on the customer's contract.
    subscribed: dict[str, str] = {}  # stripe customer id -> collection method
    fees: dict[str, list[dict[str, Any]]] = {}  # stripe customer id -> its contract's subscriptions
    for sub in account.subscriptions:
        if sub.get("status") not in LIVE_SUBSCRIPTION_STATUSES:
            continue
        items = (sub.get("items") or {}).get("data", [])
        prices = [ref_id(item.get("price") or {}) for item in items]
        for item in items:
            fee = fee_by_price.get(ref_id(item.get("price") or {}) or "")
            if fee is not None and ref_id(sub.get("customer")):
                fees.setdefault(ref_id(sub.get("customer")) or "", []).append(
                    subscription_entry(fee[0], fee[1], fee[2], item.get("quantity"))
                )
        if any(p in product_by_price for p in prices):
            customer_id = ref_id(sub.get("customer"))
            if customer_id:
                method = sub.get("collection_method") or "charge_automatically"
                # One send_invoice subscription is enough to make the customer's override send_invoice.
                if subscribed.get(customer_id) != "send_invoice":
                    subscribed[customer_id] = method
        elif any(
            ((item.get("price") or {}).get("recurring") or {}).get("usage_type") == "metered"
            for item in (sub.get("items") or {}).get("data", [])
        ):
            result.skipped.append(f"subscription {sub['id']}: none of its metered prices could be imported")

    customer_names = _Names()
    customers, contracts, name_by_stripe = [], [], {}
    by_id = {c["id"]: c for c in account.customers}
    for stripe_id, method in subscribed.items():
        customer = by_id.get(stripe_id)
        if customer is None or customer.get("deleted"):
            result.skipped.append(f"customer {stripe_id}: has a subscription but could not be read")
            continue
        email_name = (customer.get("email") or "").split("@")[0]
        name = customer_names.take(customer.get("name"), email_name, stripe_id)
        entry: dict[str, Any] = {"name": name}
        display = customer.get("name")
        if display and len(display) > MAX_NAME:
            display = display[:MAX_NAME].rstrip()
            result.notes.append(
                f"customer {stripe_id}: its name is longer than Metronome's {MAX_NAME} characters: "
                f"shortened to {display!r}"
            )
        if display and display != name:
            entry["display_name"] = display
        # The Stripe id is the ingest alias: meter events carry it, so they go to Metronome unchanged.
        entry.update(ingest_aliases=[stripe_id], stripe_customer_id=stripe_id)
        if method == "send_invoice":
            entry["stripe_collection_method"] = "send_invoice"
        customers.append(entry)
        name_by_stripe[stripe_id] = name
        if rates:
            contract: dict[str, Any] = {
                "name": f"{name}_stripe",
                "customer": name,
                "rate_card": RATE_CARD,
                "starting_at": rates_starting_at,
            }
            if fees.get(stripe_id):
                contract["subscriptions"] = named_apart(fees[stripe_id])
            contracts.append(contract)
    contract_by_customer = {k["customer"]: k for k in contracts}
    account_wide, skipped, notes = import_alerts(account.alerts, metric_by_meter, name_by_stripe, customers)
    if account_wide:
        result.catalog["alerts"] = account_wide
    result.skipped += skipped
    result.notes += notes

    no_expiry = 0
    for grant in account.credit_grants:
        label = f"credit grant {grant['id']}" + (f" ({grant['name']})" if grant.get("name") else "")
        customer_name = name_by_stripe.get(ref_id(grant.get("customer")) or "")
        monetary = ((grant.get("amount") or {}).get("monetary")) or {}
        if grant.get("voided_at"):
            result.skipped.append(f"{label}: voided")
        elif customer_name is None or customer_name not in contract_by_customer:
            result.skipped.append(
                f"{label}: customer {ref_id(grant.get('customer'))} has no imported subscription"
            )
        elif (monetary.get("currency") or "").lower() != "usd":
            result.skipped.append(f"{label}: currency {str(monetary.get('currency')).upper()} is not USD")
        elif grant.get("expires_at") and grant["expires_at"] <= (
            grant.get("effective_at") or grant["created"]
        ):
            result.skipped.append(f"{label}: expires before it takes effect")
        elif _expired(grant, now):
            result.skipped.append(f"{label}: expired at {_rfc3339(grant['expires_at'])}; nothing left to use")
        elif grant.get("expires_at") and _instant(_rfc3339(grant["expires_at"])) <= _instant(
            rates_starting_at
        ):
            result.skipped.append(
                f"{label}: expires at {_rfc3339(grant['expires_at'])}, before the imported contracts "
                f"start ({rates_starting_at}); nothing to move (an earlier --rates-starting-at keeps it)"
            )
        elif account.grant_balances.get(grant["id"], 1) == 0:
            result.skipped.append(f"{label}: fully used in Stripe; nothing left to migrate")
        else:
            granted = number(monetary.get("value") or 0)
            remaining = account.grant_balances.get(grant["id"])
            if remaining is None:
                result.notes.append(
                    f"{label}: Stripe gave no balance for it; imported at its granted {granted} cents: "
                    "subtract what the customer already used before going live"
                )
            elif remaining != granted:
                result.notes.append(f"{label}: imported the remaining {remaining} of {granted} cents granted")
            # The credit is usable from the migration on: never before the contract starts.
            effective = _rfc3339(grant.get("effective_at") or grant["created"])
            starting = effective if _instant(effective) > _instant(rates_starting_at) else rates_starting_at
            ending = _rfc3339(grant["expires_at"]) if grant.get("expires_at") else NO_EXPIRY
            no_expiry += not grant.get("expires_at")
            credit: dict[str, Any] = {"product": CREDIT_PRODUCT}
            if grant.get("name"):
                credit["name"] = grant["name"]
            if grant.get("priority") is not None:
                credit["priority"] = grant["priority"]  # lower number first, in Stripe and in Metronome
            item = {
                "amount": granted if remaining is None else number(remaining),
                "starting_at": starting,
                "ending_before": ending,
            }
            credit["access_schedule"] = {"schedule_items": [item]}
            contract_by_customer[customer_name].setdefault("credits", []).append(credit)
    if no_expiry:
        result.notes.append(f"{no_expiry} credit grant(s) have no expiry: their credits end at {NO_EXPIRY}")
    if any(k.get("credits") for k in contracts):
        result.catalog["products"].append(
            {"name": CREDIT_PRODUCT, "display_name": "Stripe credit grants", "type": "FIXED"}
        )

    if account.account_id:
        result.environment["stripe"] = {
            "expected_account_id": account.account_id,
            "collection_method": "charge_automatically",
            "go_live": False,
        }
    result.environment["customers"] = customers
    result.environment["contracts"] = contracts
    return result


# ---------------------------------------------------------------------------------------------- writing


def write_stack(result: ImportResult, out_dir: Path, account_id: str | None = None) -> None:
    """Validate in a temporary directory next to `out_dir`, then move the files in. Raises CatalogError."""
    header = HEADER.format(account=account_id or "?")
    catalog = Catalog.model_validate(result.catalog)
    environment = Environment.model_validate(result.environment)
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-import-") as tmp:
        staging = Path(tmp) / out_dir.name  # same name: the loader uses it as the stack name
        staging.mkdir()
        (staging / CATALOG_FILE).write_text(catalog_to_yaml(catalog, header), encoding="utf-8")
        (staging / ENVIRONMENT_FILE).write_text(environment_to_yaml(environment, header), encoding="utf-8")
        load_stack(staging)  # raises CatalogError: nothing is moved
        out_dir.mkdir(exist_ok=True)
        for name in (CATALOG_FILE, ENVIRONMENT_FILE):
            os.replace(staging / name, out_dir / name)  # same file system: atomic per file


def report(result: ImportResult, stream: Any = None) -> None:
    stream = stream or sys.stdout
    c, e = result.catalog, result.environment
    print(
        f"imported {len(c['billable_metrics'])} billable metric(s), {len(c['products'])} product(s), "
        f"{sum(len(r['rates']) for r in c['rate_cards'])} rate(s), "
        f"{len(e.get('customers', []))} customer(s), "
        f"{sum(len(k.get('credits', [])) for k in e.get('contracts', []))} credit(s), "
        f"{sum(len(k.get('subscriptions', [])) for k in e.get('contracts', []))} subscription(s), "
        f"{len(c.get('alerts', [])) + sum(len(x.get('alerts') or []) for x in e['customers'])} alert(s)",
        file=stream,
    )
    if result.skipped:
        print(f"not imported ({len(result.skipped)}):", file=stream)
        for line in result.skipped:
            print(f"  - {line}", file=stream)
    for line in result.notes:
        print(f"note: {line}", file=stream)


# ---------------------------------------------------------------------------------------------- CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="stack directory to write (e.g. stacks/prod)")
    parser.add_argument("--api-key", help="Stripe secret key (default: env STRIPE_API_KEY)")
    parser.add_argument("--api-base", help="Stripe API base URL (default: env STRIPE_API_BASE, else Stripe)")
    parser.add_argument(
        "--rates-starting-at",
        type=rates_start,
        metavar="WHEN",
        help="start of the imported rates and contracts: a date (midnight UTC) or an "
        "RFC 3339 time, e.g. 2026-01-01 or 2026-01-01T00:00:00Z; without an offset, UTC "
        "(default: this month's start, UTC)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing stack files in --out")


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    refuse_overwrite(out, args.force)
    api_key = args.api_key or os.environ.get("STRIPE_API_KEY")
    if not api_key:
        raise CommandError("no Stripe key: pass --api-key or set STRIPE_API_KEY")
    api_base = args.api_base or os.environ.get("STRIPE_API_BASE")
    client = make_client(api_key, api_base)
    try:
        with Progress("import-stripe") as progress:
            account = read_account(client, progress)
    except Exception as exc:  # stripe errors carry a readable message
        raise CommandError(stripe_error(exc, api_base or STRIPE_API)) from None
    result = build_stack(account, args.rates_starting_at or default_rates_start())
    report(result)
    try:
        write_stack(result, out, account.account_id)
    except (CatalogError, ValueError) as exc:
        raise CommandError(f"the imported stack does not validate, nothing written:\n{exc}") from None
    print(f"wrote {out / CATALOG_FILE} and {out / ENVIRONMENT_FILE}")
    return EXIT_OK
