"""A contract's subscriptions, scheduled charges, recurring commits and credits, threshold configurations,
usage statement schedule and override specifiers, through the real provider host over gRPC against
emulators over HTTP, on both kinds of account (contract editing on, and amendments only): create, a
no-change diff, what changes in place, what the money rule refuses, and a read after a hand edit made with
the official SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from conftest import Emulator, start_emulator
from provider_host import ProviderError, ProviderHost, unique

from providers.client import USD_CENTS_ID
from providers.contract import ContractProvider as K
from providers.customer import CustomerProvider as C
from providers.product import ProductProvider as P
from providers.rate_card import RateCardProvider as R

START = "2026-01-01T00:00:00Z"
YEAR_END = "2027-01-01T00:00:00Z"
FEE = 5000  # the platform fee, cents a month


def months_begun() -> int:
    """How many months from START have begun by now (the periods a monthly term has billed)."""
    now = datetime.now(timezone.utc)
    return (now.year - 2026) * 12 + now.month


def later(days: int) -> str:
    """A time `days` from now (a date still to come when the test runs), on the hour."""
    at = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(days=days)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module", params=["on", "off"])
def account(request) -> Iterator[Emulator]:
    emu = start_emulator("--contract-editing", request.param)
    yield emu
    emu.stop()


def editing(account: Emulator) -> bool:
    return account.admin("GET", "config").json()["contract_editing"]


def setup(host: ProviderHost) -> dict[str, str]:
    out = {}
    for key, kind in (
        ("fee", "SUBSCRIPTION"),
        ("seat", "SUBSCRIPTION"),
        ("fixed", "FIXED"),
        ("other", "FIXED"),
    ):
        name = unique(key)
        out[key] = host.create_checked(P, {"identity": f"t/s/{name}", "name": name, "type": kind})[0]
    name = unique("card")
    rates = [
        {
            "product_id": out[key],
            "starting_at": START,
            "rate_type": "FLAT",
            "price": price,
            "billing_frequency": "MONTHLY",
        }
        for key, price in (("fee", FEE), ("seat", 1200))
    ]
    out["card"] = host.create_checked(R, {"identity": f"t/s/{name}", "name": name, "rates": rates})[0]
    name = unique("cust")
    out["customer"] = host.create_checked(C, {"identity": f"t/s/{name}", "name": name})[0]
    return out


def platform_fee(refs: dict[str, str], **over) -> dict:
    return {
        "name": "platform fee",
        "collection_schedule": "ADVANCE",
        "proration": {"is_prorated": True},
        "subscription_rate": {"billing_frequency": "MONTHLY", "product_id": refs["fee"]},
        "initial_quantity": 1,
        **over,
    }


def terms(refs: dict[str, str]) -> dict:
    return {
        "subscriptions": [platform_fee(refs, temporary_id="fee")],
        "scheduled_charges": [
            {
                "product_id": refs["fixed"],
                "name": "onboarding",
                "schedule": {"schedule_items": [{"timestamp": START, "amount": 20000}]},
            }
        ],
        "recurring_commits": [
            {
                "product_id": refs["fixed"],
                "name": "monthly commit",
                "access_amount": {"unit_price": 10000, "quantity": 1},
                "invoice_amount": {"unit_price": 10000, "quantity": 1},
                "commit_duration": {"value": 1},
                "priority": 1,
                "starting_at": START,
                "recurrence_frequency": "MONTHLY",
            }
        ],
        "recurring_credits": [
            {
                "product_id": refs["other"],
                "name": "per seat",
                "access_amount": {"unit_price": 100},
                "commit_duration": {"value": 1},
                "priority": 2,
                "starting_at": START,
                "subscription_config": {
                    "subscription_id": "fee",
                    "apply_seat_increase_config": {"is_prorated": True},
                },
            }
        ],
        "spend_threshold_configuration": {
            "commit": {"product_id": refs["fixed"], "name": "threshold"},
            "is_enabled": True,
            "payment_gate_config": {"payment_gate_type": "NONE"},
            "threshold_amount": 50000,
        },
        "prepaid_balance_threshold_configuration": {
            "commit": {"product_id": refs["other"]},
            "is_enabled": True,
            "payment_gate_config": {
                "payment_gate_type": "STRIPE",
                "stripe_config": {"payment_type": "INVOICE"},
            },
            "threshold_amount": 1000,
            "recharge_to_amount": 10000,
        },
        "usage_statement_schedule": {"frequency": "MONTHLY", "day": "FIRST_OF_MONTH"},
        "overrides": [
            {
                "starting_at": START,
                "multiplier": 0.9,
                "override_specifiers": [{"product_id": refs["fee"], "billing_frequency": "MONTHLY"}],
            }
        ],
    }


def contract(refs: dict[str, str], **over) -> dict:
    name = unique("k")
    return {
        "identity": f"metronome-iac/test/{name}",
        "customer_id": refs["customer"],
        "rate_card_id": refs["card"],
        "starting_at": START,
        "name": name,
        **terms(refs),
        **over,
    }


def live(account: Emulator, refs: dict[str, str], contract_id: str):
    return account.client().v2.contracts.retrieve(customer_id=refs["customer"], contract_id=contract_id).data


def test_create_read_and_no_change_diff(account):
    with ProviderHost(account.base_url, account.token) as host:
        refs = setup(host)
        object_id, inputs, outs = host.create_checked(K, contract(refs))
        got = live(account, refs, object_id)
        [sub] = got.subscriptions
        assert sub.subscription_rate.product.id == refs["fee"] and sub.quantity_schedule[0].quantity == 1
        assert [c.name for c in got.recurring_commits] == ["monthly commit"]
        assert got.recurring_credits[0].subscription_config.subscription_id == sub.id
        assert got.scheduled_charges[0].schedule.schedule_items[0].amount == 20000
        assert got.prepaid_balance_threshold_configuration.payment_gate_config.payment_gate_type == "STRIPE"
        assert got.overrides[0].override_specifiers[0].product_id == refs["fee"]
        read_id, read_outs = host.read(K, object_id, outs)
        assert read_id == object_id
        assert host.diff(K, object_id, read_outs, inputs).changes == "NONE", read_outs
        assert read_outs["recurring_credits"][0]["subscription_config"]["subscription_id"] == "fee"


def test_changes_in_place_on_either_kind_of_account(account):
    """With contract editing, a subscription's quantity schedule and name, a recurring commit's amounts,
    a scheduled charge's dates and a threshold change in place (one edit each, nothing re-added); without
    it, an amendment can add a scheduled charge, and the rest is refused at preview naming what cannot be
    done."""
    kind = "on" if editing(account) else "off"
    with ProviderHost(account.base_url, account.token, config={"metronome:contractEditing": kind}) as host:
        refs = setup(host)
        object_id, inputs, outs = host.create_checked(K, contract(refs))
        soon = later(40)
        extra_charge = {
            "product_id": refs["other"],
            "name": "training",
            "schedule": {"schedule_items": [{"timestamp": soon, "amount": 700}]},
        }
        added = host.check_ok(
            K, {**inputs, "scheduled_charges": [*inputs["scheduled_charges"], extra_charge]}, olds=inputs
        )
        assert host.diff(K, object_id, outs, added).changes == "SOME"
        outs = host.update(K, object_id, outs, added)
        charges = [c for c in live(account, refs, object_id).scheduled_charges if not c.archived_at]
        assert sorted(c.name for c in charges) == ["onboarding", "training"]
        _, read_outs = host.read(K, object_id, outs)
        assert host.diff(K, object_id, read_outs, added).changes == "NONE"

        changed = host.check_ok(
            K,
            {
                **added,
                "subscriptions": [
                    platform_fee(
                        refs,
                        temporary_id="fee",
                        name="platform",
                        quantity_schedule=[{"starting_at": soon, "quantity": 3}],
                    )
                ],
                "recurring_commits": [
                    {
                        **added["recurring_commits"][0],
                        "access_amount": {"unit_price": 12000, "quantity": 1},
                        "invoice_amount": {"unit_price": 12000, "quantity": 1},
                    }
                ],
                "scheduled_charges": [
                    added["scheduled_charges"][0],
                    {**extra_charge, "schedule": {"schedule_items": [{"timestamp": soon, "amount": 900}]}},
                ],
                "spend_threshold_configuration": {
                    **added["spend_threshold_configuration"],
                    "threshold_amount": 60000,
                },
            },
            olds=added,
        )
        if kind == "off":
            with pytest.raises(ProviderError) as info:
                host.diff(K, object_id, outs, changed)
            reason = info.value.details
            assert "no contract editing" in reason
            for what in (
                "subscriptions in place",
                "recurring commits in place",
                "spend_threshold_configuration",
            ):
                assert what in reason, what
            return
        assert host.diff(K, object_id, outs, changed).changes == "SOME"
        outs = host.update(K, object_id, outs, changed)
        got = live(account, refs, object_id)
        [sub] = got.subscriptions
        assert sub.name == "platform" and [q.quantity for q in sub.quantity_schedule] == [1, 3]
        assert got.recurring_commits[0].access_amount.unit_price == 12000 and len(got.recurring_commits) == 1
        assert got.spend_threshold_configuration.threshold_amount == 60000
        training = next(c for c in got.scheduled_charges if c.name == "training")
        assert [i.amount for i in training.schedule.schedule_items] == [900] and not training.archived_at
        assert len(got.scheduled_charges) == 2  # changed in place, nothing archived and added
        _, read_outs = host.read(K, object_id, outs)
        assert host.diff(K, object_id, read_outs, changed).changes == "NONE", read_outs

        # Dropped from the catalog: ended (subscriptions, recurring grants cannot be removed), disabled.
        dropped = host.check_ok(
            K,
            {
                **changed,
                "subscriptions": None,
                "recurring_credits": None,
                "spend_threshold_configuration": None,
            },
            olds=changed,
        )
        outs = host.update(K, object_id, outs, dropped)
        got = live(account, refs, object_id)
        assert (
            got.subscriptions[0].ending_before is not None
            and got.recurring_credits[0].ending_before is not None
        )
        assert got.spend_threshold_configuration.is_enabled is False
        _, read_outs = host.read(K, object_id, outs)
        assert host.diff(K, object_id, read_outs, dropped).changes == "NONE", read_outs


def test_a_change_that_would_bill_again_is_refused_with_its_amount(account):
    """A scheduled charge moved to another product (archived and added: its past date invoiced again),
    a subscription changed where nothing changes it in place (ended and added over the months it billed)
    and a recurring commit re-created are refused at preview, naming the contract, the item and the
    amount; allow_reinvoice lets them through."""
    with ProviderHost(account.base_url, account.token) as host:
        refs = setup(host)
        object_id, inputs, outs = host.create_checked(K, contract(refs))
        label = f"Contract '{inputs['identity'].rsplit('/', 1)[-1]}'"
        charge = inputs["scheduled_charges"][0]
        cases = {
            "scheduled charge": (
                {"scheduled_charges": [{**charge, "product_id": refs["other"]}]},
                "scheduled charge 'onboarding' on product",
                "20000 invoiced again",
            ),
            "subscription": (
                {"subscriptions": [platform_fee(refs, temporary_id="fee", collection_schedule="ARREARS")]},
                "subscription 'platform fee' on product",
                f"{FEE * months_begun():g} invoiced again ({months_begun()} MONTHLY period(s)",
            ),
            "recurring commit": (
                {"recurring_commits": [{**inputs["recurring_commits"][0], "product_id": refs["other"]}]},
                "recurring commit 'monthly commit'",
                f"{10000 * months_begun():g} invoiced again",
            ),
        }
        for case, (change, item, amount) in cases.items():
            news = host.check_ok(K, {**inputs, **change}, olds=inputs)
            with pytest.raises(ProviderError) as info:
                host.diff(K, object_id, outs, news)
            reason = info.value.details
            assert label in reason and item in reason and amount in reason, (case, reason)
            assert "allow_reinvoice: true" in reason, case
        # A charge still to come is no re-invoice: moved freely.
        future = {**charge, "schedule": {"schedule_items": [{"timestamp": later(30), "amount": 500}]}}
        with_future = host.check_ok(K, {**inputs, "scheduled_charges": [charge, future]}, olds=inputs)
        moved = host.check_ok(
            K,
            {**with_future, "scheduled_charges": [charge, {**future, "product_id": refs["other"]}]},
            olds=with_future,
        )
        assert (
            host.diff(
                K, object_id, {**outs, "scheduled_charges": with_future["scheduled_charges"]}, moved
            ).changes
            == "SOME"
        )
        if not editing(account):
            return
        # Applied regardless of the preview: refused against the live contract, nothing sent.
        news = host.check_ok(K, {**inputs, **cases["scheduled charge"][0]}, olds=inputs)
        with pytest.raises(ProviderError, match="invoiced again"):
            host.update(K, object_id, outs, news)
        assert [
            c.product.id for c in live(account, refs, object_id).scheduled_charges if not c.archived_at
        ] == [refs["fixed"]]
        meant = {**news, "allow_reinvoice": True}
        assert host.diff(K, object_id, outs, meant).changes == "SOME"
        host.update(K, object_id, outs, meant)
        kept = [c.product.id for c in live(account, refs, object_id).scheduled_charges if not c.archived_at]
        assert kept == [refs["other"]]


def test_read_after_a_hand_edit_with_the_sdk(account):
    """What someone changes in the dashboard or with the SDK shows on read (and so in drift)."""
    with ProviderHost(account.base_url, account.token) as host:
        refs = setup(host)
        object_id, inputs, outs = host.create_checked(K, contract(refs))
        client = account.client()
        if editing(account):
            got = live(account, refs, object_id)
            client.v2.contracts.edit(
                customer_id=refs["customer"],
                contract_id=object_id,
                update_subscriptions=[
                    {
                        "subscription_id": got.subscriptions[0].id,
                        "quantity_updates": [{"starting_at": later(10), "quantity": 7}],
                    }
                ],
                update_prepaid_balance_threshold_configuration={"threshold_amount": 2500},
                add_recurring_credits=[
                    {
                        "product_id": refs["other"],
                        "access_amount": {"unit_price": 5, "quantity": 1},
                        "commit_duration": {"value": 1},
                        "priority": 3,
                        "starting_at": START,
                    }
                ],
            )
            _, drifted = host.read(K, object_id, outs)
            assert drifted["subscriptions"][0]["quantity_schedule"][0]["quantity"] == 7
            assert drifted["prepaid_balance_threshold_configuration"]["threshold_amount"] == 2500
            assert len(drifted["recurring_credits"]) == 2
        else:
            client.v1.contracts.amend(
                customer_id=refs["customer"],
                contract_id=object_id,
                starting_at=START,
                scheduled_charges=[
                    {
                        "product_id": refs["other"],
                        "schedule": {"schedule_items": [{"timestamp": START, "amount": 5}]},
                    }
                ],
            )
            _, drifted = host.read(K, object_id, outs)
            assert len(drifted["scheduled_charges"]) == 2
        assert host.diff(K, object_id, drifted, inputs).changes == "SOME"


def test_check_names_the_field_and_the_fix(emulator):
    with ProviderHost(emulator.base_url, emulator.token) as host:
        base = {"identity": "t/s/k", "customer_id": "c", "rate_card_id": "r", "starting_at": START}
        refs = {"fee": "p", "fixed": "f", "other": "o"}
        cases = {
            "subscriptions[0].initial_quantity": {
                "subscriptions": [{**platform_fee(refs), "initial_quantity": None}]
            },
            "recurring_credits[0].subscription_config.subscription_id": {
                "recurring_credits": terms(refs)["recurring_credits"]
            },
            "recurring_commits[0].access_amount.quantity": {
                "recurring_commits": [
                    {**terms(refs)["recurring_commits"][0], "access_amount": {"unit_price": 1}}
                ]
            },
            "usage_statement_schedule.billing_anchor_date": {
                "usage_statement_schedule": {"frequency": "MONTHLY", "day": "CUSTOM_DATE"}
            },
            "overrides[0].override_specifiers": {
                "overrides": [{**terms(refs)["overrides"][0], "product_id": "x"}]
            },
        }
        for field, change in cases.items():
            failures = dict(host.check(K, {}, {**base, **change})[1])
            assert field in failures and "to fix" in failures[field], (field, failures)
        # Changing the statement schedule replaces the contract: refused unless allow_replacement.
        olds = host.check_ok(K, {**base, "usage_statement_schedule": {"frequency": "MONTHLY"}})
        failures = dict(
            host.check(K, olds, {**olds, "usage_statement_schedule": {"frequency": "QUARTERLY"}})[1]
        )
        assert "allow_replacement" in failures["usage_statement_schedule"]


def test_usd_written_out_reads_back_the_same(fresh_emulator):
    """Amounts in USD cents spelled out (credit_type_id) are the default: no diff after a read."""
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as host:
        refs = setup(host)
        spelled = terms(refs)["recurring_commits"][0]
        spelled = {
            **spelled,
            "access_amount": {**spelled["access_amount"], "credit_type_id": USD_CENTS_ID},
            "invoice_amount": {**spelled["invoice_amount"], "credit_type_id": USD_CENTS_ID},
        }
        object_id, inputs, outs = host.create_checked(K, contract(refs, recurring_commits=[spelled]))
        _, read_outs = host.read(K, object_id, outs)
        assert host.diff(K, object_id, read_outs, inputs).changes == "NONE", read_outs
