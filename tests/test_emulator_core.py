"""Emulator core families through the official SDK: billable metrics, custom fields, products, rate cards,
credit types."""

from __future__ import annotations

import uuid

import metronome
import pytest
from conftest import Emulator

USD = "2714e483-4ff1-48e4-9e25-ac732e8f24f2"


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def client(emulator: Emulator) -> metronome.Metronome:
    return emulator.client(max_retries=0)


def make_metric(client: metronome.Metronome, **kwargs) -> str:
    """A valid metric: as the real API requires, the aggregation key and every group key are
    property filter names (unless the test passes its own property_filters)."""
    args = {"name": uid("metric"), "aggregation_type": "SUM", "aggregation_key": "tokens"} | kwargs
    if "property_filters" not in args:
        names = {args.get("aggregation_key")} | {k for gk in args.get("group_keys") or [] for k in gk}
        args["property_filters"] = [{"name": n, "exists": True} for n in sorted(names - {None})]
    return client.v1.billable_metrics.create(**args).data.id


def make_product(client: metronome.Metronome, **kwargs) -> str:
    return client.v1.contracts.products.create(**({"name": uid("product"), "type": "FIXED"} | kwargs)).data.id


def add_key(client: metronome.Metronome, entity: str, key: str) -> None:
    try:
        client.v1.custom_fields.add_key(entity=entity, key=key, enforce_uniqueness=False)
    except metronome.BadRequestError as err:
        assert "Duplicate custom field key" in str(err)


# -- billable metrics -------------------------------------------------------------------------------


def test_billable_metric_lifecycle(client: metronome.Metronome) -> None:
    name = uid("metric")
    metric_id = make_metric(
        client,
        name=name,
        event_type_filter={"in_values": ["completion"]},
        property_filters=[
            {"name": "model", "exists": True},
            {"name": "direction", "in_values": ["in"]},
            {"name": "region", "exists": True},
            {"name": "tokens", "exists": True},
        ],
        group_keys=[["model", "region"]],
    )
    got = client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data
    assert got.name == name and got.aggregation_type == "SUM" and got.aggregation_key == "tokens"
    assert got.event_type_filter.in_values == ["completion"]
    assert got.property_filters[0].name == "model" and got.property_filters[0].exists is True
    assert got.group_keys == [["model", "region"]] and got.archived_at is None

    client.v1.billable_metrics.update(billable_metric_id=metric_id, name=name + "-renamed")
    assert client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data.name == name + "-renamed"

    client.v1.billable_metrics.archive(id=metric_id)
    live_ids = {m.id for m in client.v1.billable_metrics.list()}
    assert metric_id not in live_ids
    all_ids = {m.id for m in client.v1.billable_metrics.list(include_archived=True)}
    assert metric_id in all_ids
    assert client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data.archived_at is not None
    with pytest.raises(metronome.BadRequestError, match="already archived"):
        client.v1.billable_metrics.archive(id=metric_id)


def test_billable_metric_pagination(client: metronome.Metronome) -> None:
    made = {make_metric(client) for _ in range(5)}
    first = client.v1.billable_metrics.list(limit=2)
    assert len(first.data) == 2 and first.next_page
    seen = [m.id for m in client.v1.billable_metrics.list(limit=2)]  # auto-paginates over all pages
    assert made <= set(seen) and len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"aggregation_type": "AVERAGE", "aggregation_key": "x"}, "aggregation_type"),
        ({"aggregation_type": "SUM"}, "aggregation_key"),
        # The real API's rule: the aggregation key and each group key name a property filter.
        (
            {"aggregation_type": "SUM", "aggregation_key": "tokens", "property_filters": [{"name": "model"}]},
            "The specified aggregation key must be one of the property filter names",
        ),
        ({"aggregation_type": "COUNT", "group_keys": [["region"]]}, "Group key 'region' does not match"),
        ({"aggregation_type": "COUNT", "property_filters": [{"exists": True}]}, "property_filters[0].name"),
        ({"sql": "select 1", "aggregation_type": "COUNT"}, "sql"),
    ],
)
def test_billable_metric_validation(client: metronome.Metronome, kwargs: dict, field: str) -> None:
    with pytest.raises(metronome.BadRequestError) as err:
        client.v1.billable_metrics.create(name=uid(), **kwargs)
    assert err.value.status_code == 400 and field in err.value.body["message"]


