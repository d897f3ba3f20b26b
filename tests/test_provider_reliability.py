"""Creates and reads under the engine's parallelism, bad answers and retries (issue 11, 1-3).

The provider host (`python -m pulumi.dynamic`, driven over gRPC) talks to the emulator through a fault
proxy on 127.0.0.1 (tests/fault_proxy.py) that delays, drops, mangles and reorders answers; ordering
comes from the proxy's events, never from sleeps. Live objects are counted by name through the
official SDK, straight from the emulator: every declared object exactly once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fault_proxy import (
    EMPTY_BODY,
    HTML,
    NOT_JSON,
    PROCESSED_500,
    REFUSED_400,
    UNPROCESSED_500,
    FaultProxy,
    Rule,
)
from provider_host import ProviderError, ProviderHost, unique

from providers.alert import AlertProvider as A
from providers.billable_metric import BillableMetricProvider as M
from providers.contract import ContractProvider as K
from providers.customer import CustomerProvider as C
from providers.exactly_once import IDENTITY_FIELD
from providers.notification import NotificationProvider as N
from providers.package import PackageProvider as PK
from providers.product import ProductProvider as P
from providers.rate_card import RateCardProvider as R

START = "2026-01-01T00:00:00Z"


def metric(name: str) -> dict[str, Any]:
    return {"identity": f"p/s/{name}", "name": name, "aggregation_type": "COUNT"}


def product(name: str) -> dict[str, Any]:
    return {"identity": f"p/s/{name}", "name": name, "type": "FIXED"}


def rate_card(name: str, product_ids: tuple[str, ...] = ()) -> dict[str, Any]:
    rates = [
        {"product_id": p, "starting_at": START, "rate_type": "FLAT", "price": 100 + i}
        for i, p in enumerate(product_ids)
    ]
    return {"identity": f"p/s/{name}", "name": name, **({"rates": rates} if rates else {})}


def customer(name: str) -> dict[str, Any]:
    return {"identity": f"p/s/{name}", "name": name, "ingest_aliases": [f"{name}-alias"]}


def contract(name: str, customer_id: str, card_id: str) -> dict[str, Any]:
    return {
        "identity": f"p/s/{name}",
        "name": name,
        "customer_id": customer_id,
        "rate_card_id": card_id,
        "starting_at": START,
    }


# kind: (provider, inputs for a name, create path, the look-up after an ambiguous create)
KINDS: dict[str, tuple[Any, Callable[[str], dict[str, Any]], str, tuple[str, str]]] = {
    "metric": (M, metric, "/v1/billable-metrics/create", ("GET", "/v1/billable-metrics")),
    "product": (
        P,
        product,
        "/v1/contract-pricing/products/create",
        ("POST", "/v1/contract-pricing/products/list"),
    ),
    "rate_card": (
        R,
        rate_card,
        "/v1/contract-pricing/rate-cards/create",
        ("POST", "/v1/contract-pricing/rate-cards/list"),
    ),
    "customer": (C, customer, "/v1/customers", ("GET", "/v1/customers")),
}


def named(name: str) -> dict[str, Any]:
    return {"identity": f"p/s/{name}", "name": name}


def package(name: str) -> dict[str, Any]:
    return {**named(name), "aliases": [{"name": name}]}


def alert(name: str) -> dict[str, Any]:
    return {
        "identity": f"p/s/{name}",
        "name": name,
        "alert_type": "spend_threshold_reached",
        "threshold": 500,
    }


def notification(name: str) -> dict[str, Any]:
    return {
        "identity": f"p/s/{name}",
        "name": name,
        "policy": {"type": "commit.segment.end", "offset": "-P7D"},
    }


# kind: (provider, inputs for a name): the kinds identified by a uniqueness key
KEYED_KINDS: dict[str, tuple[Any, Callable[[str], dict[str, Any]]]] = {
    "package": (PK, package),
    "alert": (A, alert),
    "notification": (N, notification),
}


def keyed_live_names(client: Any, watcher: str | None = None) -> Counter:
    """Names of every live package, notification and alert, counted, read with the official SDK (all
    pages); alerts through `watcher`, a customer (account-wide alerts show through every customer)."""
    names: Counter = Counter()
    names.update(p.name for p in client.v1.packages.list())
    names.update(n.name for n in client.v2.notifications.offset.list())
    if watcher is None:
        return names
    names.update(
        a.alert.name
        for a in client.v1.customers.alerts.list(customer_id=watcher)
        if a.alert.status.lower() != "archived"
    )
    return names


def live_names(client: Any, customer_ids: list[str] = ()) -> Counter:
    """Names of every live object, counted, read with the official SDK (all pages)."""
    names: Counter = Counter()
    names.update(m.name for m in client.v1.billable_metrics.list() if not m.archived_at)
    names.update(p.current.name for p in client.v1.contracts.products.list() if not p.archived_at)
    names.update(c.name for c in client.v1.contracts.rate_cards.list() if not getattr(c, "archived_at", None))
    names.update(c.name for c in client.v1.customers.list())
    for customer_id in customer_ids:
        names.update(
            c.name for c in client.v2.contracts.list(customer_id=customer_id).data if not c.archived_at
        )
    return names


@pytest.fixture
def proxy(emulator) -> Iterator[FaultProxy]:
    with FaultProxy(emulator.base_url) as p:
        yield p


def create(host: ProviderHost, provider: Any, news: dict[str, Any]) -> str:
    object_id, _ = host.create(provider, host.check_ok(provider, news))
    return object_id


def kill_mid_create(proxy: FaultProxy, emulator: Any, provider: Any, news: dict[str, Any], path: str) -> dict:
    """A provider host killed once the API has made `news` (the proxy holds its answer back): the object
    exists and no state records it. Returns the checked inputs, for the next host's create."""
    never = threading.Event()
    orphan = proxy.add(Rule("POST", path, body_has=news["name"], hold_response=never))
    host = ProviderHost(proxy.base_url, emulator.token)
    inputs = host.check_ok(provider, news)
    threading.Thread(
        target=pytest.raises, args=(ProviderError, host.create, provider, inputs), daemon=True
    ).start()
    assert orphan.forwarded.wait(10), "the create never reached the emulator"
    host.close()
    never.set()
    return inputs


