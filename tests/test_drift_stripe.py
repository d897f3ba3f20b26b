"""`metronome-iac drift` on the Stripe side: with go_live true each listed customer has exactly its
catalog Stripe configuration; with go_live false none has one yet. Same exit codes and --json shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_stripe import ACCOUNT_ID, FakeStripe
from mini_engine import PROJECT
from test_export_stripe import connect_stripe, export, make_stripe_account, set_stripe_config

from metronome_iac.cli import main


@pytest.fixture(scope="module")
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    yield fake
    fake.stop()


@pytest.fixture
def live(
    fresh_emulator: Any, fake_stripe: FakeStripe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Path, dict[str, str]]:
    """An account invoicing through Stripe, and its export (go_live true) as the stack."""
    ids = make_stripe_account(fresh_emulator, fake_stripe)
    stack_dir = tmp_path / "live"
    assert export(fresh_emulator, stack_dir, monkeypatch, "--stripe-account", ACCOUNT_ID) == 0
    return fresh_emulator, stack_dir, ids


def drift(emulator: Any, stack_dir: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> int:
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    args = ["drift", "--stack", stack_dir.name, "--stacks-dir", str(stack_dir.parent), "--project", PROJECT]
    return main([*args, "--base-url", emulator.base_url, *extra])


def edit_environment(stack_dir: Path, old: str, new: str) -> None:
    path = stack_dir / "environment.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_live_stripe_links_in_sync(
    live: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    emulator, stack_dir, _ = live
    capsys.readouterr()
    assert drift(emulator, stack_dir, monkeypatch, "--json") == 0, capsys.readouterr().out
    report = json.loads(capsys.readouterr().out)
    # product, rate card, 3 customers, 3 contracts (bound to their Stripe configuration), 2 configurations
    assert report["in_sync"] is True and report["matched"] == 10


def test_missing_archived_changed_and_extra_configurations(
    live: Any, fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    emulator, stack_dir, ids = live
    client = emulator.client()
    client.v1.customers.archive_billing_configurations(
        customer_id=ids["acme"], customer_billing_provider_configuration_ids=[ids["acme_config"]]
    )
    second = set_stripe_config(emulator, ids["globex"], fake_stripe.create_customer("g2"), "send_invoice")
    unlisted = set_stripe_config(emulator, ids["initech"], fake_stripe.create_customer("i"), "send_invoice")
    edit_environment(stack_dir, "  stripe_collection_method: send_invoice\n", "")  # globex: the default now
    capsys.readouterr()

    assert drift(emulator, stack_dir, monkeypatch) == 2
    out = capsys.readouterr().out
    assert (
        f"- Stripe configuration of customer 'acme': missing live (archived) (was {ids['acme_config']})"
        in out
    )
    assert f"~ Stripe configuration of customer 'globex' ({ids['globex_config']}): differs" in out
    assert 'stripe_collection_method: desired "charge_automatically", live "send_invoice"' in out
    assert f"+ Stripe configuration {second} of customer 'globex'" in out
    assert "a second active Stripe configuration, not in the catalog (double-billing risk)" in out
    assert f"+ Stripe configuration {unlisted} of customer 'initech'" in out
    assert "the catalog lists no stripe_customer_id for this customer" in out
    # acme's contract still invoices through the archived configuration: that shows too.
    assert (
        "billing_provider_configuration_id: desired the id of Stripe configuration of customer 'acme', "
        f'which is missing live, live "{ids["acme_config"]}"'
    ) in out

    assert drift(emulator, stack_dir, monkeypatch, "--json") == 2
    report = json.loads(capsys.readouterr().out)
    stripe = "stripe_configurations"
    assert {"kind": stripe, "name": "acme", "id": ids["acme_config"], "customer_id": ids["acme"]}.items() <= (
        next(m for m in report["missing"] if m["kind"] == stripe).items()
    )
    (changed,) = [d for d in report["drifted"] if d["kind"] == stripe]
    assert changed["fields"] == [
        {"field": "stripe_collection_method", "desired": "charge_automatically", "live": "send_invoice"}
    ]
    extras = {u["id"]: u for u in report["unmanaged"] if u["kind"] == stripe}
    assert set(extras) == {second, unlisted}
    assert extras[unlisted]["name"] == "initech" and extras[unlisted]["collection_method"] == "send_invoice"


def test_a_changed_stripe_customer_id_is_drift(
    live: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    emulator, stack_dir, ids = live
    edit_environment(stack_dir, f"stripe_customer_id: {ids['acme_stripe']}", "stripe_customer_id: cus_Other1")
    capsys.readouterr()
    assert drift(emulator, stack_dir, monkeypatch) == 2
    out = capsys.readouterr().out
    assert f'stripe_customer_id: desired "cus_Other1", live "{ids["acme_stripe"]}"' in out


def test_before_go_live_any_active_configuration_is_reported(
    live: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    emulator, stack_dir, ids = live
    edit_environment(stack_dir, "go_live: true", "go_live: false")
    capsys.readouterr()
    assert drift(emulator, stack_dir, monkeypatch, "--json") == 2
    report = json.loads(capsys.readouterr().out)
    early = {u["id"]: u for u in report["unmanaged"] if u["kind"] == "stripe_configurations"}
    assert set(early) == {ids["acme_config"], ids["globex_config"]}
    assert "before the gate opened" in early[ids["acme_config"]]["detail"]

    # With every Stripe configuration (and the contracts bound to them) archived: in sync before go-live.
    client = emulator.client()
    for name in ("acme", "globex"):
        client.v1.contracts.archive(
            customer_id=ids[name], contract_id=ids[f"{name}_contract"], void_invoices=True
        )
        client.v1.customers.archive_billing_configurations(
            customer_id=ids[name], customer_billing_provider_configuration_ids=[ids[f"{name}_config"]]
        )
    path = stack_dir / "environment.yaml"
    env = yaml.safe_load(path.read_text())
    env["contracts"] = [k for k in env["contracts"] if k["customer"] == "initech"]
    path.write_text(yaml.safe_dump(env))
    assert drift(emulator, stack_dir, monkeypatch) == 0, capsys.readouterr().out


def test_live_stack_without_a_stripe_connection_is_drift(
    live: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    emulator, stack_dir, _ = live
    connect_stripe(emulator, connected=False)
    capsys.readouterr()
    assert drift(emulator, stack_dir, monkeypatch) == 2
    out = capsys.readouterr().out
    assert "- Stripe connection 'stripe': missing live (connect Stripe once in the Metronome dashboard" in out
    assert "Stripe configuration of customer" not in out  # the configurations themselves still match
