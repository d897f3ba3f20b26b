"""Emulator usage ingest, event search and usage aggregates, and an end-to-end script written only against
the official client's documented calls."""

from __future__ import annotations

import uuid

import metronome
import pytest
from conftest import Emulator


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def event(customer: str, transaction_id: str | None = None, **props: object) -> dict:
    return {
        "transaction_id": transaction_id or uid("tx"),
        "customer_id": customer,
        "event_type": "completion",
        "timestamp": "2026-01-15T10:00:00Z",
        "properties": props,
    }


def test_ingest_dedupes_on_transaction_id(fresh_emulator: Emulator) -> None:
    client = fresh_emulator.client(max_retries=0)
    customer = client.v1.customers.create(name="acme", ingest_aliases=["acme-prod"]).data
    assert client.v1.usage.ingest(usage=[event("acme-prod", "tx-1", tokens=5)]) is None
    client.v1.usage.ingest(usage=[event("acme-prod", "tx-1", tokens=5), event(customer.id, "tx-2", tokens=7)])
    assert fresh_emulator.admin("GET", "stats").json()["events"] == 2
    found = client.v1.usage.search(transaction_ids=["tx-1", "tx-2", "tx-unknown"])
    assert sorted(e.transaction_id for e in found) == ["tx-1", "tx-2"]
    first = next(e for e in found if e.transaction_id == "tx-1")
    assert first.matched_customer.id == customer.id and first.customer_id == "acme-prod"
    assert first.properties == {"tokens": 5}


def test_ingest_rejects_bad_events_all_or_nothing(fresh_emulator: Emulator) -> None:
    client = fresh_emulator.client(max_retries=0)
    client.v1.customers.create(name="acme", ingest_aliases=["acme-prod"])
    no_type = event("acme-prod", "tx-no-type")
    del no_type["event_type"]
    with pytest.raises(metronome.BadRequestError) as err:
        client.v1.usage.ingest(usage=[event("acme-prod", "ok-1"), no_type])  # type: ignore[list-item]
    assert "tx-no-type" in err.value.body["message"] and "event_type" in err.value.body["message"]
    # All or nothing: the valid event in the rejected batch was not stored.
    assert fresh_emulator.admin("GET", "stats").json()["events"] == 0
    with pytest.raises(metronome.BadRequestError, match="timestamp"):
        client.v1.usage.ingest(usage=[{**event("acme-prod"), "timestamp": "yesterday"}])


def test_events_for_an_alias_no_customer_has_are_kept_and_matched_later(fresh_emulator: Emulator) -> None:
    """Metronome accepts usage for an ingest alias no customer has yet, and associates it with the customer
    that is given the alias later (docs: Provision a customer, "Understand ingest aliases")."""
    client = fresh_emulator.client(max_retries=0)
    customer_id = client.v1.customers.create(name="acme", ingest_aliases=["acme-prod"]).data.id
    metric_id = client.v1.billable_metrics.create(
        name="tokens", aggregation_type="SUM", aggregation_key="tokens",
        property_filters=[{"name": "tokens", "exists": True}],
    ).data.id  # fmt: skip
    client.v1.usage.ingest(
        usage=[event("acme-prod", "tx-known", tokens=5), event("acme-typo", "tx-orphan", tokens=7)]
    )
    found = {e.transaction_id: e for e in client.v1.usage.search(transaction_ids=["tx-known", "tx-orphan"])}
    assert found["tx-known"].matched_customer.id == customer_id
    assert found["tx-orphan"].matched_customer is None and found["tx-orphan"].customer_id == "acme-typo"

    def total() -> float:
        rows = client.v1.usage.list(
            starting_on="2026-01-15T00:00:00Z", ending_before="2026-01-16T00:00:00Z", window_size="DAY",
            customer_ids=[customer_id], billable_metrics=[{"id": metric_id}],
        )  # fmt: skip
        return sum(r.value or 0 for r in rows)

    assert total() == 5
    client.v1.customers.set_ingest_aliases(customer_id=customer_id, ingest_aliases=["acme-prod", "acme-typo"])
    assert total() == 12  # retroactively
    assert client.v1.usage.search(transaction_ids=["tx-orphan"])[0].matched_customer.id == customer_id


@pytest.mark.parametrize(
    ("starting_on", "ending_before", "words"),
    [
        ("2026-01-15T10:00:00Z", "2026-01-16T00:00:00Z", "starting_on must be aligned to UTC midnight"),
        ("2026-01-15T00:00:00Z", "2026-01-16T01:00:00Z", "ending_before must be aligned to UTC midnight"),
        ("2026-01-15T00:00:00Z", "2026-01-15T00:00:00Z", "at least one day after starting_on"),
    ],
)
def test_usage_ranges_are_whole_utc_days(
    emulator: Emulator, starting_on: str, ending_before: str, words: str
) -> None:
    """`/v1/usage` and `/v1/usage/groups`: starting_on and ending_before on UTC midnight, at least a day
    apart (the SDK's usage_list_params / usage_list_with_groups_params docstrings)."""
    client = emulator.client(max_retries=0)
    customer_id = client.v1.customers.create(name=uid("acme")).data.id
    metric_id = client.v1.billable_metrics.create(name=uid("m"), aggregation_type="COUNT").data.id
    with pytest.raises(metronome.BadRequestError, match=words):
        list(client.v1.usage.list(starting_on=starting_on, ending_before=ending_before, window_size="HOUR"))
    with pytest.raises(metronome.BadRequestError, match=words):
        list(
            client.v1.usage.list_with_groups(
                billable_metric_id=metric_id, customer_id=customer_id, window_size="HOUR",
                starting_on=starting_on, ending_before=ending_before,
            )
        )  # fmt: skip


