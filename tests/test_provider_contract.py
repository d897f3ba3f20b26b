"""Contract through the real provider host over gRPC, against the emulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provider_host import UNKNOWN, ProviderHost, unique

from providers.contract import ContractProvider as K
from providers.customer import CustomerProvider as C
from providers.product import ProductProvider as P
from providers.rate_card import RateCardProvider as R

START = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def host(emulator) -> Iterator[ProviderHost]:
    with ProviderHost(emulator.base_url, emulator.token) as h:
        yield h


@pytest.fixture(scope="module")
def refs(host) -> dict[str, str]:
    out = {}
    for key in ("commit_product", "credit_product"):
        name = unique(key)
        out[key], _, _ = host.create_checked(P, {"identity": f"t/s/{name}", "name": name, "type": "FIXED"})
    for key in ("card", "card2"):
        name = unique(key)
        out[key], _, _ = host.create_checked(R, {"identity": f"t/s/{name}", "name": name})
    return out


def new_customer(host) -> str:
    name = unique("kc")
    object_id, _, _ = host.create_checked(C, {"identity": f"t/s/{name}", "name": name})
    return object_id


def contract(refs, customer_id, **over):
    name = unique("contract")
    base = {
        "identity": f"metronome-iac/test/{name}",
        "customer_id": customer_id,
        "rate_card_id": refs["card"],
        "starting_at": START,
        "name": name,
        "net_payment_terms_days": 30,
        "commits": [
            {
                "product_id": refs["commit_product"],
                "type": "PREPAID",
                "name": "prepaid",
                "access_schedule": {
                    "schedule_items": [
                        {"amount": 100000, "starting_at": START, "ending_before": "2027-01-01T00:00:00Z"}
                    ]
                },
                "invoice_schedule": {"schedule_items": [{"timestamp": START, "amount": 100000}]},
            }
        ],
        "credits": [
            {
                "product_id": refs["credit_product"],
                "name": "welcome",
                "access_schedule": {
                    "schedule_items": [
                        {"amount": 500, "starting_at": START, "ending_before": "2026-06-01T00:00:00Z"}
                    ]
                },
            }
        ],
        "overrides": [{"starting_at": START, "product_id": refs["commit_product"], "multiplier": 0.9}],
    }
    return {**base, **over}


def test_check(host, refs):
    customer_id = new_customer(host)
    host.check_ok(K, contract(refs, customer_id))
    failures = dict(host.check(K, {}, contract(refs, customer_id, ending_before="2025-01-01T00:00:00Z"))[1])
    assert "ending_before" in failures and "before it starts" in failures["ending_before"]
    # Preview: the customer and card are not created yet.
    inputs = host.check_ok(K, contract(refs, UNKNOWN, rate_card_id=UNKNOWN))
    assert inputs["customer_id"] == UNKNOWN

    olds = host.check_ok(K, contract(refs, customer_id))
    for field, value in (
        ("customer_id", new_customer(host)),
        ("rate_card_id", refs["card2"]),
        ("starting_at", "2026-02-01T00:00:00Z"),
    ):
        failures = dict(host.check(K, olds, {**olds, field: value})[1])
        assert field in failures and "allow_replacement" in failures[field], field
        host.check_ok(K, {**olds, field: value, "allow_replacement": True}, olds=olds)
    host.check_ok(K, {**olds, "name": "renamed"}, olds=olds)


def test_diff_rules(host, refs):
    customer_id = new_customer(host)
    inputs = host.check_ok(K, contract(refs, customer_id))
    outs = {**inputs, "uniqueness_key": "iac:x"}
    same = {**inputs, "net_payment_terms_days": 30.0, "allow_replacement": True, "ending_before": None}
    assert host.diff(K, "x", outs, same).changes == "NONE"
    for change in (
        {"name": "x"},
        {"ending_before": "2027-01-01T00:00:00Z"},
        {"net_payment_terms_days": 45},
        {"commits": []},
        {"overrides": []},
    ):
        d = host.diff(K, "x", outs, {**inputs, **change})
        assert d.changes == "SOME" and d.replaces == [], change
    for field, value in (
        ("customer_id", "other"),
        ("rate_card_id", refs["card2"]),
        ("starting_at", "2026-02-01T00:00:00Z"),
    ):
        d = host.diff(K, "x", outs, {**inputs, field: value})
        assert d.replaces == [field]
    assert host.diff(K, "x", outs, {**inputs, "customer_id": UNKNOWN}).replaces == ["customer_id"]


def test_lifecycle(host, emulator, refs):
    client = emulator.client()
    customer_id = new_customer(host)
    object_id, inputs, outs = host.create_checked(K, contract(refs, customer_id))
    assert outs["uniqueness_key"].startswith("iac:" + inputs["identity"] + "#")
    live = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=object_id).data
    assert live.name == inputs["name"] and live.rate_card_id == refs["card"] and len(live.commits) == 1

    read_id, read_outs = host.read(K, object_id, outs)
    assert read_id == object_id and read_outs == outs
    assert host.diff(K, object_id, read_outs, inputs).changes == "NONE"

    # A replayed create (same identity) takes the existing contract over via the 409.
    again_id, _ = host.create(K, inputs)
    assert again_id == object_id
    assert len(client.v2.contracts.list(customer_id=customer_id).data) == 1

    changed = host.check_ok(
        K,
        {
            **inputs,
            "name": inputs["name"] + "-v2",
            "ending_before": "2027-06-01T00:00:00Z",
            "net_payment_terms_days": 45,
            "credits": [],
            "overrides": [{"starting_at": START, "product_id": refs["commit_product"], "multiplier": 0.8}],
            "commits": [
                *inputs["commits"],
                {
                    "product_id": refs["commit_product"],
                    "type": "PREPAID",
                    "name": "top-up",
                    "access_schedule": {
                        "schedule_items": [
                            {"amount": 5000, "starting_at": START, "ending_before": "2027-01-01T00:00:00Z"}
                        ]
                    },
                },
            ],
        },
        olds=inputs,
    )
    d = host.diff(K, object_id, outs, changed)
    assert d.changes == "SOME" and d.replaces == []
    outs = host.update(K, object_id, outs, changed)
    live = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=object_id).data
    assert live.name == changed["name"] and live.net_payment_terms_days == 45
    assert live.ending_before.year == 2027
    assert sorted(c.name for c in live.commits if not c.archived_at) == ["prepaid", "top-up"]
    assert [c for c in live.credits or [] if not c.archived_at] == []
    assert [o.multiplier for o in live.overrides] == [0.8]
    _, read_outs = host.read(K, object_id, outs)
    assert host.diff(K, object_id, read_outs, changed).changes == "NONE", read_outs

    # Re-running the same update (a retried step) applies nothing twice.
    host.update(K, object_id, outs, changed)
    live = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=object_id).data
    assert len([c for c in live.commits if not c.archived_at]) == 2

    # Out-of-band edit shows on read.
    client.v2.contracts.edit(
        customer_id=customer_id, contract_id=object_id, update_contract_name="hand-edited"
    )
    _, drifted = host.read(K, object_id, outs)
    assert drifted["name"] == "hand-edited"
    assert host.diff(K, object_id, drifted, changed).changes == "SOME"

    host.delete(K, object_id, outs)
    live = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=object_id).data
    assert live.archived_at is not None
    assert host.read(K, object_id, outs)[0] == ""
    host.delete(K, object_id, outs)  # re-archiving is success


def test_read_after_out_of_band_archive(host, emulator, refs):
    customer_id = new_customer(host)
    object_id, _, outs = host.create_checked(K, contract(refs, customer_id))
    emulator.client().v1.contracts.archive(
        customer_id=customer_id, contract_id=object_id, void_invoices=False
    )
    assert host.read(K, object_id, outs) == ("", {})
