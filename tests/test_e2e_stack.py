"""End to end without the Pulumi CLI: the program, the real provider host, the emulator.

`tests/mini_engine.py` plays the engine (check -> diff -> create/update/replace -> state). Each test
uses its own stack name and ingest aliases, so tests can share the session emulator: identities
("metronome-iac/<stack>/<name>") never collide.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mini_engine import PROJECT, MiniEngine, engine_for, make_stack_dir, summary

from metronome_iac.catalog import Stack, load_stack
from metronome_iac.cli import main

REPO = Path(__file__).resolve().parent.parent


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, count))


@pytest.fixture
def stack_dir(tmp_path: Path) -> Path:
    return make_stack_dir(tmp_path)


def _drift(stack_dir: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch, *extra: str) -> int:
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    return main(
        [
            "drift",
            "--stack",
            stack_dir.name,
            "--stacks-dir",
            str(stack_dir.parent),
            "--base-url",
            emulator.base_url,
            "--project",
            PROJECT,
            *extra,
        ]
    )


def _up(engine: MiniEngine, stack_dir: Path) -> dict[str, list[tuple[str, str]]]:
    return summary(engine.up(load_stack(stack_dir)))


def _plan(engine: MiniEngine, stack_dir: Path) -> dict[str, list[tuple[str, str]]]:
    return summary(engine.plan(load_stack(stack_dir)))


def _count(stack: Stack) -> int:
    c, e = stack.catalog, stack.environment
    catalog = len(c.billable_metrics) + len(c.products) + len(c.rate_cards)
    catalog += len(c.packages) + len(c.alerts) + len(c.notifications)
    customer_alerts = sum(len(x.alerts or []) for x in e.customers)
    return catalog + len(e.customers) + customer_alerts + len(e.contracts)


def test_up_creates_everything_then_nothing_changes(stack_dir: Path, emulator: Any) -> None:
    stack = load_stack(stack_dir)
    engine = engine_for(emulator, stack.name)
    steps = _up(engine, stack_dir)
    assert set(steps) == {"create"}
    assert len(steps["create"]) == _count(stack)
    # Real ids flowed into dependents.
    metric = engine.find("BillableMetric", "input_tokens")
    product = engine.find("Product", "input_tokens_product")
    assert product.inputs["billable_metric_id"] == metric.id
    contract = engine.find("Contract", "acme_2026")
    assert contract.inputs["customer_id"] == engine.find("Customer", "acme").id
    assert contract.inputs["rate_card_id"] == engine.find("RateCard", "standard").id
    # The objects exist in the account.
    client = emulator.client()
    assert client.v1.billable_metrics.retrieve(billable_metric_id=metric.id).data.name == "Input tokens"

    again = _up(engine, stack_dir)
    assert set(again) == {"same"}, again
    assert len(again["same"]) == _count(stack)
    assert set(_plan(engine, stack_dir)) == {"same"}


def test_changes_replace_update_and_archive(stack_dir: Path, emulator: Any) -> None:
    engine = engine_for(emulator, stack_dir.name)
    _up(engine, stack_dir)
    old_metric_id = engine.find("BillableMetric", "input_tokens").id
    old_product_id = engine.find("Product", "input_tokens_product").id

    # Group keys of a metric cannot change in place: the plan replaces it, and its product follows.
    catalog = stack_dir / "catalog.yaml"
    edit(
        catalog,
        "      - {name: region, exists: true}\n    group_keys: [[model, region]]",
        "      - {name: region, exists: true}\n      - {name: tier, exists: true}\n"
        "    group_keys: [[model, region], [model, region, tier]]",
    )
    plan = _plan(engine, stack_dir)
    assert plan["replace"] == [("BillableMetric", "input_tokens")]
    assert ("Product", "input_tokens_product") in plan["update"]
    assert ("BillableMetric", "output_tokens") in plan["same"]
    # A plan changes nothing.
    assert engine.find("BillableMetric", "input_tokens").id == old_metric_id

    steps = _up(engine, stack_dir)
    assert steps["replace"] == [("BillableMetric", "input_tokens")]
    new_metric = engine.find("BillableMetric", "input_tokens")
    assert new_metric.id != old_metric_id
    product = engine.find("Product", "input_tokens_product")
    assert product.id == old_product_id and product.inputs["billable_metric_id"] == new_metric.id
    client = emulator.client()
    assert client.v1.billable_metrics.retrieve(billable_metric_id=old_metric_id).data.archived_at is not None
    assert set(_plan(engine, stack_dir)) == {"same"}

    # Renaming a product (display_name -> Metronome name) updates it in place.
    edit(
        catalog,
        "    display_name: Output tokens\n    type: USAGE",
        "    display_name: Generated tokens\n    type: USAGE",
    )
    plan = _plan(engine, stack_dir)
    assert plan["update"] == [("Product", "output_tokens_product")]
    steps = _up(engine, stack_dir)
    assert steps["update"] == [("Product", "output_tokens_product")]
    assert "replace" not in steps and "create" not in steps

    # Removing a customer (and its contract) archives them.
    env = stack_dir / "environment.yaml"
    text = env.read_text()
    start = text.index("  - name: initech\n")
    end = text.index("contracts:\n")
    text = text[:start] + text[end:]
    start = text.index("  - name: initech_2026\n")
    text = text[:start]
    env.write_text(text)
    initech_id = engine.find("Customer", "initech").id
    plan = _plan(engine, stack_dir)
    assert sorted(plan["delete"]) == [("Contract", "initech_2026"), ("Customer", "initech")]
    steps = _up(engine, stack_dir)
    assert steps["delete"] == [("Contract", "initech_2026"), ("Customer", "initech")]  # dependents first
    live = client.v1.customers.retrieve(customer_id=initech_id).data
    assert live.archived_at is not None
    assert set(_plan(engine, stack_dir)) == {"same"}


def test_out_of_band_edit_and_archive_are_seen_by_drift_and_refresh(
    stack_dir: Path, fresh_emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # An emulator of its own: drift rightly reports untagged objects that other tests left behind.
    emulator = fresh_emulator
    engine = engine_for(emulator, stack_dir.name)
    _up(engine, stack_dir)
    assert _drift(stack_dir, emulator, monkeypatch) == 0, capsys.readouterr().out
    capsys.readouterr()

    client = emulator.client()
    metric = engine.find("BillableMetric", "output_tokens")
    customer = engine.find("Customer", "globex")
    client.v1.billable_metrics.update(billable_metric_id=metric.id, name="Output tokens (edited by hand)")
    # Archiving a customer archives its contracts too.
    client.v1.customers.archive(id=customer.id)

    assert _drift(stack_dir, emulator, monkeypatch) == 2
    out = capsys.readouterr().out
    assert "billable metric 'output_tokens'" in out
    assert 'desired "Output tokens", live "Output tokens (edited by hand)"' in out
    assert "customer 'globex': missing live" in out

    assert _drift(stack_dir, emulator, monkeypatch, "--json") == 2
    report = json.loads(capsys.readouterr().out)
    assert report["in_sync"] is False
    drifted = {(d["kind"], d["name"]): d for d in report["drifted"]}
    fields = drifted[("billable_metrics", "output_tokens")]["fields"]
    assert fields == [{"field": "name", "desired": "Output tokens", "live": "Output tokens (edited by hand)"}]
    assert {(m["kind"], m["name"]) for m in report["missing"]} >= {("customers", "globex")}

    # The engine's view: a plan without refresh sees nothing; refresh, then plan shows the repair.
    assert set(_plan(engine, stack_dir)) == {"same"}
    refreshed = summary(engine.refresh())
    assert ("BillableMetric", "output_tokens") in refreshed["refresh"]
    assert ("Customer", "globex") in refreshed["delete"]
    plan = _plan(engine, stack_dir)
    assert ("BillableMetric", "output_tokens") in plan["update"]
    assert ("Customer", "globex") in plan["create"]

    # Not applied here: the archived customer still holds its ingest aliases in Metronome, so
    # re-creating it needs the aliases released first (the real API behaves the same way).


def test_dev_stack_as_make_up_runs_it(tmp_path: Path, fresh_emulator: Any) -> None:
    """`make up`: the whole dev stack, Stripe section included, against an emulator with Stripe
    connected and no Stripe key (go_live is false, so no Stripe account is needed yet)."""
    connected = fresh_emulator.admin(
        "POST", "billing-providers", json={"billing_provider": "stripe", "connected": True}
    )
    assert connected.status_code == 200, connected.text
    stack_dir = make_stack_dir(tmp_path, stripe=True)
    stack = load_stack(stack_dir)
    engine = engine_for(fresh_emulator, stack.name)
    steps = _up(engine, stack_dir)
    assert set(steps) == {"create"}
    assert ("StripeIntegration", "stripe") in steps["create"]
    assert len(steps["create"]) == _count(stack) + 1
    integration = engine.find("StripeIntegration", "stripe")
    assert integration.outputs["billing_provider_configuration_ids"] == {}  # go-live gate closed
    assert set(_up(engine, stack_dir)) == {"same"}


def test_going_live_through_the_program(tmp_path: Path, fresh_emulator: Any) -> None:
    """The dev stack goes live: the plan that flips go_live runs (the integration's new ids exist only
    once its update has run), and `up` binds every contract to its customer's Stripe configuration."""
    import re

    from fake_stripe import FakeStripe
    from mini_engine import EngineHost
    from provider_host import ProviderHost, secret

    account, key = "acct_1DevTestAccount", "sk_test_dev_account_key"
    fresh_emulator.admin("POST", "billing-providers", json={"billing_provider": "stripe", "connected": True})
    fake = FakeStripe()
    try:
        fake.keys[key] = account
        stack_dir = make_stack_dir(tmp_path, stripe=True)
        env = (stack_dir / "environment.yaml").read_text()
        for dev_id in set(re.findall(r"cus_Dev\w+", env)):
            env = env.replace(dev_id, fake.create_customer(dev_id))
        (stack_dir / "environment.yaml").write_text(env)
        config = {"stripe:apiKey": secret(key), "stripe:apiBase": fake.api_base}

        def connect() -> EngineHost:
            return EngineHost(
                ProviderHost(
                    fresh_emulator.base_url, fresh_emulator.token, project=PROJECT, stack=stack_dir.name,
                    config=config,
                )
            )  # fmt: skip

        engine = MiniEngine(connect, PROJECT, stack_dir.name)
        engine.up(load_stack(stack_dir))
        (stack_dir / "environment.yaml").write_text(env.replace("go_live: false", "go_live: true", 1))
        plan = _plan(engine, stack_dir)
        assert ("StripeIntegration", "stripe") in plan["update"], plan
        engine.up(load_stack(stack_dir))
        ids = engine.find("StripeIntegration", "stripe").outputs["billing_provider_configuration_ids"]
        client = fresh_emulator.client()
        for name in ("acme_2026", "globex_2026", "initech_2026"):
            contract = engine.find("Contract", name)
            customer_id = contract.outputs["customer_id"]
            live = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=contract.id).data
            assert live.customer_billing_provider_configuration.id == ids[customer_id], name
        assert set(_plan(engine, stack_dir)) == {"same"}
    finally:
        fake.stop()