def test_billable_metric_only_name_changes_and_unknown_id(client: metronome.Metronome) -> None:
    metric_id = make_metric(client)
    with pytest.raises(metronome.BadRequestError, match="aggregation_type"):
        client.v1.billable_metrics.update(
            billable_metric_id=metric_id, name="x", extra_body={"aggregation_type": "MAX"}
        )
    missing = str(uuid.uuid4())
    with pytest.raises(metronome.NotFoundError, match=missing):
        client.v1.billable_metrics.retrieve(billable_metric_id=missing)
    with pytest.raises(metronome.NotFoundError, match=missing):
        client.v1.billable_metrics.archive(id=missing)


# -- custom fields ----------------------------------------------------------------------------------


def test_custom_fields_keys_and_values(client: metronome.Metronome) -> None:
    key = uid("cf")
    client.v1.custom_fields.add_key(entity="billable_metric", key=key, enforce_uniqueness=False)
    with pytest.raises(metronome.BadRequestError, match="Duplicate custom field key"):
        client.v1.custom_fields.add_key(entity="billable_metric", key=key, enforce_uniqueness=False)
    keys = [(k.entity, k.key) for k in client.v1.custom_fields.list_keys(entities=["billable_metric"])]
    assert ("billable_metric", key) in keys
    assert all(entity == "billable_metric" for entity, _ in keys)

    metric_id = make_metric(client, custom_fields={key: "a"})
    assert client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data.custom_fields == {key: "a"}
    client.v1.custom_fields.set_values(
        entity="billable_metric", entity_id=metric_id, custom_fields={key: "b"}
    )
    assert client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data.custom_fields == {key: "b"}
    client.v1.custom_fields.delete_values(entity="billable_metric", entity_id=metric_id, keys=[key])
    assert client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data.custom_fields == {}

    client.v1.custom_fields.remove_key(entity="billable_metric", key=key)
    assert key not in {k.key for k in client.v1.custom_fields.list_keys(entities=["billable_metric"])}


def test_custom_field_unregistered_key_rejected(client: metronome.Metronome) -> None:
    key = uid("unregistered")
    with pytest.raises(metronome.BadRequestError, match=key):
        make_metric(client, custom_fields={key: "x"})
    with pytest.raises(metronome.BadRequestError, match=key):
        client.v1.customers.create(name=uid(), custom_fields={key: "x"})
    metric_id = make_metric(client)
    with pytest.raises(metronome.BadRequestError, match=key):
        client.v1.custom_fields.set_values(
            entity="billable_metric", entity_id=metric_id, custom_fields={key: "x"}
        )
    add_key(client, "product", key)  # registered for another entity only: still refused for metrics
    with pytest.raises(metronome.BadRequestError, match=key):
        make_metric(client, custom_fields={key: "x"})
    with pytest.raises(metronome.BadRequestError, match="entity"):
        client.v1.custom_fields.add_key(entity="nonsense", key=key, enforce_uniqueness=False)  # type: ignore[arg-type]


def test_contract_products_take_custom_fields_of_entity_contract_product(client: metronome.Metronome) -> None:
    """As in Metronome's docs: contract-pricing products are the custom-field entity `contract_product`
    ("Product (Contracts)"); a key registered for `product` (legacy plans' products) does not serve them."""
    legacy, key = uid("legacy_key"), uid("cp_key")
    add_key(client, "product", legacy)
    with pytest.raises(metronome.BadRequestError, match=legacy):
        make_product(client, custom_fields={legacy: "x"})
    add_key(client, "contract_product", key)
    product_id = make_product(client, custom_fields={key: "a"})
    client.v1.custom_fields.set_values(
        entity="contract_product", entity_id=product_id, custom_fields={key: "b"}
    )
    assert client.v1.contracts.products.retrieve(id=product_id).data.custom_fields == {key: "b"}


