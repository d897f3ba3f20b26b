"""StripeIntegration: Stripe as the invoicing system of a Metronome account, with a go-live gate.

There is no Metronome object behind this resource. It checks the account-level Stripe connection (made
once in the dashboard; the API cannot make it), checks the Stripe key against `expected_account_id` and
the customers' Stripe ids against Stripe, and, only once `go_live` is true, sets each customer's Stripe
billing provider configuration. Its output `billing_provider_configuration_ids` ({customer_id: id}) is what
contracts reference.

While live the resource owns each listed customer's Stripe configuration on the connected account: an
update sets the wanted configuration first and then archives any other active one (a changed
collection method or Stripe customer id), so a customer is never left without one nor invoiced twice.
Refused while live, because each would silently change who is invoiced how: turning `go_live` back off,
dropping a customer that still has an active configuration, and changing `expected_account_id`.
Stopping is a deliberate, manual archive (the refusal messages say how).

Refused too (at preview for a change while live; in `up`, before anything is set, always): any change
that would archive a configuration an active contract is billed through. Metronome archives it on the
contract at once (the contract stops invoicing through Stripe) and cannot give that contract another
configuration; the message names the contracts and the ways forward (end them and start their
follow-ons on the new configuration, or make the change in the Metronome dashboard with Metronome's help).

The Stripe secret key comes from stack config `stripe:apiKey` (or env STRIPE_API_KEY) and the optional
API base from `stripe:apiBase` (or env STRIPE_API_BASE); both are resolved in the provider host and kept
in module-level caches, never in state, outputs or the pickled provider.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import metronome
import pulumi
from pulumi.dynamic import CheckFailure, ConfigureRequest, CreateResult, DiffResult, ReadResult, UpdateResult
from pydantic import BaseModel, ConfigDict, Field

from .base import COMPUTED_FIELDS, InputsBase, MetronomeProvider, declare_props
from .client import MetronomeError, archive, get_client, paginate, raw_request, request, retry_after_seconds
from .config import get_settings
from .contract_api import active_contracts
from .diff import PROVIDER_KEY, UNKNOWN, compute_diff, contains_unknown

KIND = "StripeIntegration"
BATCH_SIZE = 100  # configurations per setCustomerBillingProviderConfigurations call
LOOKUP_WORKERS = 8  # concurrent per-customer look-ups (Stripe customers, Metronome configurations)
MAX_SET_ATTEMPTS = 6
IDEMPOTENT_RETRIES = 10  # per-customer idempotent calls made for every customer at go-live
CONNECT_HINT = (
    "Stripe is not connected to this Metronome account. Connect it once in the Metronome dashboard: "
    "Settings > Integrations > Stripe (the API cannot make this connection), then run `pulumi up` again."
)
GO_LIVE_OFF_REFUSED = (
    "go_live cannot be turned off once on: the customers' Stripe billing provider configurations would "
    "stay (or, if archived, invoices would silently stop reaching Stripe). To stop invoicing through Stripe, "
    "archive the configurations deliberately (/v1/archiveCustomerBillingProviderConfigurations, ids in the "
    "output billing_provider_configuration_ids), then remove this resource from the stack."
)
ARCHIVE_PATH = "/v1/archiveCustomerBillingProviderConfigurations"
OUTPUTS = (
    "billing_provider_configuration_ids",
    "go_live_pending",
    "delivery_method_id",
    "stripe_account_id",
    "extra_configuration_ids",  # read: other active Stripe configurations (set by hand) the next up archives
)


def account_change_refused(old: str, new: str) -> str:
    return (
        f"expected_account_id cannot change while go_live is true ({old} -> {new}): a different Stripe "
        "account means every customer's Stripe customer id and billing provider configuration changes. "
        "Do it as a planned migration: connect the new Stripe account in the Metronome dashboard; archive "
        f"the current configurations deliberately ({ARCHIVE_PATH}, ids in the output "
        "billing_provider_configuration_ids); remove this resource from the stack and `pulumi up`; then "
        "declare it again with the new expected_account_id, the customers' new stripe_customer_id values "
        "and go_live: false, and go live once the preview is clean"
    )


def removal_refused(still_active: dict[str, list[str]]) -> str:
    listed = "; ".join(f"{cid} (configuration {', '.join(ids)})" for cid, ids in sorted(still_active.items()))
    return (
        f"customers with an active Stripe configuration cannot be dropped from a live integration: {listed}. "
        "Dropping a customer from this list would not stop Metronome invoicing it through Stripe; it would "
        "only stop this stack from managing it. To stop invoicing a customer through Stripe deliberately: "
        f"archive its configuration(s) with POST {ARCHIVE_PATH} "
        "{customer_id, customer_billing_provider_configuration_ids: [<ids above>]} (at once, Metronome "
        "archives it on the contracts that use it too and stops sending them to Stripe), then remove the "
        "customer from this list: this check passes once the customer has no active Stripe configuration"
    )


def _describe_configuration(config: dict[str, Any]) -> str:
    conf = config.get("configuration") or {}
    method = conf.get("stripe_collection_method") or "charge_automatically"
    return f"{config['id']} (Stripe customer {conf.get('stripe_customer_id')}, {method})"


def _describe_contract(contract: dict[str, Any]) -> str:
    """`contract <id> ('<name>', stack contract <resource name>)`: the resource name is read from the
    uniqueness key the provider gives its contracts ("iac:<project>/<stack>/<name>#<fingerprint>")."""
    extra = [f"'{contract['name']}'"] if contract.get("name") else []
    key = str(contract.get("uniqueness_key") or "")
    if "iac:" in key:
        resource = key.split("iac:", 1)[1].split("#", 1)[0].rsplit("/", 1)[-1]
        if resource:
            extra.append(f"stack contract {resource}")
    return f"contract {contract['id']}" + (f" ({', '.join(extra)})" if extra else "")


def replacement_refused(
    blocked: dict[str, list[tuple[dict[str, Any], list[dict[str, Any]]]]],
    wanted: list[dict[str, str]],
    going_live: bool = False,
) -> str:
    """Why setting `wanted` is refused: it would archive configurations that active contracts bill through.
    `going_live`: the configurations were set outside the stack before it went live."""
    by_customer = {w["customer_id"]: w for w in wanted}
    parts = []
    for cid in sorted(blocked):
        want = by_customer[cid]
        for config, contracts in blocked[cid]:
            listed = ", ".join(_describe_contract(c) for c in contracts)
            parts.append(
                f"customer {cid}: the wanted configuration (Stripe customer {want['stripe_customer_id']}, "
                f"{want['collection_method']}) would replace configuration "
                f"{_describe_configuration(config)}, which active contract(s) bill through: {listed}"
            )
    lead = (
        "going live is refused where a customer already has a Stripe configuration (set outside this stack) "
        "that active contracts are billed through and the stack declares a different one"
        if going_live
        else "a change to a customer's Stripe customer id or collection method is refused while active "
        "contracts are billed through its current Stripe configuration"
    )
    return (
        f"{lead}: {'; '.join(parts)}. Setting the new "
        "configuration means archiving the current one, and Metronome then archives it on those contracts "
        "at once: they would stop invoicing through Stripe, and Metronome cannot move a contract to another "
        "billing provider configuration (none can be provisioned on a contract that has had one). Nothing "
        "was changed. To proceed, either: (1) end those contracts (set their ending_before) and, once they "
        "have ended and their final invoices have reached Stripe, make this change in the same `pulumi up` "
        "as their follow-on contracts (e.g. a renewal starting where they end), which are created on the "
        "new configuration; or (2) make the change in the Metronome dashboard with Metronome's help, then "
        "set this stack's stripe_customer_id / collection method to match. To fix for now: keep the "
        "customer's stripe_customer_id and collection method as they are"
        + (" in Metronome (declare the configuration it already has)" if going_live else "")
    )


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------

CollectionMethod = Literal["charge_automatically", "send_invoice"]


class StripeCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1)
    stripe_customer_id: str = Field(pattern=r"^cus_[A-Za-z0-9]+$")
    collection_method: CollectionMethod | None = None


class ReconciledWindow(BaseModel):
    """A window the last reconcile found outside its tolerance (as its record lists them)."""

    model_config = ConfigDict(extra="ignore")
    customer: str
    metric: str
    window: str
    stripe: float
    metronome: float
    cause: str | None = None


class ReconcileRecord(BaseModel):
    """The stack's last `metronome-iac reconcile` (stacks/<stack>/reconcile.json, read by the program)."""

    model_config = ConfigDict(extra="ignore")
    ran_at: str
    starting_on: str
    ending_before: str
    window: str
    tolerance: float
    passed: bool
    checked: int  # windows compared
    failing_count: int = 0
    failing: list[ReconciledWindow] = Field(default_factory=list)  # the first few