# The keyed kinds whose look-up is a listing (an alert's is its 409, which names the holder).
LISTED_KEYED_KINDS: dict[str, tuple[Any, Callable[[str], dict[str, Any]], str, tuple[str, str]]] = {
    "package": (PK, package, PK.create_path, ("POST", "/v1/packages/list")),
    "notification": (N, notification, N.create_path, ("POST", "/v2/notifications/offset/list")),
}


@pytest.mark.parametrize("kind", sorted(KINDS) + sorted(LISTED_KEYED_KINDS))
def test_a_create_answered_500_after_another_threads_look_up_still_finds_its_object(kind, emulator, proxy):
    """The race of issue 11: B's create is slow, processed, then answered 500; meanwhile A's create
    fails unprocessed and A looks the kind up, a listing taken before B's object exists but answered
    after B's POST. B must look for itself after its own answer, and so find its object."""
    provider, news, create_path, (list_method, list_path) = {**KINDS, **LISTED_KEYED_KINDS}[kind]
    run = unique(f"race-{kind}")
    a_name, b_name = f"{run}-alpha", f"{run}-bravo"
    look_up = Rule(list_method, list_path)
    b_post = proxy.add(
        Rule("POST", create_path, body_has=b_name, fault=PROCESSED_500, hold_request=look_up.forwarded)
    )
    a_post = proxy.add(
        Rule("POST", create_path, body_has=a_name, fault=UNPROCESSED_500, hold_request=b_post.arrived)
    )
    look_up.after, look_up.hold_response = a_post.answered, b_post.answered
    proxy.add(look_up)

    with ProviderHost(proxy.base_url, emulator.token) as host, ThreadPoolExecutor(2) as pool:
        ids = list(pool.map(lambda name: create(host, provider, news(name)), [a_name, b_name]))

    assert a_post.matched == b_post.matched == look_up.matched == 1, "the race did not happen as staged"
    names = live_names(emulator.client()) + keyed_live_names(emulator.client())
    assert (names[a_name], names[b_name]) == (1, 1), {n: names[n] for n in (a_name, b_name)}
    assert len(set(ids)) == 2