def test_custom_field_enforce_uniqueness(client: metronome.Metronome) -> None:
    key = uid("uniq")
    client.v1.custom_fields.add_key(entity="customer", key=key, enforce_uniqueness=True)
    client.v1.customers.create(name=uid(), custom_fields={key: "same"})
    with pytest.raises(metronome.BadRequestError, match=key):
        client.v1.customers.create(name=uid(), custom_fields={key: "same"})


# -- products ---------------------------------------------------------------------------------------


def test_product_lifecycle(client: metronome.Metronome) -> None:
    metric_id = make_metric(client, group_keys=[["model", "region"], ["model"]])
    name = uid("product")
    product_id = client.v1.contracts.products.create(
        name=name,
        type="USAGE",
        billable_metric_id=metric_id,
        pricing_group_key=["model"],
        presentation_group_key=["region"],
        quantity_conversion={"conversion_factor": 1_000_000, "operation": "DIVIDE", "name": "per million"},
        tags=["ai"],
    ).data.id
    got = client.v1.contracts.products.retrieve(id=product_id).data
    assert got.type == "USAGE" and got.initial.name == name and got.current.name == name
    assert got.current.quantity_conversion.operation == "DIVIDE" and got.updates == []

    client.v1.contracts.products.update(
        product_id=product_id, starting_at="2026-01-01T00:00:00Z", name=name + "-v2", tags=["ai", "new"]
    )
    got = client.v1.contracts.products.retrieve(id=product_id).data
    assert got.initial.name == name and got.current.name == name + "-v2" and got.current.tags == ["ai", "new"]
    assert got.current.pricing_group_key == ["model"] and len(got.updates) == 1
    assert got.updates[0].name == name + "-v2"

    client.v1.contracts.products.archive(product_id=product_id)
    assert product_id not in {p.id for p in client.v1.contracts.products.list()}
    assert product_id in {p.id for p in client.v1.contracts.products.list(archive_filter="ARCHIVED")}
    assert product_id in {p.id for p in client.v1.contracts.products.list(archive_filter="ALL")}
    assert client.v1.contracts.products.retrieve(id=product_id).data.archived_at is not None
    with pytest.raises(metronome.BadRequestError, match="already archived"):
        client.v1.contracts.products.archive(product_id=product_id)


def test_product_pagination_and_pro_service_alias(client: metronome.Metronome) -> None:
    made = {make_product(client, type="PROFESSIONAL_SERVICE") for _ in range(3)}
    page = client.v1.contracts.products.list(limit=2)
    assert len(page.data) == 2 and page.next_page
    seen = [p for p in client.v1.contracts.products.list(limit=2) if p.id in made]
    assert len(seen) == 3 and {p.type for p in seen} == {"PRO_SERVICE"}


