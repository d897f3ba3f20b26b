"""Customers' Stripe links and the `stripe:` section, for `export`.

Customers' active Stripe billing provider configurations become `stripe_customer_id` /
`stripe_collection_method`, and with Stripe connected a `stripe:` section with `go_live: true`: the links
are already live, and a live StripeIntegration re-uses configurations that match instead of setting new
ones. The Stripe account id cannot be read from Metronome: it comes from `--stripe-account`, else a
placeholder that the preview refuses until it is filled in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from metronome_iac.catalog import Environment
from metronome_iac.catalog_models import Customer, Stripe
from metronome_iac.live import DEFAULT_COLLECTION_METHOD, stripe_link

# Accepted by the catalog (acct_ + letters/digits) so the files load; with go_live true the preview's
# account check refuses it, so a stack is never applied with it.
ACCOUNT_PLACEHOLDER = "acct_FILLME"
ACCOUNT_HINT = (
    "stripe.expected_account_id is the placeholder {placeholder}: set it to the id (acct_...) of the "
    "Stripe account connected to this Metronome account, or export again with --stripe-account acct_...; "
    "until then the preview refuses the stack"
)
STRIPE_CUSTOMER_ID = re.compile(r"^cus_[A-Za-z0-9]+$")  # the catalog's pattern


def stripe_links(
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


def stripe_section(
    connections: list[dict[str, Any]],
    links: dict[str, tuple[str, str]],
    delivery_methods: set[str],
    stripe_account: str | None,
    warn: Callable[[str], None],
) -> Stripe | None:
    """With Stripe connected and customers linked, the StripeIntegration: live already, so go_live true
    (false would leave the live configurations unmanaged while the stack claims Stripe is not in use).
    `connections`: the account's Stripe connections; `delivery_methods`: those the exported
    configurations are on (`stripe_links`)."""
    stripe = None
    if links and connections:
        stripe = Stripe(expected_account_id=stripe_account or ACCOUNT_PLACEHOLDER, go_live=True)
        if len(connections) > 1:  # configurations must then name their Stripe connection
            if len(delivery_methods) == 1:
                stripe.delivery_method_id = next(iter(delivery_methods))
            else:
                warn(
                    f"several Stripe accounts are connected and the exported configurations use "
                    f"{len(delivery_methods)} of them ({', '.join(sorted(delivery_methods))}): set "
                    "stripe.delivery_method_id to the one this stack manages"
                )
    elif links:
        warn(
            f"{len(links)} customer(s) have Stripe configurations but Stripe is not connected to the "
            "account: their stripe_customer_id is written, without a stripe: section"
        )
    if stripe_account and stripe is None:
        warn("--stripe-account ignored: no customer has a Stripe configuration on a connected Stripe account")
    return stripe


def with_stripe(
    customers: list[Customer], links: dict[str, tuple[str, str]], stripe: Stripe | None
) -> list[Customer]:
    default_method = stripe.collection_method if stripe else DEFAULT_COLLECTION_METHOD
    out = []
    for c in customers:
        link = links.get((c.adopt or {}).get("id", ""))
        if link:
            method = link[1] if link[1] != default_method else None  # only an override is written
            data = {**c.model_dump(exclude_none=True), "stripe_customer_id": link[0]}
            c = Customer.model_validate({**data, "stripe_collection_method": method})
        out.append(c)
    return out


def placeholder_hint(environment: Environment) -> str | None:
    """What the user must fill in before the next `pulumi up`, if anything."""
    if environment.stripe is not None and environment.stripe.expected_account_id == ACCOUNT_PLACEHOLDER:
        return ACCOUNT_HINT.format(placeholder=ACCOUNT_PLACEHOLDER)
    return None
