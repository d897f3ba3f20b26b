"""Package through the real provider host over gRPC, against the emulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provider_host import ProviderHost, unique

from providers.package import PackageProvider as P


@pytest.fixture(scope="module")
def host(emulator) -> Iterator[ProviderHost]:
    with ProviderHost(emulator.base_url, emulator.token) as h:
        yield h


@pytest.fixture(scope="module")
def refs(emulator) -> dict[str, str]:
    client = emulator.client()
    return {
        "card": client.v1.contracts.rate_cards.create(name=unique("card")).data.id,
        "fixed": client.v1.contracts.products.create(name=unique("credits"), type="FIXED").data.id,
        "seat": client.v1.contracts.products.create(name=unique("seat"), type="SUBSCRIPTION").data.id,
    }


def package(refs, **over):
    name = unique("self-serve")
    days0 = {"unit": "DAYS", "value": 0}
    month = {"unit": "MONTHS", "value": 1}
    return {
        "identity": f"metronome-iac/test/{name}",
        "name": name,
        "rate_card_id": refs["card"],
        "aliases": [{"name": name}],
        "duration": {"unit": "YEARS", "value": 1},
        "net_payment_terms_days": 15,
        "commits": [
            {
                "product_id": refs["fixed"],
                "type": "PREPAID",
                "temporary_id": "welcome",
                "access_schedule": {
                    "schedule_items": [{"amount": 500, "starting_at_offset": days0, "duration": month}]
                },
                "invoice_schedule": {
                    "schedule_items": [{"date_offset": days0, "quantity": 1, "unit_price": 500}]
                },
            }
        ],
        "credits": [
            {
                "product_id": refs["fixed"],
                "name": "Trial credit",
                "access_schedule": {
                    "schedule_items": [{"amount": 100, "starting_at_offset": days0, "duration": month}]
                },
            }
        ],
        "subscriptions": [
            {
                "temporary_id": "seats",
                "collection_schedule": "ADVANCE",
                "proration": {"is_prorated": True},
                "subscription_rate": {"billing_frequency": "MONTHLY", "product_id": refs["seat"]},
                "initial_quantity": 1,
            }
        ],
        "recurring_credits": [
            {
                "product_id": refs["fixed"],
                "priority": 1,
                "access_amount": {"unit_price": 1000},
                "commit_duration": {"value": 1},
                "starting_at_offset": days0,
                "subscription_config": {
                    "subscription_id": "seats",
                    "apply_seat_increase_config": {"is_prorated": True},
                },
            }
        ],
        "overrides": [
            {
                "starting_at_offset": days0,
                "override_specifiers": [{"product_id": refs["fixed"], "commit_ids": ["welcome"]}],
                "is_commit_specific": True,
                "multiplier": 0.5,
            }
        ],
        "scheduled_charges": [
            {
                "product_id": refs["fixed"],
                "name": "Onboarding",
                "schedule": {"schedule_items": [{"date_offset": month, "quantity": 1, "unit_price": 2500}]},
            }
        ],
        **over,
    }


def test_check_names_the_field_and_the_fix(host, refs):
    failures = dict(host.check(P, {}, package(refs, custom_fields={"team": "growth"}))[1])
    assert "custom_fields" in failures and "to fix" in failures["custom_fields"]
    failures = dict(host.check(P, {}, package(refs, duration={"unit": "FORTNIGHTS", "value": 1}))[1])
    assert "duration.unit" in failures
    failures = dict(host.check(P, {}, package(refs, billing_provider="stripe"))[1])
    assert "delivery_method" in failures and "direct_to_billing_provider" in failures["delivery_method"]
    host.check_ok(P, package(refs, billing_provider="stripe", delivery_method="direct_to_billing_provider"))
    bad_ref = package(refs)
    bad_ref["overrides"][0]["override_specifiers"][0]["commit_ids"] = ["welcom"]
    failures = dict(host.check(P, {}, bad_ref)[1])
    assert "overrides[0].override_specifiers[0].commit_ids[0]" in failures
    assert "welcome" in failures["overrides[0].override_specifiers[0].commit_ids[0]"]
    assert "to fix" in failures["overrides[0].override_specifiers[0].commit_ids[0]"]


def test_lifecycle_and_the_alias_moving_to_the_replacement(emulator, refs):
    with ProviderHost(emulator.base_url, emulator.token) as host:
        _lifecycle(host, emulator, refs)


def _lifecycle(host, emulator, refs):
    client = emulator.client()
    news = package(refs)
    alias = news["aliases"][0]["name"]
    object_id, inputs, outs = host.create_checked(P, news)
    live = client.v1.packages.retrieve(package_id=object_id).data
    assert live.rate_card_id == refs["card"] and live.commits[0].product.id == refs["fixed"]
    assert outs["uniqueness_key"].startswith("iac:" + inputs["identity"] + "#")

    # Read gives back exactly the inputs; no change, no diff.
    read_id, read_outs = host.read(P, object_id, outs)
    assert read_id == object_id and read_outs == outs, (read_outs, outs)
    assert host.diff(P, object_id, read_outs, inputs).changes == "NONE"

    # Packages cannot be edited: every change replaces, and the plan shows it.
    for field, value in {
        "name": "renamed",
        "net_payment_terms_days": 30,
        "duration": {"unit": "YEARS", "value": 2},
        "aliases": [{"name": alias + "-2"}],
    }.items():
        d = host.diff(P, object_id, outs, {**inputs, field: value})
        assert d.replaces == [field] and not d.delete_before_replace, field

    # A contract provisioned from the package: the preview of a replacement names it (it keeps its terms).
    customer_id = client.v1.customers.create(name=unique("buyer")).data.id
    contract_id = client.v1.contracts.create(
        customer_id=customer_id, starting_at="2026-01-01T00:00:00Z", package_alias=alias
    ).data.id
    changed = host.check_ok(P, {**news, "net_payment_terms_days": 30})
    host.diff(P, object_id, outs, changed)

    # The replacement is created first and takes the alias over; then the old package is archived.
    new_id, new_outs = host.create(P, changed)
    assert new_id != object_id and new_outs["uniqueness_key"] != outs["uniqueness_key"]
    host.delete(P, object_id, outs)
    assert client.v1.packages.retrieve(package_id=object_id).data.archived_at is not None
    assert host.read(P, object_id, outs)[0] == ""
    other = client.v1.customers.create(name=unique("buyer")).data.id
    later = client.v1.contracts.create(
        customer_id=other, starting_at="2026-02-01T00:00:00Z", package_alias=alias
    )
    assert (
        client.v2.contracts.retrieve(customer_id=other, contract_id=later.data.id).data.package_id == new_id
    )
    kept = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=contract_id).data
    assert kept.package_id == object_id and kept.archived_at is None  # existing contracts keep their terms

    host.close()
    err = host.stderr_text()
    assert contract_id in err and "keep" in err, err


def test_read_after_another_package_takes_the_alias(host, emulator, refs):
    client = emulator.client()
    object_id, inputs, outs = host.create_checked(P, package(refs))
    alias = inputs["aliases"][0]["name"]
    client.v1.packages.create(name=unique("by-hand"), aliases=[{"name": alias}])
    _, drifted = host.read(P, object_id, outs)
    assert drifted["aliases"][0].get("ending_before"), drifted["aliases"]
    assert host.diff(P, object_id, drifted, inputs).replaces == ["aliases"]


def test_a_replayed_create_takes_the_first_over(host, refs):
    first, inputs, _ = host.create_checked(P, package(refs))
    again, _ = host.create(P, inputs)
    assert again == first