def test_product_validation(client: metronome.Metronome) -> None:
    with pytest.raises(metronome.BadRequestError, match="billable_metric_id"):
        client.v1.contracts.products.create(name=uid(), type="USAGE")
    with pytest.raises(metronome.BadRequestError, match="billable_metric_id"):
        client.v1.contracts.products.create(name=uid(), type="USAGE", billable_metric_id=str(uuid.uuid4()))
    metric_id = make_metric(client, group_keys=[["model", "region"]])
    with pytest.raises(metronome.BadRequestError, match="pricing_group_key"):
        client.v1.contracts.products.create(
            name=uid(), type="USAGE", billable_metric_id=metric_id, pricing_group_key=["model"]
        )
    with pytest.raises(metronome.BadRequestError, match="type"):
        client.v1.contracts.products.create(name=uid(), type="GADGET")  # type: ignore[arg-type]
    product_id = make_product(client)
    with pytest.raises(metronome.BadRequestError, match="starting_at"):
        client.v1.contracts.products.update(
            product_id=product_id, starting_at="2026-01-01T00:30:00Z", name="x"
        )
    with pytest.raises(metronome.BadRequestError, match="type"):
        client.v1.contracts.products.update(
            product_id=product_id, starting_at="2026-01-01T00:00:00Z", extra_body={"type": "USAGE"}
        )
    missing = str(uuid.uuid4())
    with pytest.raises(metronome.NotFoundError, match=missing):
        client.v1.contracts.products.retrieve(id=missing)


# -- rate cards -------------------------------------------------------------------------------------


def test_rate_card_lifecycle(client: metronome.Metronome) -> None:
    unit = client.v1.pricing_units.create(name=uid("gpu-hours")).data.id
    name = uid("card")
    card_id = client.v1.contracts.rate_cards.create(
        name=name,
        description="first",
        aliases=[{"name": uid("alias")}],
        credit_type_conversions=[{"custom_credit_type_id": unit, "fiat_per_custom_credit": 2.5}],
    ).data.id
    got = client.v1.contracts.rate_cards.retrieve(id=card_id).data
    assert got.name == name and got.description == "first" and got.fiat_credit_type.id == USD
    assert got.credit_type_conversions[0].fiat_per_custom_credit == "2.5"
    assert got.credit_type_conversions[0].custom_credit_type.id == unit

    unit2 = client.v1.pricing_units.create(name=uid("tpu-hours")).data.id
    client.v1.contracts.rate_cards.update(
        rate_card_id=card_id,
        name=name + "-v2",
        description="second",
        add_credit_type_conversions=[{"custom_credit_type_id": unit2, "fiat_per_custom_credit": 3}],
    )
    got = client.v1.contracts.rate_cards.retrieve(id=card_id).data
    assert got.name == name + "-v2" and got.description == "second"
    assert [c.fiat_per_custom_credit for c in got.credit_type_conversions] == ["2.5", "3"]
    with pytest.raises(metronome.BadRequestError, match="add_credit_type_conversions"):
        client.v1.contracts.rate_cards.update(
            rate_card_id=card_id,
            add_credit_type_conversions=[{"custom_credit_type_id": unit, "fiat_per_custom_credit": 9}],
        )

    client.v1.contracts.rate_cards.archive(id=card_id)
    assert card_id not in {c.id for c in client.v1.contracts.rate_cards.list()}
    assert client.v1.contracts.rate_cards.retrieve(id=card_id).data.archived_at is not None
    with pytest.raises(metronome.BadRequestError, match="already archived"):
        client.v1.contracts.rate_cards.archive(id=card_id)


def test_rate_card_pagination(client: metronome.Metronome) -> None:
    made = {client.v1.contracts.rate_cards.create(name=uid("card")).data.id for _ in range(3)}
    page = client.v1.contracts.rate_cards.list(limit=2)
    assert len(page.data) == 2 and page.next_page
    assert made <= {c.id for c in client.v1.contracts.rate_cards.list(limit=2)}


