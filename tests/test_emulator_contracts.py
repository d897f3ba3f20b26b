"""Emulator contracts (v1 and v2) through the official SDK."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import metronome
import pytest
from conftest import Emulator

START = "2026-01-01T00:00:00Z"
END = "2027-01-01T00:00:00Z"


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class World:
    client: metronome.Metronome
    customer_id: str
    rate_card_id: str
    product_id: str


@pytest.fixture
def world(emulator: Emulator) -> World:
    client = emulator.client(max_retries=0)
    product_id = client.v1.contracts.products.create(name=uid("commit-product"), type="FIXED").data.id
    rate_card_id = client.v1.contracts.rate_cards.create(name=uid("card")).data.id
    customer_id = client.v1.customers.create(name=uid("customer")).data.id
    return World(client, customer_id, rate_card_id, product_id)


def commit(product_id: str, amount: float = 1000, **extra) -> dict:
    return {
        "product_id": product_id,
        "type": "PREPAID",
        "name": "prepaid",
        "access_schedule": {
            "schedule_items": [{"amount": amount, "starting_at": START, "ending_before": END}]
        },
        "invoice_schedule": {"schedule_items": [{"timestamp": START, "amount": amount}]},
        **extra,
    }


def credit(product_id: str, amount: float = 50) -> dict:
    return {
        "product_id": product_id,
        "access_schedule": {
            "schedule_items": [{"amount": amount, "starting_at": START, "ending_before": END}]
        },
    }


def test_contract_v1_lifecycle(world: World) -> None:
    c = world.client
    key = uid("iac:contract")
    contract_id = c.v1.contracts.create(
        customer_id=world.customer_id,
        rate_card_id=world.rate_card_id,
        starting_at=START,
        ending_before=END,
        name="Acme 2026",
        net_payment_terms_days=30,
        uniqueness_key=key,
        commits=[commit(world.product_id)],
        credits=[credit(world.product_id)],
        overrides=[
            {"product_id": world.product_id, "starting_at": START, "type": "MULTIPLIER", "multiplier": 0.9}
        ],
        discounts=[
            {
                "product_id": world.product_id,
                "schedule": {"schedule_items": [{"timestamp": START, "amount": 10}]},
            }
        ],
    ).data.id
    got = c.v1.contracts.retrieve(customer_id=world.customer_id, contract_id=contract_id).data
    assert got.id == contract_id and got.customer_id == world.customer_id and got.uniqueness_key == key
    cur = got.current
    assert (
        cur.rate_card_id == world.rate_card_id
        and cur.name == "Acme 2026"
        and cur.net_payment_terms_days == 30
    )
    assert cur.starting_at.year == 2026 and cur.ending_before.year == 2027
    assert cur.commits[0].product.id == world.product_id and cur.commits[0].type == "PREPAID"
    assert cur.commits[0].access_schedule.schedule_items[0].amount == 1000 and cur.commits[0].id
    assert cur.credits[0].access_schedule.schedule_items[0].amount == 50
    assert cur.overrides[0].multiplier == 0.9 and cur.discounts[0].schedule.schedule_items[0].amount == 10
    assert got.initial.commits[0].id == cur.commits[0].id and got.amendments == []

    # An account with contract editing has no amendments (the amend path: test_account_kinds.py).
    with pytest.raises(metronome.BadRequestError, match="editing is enabled"):
        c.v1.contracts.amend(
            customer_id=world.customer_id,
            contract_id=contract_id,
            starting_at=START,
            commits=[commit(world.product_id, 500)],
        )

    c.v1.contracts.update_end_date(customer_id=world.customer_id, contract_id=contract_id)
    got = c.v1.contracts.retrieve(customer_id=world.customer_id, contract_id=contract_id).data
    assert got.current.ending_before is None

    c.v1.contracts.archive(customer_id=world.customer_id, contract_id=contract_id, void_invoices=True)
    assert contract_id not in {x.id for x in c.v1.contracts.list(customer_id=world.customer_id)}
    assert contract_id in {
        x.id for x in c.v1.contracts.list(customer_id=world.customer_id, include_archived=True)
    }
    got = c.v1.contracts.retrieve(customer_id=world.customer_id, contract_id=contract_id).data
    assert got.archived_at is not None
    with pytest.raises(metronome.BadRequestError, match="already archived"):
        c.v1.contracts.archive(customer_id=world.customer_id, contract_id=contract_id, void_invoices=False)


def test_contract_list_pagination_v1_and_v2(world: World) -> None:
    c = world.client
    made = [
        c.v1.contracts.create(
            customer_id=world.customer_id, rate_card_id=world.rate_card_id, starting_at=START
        ).data.id
        for _ in range(3)
    ]
    page = c.v1.contracts.list(customer_id=world.customer_id, limit=2)
    assert len(page.data) == 2 and page.cursor
    assert [x.id for x in c.v1.contracts.list(customer_id=world.customer_id, limit=2)] == made
    assert [x.id for x in c.v2.contracts.list(customer_id=world.customer_id, limit=1)] == made
    covering = c.v2.contracts.list(customer_id=world.customer_id, covering_date="2025-06-01T00:00:00Z")
    assert list(covering) == []


def test_contract_validation(world: World) -> None:
    c = world.client
    missing = str(uuid.uuid4())
    with pytest.raises(metronome.NotFoundError, match="customer_id"):
        c.v1.contracts.create(customer_id=missing, starting_at=START)
    with pytest.raises(metronome.BadRequestError, match="rate_card_id"):
        c.v1.contracts.create(customer_id=world.customer_id, rate_card_id=missing, starting_at=START)
    with pytest.raises(metronome.BadRequestError, match="ending_before"):
        c.v1.contracts.create(
            customer_id=world.customer_id, starting_at=START, ending_before="2025-01-01T00:00:00Z"
        )
    with pytest.raises(metronome.BadRequestError, match=r"commits\[0\].product_id"):
        c.v1.contracts.create(customer_id=world.customer_id, starting_at=START, commits=[commit(missing)])
    with pytest.raises(metronome.BadRequestError, match=r"commits\[0\].type"):
        c.v1.contracts.create(
            customer_id=world.customer_id, starting_at=START, commits=[commit(world.product_id, type="LATER")]
        )
    with pytest.raises(metronome.BadRequestError, match="void_invoices"):
        contract_id = c.v1.contracts.create(customer_id=world.customer_id, starting_at=START).data.id
        c.post(
            "/v1/contracts/archive",
            body={"customer_id": world.customer_id, "contract_id": contract_id},
            cast_to=object,
        )
    with pytest.raises(metronome.NotFoundError, match=missing):
        c.v1.contracts.retrieve(customer_id=world.customer_id, contract_id=missing)


def test_uniqueness_key_conflict_has_no_retry_hint_and_the_provider_client_never_retries_it(
    emulator: Emulator, world: World
) -> None:
    """A real 409 carries no `x-should-retry: false` (so the bare SDK would retry it, as it retries
    every 409): the provider's client (`providers.client.MetronomeClient`) sends it once."""
    from providers.client import make_client

    key = uid("iac:contract")
    first = world.client.v1.contracts.create(
        customer_id=world.customer_id, starting_at=START, uniqueness_key=key
    )
    retrying = make_client(emulator.base_url, emulator.token)  # the provider's retries (5)
    before = emulator.admin("GET", "stats").json()["by_route"]["POST /v1/contracts/create"]
    with pytest.raises(metronome.ConflictError, match="uniqueness_key") as err:
        retrying.v1.contracts.create(customer_id=world.customer_id, starting_at=START, uniqueness_key=key)
    assert first.data.id in err.value.body["message"]
    assert "x-should-retry" not in err.value.response.headers
    assert emulator.admin("GET", "stats").json()["by_route"]["POST /v1/contracts/create"] == before + 1


