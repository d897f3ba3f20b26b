"""`metronome-iac drift --stack NAME [--json]`: the stack's catalog against the live account, no engine.

Live objects are matched the way the provider matches them (`matching.py`: the `iac_identity` tag, by the
entry's name or a previous name, else its `adopt` key). Desired values come from the same input builders
the program uses, and both sides go through the providers' own shaping and normalisation
(`providers/diff.py`), so a field this reports is a field `pulumi preview --refresh` reports.

With a `stripe:` section the Stripe side is checked too (`drift_stripe.py`). The account is read through
`live.py` (as `export` reads it) and reached as `connection.py` says; the report is `drift_report.py`.

Exit codes: 0 in sync, 2 drift, 1 error (bad catalog, unreachable API, bad token).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metronome_iac.catalog import CatalogError, Stack, load_stack
from metronome_iac.catalog_contracts import payment_gate_reminders
from metronome_iac.catalog_models import Contract
from metronome_iac.catalog_packages import (
    alert_inputs,
    customer_alert_name,
    notification_inputs,
    package_inputs,
)
from metronome_iac.cli import EXIT_ATTENTION, EXIT_OK, CommandError, missing_stack
from metronome_iac.connection import (
    DEFAULT_BASE_URL,
    SetupError,
    api_client,
    describe_failure,
    project_name,
    resolve_connection,
    token_settings,
)
from metronome_iac.drift_report import (
    STRIPE_KIND,
    FieldDrift,
    Report,
    is_missing,
    leaf_differences,
    missing_ref,
    render,
)
from metronome_iac.drift_stripe import check_stripe
from metronome_iac.live import list_alerts, list_contracts, list_live, provider_class
from metronome_iac.matching import Matcher
from metronome_iac.program import (
    KINDS,
    contract_inputs,
    customer_inputs,
    metric_inputs,
    ordered_products,
    previous_alert_names,
    product_inputs,
    rate_card_inputs,
)
from metronome_iac.progress import CONCURRENCY, Progress, quiet, run_concurrently


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, help="stack name (folder under --stacks-dir)")
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    parser.add_argument("--stacks-dir", default="stacks", help="directory holding one folder per stack")
    parser.add_argument(
        "--base-url",
        help="Metronome API URL (default: env METRONOME_BASE_URL, else metronome:baseUrl in "
        f"Pulumi.<STACK>.yaml, else {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--project", help="Pulumi project name (default: from Pulumi.yaml, else metronome-iac)"
    )


# --------------------------------------------------------------------------------------------------
# comparing


def _compare(
    section: str, client: Any, object_id: str, desired: dict[str, Any], names: dict[str, str]
) -> list[FieldDrift] | None:
    """Drifted fields, or None when the object is gone. Exactly the refresh-then-preview path: the
    provider's `read_live` (projected onto the desired inputs, as refresh projects onto state) and
    its `diff_pair` normalisation."""
    from providers.client import MetronomeError
    from providers.diff import changed_fields, normalize

    provider = provider_class(section)()
    live = provider.read_live(client, object_id, desired)
    if live is None:
        return None
    have, want = provider.diff_pair(live, desired)
    drifted = changed_fields(have, want, provider.api_fields())
    # The provider's own diff says which of them `up` could only restore by replacing the object.
    try:
        diff = provider.diff_inputs(object_id, have, {**want, "allow_replacement": True})
        replaced = set(diff.replaces or [])
    except MetronomeError:  # a change the provider refuses outright (a contract's billing configuration)
        replaced = set()
    out = []
    for f in drifted:
        w, h = normalize({f: want.get(f)}).get(f), normalize({f: have.get(f)}).get(f)
        details = leaf_differences(f, w, h, names, []) if isinstance(w, (list, dict)) else []
        out.append(FieldDrift(f, want.get(f), have.get(f), details, f in replaced))
    return out


def check_drift(
    stack: Stack,
    client: Any,
    project: str,
    base_url: str | None = None,
    progress: Progress | None = None,
    workers: int = CONCURRENCY,
) -> Report:
    """The drift report for a loaded stack against the account behind `client`.

    Listings come first (what exists, and which object each entry is), then every matched object is
    read and compared, `workers` at a time: entries of one kind never depend on each other's reads,
    only on the ids of the kinds before them (and composite products on their parts)."""
    progress = progress or quiet()
    report = Report(stack=stack.name, project=project, base_url=base_url)
    report.warnings = payment_gate_reminders(stack.environment.contracts, stack.catalog.packages)
    prefix = f"{project}/{stack.name}/"
    env = stack.environment
    ids: dict[str, dict[str, str]] = {s: {} for s in KINDS}
    managed = {
        "billable_metrics": stack.catalog.billable_metrics,
        "products": stack.catalog.products,
        "rate_cards": stack.catalog.rate_cards,
        "customers": env.customers,
        "contracts": env.contracts,
        "packages": stack.catalog.packages,
        "alerts": [*stack.catalog.alerts, *(a for c in env.customers for a in c.alerts or [])],
        "notifications": stack.catalog.notifications,
    }
    entries = sum(len(items) for items in managed.values())

    with progress.task(f"checking {entries} catalog entries against the live account", entries) as task:

        def visit(section: str, matcher: Matcher, batch: list[Any], desired: Callable[[Any], dict]) -> None:
            """Match each entry of `batch` with its live object, then read and compare them at once."""
            found: list[tuple[Any, str]] = []
            results: dict[str, tuple[str | None, list[FieldDrift] | None]] = {}
            for entry in batch:
                object_id, live = matcher.match(entry.name, entry.adopt, entry.previous_names)
                if object_id is None or live is None:
                    ids[section][entry.name] = missing_ref(section, entry.name)
                    results[entry.name] = (object_id, None)
                    task.advance()
                else:
                    ids[section][entry.name] = object_id
                    found.append((entry, object_id))
            names = {i: n for by_name in ids.values() for n, i in by_name.items() if not is_missing(i)}
            compared = run_concurrently(
                lambda pair: _compare(section, client, pair[1], desired(pair[0]), names),
                found,
                task,
                workers,
            )
            for (entry, object_id), fields in zip(found, compared, strict=True):
                results[entry.name] = (object_id, fields)
            for entry in batch:  # reported in catalog order
                object_id, fields = results[entry.name]
                if fields is None:  # not found, or archived between the listing and the read
                    report.missing.append({"kind": section, "name": entry.name, "id": object_id})
                    ids[section][entry.name] = missing_ref(section, entry.name)
                    continue
                report.matched += 1
                if fields:
                    report.drifted.append(
                        {"kind": section, "name": entry.name, "id": object_id, "fields": fields}
                    )

        # Matching needs the rate cards' tags, not their rates (read later).
        listed_kinds = ("billable_metrics", "products", "rate_cards", "customers")
        listed = run_concurrently(lambda section: list_live(client, section), listed_kinds, workers=workers)
        matchers = {
            section: Matcher(section, prefix, live, client)
            for section, live in zip(listed_kinds, listed, strict=True)
        }

        visit("billable_metrics", matchers["billable_metrics"], stack.catalog.billable_metrics, metric_inputs)
        # Composite products name their parts by id: the parts are matched first.
        products = ordered_products(stack)
        parts = [p for p in products if not p.composite_products]
        for batch in (parts, [p for p in products if p.composite_products]):
            visit(
                "products",
                matchers["products"],
                batch,
                lambda p: product_inputs(p, ids["billable_metrics"], ids["products"], env.settings),
            )
        visit(
            "rate_cards",
            matchers["rate_cards"],
            stack.catalog.rate_cards,
            lambda card: rate_card_inputs(card, ids["products"]),
        )
        visit("customers", matchers["customers"], env.customers, customer_inputs)
        check_packages_alerts(stack, client, prefix, ids, matchers, visit)

        # Before contracts: with go_live a Stripe customer's contracts reference its Stripe configuration,
        # which the program takes from the integration's output (the matching live configuration).
        stripe_ids = check_stripe(stack, client, ids["customers"], report) if env.stripe is not None else {}
        billed_through_stripe = {c.name for c in env.customers if c.stripe_customer_id}

        def contract_desired(k: Contract) -> dict[str, Any]:
            desired = contract_inputs(
                k, ids["customers"], ids["rate_cards"], ids["products"], env.settings, ids["packages"]
            )
            if (
                env.stripe is not None
                and env.stripe.go_live
                and k.customer in billed_through_stripe
                and not k.package
            ):
                config_id = stripe_ids.get(ids["customers"][k.customer])
                config_id = config_id or missing_ref(STRIPE_KIND, k.customer)
                desired["billing_provider_configuration"] = {"billing_provider_configuration_id": config_id}
            return desired

        # Contracts are listed per customer: those of the stack's live customers.
        customer_ids = sorted({i for i in ids["customers"].values() if not is_missing(i)})
        contract_live = [
            pair
            for listed_contracts in list_contracts(
                client, customer_ids if env.contracts else [], workers=workers
            )
            for pair in listed_contracts
        ]
        matchers["contracts"] = Matcher("contracts", prefix, contract_live, client)
        visit("contracts", matchers["contracts"], env.contracts, contract_desired)

    # Objects of a kind the stack manages, live, unclaimed, and tagged for this stack or untagged.
    for section, matcher in matchers.items():
        if managed[section]:
            report.unmanaged.extend(matcher.unclaimed(prefix))
    return report


# --------------------------------------------------------------------------------------------------
# packages, alerts and notifications


def check_packages_alerts(
    stack: Stack,
    client: Any,
    prefix: str,
    ids: dict[str, dict[str, str]],
    matchers: dict[str, Matcher],
    visit: Callable[[str, Matcher, list[Any], Callable[[Any], dict]], None],
) -> None:
    """Packages and notifications are listed account-wide; alerts only through a customer (its own and
    those for every customer), so through each of the stack's live customers, else any customer."""
    from types import SimpleNamespace

    from providers.alert import any_customer

    env = stack.environment
    if stack.catalog.packages:
        matchers["packages"] = Matcher("packages", prefix, list_live(client, "packages"), client)
        visit(
            "packages",
            matchers["packages"],
            stack.catalog.packages,
            lambda pkg: package_inputs(pkg, ids["rate_cards"], ids["products"]),
        )

    customer_alerts = [(c, a) for c in env.customers for a in c.alerts or []]
    if stack.catalog.alerts or customer_alerts:
        through = [i for i in ids["customers"].values() if not is_missing(i)] or [any_customer(client)]
        seen: dict[str, dict[str, Any]] = {}
        for listed in list_alerts(client, filter(None, through)).values():
            seen.update(dict(listed))
        matchers["alerts"] = Matcher("alerts", prefix, list(seen.items()), client)
        visit(
            "alerts",
            matchers["alerts"],
            stack.catalog.alerts,
            lambda a: alert_inputs(a, ids["billable_metrics"]),
        )
        entries = [
            SimpleNamespace(
                name=customer_alert_name(c.name, a.name),
                adopt=a.adopt,
                previous_names=previous_alert_names(c, a),
                alert=a,
                customer=c.name,
            )
            for c, a in customer_alerts
        ]
        visit(
            "customer_alerts",
            matchers["alerts"],
            entries,
            lambda e: alert_inputs(
                e.alert,
                ids["billable_metrics"],
                ids["customers"].get(e.customer) or missing_ref("customers", e.customer),
            ),
        )

    if stack.catalog.notifications:
        live = list_live(client, "notifications")
        matchers["notifications"] = Matcher("notifications", prefix, live, client)
        # The listing carries no uniqueness key: a notification is matched by its Metronome name.
        entries = [
            SimpleNamespace(
                name=n.name,
                adopt=n.adopt or {"name": n.metronome_name},
                previous_names=n.previous_names,
                entry=n,
            )
            for n in stack.catalog.notifications
        ]
        visit("notifications", matchers["notifications"], entries, lambda e: notification_inputs(e.entry))


# --------------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    try:
        report = _drift(args)
    except CommandError as err:
        if args.json:  # a machine reader gets the error where it reads the report
            print(json.dumps({"stack": args.stack, "error": str(err)}))
        raise
    if args.json:
        print(json.dumps(report.as_json(), indent=2, default=str))
    else:
        print(render(report))
    return EXIT_OK if report.in_sync else EXIT_ATTENTION


def _drift(args: argparse.Namespace) -> Report:
    stacks = Path(args.stacks_dir)
    missing = missing_stack(stacks, args.stack)
    if missing:
        raise CommandError(missing)
    try:
        stack = load_stack(stacks / args.stack)
    except CatalogError as err:
        raise CommandError(str(err)) from None
    try:
        base_url, source, token = resolve_connection(args.stack, args.base_url)
    except SetupError as err:
        raise CommandError(str(err)) from None
    try:
        client = api_client(base_url, token)
        with Progress("drift") as progress:
            return check_drift(stack, client, project_name(args.project), base_url, progress)
    except Exception as err:  # any API/connection failure is an error, never "drift"
        reason = describe_failure(err, base_url, source, token_settings(args.stack))
        raise CommandError(f"drift check failed: {reason}") from None
