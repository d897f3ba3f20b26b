"""`metronome-iac export` of customers' Stripe links: `stripe_customer_id` / `stripe_collection_method`
and a live (`go_live: true`) `stripe:` section; adopting the export sets and archives nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import set_stripe_config
from fake_stripe import ACCOUNT_ID, API_KEY, FakeStripe
from mini_engine import PROJECT, EngineHost, MiniEngine, summary
from provider_host import ProviderHost, secret

from metronome_iac.catalog import load_stack
from metronome_iac.cli import main
from metronome_iac.export_stripe import ACCOUNT_PLACEHOLDER
from metronome_iac.program import stripe_inputs
from providers.stripe_integration import StripeIntegrationProvider

# Routes that change something in Metronome: adopting an export must call none of them.
WRITES = (
    "POST /v1/setCustomerBillingProviderConfigurations",
    "POST /v1/archiveCustomerBillingProviderConfigurations",
    "POST /v2/contracts/edit",
)


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    yield fake
    fake.stop()


def connect_stripe(emulator: Any, connected: bool = True) -> None:
    response = emulator.admin(
        "POST", "billing-providers", json={"billing_provider": "stripe", "connected": connected}
    )
    assert response.status_code == 200, response.text


def stripe_config(fake: FakeStripe) -> dict[str, Any]:
    return {"stripe:apiKey": secret(API_KEY), "stripe:apiBase": fake.api_base}


def stripe_engine(emulator: Any, fake: FakeStripe, stack: str) -> MiniEngine:
    """A mini engine whose provider hosts have the (fake) Stripe key, as `stripe:apiKey` config."""
    config = stripe_config(fake)

    def connect() -> EngineHost:
        return EngineHost(
            ProviderHost(emulator.base_url, emulator.token, project=PROJECT, stack=stack, config=config)
        )

    return MiniEngine(connect, PROJECT, stack)


def make_stripe_account(emulator: Any, fake: FakeStripe) -> dict[str, str]:
    """A hand-made account already invoicing through Stripe: acme (the default collection method),
    globex (send_invoice), initech (not on Stripe); each with a contract, the Stripe ones bound to their
    customer's Stripe configuration."""
    connect_stripe(emulator)
    c = emulator.client()
    fee = c.v1.contracts.products.create(name="Platform fee", type="FIXED").data
    card = c.v1.contracts.rate_cards.create(name="Prices").data
    ids: dict[str, str] = {"product": fee.id, "card": card.id}
    for name, method in (("acme", "charge_automatically"), ("globex", "send_invoice"), ("initech", None)):
        customer = c.v1.customers.create(name=name, ingest_aliases=[name]).data
        ids[name] = customer.id
        bpc = None
        if method:
            ids[f"{name}_stripe"] = fake.create_customer(name)
            ids[f"{name}_config"] = set_stripe_config(emulator, customer.id, ids[f"{name}_stripe"], method)
            bpc = {"billing_provider_configuration_id": ids[f"{name}_config"]}
        ids[f"{name}_contract"] = c.v1.contracts.create(
            customer_id=customer.id,
            rate_card_id=card.id,
            starting_at="2026-01-01T00:00:00Z",
            name=f"{name} 2026",
            **({"billing_provider_configuration": bpc} if bpc else {}),
        ).data.id
    return ids


