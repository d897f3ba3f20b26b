"""StripeIntegration against what real Metronome accounts differ in or answer, through the provider host:
several Stripe accounts connected (configurations must name `delivery_method_id`), the
`leave_stripe_invoices_in_draft` default (drafts) set explicitly, and an unknown customer's answers
(the configurations get answers 200 [], the set 500)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Emulator
from fake_stripe import FakeStripe
from provider_host import ProviderError
from test_stripe_integration import Host, base_inputs, fake_stripe, live_configs, make_customers

UPDATE_CONFIG = "POST /v1/customers/{customer_id}/updateConfig"
__all__ = ["fake_stripe"]  # the local Stripe fixture, shared with test_stripe_integration


@pytest.fixture
def host_for(fake_stripe: FakeStripe) -> Iterator:
    started: list[Host] = []

    def make(emulator: Emulator) -> Host:
        started.append(Host(emulator, fake_stripe.api_base))
        return started[-1]

    yield make
    for host in started:
        host.stop()


def connect(emulator: Emulator, account_id: str | None = None) -> str | None:
    body = {"billing_provider": "stripe", "connected": True}
    if account_id:
        body["account_id"] = account_id
    response = emulator.admin("POST", "billing-providers", json=body)
    assert response.status_code == 200, response.text
    return response.json().get("delivery_method_id")


def test_several_stripe_accounts_configurations_name_their_delivery_method(
    fresh_emulator: Emulator, fake_stripe: FakeStripe, host_for
) -> None:
    ours = connect(fresh_emulator, "acct_1FakeStripe")  # the account expected_account_id names
    connect(fresh_emulator, "acct_1SomeOtherStripe")
    host = host_for(fresh_emulator)
    customers = make_customers(fresh_emulator, fake_stripe, 2, "multi")
    _, outs = host.create(base_inputs(customers, go_live=True))
    assert outs["delivery_method_id"] == ours
    for c in customers:
        (config,) = live_configs(fresh_emulator, c["customer_id"])
        assert config.delivery_method_id == ours


def test_several_stripe_accounts_none_named_needs_the_setting(
    fresh_emulator: Emulator, fake_stripe: FakeStripe, host_for
) -> None:
    connect(fresh_emulator)  # the dashboard's connection (the listing names no account)
    second = connect(fresh_emulator, "acct_1SomeOtherStripe")
    host = host_for(fresh_emulator)
    customers = make_customers(fresh_emulator, fake_stripe, 1, "ambiguous")
    id_, outs = host.create(base_inputs(customers, go_live=False))
    live = base_inputs(customers, go_live=True)
    ((prop, reason),) = host.check(live, base_inputs(customers, go_live=False))
    assert prop == "customers" and "several Stripe accounts are connected" in reason
    assert "stripe.delivery_method_id" in reason
    chosen = {**live, "stripe_delivery_method_id": second}
    outs = host.update(id_, outs, chosen)
    assert outs["delivery_method_id"] == second
    assert live_configs(fresh_emulator, customers[0]["customer_id"])[0].delivery_method_id == second
    bad = {**chosen, "stripe_delivery_method_id": "not-a-delivery-method"}
    with pytest.raises(ProviderError, match="is not a connected Stripe account's delivery method"):
        host.update(id_, outs, bad)


def test_invoices_auto_advance_unless_the_stack_says_drafts(
    fresh_emulator: Emulator, fake_stripe: FakeStripe, host_for
) -> None:
    """Metronome leaves invoices sent to Stripe as drafts when nothing sets it: going live sets the stack's
    value on every customer; changing it is a change in the plan, applied to every customer again."""
    connect(fresh_emulator)
    host = host_for(fresh_emulator)
    customers = make_customers(fresh_emulator, fake_stripe, 3, "drafts")
    off = base_inputs(customers, go_live=False)
    id_, outs = host.create(off)
    assert outs["leave_invoices_in_draft"] is False  # in the plan, stated

    def update_configs() -> int:
        return fresh_emulator.admin("GET", "stats").json()["by_route"].get(UPDATE_CONFIG, 0)

    assert update_configs() == 0  # nothing set before go-live
    on = base_inputs(customers, go_live=True)
    outs = host.update(id_, outs, on)
    assert update_configs() == 3
    _, refreshed = host.read(id_, outs)
    assert host.diff(id_, refreshed, on).changes == "NONE"
    drafts = {**on, "leave_invoices_in_draft": True}
    assert host.diff(id_, refreshed, drafts).changes == "SOME"
    host.update(id_, outs, drafts)
    assert update_configs() == 6


def test_an_unknown_customer_is_said_to_be_unknown(
    fresh_emulator: Emulator, fake_stripe: FakeStripe, host_for
) -> None:
    """Metronome answers the configurations of an unknown customer with 200 [] and a set for it with a
    500 (reported): the provider says the customer does not exist instead of retrying a 500."""
    connect(fresh_emulator)
    client = fresh_emulator.client(max_retries=0)
    assert client.v1.customers.retrieve_billing_configurations(customer_id="no-such-customer").data == []
    host = host_for(fresh_emulator)
    customers = make_customers(fresh_emulator, fake_stripe, 1, "known")
    customers.append(
        {"customer_id": "no-such-customer", "stripe_customer_id": fake_stripe.create_customer("x")}
    )
    with pytest.raises(ProviderError) as info:
        host.create(base_inputs(customers, go_live=True))
    assert "Metronome customer(s) no-such-customer do not exist" in info.value.details