def test_rates_add_replace_and_get(client: metronome.Metronome) -> None:
    metric_id = make_metric(client, group_keys=[["model"]])
    usage = client.v1.contracts.products.create(
        name=uid(), type="USAGE", billable_metric_id=metric_id, pricing_group_key=["model"]
    ).data.id
    fixed = make_product(client, tags=["fixed"])
    card_id = client.v1.contracts.rate_cards.create(name=uid("card")).data.id

    echoed = client.v1.contracts.rate_cards.rates.add(
        rate_card_id=card_id,
        product_id=fixed,
        entitled=True,
        rate_type="FLAT",
        price=100,
        starting_at="2026-01-01T00:00:00Z",
    ).data
    assert echoed.rate_type == "FLAT" and echoed.price == 100 and echoed.credit_type.id == USD

    out = client.v1.contracts.rate_cards.rates.add_many(
        rate_card_id=card_id,
        rates=[
            {
                "product_id": usage,
                "entitled": True,
                "rate_type": "FLAT",
                "price": 300,
                "pricing_group_values": {"model": "large"},
                "starting_at": "2026-01-01T00:00:00Z",
            },
            {
                "product_id": usage,
                "entitled": True,
                "rate_type": "TIERED",
                "tiers": [{"size": 1000, "price": 200}, {"price": 150}],
                "pricing_group_values": {"model": "small"},
                "starting_at": "2026-01-01T00:00:00Z",
            },
        ],
    )
    assert out.data.id == card_id

    at = "2026-03-01T00:00:00Z"
    rates = list(client.v1.contracts.rate_cards.rates.list(rate_card_id=card_id, at=at, limit=1))
    assert len(rates) == 3
    large = next(r for r in rates if r.pricing_group_values == {"model": "large"})
    assert large.rate.price == 300 and large.product_id == usage and large.ending_before is None
    small = next(r for r in rates if r.pricing_group_values == {"model": "small"})
    assert [t.price for t in small.rate.tiers] == [200, 150]

    # Same identity again (product, group values, starting_at): replaces the rate, here ending it.
    client.v1.contracts.rate_cards.rates.add_many(
        rate_card_id=card_id,
        rates=[
            {
                "product_id": usage,
                "entitled": True,
                "rate_type": "FLAT",
                "price": 300,
                "pricing_group_values": {"model": "large"},
                "starting_at": "2026-01-01T00:00:00.000Z",
                "ending_before": "2026-02-01T00:00:00Z",
            }
        ],
    )
    rates = list(client.v1.contracts.rate_cards.rates.list(rate_card_id=card_id, at=at))
    assert {r.product_id for r in rates} == {usage, fixed} and len(rates) == 2
    before = list(client.v1.contracts.rate_cards.rates.list(rate_card_id=card_id, at="2026-01-15T00:00:00Z"))
    assert len(before) == 3
    ended = next(r for r in before if r.pricing_group_values == {"model": "large"})
    assert ended.ending_before is not None

    selected = list(
        client.v1.contracts.rate_cards.rates.list(
            rate_card_id=card_id, at=at, selectors=[{"product_tags": ["fixed"]}]
        )
    )
    assert [r.product_id for r in selected] == [fixed]
    schedule = client.v1.contracts.rate_cards.retrieve_rate_schedule(
        rate_card_id=card_id, starting_at="2026-01-01T00:00:00Z"
    )
    assert len(schedule.data) == 3


