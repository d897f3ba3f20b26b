"""What everyday work costs in API calls (issue 13, items 1 and 4): counts, never times.

- Adding one object to an account that already holds many of its kind costs what one create costs:
  one call, nothing grows with the account. (The first `up` on a new account pays once per entity for
  the `iac_identity` custom field key: a refused create, its registration, the create again.)
- Creating many objects costs one call each.
- A preview with nothing changed makes no calls: a product's metric is looked up only when the
  product's metric or keys change.

benchmarks/create_costs.py prints the same figures at scale (an account of 3,000 objects per kind).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mini_engine import engine_for, make_stack_dir
from provider_host import ProviderHost, unique

from metronome_iac.catalog import load_stack
from providers.billable_metric import BillableMetricProvider as M
from providers.contract import ContractProvider as K
from providers.customer import CustomerProvider as C
from providers.exactly_once import IDENTITY_FIELD
from providers.product import ProductProvider as P
from providers.rate_card import RateCardProvider as R

ACCOUNT = 250  # objects of each kind already in the account: three listing pages each
TAGGED_ENTITIES = ("billable_metric", "contract_product", "rate_card", "customer")


def calls(emulator: Any) -> int:
    return int(emulator.admin("GET", "stats").json()["total"])


def managed_before(emulator: Any) -> None:
    """The account has had an `up` before: the `iac_identity` key is on each tagged entity's allow list."""
    keys = emulator.client().v1.custom_fields
    for entity in TAGGED_ENTITIES:
        keys.add_key(entity=entity, key=IDENTITY_FIELD, enforce_uniqueness=False)


def test_adding_one_object_to_a_full_account_costs_one_create_whatever_its_size(fresh_emulator) -> None:
    emulator = fresh_emulator
    customer_id = emulator.fill(ACCOUNT, unique("hand"))[0]
    managed_before(emulator)
    card_id = emulator.client().v1.contracts.rate_cards.create(name=unique("card")).data.id
    name = unique("new")
    news = [
        (M, {"identity": f"p/s/{name}-m", "name": f"{name}-m", "aggregation_type": "COUNT"}),
        (P, {"identity": f"p/s/{name}-p", "name": f"{name}-p", "type": "FIXED"}),
        (R, {"identity": f"p/s/{name}-r", "name": f"{name}-r"}),
        (C, {"identity": f"p/s/{name}-c", "name": f"{name}-c", "ingest_aliases": [f"{name}-c"]}),
        (
            K,
            {
                "identity": f"p/s/{name}-k",
                "customer_id": customer_id,
                "rate_card_id": card_id,
                "starting_at": "2026-01-01T00:00:00Z",
            },
        ),
    ]
    with ProviderHost(emulator.base_url, emulator.token) as host:
        for provider, one in news:
            inputs = host.check_ok(provider, one)
            before = calls(emulator)
            host.create(provider, inputs)
            cost = calls(emulator) - before
            assert cost == 1, (provider.kind, cost, emulator.admin("GET", "stats").json()["by_route"])


def test_many_creates_cost_one_call_each(fresh_emulator) -> None:
    emulator = fresh_emulator
    managed_before(emulator)
    run = unique("bulk")
    with ProviderHost(emulator.base_url, emulator.token) as host, ThreadPoolExecutor(8) as pool:
        metrics = [
            {"identity": f"p/s/{run}-{i}", "name": f"{run}-{i}", "aggregation_type": "COUNT"}
            for i in range(100)
        ]
        checked = [host.check_ok(M, news) for news in metrics]
        before = calls(emulator)
        list(pool.map(lambda inputs: host.create(M, inputs), checked))
        assert calls(emulator) - before == 100


def test_a_preview_with_nothing_changed_makes_no_calls(fresh_emulator, tmp_path: Path) -> None:
    emulator = fresh_emulator
    stack_dir = make_stack_dir(tmp_path)
    engine = engine_for(emulator, stack_dir.name)
    stack = load_stack(stack_dir)
    engine.up(stack)
    before = calls(emulator)
    steps = engine.plan(stack)
    assert {s.op for s in steps} == {"same"}, steps
    assert calls(emulator) - before == 0, emulator.admin("GET", "stats").json()["by_route"]


def test_parallel_checks_of_products_on_one_metric_look_it_up_once(emulator) -> None:
    """The host checks 4 resources at a time; products of one metric share one look-up (issue 13 item
    4), however slow the answer."""
    from fault_proxy import DELAY, FaultProxy, Rule

    client = emulator.client()
    metric_id = client.v1.billable_metrics.create(
        name=unique("shared"),
        aggregation_type="COUNT",
        property_filters=[{"name": "model", "exists": True}],
        group_keys=[["model"]],
    ).data.id
    name = unique("on-shared")
    products = [
        {
            "identity": f"p/s/{name}-{i}",
            "name": f"{name}-{i}",
            "type": "USAGE",
            "billable_metric_id": metric_id,
            "pricing_group_key": ["model"],
        }
        for i in range(8)
    ]
    with FaultProxy(emulator.base_url) as proxy:
        slow = proxy.add(
            Rule("GET", f"/v1/billable-metrics/{metric_id}", fault=DELAY, delay_s=0.3, times=None)
        )
        with ProviderHost(proxy.base_url, emulator.token) as host, ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda news: host.check_ok(P, news), products))
    assert slow.matched == 1


def test_a_product_on_a_metric_this_host_created_is_checked_without_a_look_up(fresh_emulator) -> None:
    """A metric's group keys never change: a product's Check after its metric's create in the same host
    (the engine's order in an `up`) knows them, and makes no call."""
    emulator = fresh_emulator
    name = unique("known-keys")
    metric = {
        "identity": f"p/s/{name}-m",
        "name": f"{name}-m",
        "aggregation_type": "COUNT",
        "property_filters": [{"name": "model", "exists": True}],
        "group_keys": [["model"]],
    }
    with ProviderHost(emulator.base_url, emulator.token) as host:
        metric_id, _ = host.create(M, host.check_ok(M, metric))
        product = {"identity": f"p/s/{name}-p", "name": f"{name}-p", "type": "USAGE"}
        before = calls(emulator)
        host.check_ok(P, {**product, "billable_metric_id": metric_id, "pricing_group_key": ["model"]})
        _, failures = host.check(
            P, {}, {**product, "billable_metric_id": metric_id, "pricing_group_key": ["x"]}
        )
        assert calls(emulator) == before, emulator.admin("GET", "stats").json()["by_route"]
    assert "pricing_group_key" in dict(failures)  # the keys known are the metric's: still checked