class Inputs(InputsBase):
    # No field replaces: there is no Metronome object to re-create, and a replacement would run
    # `delete`, which deliberately archives nothing. Changes that must not happen in place while live
    # are refused instead (`gate_refusals`, at check and again at diff/update).
    expected_account_id: str = Field(pattern=r"^acct_[A-Za-z0-9]+$")
    collection_method: CollectionMethod = "charge_automatically"
    go_live: bool = False
    customers: list[StripeCustomer] = Field(default_factory=list)
    # The go-live condition: turning go_live on is refused at check unless `reconciliation` (the last
    # reconcile's record) passed over at least this many whole days, ending at most RECONCILED_MAX_AGE
    # ago. Neither field is diffed: they gate the switch and change nothing in Metronome.
    require_reconciled_days: int | None = Field(default=None, ge=1)
    reconciliation: ReconcileRecord | None = None
    # Whether invoices Metronome sends to Stripe stay drafts there. Unset, Metronome leaves them in draft
    # (updateConfig docstring: "defaults to true if unset"): so it is set explicitly on each customer at
    # go-live, and shown in the plan.
    leave_invoices_in_draft: bool = False
    # The Stripe connection's delivery method (listConfiguredBillingProviders). Needed when several
    # Stripe accounts are connected and none can be told apart by expected_account_id: configurations
    # must then name it (set_billing_configurations docstring). The output `delivery_method_id` is the one
    # in use.
    stripe_delivery_method_id: str | None = None


HINTS = {
    "expected_account_id": "set it to the Stripe account id (acct_...) that the key must belong to",
    "stripe_customer_id": "use the Stripe customer id (cus_...)",
    "collection_method": "use charge_automatically or send_invoice",
    "customer_id": "pass the Metronome customer id (e.g. a Customer resource's id)",
    "stripe_delivery_method_id": "use a Stripe delivery_method_id from /v1/listConfiguredBillingProviders",
}

# ---------------------------------------------------------------------------------------------
# Diff rules
# ---------------------------------------------------------------------------------------------


