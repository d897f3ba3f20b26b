"""Stripe account access and checks for the StripeIntegration: the Stripe key's account, the customers'
Stripe ids, and Metronome's connection to Stripe (the delivery method).

The Stripe secret key comes from stack config `stripe:apiKey` (or env STRIPE_API_KEY) and the optional
API base from `stripe:apiBase` (or env STRIPE_API_BASE); both are resolved in the provider host and kept
in module-level caches, never in state, outputs or the pickled provider.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import metronome
from pulumi.dynamic import ConfigureRequest

from .client import MetronomeError, paginate
from .config import get_settings

LOOKUP_WORKERS = 8  # concurrent per-customer look-ups (Stripe customers, Metronome configurations)
CONNECT_HINT = (
    "Stripe is not connected to this Metronome account. Connect it once in the Metronome dashboard: "
    "Settings > Integrations > Stripe (the API cannot make this connection), then run `pulumi up` again."
)

# ---------------------------------------------------------------------------------------------
# Stripe settings and client (host-process caches)
# ---------------------------------------------------------------------------------------------

_STRIPE_LOCK = threading.Lock()
_STRIPE_API_BASE: str | None = None
_STRIPE_CLIENTS: dict[tuple[str, str | None], Any] = {}


def configure_stripe(req: ConfigureRequest) -> None:
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
# Metronome's connection to Stripe
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
