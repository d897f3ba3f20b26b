"""The emulator's Idempotency-Key, as docs.metronome.com/api-reference/idempotency describes it: on
every POST; once a request begins executing its answer is kept (a 500 included) and given again for the
same key and parameters, for at least 24 h; the key with other parameters, or while it still runs,
answers 409; a request refused before it runs keeps nothing."""

from __future__ import annotations

import random
import uuid

import httpx
import pytest

from metronome_iac.emulator.app import Idempotency
from metronome_iac.emulator.state import Settings
from metronome_iac.emulator.store import Store


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def post(emulator, path: str, body: dict, key: str) -> httpx.Response:
    return httpx.post(
        f"{emulator.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {emulator.token}", "Idempotency-Key": key},
        timeout=10,
    )


def metrics_named(emulator, name: str) -> list:
    return [m for m in emulator.client().v1.billable_metrics.list() if m.name == name]


def test_a_repeated_key_gets_the_first_answer_and_makes_nothing_new(emulator) -> None:
    key, name = uid("key"), uid("metric")
    body = {"name": name, "aggregation_type": "COUNT"}
    first = post(emulator, "/v1/billable-metrics/create", body, key)
    again = post(emulator, "/v1/billable-metrics/create", body, key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert len(metrics_named(emulator, name)) == 1
    # The SDK sends it as a header on any call; a GET ignores it.
    client = emulator.client()
    got = client.v1.billable_metrics.retrieve(
        billable_metric_id=first.json()["data"]["id"], extra_headers={"Idempotency-Key": key}
    )
    assert got.data.name == name


def test_the_key_with_other_parameters_is_a_409_without_a_retry_hint(emulator) -> None:
    key, path = uid("key"), "/v1/billable-metrics/create"
    post(emulator, path, {"name": uid("metric"), "aggregation_type": "COUNT"}, key)
    other = post(emulator, path, {"name": uid("metric"), "aggregation_type": "COUNT"}, key)
    assert other.status_code == 409
    assert "different parameters" in other.json()["message"] and key in other.json()["message"]
    assert "x-should-retry" not in other.headers


def test_a_request_refused_by_validation_keeps_nothing(emulator) -> None:
    key, name = uid("key"), uid("metric")
    refused = post(emulator, "/v1/billable-metrics/create", {"name": name, "aggregation_type": "NOPE"}, key)
    assert refused.status_code == 400
    made = post(emulator, "/v1/billable-metrics/create", {"name": name, "aggregation_type": "COUNT"}, key)
    assert made.status_code == 200 and len(metrics_named(emulator, name)) == 1


def _seed_for(mode: str) -> int:
    """A seed whose first injected failure is `mode` (the emulator draws random(), then the mode)."""
    for seed in range(1000):
        rng = random.Random(seed)
        rng.random()
        if rng.choice(("429", "500-before", "500-after")) == mode:
            return seed
    raise AssertionError(mode)


def test_a_500_after_processing_is_kept_and_given_again(fresh_emulator) -> None:
    key, name = uid("key"), uid("metric")
    body = {"name": name, "aggregation_type": "COUNT"}
    fresh_emulator.admin("POST", "config", json={"fail_rate": 1.0, "seed": _seed_for("500-after")})
    first = post(fresh_emulator, "/v1/billable-metrics/create", body, key)
    fresh_emulator.admin("POST", "config", json={"fail_rate": 0})
    assert first.status_code == 500 and "after processing" in first.json()["message"]
    again = post(fresh_emulator, "/v1/billable-metrics/create", body, key)
    assert again.status_code == 500 and again.json() == first.json()  # the error is kept too
    assert len(metrics_named(fresh_emulator, name)) == 1  # it did run, once
    assert fresh_emulator.admin("GET", "stats").json()["idempotent_replays"] == 1


def test_a_500_before_processing_keeps_nothing(fresh_emulator) -> None:
    key, name = uid("key"), uid("metric")
    body = {"name": name, "aggregation_type": "COUNT"}
    fresh_emulator.admin("POST", "config", json={"fail_rate": 1.0, "seed": _seed_for("500-before")})
    assert post(fresh_emulator, "/v1/billable-metrics/create", body, key).status_code == 500
    fresh_emulator.admin("POST", "config", json={"fail_rate": 0})
    assert post(fresh_emulator, "/v1/billable-metrics/create", body, key).status_code == 200
    assert len(metrics_named(fresh_emulator, name)) == 1


def test_an_answer_is_kept_for_the_configured_time_only(fresh_emulator) -> None:
    key, name = uid("key"), uid("metric")
    body = {"name": name, "aggregation_type": "COUNT"}
    first = post(fresh_emulator, "/v1/billable-metrics/create", body, key).json()
    fresh_emulator.admin("POST", "config", json={"idempotency_ttl_s": 0})  # "the cache is pruned"
    second = post(fresh_emulator, "/v1/billable-metrics/create", body, key).json()
    assert second["data"]["id"] != first["data"]["id"]
    assert len(metrics_named(fresh_emulator, name)) == 2


def test_a_key_still_running_answers_409() -> None:
    idempotency = Idempotency(Store(), Settings())
    assert idempotency.begin("k", "fingerprint") is None  # runs
    running = idempotency.begin("k", "fingerprint")
    assert running is not None and running.status_code == 409
    idempotency.finish("k", "fingerprint", 200, b'{"data": {"id": "x"}}')
    replay = idempotency.begin("k", "fingerprint")
    assert replay is not None and (replay.status_code, replay.body) == (200, b'{"data": {"id": "x"}}')


def test_stats_give_the_emulators_own_time_per_route(fresh_emulator) -> None:
    fresh_emulator.admin("POST", "config", json={"latency_ms": 1000})
    client = fresh_emulator.client()
    client.v1.billable_metrics.create(name=uid("metric"), aggregation_type="COUNT")
    fresh_emulator.admin("POST", "config", json={"latency_ms": 0})
    stats = fresh_emulator.admin("GET", "stats").json()
    spent = stats["seconds_by_route"]["POST /v1/billable-metrics/create"]
    assert 0 < spent < 1.0  # the injected second of latency is not the emulator's time
    assert stats["seconds"] >= spent


def test_a_listing_page_reads_only_its_page() -> None:
    """Linear listing: a page past many rows reads about a page of them (the chunk), not every row after
    the cursor."""
    store = Store()
    for i in range(1000):
        store.insert("thing", {"n": i})
    reads = []
    store._db.set_trace_callback(reads.append)
    items, cursor = store.list_page("thing", cursor=None, limit=10)
    assert [d["n"] for d in items] == list(range(10)) and cursor
    items, cursor = store.list_page("thing", cursor=cursor, limit=10)
    assert [d["n"] for d in items] == list(range(10, 20))
    selects = [sql for sql in reads if "FROM docs" in sql]
    assert len(selects) == 2 and all("LIMIT" in sql for sql in selects), selects  # one bounded read a page
    everything = store.all("thing")
    assert len(everything) == 1000


@pytest.mark.parametrize("archive_filter", ["NOT_ARCHIVED", "ALL"])
def test_listing_pages_through_every_row_once(archive_filter: str) -> None:
    store = Store()
    ids = [store.insert("thing", {"n": i})["id"] for i in range(450)]
    for object_id in ids[::3]:
        store.archive("thing", object_id)
    seen, cursor = [], None
    while True:
        items, cursor = store.list_page("thing", cursor=cursor, limit=100, archive_filter=archive_filter)
        seen += [d["n"] for d in items]
        if cursor is None:
            break
    expected = [i for i in range(450) if archive_filter == "ALL" or i % 3]
    assert seen == expected