def test_contract_v2_get_and_edit(world: World) -> None:
    c = world.client
    contract_id = c.v1.contracts.create(
        customer_id=world.customer_id,
        rate_card_id=world.rate_card_id,
        starting_at=START,
        name="v2",
        commits=[commit(world.product_id)],
        credits=[credit(world.product_id)],
        overrides=[
            {"product_id": world.product_id, "starting_at": START, "type": "MULTIPLIER", "multiplier": 2}
        ],
    ).data.id
    got = c.v2.contracts.retrieve(customer_id=world.customer_id, contract_id=contract_id).data
    assert got.name == "v2" and got.rate_card_id == world.rate_card_id and len(got.commits) == 1
    commit_id, credit_id, override_id = got.commits[0].id, got.credits[0].id, got.overrides[0].id
    item_id = got.commits[0].access_schedule.schedule_items[0].id

    out = c.v2.contracts.edit(
        customer_id=world.customer_id,
        contract_id=contract_id,
        update_contract_name="v2 renamed",
        update_net_payment_terms_days=45,
        update_contract_end_date=END,
        add_commits=[commit(world.product_id, 250)],
        add_credits=[credit(world.product_id, 5)],
        update_commits=[
            {
                "commit_id": commit_id,
                "access_schedule": {"update_schedule_items": [{"id": item_id, "amount": 2000}]},
            }
        ],
        archive_credits=[{"id": credit_id}],
        remove_overrides=[{"id": override_id}],
        add_overrides=[
            {
                "product_id": world.product_id,
                "starting_at": START,
                "type": "OVERWRITE",
                "overwrite_rate": {"rate_type": "FLAT", "price": 7},
            }
        ],
    )
    assert out.data.id == contract_id
    got = c.v2.contracts.retrieve(customer_id=world.customer_id, contract_id=contract_id).data
    assert got.name == "v2 renamed" and got.net_payment_terms_days == 45 and got.ending_before.year == 2027
    assert len(got.commits) == 2
    edited = next(x for x in got.commits if x.id == commit_id)
    assert edited.access_schedule.schedule_items[0].amount == 2000
    archived = next(x for x in got.credits if x.id == credit_id)
    assert archived.archived_at is not None and len(got.credits) == 2
    assert [o.type for o in got.overrides] == ["OVERWRITE"] and got.overrides[0].overwrite_rate.price == 7

    with pytest.raises(metronome.BadRequestError, match="rate_card_id"):
        c.v2.contracts.edit(
            customer_id=world.customer_id,
            contract_id=contract_id,
            extra_body={"rate_card_id": world.rate_card_id},
        )
    with pytest.raises(metronome.BadRequestError, match="commit_id"):
        c.v2.contracts.edit(
            customer_id=world.customer_id, contract_id=contract_id, update_commits=[{"commit_id": "nope"}]
        )