def test_an_orphan_of_a_killed_host_is_found_not_duplicated_and_a_bad_listing_is_no_absence(emulator, proxy):
    """A host killed mid-create leaves an orphan; the next host's create of the same resource must take
    it over. While the look-up listing answers 200 `{}`, that is an error naming the resource and the
    call, never "not there" (which would make a duplicate)."""
    name = unique("orphan-metric")
    inputs = kill_mid_create(proxy, emulator, M, metric(name), "/v1/billable-metrics/create")
    assert live_names(emulator.client())[name] == 1
    assert live_names(emulator.client())[name] == 1

    bad_listing = proxy.add(Rule("GET", "/v1/billable-metrics", fault=EMPTY_BODY, times=None))
    with ProviderHost(proxy.base_url, emulator.token) as host:
        with pytest.raises(ProviderError) as err:
            host.create(M, inputs)
        message = str(err.value)
        assert f"BillableMetric '{name}'" in message and "GET /v1/billable-metrics" in message, message
        assert live_names(emulator.client())[name] == 1  # nothing created on a listing it could not read

        bad_listing.times = 0
        object_id, outs = host.create(M, inputs)
    assert live_names(emulator.client())[name] == 1
    (live,) = [m for m in emulator.client().v1.billable_metrics.list() if m.name == name]
    assert object_id == live.id and outs["name"] == name


@pytest.mark.parametrize("kind", ["customer", "contract", *KEYED_KINDS])
def test_an_orphan_with_an_alias_or_uniqueness_key_is_found_after_the_idempotency_window(
    kind, fresh_emulator
):
    """Past the API's Idempotency-Key window (>= 24 h; here 0 s) a killed host's metric, product or rate
    card would be made again (docs/architecture.md says so); a customer with an ingest alias and a
    contract, package, alert or notification would not: the alias or the uniqueness key answers 409 for
    good, and the look-up finds it."""
    emulator = fresh_emulator
    emulator.admin("POST", "config", json={"idempotency_ttl_s": 0})
    name = unique(f"orphan-{kind}")
    with ProviderHost(emulator.base_url, emulator.token) as host:
        customer_id = create(host, C, customer(f"{name}-owner"))
        card_id = create(host, R, rate_card(f"{name}-card"))
    if kind in KEYED_KINDS:
        provider, news = KEYED_KINDS[kind][0], KEYED_KINDS[kind][1](name)
        path = provider.create_path

        def count() -> int:
            return keyed_live_names(emulator.client(), customer_id)[name]
    else:
        provider, news = (
            (C, customer(name)) if kind == "customer" else (K, contract(name, customer_id, card_id))
        )
        path = "/v1/customers" if kind == "customer" else "/v1/contracts/create"

        def count() -> int:
            return live_names(emulator.client(), [customer_id])[name]

    with FaultProxy(emulator.base_url) as proxy:
        inputs = kill_mid_create(proxy, emulator, provider, news, path)
    assert count() == 1
    with ProviderHost(emulator.base_url, emulator.token) as host:
        host.create(provider, inputs)
    assert count() == 1


@pytest.mark.parametrize("fault", [EMPTY_BODY, NOT_JSON, HTML, REFUSED_400])
def test_a_read_that_gets_a_bad_answer_fails_and_never_says_gone(fault, emulator, proxy):
    name = unique("read-metric")
    with ProviderHost(proxy.base_url, emulator.token) as host:
        object_id, outs = host.create(M, host.check_ok(M, metric(name)))
        bad = proxy.add(Rule("GET", f"/v1/billable-metrics/{object_id}", fault=fault, times=None))
        with pytest.raises(ProviderError) as err:
            host.read(M, object_id, outs)
        message = str(err.value)
        assert f"BillableMetric '{name}'" in message and f"/v1/billable-metrics/{object_id}" in message, (
            message
        )

        # What the API says is gone is gone: archived (then a 404 for an unknown id).
        bad.times = 0
        emulator.client().v1.billable_metrics.archive(id=object_id)
        assert host.read(M, object_id, outs)[0] == ""


