"""`metronome-iac export`: a hand-made account, exported, loads, is adopted without a single create."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mini_engine import engine_for, make_stack_dir, summary

from metronome_iac.catalog import load_stack
from metronome_iac.cli import main


def _creates(emulator: Any) -> dict[str, int]:
    """Create-call counters from the emulator (routes that make objects)."""
    by_route = emulator.admin("GET", "stats").json()["by_route"]
    return {
        route: n
        for route, n in by_route.items()
        if route.endswith("/create") or route == "POST /v1/customers" or "addRate" in route
    }


def _make_account(emulator: Any) -> dict[str, str]:
    """Objects made by hand with the official client, the way an existing account looks."""
    c = emulator.client()
    metric = c.v1.billable_metrics.create(
        name="API calls",
        aggregation_type="COUNT",
        event_type_filter={"in_values": ["api_call"]},
        property_filters=[{"name": "endpoint", "exists": True}],
        group_keys=[["endpoint"]],
    ).data
    product = c.v1.contracts.products.create(
        name="API calls",
        type="USAGE",
        billable_metric_id=metric.id,
        pricing_group_key=["endpoint"],
        quantity_conversion={"conversion_factor": 1000, "operation": "DIVIDE", "name": "per thousand"},
    ).data
    fixed = c.v1.contracts.products.create(name="Platform fee", type="FIXED").data
    card = c.v1.contracts.rate_cards.create(name="Public prices", description="hand made").data
    c.v1.contracts.rate_cards.rates.add_many(
        rate_card_id=card.id,
        rates=[
            {
                "product_id": product.id,
                "starting_at": "2026-01-01T00:00:00Z",
                "entitled": True,
                "rate_type": "FLAT",
                "price": 25,
                "pricing_group_values": {"endpoint": "search"},
            },
            {
                "product_id": product.id,
                "starting_at": "2026-01-01T00:00:00Z",
                "entitled": True,
                "rate_type": "TIERED",
                "tiers": [{"size": 100, "price": 10}, {"price": 8}],
                "pricing_group_values": {"endpoint": "embed"},
            },
        ],
    )
    customer = c.v1.customers.create(name="Hooli", ingest_aliases=["hooli"]).data
    ids = {
        "metric": metric.id,
        "product": product.id,
        "fixed": fixed.id,
        "card": card.id,
        "customer": customer.id,
    }
    contract = c.v1.contracts.create(
        customer_id=customer.id,
        rate_card_id=card.id,
        starting_at="2026-01-01T00:00:00Z",
        name="Hooli 2026",
    ).data
    ids["contract"] = contract.id
    return ids


def test_export_then_adopt_creates_nothing(
    fresh_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    emulator = fresh_emulator
    ids = _make_account(emulator)
    out = tmp_path / "exported"
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    assert main(["export", "--out", str(out), "--base-url", emulator.base_url]) == 0, capsys.readouterr().err

    stack = load_stack(out)
    entries = [
        *stack.catalog.billable_metrics,
        *stack.catalog.products,
        *stack.catalog.rate_cards,
        *stack.environment.customers,
        *stack.environment.contracts,
    ]
    assert {e.adopt["id"] for e in entries if e.adopt} == set(ids.values())
    assert all(e.adopt for e in entries)
    product = next(p for p in stack.catalog.products if p.adopt == {"id": ids["product"]})
    assert product.billable_metric == stack.catalog.billable_metrics[0].name  # a catalog name, not an id
    card = stack.catalog.rate_cards[0]
    assert {r.product for r in card.rates} == {product.name}
    contract = stack.environment.contracts[0]
    assert contract.customer == stack.environment.customers[0].name and contract.rate_card == card.name

    before = _creates(emulator)
    engine = engine_for(emulator, out.name)
    steps = summary(engine.up(stack))
    assert set(steps) == {"create"} and len(steps["create"]) == len(entries)  # adopt = create in state
    assert _creates(emulator) == before  # ... but not one create call reached Metronome
    assert {r.id for r in engine.state.values()} == set(ids.values())
    again = summary(engine.plan(load_stack(out)))
    assert set(again) == {"same"}, again


def test_round_trip_of_the_dev_stack(
    fresh_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Deploy the dev catalog, export it, adopt the export from another stack: no creates, empty plan."""
    emulator = fresh_emulator
    source = make_stack_dir(tmp_path / "src")
    engine_for(emulator, source.name).up(load_stack(source))

    out = tmp_path / "exported"
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    assert main(["export", "--out", str(out), "--base-url", emulator.base_url]) == 0, capsys.readouterr().err
    exported = load_stack(out)
    original = load_stack(source)
    # Catalog names come back from the identity tags.
    assert {m.name for m in exported.catalog.billable_metrics} == {
        m.name for m in original.catalog.billable_metrics
    }
    assert {c.name for c in exported.environment.contracts} == {
        c.name for c in original.environment.contracts
    }
    card = exported.rate_card("standard")
    assert any(r.rate_type == "TIERED" and r.tiers for r in card.rates)
    # The platform fee's subscription, and the contract made from the package (named by its catalog name).
    contracts = {k.name: k for k in exported.environment.contracts}
    (fee,) = contracts["acme_2026"].subscriptions
    assert fee["subscription_rate"] == {"product": "platform_fee", "billing_frequency": "MONTHLY"}
    signup = contracts["piedpiper_self_serve"]
    assert signup.package == "self_serve" and signup.rate_card is None and not signup.credits
    # Packages, alerts (account-wide, and the customer's under it) and notifications come back too.
    assert [p.name for p in exported.catalog.packages] == ["self_serve"]
    assert exported.catalog.packages[0].rate_card == "standard"
    assert (
        exported.catalog.packages[0].credits
        and exported.catalog.packages[0].credits[0]["product"] == "prepaid_commit"
    )
    assert [a.name for a in exported.catalog.alerts] == ["low_balance"]
    assert [a.name for a in exported.customer("acme").alerts or []] == ["spend_over_5000"]
    # A notification's listing has no key: its catalog name comes from its Metronome name.
    assert [(n.name, n.policy["offset"]) for n in exported.catalog.notifications] == [
        ("commit_ends_in_7_days", "-P7D")
    ]

    before = _creates(emulator)
    engine = engine_for(emulator, out.name)
    steps = summary(engine.up(exported))
    assert set(steps) == {"create"}
    assert _creates(emulator) == before
    assert set(summary(engine.plan(load_stack(out)))) == {"same"}


