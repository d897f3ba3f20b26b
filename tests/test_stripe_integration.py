"""StripeIntegration through the real provider host (`python -m pulumi.dynamic` over gRPC), against the
emulator and a local Stripe (localstripe + the fake extras). Results are verified with the official client.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Emulator, set_stripe_config, start_emulator
from fake_stripe import API_KEY, FakeStripe
from provider_host import Diff, ProviderError, ProviderHost, provider_blob, secret

from providers.stripe_integration import StripeIntegrationProvider

OTHER_KEY = "sk_test_other_account_key"
IDENTITY = "metronome-iac/test/stripe"
PROVIDER = StripeIntegrationProvider


class Host:
    """tests/provider_host.py's ProviderHost, configured with the Stripe key (secret) and API base."""

    def __init__(
        self, emulator: Emulator, stripe_base: str, stripe_key: str = API_KEY, base_url: str | None = None
    ) -> None:
        config = {"stripe:apiKey": secret(stripe_key), "stripe:apiBase": stripe_base}
        self.host = ProviderHost(base_url or emulator.base_url, emulator.token, config=config)

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


def archived_ids(emulator: Emulator, customer_id: str) -> set[str]:
    configs = emulator.client().v1.customers.retrieve_billing_configurations(
        customer_id=customer_id, include_archived=True
    )
    return {c.id for c in configs.data if c.archived_at}


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
    # The preview (check) first; then the update under 429s, and 500s before and after processing: a
    # blind retry of a processed batch would duplicate.
    checked = host.host.check_ok(PROVIDER, host.props(base_inputs(customers, go_live=True)), host.props(off))
    config = fresh_emulator.admin("POST", "config", json={"fail_rate": 0.3, "seed": 11})
    assert config.status_code == 200
    live = host.host.update(PROVIDER, id_, outs, checked, name="stripe")
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
            assert item["delivery_method_id"] == "dm"  # named by id: required with several Stripe accounts
            config = {"id": f"cfg-{item['customer_id']}-{i}", "billing_provider": "stripe", **item}
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


# ---------------------------------------------------------------------------------------------
# While live: replacing, adding and removing customers' configurations
# ---------------------------------------------------------------------------------------------


