"""Emulator customers and billing providers through the official SDK."""

from __future__ import annotations

import uuid

import metronome
import pytest
from conftest import Emulator


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def client(emulator: Emulator) -> metronome.Metronome:
    return emulator.client(max_retries=0)


def test_customer_lifecycle(client: metronome.Metronome) -> None:
    alias = uid("alias")
    name = uid("acme")
    created = client.v1.customers.create(name=name, ingest_aliases=[alias]).data
    assert created.name == name and created.ingest_aliases == [alias] and created.id

    got = client.v1.customers.retrieve(customer_id=created.id).data
    assert got.name == name and got.ingest_aliases == [alias] and got.archived_at is None
    assert got.customer_config.salesforce_account_id is None

    renamed = client.v1.customers.set_name(customer_id=created.id, name=name + "-2").data
    assert renamed.name == name + "-2"
    new_alias = uid("alias")
    assert client.v1.customers.set_ingest_aliases(customer_id=created.id, ingest_aliases=[new_alias]) is None
    assert client.v1.customers.retrieve(customer_id=created.id).data.ingest_aliases == [new_alias]
    # The old alias was released by the replace: another customer may take it.
    client.v1.customers.create(name=uid(), ingest_aliases=[alias])

    client.v1.customers.update_config(customer_id=created.id, salesforce_account_id="sf-1")
    assert (
        client.v1.customers.retrieve(customer_id=created.id).data.customer_config.salesforce_account_id
        == "sf-1"
    )

    by_alias = list(client.v1.customers.list(ingest_alias=new_alias))
    assert [c.id for c in by_alias] == [created.id]

    client.v1.customers.archive(id=created.id)
    assert created.id not in {c.id for c in client.v1.customers.list(customer_ids=[created.id])}
    assert created.id in {c.id for c in client.v1.customers.list(only_archived=True)}
    assert client.v1.customers.retrieve(customer_id=created.id).data.archived_at is not None
    with pytest.raises(metronome.BadRequestError, match="already archived"):
        client.v1.customers.archive(id=created.id)


def test_customer_pagination_and_id_filter(client: metronome.Metronome) -> None:
    made = [client.v1.customers.create(name=uid()).data.id for _ in range(3)]
    page = client.v1.customers.list(limit=2)
    assert len(page.data) == 2 and page.next_page
    assert set(made) <= {c.id for c in client.v1.customers.list(limit=2)}
    assert {c.id for c in client.v1.customers.list(customer_ids=made[:2])} == set(made[:2])


def test_ingest_alias_conflicts(client: metronome.Metronome) -> None:
    alias = uid("alias")
    first = client.v1.customers.create(name=uid(), ingest_aliases=[alias]).data.id
    with pytest.raises(metronome.ConflictError, match="ingest_aliases") as err:
        client.v1.customers.create(name=uid(), ingest_aliases=[alias])
    assert "x-should-retry" not in err.value.response.headers  # the real API gives no such hint
    other = client.v1.customers.create(name=uid()).data.id
    with pytest.raises(metronome.ConflictError, match="ingest_aliases"):
        client.v1.customers.set_ingest_aliases(customer_id=other, ingest_aliases=[alias])
    # An archived customer still holds its alias until it is cleared.
    client.v1.customers.archive(id=first)
    with pytest.raises(metronome.ConflictError, match="ingest_aliases"):
        client.v1.customers.create(name=uid(), ingest_aliases=[alias])
    client.v1.customers.set_ingest_aliases(customer_id=first, ingest_aliases=[])
    client.v1.customers.create(name=uid(), ingest_aliases=[alias])


def test_customer_errors(client: metronome.Metronome) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(metronome.NotFoundError, match=missing):
        client.v1.customers.retrieve(customer_id=missing)
    with pytest.raises(metronome.NotFoundError, match=missing):
        client.v1.customers.archive(id=missing)
    with pytest.raises(metronome.BadRequestError, match="name"):
        client.v1.customers.create(name="")
    with pytest.raises(metronome.BadRequestError, match="billing_provider_type"):
        client.v1.customers.create(
            name=uid(),
            billing_config={"billing_provider_type": "paypal", "billing_provider_customer_id": "x"},
        )  # type: ignore[typeddict-item]