REVIEWED = """# Reviewed by the billing team: do not regenerate.
settings:
  product_update_starting_at: 2026-01-01T00:00:00Z
"""


def test_refuses_to_overwrite_a_stack_unless_forced(
    fresh_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "reviewed"
    out.mkdir()
    (out / "environment.yaml").write_text(REVIEWED)
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", fresh_emulator.token)
    args = ["export", "--out", str(out), "--base-url", fresh_emulator.base_url]
    before = fresh_emulator.admin("GET", "stats").json()["by_route"]

    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out} already has environment.yaml") and "--force" in err, err
    assert (out / "environment.yaml").read_text() == REVIEWED and not (out / "catalog.yaml").exists()
    assert fresh_emulator.admin("GET", "stats").json()["by_route"] == before  # refused before reading

    assert main([*args, "--force"]) == 0, capsys.readouterr().err
    assert "Reviewed by the billing team" not in (out / "environment.yaml").read_text()
    load_stack(out)


def test_unreachable_api_names_the_url_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", "any")
    monkeypatch.setenv("METRONOME_BASE_URL", "http://127.0.0.1:9")
    assert main(["export", "--out", str(tmp_path / "new")]) == 1
    err = capsys.readouterr().err
    assert "cannot reach Metronome at http://127.0.0.1:9 (from METRONOME_BASE_URL)" in err, err
    for noise in ("Error:", "ConnectError", "MetronomeError", "RuntimeError"):
        assert noise not in err, err
    assert not (tmp_path / "new").exists()