def test_a_rate_card_read_whose_schedule_page_is_bad_fails_and_never_drops_the_rates(emulator, proxy):
    name = unique("read-card")
    with ProviderHost(proxy.base_url, emulator.token) as host:
        product_id = create(host, P, product(f"{name}-p"))
        card_id, outs = host.create(R, host.check_ok(R, rate_card(name, (product_id,))))
        path = "/v1/contract-pricing/rate-cards/getRateSchedule"
        bad = proxy.add(Rule("POST", path, fault=EMPTY_BODY, times=None))
        with pytest.raises(ProviderError) as err:
            host.read(R, card_id, outs)
        assert "getRateSchedule" in str(err.value) and f"RateCard '{name}'" in str(err.value), str(err.value)
        bad.times = 0
        assert len(host.read(R, card_id, outs)[1]["rates"]) == 1


PER_KIND = 16


def create_each(
    host: ProviderHost, provider: Any, many: list[dict[str, Any]], errors: list[str]
) -> list[str]:
    """The engine's pattern: PER_KIND creates at once (the host serves 4 at a time). A create that still
    fails is run again, as a user re-runs `up`; its error is noted. Returns the ids, in order."""
    ids: dict[int, str] = {}

    def attempt(news: dict[str, Any]) -> str | Exception:
        try:
            inputs, failures = host.check(provider, {}, news)
            assert not failures, failures
            return host.create(provider, inputs)[0]
        except ProviderError as err:
            return err

    for _round in range(4):
        todo = [i for i in range(len(many)) if i not in ids]
        if not todo:
            break
        with ThreadPoolExecutor(PER_KIND) as pool:
            outcomes = list(pool.map(lambda i: attempt(many[i]), todo))
        for i, outcome in zip(todo, outcomes, strict=True):
            if isinstance(outcome, str):
                ids[i] = outcome
            else:
                errors.append(str(outcome))
    assert len(ids) == len(many), errors
    return [ids[i] for i in range(len(many))]


def test_sixteen_parallel_creates_per_kind_under_thirty_percent_faults_make_each_object_once(
    fresh_emulator,
):
    """Every request through the proxy at 30% faults of every sort. In the end each declared object is
    live exactly once."""
    emulator = fresh_emulator
    run = unique("par")
    errors: list[str] = []
    with FaultProxy(emulator.base_url) as proxy, ProviderHost(proxy.base_url, emulator.token) as host:
        proxy.random_faults(0.3, seed=11)
        create_each(host, M, [metric(f"{run}-m{i}") for i in range(PER_KIND)], errors)
        products = create_each(host, P, [product(f"{run}-p{i}") for i in range(PER_KIND)], errors)
        cards = create_each(
            host, R, [rate_card(f"{run}-r{i}", (products[i],)) for i in range(PER_KIND)], errors
        )
        customers = create_each(host, C, [customer(f"{run}-c{i}") for i in range(PER_KIND)], errors)
        create_each(
            host, K, [contract(f"{run}-k{i}", customers[i], cards[i]) for i in range(PER_KIND)], errors
        )
        injected = Counter(fault for _, _, fault in proxy.log if fault)

    assert sum(injected.values()) >= 30 and len(injected) >= 5, injected  # the faults really happened
    for message in errors:  # what a user sees names the resource
        assert any(
            kind in message
            for kind in ("BillableMetric '", "Product '", "RateCard '", "Customer '", "Contract '")
        ), message
    names = live_names(emulator.client(), customers)
    ours = {n: k for n, k in names.items() if n.startswith(run)}
    declared = {f"{run}-{letter}{i}" for letter in "mprck" for i in range(PER_KIND)}
    assert set(ours) == declared, sorted(declared - set(ours))  # none lost
    assert all(k == 1 for k in ours.values()), {n: k for n, k in ours.items() if k > 1}  # none twice
    client = emulator.client()
    for card_id in cards:
        assert (
            len(
                client.v1.contracts.rate_cards.retrieve_rate_schedule(
                    rate_card_id=card_id, starting_at=START
                ).data
            )
            == 1
        )


