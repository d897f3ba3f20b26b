"""StripeIntegration through the real provider host (`python -m pulumi.dynamic` over gRPC), against the
emulator and a local Stripe (localstripe + the fake extras). Results are verified with the official client.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Emulator, start_emulator
from fake_stripe import API_KEY, FakeStripe
from provider_host import Diff, ProviderError, ProviderHost, provider_blob, secret

from providers.stripe_integration import StripeIntegrationProvider

OTHER_KEY = "sk_test_other_account_key"
IDENTITY = "metronome-iac/test/stripe"
PROVIDER = StripeIntegrationProvider


class Host:
    """tests/provider_host.py's ProviderHost, configured with the Stripe key (secret) and API base."""

    def __init__(self, emulator: Emulator, stripe_base: str, stripe_key: str = API_KEY) -> None:
        config = {"stripe:apiKey": secret(stripe_key), "stripe:apiBase": stripe_base}
        self.host = ProviderHost(emulator.base_url, emulator.token, config=config)

    @staticmethod
    def props(inputs: dict[str, Any]) -> dict[str, Any]:
        return {"identity": IDENTITY, **inputs}

    def check(self, news: dict[str, Any], olds: dict[str, Any] | None = None) -> list[tuple[str, str]]:
        _, failures = self.host.check(
            PROVIDER, self.props(olds) if olds else {}, self.props(news), name="stripe"
        )
        return failures

    def create(self, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        checked = self.host.check_ok(PROVIDER, self.props(inputs))
        return self.host.create(PROVIDER, checked, name="stripe")

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> Diff:
        return self.host.diff(PROVIDER, id_, olds, self.props(news), name="stripe")

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        checked = self.host.check_ok(PROVIDER, self.props(news), self.props(olds))
        return self.host.update(PROVIDER, id_, olds, checked, name="stripe")

    def read(self, id_: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return self.host.read(PROVIDER, id_, props, name="stripe")

    def stop(self) -> None:
        self.host.close()


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    fake.keys[OTHER_KEY] = "acct_1SomeoneElse"
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def connected() -> Iterator[Emulator]:
    """An emulator of this module's own, with Stripe connected (as the dashboard step would)."""
    emu = start_emulator()
    response = emu.admin("POST", "billing-providers", json={"billing_provider": "stripe", "connected": True})
    assert response.status_code == 200, response.text
    yield emu
    emu.stop()


@pytest.fixture
def hosts() -> Iterator[list[Host]]:
    started: list[Host] = []
    yield started
    for host in started:
        host.stop()


def make_customers(emulator: Emulator, fake: FakeStripe, n: int, prefix: str) -> list[dict[str, str]]:
    client = emulator.client()
    out = []
    for i in range(n):
        metronome_id = client.v1.customers.create(name=f"{prefix} {i}").data.id
        out.append({"customer_id": metronome_id, "stripe_customer_id": fake.create_customer(f"{prefix} {i}")})
    return out


def live_configs(emulator: Emulator, customer_id: str) -> list[Any]:
    return list(emulator.client().v1.customers.retrieve_billing_configurations(customer_id=customer_id).data)


def base_inputs(customers: list[dict[str, str]], go_live: bool) -> dict[str, Any]:
    return {"expected_account_id": "acct_1FakeStripe", "go_live": go_live, "customers": customers}


def test_missing_stripe_connection_fails_with_the_dashboard_step(
    fresh_emulator: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    host = Host(fresh_emulator, fake_stripe.api_base)
    hosts.append(host)
    customers = make_customers(fresh_emulator, fake_stripe, 1, "unconnected")
    with pytest.raises(ProviderError) as info:
        host.create(base_inputs(customers, go_live=False))
    details = info.value.details
    assert "Stripe is not connected to this Metronome account" in details
    assert "Settings > Integrations > Stripe" in details
    assert live_configs(fresh_emulator, customers[0]["customer_id"]) == []


def test_missing_stripe_customers_are_all_reported_in_one_failure(
    connected: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    host = Host(connected, fake_stripe.api_base)
    hosts.append(host)
    customers = make_customers(connected, fake_stripe, 2, "missing")
    customers += [
        {"customer_id": customers[0]["customer_id"] + "x", "stripe_customer_id": "cus_DoesNotExist1"},
        {"customer_id": customers[0]["customer_id"] + "y", "stripe_customer_id": "cus_DoesNotExist2"},
    ]
    failures = host.check(base_inputs(customers, go_live=False))
    assert len(failures) == 1
    ((prop, reason),) = failures
    assert prop == "customers"
    assert "2 Stripe customer id(s) not found" in reason
    assert "cus_DoesNotExist1 (no such customer)" in reason
    assert "cus_DoesNotExist2 (no such customer)" in reason


def test_key_of_another_account_is_refused(
    connected: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    host = Host(connected, fake_stripe.api_base, stripe_key=OTHER_KEY)
    hosts.append(host)
    ((prop, reason),) = host.check(base_inputs([], go_live=False))
    assert prop == "expected_account_id"
    assert "belongs to account acct_1SomeoneElse, not expected_account_id acct_1FakeStripe" in reason


def test_go_live_gate(connected: Emulator, fake_stripe: FakeStripe, hosts: list[Host]) -> None:
    host = Host(connected, fake_stripe.api_base)
    hosts.append(host)
    customers = make_customers(connected, fake_stripe, 3, "golive")
    customers[1]["collection_method"] = "send_invoice"  # per-customer override
    off = base_inputs(customers, go_live=False)

    # go_live off: nothing is set on any customer.
    id_, outs = host.create(off)
    assert outs["billing_provider_configuration_ids"] == {}
    assert (
        len(outs["go_live_pending"]) == 3 and customers[0]["stripe_customer_id"] in outs["go_live_pending"][0]
    )
    assert outs["stripe_account_id"] == "acct_1FakeStripe"
    for c in customers:
        assert live_configs(connected, c["customer_id"]) == []
    assert API_KEY not in str(outs)  # the key lives in the host only: not in outputs, not in the pickle
    assert API_KEY.encode() not in base64.b64decode(provider_blob(PROVIDER))

    read_id, read_outs = host.read(id_, outs)
    assert read_id == id_ and read_outs["billing_provider_configuration_ids"] == {}

    # go_live on: an update that sets every customer's configuration.
    on = base_inputs(customers, go_live=True)
    diff = host.diff(id_, outs, on)
    assert diff.changed and diff.replaces == []
    live = host.update(id_, outs, on)
    ids = live["billing_provider_configuration_ids"]
    assert set(ids) == {c["customer_id"] for c in customers}
    for c in customers:
        (config,) = live_configs(connected, c["customer_id"])
        assert config.id == ids[c["customer_id"]]
        assert config.billing_provider == "stripe"
        assert config.configuration["stripe_customer_id"] == c["stripe_customer_id"]
        expected_method = c.get("collection_method", "charge_automatically")
        assert config.configuration["stripe_collection_method"] == expected_method

    # A retried update (e.g. after a lost answer) re-uses the configurations: no duplicates.
    again = host.update(id_, outs, on)
    assert again["billing_provider_configuration_ids"] == ids
    assert all(len(live_configs(connected, c["customer_id"])) == 1 for c in customers)
    _, refreshed = host.read(id_, live)
    assert refreshed["billing_provider_configuration_ids"] == ids

    # go_live off again: refused at check and at diff, and nothing is archived.
    ((prop, reason),) = host.check(off, olds=on)
    assert prop == "go_live" and "cannot be turned off" in reason
    assert "archiveCustomerBillingProviderConfigurations" in reason
    with pytest.raises(ProviderError) as info:
        host.diff(id_, live, off)
    assert "cannot be turned off" in info.value.details
    assert all(len(live_configs(connected, c["customer_id"])) == 1 for c in customers)


def _connect(emulator: Emulator) -> None:
    response = emulator.admin(
        "POST", "billing-providers", json={"billing_provider": "stripe", "connected": True}
    )
    assert response.status_code == 200, response.text


def test_many_customers_are_set_in_batches(
    fresh_emulator: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    _connect(fresh_emulator)
    host = Host(fresh_emulator, fake_stripe.api_base)
    hosts.append(host)
    customers = make_customers(fresh_emulator, fake_stripe, 120, "batch")
    _, outs = host.create(base_inputs(customers, go_live=True))
    assert len(outs["billing_provider_configuration_ids"]) == 120
    by_route = fresh_emulator.admin("GET", "stats").json()["by_route"]
    assert by_route["POST /v1/setCustomerBillingProviderConfigurations"] == 2  # 100 + 20


def test_go_live_under_injected_failures_sets_each_configuration_once(
    fresh_emulator: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    _connect(fresh_emulator)
    host = Host(fresh_emulator, fake_stripe.api_base)
    hosts.append(host)
    customers = make_customers(fresh_emulator, fake_stripe, 30, "flaky")
    off = base_inputs(customers, go_live=False)
    id_, outs = host.create(off)
    # 429s, and 500s before and after processing: a blind retry of a processed batch would duplicate.
    config = fresh_emulator.admin("POST", "config", json={"fail_rate": 0.3, "seed": 11})
    assert config.status_code == 200
    live = host.update(id_, outs, base_inputs(customers, go_live=True))
    fresh_emulator.admin("POST", "config", json={"fail_rate": 0.0})
    assert len(live["billing_provider_configuration_ids"]) == 30
    for c in customers:
        (one,) = live_configs(fresh_emulator, c["customer_id"])
        assert one.id == live["billing_provider_configuration_ids"][c["customer_id"]]
    stats = fresh_emulator.admin("GET", "stats").json()
    print(
        "SETCALLS",
        stats["by_route"].get("POST /v1/setCustomerBillingProviderConfigurations"),
        stats["injected_failures"],
    )
    assert sum(stats["injected_failures"].values()) > 0


def test_set_call_failing_after_processing_is_not_replayed_blindly() -> None:
    """A 500 after the batch was stored: the batch is looked up again, not sent again."""
    import httpx
    import metronome

    from providers.stripe_integration import set_configurations

    stored: dict[str, list[dict[str, Any]]] = {"c1": [], "c2": []}
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        import json

        body = json.loads(request.content or b"{}")
        calls.append(request.url.path)
        if request.url.path == "/v1/getCustomerBillingProviderConfigurations":
            return httpx.Response(200, json={"data": stored[body["customer_id"]]})
        made = []
        for i, item in enumerate(body["data"]):
            config = {"id": f"cfg-{item['customer_id']}-{i}", "billing_provider": "stripe", **item}
            config.pop("delivery_method")
            stored[item["customer_id"]].append(config)
            made.append(config)
        if calls.count(request.url.path) == 1:
            return httpx.Response(500, json={"message": "processed, then failed"})
        return httpx.Response(200, json={"data": made})

    client = metronome.Metronome(
        bearer_token="t",
        base_url="http://metronome.test",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    wanted = [
        {"customer_id": "c1", "stripe_customer_id": "cus_1", "collection_method": "charge_automatically"},
        {"customer_id": "c2", "stripe_customer_id": "cus_2", "collection_method": "send_invoice"},
    ]
    ids = set_configurations(client, wanted, "dm", "StripeIntegration 'x'", sleep=lambda _s: None)
    assert ids == {"c1": "cfg-c1-0", "c2": "cfg-c2-1"}
    assert calls.count("/v1/setCustomerBillingProviderConfigurations") == 1
    assert all(len(v) == 1 for v in stored.values())


def test_preview_with_unknown_customer_ids_still_checks_stripe(
    connected: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    from provider_host import UNKNOWN

    host = Host(connected, fake_stripe.api_base)
    hosts.append(host)
    known = fake_stripe.create_customer("preview")
    customers = [
        {"customer_id": UNKNOWN, "stripe_customer_id": known},  # the Customer is not created yet
        {"customer_id": UNKNOWN, "stripe_customer_id": "cus_NotThere"},
    ]
    ((prop, reason),) = host.check(base_inputs(customers, go_live=False))
    assert prop == "customers" and "1 Stripe customer id(s) not found" in reason and "cus_NotThere" in reason
    assert host.check(base_inputs(customers[:1], go_live=True)) == []