def test_contract_billing_provider_configuration(fresh_emulator: Emulator) -> None:
    c = fresh_emulator.client(max_retries=0)
    fresh_emulator.admin("POST", "billing-providers", json={"billing_provider": "stripe", "connected": True})
    customer_id = c.v1.customers.create(name="acme").data.id
    config_id = (
        c.v1.customers.set_billing_configurations(
            data=[
                {
                    "customer_id": customer_id,
                    "billing_provider": "stripe",
                    "delivery_method": "direct_to_billing_provider",
                    "configuration": {
                        "stripe_customer_id": "cus_1",
                        "stripe_collection_method": "send_invoice",
                    },
                }
            ]
        )
        .data[0]
        .id
    )
    contract_id = c.v1.contracts.create(
        customer_id=customer_id,
        starting_at=START,
        billing_provider_configuration={"billing_provider_configuration_id": config_id},
    ).data.id
    got = c.v2.contracts.retrieve(customer_id=customer_id, contract_id=contract_id).data
    assert got.customer_billing_provider_configuration.id == config_id
    by_provider = c.v1.contracts.create(
        customer_id=customer_id,
        starting_at=START,
        billing_provider_configuration={
            "billing_provider": "stripe",
            "delivery_method": "direct_to_billing_provider",
        },
    ).data.id
    v1 = c.v1.contracts.retrieve(customer_id=customer_id, contract_id=by_provider).data
    assert v1.customer_billing_provider_configuration.id == config_id
    with pytest.raises(metronome.BadRequestError, match="billing_provider_configuration"):
        c.v1.contracts.create(
            customer_id=customer_id,
            starting_at=START,
            billing_provider_configuration={"billing_provider_configuration_id": "nope"},
        )
    other = (
        c.v1.customers.set_billing_configurations(
            data=[
                {
                    "customer_id": customer_id,
                    "billing_provider": "stripe",
                    "delivery_method": "direct_to_billing_provider",
                    "configuration": {"stripe_customer_id": "cus_2"},
                }
            ]
        )
        .data[0]
        .id
    )
    # A contract without a configuration gets one by an edit (going live)...
    bare = c.v1.contracts.create(customer_id=customer_id, starting_at=START).data.id
    before = c.v2.contracts.retrieve(customer_id=customer_id, contract_id=bare).data
    assert before.customer_billing_provider_configuration is None
    c.v2.contracts.edit(
        customer_id=customer_id,
        contract_id=bare,
        add_billing_provider_configuration_update={
            "billing_provider_configuration": {"billing_provider_configuration_id": other},
            "schedule": {"effective_at": "START_OF_CURRENT_PERIOD"},
        },
    )
    got = c.v2.contracts.retrieve(customer_id=customer_id, contract_id=bare).data
    assert got.customer_billing_provider_configuration.id == other
    v1 = c.v1.contracts.retrieve(customer_id=customer_id, contract_id=bare).data
    assert v1.customer_billing_provider_configuration.id == other