def gate_refusals(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, why) for changes refused once live; `old`/`new` are inputs in canonical shape."""
    if old.get("go_live") is not True:
        return []  # nothing has been set yet: everything may change
    refusals = []
    if new.get("go_live") is False:
        refusals.append(("go_live", GO_LIVE_OFF_REFUSED))
    old_account, new_account = old.get("expected_account_id"), new.get("expected_account_id")
    if old_account and new_account not in (None, UNKNOWN, old_account):
        refusals.append(("expected_account_id", account_change_refused(old_account, new_account)))
    return refusals


# ---------------------------------------------------------------------------------------------
# Go-live condition: the parallel run reconciled (metronome-iac reconcile)
# ---------------------------------------------------------------------------------------------

GO_LIVE_EVIDENCE = ("require_reconciled_days", "reconciliation")  # gate inputs, never diffed
RECONCILED_MAX_AGE = timedelta(days=2)  # a nightly reconcile ending at midnight is recent enough


def reconcile_refusal(inputs: Inputs, now: datetime) -> str | None:
    """Why going live is refused for want of a passed reconcile, or None (no condition, or it holds)."""
    days, record = inputs.require_reconciled_days, inputs.reconciliation
    if days is None:
        return None
    parts = (inputs.identity or "").split("/")
    stack = parts[1] if len(parts) == 3 else "STACK"
    today = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    command = (
        f"`metronome-iac reconcile --stack {stack} --from {(today - timedelta(days=days)):%Y-%m-%d} "
        f"--to {today:%Y-%m-%d}`"
    )
    lead = f"go_live is refused until the parallel run is reconciled (require_reconciled_days: {days})"
    fix = f"; to fix: run {command} until it passes and commit stacks/{stack}/reconcile.json, which it writes"
    if record is None:
        return f"{lead}: no reconcile of this stack is recorded (stacks/{stack}/reconcile.json){fix}"
    start, end = (
        datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (record.starting_on, record.ending_before)
    )
    last = (
        f"the last reconcile (ran {record.ran_at}, {record.starting_on} to {record.ending_before}, "
        f"{record.window} windows)"
    )
    if not record.passed:
        shown = "; ".join(
            f"{w.customer} {w.metric} {w.window}: Stripe {w.stripe:g}, Metronome {w.metronome:g}"
            + (f" ({w.cause})" if w.cause else "")
            for w in record.failing[:5]
        )
        more = record.failing_count - min(len(record.failing), 5)
        shown += f"; and {more} more" if more > 0 else ""
        why = f"{record.failing_count} window(s) outside {record.tolerance:.2%}: {shown}"
        return f"{lead}: {last} failed, {why}{fix}"
    if record.checked == 0:
        return f"{lead}: {last} compared no window{fix}"
    if end - start < timedelta(days=days):
        return f"{lead}: {last} covers {(end - start).days} day(s), fewer than {days}{fix}"
    if now - end > RECONCILED_MAX_AGE:
        return f"{lead}: {last} ended more than {RECONCILED_MAX_AGE.days} days ago{fix}"
    return None


def desired_configurations(inputs: dict[str, Any]) -> list[dict[str, str]]:
    """One Stripe configuration per customer: its override or the default collection method."""
    default = inputs.get("collection_method") or "charge_automatically"
    return [
        {
            "customer_id": c["customer_id"],
            "stripe_customer_id": c["stripe_customer_id"],
            "collection_method": c.get("collection_method") or default,
        }
        for c in inputs.get("customers") or []
    ]


def comparable(inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs as diffed: each customer with its effective collection method, so an override equal to
    the default and an omitted one compare equal (customer order and number types are handled by
    `compute_diff`'s normalisation)."""
    customers = inputs.get("customers")
    keys = ("customer_id", "stripe_customer_id")
    if not isinstance(customers, list) or not all(
        isinstance(c, dict) and all(k in c for k in keys) for c in customers
    ):
        return inputs  # a preview unknown or invalid inputs: compared as given
    return {**inputs, "customers": desired_configurations(inputs)}


# ---------------------------------------------------------------------------------------------
# Stripe settings and client (host-process caches)
# ---------------------------------------------------------------------------------------------

_STRIPE_LOCK = threading.Lock()
_STRIPE_API_BASE: str | None = None
_STRIPE_CLIENTS: dict[tuple[str, str | None], Any] = {}


def _configure_stripe(req: ConfigureRequest) -> None:
    global _STRIPE_API_BASE
    config = getattr(req, "config", None)
    try:
        base = config.get("stripe:apiBase") if config is not None else None
    except Exception:  # a config object without the key
        base = None
    if base:
        with _STRIPE_LOCK:
            _STRIPE_API_BASE = str(base)


def stripe_api_base() -> str | None:
    with _STRIPE_LOCK:
        return _STRIPE_API_BASE or os.environ.get("STRIPE_API_BASE") or None


def stripe_client(label: str) -> Any:
    """The `stripe` client for the configured key and base, built on first use in the host."""
    import stripe

    key = get_settings().stripe_api_key
    if not key:
        raise MetronomeError(
            f"{label}: no Stripe secret key: set the secret config `stripe:apiKey` "
            "(pulumi config set --secret stripe:apiKey sk_...) or STRIPE_API_KEY"
        )
    base = stripe_api_base()
    cache_key = (hashlib.sha256(key.encode()).hexdigest(), base)
    with _STRIPE_LOCK:
        client = _STRIPE_CLIENTS.get(cache_key)
        if client is None:
            addresses = {"api": base} if base else None
            client = _STRIPE_CLIENTS[cache_key] = stripe.StripeClient(
                key,
                base_addresses=addresses,
                max_network_retries=2,  # type: ignore[arg-type]
            )
        return client


