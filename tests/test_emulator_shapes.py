"""Responses validated strictly against the SDK's response models.

The SDK builds its models without validation (it is lenient), so a missing required field or a field in
the wrong place would go unnoticed by the other tests; `model_validate` catches both.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from conftest import Emulator
from metronome.types.shared.contract import Contract
from metronome.types.shared.contract_v2 import ContractV2
from metronome.types.v1 import (
    BillableMetricListResponse,
    BillableMetricRetrieveResponse,
    CustomerCreateResponse,
    CustomerDetail,
    CustomerRetrieveBillingConfigurationsResponse,
    CustomerRetrieveResponse,
    CustomFieldListKeysResponse,
    PackageListResponse,
    PackageRetrieveResponse,
    PricingUnitListResponse,
    UsageSearchResponse,
)
from metronome.types.v1.contract_retrieve_response import ContractRetrieveResponse
from metronome.types.v1.contracts import (
    ProductListResponse,
    ProductRetrieveResponse,
    RateCardListResponse,
    RateCardRetrieveResponse,
)
from metronome.types.v1.contracts.rate_cards import RateAddResponse, RateListResponse
from metronome.types.v1.settings import BillingProviderListResponse
from metronome.types.v2.contract_get_edit_history_response import ContractGetEditHistoryResponse
from pydantic import TypeAdapter

START = "2026-01-01T00:00:00Z"


class Raw:
    """Plain HTTP calls so the JSON is seen exactly as sent."""

    def __init__(self, emulator: Emulator) -> None:
        self.http = httpx.Client(
            base_url=emulator.base_url, headers={"Authorization": f"Bearer {emulator.token}"}, timeout=10
        )

    def __call__(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self.http.request(method, path, json=body, params=params or None)
        assert response.status_code == 200, response.text
        return response.json()


def check(model: Any, raw: Any) -> None:
    TypeAdapter(model).validate_python(raw)


@pytest.fixture
def raw(fresh_emulator: Emulator) -> Raw:
    fresh_emulator.admin("POST", "billing-providers", json={"billing_provider": "stripe", "connected": True})
    return Raw(fresh_emulator)


def test_shapes_match_sdk_models(raw: Raw) -> None:
    metric_id = raw(
        "POST",
        "/v1/billable-metrics/create",
        {
            "name": "m",
            "aggregation_type": "SUM",
            "aggregation_key": "n",
            "property_filters": [{"name": "n", "exists": True}, {"name": "model", "exists": True}],
            "group_keys": [["model"]],
        },
    )["data"]["id"]
    check(BillableMetricRetrieveResponse, raw("GET", f"/v1/billable-metrics/{metric_id}"))

    product_id = raw(
        "POST",
        "/v1/contract-pricing/products/create",
        {
            "name": "p",
            "type": "USAGE",
            "billable_metric_id": metric_id,
            "pricing_group_key": ["model"],
            "quantity_rounding": {"decimal_places": 2, "rounding_method": "ROUND_UP"},
        },
    )["data"]["id"]
    raw(
        "POST",
        "/v1/contract-pricing/products/update",
        {"product_id": product_id, "starting_at": START, "name": "p2"},
    )
    check(ProductRetrieveResponse, raw("POST", "/v1/contract-pricing/products/get", {"id": product_id}))

    unit = raw("POST", "/v1/credit-types/create", {"name": "unit"})["data"]["id"]
    card_id = raw(
        "POST",
        "/v1/contract-pricing/rate-cards/create",
        {
            "name": "c",
            "aliases": [{"name": "std"}],
            "credit_type_conversions": [{"custom_credit_type_id": unit, "fiat_per_custom_credit": 2}],
        },
    )["data"]["id"]
    check(RateCardRetrieveResponse, raw("POST", "/v1/contract-pricing/rate-cards/get", {"id": card_id}))
    added = raw(
        "POST",
        "/v1/contract-pricing/rate-cards/addRate",
        {
            "rate_card_id": card_id,
            "product_id": product_id,
            "entitled": True,
            "starting_at": START,
            "rate_type": "TIERED",
            "tiers": [{"size": 10, "price": 2}, {"price": 1}],
            "pricing_group_values": {"model": "a"},
            "commit_rate": {"rate_type": "FLAT", "price": 1},
        },
    )
    check(RateAddResponse, added)
    rates = raw("POST", "/v1/contract-pricing/rate-cards/getRates", {"rate_card_id": card_id, "at": START})
    assert rates["next_page"] is None
    for item in rates["data"]:
        check(RateListResponse, item)

    created = raw("POST", "/v1/customers", {"name": "acme", "ingest_aliases": ["acme"]})
    check(CustomerCreateResponse, created)
    customer_id = created["data"]["id"]
    check(CustomerRetrieveResponse, raw("GET", f"/v1/customers/{customer_id}"))
    config = raw(
        "POST",
        "/v1/setCustomerBillingProviderConfigurations",
        {
            "data": [
                {
                    "customer_id": customer_id,
                    "billing_provider": "stripe",
                    "delivery_method": "direct_to_billing_provider",
                    "configuration": {"stripe_customer_id": "cus_1"},
                }
            ]
        },
    )["data"][0]["id"]
    check(
        CustomerRetrieveBillingConfigurationsResponse,
        raw("POST", "/v1/getCustomerBillingProviderConfigurations", {"customer_id": customer_id}),
    )
    check(BillingProviderListResponse, raw("POST", "/v1/listConfiguredBillingProviders", {}))

    window = {
        "schedule_items": [{"amount": 10, "starting_at": START, "ending_before": "2026-02-01T00:00:00Z"}]
    }
    contract_id = raw(
        "POST",
        "/v1/contracts/create",
        {
            "customer_id": customer_id,
            "rate_card_id": card_id,
            "starting_at": START,
            "uniqueness_key": str(uuid.uuid4()),
            "billing_provider_configuration": {"billing_provider_configuration_id": config},
            "commits": [
                {
                    "product_id": product_id,
                    "type": "POSTPAID",
                    "access_schedule": window,
                    "invoice_schedule": {
                        "recurring_schedule": {
                            "amount_distribution": "DIVIDED",
                            "frequency": "MONTHLY",
                            "starting_at": START,
                            "ending_before": "2026-04-01T00:00:00Z",
                            "amount": 300,
                        }
                    },
                }
            ],
            "credits": [{"product_id": product_id, "access_schedule": window}],
            "overrides": [
                {
                    "starting_at": START,
                    "type": "TIERED",
                    "product_id": product_id,
                    "tiers": [{"multiplier": 1, "size": 5}, {"multiplier": 0.5}],
                }
            ],
            "scheduled_charges": [
                {
                    "product_id": product_id,
                    "schedule": {"schedule_items": [{"timestamp": START, "unit_price": 5, "quantity": 2}]},
                }
            ],
        },
    )["data"]["id"]
    ids = {"customer_id": customer_id, "contract_id": contract_id}
    # Amendments exist on accounts without contract editing: the same account, switched for the call.
    raw("POST", "/_emulator/config", {"contract_editing": False})
    raw(
        "POST",
        "/v1/contracts/amend",
        {**ids, "starting_at": START, "credits": [{"product_id": product_id, "access_schedule": window}]},
    )
    raw("POST", "/_emulator/config", {"contract_editing": True})
    raw(
        "POST",
        "/v2/contracts/edit",
        {
            **ids,
            "add_discounts": [
                {
                    "product_id": product_id,
                    "schedule": {"schedule_items": [{"timestamp": START, "amount": 1}]},
                }
            ],
        },
    )
    check(ContractGetEditHistoryResponse, raw("POST", "/v2/contracts/getEditHistory", ids))
    v1 = raw("POST", "/v1/contracts/get", ids)
    check(ContractRetrieveResponse, v1)
    items = v1["data"]["current"]["commits"][0]["invoice_schedule"]["schedule_items"]
    assert [i["amount"] for i in items] == [100, 100, 100]
    v2 = raw("POST", "/v2/contracts/get", ids)["data"]
    check(ContractV2, v2)
    assert v2["scheduled_charges"][0]["schedule"]["schedule_items"][0]["amount"] == 10
    listed = raw("POST", "/v2/contracts/list", {"customer_id": customer_id})
    assert listed["cursor"] is None and [c["id"] for c in listed["data"]] == [contract_id]

    package_id = raw("POST", "/v1/packages/create", {"name": "pkg", "rate_card_id": card_id})["data"]["id"]
    check(PackageRetrieveResponse, raw("POST", "/v1/packages/get", {"package_id": package_id}))

    raw(
        "POST",
        "/v1/ingest",
        [
            {
                "transaction_id": "t",
                "customer_id": "acme",
                "event_type": "e",
                "timestamp": START,
                "properties": {"n": 1},
            }
        ],
    )
    check(UsageSearchResponse, raw("POST", "/v1/events/search", {"transactionIds": ["t"]}))


def test_list_shapes_match_sdk_models(raw: Raw) -> None:
    raw("POST", "/v1/billable-metrics/create", {"name": "m", "aggregation_type": "COUNT"})
    raw("POST", "/v1/contract-pricing/products/create", {"name": "p", "type": "FIXED"})
    raw("POST", "/v1/contract-pricing/rate-cards/create", {"name": "c"})
    customer_id = raw("POST", "/v1/customers", {"name": "acme"})["data"]["id"]
    raw("POST", "/v1/contracts/create", {"customer_id": customer_id, "starting_at": START})
    raw("POST", "/v1/packages/create", {"name": "pkg"})
    raw("POST", "/v1/customFields/addKey", {"entity": "customer", "key": "k", "enforce_uniqueness": False})
    pages: list[tuple[Any, Any]] = [
        (BillableMetricListResponse, raw("GET", "/v1/billable-metrics")),
        (ProductListResponse, raw("POST", "/v1/contract-pricing/products/list", {})),
        (RateCardListResponse, raw("POST", "/v1/contract-pricing/rate-cards/list", {})),
        (CustomerDetail, raw("GET", "/v1/customers")),
        (PricingUnitListResponse, raw("GET", "/v1/credit-types/list")),
        (PackageListResponse, raw("POST", "/v1/packages/list", {})),
        (CustomFieldListKeysResponse, raw("POST", "/v1/customFields/listKeys", {})),
    ]
    for model, body in pages:
        assert body["next_page"] is None and body["data"], model
        for item in body["data"]:
            check(model, item)
    contracts = raw("POST", "/v1/contracts/list", {"customer_id": customer_id})
    assert contracts["cursor"] is None
    check(list[Contract], contracts["data"])