def test_rate_schedule_selectors_as_documented(client: metronome.Metronome) -> None:
    """getRateSchedule selectors (rate_card_retrieve_rate_schedule_params): a rate matching ANY selector
    is returned; pricing_group_values matches exactly, partial_pricing_group_values by containment;
    billing_frequency; a window [starting_at, ending_before); no product_tags (getRates has them)."""
    metric_id = make_metric(client, group_keys=[["model", "region"]])
    usage = client.v1.contracts.products.create(
        name=uid(), type="USAGE", billable_metric_id=metric_id, pricing_group_key=["model", "region"]
    ).data.id
    subscription = make_product(client, type="SUBSCRIPTION", tags=["fees"])
    card_id = client.v1.contracts.rate_cards.create(name=uid("card")).data.id
    start = "2026-01-01T00:00:00Z"

    def usage_rate(model: str, region: str, **extra) -> dict:
        pgv = {"model": model, "region": region}
        base = {"product_id": usage, "entitled": True, "starting_at": start, "rate_type": "FLAT", "price": 1}
        return base | {"pricing_group_values": pgv} | extra

    client.v1.contracts.rate_cards.rates.add_many(
        rate_card_id=card_id,
        rates=[
            usage_rate("a", "us", ending_before="2026-06-01T00:00:00Z"),
            usage_rate("a", "us", starting_at="2026-06-01T00:00:00Z", price=2),
            usage_rate("a", "eu"),
            usage_rate("b", "us"),
            {
                "product_id": subscription,
                "entitled": True,
                "starting_at": start,
                "rate_type": "FLAT",
                "price": 100,
                "billing_frequency": "ANNUAL",
            },
        ],
    )

    def select(*selectors: dict, **window) -> list[tuple]:
        rows = client.v1.contracts.rate_cards.retrieve_rate_schedule(
            rate_card_id=card_id,
            starting_at=window.pop("starting_at", start),
            selectors=list(selectors),
            **window,
        ).data
        return sorted(
            (r.product_id == usage, tuple(sorted((r.pricing_group_values or {}).items())), r.rate.price)
            for r in rows
        )

    a_us = (True, (("model", "a"), ("region", "us")))
    assert select({"product_id": usage, "pricing_group_values": {"model": "a", "region": "us"}}) == [
        (*a_us, 1.0),
        (*a_us, 2.0),
    ]
    assert select({"pricing_group_values": {"model": "a"}}) == []  # exact, not containment
    assert len(select({"partial_pricing_group_values": {"model": "a"}})) == 3
    assert len(select({"partial_pricing_group_values": {"model": "b"}}, {"billing_frequency": "ANNUAL"})) == 2
    assert select({"product_id": subscription}) == [(False, (), 100.0)]
    assert len(select()) == 5  # no selectors: every rate
    # The window: segments overlapping [starting_at, ending_before).
    assert [p for *_, p in select({"product_id": usage}, ending_before="2026-06-01T00:00:00Z")] == [1, 1, 1]
    assert sorted(p for *_, p in select({"product_id": usage}, starting_at="2026-07-01T00:00:00Z")) == [
        1,
        1,
        2,
    ]
    # getRateSchedule selectors take no product_tags (getRates selectors do); limit is 1 to 100.
    with pytest.raises(metronome.BadRequestError, match="product_tags"):
        select({"product_tags": ["fees"]})
    tagged = client.v1.contracts.rate_cards.rates.list(
        rate_card_id=card_id, at="2026-02-01T00:00:00Z", selectors=[{"product_tags": ["fees"]}]
    )
    assert [r.product_id for r in tagged] == [subscription]
    with pytest.raises(metronome.BadRequestError, match="limit"):
        client.v1.contracts.rate_cards.retrieve_rate_schedule(
            rate_card_id=card_id, starting_at=start, limit=101
        )
    assert (
        len(
            client.v1.contracts.rate_cards.retrieve_rate_schedule(
                rate_card_id=card_id, starting_at=start, limit=100
            ).data
        )
        == 5
    )


@pytest.mark.parametrize(
    ("rate", "field"),
    [
        ({"rate_type": "FLAT", "price": -1}, "price"),
        ({"rate_type": "FLAT"}, "price"),
        ({"rate_type": "TIERED"}, "tiers"),
        ({"rate_type": "PERCENTAGE", "price": 1.5}, "price"),
        ({"rate_type": "BOGUS", "price": 1}, "rate_type"),
        ({"rate_type": "FLAT", "price": 1, "ending_before": "2025-01-01T00:00:00Z"}, "ending_before"),
        # The last tier is open-ended: usage above a sized last tier would have no price.
        (
            {"rate_type": "TIERED", "tiers": [{"size": 10, "price": 2}, {"size": 20, "price": 1}]},
            "tiers[1].size",
        ),
        ({"rate_type": "TIERED", "tiers": [{"size": 10, "price": 2}, {"price": -1}]}, "tiers[1].price"),
        # is_prorated: "Only valid for SUBSCRIPTION rate_type. Must be set to true." (rate_add_many_params)
        ({"rate_type": "SUBSCRIPTION", "price": 1, "quantity": 1, "is_prorated": False}, "is_prorated"),
        ({"rate_type": "SUBSCRIPTION", "price": 1, "quantity": -1}, "quantity"),
    ],
)
def test_rate_validation(client: metronome.Metronome, rate: dict, field: str) -> None:
    product_id = make_product(client)
    card_id = client.v1.contracts.rate_cards.create(name=uid("card")).data.id
    body = {"product_id": product_id, "entitled": True, "starting_at": "2026-01-01T00:00:00Z"} | rate
    with pytest.raises(metronome.BadRequestError) as err:
        client.v1.contracts.rate_cards.rates.add_many(rate_card_id=card_id, rates=[body])
    assert field in err.value.body["message"]