def test_usage_aggregates(fresh_emulator: Emulator) -> None:
    client = fresh_emulator.client(max_retries=0)
    customer_id = client.v1.customers.create(name="acme", ingest_aliases=["acme"]).data.id
    metric_id = client.v1.billable_metrics.create(
        name="tokens",
        aggregation_type="SUM",
        aggregation_key="tokens",
        event_type_filter={"in_values": ["completion"]},
        property_filters=[{"name": "tokens", "exists": True}, {"name": "model", "in_values": ["large"]}],
    ).data.id
    client.v1.usage.ingest(
        usage=[
            event("acme", tokens=5, model="large"),
            event("acme", tokens=7, model="large"),
            event("acme", tokens=100, model="small"),
        ]
    )
    rows = list(
        client.v1.usage.list(
            starting_on="2026-01-15T00:00:00Z",
            ending_before="2026-01-16T00:00:00Z",
            window_size="DAY",
            customer_ids=[customer_id],
            billable_metrics=[{"id": metric_id}],
        )
    )
    assert [(r.customer_id, r.billable_metric_id, r.value) for r in rows] == [(customer_id, metric_id, 12.0)]


def test_usage_groups(fresh_emulator: Emulator) -> None:
    client = fresh_emulator.client(max_retries=0)
    customer_id = client.v1.customers.create(name="acme", ingest_aliases=["acme"]).data.id
    metric_id = client.v1.billable_metrics.create(
        name="tokens",
        aggregation_type="SUM",
        aggregation_key="tokens",
        property_filters=[{"name": "tokens", "exists": True}, {"name": "model", "exists": True}],
        group_keys=[["model"]],
    ).data.id
    client.v1.usage.ingest(
        usage=[
            event("acme", tokens=5, model="large"),
            event("acme", tokens=7, model="large"),
            event("acme", tokens=1, model="small"),
        ]
    )
    rows = list(
        client.v1.usage.list_with_groups(
            billable_metric_id=metric_id,
            customer_id=customer_id,
            window_size="DAY",
            group_by={"key": "model"},
            starting_on="2026-01-15T00:00:00Z",
            ending_before="2026-01-16T00:00:00Z",
            limit=1,
        )
    )
    assert [(r.group_key, r.group_value, r.value) for r in rows] == [
        ("model", "large", 12.0),
        ("model", "small", 1.0),
    ]


def test_documented_client_script_works_unchanged(emulator: Emulator) -> None:
    """The kind of script a user writes from Metronome's docs, pointed at the emulator."""
    client = metronome.Metronome(bearer_token=emulator.token, base_url=emulator.base_url)

    metric = client.v1.billable_metrics.create(
        name="Input tokens",
        aggregation_type="SUM",
        aggregation_key="tokens",
        event_type_filter={"in_values": ["completion"]},
        property_filters=[{"name": "tokens", "exists": True}, {"name": "model", "exists": True}],
        group_keys=[["model"]],
    )
    product = client.v1.contracts.products.create(
        name="Input tokens",
        type="USAGE",
        billable_metric_id=metric.data.id,
        pricing_group_key=["model"],
        quantity_conversion={"conversion_factor": 1_000_000, "operation": "DIVIDE"},
    )
    rate_card = client.v1.contracts.rate_cards.create(name="Standard 2026")
    client.v1.contracts.rate_cards.rates.add_many(
        rate_card_id=rate_card.data.id,
        rates=[
            {
                "product_id": product.data.id,
                "starting_at": "2026-01-01T00:00:00Z",
                "entitled": True,
                "rate_type": "FLAT",
                "price": 300,
                "pricing_group_values": {"model": "large"},
            },
            {
                "product_id": product.data.id,
                "starting_at": "2026-01-01T00:00:00Z",
                "entitled": True,
                "rate_type": "FLAT",
                "price": 50,
                "pricing_group_values": {"model": "small"},
            },
        ],
    )
    alias = uid("acme")
    customer = client.v1.customers.create(name="Acme Corp", ingest_aliases=[alias])
    contract = client.v1.contracts.create(
        customer_id=customer.data.id, rate_card_id=rate_card.data.id, starting_at="2026-01-01T00:00:00Z"
    )
    client.v1.usage.ingest(
        usage=[
            {
                "transaction_id": uid("tx"),
                "customer_id": alias,
                "event_type": "completion",
                "timestamp": "2026-01-15T10:00:00Z",
                "properties": {"tokens": 1200, "model": "large"},
            }
        ]
    )

    rates = client.v1.contracts.rate_cards.rates.list(
        rate_card_id=rate_card.data.id, at="2026-02-01T00:00:00Z"
    )
    assert sorted(r.rate.price for r in rates) == [50, 300]
    got = client.v1.contracts.retrieve(customer_id=customer.data.id, contract_id=contract.data.id)
    assert got.data.current.rate_card_id == rate_card.data.id
    assert client.v1.customers.retrieve(customer_id=customer.data.id).data.ingest_aliases == [alias]