def stripe_account_id(label: str) -> str:
    """The account the Stripe key belongs to (GET /v1/account)."""
    import stripe

    try:
        return stripe_client(label).v1.accounts.retrieve_current().id
    except stripe.StripeError as err:
        raise MetronomeError(
            f"{label}: Stripe rejected the key when reading its account: {err.user_message or err}"
        ) from None


NOT_VERIFIED = (
    "Stripe not checked: no Stripe key is set (stripe:apiKey or STRIPE_API_KEY); the account and the "
    "customers' Stripe ids are verified once it is, and go_live needs it"
)


def stripe_checks_skipped(go_live: bool | None) -> bool:
    """Before go-live a stack may run without a Stripe key (dev against the emulator, a first
    preview): Stripe-side checks are skipped and the outputs say so. Going live needs the key."""
    return not go_live and not get_settings().stripe_api_key


def check_account(expected: str, label: str) -> str:
    actual = stripe_account_id(label)
    if actual != expected:
        raise MetronomeError(
            f"{label}: the Stripe key belongs to account {actual}, not expected_account_id {expected}; "
            "use the key of the account Metronome is connected to (or fix expected_account_id)"
        )
    return actual


def missing_stripe_customers(stripe_ids: Iterable[str], label: str) -> list[tuple[str, str]]:
    """(stripe id, why) for every id Stripe does not know (or has deleted); all ids are looked up."""
    import stripe

    client = stripe_client(label)

    def look(stripe_id: str) -> tuple[str, str] | None:
        try:
            customer = client.v1.customers.retrieve(stripe_id)
        except stripe.InvalidRequestError as err:
            if err.http_status == 404:
                return stripe_id, "no such customer"
            raise MetronomeError(f"{label}: Stripe: {err.user_message or err}") from None
        except stripe.StripeError as err:
            raise MetronomeError(f"{label}: Stripe: {err.user_message or err}") from None
        return (stripe_id, "deleted in Stripe") if getattr(customer, "deleted", False) else None

    ids = sorted(set(stripe_ids))
    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        return [m for m in pool.map(look, ids) if m is not None]


# ---------------------------------------------------------------------------------------------
# Metronome calls
# ---------------------------------------------------------------------------------------------


def stripe_delivery_method(
    client: metronome.Metronome, expected_account_id: str, label: str, wanted: str | None = None
) -> str:
    """The delivery method id of the Stripe connection; fails with the dashboard step when there is none.

    `wanted` (the `stripe_delivery_method_id` input) must be one of the connected Stripe ones. Without it, the
    only one; with several connected, the one whose configuration names `expected_account_id`, else an
    error asking for the setting."""
    # A plain {data, next_page} response with the cursor in the body, and no page size.
    listing = paginate(
        client,
        "POST",
        "/v1/listConfiguredBillingProviders",
        label=label,
        limit=None,
        cursor_in_body="next_page",
    )
    methods = [m for m in listing if m.get("billing_provider") == "stripe"]
    if not methods:
        raise MetronomeError(f"{label}: {CONNECT_HINT}")
    ids = [m["delivery_method_id"] for m in methods]
    if wanted:
        if wanted not in ids:
            raise MetronomeError(
                f"{label}: delivery_method_id {wanted} is not a connected Stripe account's delivery method "
                f"(connected: {ids}); to fix: set stripe.delivery_method_id to one of them"
            )
        return wanted
    if len(methods) == 1:
        return methods[0]["delivery_method_id"]
    # Several Stripe accounts connected: pick the one whose configuration names the expected account.
    named = [m for m in methods if expected_account_id in str(m.get("delivery_method_configuration") or {})]
    if len(named) == 1:
        return named[0]["delivery_method_id"]
    raise MetronomeError(
        f"{label}: several Stripe accounts are connected to this Metronome account ({ids}) and none can be "
        f"told to be {expected_account_id}; to fix: set stripe.delivery_method_id in environment.yaml "
        "(the StripeIntegration's delivery_method_id) to the one Metronome lists for that account"
    )


def _is_stripe(config: dict[str, Any], delivery_method_id: str | None) -> bool:
    """An active Stripe configuration (on `delivery_method_id` when given: other connected Stripe
    accounts are not this resource's business)."""
    return (
        config.get("billing_provider") == "stripe"
        and not config.get("archived_at")
        and (delivery_method_id is None or config.get("delivery_method_id") in (None, delivery_method_id))
    )


def _matches(config: dict[str, Any], want: dict[str, str]) -> bool:
    conf = config.get("configuration") or {}
    return (
        conf.get("stripe_customer_id") == want["stripe_customer_id"]
        and (conf.get("stripe_collection_method") or "charge_automatically") == want["collection_method"]
    )


