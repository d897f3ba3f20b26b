"""Account-level billing providers: `/v1/listConfiguredBillingProviders`, `/v1/setUpBillingProvider`.

Stripe cannot be connected through the API (it is done in the dashboard); the emulator's stand-in is the
`--stripe-connected` flag or `POST /_emulator/billing-providers`.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import bad, data, enum, json_body, page, req, store_of
from metronome_iac.emulator.store import Store

router = APIRouter()

KIND = "delivery_method"
DELIVERY_METHODS = ("direct_to_billing_provider", "aws_sqs", "tackle", "aws_sns")
_NAMESPACE = uuid.UUID("6f1c3f0e-8a4b-4f43-9a1e-2f5d1b7c9e10")


def stable_delivery_method_id(billing_provider: str, delivery_method: str) -> str:
    """Same id on every run, so tests and stacks can rely on the Stripe delivery method id."""
    return str(uuid.uuid5(_NAMESPACE, f"{billing_provider}:{delivery_method}"))


STRIPE_DELIVERY_METHOD_ID = stable_delivery_method_id("stripe", "direct_to_billing_provider")


def stripe_accounts(store: Store) -> list[str]:
    """Further Stripe accounts connected (`POST /_emulator/billing-providers` with an account_id)."""
    return list(store.setting("stripe_accounts", []))


def stripe_connected(store: Store) -> bool:
    return bool(store.setting("stripe_connected", False)) or bool(stripe_accounts(store))


def connect_stripe_account(store: Store, account_id: str, connected: bool) -> str:
    """Connect (or disconnect) a further Stripe account; its delivery method id (stable per account)."""
    accounts = [a for a in stripe_accounts(store) if a != account_id] + ([account_id] if connected else [])
    store.set_setting("stripe_accounts", accounts)
    return stable_delivery_method_id("stripe", f"direct_to_billing_provider:{account_id}")


def configured(store: Store) -> list[dict[str, Any]]:
    methods = []
    if store.setting("stripe_connected", False):
        methods.append(
            {
                "billing_provider": "stripe",
                "delivery_method": "direct_to_billing_provider",
                "delivery_method_id": STRIPE_DELIVERY_METHOD_ID,
                "delivery_method_configuration": {},
            }
        )
    for account in stripe_accounts(store):
        # What the listing says of a Stripe connection is not documented ("secrets omitted"): the account
        # id here is assumed, so the provider also takes the delivery method id as a setting.
        methods.append(
            {
                "billing_provider": "stripe",
                "delivery_method": "direct_to_billing_provider",
                "delivery_method_id": stable_delivery_method_id(
                    "stripe", f"direct_to_billing_provider:{account}"
                ),
                "delivery_method_configuration": {"stripe_account_id": account},
            }
        )
    for doc in store.all(KIND):
        methods.append(
            {k: doc[k] for k in ("billing_provider", "delivery_method", "delivery_method_configuration")}
            | {"delivery_method_id": doc["id"]}
        )
    return methods


def resolve_delivery(store: Store, provider: str, item: dict[str, Any], prefix: str = "") -> tuple[str, str]:
    """(delivery_method, delivery_method_id) for a customer configuration; refuses unconnected Stripe."""
    if provider == "stripe" and not stripe_connected(store):
        raise bad(
            f"{prefix}billing_provider: Stripe is not connected on this account (connect it in the dashboard)"
        )
    method_id = item.get("delivery_method_id")
    if method_id:
        for m in configured(store):
            if m["delivery_method_id"] == method_id:
                if m["billing_provider"] != provider:
                    raise bad(f"{prefix}delivery_method_id: '{method_id}' belongs to {m['billing_provider']}")
                return m["delivery_method"], method_id
        raise bad(f"{prefix}delivery_method_id: no configured delivery method '{method_id}'")
    method = item.get("delivery_method")
    if method is None:
        raise bad(f"{prefix}delivery_method or delivery_method_id is required")
    enum(method, DELIVERY_METHODS, prefix + "delivery_method")
    matching = [
        m for m in configured(store) if m["billing_provider"] == provider and m["delivery_method"] == method
    ]
    if len(matching) > 1:
        # SDK set_billing_configurations docstring: "Must use the `delivery_method_id` if you have multiple
        # Stripe accounts connected to Metronome." (the answer's wording is assumed)
        ids = ", ".join(m["delivery_method_id"] for m in matching)
        raise bad(
            f"{prefix}delivery_method_id is required: several {provider} accounts are connected ({ids})"
        )
    for m in matching:
        return method, m["delivery_method_id"]
    return method, stable_delivery_method_id(provider, method)


@router.post("/v1/listConfiguredBillingProviders")
async def list_configured(request: Request) -> JSONResponse:
    await json_body(request)
    return page(configured(store_of(request)), None)


@router.post("/v1/setUpBillingProvider")
async def set_up(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    provider = enum(
        body.get("billing_provider"),
        ("aws_marketplace", "azure_marketplace", "gcp_marketplace"),
        "billing_provider",
    )
    method = enum(
        body.get("delivery_method"), ("direct_to_billing_provider", "aws_sqs", "aws_sns"), "delivery_method"
    )
    configuration = req(body, "configuration", dict)
    doc = store.insert(
        KIND,
        {
            "billing_provider": provider,
            "delivery_method": method,
            "delivery_method_configuration": configuration,
        },
    )
    return data({"delivery_method_id": doc["id"]})
