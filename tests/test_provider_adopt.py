"""adopt: take over live objects by id or natural key; creates nothing, reports differences."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provider_host import ProviderError, ProviderHost, unique

from providers.billable_metric import BillableMetricProvider as M
from providers.contract import ContractProvider as K
from providers.customer import CustomerProvider as C
from providers.product import ProductProvider as P
from providers.rate_card import RateCardProvider as R


@pytest.fixture(scope="module")
def host(emulator) -> Iterator[ProviderHost]:
    with ProviderHost(emulator.base_url, emulator.token) as h:
        yield h


def creates(emulator) -> int:
    routes = emulator.admin("GET", "stats").json()["by_route"]
    return sum(v for k, v in routes.items() if k.endswith("/create") or k == "POST /v1/customers")


def test_adopt_metric_by_name_and_by_id(host, emulator):
    client = emulator.client()
    name = unique("legacy-metric")
    tokens_filter = [{"name": "tokens", "exists": True}]
    metric_id = client.v1.billable_metrics.create(
        name=name, aggregation_type="SUM", aggregation_key="tokens", property_filters=tokens_filter
    ).data.id
    desired = {
        "identity": f"t/s/{name}",
        "name": name,
        "aggregation_type": "SUM",
        "aggregation_key": "tokens",
        "property_filters": tokens_filter,
    }

    before = creates(emulator)
    object_id, _, outs = host.create_checked(M, {**desired, "adopt": {"name": name}})
    assert object_id == metric_id and outs["adopt_report"] == []
    assert client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data.custom_fields[
        "iac_identity"
    ]

    # By id, with a different (mutable) name: taken over, live values out, the rename shows next.
    renamed = {**desired, "name": name + "-new", "adopt": {"id": metric_id}}
    object_id, inputs, outs = host.create_checked(M, renamed)
    assert object_id == metric_id and outs["name"] == name
    assert outs["adopt_report"] == [f'name: desired "{name}-new", live "{name}"']
    d = host.diff(M, object_id, outs, inputs)
    assert d.changes == "SOME" and d.replaces == []
    assert creates(emulator) == before  # nothing created

    # An immutable difference fails, listing every differing field.
    with pytest.raises(ProviderError) as err:
        chars = [*tokens_filter, {"name": "chars", "exists": True}]
        host.create_checked(M, {**renamed, "aggregation_key": "chars", "property_filters": chars})
    assert "aggregation_key" in str(err.value) and "name" in str(err.value)

    with pytest.raises(ProviderError) as err:
        host.create_checked(M, {**desired, "adopt": {"name": "no-such-metric-" + name}})
    assert "nothing live to adopt" in str(err.value)


def test_adopt_product_and_rate_card_by_name(host, emulator):
    client = emulator.client()
    pname, cname = unique("legacy-product"), unique("legacy-card")
    product_id = client.v1.contracts.products.create(name=pname, type="FIXED", tags=["x"]).data.id
    card_id = client.v1.contracts.rate_cards.create(name=cname, description="old").data.id
    before = creates(emulator)
    pid, pin, pout = host.create_checked(
        P,
        {"identity": f"t/s/{pname}", "name": pname, "type": "FIXED", "tags": ["y"], "adopt": {"name": pname}},
    )
    assert (
        pid == product_id
        and pout["tags"] == ["x"]
        and pout["adopt_report"] == ['tags: desired ["y"], live ["x"]']
    )
    assert host.diff(P, pid, pout, pin).replaces == []
    cid, cin, cout = host.create_checked(
        R, {"identity": f"t/s/{cname}", "name": cname, "description": "new", "adopt": {"name": cname}}
    )
    assert cid == card_id and cout["description"] == "old" and len(cout["adopt_report"]) == 1
    outs = host.update(R, cid, cout, cin)
    assert client.v1.contracts.rate_cards.retrieve(id=card_id).data.description == "new"
    assert creates(emulator) == before
    with pytest.raises(ProviderError) as err:
        host.create_checked(
            P,
            {"identity": f"t/s/{pname}", "name": pname, "type": "SUBSCRIPTION", "adopt": {"id": product_id}},
        )
    assert "type" in str(err.value)
    del outs


def test_adopt_customer_by_ingest_alias(host, emulator):
    client = emulator.client()
    name = unique("legacy-customer")
    customer_id = client.v1.customers.create(name=name, ingest_aliases=[name + "-prod"]).data.id
    before = creates(emulator)
    object_id, inputs, outs = host.create_checked(
        C,
        {
            "identity": f"t/s/{name}",
            "name": name + " Inc",
            "ingest_aliases": [name + "-prod"],
            "adopt": {"ingest_alias": name + "-prod"},
        },
    )
    assert object_id == customer_id and outs["name"] == name
    assert outs["adopt_report"] == [f'name: desired "{name} Inc", live "{name}"']
    assert creates(emulator) == before
    outs = host.update(C, object_id, outs, inputs)
    assert client.v1.customers.retrieve(customer_id=customer_id).data.name == name + " Inc"


def test_adopt_contract_by_uniqueness_key_and_id(host, emulator):
    client = emulator.client()
    name = unique("legacy-contract")
    customer_id = client.v1.customers.create(name=name).data.id
    contract_id = client.v1.contracts.create(
        customer_id=customer_id, starting_at="2026-01-01T00:00:00Z", name=name, uniqueness_key=name
    ).data.id
    desired = {
        "identity": f"t/s/{name}",
        "customer_id": customer_id,
        "starting_at": "2026-01-01T00:00:00Z",
        "name": name + "-v2",
    }
    before = creates(emulator)
    object_id, inputs, outs = host.create_checked(K, {**desired, "adopt": {"uniqueness_key": name}})
    assert object_id == contract_id and outs["name"] == name and len(outs["adopt_report"]) == 1
    assert outs["uniqueness_key"] == name
    d = host.diff(K, object_id, outs, inputs)
    assert d.changes == "SOME" and d.replaces == []
    object_id, _, _ = host.create_checked(K, {**desired, "name": name, "adopt": {"id": contract_id}})
    assert object_id == contract_id
    assert creates(emulator) == before


def test_adopting_an_object_another_resource_manages_says_so(host, emulator):
    """Taking over an object tagged by another stack (or resource) is allowed (moving management), but
    said: that stack will see it as drift, and removing it there would archive it."""
    name = unique("owned-metric")
    metric = {"name": name, "aggregation_type": "COUNT"}
    object_id, _, _ = host.create_checked(M, {"identity": f"proj/stack-x/{name}", **metric})
    adopted_id, _, outs = host.create_checked(
        M, {"identity": f"proj/stack-y/{name}", **metric, "adopt": {"name": name}}
    )
    assert adopted_id == object_id
    (line,) = outs["adopt_report"]
    assert f"proj/stack-x/{name}" in line and "pulumi state delete" in line, line
    # Adopting what this very resource already manages (state lost) says nothing.
    _, _, again = host.create_checked(
        M, {"identity": f"proj/stack-y/{name}", **metric, "adopt": {"id": object_id}}
    )
    assert again["adopt_report"] == []


def test_adopt_by_name_reads_again_what_a_cached_listing_shows_twice(emulator):
    """The host lists a kind once for adopt by name; an object archived since must not make a name look
    taken twice."""
    client = emulator.client()
    name = unique("twice-metric")
    first = client.v1.billable_metrics.create(name=name, aggregation_type="COUNT").data.id
    second = client.v1.billable_metrics.create(name=name, aggregation_type="COUNT").data.id
    desired = {"identity": f"t/s/{name}", "name": name, "aggregation_type": "COUNT", "adopt": {"name": name}}
    with ProviderHost(emulator.base_url, emulator.token) as host:
        with pytest.raises(ProviderError, match="several live objects"):
            host.create_checked(M, desired)
        client.v1.billable_metrics.archive(id=second)
        object_id, _, _ = host.create_checked(M, desired)
    assert object_id == first