def test_sixteen_parallel_creates_per_keyed_kind_under_thirty_percent_faults_make_each_object_once(
    fresh_emulator,
):
    """Packages, alerts and notifications (identified by a uniqueness key) as the tagged kinds above:
    16 creates per kind at once, 30% faults of every sort, and each declared object live exactly once."""
    emulator = fresh_emulator
    run = unique("keyed")
    errors: list[str] = []
    watcher = emulator.client().v1.customers.create(name=f"{run}-watcher").data.id  # to list alerts through
    with FaultProxy(emulator.base_url) as proxy, ProviderHost(proxy.base_url, emulator.token) as host:
        proxy.random_faults(0.3, seed=13)
        for provider, news in KEYED_KINDS.values():
            create_each(host, provider, [news(f"{run}-{provider.kind}-{i}") for i in range(PER_KIND)], errors)
        injected = Counter(fault for _, _, fault in proxy.log if fault)

    assert sum(injected.values()) >= 12 and len(injected) >= 5, injected  # the faults really happened
    for message in errors:  # what a user sees names the resource
        assert any(f"{provider.kind} '" in message for provider, _ in KEYED_KINDS.values()), message
    names = keyed_live_names(emulator.client(), watcher)
    ours = {n: k for n, k in names.items() if n.startswith(run)}
    declared = {f"{run}-{p.kind}-{i}" for p, _ in KEYED_KINDS.values() for i in range(PER_KIND)}
    assert set(ours) == declared, sorted(declared - set(ours))  # none lost
    assert all(k == 1 for k in ours.values()), {n: k for n, k in ours.items() if k > 1}  # none twice


def test_every_create_sends_an_idempotency_key_derived_from_identity_and_inputs(emulator, proxy):
    """Issue 10 item 11: the same resource with the same inputs sends the same key from any host (a
    retried create is deduplicated by the API itself); other inputs, another key."""
    name = unique("keyed")
    creates = proxy.add(Rule("POST", "/v1/billable-metrics/create", body_has=name, times=None))
    contracts = proxy.add(Rule("POST", "/v1/contracts/create", body_has=name, times=None))
    with ProviderHost(proxy.base_url, emulator.token) as host:
        host.create(M, host.check_ok(M, metric(name)))
        customer_id = create(host, C, customer(f"{name}-c"))
        card_id = create(host, R, rate_card(f"{name}-r"))
        host.create(K, host.check_ok(K, contract(f"{name}-k", customer_id, card_id)))
        host.create(M, host.check_ok(M, {**metric(name), "identity": f"p/s/{name}-2"}))
    with ProviderHost(proxy.base_url, emulator.token) as host:  # the next `up`: finds, never duplicates
        again, _ = host.create(M, host.check_ok(M, metric(name)))
    keys = [h.get("idempotency-key") for h in creates.headers]
    assert all(keys) and keys[0] != keys[1] and keys[2] == keys[0], keys
    assert contracts.headers and contracts.headers[0].get("idempotency-key")
    assert live_names(emulator.client())[name] == 2  # the two identities, each once


def test_keyed_creates_send_an_idempotency_key_and_a_replay_takes_the_first_over(emulator, proxy):
    """Packages, alerts and notifications send an Idempotency-Key on every create, as the tagged kinds
    do; another host's create of the same resource finds the first by its uniqueness key."""
    name = unique("keyed-idem")
    for kind, (provider, news) in KEYED_KINDS.items():
        creates = proxy.add(Rule("POST", provider.create_path, body_has=f"{name}-{kind}", times=None))
        with ProviderHost(proxy.base_url, emulator.token) as host:
            first = create(host, provider, news(f"{name}-{kind}"))
        with ProviderHost(proxy.base_url, emulator.token) as host:  # the next `up`
            again = create(host, provider, news(f"{name}-{kind}"))
        keys = [h.get("idempotency-key") for h in creates.headers]
        assert len(keys) == 2 and all(keys), (kind, keys)
        assert again == first, kind


def routes(emulator: Any) -> Counter:
    return Counter(emulator.admin("GET", "stats").json()["by_route"])


ADD_KEY = "POST /v1/customFields/addKey"


