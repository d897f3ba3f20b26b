"""Contract through the real provider host over gRPC, against the emulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provider_host import UNKNOWN, ProviderError, ProviderHost, unique

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
    allowed = {**inputs, "allow_replacement": True}
    for field, value in (
        ("customer_id", "other"),
        ("rate_card_id", refs["card2"]),
        ("starting_at", "2026-02-01T00:00:00Z"),
        ("customer_id", UNKNOWN),
    ):
        d = host.diff(K, "x", outs, {**allowed, field: value})
        assert d.replaces == [field]
        # Without allow_replacement diff refuses too (check does first; after a refresh only diff can).
        with pytest.raises(ProviderError, match=f"changing {field}.*allow_replacement: true"):
            host.diff(K, "x", outs, {**inputs, field: value})


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


def test_billing_provider_configuration_is_added_once_never_changed(fresh_emulator):
    """Metronome only adds a billing provider configuration to a contract without one (v2 edit
    `add_billing_provider_configuration_update`): going live is an edit; a change to another configuration
    is refused at check and diff, and against the live contract before any edit is sent."""
    from provider_host import ProviderError

    client = fresh_emulator.client()
    fresh_emulator.admin("POST", "billing-providers", json={"billing_provider": "stripe", "connected": True})
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as h:
        customer_id = h.create_checked(C, {"identity": "t/s/bpc-customer", "name": "bpc customer"})[0]
        x, y = client.v1.customers.set_billing_configurations(
            data=[
                {
                    "customer_id": customer_id,
                    "billing_provider": "stripe",
                    "delivery_method": "direct_to_billing_provider",
                    "configuration": {"stripe_customer_id": stripe_id},
                }
                for stripe_id in ("cus_X", "cus_Y")
            ]
        ).data
        base = {"identity": "metronome-iac/test/bpc", "customer_id": customer_id, "starting_at": START}
        object_id, inputs, outs = h.create_checked(K, {**base, "name": "bpc"})

        def edits() -> int:
            return len(
                client.v2.contracts.get_edit_history(customer_id=customer_id, contract_id=object_id).data
            )

        def bound():
            got = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=object_id).data
            return got.customer_billing_provider_configuration, got.name

        # None -> one (go-live): an edit.
        on_x = h.check_ok(
            K,
            {**inputs, "billing_provider_configuration": {"billing_provider_configuration_id": x.id}},
            olds=inputs,
        )
        d = h.diff(K, object_id, outs, on_x)
        assert d.changes == "SOME" and d.replaces == []
        outs = h.update(K, object_id, outs, on_x)
        assert bound()[0].id == x.id and edits() == 1
        _, refreshed = h.read(K, object_id, outs)
        assert h.diff(K, object_id, refreshed, on_x).changes == "NONE"

        # One -> another: refused at diff (preview), naming the way forward.
        on_y = {**on_x, "billing_provider_configuration": {"billing_provider_configuration_id": y.id}}
        with pytest.raises(ProviderError) as info:
            h.diff(K, object_id, refreshed, on_y)
        reason = info.value.details
        assert (
            "billing_provider_configuration cannot change from" in reason
            and x.id in reason
            and y.id in reason
        )
        assert "end this contract" in reason and "renewal" in reason
        assert "Metronome dashboard with Metronome's help" in reason
        # A replacement (allowed) is a new contract, created on the new configuration: not refused.
        replacing = {**on_y, "starting_at": "2026-02-01T00:00:00Z", "allow_replacement": True}
        assert h.check(K, on_x, replacing)[1] == []
        assert h.diff(K, object_id, refreshed, replacing).replaces == ["starting_at"]
        # Applied regardless (check bypassed): refused before the edit is sent, so nothing of it applies.
        with pytest.raises(ProviderError) as info:
            h.update(K, object_id, outs, {**on_y, "name": "renamed"})
        assert "billing_provider_configuration cannot change from" in info.value.details
        config, name = bound()
        assert config.id == x.id and name == "bpc" and edits() == 1

        # The same configuration named by provider and delivery method: accepted, nothing sent for it.
        by_provider = {
            **on_x,
            "billing_provider_configuration": {
                "billing_provider": "stripe",
                "delivery_method": "direct_to_billing_provider",
            },
        }
        assert h.check(K, on_x, by_provider)[1] == []
        h.update(K, object_id, outs, by_provider)
        assert bound()[0].id == x.id and edits() == 1

        # Once the configuration is archived (Metronome archives it on the contract too), read shows the
        # contract still on it; a new one is no longer refused (nothing can bind this contract again, see
        # test_a_configuration_archived_by_hand_does_not_lock_the_contract): the difference is left.
        client.v1.customers.archive_billing_configurations(
            customer_id=customer_id, customer_billing_provider_configuration_ids=[x.id]
        )
        assert bound()[0].archived_at is not None
        _, archived = h.read(K, object_id, outs)
        assert archived["billing_provider_configuration"] == {"billing_provider_configuration_id": x.id}
        assert h.diff(K, object_id, archived, on_y).changes == "NONE"

        # A contract that has ended bills nothing more: its configuration is left as it is, no diff.
        ended_id, ended_in, ended_out = h.create_checked(
            K,
            {
                **base,
                "identity": "metronome-iac/test/bpc-ended",
                "starting_at": "2025-01-01T00:00:00Z",
                "ending_before": "2025-07-01T00:00:00Z",
                "billing_provider_configuration": {"billing_provider_configuration_id": y.id},
            },
        )
        z = client.v1.customers.set_billing_configurations(
            data=[
                {
                    "customer_id": customer_id,
                    "billing_provider": "stripe",
                    "delivery_method": "direct_to_billing_provider",
                    "configuration": {"stripe_customer_id": "cus_Z"},
                }
            ]
        ).data[0]
        moved = {**ended_in, "billing_provider_configuration": {"billing_provider_configuration_id": z.id}}
        assert h.check(K, ended_in, moved)[1] == []
        assert h.diff(K, ended_id, ended_out, moved).changes == "NONE"
        got = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=ended_id).data
        assert got.customer_billing_provider_configuration.id == y.id


USD = "2714e483-4ff1-48e4-9e25-ac732e8f24f2"  # USD (cents): Metronome's default credit type


def test_equivalent_spellings_read_back_without_a_diff(host, refs):
    """Spellings Metronome stores in its own form: after create + refresh, the same inputs diff to nothing."""
    recurring = {
        "starting_at": START,
        "ending_before": "2026-04-01T00:00:00Z",
        "frequency": "MONTHLY",
        "amount_distribution": "EACH",
        "amount": 10,
    }
    inputs = contract(
        refs,
        new_customer(host),
        name=None,
        commits=[
            {
                "product_id": refs["commit_product"],
                "type": "POSTPAID",
                "name": "postpaid",
                "access_schedule": {
                    "credit_type_id": USD,  # the default, written out
                    "schedule_items": [
                        {"amount": 20, "starting_at": "2026-07-01T00:00:00Z", "ending_before": "2027-01-01"},
                        {"amount": 10, "starting_at": "2026-01-01", "ending_before": "2026-07-01T00:00:00Z"},
                    ],
                },
                "invoice_schedule": {"recurring_schedule": recurring},
            }
        ],
        overrides=[
            {
                "starting_at": START,
                "product_id": refs["commit_product"],
                "type": "MULTIPLIER",  # what Metronome infers from `multiplier`
                "multiplier": 0.9,
            }
        ],
        discounts=[
            {
                "product_id": refs["credit_product"],
                "schedule": {
                    "credit_type_id": USD,
                    "schedule_items": [
                        {"timestamp": "2026-02-01 00:00:00Z", "amount": 1},
                        {"timestamp": "2026-01-01t00:00:00z", "amount": 2},
                    ],
                },
            },
            {"product_id": refs["commit_product"], "schedule": {"recurring_schedule": recurring}},
        ],
    )
    inputs["name"] = ""  # a blank optional string is "not set"
    object_id, checked, outs = host.create_checked(K, inputs)
    _, read_outs = host.read(K, object_id, outs)
    d = host.diff(K, object_id, read_outs, checked)
    assert (d.changes, d.replaces) == ("NONE", []), (d, read_outs, checked)
    # Written without the defaults and in another order: still the same contract.
    plain = {**checked, "overrides": [{k: v for k, v in checked["overrides"][0].items() if k != "type"}]}
    assert host.diff(K, object_id, read_outs, plain).changes == "NONE"
    # A recurring invoice schedule moved by hand out of its window shows as drift.


def test_a_hand_added_discount_never_replaces_the_contract_by_surprise(host, emulator, refs):
    """Refresh brings in a discount added by hand: the plan would replace the contract (Metronome cannot
    remove a discount). Diff refuses that unless allow_replacement; with it, the replacement is a new
    contract, never the old one taken over through its uniqueness key and then archived."""
    client = emulator.client()
    customer_id = new_customer(host)
    object_id, inputs, outs = host.create_checked(K, contract(refs, customer_id))
    client.v2.contracts.edit(
        customer_id=customer_id,
        contract_id=object_id,
        add_discounts=[
            {
                "product_id": refs["credit_product"],
                "schedule": {"schedule_items": [{"timestamp": "2026-12-01T00:00:00Z", "amount": 100}]},
            }
        ],
    )
    _, refreshed = host.read(K, object_id, outs)
    assert refreshed["discounts"]
    with pytest.raises(ProviderError) as info:
        host.diff(K, object_id, refreshed, inputs)
    assert "discounts" in info.value.details and "allow_replacement" in info.value.details
    assert "outside this stack" in info.value.details

    allowed = {**inputs, "allow_replacement": True}
    assert host.diff(K, object_id, refreshed, allowed).replaces == ["discounts"]
    new_id, _ = host.create(K, host.check_ok(K, allowed))
    assert new_id != object_id  # a new contract, not the old one found by its key
    live = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=new_id).data
    assert not live.discounts and live.archived_at is None


def test_a_configuration_archived_by_hand_does_not_lock_the_contract(fresh_emulator):
    """Archived outside the stack, the contract's configuration is gone for good (Metronome cannot give
    the contract another). Following the customer's new configuration is then not refused (it could not be
    done either way): the difference is left, said once, and other edits such as ending it go through."""
    client = fresh_emulator.client()
    fresh_emulator.admin("POST", "billing-providers", json={"billing_provider": "stripe", "connected": True})
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as h:
        customer_id = h.create_checked(C, {"identity": "t/s/arch-customer", "name": "arch customer"})[0]

        def configure(stripe_id: str) -> str:
            (config,) = client.v1.customers.set_billing_configurations(
                data=[
                    {
                        "customer_id": customer_id,
                        "billing_provider": "stripe",
                        "delivery_method": "direct_to_billing_provider",
                        "configuration": {"stripe_customer_id": stripe_id},
                    }
                ]
            ).data
            return config.id

        x = configure("cus_X")
        inputs = h.check_ok(
            K,
            {
                "identity": "metronome-iac/test/arch",
                "customer_id": customer_id,
                "starting_at": START,
                "billing_provider_configuration": {"billing_provider_configuration_id": x},
            },
        )
        object_id, outs = h.create(K, inputs)
        client.v1.customers.archive_billing_configurations(
            customer_id=customer_id, customer_billing_provider_configuration_ids=[x]
        )
        y = configure("cus_Y")  # what the StripeIntegration sets for the customer next
        _, refreshed = h.read(K, object_id, outs)
        follow = {**inputs, "billing_provider_configuration": {"billing_provider_configuration_id": y}}
        assert h.diff(K, object_id, refreshed, follow).changes == "NONE"
        ended = {**follow, "ending_before": "2026-12-01T00:00:00Z"}
        assert h.diff(K, object_id, refreshed, ended).changes == "SOME"
        h.update(K, object_id, refreshed, ended)
        live = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=object_id).data
        assert live.ending_before is not None and live.customer_billing_provider_configuration.id == x
