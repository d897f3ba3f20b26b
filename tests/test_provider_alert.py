"""Alert (v1 threshold notifications) through the real provider host over gRPC, against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from provider_host import ProviderHost, unique

from providers.alert import AlertProvider as A


@pytest.fixture(scope="module")
def host(emulator) -> Iterator[ProviderHost]:
    with ProviderHost(emulator.base_url, emulator.token) as h:
        yield h


@pytest.fixture(scope="module")
def customer_id(emulator) -> str:
    return emulator.client().v1.customers.create(name=unique("alerted")).data.id


def alert(**over):
    name = unique("spend")
    return {
        "identity": f"metronome-iac/test/{name}",
        "name": name,
        "alert_type": "spend_threshold_reached",
        "threshold": 10_000,
        **over,
    }


def test_check_refuses_fields_the_type_does_not_take(host):
    _, failures = host.check(A, {}, alert(alert_type="usage_threshold_reached"))
    assert "billable_metric_id" in dict(failures)
    _, failures = host.check(A, {}, alert(invoice_types_filter=["USAGE"]))
    reason = dict(failures)["invoice_types_filter"]
    assert "invoice_total_reached" in reason and "to fix" in reason
    _, failures = host.check(A, {}, alert(alert_type="low_remaining_seat_balance_reached"))
    assert "seat_filter" in dict(failures)
    _, failures = host.check(A, {}, alert(alert_type="spend_over_9000"))
    assert "alert_type" in dict(failures)


def test_customer_alert_lifecycle(host, emulator, customer_id):
    client = emulator.client()
    news = alert(
        customer_id=customer_id,
        group_values=[{"key": "region", "value": "eu"}],
        custom_field_filters=[{"entity": "Contract", "key": "tier", "value": "gold"}],
        evaluate_on_create=False,
    )
    object_id, inputs, outs = host.create_checked(A, news)
    live = client.v1.customers.alerts.retrieve(customer_id=customer_id, alert_id=object_id).data.alert
    assert live.threshold == 10_000 and live.group_values and live.group_values[0].value == "eu"
    assert outs["uniqueness_key"].startswith("iac:" + inputs["identity"] + "#")

    _, read_outs = host.read(A, object_id, outs)
    assert host.diff(A, object_id, read_outs, inputs).changes == "NONE", (read_outs, inputs)

    # Alerts cannot be edited: every change replaces, and the plan says so.
    for field, value in {"threshold": 20_000, "name": "renamed", "group_values": [{"key": "region"}]}.items():
        d = host.diff(A, object_id, outs, {**inputs, field: value})
        assert d.replaces == [field], field
    # ...but evaluate_on_create only matters when an alert is made: changing it changes nothing live.
    d = host.diff(A, object_id, outs, {**inputs, "evaluate_on_create": True})
    assert d.changed and d.replaces == []

    # A replacement is created before the old one is archived: the two never share a uniqueness key.
    new_id, _ = host.create(A, host.check_ok(A, {**inputs, "threshold": 20_000}))
    assert new_id != object_id

    # Archived by hand: read says it is gone, so the next up makes it again.
    client.v1.alerts.archive(id=object_id)
    assert host.read(A, object_id, outs)[0] == ""
    again, _ = host.create(A, inputs)
    assert again != object_id
    host.delete(A, again, outs)
    got = client.v1.customers.alerts.retrieve(customer_id=customer_id, alert_id=again).data
    assert got.alert.status == "archived"
    host.delete(A, again, outs)  # archiving again is success


def test_account_wide_alert_reads_through_any_customer(host, emulator, customer_id):
    object_id, inputs, outs = host.create_checked(
        A, alert(alert_type="low_credit_balance_reached", threshold=500, name=unique("low-balance"))
    )
    assert host.read(A, object_id, outs)[0] == object_id
    _, read_outs = host.read(A, object_id, outs)
    assert host.diff(A, object_id, read_outs, inputs).changes == "NONE", (read_outs, inputs)
    host.delete(A, object_id, outs)
    assert host.read(A, object_id, outs)[0] == ""


def test_a_replayed_create_takes_the_first_over(host, customer_id):
    first, inputs, _ = host.create_checked(A, alert(customer_id=customer_id))
    again, _ = host.create(A, inputs)
    assert again == first


def test_an_account_wide_alert_is_read_through_the_customer_recorded_in_its_state(fresh_emulator):
    """The customer an account-wide alert is read through is an output: a refresh in a new host reads
    through it with one call (no look-up of a customer); if that customer is not found, through another.
    A read never changes the output: a refresh shows no change."""
    emulator = fresh_emulator
    client = emulator.client()
    first = client.v1.customers.create(name=unique("first")).data.id
    with ProviderHost(emulator.base_url, emulator.token) as host:
        object_id, _, outs = host.create_checked(A, alert(name=unique("everyone")))
    assert outs["read_through"] == first

    def calls() -> dict:
        return emulator.admin("GET", "stats").json()["by_route"]

    before = calls()
    with ProviderHost(emulator.base_url, emulator.token) as host:
        assert host.read(A, object_id, outs)[0] == object_id
    made = {route: n - before.get(route, 0) for route, n in calls().items() if n != before.get(route, 0)}
    assert made == {"POST /v1/customer-alerts/get": 1}, made

    gone = {**outs, "read_through": "00000000-0000-4000-8000-000000000000"}  # no such customer (404)
    with ProviderHost(emulator.base_url, emulator.token) as host:
        read_id, read_outs = host.read(A, object_id, gone)
    assert read_id == object_id and read_outs == gone  # read through another; the state is not changed


def test_account_wide_alerts_made_before_any_customer_look_one_up_once_per_host(fresh_emulator):
    """Nothing orders account-wide alerts after customers: on a new account the engine may create them
    first. The host looks a customer up once, whatever it finds, so the calls of an `up` do not depend on
    the engine's order; an alert that recorded no customer is read through one looked up at its read."""
    emulator = fresh_emulator

    def listings() -> int:
        return emulator.admin("GET", "stats").json()["by_route"].get("GET /v1/customers", 0)

    with ProviderHost(emulator.base_url, emulator.token) as host, ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda _: host.create_checked(A, alert(name=unique("early"))), range(4)))
        assert listings() == 1
        emulator.client().v1.customers.create(name=unique("later"))
        _, _, later = host.create_checked(A, alert(name=unique("after a customer")))
    assert listings() == 1
    assert all(not outs.get("read_through") for _, _, outs in made) and not later.get("read_through")

    object_id, _, outs = made[0]
    with ProviderHost(emulator.base_url, emulator.token) as host:
        read_id, read_outs = host.read(A, object_id, outs)
    assert read_id == object_id and read_outs == outs and listings() == 2


def test_the_alert_types_are_the_sdks() -> None:
    """The provider writes the list out (importing the SDK's params module imports all of its v1 types,
    at the first alert's check); the SDK's `alert_type` Literal is what the list must be."""
    from typing import get_args, get_type_hints

    from metronome.types.v1.alert_create_params import AlertCreateParams

    from providers.alert import ALERT_TYPES

    sdk = get_args(get_args(get_type_hints(AlertCreateParams, include_extras=True)["alert_type"])[0])
    assert ALERT_TYPES == sdk


def test_loading_the_alert_provider_does_not_import_the_sdks_v1_types() -> None:
    import subprocess
    import sys

    from conftest import REPO

    code = "import sys, providers.alert; print('metronome.types.v1' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "False", shown.stdout + shown.stderr