def test_edit_refuses_a_second_billing_provider_configuration(fresh_emulator: Emulator) -> None:
    """SDK docstring of add_billing_provider_configuration_update: "Currently only supports adding a
    billing provider configuration to a contract that does not already have one." """
    c = fresh_emulator.client(max_retries=0)
    fresh_emulator.admin("POST", "billing-providers", json={"billing_provider": "stripe", "connected": True})
    customer_id = c.v1.customers.create(name="acme").data.id
    first, second = c.v1.customers.set_billing_configurations(
        data=[
            {
                "customer_id": customer_id,
                "billing_provider": "stripe",
                "delivery_method": "direct_to_billing_provider",
                "configuration": {"stripe_customer_id": stripe_id},
            }
            for stripe_id in ("cus_1", "cus_2")
        ]
    ).data
    contract_id = c.v1.contracts.create(
        customer_id=customer_id,
        starting_at=START,
        billing_provider_configuration={"billing_provider_configuration_id": first.id},
    ).data.id
    for target in (second.id, first.id):  # another configuration, or the same one again
        with pytest.raises(metronome.BadRequestError) as info:
            c.v2.contracts.edit(
                customer_id=customer_id,
                contract_id=contract_id,
                update_contract_name="not applied either",
                add_billing_provider_configuration_update={
                    "billing_provider_configuration": {"billing_provider_configuration_id": target},
                    "schedule": {"effective_at": "START_OF_CURRENT_PERIOD"},
                },
            )
        assert "add_billing_provider_configuration_update" in str(info.value)
        assert "already has a billing provider configuration" in str(info.value)
    got = c.v2.contracts.retrieve(customer_id=customer_id, contract_id=contract_id).data
    assert got.customer_billing_provider_configuration.id == first.id
    assert got.name != "not applied either"  # the whole edit is refused
    assert c.v2.contracts.get_edit_history(customer_id=customer_id, contract_id=contract_id).data == []


def test_archiving_customer_archives_contracts(world: World) -> None:
    c = world.client
    contract_id = c.v1.contracts.create(customer_id=world.customer_id, starting_at=START).data.id
    c.v1.customers.archive(id=world.customer_id)
    got = c.v1.contracts.retrieve(customer_id=world.customer_id, contract_id=contract_id).data
    assert got.archived_at is not None
    with pytest.raises(metronome.BadRequestError, match="customer_id"):
        c.v1.contracts.create(customer_id=world.customer_id, starting_at=START)


def test_contract_custom_fields_and_commit_values(world: World) -> None:
    c = world.client
    for entity in ("contract", "commit"):
        try:
            c.v1.custom_fields.add_key(entity=entity, key="iac_identity", enforce_uniqueness=False)
        except metronome.BadRequestError:
            pass
    contract_id = c.v1.contracts.create(
        customer_id=world.customer_id,
        starting_at=START,
        custom_fields={"iac_identity": "p/s/c"},
        commits=[commit(world.product_id, custom_fields={"iac_identity": "p/s/c#commit"})],
    ).data.id
    got = c.v2.contracts.retrieve(customer_id=world.customer_id, contract_id=contract_id).data
    assert got.custom_fields == {"iac_identity": "p/s/c"}
    assert got.commits[0].custom_fields == {"iac_identity": "p/s/c#commit"}
    c.v1.custom_fields.set_values(
        entity="commit", entity_id=got.commits[0].id, custom_fields={"iac_identity": "x"}
    )
    got = c.v2.contracts.retrieve(customer_id=world.customer_id, contract_id=contract_id).data
    assert got.commits[0].custom_fields == {"iac_identity": "x"}


def test_rate_card_alias_transition_and_edit_history(world: World) -> None:
    c = world.client
    alias = uid("std")
    c.v1.contracts.rate_cards.update(rate_card_id=world.rate_card_id, aliases=[{"name": alias}])
    first = c.v1.contracts.create(
        customer_id=world.customer_id, starting_at=START, rate_card_alias=alias
    ).data.id
    got = c.v2.contracts.retrieve(customer_id=world.customer_id, contract_id=first).data
    assert got.rate_card_id == world.rate_card_id
    with pytest.raises(metronome.BadRequestError, match="rate_card_alias"):
        c.v1.contracts.create(customer_id=world.customer_id, starting_at=START, rate_card_alias=uid("none"))

    renewal = c.v1.contracts.create(
        customer_id=world.customer_id,
        starting_at=END,
        rate_card_id=world.rate_card_id,
        transition={"from_contract_id": first, "type": "RENEWAL"},
    ).data.id
    got = c.v2.contracts.retrieve(customer_id=world.customer_id, contract_id=renewal).data
    assert [(t.from_contract_id, t.to_contract_id) for t in got.transitions] == [(first, renewal)]

    key = uid("edit")
    c.v2.contracts.edit(
        customer_id=world.customer_id, contract_id=first, update_contract_name="a", uniqueness_key=key
    )
    with pytest.raises(metronome.ConflictError, match="uniqueness_key"):
        c.v2.contracts.edit(
            customer_id=world.customer_id, contract_id=first, update_contract_name="b", uniqueness_key=key
        )
    history = c.v2.contracts.get_edit_history(customer_id=world.customer_id, contract_id=first).data
    assert len(history) == 1
    assert c.v2.contracts.retrieve(customer_id=world.customer_id, contract_id=first).data.name == "a"