def stripe_configurations(
    client: metronome.Metronome,
    customer_ids: list[str],
    delivery_method_id: str | None,
    label: str,
    *,
    missing_ok: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """{customer_id: its active Stripe configurations}; one get per customer (the get is not paged)."""

    def look(customer_id: str) -> tuple[str, list[dict[str, Any]]]:
        try:
            page = request(
                client,
                "POST",
                "/v1/getCustomerBillingProviderConfigurations",
                label=label,
                body={"customer_id": customer_id},
            )
        except MetronomeError as err:
            if err.status_code != 404:
                raise
            if missing_ok:
                return customer_id, []
            raise MetronomeError(f"{label}: Metronome customer {customer_id} does not exist") from None
        configs = [c for c in (page or {}).get("data") or [] if _is_stripe(c, delivery_method_id)]
        return customer_id, configs

    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        return dict(pool.map(look, customer_ids))


def missing_customers(client: metronome.Metronome, customer_ids: list[str], label: str) -> list[str]:
    """The ids of `customer_ids` that are no Metronome customer (archived ones count as existing)."""

    def gone(customer_id: str) -> str | None:
        try:
            request(client, "GET", f"/v1/customers/{customer_id}", label=label)
        except MetronomeError as err:
            if err.status_code in (400, 404):
                return customer_id
            raise
        return None

    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        return sorted(c for c in pool.map(gone, customer_ids) if c is not None)


def customers_missing(ids: list[str]) -> str:
    return (
        f"Metronome customer(s) {', '.join(ids)} do not exist, so no Stripe configuration was set for them. "
        "To fix: reference the "
        "customers' ids as Metronome has them (a Customer resource's id), or remove them from customers"
    )


def set_leave_in_draft(client: metronome.Metronome, customer_ids: list[str], leave: bool, label: str) -> None:
    """Set each customer's `leave_stripe_invoices_in_draft` (updateConfig), so invoices reach Stripe as the
    stack says and not by Metronome's default (drafts)."""

    def one(customer_id: str) -> None:
        # Idempotent, and one per customer at go-live: more patience than one read gets.
        try:
            raw_request(
                client,
                "POST",
                f"/v1/customers/{customer_id}/updateConfig",
                body={"leave_stripe_invoices_in_draft": leave},
                max_retries=IDEMPOTENT_RETRIES,
            )
        except metronome.APIError as err:
            raise MetronomeError.from_api(label, err) from None

    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        list(pool.map(one, customer_ids))


def existing_configurations(
    client: metronome.Metronome, wanted: list[dict[str, str]], delivery_method_id: str, label: str
) -> dict[str, str]:
    """{customer_id: config id} for customers that already have the wanted Stripe configuration."""
    live = stripe_configurations(client, [w["customer_id"] for w in wanted], delivery_method_id, label)
    return _pick(wanted, live)


def _pick(wanted: list[dict[str, str]], live: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    found = {}
    for want in wanted:
        hits = [c["id"] for c in live.get(want["customer_id"], []) if _matches(c, want)]
        if hits:
            found[want["customer_id"]] = hits[0]
    return found


def replaced_configurations(
    wanted: list[dict[str, str]], live: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """{customer_id: the active Stripe configurations an apply would archive}: all but the one it keeps
    (the first matching the wanted configuration; when none matches, a new one is set)."""
    kept = _pick(wanted, live)
    return {
        w["customer_id"]: [c for c in live.get(w["customer_id"], []) if c["id"] != kept.get(w["customer_id"])]
        for w in wanted
    }


def blocked_replacements(
    client: metronome.Metronome,
    wanted: list[dict[str, str]],
    live: dict[str, list[dict[str, Any]]],
    label: str,
) -> dict[str, list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
    """{customer_id: [(configuration to be archived, the active contracts billed through it)]}, only
    where there are such contracts (active: not archived, not ended). One contract listing per customer
    that has something to archive."""
    replaced = {cid: configs for cid, configs in replaced_configurations(wanted, live).items() if configs}

    def look(customer_id: str) -> tuple[str, list[tuple[dict[str, Any], list[dict[str, Any]]]]]:
        contracts = active_contracts(client, customer_id, label)
        found = []
        for config in replaced[customer_id]:
            using = [
                c
                for c in contracts
                if (c.get("customer_billing_provider_configuration") or {}).get("id") == config["id"]
            ]
            if using:
                found.append((config, using))
        return customer_id, found

    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        return {cid: found for cid, found in pool.map(look, sorted(replaced)) if found}


def set_configurations(
    client: metronome.Metronome,
    wanted: list[dict[str, str]],
    delivery_method_id: str,
    label: str,
    sleep: Callable[[float], None] = time.sleep,
    found: dict[str, str] | None = None,
) -> dict[str, str]:
    """Every wanted configuration exists afterwards; returns {customer_id: config id}.

    Existing ones are looked up first (or passed in as `found`), so a retried `up` re-uses them. The
    set call itself goes out with the SDK retries off: after an ambiguous failure (5xx, connection) the
    batch is looked up again and only what is still missing is sent, so a configuration is never set twice.
    """
    found = (
        dict(found)
        if found is not None
        else existing_configurations(client, wanted, delivery_method_id, label)
    )
    missing = [w for w in wanted if w["customer_id"] not in found]
    for start in range(0, len(missing), BATCH_SIZE):
        batch = missing[start : start + BATCH_SIZE]
        delay = 0.5
        for attempt in range(MAX_SET_ATTEMPTS):
            body = {
                "data": [
                    {
                        "customer_id": w["customer_id"],
                        "billing_provider": "stripe",
                        # Named by id: with several Stripe accounts connected Metronome requires it.
                        "delivery_method_id": delivery_method_id,
                        "configuration": {
                            "stripe_customer_id": w["stripe_customer_id"],
                            "stripe_collection_method": w["collection_method"],
                        },
                    }
                    for w in batch
                ]
            }
            try:
                response = raw_request(
                    client, "POST", "/v1/setCustomerBillingProviderConfigurations", body=body, max_retries=0
                )
            except metronome.RateLimitError as err:
                sleep(retry_after_seconds(err.response) or delay)
            except (metronome.APIConnectionError, metronome.InternalServerError) as err:
                again = existing_configurations(client, batch, delivery_method_id, label)
                found.update(again)
                batch = [w for w in batch if w["customer_id"] not in again]
                if not batch:
                    break
                # Metronome answers a set naming an unknown customer with a 500 (and its configurations
                # with [], not 404: reported): a customer that does not exist is said so, not retried.
                missing = missing_customers(client, [w["customer_id"] for w in batch], label)
                if missing:
                    raise MetronomeError(f"{label}: {customers_missing(missing)}") from None
                if attempt == MAX_SET_ATTEMPTS - 1:
                    raise MetronomeError.from_api(label, err) from None
                sleep(retry_after_seconds(getattr(err, "response", None)) or delay)
            except metronome.APIError as err:
                raise MetronomeError.from_api(label, err) from None
            else:
                for config in (response or {}).get("data") or []:
                    found[config["customer_id"]] = config["id"]
                break
            delay = min(delay * 2, 8.0)
        else:
            raise MetronomeError(
                f"{label}: setting Stripe configurations kept failing; run `pulumi up` again"
            )
    return {w["customer_id"]: found[w["customer_id"]] for w in wanted if w["customer_id"] in found}


def archive_replaced(
    client: metronome.Metronome, ids: dict[str, str], replaced: dict[str, list[str]], label: str
) -> None:
    """Archive each customer's replaced configurations (one call per customer: the API takes one).

    Runs only after the new configurations exist, so a customer is never without one. A failure leaves
    new and replaced both active; the error says so per customer, and the next `up` finishes the job
    (set_configurations finds the new ones, the replaced ones are found again and archived).
    """

    def one(customer_id: str) -> tuple[str, str] | None:
        body = {
            "customer_id": customer_id,
            "customer_billing_provider_configuration_ids": replaced[customer_id],
        }
        try:
            archive(client, ARCHIVE_PATH, body, label=label)  # "already archived" counts as done
        except MetronomeError as err:
            return customer_id, str(err).removeprefix(f"{label}: ")
        return None

    todo = sorted(cid for cid, old in replaced.items() if old)
    with ThreadPoolExecutor(max_workers=LOOKUP_WORKERS) as pool:
        failed = dict(f for f in pool.map(one, todo) if f is not None)
    for customer_id in todo:
        if customer_id not in failed:
            print(
                f"{label}: customer {customer_id}: archived replaced Stripe configuration(s) "
                f"{', '.join(replaced[customer_id])}; active now: {ids[customer_id]}",
                file=sys.stderr,
                flush=True,
            )
    if failed:
        lines = "; ".join(
            f"customer {cid}: new configuration {ids[cid]} is active AND replaced "
            f"{', '.join(replaced[cid])} is still active ({why})"
            for cid, why in sorted(failed.items())
        )
        raise MetronomeError(
            f"{label}: the new Stripe configurations are set, but archiving the replaced ones failed for "
            f"{len(failed)} customer(s), which therefore have two active Stripe configurations: {lines}. "
            "Every other customer has exactly its new configuration. Until this step succeeds the stack "
            "keeps its previous state, so contracts keep referencing the configuration ids recorded there. "
            "Run `pulumi up` again to finish: it finds the new configurations (nothing is set twice) and "
            "archives the replaced ones."
        )


def apply_live(
    client: metronome.Metronome,
    wanted: list[dict[str, str]],
    delivery_method_id: str,
    label: str,
    sleep: Callable[[float], None] = time.sleep,
    going_live: bool = False,
) -> dict[str, str]:
    """Make each wanted configuration the customer's only active Stripe configuration; {customer_id: id}.

    Idempotent: everything is looked up first, so re-running after any failure converges.
    """
    live = stripe_configurations(client, [w["customer_id"] for w in wanted], delivery_method_id, label)
    # Checked at preview; checked again here, before anything is set (a contract may have been bound since).
    blocked = blocked_replacements(client, wanted, live, label)
    if blocked:
        raise MetronomeError(f"{label}: {replacement_refused(blocked, wanted, going_live)}")
    ids = set_configurations(
        client, wanted, delivery_method_id, label, sleep=sleep, found=_pick(wanted, live)
    )
    replaced = {cid: [c["id"] for c in live[cid] if c["id"] != new_id] for cid, new_id in ids.items()}
    archive_replaced(client, ids, replaced, label)
    return ids


# ---------------------------------------------------------------------------------------------
# Provider
# ---------------------------------------------------------------------------------------------


class StripeIntegrationProvider(MetronomeProvider[Inputs]):
    kind = KIND
    entity = ""
    inputs_model = Inputs
    hints = HINTS

    def configure(self, req: ConfigureRequest) -> None:
        super().configure(req)
        _configure_stripe(req)

    # check: schema (base), then the go-live gate, then the look-ups (Metronome, Stripe).
    def validate(self, inputs: Inputs, olds: dict[str, Any]) -> list[CheckFailure]:
        label = self.label(inputs.model_dump())
        failures: list[CheckFailure] = []
        if inputs.custom_fields or inputs.adopt:
            failures.append(
                CheckFailure(
                    "adopt" if inputs.adopt else "custom_fields",
                    "StripeIntegration takes neither "
                    "adopt nor custom_fields: there is no Metronome object behind it; to fix: remove it",
                )
            )
        known_ids = [c.customer_id for c in inputs.customers if c.customer_id != UNKNOWN]
        dupes = sorted({c for c in known_ids if known_ids.count(c) > 1})
        if dupes:
            failures.append(
                CheckFailure("customers", f"customers listed twice: {dupes}; to fix: list each once")
            )
        old = self.shape(olds) if olds else {}
        new = inputs.model_dump(mode="json", exclude_none=True)
        failures += [CheckFailure(field, why) for field, why in gate_refusals(old, new)]
        if inputs.go_live and old.get("go_live") is not True:
            unreconciled = reconcile_refusal(inputs, datetime.now(timezone.utc))
            if unreconciled:
                failures.append(CheckFailure("go_live", unreconciled))
        if failures:
            return failures
        removed = self._removed_customers(old, inputs)
        if removed:
            try:
                still = stripe_configurations(get_client(), removed, None, label, missing_ok=True)
            except MetronomeError as err:
                return [CheckFailure("customers", str(err))]
            active = {cid: [c["id"] for c in configs] for cid, configs in still.items() if configs}
            if active:
                return [CheckFailure("customers", removal_refused(active))]
        refused = self._replacements_refused(old, new, label)
        if refused:
            return [CheckFailure("customers", refused)]
        if stripe_checks_skipped(inputs.go_live):
            print(f"{label}: {NOT_VERIFIED}", file=sys.stderr, flush=True)
            return failures
        try:
            check_account(inputs.expected_account_id, label)
            missing = missing_stripe_customers(
                [c.stripe_customer_id for c in inputs.customers if c.stripe_customer_id != UNKNOWN], label
            )
        except MetronomeError as err:
            return [CheckFailure("expected_account_id", str(err))]
        if missing:
            listed = ", ".join(f"{sid} ({why})" for sid, why in missing)
            failures.append(
                CheckFailure(
                    "customers",
                    f"{len(missing)} Stripe customer id(s) not found in Stripe account "
                    f"{inputs.expected_account_id}: {listed}; to fix: correct the stripe_customer_id of "
                    "those customers (or create them in Stripe)",
                )
            )
        return failures

    @staticmethod
    def _replacements_refused(old: dict[str, Any], new: dict[str, Any], label: str) -> str | None:
        """The refusal when an update while live would archive a configuration active contracts use.

        Looked up only for the customers whose wanted configuration is not the recorded one (a changed
        Stripe customer id or collection method, an added customer): a preview that changes nothing makes
        no calls. The preview that goes live looks up every customer (once: a configuration set by hand
        that contracts already use); `up` checks again in `apply_live` before anything is set.
        """
        if new.get("go_live") is not True:
            return None
        going_live = old.get("go_live") is not True
        recorded = {} if going_live else {w["customer_id"]: w for w in desired_configurations(old)}
        touched = [
            w
            for w in desired_configurations(new)
            if UNKNOWN not in w.values() and recorded.get(w["customer_id"]) != w
        ]
        if not touched:
            return None
        client = get_client()
        try:
            delivery_method_id = stripe_delivery_method(
                client, new["expected_account_id"], label, new.get("stripe_delivery_method_id")
            )
        except MetronomeError as err:
            if CONNECT_HINT in str(err):
                return None  # not connected: `up` fails with the dashboard step before setting anything
            return str(err)
        try:
            live = stripe_configurations(
                client, [w["customer_id"] for w in touched], delivery_method_id, label, missing_ok=True
            )
            blocked = blocked_replacements(client, touched, live, label)
        except MetronomeError as err:
            return str(err)
        return replacement_refused(blocked, touched, going_live) if blocked else None

    @classmethod
    def api_fields(cls) -> list[str]:
        return [f for f in super().api_fields() if f not in GO_LIVE_EVIDENCE]

    @staticmethod
    def _removed_customers(old: dict[str, Any], inputs: Inputs) -> list[str]:
        """Customers dropped from a live integration (none while a preview id is still unknown)."""
        if old.get("go_live") is not True or not inputs.go_live:
            return []
        new_ids = {c.customer_id for c in inputs.customers}
        if UNKNOWN in new_ids:
            return []
        old_ids = {c.get("customer_id") for c in old.get("customers") or [] if isinstance(c, dict)}
        return sorted(i for i in old_ids - new_ids if i and i != UNKNOWN)

    def diff_inputs(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old, new = self.diff_pair(olds, news)
        refused = gate_refusals(old, new)
        if refused:
            raise MetronomeError(f"{self.label(news)}: " + "; ".join(why for _, why in refused))
        result = compute_diff(comparable(old), comparable(new), self.api_fields(), self.replace_rules)
        if not result.changes and new.get("go_live") is True and not contains_unknown(new.get("customers")):
            # A configuration archived by hand (seen by refresh) is set again by an update, and a second
            # one set by hand is archived by it.
            have = olds.get("billing_provider_configuration_ids") or {}
            if olds.get("extra_configuration_ids") or any(
                c.get("customer_id") not in have for c in new.get("customers") or []
            ):
                return DiffResult(changes=True, replaces=[], stables=[], delete_before_replace=False)
        return result

    # create / read / update: no single Metronome object, so these are written out rather than hooked.
    def _apply(
        self, inputs: dict[str, Any], label: str, going_live: bool, olds: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        client = get_client()
        delivery_method_id = self._delivery_method(client, inputs, label)
        wanted = desired_configurations(inputs)
        outs = {**inputs, "delivery_method_id": delivery_method_id, **self._account(inputs, label)}
        if inputs.get("go_live"):
            outs["billing_provider_configuration_ids"] = apply_live(
                client, wanted, delivery_method_id, label, going_live=going_live
            )
            outs["go_live_pending"] = []
            # Going live, or the setting changed: every customer; otherwise the customers just added.
            before = olds or {}
            done = set((before.get("billing_provider_configuration_ids") or {}) if not going_live else ())
            if bool(before.get("leave_invoices_in_draft")) != bool(inputs.get("leave_invoices_in_draft")):
                done = set()
            todo = [w["customer_id"] for w in wanted if w["customer_id"] not in done]
            set_leave_in_draft(client, todo, bool(inputs.get("leave_invoices_in_draft")), label)
        else:
            outs["billing_provider_configuration_ids"] = {}
            outs["go_live_pending"] = [NOT_VERIFIED] if stripe_checks_skipped(False) else []
            outs["go_live_pending"] += [
                f"customer {w['customer_id']}: Stripe customer {w['stripe_customer_id']}, "
                f"{w['collection_method']}"
                for w in wanted
            ]
        return outs

    @staticmethod
    def _delivery_method(client: metronome.Metronome, inputs: dict[str, Any], label: str) -> str | None:
        """The Stripe connection in use. Before go-live nothing is set through it: one that cannot be told
        apart from another yet (several Stripe accounts, no setting) is left open (None) until then."""
        try:
            return stripe_delivery_method(
                client, inputs["expected_account_id"], label, inputs.get("stripe_delivery_method_id")
            )
        except MetronomeError as err:
            if inputs.get("go_live") or "several Stripe accounts" not in str(err):
                raise
            print(f"warning: {err}", file=sys.stderr, flush=True)
            return None

    @staticmethod
    def _account(inputs: dict[str, Any], label: str) -> dict[str, str]:
        """{"stripe_account_id": ...} once the key is checked; nothing while checks are skipped."""
        if stripe_checks_skipped(inputs.get("go_live")):
            return {}
        return {"stripe_account_id": check_account(inputs["expected_account_id"], label)}

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = self._inputs(props)
        outs = self._apply(inputs, self.label(inputs), going_live=True)
        return CreateResult(f"stripe-{inputs['expected_account_id']}", outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = self._inputs(news)
        refused = gate_refusals(self._inputs(olds), inputs)  # checked at preview; never applied regardless
        if refused:
            raise MetronomeError(f"{self.label(inputs)}: " + "; ".join(why for _, why in refused))
        going_live = self._inputs(olds).get("go_live") is not True
        return UpdateResult(self._apply(inputs, self.label(inputs), going_live, olds))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = self._inputs(props)
        label = self.label(inputs)
        client = get_client()
        delivery_method_id = self._delivery_method(client, inputs, label)
        outs = {**inputs, "delivery_method_id": delivery_method_id, **self._account(inputs, label)}
        if inputs.get("go_live"):
            wanted = desired_configurations(inputs)
            live = stripe_configurations(
                client, [w["customer_id"] for w in wanted], delivery_method_id, label
            )
            kept = outs["billing_provider_configuration_ids"] = _pick(wanted, live)
            outs["go_live_pending"] = []
            # More than one active Stripe configuration on a customer risks billing it twice: the next up
            # archives the others, as going live does (unless an active contract bills through one).
            extra = {
                cid: [c["id"] for c in configs]
                for cid, configs in replaced_configurations(wanted, live).items()
                if configs and cid in kept
            }
            if extra:
                outs["extra_configuration_ids"] = extra
        else:
            outs["billing_provider_configuration_ids"] = {}
            outs["go_live_pending"] = props.get("go_live_pending") or []
        return ReadResult(id_, outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        # Archiving the configurations would stop invoicing: leave them, and say so.
        ids = props.get("billing_provider_configuration_ids") or {}
        if ids:
            print(
                f"{self.label(props)}: removed from the stack; {len(ids)} Stripe billing provider "
                "configuration(s) stay active in Metronome (archive them deliberately to stop invoicing)",
                file=sys.stderr,
                flush=True,
            )

    def _inputs(self, props: dict[str, Any]) -> dict[str, Any]:
        raw = {
            k: v
            for k, v in props.items()
            if k != PROVIDER_KEY and k not in COMPUTED_FIELDS and k not in OUTPUTS
        }
        return self.shape(raw)


class StripeIntegration(pulumi.dynamic.Resource, module="metronome", name="StripeIntegration"):
    """Stripe as the invoicing system for Metronome customers, behind a go-live gate.

    While `go_live` is false nothing is set on any customer (`go_live_pending` lists what would be);
    turning it on sets each customer's Stripe configuration; turning it off again is refused.
    `billing_provider_configuration_ids` ({customer_id: configuration id}) is what contracts reference.
    `leave_invoices_in_draft` (default false: invoices auto-advance in Stripe) is set on every customer at
    go-live; `stripe_delivery_method_id` names the Stripe connection when several are connected.
    """

    billing_provider_configuration_ids: pulumi.Output[dict]
    go_live_pending: pulumi.Output[list]
    delivery_method_id: pulumi.Output[str]
    stripe_account_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        expected_account_id: pulumi.Input[str],
        collection_method: pulumi.Input[str] = "charge_automatically",
        go_live: pulumi.Input[bool] = False,
        customers: pulumi.Input[list] | None = None,
        require_reconciled_days: pulumi.Input[int] | None = None,
        reconciliation: pulumi.Input[dict] | None = None,
        leave_invoices_in_draft: pulumi.Input[bool] = False,
        stripe_delivery_method_id: pulumi.Input[str] | None = None,
    ) -> None:
        props = declare_props(
            resource_name,
            dict(
                expected_account_id=expected_account_id,
                collection_method=collection_method,
                go_live=go_live,
                customers=customers if customers is not None else [],
                require_reconciled_days=require_reconciled_days,
                reconciliation=reconciliation,
                leave_invoices_in_draft=leave_invoices_in_draft,
                stripe_delivery_method_id=stripe_delivery_method_id,
            ),
            computed=OUTPUTS,
        )
        super().__init__(StripeIntegrationProvider(), resource_name, props, opts)


__all__ = ["Inputs", "StripeIntegration", "StripeIntegrationProvider"]
