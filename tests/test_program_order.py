"""A program declaring the five resources under `pulumi.runtime.set_mocks`: registration order,
dependencies by output reference, type tokens, and the computed identity input."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from providers import BillableMetric, Contract, Customer, Product, RateCard

T = "pulumi-python:dynamic/metronome:"


class OrderMocks(pulumi.runtime.Mocks):
    """Records registrations in order; each resource gets id "<name>-id"."""

    def __init__(self) -> None:
        self.order: list[tuple[str, str]] = []
        self.inputs: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.order.append((args.typ, args.name))
        self.inputs[args.name] = {k: rpc.unwrap_rpc_secret(v) for k, v in args.inputs.items()}
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


@pytest.fixture
def mocks() -> OrderMocks:
    m = OrderMocks()
    pulumi.runtime.set_mocks(m, project="metronome-iac", stack="dev", preview=False)
    return m


def declare() -> dict[str, pulumi.CustomResource]:
    metric = BillableMetric(
        "input_tokens",
        name="Input tokens",
        aggregation_type="SUM",
        aggregation_key="tokens",
        property_filters=[{"name": "model", "exists": True}],
        group_keys=[["model"]],
    )
    product = Product(
        "input_tokens_product",
        name="Input tokens",
        type="USAGE",
        billable_metric_id=metric.id,
        pricing_group_key=["model"],
    )
    card = RateCard(
        "standard",
        name="Standard",
        rates=[
            {
                "product_id": product.id,
                "starting_at": "2026-01-01T00:00:00Z",
                "rate_type": "FLAT",
                "price": 300,
                "pricing_group_values": {"model": "large"},
            }
        ],
    )
    customer = Customer("acme", name="Acme", ingest_aliases=["acme-prod"])
    contract = Contract(
        "acme_2026", customer_id=customer.id, rate_card_id=card.id, starting_at="2026-01-01T00:00:00Z"
    )
    return {"metric": metric, "product": product, "card": card, "customer": customer, "contract": contract}


def test_registration_order_dependencies_and_types(mocks: OrderMocks) -> None:
    @pulumi.runtime.test
    def run() -> Any:
        resources = declare()
        return pulumi.Output.all(*[r.id for r in resources.values()], resources["product"].billable_metric_id)

    run()
    names = [name for _, name in mocks.order]
    assert set(mocks.order) == {
        (T + "BillableMetric", "input_tokens"),
        (T + "Product", "input_tokens_product"),
        (T + "RateCard", "standard"),
        (T + "Customer", "acme"),
        (T + "Contract", "acme_2026"),
    }
    # A resource registers only once the ids it references are known.
    assert names.index("input_tokens") < names.index("input_tokens_product") < names.index("standard")
    assert names.index("standard") < names.index("acme_2026") and names.index("acme") < names.index(
        "acme_2026"
    )

    got = mocks.inputs
    assert got["input_tokens_product"]["billable_metric_id"] == "input_tokens-id"
    assert got["standard"]["rates"][0]["product_id"] == "input_tokens_product-id"
    assert got["acme_2026"]["customer_id"] == "acme-id" and got["acme_2026"]["rate_card_id"] == "standard-id"
    for name, inputs in got.items():
        assert inputs["identity"] == f"metronome-iac/dev/{name}"
        blob = inputs["__provider"]
        assert isinstance(blob, str) and len(blob) < 200  # pickled by reference


def test_outputs_are_declared(mocks: OrderMocks) -> None:
    @pulumi.runtime.test
    def run() -> Any:
        r = declare()
        outs = [r["metric"].name, r["metric"].group_keys, r["product"].name, r["card"].rates,
                r["customer"].ingest_aliases, r["contract"].customer_id]  # fmt: skip

        def check(values: list[Any]) -> None:
            assert values[0] == "Input tokens" and values[1] == [["model"]]
            assert values[4] == ["acme-prod"] and values[5] == "acme-id"

        return pulumi.Output.all(*outs).apply(check)

    run()