def test_a_custom_field_key_is_registered_when_a_create_is_refused_and_costs_nothing_once_there(
    fresh_emulator,
):
    """Keys are on an allow list per entity (docs: create a custom field key). The first create on a new
    account is refused for `iac_identity`: the key is registered and the same create sent again. Every
    later `up` (a new host) costs one call per create and registers nothing."""
    emulator = fresh_emulator
    create_path = "POST /v1/billable-metrics/create"
    with ProviderHost(emulator.base_url, emulator.token) as host:
        host.create(M, host.check_ok(M, metric(unique("first-up"))))
    first = routes(emulator)
    assert (first[ADD_KEY], first[create_path]) == (1, 2), first
    with ProviderHost(emulator.base_url, emulator.token) as host:
        host.create(M, host.check_ok(M, metric(unique("next-up"))))
    later = routes(emulator)
    assert (later[ADD_KEY], later[create_path]) == (1, 3), later


def test_a_key_another_host_registers_after_the_refusal_is_accepted(fresh_emulator):
    """Issue 10 item 2: registering a key the account has answers 400 "Duplicate custom field key" (as
    the real API is reported to). Another host registers `iac_identity` between this create's refusal
    and its own addKey: the create goes on, and the metric exists once."""
    emulator = fresh_emulator
    name = unique("duplicate-key")
    registered = threading.Event()
    with FaultProxy(emulator.base_url) as proxy, ProviderHost(proxy.base_url, emulator.token) as host:
        refused = proxy.add(
            Rule("POST", "/v1/billable-metrics/create", body_has=name, hold_response=registered)
        )
        with ThreadPoolExecutor(1) as pool:
            created = pool.submit(create, host, M, metric(name))
            assert refused.forwarded.wait(10), "the create never reached the emulator"
            emulator.client().v1.custom_fields.add_key(
                entity="billable_metric", key=IDENTITY_FIELD, enforce_uniqueness=False
            )
            registered.set()
            object_id = created.result(timeout=30)
    assert routes(emulator)[ADD_KEY] == 2  # ours answered "Duplicate custom field key"
    assert live_names(emulator.client())[name] == 1
    assert emulator.client().v1.billable_metrics.retrieve(billable_metric_id=object_id).data.name == name


def test_keys_of_declared_custom_fields_are_registered_when_refused_on_create_and_on_update(fresh_emulator):
    """A contract's own custom fields (refused on create) and a key added to a customer's custom fields
    (refused by setValues): each registered when refused, and the request sent again."""
    emulator = fresh_emulator
    name = unique("declared-keys")
    with ProviderHost(emulator.base_url, emulator.token) as host:
        customer_id, outs = host.create(C, host.check_ok(C, customer(f"{name}-c")))
        card_id = create(host, R, rate_card(f"{name}-r"))
        contract_id = create(
            host, K, {**contract(f"{name}-k", customer_id, card_id), "custom_fields": {"crm_deal": "D-1"}}
        )
        news = {**outs, "custom_fields": {**(outs.get("custom_fields") or {}), "crm_account": "A-1"}}
        host.update(C, customer_id, outs, host.check_ok(C, news, olds=outs))
    client = emulator.client()
    live = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=contract_id).data
    assert live.custom_fields == {"crm_deal": "D-1"}
    assert client.v1.customers.retrieve(customer_id=customer_id).data.custom_fields["crm_account"] == "A-1"
    keys = {(k.entity, k.key) for k in client.v1.custom_fields.list_keys()}
    assert {("contract", "crm_deal"), ("customer", "crm_account")} <= keys, keys


def test_a_key_that_keeps_answering_500_is_replaced_once_the_look_up_finds_nothing(emulator, proxy):
    """Metronome keeps a 500 under its Idempotency-Key: the same key would answer 500 for 24 h. After the
    second 500, and a look-up (begun after it) that finds nothing, the provider sends a fresh key."""
    name = unique("stuck-key")
    path = "/v1/billable-metrics/create"
    failing = proxy.add(Rule("POST", path, body_has=name, fault=UNPROCESSED_500, times=2))
    passing = proxy.add(Rule("POST", path, body_has=name, times=None))
    with ProviderHost(proxy.base_url, emulator.token) as host:
        host.create(M, host.check_ok(M, metric(name)))
    keys = [h["idempotency-key"] for h in failing.headers + passing.headers]
    assert len(keys) == 3 and keys[0] == keys[1] != keys[2], keys
    assert live_names(emulator.client())[name] == 1
