"""The emulator's rules for subscriptions, recurring grants, threshold configurations and amendments, as the
official SDK sees them (each rule has its row in docs/emulator-fidelity.md, "Contracts")."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import metronome
import pytest
from conftest import Emulator, start_emulator

START = "2026-01-01T00:00:00Z"


def hours_from_now(hours: int) -> str:
    at = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def off() -> Iterator[Emulator]:
    emu = start_emulator("--contract-editing", "off")
    yield emu
    emu.stop()


def account(emulator: Emulator) -> dict:
    c = emulator.client(max_retries=0)
    fee = c.v1.contracts.products.create(name="fee", type="SUBSCRIPTION").data.id
    fixed = c.v1.contracts.products.create(name="fixed", type="FIXED").data.id
    card = c.v1.contracts.rate_cards.create(name="card").data.id
    c.v1.contracts.rate_cards.rates.add(
        rate_card_id=card,
        product_id=fee,
        starting_at=START,
        entitled=True,
        rate_type="FLAT",
        price=500,
        billing_frequency="MONTHLY",
    )
    customer = c.v1.customers.create(name="c").data.id
    return {"client": c, "fee": fee, "fixed": fixed, "card": card, "customer": customer}


def subscription(refs: dict, **over) -> dict:
    return {
        "collection_schedule": "ADVANCE",
        "proration": {"is_prorated": True},
        "subscription_rate": {"billing_frequency": "MONTHLY", "product_id": refs["fee"]},
        "initial_quantity": 2,
        **over,
    }


def test_a_subscription_needs_a_subscription_product_with_a_rate_of_its_frequency(emulator):
    refs = account(emulator)
    c = refs["client"]
    base = {"customer_id": refs["customer"], "rate_card_id": refs["card"], "starting_at": START}
    annual = {"billing_frequency": "ANNUAL", "product_id": refs["fee"]}
    with pytest.raises(metronome.BadRequestError, match="no rate for product"):
        c.v1.contracts.create(**base, subscriptions=[subscription(refs, subscription_rate=annual)])
    fixed = {"billing_frequency": "MONTHLY", "product_id": refs["fixed"]}
    with pytest.raises(metronome.BadRequestError, match="not a SUBSCRIPTION product"):
        c.v1.contracts.create(**base, subscriptions=[subscription(refs, subscription_rate=fixed)])
    arrears = subscription(
        refs, collection_schedule="ARREARS", proration={"invoice_behavior": "BILL_IMMEDIATELY"}
    )
    with pytest.raises(metronome.BadRequestError, match="BILL_IMMEDIATELY is only available with ADVANCE"):
        c.v1.contracts.create(**base, subscriptions=[arrears])
    with pytest.raises(metronome.BadRequestError, match="initial_quantity is required"):
        c.v1.contracts.create(**base, subscriptions=[subscription(refs, initial_quantity=None)])


def test_the_quantity_schedule_shows_the_current_quantity_and_those_to_come(emulator):
    refs = account(emulator)
    c = refs["client"]
    contract_id = c.v1.contracts.create(
        customer_id=refs["customer"],
        rate_card_id=refs["card"],
        starting_at=START,
        subscriptions=[subscription(refs)],
    ).data.id
    sub = c.v2.contracts.retrieve(customer_id=refs["customer"], contract_id=contract_id).data.subscriptions[0]
    past, future = "2026-02-01T00:00:00Z", hours_from_now(24 * 40)
    c.v2.contracts.edit(
        customer_id=refs["customer"],
        contract_id=contract_id,
        update_subscriptions=[
            {
                "subscription_id": sub.id,
                "quantity_updates": [
                    {"starting_at": past, "quantity": 4},
                    {"starting_at": future, "quantity_delta": 3},
                ],
            }
        ],
    )
    got = c.v2.contracts.retrieve(customer_id=refs["customer"], contract_id=contract_id).data.subscriptions[0]
    # The initial 2 (January) has ended: not shown. 4 from February on, then 4 + 3.
    assert [(q.quantity, q.starting_at.month) for q in got.quantity_schedule] == [
        (4, 2),
        (7, int(future[5:7])),
    ]
    assert (
        got.billing_periods.current.starting_at
        <= datetime.now(timezone.utc)
        < got.billing_periods.current.ending_before
    )
    # Ended, never archived or removed: an end at its start is taken (a subscription that never billed).
    c.v2.contracts.edit(
        customer_id=refs["customer"],
        contract_id=contract_id,
        update_subscriptions=[{"subscription_id": sub.id, "ending_before": START}],
    )
    with pytest.raises(metronome.BadRequestError, match="not accepted by /v2/contracts/edit"):
        c.post(
            "/v2/contracts/edit",
            cast_to=object,
            body={
                "customer_id": refs["customer"],
                "contract_id": contract_id,
                "archive_subscriptions": [{"id": sub.id}],
            },
        )


def test_threshold_configurations_are_added_once_then_updated(emulator):
    refs = account(emulator)
    c = refs["client"]
    contract_id = c.v1.contracts.create(
        customer_id=refs["customer"], rate_card_id=refs["card"], starting_at=START
    ).data.id
    config = {
        "commit": {"product_id": refs["fixed"]},
        "is_enabled": True,
        "payment_gate_config": {"payment_gate_type": "NONE"},
        "threshold_amount": 100,
    }
    ids = {"customer_id": refs["customer"], "contract_id": contract_id}
    with pytest.raises(metronome.BadRequestError, match="the contract has none; use add_"):
        c.v2.contracts.edit(**ids, update_spend_threshold_configuration={"threshold_amount": 5})
    c.v2.contracts.edit(**ids, add_spend_threshold_configuration=config)
    with pytest.raises(metronome.BadRequestError, match="already has one; use update_"):
        c.v2.contracts.edit(**ids, add_spend_threshold_configuration=config)
    c.v2.contracts.edit(
        **ids, update_spend_threshold_configuration={"threshold_amount": 250, "is_enabled": False}
    )
    got = c.v2.contracts.retrieve(**ids).data.spend_threshold_configuration
    assert got.threshold_amount == 250 and got.is_enabled is False and got.commit.product_id == refs["fixed"]


def test_a_recurring_grant_names_a_subscription_of_its_contract(emulator):
    refs = account(emulator)
    c = refs["client"]
    credit = {
        "product_id": refs["fixed"],
        "access_amount": {"unit_price": 10},
        "commit_duration": {"value": 1},
        "priority": 1,
        "starting_at": START,
        "subscription_config": {
            "subscription_id": "seats",
            "apply_seat_increase_config": {"is_prorated": True},
        },
    }
    base = {"customer_id": refs["customer"], "rate_card_id": refs["card"], "starting_at": START}
    with pytest.raises(metronome.BadRequestError, match="names no subscription of this contract"):
        c.v1.contracts.create(**base, recurring_credits=[credit])
    contract_id = c.v1.contracts.create(
        **base, subscriptions=[subscription(refs, temporary_id="seats")], recurring_credits=[credit]
    ).data.id
    got = c.v2.contracts.retrieve(customer_id=refs["customer"], contract_id=contract_id).data
    assert got.recurring_credits[0].subscription_config.subscription_id == got.subscriptions[0].id
    assert (
        got.recurring_credits[0].rate_type == "COMMIT_RATE"
        and got.recurring_credits[0].proration == "FIRST_AND_LAST"
    )


def test_an_amendment_takes_only_what_its_params_list(off):
    refs = account(off)
    c = refs["client"]
    contract_id = c.v1.contracts.create(
        customer_id=refs["customer"], rate_card_id=refs["card"], starting_at=START
    ).data.id
    with pytest.raises(metronome.BadRequestError, match="subscriptions: not accepted by /v1/contracts/amend"):
        c.post(
            "/v1/contracts/amend",
            cast_to=object,
            body={
                "customer_id": refs["customer"],
                "contract_id": contract_id,
                "starting_at": START,
                "subscriptions": [subscription(refs)],
            },
        )
    c.v1.contracts.amend(
        customer_id=refs["customer"],
        contract_id=contract_id,
        starting_at=START,
        scheduled_charges=[
            {"product_id": refs["fixed"], "schedule": {"schedule_items": [{"timestamp": START, "amount": 5}]}}
        ],
    )
    got = c.v1.contracts.retrieve(customer_id=refs["customer"], contract_id=contract_id).data
    assert [ch.schedule.schedule_items[0].amount for ch in got.current.scheduled_charges] == [5]