def test_stripe_refused_until_connected(fresh_emulator: Emulator) -> None:
    client = fresh_emulator.client(max_retries=0)
    customer_id = client.v1.customers.create(name=uid()).data.id
    stripe = {
        "customer_id": customer_id,
        "billing_provider": "stripe",
        "delivery_method": "direct_to_billing_provider",
        "configuration": {
            "stripe_customer_id": "cus_123",
            "stripe_collection_method": "charge_automatically",
        },
    }
    with pytest.raises(metronome.BadRequestError, match="Stripe is not connected"):
        client.v1.customers.set_billing_configurations(data=[stripe])
    with pytest.raises(metronome.BadRequestError, match="billing_provider"):
        client.v1.customers.create(
            name=uid(),
            billing_config={"billing_provider_type": "stripe", "billing_provider_customer_id": "cus_1"},
        )
    assert client.v1.settings.billing_providers.list().data == []
    missing = str(uuid.uuid4())
    with pytest.raises(metronome.InternalServerError, match="customer_id"):  # as reported of the real API
        client.v1.customers.set_billing_configurations(data=[{**stripe, "customer_id": missing}])

    assert (
        fresh_emulator.admin("POST", "billing-providers", json={"billing_provider": "stripe"}).status_code
        == 200
    )
    providers = client.v1.settings.billing_providers.list().data
    assert [p.billing_provider for p in providers] == ["stripe"]
    method_id = providers[0].delivery_method_id
    assert client.v1.settings.billing_providers.list().data[0].delivery_method_id == method_id

    made = client.v1.customers.set_billing_configurations(data=[stripe]).data
    assert made[0].billing_provider == "stripe" and made[0].customer_id == customer_id and made[0].id
    by_id = client.v1.customers.set_billing_configurations(
        data=[
            {**{k: v for k, v in stripe.items() if k != "delivery_method"}, "delivery_method_id": method_id}
        ]
    ).data
    configs = client.v1.customers.retrieve_billing_configurations(customer_id=customer_id).data
    assert {c.id for c in configs} == {made[0].id, by_id[0].id}
    assert configs[0].configuration["stripe_customer_id"] == "cus_123"
    assert configs[0].delivery_method_id == method_id

    client.v1.customers.archive_billing_configurations(
        customer_id=customer_id, customer_billing_provider_configuration_ids=[made[0].id]
    )
    assert [
        c.id for c in client.v1.customers.retrieve_billing_configurations(customer_id=customer_id).data
    ] == [by_id[0].id]
    everything = client.v1.customers.retrieve_billing_configurations(
        customer_id=customer_id, include_archived=True
    )
    assert len(everything.data) == 2

    # Legacy per-provider billing config.
    client.v1.customers.billing_config.create(
        customer_id=customer_id,
        billing_provider_type="stripe",
        billing_provider_customer_id="cus_legacy",
        stripe_collection_method="send_invoice",
    )
    legacy = client.v1.customers.billing_config.retrieve(
        customer_id=customer_id, billing_provider_type="stripe"
    )
    assert legacy.data.billing_provider_customer_id == "cus_legacy"
    client.v1.customers.billing_config.delete(customer_id=customer_id, billing_provider_type="stripe")
    with pytest.raises(metronome.NotFoundError):
        client.v1.customers.billing_config.retrieve(customer_id=customer_id, billing_provider_type="stripe")

    # Customer create with provider configurations.
    created = client.v1.customers.create(
        name=uid(),
        customer_billing_provider_configurations=[
            {
                "billing_provider": "stripe",
                "delivery_method": "direct_to_billing_provider",
                "configuration": {"stripe_customer_id": "cus_9"},
            }
        ],
    ).data
    assert len(client.v1.customers.retrieve_billing_configurations(customer_id=created.id).data) == 1


def test_stripe_connected_flag() -> None:
    from conftest import start_emulator

    emu = start_emulator("--stripe-connected")
    try:
        client = emu.client(max_retries=0)
        assert [p.billing_provider for p in client.v1.settings.billing_providers.list().data] == ["stripe"]
    finally:
        emu.stop()


def test_archiving_a_configuration_archives_it_on_the_contracts_that_use_it(fresh_emulator: Emulator) -> None:
    """Metronome docs (BETA note): "If you archive a customer_billing_provider_configuration that is attached
    to an active contract, the config will be archived on the contract immediately and no longer bill to the
    associated destination. A new billing_provider_configuration cannot be provisioned on the contract." """
    client = fresh_emulator.client(max_retries=0)
    fresh_emulator.admin("POST", "billing-providers", json={"billing_provider": "stripe", "connected": True})
    customer_id = client.v1.customers.create(name=uid()).data.id
    old, kept = client.v1.customers.set_billing_configurations(
        data=[
            {
                "customer_id": customer_id,
                "billing_provider": "stripe",
                "delivery_method": "direct_to_billing_provider",
                "configuration": {"stripe_customer_id": stripe_id},
            }
            for stripe_id in ("cus_old", "cus_kept")
        ]
    ).data

    def contract(config_id: str) -> str:
        return client.v1.contracts.create(
            customer_id=customer_id,
            starting_at="2026-01-01T00:00:00Z",
            billing_provider_configuration={"billing_provider_configuration_id": config_id},
        ).data.id

    on_old, also_on_old, on_kept = contract(old.id), contract(old.id), contract(kept.id)
    client.v1.customers.archive_billing_configurations(
        customer_id=customer_id, customer_billing_provider_configuration_ids=[old.id]
    )
    for contract_id in (on_old, also_on_old):
        v2 = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=contract_id).data
        assert v2.customer_billing_provider_configuration.id == old.id
        assert v2.customer_billing_provider_configuration.archived_at is not None
        v1 = client.v1.contracts.retrieve(customer_id=customer_id, contract_id=contract_id).data
        assert v1.customer_billing_provider_configuration.archived_at is not None
        listed = {c.id: c for c in client.v2.contracts.list(customer_id=customer_id).data}
        assert listed[contract_id].customer_billing_provider_configuration.archived_at is not None
    untouched = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=on_kept).data
    assert untouched.customer_billing_provider_configuration.archived_at is None

    # No new configuration can be provisioned on such a contract.
    with pytest.raises(metronome.BadRequestError, match="add_billing_provider_configuration_update"):
        client.v2.contracts.edit(
            customer_id=customer_id,
            contract_id=on_old,
            add_billing_provider_configuration_update={
                "billing_provider_configuration": {"billing_provider_configuration_id": kept.id},
                "schedule": {"effective_at": "START_OF_CURRENT_PERIOD"},
            },
        )
    # Archiving again (already archived) changes nothing and still succeeds.
    client.v1.customers.archive_billing_configurations(
        customer_id=customer_id, customer_billing_provider_configuration_ids=[old.id]
    )