def go_live(host: Host, customers: list[dict[str, str]]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A live integration: (id, checked inputs as recorded, outputs)."""
    on = base_inputs(customers, go_live=True)
    id_, outs = host.create(on)
    assert set(outs["billing_provider_configuration_ids"]) == {c["customer_id"] for c in customers}
    return id_, on, outs


def test_live_change_sets_the_new_configuration_then_archives_the_replaced_one(
    connected: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    host = Host(connected, fake_stripe.api_base)
    hosts.append(host)
    customers = make_customers(connected, fake_stripe, 3, "replace")
    id_, on, outs = go_live(host, customers)
    old_ids = outs["billing_provider_configuration_ids"]

    changed = [dict(c) for c in customers]
    changed[0]["collection_method"] = "send_invoice"  # collection method
    changed[1]["stripe_customer_id"] = fake_stripe.create_customer("replace 1 moved")  # Stripe customer
    news = base_inputs(changed, go_live=True)
    assert host.diff(id_, outs, news).changed
    updated = host.update(id_, outs, news)
    new_ids = updated["billing_provider_configuration_ids"]

    for before, after in zip(customers, changed, strict=True):
        cid = after["customer_id"]
        (active,) = live_configs(connected, cid)  # exactly one active Stripe configuration
        assert active.id == new_ids[cid]
        assert active.configuration["stripe_customer_id"] == after["stripe_customer_id"]
        assert active.configuration["stripe_collection_method"] == after.get(
            "collection_method", "charge_automatically"
        )
        if after == before:  # untouched customer: same configuration, nothing archived
            assert new_ids[cid] == old_ids[cid] and archived_ids(connected, cid) == set()
        else:
            assert new_ids[cid] != old_ids[cid] and archived_ids(connected, cid) == {old_ids[cid]}

    # Re-running converges: the same configurations, nothing set or archived again.
    assert host.update(id_, outs, news)["billing_provider_configuration_ids"] == new_ids
    assert host.update(id_, updated, news)["billing_provider_configuration_ids"] == new_ids
    assert all(len(live_configs(connected, c["customer_id"])) == 1 for c in changed)
    _, refreshed = host.read(id_, updated)
    assert refreshed["billing_provider_configuration_ids"] == new_ids
    assert not host.diff(id_, refreshed, news).changed


def test_going_live_leaves_each_customer_exactly_one_active_stripe_configuration(
    connected: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    """A Stripe configuration set by hand before go-live (other collection method) is replaced too."""
    host = Host(connected, fake_stripe.api_base)
    hosts.append(host)
    (customer,) = make_customers(connected, fake_stripe, 1, "by-hand")
    by_hand = set_stripe_config(
        connected, customer["customer_id"], customer["stripe_customer_id"], "send_invoice"
    )
    _, _, outs = go_live(host, [customer])
    (active,) = live_configs(connected, customer["customer_id"])
    assert active.id == outs["billing_provider_configuration_ids"][customer["customer_id"]] != by_hand
    assert active.configuration["stripe_collection_method"] == "charge_automatically"
    assert archived_ids(connected, customer["customer_id"]) == {by_hand}


def contract_on(emulator: Emulator, customer_id: str, config_id: str, name: str, **extra: Any) -> str:
    """A contract billed through `config_id`, made with the official client (as the Contract resource
    would, uniqueness key included)."""
    return (
        emulator.client()
        .v1.contracts.create(
            customer_id=customer_id,
            starting_at=extra.pop("starting_at", "2026-01-01T00:00:00Z"),
            name=name,
            uniqueness_key=f"iac:metronome-iac/test/{name}#0123abcd",
            billing_provider_configuration={"billing_provider_configuration_id": config_id},
            **extra,
        )
        .data.id
    )


def contract_configuration(emulator: Emulator, customer_id: str, contract_id: str) -> Any:
    got = emulator.client().v2.contracts.retrieve(customer_id=customer_id, contract_id=contract_id).data
    return got.customer_billing_provider_configuration


def test_live_change_is_refused_while_active_contracts_bill_through_the_configuration(
    connected: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    """Metronome archives a configuration on the contracts using it and cannot give them another one:
    the change is refused at preview (and again before anything is set), naming the contracts."""
    host = Host(connected, fake_stripe.api_base)
    hosts.append(host)
    customers = make_customers(connected, fake_stripe, 2, "bound")
    id_, on, outs = go_live(host, customers)
    old = outs["billing_provider_configuration_ids"]
    busy, quiet = customers[0]["customer_id"], customers[1]["customer_id"]
    suffix = busy[:8]
    active = contract_on(connected, busy, old[busy], f"busy_2026_{suffix}")
    # Contracts that no longer bill do not hold the change up: one ended, one archived.
    ended = contract_on(
        connected,
        quiet,
        old[quiet],
        f"quiet_2025_{suffix}",
        starting_at="2025-01-01T00:00:00Z",
        ending_before="2025-07-01T00:00:00Z",
    )
    archived = contract_on(connected, quiet, old[quiet], f"quiet_gone_{suffix}")
    connected.client().v1.contracts.archive(customer_id=quiet, contract_id=archived, void_invoices=False)

    changed = [
        {**customers[0], "stripe_customer_id": fake_stripe.create_customer("bound 0 moved")},
        {**customers[1], "collection_method": "send_invoice"},
    ]
    news = base_inputs(changed, go_live=True)
    ((prop, reason),) = host.check(news, olds=on)
    assert prop == "customers"
    assert (
        f"customer {busy}: the wanted configuration (Stripe customer {changed[0]['stripe_customer_id']}"
        in reason
    )
    assert (
        f"would replace configuration {old[busy]} (Stripe customer {customers[0]['stripe_customer_id']}"
        in reason
    )
    assert f"contract {active} ('busy_2026_{suffix}', stack contract busy_2026_{suffix})" in reason
    assert ended not in reason and archived not in reason and f"customer {quiet}" not in reason
    assert "Metronome cannot move a contract to another billing provider configuration" in reason
    assert "end those contracts" in reason and "renewal" in reason
    assert "Metronome dashboard with Metronome's help" in reason

    # Applied anyway (preview skipped, or a contract bound since the preview): refused before anything is set.
    with pytest.raises(ProviderError) as info:
        host.host.update(PROVIDER, id_, outs, host.props(news), name="stripe")
    assert f"contract {active}" in info.value.details and "Nothing was changed" in info.value.details
    for cid in (busy, quiet):
        (config,) = live_configs(connected, cid)
        assert config.id == old[cid] and archived_ids(connected, cid) == set()
    assert contract_configuration(connected, busy, active).archived_at is None

    # The customer without active contracts changes as before: new configuration set, replaced one archived
    # (and, as Metronome does, archived on its ended contract too).
    only_quiet = base_inputs([customers[0], changed[1]], go_live=True)
    assert host.check(only_quiet, olds=on) == []
    updated = host.update(id_, outs, only_quiet)
    new_quiet = updated["billing_provider_configuration_ids"][quiet]
    assert new_quiet != old[quiet] and updated["billing_provider_configuration_ids"][busy] == old[busy]
    (config,) = live_configs(connected, quiet)
    assert config.id == new_quiet and config.configuration["stripe_collection_method"] == "send_invoice"
    assert archived_ids(connected, quiet) == {old[quiet]}
    assert contract_configuration(connected, quiet, ended).archived_at is not None
    assert contract_configuration(connected, busy, active).archived_at is None

    # The way forward the message gives: once the contract has ended, the change goes through.
    connected.client().v2.contracts.edit(
        customer_id=busy, contract_id=active, update_contract_end_date="2026-02-01T00:00:00Z"
    )
    assert host.check(news, olds=only_quiet) == []
    moved = host.update(id_, updated, news)["billing_provider_configuration_ids"]
    (config,) = live_configs(connected, busy)
    assert config.id == moved[busy] != old[busy]
    assert config.configuration["stripe_customer_id"] == changed[0]["stripe_customer_id"]
    assert archived_ids(connected, busy) == {old[busy]}


def test_going_live_is_refused_where_it_would_archive_a_configuration_an_active_contract_uses(
    connected: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    host = Host(connected, fake_stripe.api_base)
    hosts.append(host)
    (customer,) = make_customers(connected, fake_stripe, 1, "by-hand-bound")
    cid = customer["customer_id"]
    by_hand = set_stripe_config(connected, cid, customer["stripe_customer_id"], "send_invoice")
    active = contract_on(connected, cid, by_hand, f"by_hand_{cid[:8]}")
    off = base_inputs([customer], go_live=False)
    id_, outs = host.create(off)
    # The preview that goes live looks every customer up and refuses, naming the contract.
    live_inputs = base_inputs([customer], go_live=True)
    ((prop, reason),) = host.check(live_inputs, olds=off)
    assert prop == "customers" and f"would replace configuration {by_hand}" in reason
    assert f"contract {active}" in reason and "keep the customer's stripe_customer_id" in reason
    # Previews that stay off look nothing up for it; `up` refuses again before setting anything.
    assert host.check(off, olds=off) == []
    with pytest.raises(ProviderError) as info:
        host.host.update(PROVIDER, id_, outs, host.props(live_inputs), name="stripe")
    assert f"would replace configuration {by_hand}" in info.value.details
    assert f"contract {active}" in info.value.details
    assert [c.id for c in live_configs(connected, cid)] == [by_hand] and archived_ids(connected, cid) == set()
    assert contract_configuration(connected, cid, active).archived_at is None
    # Declaring the configuration it already has (send_invoice) is accepted and re-uses it.
    matching = base_inputs([{**customer, "collection_method": "send_invoice"}], go_live=True)
    assert host.check(matching, olds=off) == []
    live = host.update(id_, outs, matching)
    assert live["billing_provider_configuration_ids"] == {cid: by_hand}
    assert [c.id for c in live_configs(connected, cid)] == [by_hand]
    assert contract_configuration(connected, cid, active).archived_at is None


class FaultyProxy:
    """Forwards to the emulator, but answers 500 on the paths in `failing` (the emulator's own fault
    knob hits routes at random; these tests need one route to fail on purpose)."""

    def __init__(self, target: str) -> None:
        self.failing: set[str] = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path in proxy.failing:
                    status, payload = 500, b'{"message": "injected: archive is unavailable"}'
                    headers = {"retry-after-ms": "10"}  # keeps the SDK's retries fast
                else:
                    forward = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() in ("authorization", "content-type")
                    }
                    answer = httpx.request(
                        self.command, target + self.path, content=body, headers=forward, timeout=30
                    )
                    status, payload, headers = answer.status_code, answer.content, {}
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def faulty_proxy(fresh_emulator: Emulator) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(fresh_emulator.base_url)
    yield proxy
    proxy.stop()


def test_archive_failure_after_the_set_says_what_it_left_and_a_rerun_finishes(
    fresh_emulator: Emulator, faulty_proxy: FaultyProxy, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    _connect(fresh_emulator)
    host = Host(fresh_emulator, fake_stripe.api_base, base_url=faulty_proxy.url)
    hosts.append(host)
    customers = make_customers(fresh_emulator, fake_stripe, 3, "archive-fails")
    a, b, untouched = (c["customer_id"] for c in customers)
    id_, _, outs = go_live(host, customers)
    old = outs["billing_provider_configuration_ids"]
    changed = [{**c, "collection_method": "send_invoice"} for c in customers[:2]] + customers[2:]
    news = base_inputs(changed, go_live=True)

    faulty_proxy.failing.add("/v1/archiveCustomerBillingProviderConfigurations")
    with pytest.raises(ProviderError) as info:
        host.update(id_, outs, news)
    new = {cid: next(c.id for c in live_configs(fresh_emulator, cid) if c.id != old[cid]) for cid in (a, b)}
    message = info.value.details
    assert (
        "the new Stripe configurations are set, but archiving the replaced ones failed for 2 customer(s)"
        in message
    )
    for cid in (a, b):  # exactly the state it says it left
        assert (
            f"customer {cid}: new configuration {new[cid]} is active AND replaced {old[cid]} is still active"
            in message
        )
        assert {c.id for c in live_configs(fresh_emulator, cid)} == {old[cid], new[cid]}
    assert "injected: archive is unavailable" in message
    assert "Run `pulumi up` again to finish" in message

    # The engine kept the previous outputs (the update failed). Re-running finishes: `a` with the same
    # inputs re-uses its new configuration; `b` was changed once more meanwhile (another Stripe customer).
    faulty_proxy.failing.clear()
    changed[1] = {**changed[1], "stripe_customer_id": fake_stripe.create_customer("archive-fails b moved")}
    finished = host.update(id_, outs, base_inputs(changed, go_live=True))
    ids = finished["billing_provider_configuration_ids"]
    assert ids[a] == new[a] and ids[untouched] == old[untouched]
    for cid in (a, b, untouched):
        (active,) = live_configs(fresh_emulator, cid)
        assert active.id == ids[cid]
    assert archived_ids(fresh_emulator, a) == {old[a]}
    assert archived_ids(fresh_emulator, b) == {old[b], new[b]}  # both configurations it replaced
    assert archived_ids(fresh_emulator, untouched) == set()
    by_route = fresh_emulator.admin("GET", "stats").json()["by_route"]
    # go live, the failed update, and the re-run's one new configuration (for b): nothing set twice.
    assert by_route["POST /v1/setCustomerBillingProviderConfigurations"] == 3


def test_adding_a_customer_while_live_sets_it_and_removing_one_says_how_to_stop_deliberately(
    connected: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    host = Host(connected, fake_stripe.api_base)
    hosts.append(host)
    customers = make_customers(connected, fake_stripe, 3, "add-remove")
    id_, on, outs = go_live(host, customers[:2])

    # Adding: the new customer's configuration is set; the others are kept.
    grown = base_inputs(customers, go_live=True)
    assert host.check(grown, olds=on) == []
    outs_grown = host.update(id_, outs, grown)
    ids = outs_grown["billing_provider_configuration_ids"]
    assert {k: ids[k] for k in outs["billing_provider_configuration_ids"]} == outs[
        "billing_provider_configuration_ids"
    ]
    (added,) = live_configs(connected, customers[2]["customer_id"])
    assert added.id == ids[customers[2]["customer_id"]]

    # Removing a customer that is still invoiced through Stripe: refused, with the deliberate way out.
    gone = customers[0]["customer_id"]
    shrunk = base_inputs(customers[1:], go_live=True)
    ((prop, reason),) = host.check(shrunk, olds=grown)
    assert prop == "customers"
    assert f"{gone} (configuration {ids[gone]})" in reason
    assert "To stop invoicing a customer through Stripe deliberately" in reason
    assert "POST /v1/archiveCustomerBillingProviderConfigurations" in reason
    assert len(live_configs(connected, gone)) == 1

    # Doing what the message says: archive it by hand, then the removal passes and nothing is re-set.
    connected.client().v1.customers.archive_billing_configurations(
        customer_id=gone, customer_billing_provider_configuration_ids=[ids[gone]]
    )
    assert host.check(shrunk, olds=grown) == []
    after = host.update(id_, outs_grown, shrunk)
    assert gone not in after["billing_provider_configuration_ids"]
    assert live_configs(connected, gone) == []
    assert all(len(live_configs(connected, c["customer_id"])) == 1 for c in customers[1:])


def test_changing_expected_account_id_is_refused_while_live_and_allowed_before(
    connected: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    host = Host(connected, fake_stripe.api_base)
    other = Host(connected, fake_stripe.api_base, stripe_key=OTHER_KEY)  # a key of acct_1SomeoneElse
    hosts += [host, other]
    customers = make_customers(connected, fake_stripe, 1, "account")
    moved = {**base_inputs(customers, go_live=True), "expected_account_id": "acct_1SomeoneElse"}

    # Live: refused at check and at diff, and nothing changes in Metronome.
    id_, on, outs = go_live(host, customers)
    ((prop, reason),) = other.check(moved, olds=on)
    assert prop == "expected_account_id"
    assert "cannot change while go_live is true (acct_1FakeStripe -> acct_1SomeoneElse)" in reason
    assert "every customer's Stripe customer id and billing provider configuration changes" in reason
    assert "planned migration" in reason
    with pytest.raises(ProviderError) as info:
        other.diff(id_, outs, moved)
    assert "planned migration" in info.value.details
    (config,) = live_configs(connected, customers[0]["customer_id"])
    assert config.id == outs["billing_provider_configuration_ids"][customers[0]["customer_id"]]

    # Not live yet: an ordinary in-place update (nothing has been set on any customer).
    off = base_inputs(customers, go_live=False)
    off_id, off_outs = host.create(off)
    moved_off = {**off, "expected_account_id": "acct_1SomeoneElse"}
    assert other.check(moved_off, olds=off) == []
    diff = other.diff(off_id, off_outs, moved_off)
    assert diff.changed and diff.replaces == []
    assert other.update(off_id, off_outs, moved_off)["stripe_account_id"] == "acct_1SomeoneElse"


# ---------------------------------------------------------------------------------------------
# Diff: no phantom changes (through the host's Diff, against recorded outputs)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(connected: Emulator, fake_stripe: FakeStripe) -> Iterator[tuple[Host, str, dict, dict, dict]]:
    """A live integration as the engine records it: (host, id, inputs, outputs, outputs after a refresh).
    Outputs come back through the host's gRPC Struct, as the engine stores them (numbers as floats)."""
    host = Host(connected, fake_stripe.api_base)
    customers = make_customers(connected, fake_stripe, 3, "diff")
    customers[1]["collection_method"] = "charge_automatically"  # an override equal to the default
    customers[2]["collection_method"] = "send_invoice"
    inputs = {**base_inputs(customers, go_live=True), "collection_method": "charge_automatically"}
    id_, outs = host.create(inputs)
    _, refreshed = host.read(id_, outs)
    yield host, id_, inputs, outs, refreshed
    host.stop()


Edit = Callable[[dict[str, Any]], dict[str, Any]]


def same(d: dict[str, Any]) -> dict[str, Any]:
    return d


def without(key: str) -> Edit:
    return lambda d: {k: v for k, v in d.items() if k != key}


def customer(i: int, **change: Any) -> Edit:
    """Change customer i (None removes the field)."""

    def edit(d: dict[str, Any]) -> dict[str, Any]:
        customers = [dict(c) for c in d["customers"]]
        customers[i] = {k: v for k, v in {**customers[i], **change}.items() if v is not None}
        return {**d, "customers": customers}

    return edit


def reversed_customers(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "customers": d["customers"][::-1]}


def added_customer(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "customers": [*d["customers"], {"customer_id": "c-new", "stripe_customer_id": "cus_New1"}]}


DIFF_TABLE: list[tuple[str, str, Edit, Edit, str]] = [
    # (case, recorded state: "create" or "refresh" outputs, edit of the state, edit of the news, changes)
    ("same inputs", "create", same, same, "NONE"),
    ("same inputs after a refresh", "refresh", same, same, "NONE"),
    ("customers in another order", "create", same, reversed_customers, "NONE"),
    ("customers in another order after a refresh", "refresh", reversed_customers, same, "NONE"),
    ("default collection_method omitted in the news", "create", same, without("collection_method"), "NONE"),
    ("default collection_method omitted in the state", "create", without("collection_method"), same, "NONE"),
    ("override equal to the default omitted", "create", same, customer(1, collection_method=None), "NONE"),
    (
        "default filled in as an override",
        "create",
        same,
        customer(0, collection_method="charge_automatically"),
        "NONE",
    ),
    ("a customer's collection method", "create", same, customer(2, collection_method=None), "SOME"),
    ("a customer's Stripe customer id", "create", same, customer(0, stripe_customer_id="cus_Other1"), "SOME"),
    (
        "the default collection method",
        "create",
        same,
        lambda d: {**d, "collection_method": "send_invoice"},
        "SOME",
    ),
    ("a customer added", "create", same, added_customer, "SOME"),
]


@pytest.mark.parametrize(
    ("state", "state_edit", "news_edit", "expected"),
    [row[1:] for row in DIFF_TABLE],
    ids=[row[0] for row in DIFF_TABLE],
)
def test_diff_has_no_phantom_changes(
    recorded: tuple[Host, str, dict, dict, dict], state: str, state_edit: Edit, news_edit: Edit, expected: str
) -> None:
    host, id_, inputs, outs, refreshed = recorded
    olds = state_edit(dict(outs if state == "create" else refreshed))
    diff = host.diff(id_, olds, news_edit(dict(inputs)))
    assert (diff.changes, diff.replaces) == (expected, [])


# ---------------------------------------------------------------------------------------------
# The fake Stripe itself
# ---------------------------------------------------------------------------------------------


def test_fake_stripe_state_file_is_private_to_each_instance() -> None:
    """Two FakeStripes at once (as two test runs would start): each localstripe writes its own file."""
    shared = Path("/tmp/localstripe.pickle")
    first, second = FakeStripe(), FakeStripe()
    try:
        a, b = first.create_customer("first"), second.create_customer("second")
        first_state, second_state = Path(first.state_file).read_bytes(), Path(second.state_file).read_bytes()
        assert a.encode() in first_state and b.encode() not in first_state
        assert b.encode() in second_state and a.encode() not in second_state
        assert not shared.exists() or (
            a.encode() not in shared.read_bytes() and b.encode() not in shared.read_bytes()
        )
        assert Path(first.state_file).parent != Path(second.state_file).parent
    finally:
        first.stop()
        second.stop()
    assert not Path(first.state_dir).exists() and not Path(second.state_dir).exists()


def test_without_a_stripe_key_checks_are_skipped_until_go_live(connected: Emulator) -> None:
    """The dev stack runs against the emulator with no Stripe account: before go-live the Stripe
    look-ups are skipped and the outputs say so; going live without a key is refused at preview."""
    from providers.stripe_integration import NOT_VERIFIED

    customer_id = connected.client().v1.customers.create(name="no key yet").data.id
    inputs = base_inputs([{"customer_id": customer_id, "stripe_customer_id": "cus_NotInAnyStripe"}], False)
    with ProviderHost(connected.base_url, connected.token) as host:  # no stripe:apiKey, no STRIPE_API_KEY
        checked = host.check_ok(PROVIDER, Host.props(inputs))
        _, outs = host.create(PROVIDER, checked, name="stripe")
        assert outs["go_live_pending"][0] == NOT_VERIFIED
        assert "stripe_account_id" not in outs
        assert outs["billing_provider_configuration_ids"] == {}

        _, failures = host.check(PROVIDER, outs, Host.props({**inputs, "go_live": True}), name="stripe")
        assert [field for field, _ in failures] == ["expected_account_id"]
        assert "no Stripe secret key" in failures[0][1]
    assert live_configs(connected, customer_id) == []


def test_a_second_configuration_set_by_hand_while_live_is_seen_and_removed(
    connected: Emulator, fake_stripe: FakeStripe, hosts: list[Host]
) -> None:
    """Two active Stripe configurations on one customer risk billing it twice: refresh sees the extra
    one and the next up archives it (as going live does), leaving exactly the declared one."""
    host = Host(connected, fake_stripe.api_base)
    hosts.append(host)
    (customer,) = make_customers(connected, fake_stripe, 1, "second-by-hand")
    cid = customer["customer_id"]
    id_, on, outs = go_live(host, [customer])
    kept = outs["billing_provider_configuration_ids"][cid]
    extra = set_stripe_config(connected, cid, fake_stripe.create_customer("other"), "send_invoice")

    _, refreshed = host.read(id_, outs)
    assert refreshed["extra_configuration_ids"] == {cid: [extra]}
    assert host.diff(id_, refreshed, on).changes == "SOME"
    updated = host.update(id_, refreshed, on)
    assert [c.id for c in live_configs(connected, cid)] == [kept] and archived_ids(connected, cid) == {extra}
    _, again = host.read(id_, updated)
    assert "extra_configuration_ids" not in again and host.diff(id_, again, on).changes == "NONE"
