"""`metronome-iac drift`: 0 in sync, 2 on drift (desired and live values shown), --json, 1 on error (worded as
what failed and how to fix it: the URL and the setting that chose it, never an exception class)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import metronome
import pytest
from mini_engine import PROJECT, MiniEngine, engine_for, make_stack_dir

from metronome_iac.catalog import load_stack
from metronome_iac.cli import main
from metronome_iac.connection import describe_failure


@pytest.fixture
def deployed(fresh_emulator: Any, tmp_path: Path) -> Iterator[tuple[Any, Path, MiniEngine]]:
    """The dev stack deployed on an emulator of its own (nothing else lives there)."""
    stack_dir = make_stack_dir(tmp_path)
    engine = engine_for(fresh_emulator, stack_dir.name)
    engine.up(load_stack(stack_dir))
    yield fresh_emulator, stack_dir, engine


def drift(emulator: Any, stack_dir: Path, monkeypatch: pytest.MonkeyPatch, *extra: str, url: str = "") -> int:
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    args = ["drift", "--stack", stack_dir.name, "--stacks-dir", str(stack_dir.parent), "--project", PROJECT]
    return main([*args, "--base-url", url or emulator.base_url, *extra])


def test_in_sync(deployed: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    emulator, stack_dir, _ = deployed
    assert drift(emulator, stack_dir, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "in sync" in out


def test_drift_prints_desired_and_live(
    deployed: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    emulator, stack_dir, engine = deployed
    client = emulator.client()
    customer = engine.find("Customer", "acme")
    client.v1.customers.set_name(customer_id=customer.id, name="ACME (renamed in the UI)")
    stray = client.v1.customers.create(name="Stray customer", ingest_aliases=["stray-1"]).data

    assert drift(emulator, stack_dir, monkeypatch) == 2
    out = capsys.readouterr().out
    assert f"~ customer 'acme' ({customer.id})" in out
    assert 'name: desired "Acme Corp", live "ACME (renamed in the UI)"' in out
    assert f"+ customer {stray.id} ('Stray customer'): live but not in the catalog" in out
    assert "drift: 1 changed, 0 missing, 1 not in the catalog" in out


def test_json_shape(deployed: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    emulator, stack_dir, engine = deployed
    client = emulator.client()
    metric = engine.find("BillableMetric", "input_tokens")
    client.v1.billable_metrics.archive(id=metric.id)

    assert drift(emulator, stack_dir, monkeypatch, "--json") == 2
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {
        "stack",
        "project",
        "base_url",
        "in_sync",
        "matched",
        "drifted",
        "missing",
        "unmanaged",
    }
    assert report["stack"] == stack_dir.name and report["in_sync"] is False
    assert {"kind": "billable_metrics", "name": "input_tokens", "id": None} in report["missing"]
    # The product that points at the archived metric shows the dangling reference as drift.
    drifted = {(d["kind"], d["name"]): d for d in report["drifted"]}
    fields = drifted[("products", "input_tokens_product")]["fields"]
    assert fields[0]["field"] == "billable_metric_id" and fields[0]["live"] == metric.id


def test_json_in_sync(deployed: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    emulator, stack_dir, _ = deployed
    assert drift(emulator, stack_dir, monkeypatch, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["in_sync"] is True and report["drifted"] == report["missing"] == report["unmanaged"] == []
    assert report["matched"] > 0


def test_unreachable_api_is_an_error(
    tmp_path: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    stack_dir = make_stack_dir(tmp_path)
    assert drift(emulator, stack_dir, monkeypatch, url="http://127.0.0.1:9") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    # The URL and the setting that chose it, never an exception class.
    assert "cannot reach Metronome at http://127.0.0.1:9 (from --base-url)" in err, err
    assert "metronome-iac emulator --port 9" in err, err
    for noise in ("Error:", "ConnectError", "MetronomeError", "RuntimeError"):
        assert noise not in err, err
    assert drift(emulator, stack_dir, monkeypatch, "--json", url="http://127.0.0.1:9") == 1
    assert "http://127.0.0.1:9" in json.loads(capsys.readouterr().out)["error"]


def test_unreachable_api_names_the_setting_that_chose_the_url(
    tmp_path: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    stack_dir = make_stack_dir(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    args = ["drift", "--stack", stack_dir.name, "--stacks-dir", str(stack_dir.parent), "--project", PROJECT]

    (tmp_path / f"Pulumi.{stack_dir.name}.yaml").write_text(
        "config:\n  metronome:baseUrl: http://127.0.0.1:9\n"
    )
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"http://127.0.0.1:9 (from metronome:baseUrl in Pulumi.{stack_dir.name}.yaml)" in err, err

    monkeypatch.setenv("METRONOME_BASE_URL", "http://127.0.0.1:7")
    assert main(args) == 1
    assert "http://127.0.0.1:7 (from METRONOME_BASE_URL)" in capsys.readouterr().err


def test_refused_token_says_what_to_check(
    tmp_path: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    stack_dir = make_stack_dir(tmp_path)
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", "not-the-emulator-token")
    args = ["drift", "--stack", stack_dir.name, "--stacks-dir", str(stack_dir.parent), "--project", PROJECT]
    assert main([*args, "--base-url", emulator.base_url]) == 1
    err = capsys.readouterr().err
    assert f"Metronome at {emulator.base_url} (from --base-url) refused the API token (401)" in err, err
    assert "METRONOME_BEARER_TOKEN" in err and "Error:" not in err, err


def test_bad_catalog_and_missing_token_are_errors(
    tmp_path: Path, emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    stack_dir = make_stack_dir(tmp_path)
    (stack_dir / "catalog.yaml").write_text("billable_metrics: [{name: x, aggregation_type: SOME}]\n")
    assert drift(emulator, stack_dir, monkeypatch) == 1
    assert "aggregation_type" in capsys.readouterr().err

    good = make_stack_dir(tmp_path)
    monkeypatch.chdir(tmp_path)  # no Pulumi.<stack>.yaml here either
    monkeypatch.delenv("METRONOME_BEARER_TOKEN", raising=False)
    args = ["drift", "--stack", good.name, "--stacks-dir", str(tmp_path), "--base-url", emulator.base_url]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no Metronome API token: set METRONOME_BEARER_TOKEN"), err  # no class name


def test_list_fields_report_the_differing_leaf(
    deployed: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    emulator, stack_dir, _ = deployed
    catalog = stack_dir / "catalog.yaml"
    catalog.write_text(catalog.read_text().replace("price: 300\n", "price: 310\n", 1))
    assert drift(emulator, stack_dir, monkeypatch) == 2
    out = capsys.readouterr().out
    assert (
        "rates[input_tokens_product {model: large, region: us} from 2026-01-01T00:00:00Z].price: "
        "desired 310, live 300"
    ) in out

    assert drift(emulator, stack_dir, monkeypatch, "--json") == 2
    report = json.loads(capsys.readouterr().out)
    (card,) = [d for d in report["drifted"] if d["kind"] == "rate_cards"]
    (rates,) = card["fields"]
    assert rates["field"] == "rates" and len(rates["details"]) == 1
    assert rates["details"][0]["desired"] == 310 and rates["details"][0]["live"] == 300


def test_unreachable_remote_api_does_not_blame_the_url() -> None:
    """A real URL that cannot be reached is as likely the network as the URL: say to check both."""
    url = "https://api.metronome.com"
    err = metronome.APIConnectionError(request=httpx.Request("GET", url))
    line = describe_failure(err, url, "metronome:baseUrl in Pulumi.prod.yaml", "METRONOME_BEARER_TOKEN")
    assert line.startswith(f"cannot reach Metronome at {url} (from metronome:baseUrl in Pulumi.prod.yaml): ")
    advice = line.split("): ", 1)[1]
    assert advice.startswith("check that URL and that this machine can reach it (network, proxy)"), line
    assert "if the URL is wrong, correct metronome:baseUrl in Pulumi.prod.yaml" in line
    assert "emulator" not in line  # not a local URL


def test_base_url_help_gives_the_real_order(capsys: pytest.CaptureFixture) -> None:
    """--base-url, else METRONOME_BASE_URL, else metronome:baseUrl in Pulumi.<stack>.yaml (as the README)."""
    with pytest.raises(SystemExit):
        main(["drift", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    base_url_help = text[text.index("--base-url BASE_URL") :]
    env, config = base_url_help.index("METRONOME_BASE_URL"), base_url_help.index("metronome:baseUrl")
    assert env < config, base_url_help
    assert "Pulumi.<STACK>.yaml" in base_url_help


def test_a_change_only_a_replacement_could_restore_is_flagged(
    deployed: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A discount added by hand cannot be removed: `up` could only restore the catalog by replacing the
    contract, so drift says so next to the field (and in --json)."""
    emulator, stack_dir, engine = deployed
    contract = engine.find("Contract", "acme_2026")
    product = engine.find("Product", "prepaid_commit")
    emulator.client().v2.contracts.edit(
        customer_id=contract.outputs["customer_id"],
        contract_id=contract.id,
        add_discounts=[
            {
                "product_id": product.id,
                "schedule": {"schedule_items": [{"timestamp": "2026-12-01T00:00:00Z", "amount": 100}]},
            }
        ],
    )
    assert drift(emulator, stack_dir, monkeypatch) == 2
    out = capsys.readouterr().out
    assert "! discounts: restoring this replaces the contract" in out and "allow_replacement" in out, out
    assert drift(emulator, stack_dir, monkeypatch, "--json") == 2
    report = json.loads(capsys.readouterr().out)
    (entry,) = [d for d in report["drifted"] if d["name"] == "acme_2026"]
    assert [(f["field"], f.get("replaces")) for f in entry["fields"]] == [("discounts", True)]