def export(emulator: Any, out: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> int:
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    return main(["export", "--out", str(out), "--base-url", emulator.base_url, *extra])


def writes(emulator: Any) -> dict[str, int]:
    by_route = emulator.admin("GET", "stats").json()["by_route"]
    return {
        r: n for r, n in by_route.items() if r in WRITES or r.endswith("/create") or r == "POST /v1/customers"
    }


def test_export_writes_live_stripe_links_and_adopting_them_changes_nothing(
    fresh_emulator: Any,
    fake_stripe: FakeStripe,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    emulator = fresh_emulator
    ids = make_stripe_account(emulator, fake_stripe)
    out = tmp_path / "exported"
    assert export(emulator, out, monkeypatch, "--stripe-account", ACCOUNT_ID) == 0, capsys.readouterr().err
    printed = capsys.readouterr()
    assert "fill in" not in printed.out and "warning" not in printed.err

    env = yaml.safe_load((out / "environment.yaml").read_text())
    assert env["stripe"] == {
        "expected_account_id": ACCOUNT_ID,
        "collection_method": "charge_automatically",
        "go_live": True,
        "leave_invoices_in_draft": False,  # Metronome does not show it: written out, to be reviewed
    }
    customers = {c["adopt"]["id"]: c for c in env["customers"]}
    assert customers[ids["acme"]]["stripe_customer_id"] == ids["acme_stripe"]
    assert "stripe_collection_method" not in customers[ids["acme"]]  # the default is not repeated
    assert customers[ids["globex"]]["stripe_customer_id"] == ids["globex_stripe"]
    assert customers[ids["globex"]]["stripe_collection_method"] == "send_invoice"
    assert "stripe_customer_id" not in customers[ids["initech"]]
    stack = load_stack(out)

    before = writes(emulator)
    engine = stripe_engine(emulator, fake_stripe, out.name)
    steps = summary(engine.up(stack))
    assert set(steps) == {"create"}, steps  # adopted into state...
    assert writes(emulator) == before  # ...without one create, set, archive or contract edit
    integration = engine.find("StripeIntegration", "stripe")
    assert integration.outputs["billing_provider_configuration_ids"] == {
        ids["acme"]: ids["acme_config"],
        ids["globex"]: ids["globex_config"],
    }
    again = summary(engine.plan(load_stack(out)))
    assert set(again) == {"same"}, again


def test_without_the_account_a_placeholder_is_written_that_the_preview_refuses(
    fresh_emulator: Any,
    fake_stripe: FakeStripe,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    emulator = fresh_emulator
    ids = make_stripe_account(emulator, fake_stripe)
    # acme gets a second active configuration; its contract still uses the first one.
    second = set_stripe_config(emulator, ids["acme"], fake_stripe.create_customer("acme 2"), "send_invoice")
    # globex's contract is replaced by one that does not invoice through Stripe.
    c = emulator.client()
    c.v1.contracts.archive(customer_id=ids["globex"], contract_id=ids["globex_contract"], void_invoices=True)
    c.v1.contracts.create(
        customer_id=ids["globex"], rate_card_id=ids["card"], starting_at="2026-02-01T00:00:00Z", name="g2"
    )

    out = tmp_path / "exported"
    assert export(emulator, out, monkeypatch) == 0
    printed = capsys.readouterr()
    assert f"fill in: stripe.expected_account_id is the placeholder {ACCOUNT_PLACEHOLDER}" in printed.out
    assert "--stripe-account" in printed.out
    text = (out / "environment.yaml").read_text()
    assert "# TODO: stripe.expected_account_id is the placeholder" in text
    stack = load_stack(out)  # the placeholder loads
    assert stack.environment.stripe is not None
    assert stack.environment.stripe.expected_account_id == ACCOUNT_PLACEHOLDER

    acme = next(x for x in stack.environment.customers if x.adopt == {"id": ids["acme"]})
    assert acme.stripe_customer_id == ids["acme_stripe"] and acme.stripe_collection_method is None
    assert f"customer '{acme.name}' has 2 active Stripe configurations: exported {ids['acme_config']}" in (
        printed.err
    )
    assert second in printed.err
    assert "does not invoice through its Stripe configuration " + ids["globex_config"] in printed.err

    # The preview refuses the placeholder (the provider's check, as `pulumi preview` runs it).
    inputs = stripe_inputs(stack, {c.name: c.adopt["id"] for c in stack.environment.customers if c.adopt})
    host = ProviderHost(emulator.base_url, emulator.token, config=stripe_config(fake_stripe))
    try:
        _, failures = host.check(
            StripeIntegrationProvider, {}, {"identity": f"{PROJECT}/x/stripe", **inputs}, name="stripe"
        )
    finally:
        host.close()
    assert [field for field, _ in failures] == ["expected_account_id"]
    assert f"not expected_account_id {ACCOUNT_PLACEHOLDER}" in failures[0][1]


def test_stripe_links_without_a_connection_get_no_stripe_section(
    fresh_emulator: Any,
    fake_stripe: FakeStripe,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    emulator = fresh_emulator
    ids = make_stripe_account(emulator, fake_stripe)
    connect_stripe(emulator, connected=False)  # disconnected in the dashboard after the fact
    out = tmp_path / "exported"
    assert export(emulator, out, monkeypatch, "--stripe-account", ACCOUNT_ID) == 0
    err = capsys.readouterr().err
    assert "Stripe is not connected" in err and "--stripe-account ignored" in err
    stack = load_stack(out)
    assert stack.environment.stripe is None
    linked = {x.adopt["id"]: x.stripe_customer_id for x in stack.environment.customers if x.adopt}
    assert linked[ids["acme"]] == ids["acme_stripe"] and linked[ids["initech"]] is None


def test_bad_stripe_account_is_an_error(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert export(emulator, tmp_path / "x", monkeypatch, "--stripe-account", "acct-nope") == 1
    assert "--stripe-account" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_export_names_the_stripe_connection_when_several_are_connected(
    fresh_emulator: Any, fake_stripe: FakeStripe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several Stripe accounts connected, configurations must name their delivery method: the export
    writes the one the customers' configurations use as stripe.delivery_method_id."""
    from metronome_iac.emulator.routers.billing_providers import STRIPE_DELIVERY_METHOD_ID

    make_stripe_account(fresh_emulator, fake_stripe)
    response = fresh_emulator.admin(
        "POST", "billing-providers", json={"billing_provider": "stripe", "account_id": "acct_1Another"}
    )
    assert response.status_code == 200, response.text
    out = tmp_path / "exported"
    assert export(fresh_emulator, out, monkeypatch, "--stripe-account", ACCOUNT_ID) == 0
    env = yaml.safe_load((out / "environment.yaml").read_text())
    assert env["stripe"]["delivery_method_id"] == STRIPE_DELIVERY_METHOD_ID
