"""The Stripe side of `drift`: the StripeIntegration resource has no Metronome object; its customers'
Stripe billing provider configurations are what it owns (kind `stripe_configurations` in the report).

With `go_live` true, each customer with a `stripe_customer_id` must have that Stripe configuration active
(missing, archived, or another Stripe customer id / collection method is reported), and any other active
Stripe configuration on a catalog customer is reported as not in the catalog (it may invoice the customer
twice); with `go_live` false, any active Stripe configuration on a catalog customer is reported (invoiced
through Stripe before the gate opened).
"""

from __future__ import annotations

from typing import Any

from metronome_iac.catalog import Stack
from metronome_iac.drift_report import STRIPE_KIND, FieldDrift, Report, is_missing
from metronome_iac.live import stripe_connections, stripe_link
from metronome_iac.program import STRIPE_RESOURCE_NAME, stripe_inputs


def _stripe_extra(config: dict[str, Any], customer: str, detail: str) -> dict[str, Any]:
    stripe_customer_id, method = stripe_link(config)
    return {
        "kind": STRIPE_KIND,
        "id": config.get("id"),
        "name": customer,
        "identity": None,
        "customer_id": config.get("customer_id"),
        "stripe_customer_id": stripe_customer_id,
        "collection_method": method,
        "detail": detail,
    }


def _archived_stripe_config(client: Any, customer_id: str, delivery_method_id: str | None) -> str | None:
    """The id of an archived Stripe configuration of the customer (on the delivery method), if any."""
    configs = client.v1.customers.retrieve_billing_configurations(
        customer_id=customer_id, include_archived=True
    ).data
    archived = [
        c.id
        for c in configs or []
        if c.billing_provider == "stripe"
        and c.archived_at
        and delivery_method_id in (None, c.delivery_method_id)
    ]
    return archived[-1] if archived else None


def check_stripe(stack: Stack, client: Any, customer_ids: dict[str, str], report: Report) -> dict[str, str]:
    """Add the Stripe side of the stack to `report`; returns {customer_id: matching configuration id}.

    go_live true: each listed customer must have exactly its catalog configuration active (as the
    provider leaves it after an `up`); any other active Stripe configuration on a catalog customer is
    reported (it may invoice the customer a second time). go_live false: no catalog customer may have an
    active Stripe configuration yet (it would already be invoiced through Stripe, before the gate).
    """
    from providers.stripe_account import stripe_delivery_method
    from providers.stripe_configurations import desired_configurations, stripe_configurations

    stripe = stack.environment.stripe
    assert stripe is not None
    label = f"StripeIntegration '{STRIPE_RESOURCE_NAME}'"
    live_ids = {name: i for name, i in customer_ids.items() if not is_missing(i)}
    name_of = {i: name for name, i in live_ids.items()}
    active = stripe_configurations(client, sorted(name_of), None, label, missing_ok=True)

    if not stripe.go_live:
        why = "active while go_live is false (invoiced through Stripe before the gate opened)"
        for customer_id, configs in sorted(active.items()):
            report.unmanaged.extend(_stripe_extra(c, name_of[customer_id], why) for c in configs)
        return {}

    delivery_method_id: str | None = None
    if stripe_connections(client):
        # Several connected Stripe accounts: stripe.delivery_method_id, else the one naming
        # expected_account_id (else an error, as in up).
        delivery_method_id = stripe_delivery_method(
            client, stripe.expected_account_id, label, stripe.delivery_method_id
        )
    else:
        report.missing.append(
            {
                "kind": "stripe_connection",
                "name": STRIPE_RESOURCE_NAME,
                "id": None,
                "detail": "connect Stripe once in the Metronome dashboard: Settings > Integrations > Stripe",
            }
        )

    inputs = stripe_inputs(stack, customer_ids) or {}
    wanted = {w["customer_id"]: w for w in desired_configurations(inputs) if not is_missing(w["customer_id"])}
    matched: dict[str, str] = {}
    for customer_id, configs in sorted(active.items()):
        name, want = name_of[customer_id], wanted.get(customer_id)
        if want is None:
            why = (
                "active, but the catalog lists no stripe_customer_id for this customer (double-billing risk)"
            )
            report.unmanaged.extend(_stripe_extra(c, name, why) for c in configs)
            continue
        # Only the integration's Stripe account is its business (as in the provider); with no connection
        # listed there is no account to tell them apart by.
        own = [
            c
            for c in configs
            if delivery_method_id is None or c.get("delivery_method_id") in (None, delivery_method_id)
        ]
        desired = (want["stripe_customer_id"], want["collection_method"])
        hit = next((c for c in own if stripe_link(c) == desired), None) or (own[0] if own else None)
        for c in configs:
            if c is not hit:
                why = "a second active Stripe configuration, not in the catalog (double-billing risk)"
                report.unmanaged.append(_stripe_extra(c, name, why))
        if hit is None:
            archived = _archived_stripe_config(client, customer_id, delivery_method_id)
            report.missing.append(
                {
                    "kind": STRIPE_KIND,
                    "name": name,
                    "id": archived,
                    "customer_id": customer_id,
                    "detail": "archived" if archived else "never set",
                }
            )
            continue
        report.matched += 1
        live = stripe_link(hit)
        fields = [
            FieldDrift(f, d, h)
            for f, d, h in zip(("stripe_customer_id", "stripe_collection_method"), desired, live, strict=True)
            if d != h
        ]
        if fields:
            report.drifted.append(
                {
                    "kind": STRIPE_KIND,
                    "name": name,
                    "id": hit["id"],
                    "customer_id": customer_id,
                    "fields": fields,
                }
            )
        else:
            matched[customer_id] = hit["id"]
    return matched
