"""`metronome-iac export --out DIR`: write a live account as `catalog.yaml` + `environment.yaml`.

Every entry carries `adopt: {id: ...}` so the first `pulumi up` with the exported files takes the
objects over instead of creating them; references use catalog names. Objects are read through the
providers' `list_objects` (input shape, `live.py`, as `drift` reads them), so what is written is exactly
what the provider will compare against: after adoption the next plan is empty. The written files must
pass `load_stack`.

Each kind becomes catalog entries in `export_entries.py`; customers' Stripe links and the `stripe:`
section in `export_stripe.py`; the files are written by `export_files.py`.

An `--out` that already holds catalog.yaml or environment.yaml is refused unless `--force` (a reviewed
stack's comments, `settings:` and `stripe:` would be lost); nothing is written when the export fails.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metronome_iac.catalog import CATALOG_FILE, ENVIRONMENT_FILE, Catalog, CatalogError, Environment
from metronome_iac.cli import EXIT_OK, CommandError, refuse_overwrite
from metronome_iac.cli import warn as print_warning
from metronome_iac.connection import DEFAULT_BASE_URL, api_client, describe_failure, resolve_base_url
from metronome_iac.export_entries import (
    Names,
    alert_entries,
    contract_entries,
    customer_entries,
    metric_entries,
    notification_entries,
    package_entries,
    product_entries,
    rate_card_entries,
)
from metronome_iac.export_files import loadable, write_stack, write_stack_config
from metronome_iac.export_stripe import placeholder_hint, stripe_links, stripe_section, with_stripe
from metronome_iac.live import list_alerts, list_contracts, list_live, provider_module, stripe_connections
from metronome_iac.program import KINDS
from metronome_iac.progress import CONCURRENCY, Progress, quiet, run_concurrently


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


def _read_account(client: Any, progress: Progress, workers: int) -> dict[str, Any]:
    """Every listing the export needs, `workers` calls at a time: {section: [(id, object)]} plus the
    Stripe connections ("stripe_connections"); rate cards with their rates."""
    with progress.task("listing the account's objects", 5) as task:
        listings: dict[str, Callable[[], Any]] = {
            "billable_metrics": lambda: list_live(client, "billable_metrics"),
            "products": lambda: list_live(client, "products"),
            "rate_cards": lambda: list_live(client, "rate_cards"),  # their rates: read card by card below
            "customers": lambda: list_live(client, "customers"),
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
        contracts = list_contracts(client, customers, task, workers)
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
    names = Names()
    ids: dict[str, dict[str, str]] = {s: {} for s in KINDS}  # section -> live id -> catalog name

    metrics = metric_entries(live["billable_metrics"], names, ids, warn)
    products, product_names = product_entries(live["products"], names, ids, warn)
    cards = rate_card_entries(live["rate_cards"], product_names, names, ids, warn)
    customers = customer_entries(live["customers"], names, ids, warn)
    # Packages before contracts: a contract made from one names it.
    packages = package_entries(list_live(client, "packages"), product_names, names, ids, warn)
    notifications = notification_entries(list_live(client, "notifications"), names)
    # Alerts are listed only through customers: through each exported one.
    alerts = alert_entries(list_alerts(client, list(ids["customers"])), customers, names, ids, warn)
    contracts, billing_refs = contract_entries(live["contracts"], product_names, names, ids, warn)

    # Customers' Stripe links, and with Stripe connected the `stripe:` section.
    connections = live["stripe_connections"]
    used: set[str] = set()
    with progress.task("reading customers' Stripe configurations", len(ids["customers"])) as task:
        links = stripe_links(client, ids["customers"], billing_refs, bool(connections), warn, used)
        task.advance(len(ids["customers"]))
    stripe = stripe_section(connections, links, used, stripe_account, warn)
    return (
        Catalog(
            billable_metrics=metrics,
            products=products,
            rate_cards=cards,
            packages=packages,
            alerts=alerts,
            notifications=notifications,
        ),
        Environment(stripe=stripe, customers=with_stripe(customers, links, stripe), contracts=contracts),
    )


def plural(count: int, noun: str) -> str:
    """ "1 rate card", "2 rate cards"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


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
        client = api_client(base_url, token)
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