def test_contract_with_every_grant_field_round_trips(
    fresh_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Descriptions, rollover, access type, commit-specific overrides and subscription overwrites are
    written (an export that cannot write them would lose the whole account)."""
    emulator = fresh_emulator
    ids = _make_account(emulator)
    c = emulator.client()
    seats = c.v1.contracts.products.create(name="Seats", type="SUBSCRIPTION").data
    start, end = "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"
    c.v1.contracts.create(
        customer_id=ids["customer"],
        rate_card_id=ids["card"],
        starting_at=start,
        name="Hooli deal",
        commits=[
            {
                "product_id": ids["fixed"],
                "type": "PREPAID",
                "description": "signed deal",
                "rollover_fraction": 0.5,
                "access_schedule": {
                    "access_type": "SPEND",
                    "schedule_items": [{"amount": 1000, "starting_at": start, "ending_before": end}],
                },
                "invoice_schedule": {"schedule_items": [{"timestamp": start, "amount": 1000}]},
            }
        ],
        credits=[
            {
                "product_id": ids["fixed"],
                "description": "promo",
                "access_schedule": {
                    "schedule_items": [{"amount": 50, "starting_at": start, "ending_before": end}]
                },
            }
        ],
        overrides=[
            {
                "product_id": ids["product"],
                "type": "MULTIPLIER",
                "multiplier": 0.5,
                "starting_at": start,
                "is_commit_specific": True,
            },
            {
                "product_id": seats.id,
                "type": "OVERWRITE",
                "starting_at": start,
                "overwrite_rate": {
                    "rate_type": "SUBSCRIPTION",
                    "price": 80,
                    "quantity": 3,
                    "is_prorated": True,
                },
            },
        ],
    )
    out = tmp_path / "exported"
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    assert main(["export", "--out", str(out), "--base-url", emulator.base_url]) == 0, capsys.readouterr().err
    stack = load_stack(out)
    deal = next(k for k in stack.environment.contracts if k.display_name == "Hooli deal")
    assert deal.commits[0].description == "signed deal" and deal.commits[0].rollover_fraction == 0.5
    assert deal.commits[0].access_schedule.access_type == "SPEND" and deal.credits[0].description == "promo"

    before = _creates(emulator)
    engine = engine_for(emulator, out.name)
    engine.up(stack)
    assert _creates(emulator) == before
    assert set(summary(engine.plan(load_stack(out)))) == {"same"}


def test_objects_the_catalog_cannot_hold_are_skipped_with_a_reason_not_the_whole_export(
    fresh_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    emulator = fresh_emulator
    ids = _make_account(emulator)
    c = emulator.client()
    # A group key on a filter without `exists: true`: the API takes it, the catalog refuses it.
    loose = c.v1.billable_metrics.create(
        name="Env calls",
        aggregation_type="COUNT",
        property_filters=[{"name": "env", "not_in_values": ["dev"]}],
        group_keys=[["env"]],
    ).data
    # A bundle whose component is archived afterwards.
    part = c.v1.contracts.products.create(name="Part", type="FIXED").data
    bundle = c.v1.contracts.products.create(
        name="Bundle", type="COMPOSITE", composite_product_ids=[ids["fixed"], part.id]
    ).data
    c.v1.contracts.products.archive(product_id=part.id)

    out = tmp_path / "exported"
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    assert main(["export", "--out", str(out), "--base-url", emulator.base_url]) == 0
    err = capsys.readouterr().err
    assert loose.id in err and "group_keys" in err and "skipped" in err, err
    assert bundle.id in err and part.id in err, err
    stack = load_stack(out)
    adopted = {
        e.adopt["id"]
        for e in [*stack.catalog.billable_metrics, *stack.catalog.products, *stack.environment.contracts]
    }
    assert loose.id not in adopted and bundle.id not in adopted
    assert {ids["metric"], ids["product"], ids["fixed"], ids["contract"]} <= adopted  # the rest is there


def test_rate_card_with_active_rates_on_an_archived_product_is_left_out_not_cut_down(
    fresh_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Adopting the card without those rates would end them on the next up: a billing change."""
    emulator = fresh_emulator
    ids = _make_account(emulator)
    emulator.client().v1.contracts.products.archive(product_id=ids["product"])
    out = tmp_path / "exported"
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    assert main(["export", "--out", str(out), "--base-url", emulator.base_url]) == 0
    err = capsys.readouterr().err
    assert f"rate card {ids['card']}" in err and ids["product"] in err and "end those rates" in err, err
    assert f"contract {ids['contract']}" in err, err  # it needs the card
    stack = load_stack(out)
    assert not stack.catalog.rate_cards and not stack.environment.contracts
    assert [c.adopt["id"] for c in stack.environment.customers] == [ids["customer"]]


def test_a_contract_with_subscriptions_and_recurring_grants_round_trips(
    fresh_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A seat subscription with a recurring credit per seat, a scheduled charge and a prepaid
    auto-recharge made by hand: exported (the grant names the subscription by a temporary id), adopted
    without a create, and nothing to change."""
    emulator = fresh_emulator
    ids = _make_account(emulator)
    c = emulator.client()
    seats = c.v1.contracts.products.create(name="Seats", type="SUBSCRIPTION").data.id
    c.v1.contracts.rate_cards.rates.add(
        rate_card_id=ids["card"],
        product_id=seats,
        starting_at="2026-01-01T00:00:00Z",
        entitled=True,
        rate_type="FLAT",
        price=1500,
        billing_frequency="MONTHLY",
    )
    start = "2026-01-01T00:00:00Z"
    c.v1.contracts.create(
        customer_id=ids["customer"],
        rate_card_id=ids["card"],
        starting_at=start,
        name="Seats deal",
        subscriptions=[
            {
                "temporary_id": "seats",
                "collection_schedule": "ADVANCE",
                "proration": {"is_prorated": True},
                "subscription_rate": {"billing_frequency": "MONTHLY", "product_id": seats},
                "initial_quantity": 12,
            }
        ],
        recurring_credits=[
            {
                "product_id": ids["fixed"],
                "access_amount": {"unit_price": 100},
                "commit_duration": {"value": 1},
                "priority": 1,
                "starting_at": start,
                "subscription_config": {
                    "subscription_id": "seats",
                    "apply_seat_increase_config": {"is_prorated": True},
                },
            }
        ],
        scheduled_charges=[
            {
                "product_id": ids["fixed"],
                "name": "setup",
                "schedule": {"schedule_items": [{"timestamp": start, "amount": 900}]},
            }
        ],
        prepaid_balance_threshold_configuration={
            "commit": {"product_id": ids["fixed"]},
            "is_enabled": True,
            "payment_gate_config": {"payment_gate_type": "NONE"},
            "threshold_amount": 100,
            "recharge_to_amount": 1000,
        },
    )
    out = tmp_path / "exported"
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    assert main(["export", "--out", str(out), "--base-url", emulator.base_url]) == 0, capsys.readouterr().err
    stack = load_stack(out)
    deal = next(k for k in stack.environment.contracts if k.display_name == "Seats deal")
    (sub,) = deal.subscriptions
    assert sub["initial_quantity"] == 12 and sub["subscription_rate"]["billing_frequency"] == "MONTHLY"
    assert deal.recurring_credits[0]["subscription_config"]["subscription_id"] == sub["temporary_id"]
    assert deal.scheduled_charges[0]["name"] == "setup" and deal.prepaid_balance_threshold_configuration

    before = _creates(emulator)
    engine = engine_for(emulator, out.name)
    engine.up(stack)
    assert _creates(emulator) == before
    assert set(summary(engine.plan(load_stack(out)))) == {"same"}
