"""Contracts made from a package (`package_id` / `package_alias`), through the real provider host over gRPC
against the emulator over HTTP: what the create takes, what reads back, and a package replaced under a
contract (the contract keeps the package it was made from).
"""

from __future__ import annotations

import pytest
from provider_host import ProviderHost, unique
from test_provider_package import package

from providers.contract import ContractProvider as K
from providers.customer import CustomerProvider as C
from providers.package import PackageProvider as PK

START = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def refs(emulator) -> dict[str, str]:
    client = emulator.client()
    card = client.v1.contracts.rate_cards.create(name=unique("card")).data.id
    seat = client.v1.contracts.products.create(name=unique("seat"), type="SUBSCRIPTION").data.id
    client.v1.contracts.rate_cards.rates.add(
        rate_card_id=card,
        product_id=seat,
        starting_at=START,
        entitled=True,
        rate_type="FLAT",
        price=1200,
        billing_frequency="MONTHLY",
    )
    return {
        "card": card,
        "fixed": client.v1.contracts.products.create(name=unique("credits"), type="FIXED").data.id,
        "seat": seat,
    }


def test_a_contract_from_a_package_by_alias(emulator, refs):
    client = emulator.client()
    with ProviderHost(emulator.base_url, emulator.token) as host:
        package_id, pkg, _ = host.create_checked(PK, package(refs))
        alias = pkg["aliases"][0]["name"]
        name = unique("cust")
        customer_id = host.create_checked(C, {"identity": f"t/s/{name}", "name": name})[0]
        name = unique("k")
        declared = {
            "identity": f"metronome-iac/test/{name}",
            "customer_id": customer_id,
            "starting_at": START,
            "package_alias": alias,
            "package": pkg["name"],
            "custom_fields": {},
        }
        object_id, inputs, outs = host.create_checked(K, declared)
        got = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=object_id).data
        # The package's terms, placed at the contract's start: the rate card, a year, its commit.
        assert got.rate_card_id == refs["card"] and got.ending_before.year == 2027
        assert [c.access_schedule.schedule_items[0].amount for c in got.commits] == [500]
        assert got.subscriptions[0].subscription_rate.product.id == refs["seat"]
        assert (
            client.v1.packages.list_contracts_on_package(package_id=package_id).data[0].contract_id
            == object_id
        )
        _, read_outs = host.read(K, object_id, outs)
        assert host.diff(K, object_id, read_outs, inputs).changes == "NONE", read_outs
        # The package replaced (a new version takes the alias): the contract keeps the package it was made
        # from, no change for it.
        assert (
            host.diff(K, object_id, read_outs, {**inputs, "package_id": "the-next-version"}).changes == "NONE"
        )
        # A hand edit of what such a contract holds of its own (custom fields) shows on read.
        client.v1.custom_fields.add_key(entity="contract", key="segment", enforce_uniqueness=False)
        client.v1.custom_fields.set_values(
            entity="contract", entity_id=object_id, custom_fields={"segment": "smb"}
        )
        _, drifted = host.read(K, object_id, outs)
        assert drifted["custom_fields"] == {"segment": "smb"}
        assert host.diff(K, object_id, drifted, inputs).changes == "SOME"
        # Another package (or alias): a new contract, refused without allow_replacement.
        failures = dict(host.check(K, inputs, {**inputs, "package": "another", "package_alias": "other"})[1])
        assert "allow_replacement" in failures["package"]


def test_check_refuses_what_a_package_contract_cannot_take(emulator, refs):
    with ProviderHost(emulator.base_url, emulator.token) as host:
        base = {"identity": "t/s/k", "customer_id": "c", "starting_at": START, "package_alias": "self-serve"}
        for field, value in (
            ("rate_card_id", refs["card"]),
            ("name", "x"),
            ("net_payment_terms_days", 30),
            ("ending_before", "2027-01-01T00:00:00Z"),
            ("billing_provider_configuration", {"billing_provider_configuration_id": "b"}),
        ):
            failures = dict(host.check(K, {}, {**base, field: value})[1])
            assert field in failures and "set it on the package" in failures[field], (field, failures)
        failures = dict(host.check(K, {}, {**base, "package_id": "p"})[1])
        assert "exclude each other" in failures["package_alias"]
        # The API refuses the same (the provider's Check is the backstop, the catalog checks first).
        import metronome

        with pytest.raises(metronome.BadRequestError, match="not allowed with a package"):
            emulator.client(max_retries=0).v1.contracts.create(
                customer_id=emulator.client().v1.customers.create(name=unique("c")).data.id,
                starting_at=START,
                package_alias="self-serve",
                name="x",
            )
