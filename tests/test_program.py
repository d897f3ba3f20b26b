"""The program under `pulumi.runtime.set_mocks`: resource types, names and references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from metronome_iac.catalog import load_stack
from metronome_iac.program import declare

REPO = Path(__file__).resolve().parent.parent
T = "pulumi-python:dynamic/metronome:"


class RecordingMocks(pulumi.runtime.Mocks):
    """Every resource gets id "<name>-id"; inputs are recorded with secrets unwrapped."""

    def __init__(self) -> None:
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = {k: rpc.unwrap_rpc_secret(v) for k, v in args.inputs.items()}
        self.resources[(args.typ, args.name)] = inputs
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


@pytest.fixture
def mocks() -> RecordingMocks:
    m = RecordingMocks()
    pulumi.runtime.set_mocks(m, project="metronome-iac", stack="dev", preview=False)
    return m


def _declare_dev() -> Any:
    stack = load_stack(REPO / "stacks" / "dev")

    @pulumi.runtime.test
    def run() -> Any:
        resources = declare(stack)
        ids = [r.id for by_name in resources.values() for r in by_name.values()]
        return pulumi.Output.all(*ids)

    run()
    return stack


def test_declares_every_resource_with_catalog_names(mocks: RecordingMocks) -> None:
    stack = _declare_dev()
    got = set(mocks.resources)
    expected = {(T + "BillableMetric", m.name) for m in stack.catalog.billable_metrics}
    expected |= {(T + "Product", p.name) for p in stack.catalog.products}
    expected |= {(T + "RateCard", c.name) for c in stack.catalog.rate_cards}
    expected |= {(T + "Customer", c.name) for c in stack.environment.customers}
    expected |= {(T + "Contract", k.name) for k in stack.environment.contracts}
    expected |= {(T + "Package", p.name) for p in stack.catalog.packages}
    expected |= {(T + "Alert", a.name) for a in stack.catalog.alerts}
    expected |= {(T + "Notification", n.name) for n in stack.catalog.notifications}
    expected |= {
        (T + "Alert", f"{c.name}.{a.name}") for c in stack.environment.customers for a in c.alerts or []
    }
    expected.add((T + "StripeIntegration", "stripe"))
    assert got == expected


def test_references_are_wired_by_output(mocks: RecordingMocks) -> None:
    _declare_dev()
    r = mocks.resources
    product = r[(T + "Product", "input_tokens_product")]
    assert product["billable_metric_id"] == "input_tokens-id"
    assert product["name"] == "Input tokens"  # display_name -> Metronome name
    assert product["quantity_conversion"]["operation"] == "DIVIDE"
    assert "billable_metric_id" not in r[(T + "Product", "prepaid_commit")]

    card = r[(T + "RateCard", "standard")]
    assert card["name"] == "Standard 2026"
    assert {rate["product_id"] for rate in card["rates"]} == {
        "input_tokens_product-id",
        "output_tokens_product-id",
        "platform_fee-id",
    }
    tiered = next(rate for rate in card["rates"] if rate["rate_type"] == "TIERED")
    assert tiered["tiers"][0]["size"] == 1000

    customer = r[(T + "Customer", "acme")]
    assert customer["name"] == "Acme Corp" and customer["ingest_aliases"] == ["acme-prod", "acme-batch"]

    contract = r[(T + "Contract", "acme_2026")]
    assert contract["customer_id"] == "acme-id"
    assert contract["rate_card_id"] == "standard-id"
    assert contract["commits"][0]["product_id"] == "prepaid_commit-id"
    assert contract["net_payment_terms_days"] == 30  # from settings
    assert contract["subscriptions"][0]["subscription_rate"] == {
        "product_id": "platform_fee-id",
        "billing_frequency": "MONTHLY",
    }
    # Made from the package by its alias: nothing but the customer, the start and the package.
    signup = r[(T + "Contract", "piedpiper_self_serve")]
    assert signup["package_alias"] == "self-serve" and signup["package"] == "self-serve"
    assert not {"rate_card_id", "net_payment_terms_days", "name"} & {
        k for k, v in signup.items() if v is not None
    }


def test_identity_input_is_project_stack_name(mocks: RecordingMocks) -> None:
    _declare_dev()
    metric = mocks.resources[(T + "BillableMetric", "input_tokens")]
    assert metric["identity"] == "metronome-iac/dev/input_tokens"


def test_stripe_integration_inputs(mocks: RecordingMocks) -> None:
    _declare_dev()
    stripe = mocks.resources[(T + "StripeIntegration", "stripe")]
    assert stripe["expected_account_id"] == "acct_1DevTestAccount"
    assert stripe["go_live"] is False
    by_customer = {c["customer_id"]: c for c in stripe["customers"]}
    assert by_customer["acme-id"]["stripe_customer_id"] == "cus_DevAcme0001"
    assert by_customer["globex-id"]["collection_method"] == "send_invoice"


def test_the_pulumi_program_declares_the_current_stack(mocks: RecordingMocks) -> None:
    """`__main__.py` loads stacks/<pulumi.get_stack()>/ (here: dev) and declares it, run as the
    language host's runner runs it: in a new root stack, its `pulumi.run` entry point awaited."""
    import runpy

    from pulumi.runtime.settings import set_root_resource
    from pulumi.runtime.stack import run_in_stack
    from pulumi.runtime.sync_await import _sync_await

    namespace: dict[str, Any] = {}
    set_root_resource(None)  # type: ignore[arg-type]  # the mocks' stack: run_in_stack makes its own
    _sync_await(
        run_in_stack(lambda: namespace.update(runpy.run_path(str(REPO / "__main__.py"), run_name="__main__")))
    )
    assert namespace["resources"]["contracts"]
    assert (T + "Contract", "acme_2026") in mocks.resources
    assert (T + "BillableMetric", "input_tokens") in mocks.resources


class GoLiveMocks(RecordingMocks):
    """As RecordingMocks, and the integration reports one Stripe configuration per customer it was given."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        rid, state = super().new_resource(args)
        if args.typ == T + "StripeIntegration":
            live = self.resources[(args.typ, args.name)]["go_live"]
            customers = self.resources[(args.typ, args.name)]["customers"]
            state["billing_provider_configuration_ids"] = (
                {c["customer_id"]: f"bpc-{c['customer_id']}" for c in customers} if live else {}
            )
        return rid, state


@pytest.mark.parametrize("go_live", [False, True])
def test_contracts_bill_through_stripe_only_after_go_live(go_live: bool) -> None:
    mocks = GoLiveMocks()
    pulumi.runtime.set_mocks(mocks, project="metronome-iac", stack="dev", preview=False)
    stack = load_stack(REPO / "stacks" / "dev")
    assert stack.environment.stripe is not None
    stack.environment.stripe.go_live = go_live

    @pulumi.runtime.test
    def run() -> Any:
        resources = declare(stack)
        contracts = resources["contracts"].values()
        return pulumi.Output.all(*[r.id for r in contracts])

    run()
    contract = mocks.resources[(T + "Contract", "acme_2026")]
    if go_live:
        wanted = {"billing_provider_configuration_id": "bpc-acme-id"}
        assert contract["billing_provider_configuration"] == wanted
    else:
        assert "billing_provider_configuration" not in contract
