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