def test_flat_rate_on_a_subscription_product_needs_billing_frequency(client: metronome.Metronome) -> None:
    """billing_frequency: "Required for subscription type products with Flat rate" (rate_add_many_params)."""
    subscription = make_product(client, type="SUBSCRIPTION")
    card_id = client.v1.contracts.rate_cards.create(name=uid("card")).data.id
    rate = {"product_id": subscription, "entitled": True, "starting_at": "2026-01-01T00:00:00Z"}
    fee = {**rate, "rate_type": "FLAT", "price": 10000}
    with pytest.raises(metronome.BadRequestError) as err:
        client.v1.contracts.rate_cards.rates.add_many(rate_card_id=card_id, rates=[fee])
    assert "rates[0].billing_frequency" in err.value.body["message"]
    client.v1.contracts.rate_cards.rates.add_many(
        rate_card_id=card_id, rates=[{**fee, "billing_frequency": "MONTHLY"}]
    )
    fixed = make_product(client)  # another type of product: no billing frequency needed
    client.v1.contracts.rate_cards.rates.add_many(rate_card_id=card_id, rates=[{**fee, "product_id": fixed}])


def test_rate_for_unknown_or_archived_product(client: metronome.Metronome) -> None:
    card_id = client.v1.contracts.rate_cards.create(name=uid("card")).data.id
    archived = make_product(client)
    client.v1.contracts.products.archive(product_id=archived)
    for product_id in (str(uuid.uuid4()), archived):
        with pytest.raises(metronome.BadRequestError, match="product_id"):
            client.v1.contracts.rate_cards.rates.add(
                rate_card_id=card_id,
                product_id=product_id,
                entitled=True,
                rate_type="FLAT",
                price=1,
                starting_at="2026-01-01T00:00:00Z",
            )
    with pytest.raises(metronome.BadRequestError, match="at"):
        client.v1.contracts.rate_cards.rates.list(rate_card_id=card_id, at="not-a-time")


# -- credit types -----------------------------------------------------------------------------------


def test_credit_types(client: metronome.Metronome) -> None:
    units = list(client.v1.pricing_units.list())
    usd = next(u for u in units if u.id == USD)
    assert usd.name == "USD (cents)" and usd.is_currency is True
    made = [client.v1.pricing_units.create(name=uid("unit")).data.id for _ in range(3)]
    page = client.v1.pricing_units.list(limit=2)
    assert len(page.data) == 2 and page.next_page
    listed = {u.id: u for u in client.v1.pricing_units.list(limit=2)}
    assert set(made) <= set(listed) and listed[made[0]].is_currency is False
    client.v1.pricing_units.archive(id=made[0])
    assert made[0] not in {u.id for u in client.v1.pricing_units.list()}
    with pytest.raises(metronome.BadRequestError, match="credit_type_id"):
        client.v1.contracts.rate_cards.create(
            name=uid(),
            credit_type_conversions=[
                {"custom_credit_type_id": str(uuid.uuid4()), "fiat_per_custom_credit": 1}
            ],
        )