def test_packages_alerts_and_notifications_drift(
    deployed: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Changed by hand: a package's alias taken by another package, a notification's offset edited, an
    alert archived. Each shows, with what `up` can only restore by replacing."""
    emulator, stack_dir, engine = deployed
    client = emulator.client()
    assert drift(emulator, stack_dir, monkeypatch) == 0, capsys.readouterr().out
    capsys.readouterr()

    package = engine.find("Package", "self_serve")
    client.v1.packages.create(name="Self-serve (by hand)", aliases=[{"name": "self-serve"}])
    notice = engine.find("Notification", "commit_ending")
    client.v2.notifications.offset.edit(id=notice.id, policy={"type": "commit.segment.end", "offset": "-P3D"})
    alert = engine.find("Alert", "acme.spend_over_5000")
    client.v1.alerts.archive(id=alert.id)

    assert drift(emulator, stack_dir, monkeypatch) == 2
    out = capsys.readouterr().out
    assert f"~ package 'self_serve' ({package.id})" in out
    assert "aliases[0].ending_before" in out and "! aliases:" in out  # only a replacement restores it
    assert f"~ notification 'commit_ending' ({notice.id})" in out
    assert 'policy.offset: desired "-P7D", live "-P3D"' in out
    assert "- alert 'acme.spend_over_5000': missing live" in out
    assert "+ package" in out  # the hand-made package is not in the catalog


def test_a_payment_gated_threshold_reminds_of_the_webhooks(
    deployed: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A contract declaring prepaid auto-recharge gated on a Stripe payment: drift (in sync or not) says
    which, and where the dashboard webhook checklist is (the API cannot show webhooks)."""
    emulator, stack_dir, engine = deployed
    env = stack_dir / "environment.yaml"
    gated = (
        "    prepaid_balance_threshold_configuration:\n"
        "      commit: {product: prepaid_commit}\n"
        "      is_enabled: true\n"
        "      payment_gate_config: {payment_gate_type: STRIPE, stripe_config: {payment_type: INVOICE}}\n"
        "      threshold_amount: 1000\n"
        "      recharge_to_amount: 10000\n"
    )
    text = env.read_text()
    env.write_text(text.replace("  - name: globex_2026\n", "  - name: globex_2026\n" + gated, 1))
    engine.up(load_stack(stack_dir))
    assert drift(emulator, stack_dir, monkeypatch) == 0
    out = capsys.readouterr().out
    assert (
        "warning: contract 'globex_2026' declares payment-gated prepaid_balance_threshold_configuration"
        in out
    )
    assert "docs/stripe-migration.md, section 5" in out and "in sync" in out
    assert drift(emulator, stack_dir, monkeypatch, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["warnings"]) == 1 and "(STRIPE)" in report["warnings"][0]
