"""Emulator packages and alerts through the official SDK."""

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


def test_package_lifecycle(client: metronome.Metronome) -> None:
    product_id = client.v1.contracts.products.create(name=uid(), type="FIXED").data.id
    card_id = client.v1.contracts.rate_cards.create(name=uid("card")).data.id
    key = uid("pkg")
    package_id = client.v1.packages.create(
        name=uid("package"),
        rate_card_id=card_id,
        uniqueness_key=key,
        duration={"unit": "YEARS", "value": 1},
        commits=[
            {
                "product_id": product_id,
                "type": "PREPAID",
                "access_schedule": {
                    "schedule_items": [
                        {
                            "amount": 100,
                            "starting_at_offset": {"unit": "DAYS", "value": 0},
                            "duration": {"unit": "MONTHS", "value": 12},
                        }
                    ]
                },
            }
        ],
    ).data.id
    got = client.v1.packages.retrieve(package_id=package_id).data
    assert got.rate_card_id == card_id and got.commits[0].product.id == product_id and got.duration.value == 1
    assert got.uniqueness_key in (key, f"package:{key}")

    with pytest.raises(metronome.ConflictError, match="uniqueness_key") as err:
        client.v1.packages.create(name=uid(), uniqueness_key=key)
    assert package_id in err.value.body["message"]

    # A contract made from the package takes its rate card.
    customer_id = client.v1.customers.create(name=uid()).data.id
    contract_id = client.v1.contracts.create(
        customer_id=customer_id, starting_at="2026-01-01T00:00:00Z", package_id=package_id
    ).data.id
    contract = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=contract_id).data
    assert contract.rate_card_id == card_id
    on_package = list(client.v1.packages.list_contracts_on_package(package_id=package_id))
    assert [c.contract_id for c in on_package] == [contract_id]

    client.v1.packages.archive(package_id=package_id)
    assert package_id not in {p.id for p in client.v1.packages.list()}
    assert package_id in {p.id for p in client.v1.packages.list(archive_filter="ARCHIVED")}
    assert client.v1.packages.retrieve(package_id=package_id).data.archived_at is not None


def test_package_pagination_and_validation(client: metronome.Metronome) -> None:
    made = [client.v1.packages.create(name=uid("package")).data.id for _ in range(3)]
    page = client.v1.packages.list(limit=2)
    assert len(page.data) == 2 and page.next_page
    assert set(made) <= {p.id for p in client.v1.packages.list(limit=2)}
    with pytest.raises(metronome.BadRequestError, match="rate_card_id"):
        client.v1.packages.create(name=uid(), rate_card_id=str(uuid.uuid4()))
    with pytest.raises(metronome.BadRequestError, match=r"commits\[0\].product_id"):
        client.v1.packages.create(name=uid(), commits=[{"product_id": "nope", "type": "PREPAID"}])
    with pytest.raises(metronome.NotFoundError, match="package_id"):
        client.v1.packages.retrieve(package_id=str(uuid.uuid4()))


def test_alerts(client: metronome.Metronome) -> None:
    customer_id = client.v1.customers.create(name=uid()).data.id
    key = uid("alert")
    alert_id = client.v1.alerts.create(
        alert_type="spend_threshold_reached",
        name="big spend",
        threshold=10_000,
        customer_id=customer_id,
        uniqueness_key=key,
    ).data.id
    with pytest.raises(metronome.ConflictError) as err:
        client.v1.alerts.create(
            alert_type="spend_threshold_reached", name="x", threshold=1, uniqueness_key=key
        )
    assert alert_id in err.value.body["message"] and "uniqueness_key" in err.value.body["message"]

    assert client.v1.alerts.archive(id=alert_id).data.id == alert_id
    assert client.v1.alerts.archive(id=alert_id).data.id == alert_id  # idempotent
    with pytest.raises(metronome.ConflictError):  # the archived alert keeps its key...
        client.v1.alerts.create(
            alert_type="spend_threshold_reached", name="x", threshold=1, uniqueness_key=key
        )
    client.v1.alerts.archive(id=alert_id, release_uniqueness_key=True)  # ...until released
    client.v1.alerts.create(alert_type="spend_threshold_reached", name="x", threshold=1, uniqueness_key=key)

    with pytest.raises(metronome.BadRequestError, match="alert_type"):
        client.v1.alerts.create(alert_type="bogus", name="x", threshold=1)  # type: ignore[arg-type]
    with pytest.raises(metronome.BadRequestError, match="billable_metric_id"):
        client.v1.alerts.create(alert_type="usage_threshold_reached", name="x", threshold=1)
    with pytest.raises(metronome.BadRequestError, match="customer_id"):
        client.v1.alerts.create(
            alert_type="spend_threshold_reached", name="x", threshold=1, customer_id="nope"
        )
    with pytest.raises(metronome.NotFoundError, match="nope"):
        client.v1.alerts.archive(id="nope")


def _product(client: metronome.Metronome, type_: str = "FIXED") -> str:
    return client.v1.contracts.products.create(name=uid(), type=type_).data.id  # type: ignore[arg-type]


def test_package_terms_read_back_as_the_sdk_types_them(client: metronome.Metronome) -> None:
    """Relative terms come back with ids, products as {id, name}, credit types as objects and the
    temporary ids the request used replaced by the template ids of the items they named."""
    fixed, seat = _product(client), _product(client, "SUBSCRIPTION")
    card_id = client.v1.contracts.rate_cards.create(name=uid("card")).data.id
    months = {"unit": "MONTHS", "value": 1}
    package_id = client.v1.packages.create(
        name=uid("package"),
        rate_card_id=card_id,
        commits=[
            {
                "product_id": fixed,
                "type": "PREPAID",
                "temporary_id": "welcome",
                "access_schedule": {
                    "schedule_items": [
                        {
                            "amount": 500,
                            "starting_at_offset": {"unit": "DAYS", "value": 0},
                            "duration": months,
                        }
                    ]
                },
                "invoice_schedule": {
                    "schedule_items": [
                        {"date_offset": {"unit": "DAYS", "value": 0}, "quantity": 1, "unit_price": 500}
                    ]
                },
            }
        ],
        credits=[
            {
                "product_id": fixed,
                "access_schedule": {
                    "schedule_items": [
                        {
                            "amount": 100,
                            "starting_at_offset": {"unit": "DAYS", "value": 0},
                            "duration": months,
                        }
                    ]
                },
            }
        ],
        subscriptions=[
            {
                "temporary_id": "seats",
                "collection_schedule": "ADVANCE",
                "proration": {"is_prorated": True},
                "subscription_rate": {"billing_frequency": "MONTHLY", "product_id": seat},
                "initial_quantity": 3,
            }
        ],
        recurring_credits=[
            {
                "product_id": fixed,
                "priority": 1,
                "access_amount": {"unit_price": 1000},
                "commit_duration": {"value": 1},
                "starting_at_offset": {"unit": "DAYS", "value": 0},
                "subscription_config": {
                    "subscription_id": "seats",
                    "apply_seat_increase_config": {"is_prorated": True},
                },
            }
        ],
        overrides=[
            {
                "starting_at_offset": {"unit": "DAYS", "value": 0},
                "override_specifiers": [{"product_id": fixed, "commit_ids": ["welcome"]}],
                "is_commit_specific": True,
                "multiplier": 0.5,
            }
        ],
        scheduled_charges=[
            {
                "product_id": fixed,
                "schedule": {
                    "schedule_items": [
                        {"date_offset": {"unit": "MONTHS", "value": 1}, "quantity": 1, "unit_price": 2500}
                    ]
                },
            }
        ],
        spend_threshold_configuration={
            "commit": {"product_id": fixed},
            "is_enabled": True,
            "payment_gate_config": {
                "payment_gate_type": "STRIPE",
                "stripe_config": {"payment_type": "INVOICE"},
            },
            "threshold_amount": 10_000,
        },
    ).data.id
    got = client.v1.packages.retrieve(package_id=package_id).data
    commit = got.commits[0]
    assert commit.id and commit.product.id == fixed and commit.access_schedule is not None
    assert commit.access_schedule.credit_type.name == "USD (cents)"
    assert (
        commit.access_schedule.schedule_items[0].id and commit.access_schedule.schedule_items[0].amount == 500
    )
    assert commit.invoice_schedule is not None and commit.invoice_schedule.do_not_invoice is False
    assert got.credits and got.credits[0].product.id == fixed
    assert got.subscriptions and got.subscriptions[0].subscription_rate.product.id == seat
    assert got.subscriptions[0].quantity_management_mode == "QUANTITY_ONLY"
    recurring = (got.recurring_credits or [])[0]
    assert recurring.subscription_config is not None
    assert recurring.subscription_config.subscription_template_id == got.subscriptions[0].id
    assert recurring.access_amount.credit_type_id  # USD (cents) filled in
    override = got.overrides[0]
    assert override.override_specifiers[0].commit_template_ids == [commit.id]
    assert override.type == "MULTIPLIER" and override.multiplier == 0.5
    assert got.scheduled_charges[0].schedule.schedule_items[0].unit_price == 2500
    assert (
        got.spend_threshold_configuration is not None
        and got.spend_threshold_configuration.threshold_amount == 10_000
    )
    assert got.usage_statement_schedule.frequency == "MONTHLY"

    with pytest.raises(metronome.BadRequestError, match="commit_ids"):
        client.v1.packages.create(
            name=uid(),
            overrides=[
                {
                    "starting_at_offset": {"unit": "DAYS", "value": 0},
                    "override_specifiers": [{"product_id": fixed, "commit_ids": ["nope"]}],
                    "multiplier": 0.5,
                }
            ],
        )
    with pytest.raises(metronome.BadRequestError, match="subscription_rate.product_id"):
        client.v1.packages.create(
            name=uid(),
            subscriptions=[
                {
                    "collection_schedule": "ADVANCE",
                    "proration": {"is_prorated": True},
                    "subscription_rate": {"billing_frequency": "MONTHLY", "product_id": fixed},
                    "initial_quantity": 1,
                }
            ],
        )


def test_a_package_alias_moves_to_the_newest_package(client: metronome.Metronome) -> None:
    """Creating a package with an alias another package holds ends the other's alias window where the new
    one starts; a contract provisioned by alias gets the package the alias names at its start date."""
    card_id = client.v1.contracts.rate_cards.create(name=uid("card")).data.id
    alias = uid("self-serve")
    old = client.v1.packages.create(name=uid("v1"), rate_card_id=card_id, aliases=[{"name": alias}]).data.id
    new = client.v1.packages.create(
        name=uid("v2"), rate_card_id=card_id, aliases=[{"name": alias, "starting_at": "2030-01-01T00:00:00Z"}]
    ).data.id
    old_alias = (client.v1.packages.retrieve(package_id=old).data.aliases or [])[0]
    assert old_alias.ending_before is not None and old_alias.ending_before.year == 2030

    def provision(start: str) -> str:
        customer_id = client.v1.customers.create(name=uid()).data.id
        contract_id = client.v1.contracts.create(
            customer_id=customer_id, starting_at=start, package_alias=alias
        ).data.id
        return (
            client.v2.contracts.retrieve(customer_id=customer_id, contract_id=contract_id).data.package_id
            or ""
        )

    assert provision("2029-06-01T00:00:00Z") == old
    assert provision("2030-02-01T00:00:00Z") == new
    client.v1.packages.archive(package_id=old)
    with pytest.raises(metronome.BadRequestError, match="package_alias"):
        provision("2029-06-01T00:00:00Z")  # archived packages cannot be used to create contracts


def test_customer_alerts_show_account_wide_and_own_alerts(client: metronome.Metronome) -> None:
    mine, other = (client.v1.customers.create(name=uid()).data.id for _ in range(2))
    everyone = client.v1.alerts.create(
        alert_type="low_credit_balance_reached", name=uid("low"), threshold=500, evaluate_on_create=False
    ).data.id
    own = client.v1.alerts.create(
        alert_type="spend_threshold_reached",
        name=uid("spend"),
        threshold=10_000,
        customer_id=mine,
        group_values=[{"key": "region", "value": "eu"}],
        custom_field_filters=[{"entity": "Contract", "key": "tier", "value": "gold"}],
    ).data.id
    got = client.v1.customers.alerts.retrieve(customer_id=mine, alert_id=own).data
    assert got.alert.type == "spend_threshold_reached" and got.alert.threshold == 10_000
    assert got.alert.status == "enabled" and got.customer_status in ("ok", "evaluating", "in_alarm")
    assert got.alert.credit_type is not None and got.alert.credit_type.name == "USD (cents)"
    assert got.alert.group_values and got.alert.group_values[0].value == "eu"
    assert got.alert.custom_field_filters and got.alert.custom_field_filters[0].key == "tier"
    assert client.v1.customers.alerts.retrieve(customer_id=other, alert_id=everyone).data.alert.id == everyone
    with pytest.raises(metronome.NotFoundError):
        client.v1.customers.alerts.retrieve(customer_id=other, alert_id=own)
    listed = {a.alert.id for a in client.v1.customers.alerts.list(customer_id=mine)}
    assert {own, everyone} <= listed
    assert own not in {a.alert.id for a in client.v1.customers.alerts.list(customer_id=other)}

    client.v1.alerts.archive(id=own)
    archived = client.v1.customers.alerts.retrieve(customer_id=mine, alert_id=own).data
    assert archived.alert.status == "archived" and archived.customer_status is None
    assert own not in {a.alert.id for a in client.v1.customers.alerts.list(customer_id=mine)}
    assert own in {
        a.alert.id for a in client.v1.customers.alerts.list(customer_id=mine, alert_statuses=["ARCHIVED"])
    }


def test_alert_fields_only_where_the_type_takes_them(client: metronome.Metronome) -> None:
    with pytest.raises(metronome.BadRequestError, match="seat_filter"):
        client.v1.alerts.create(alert_type="low_remaining_seat_balance_reached", name="x", threshold=1)
    with pytest.raises(metronome.BadRequestError, match="group_values"):
        client.v1.alerts.create(
            alert_type="low_credit_balance_reached", name="x", threshold=1, group_values=[{"key": "k"}]
        )
    with pytest.raises(metronome.BadRequestError, match="invoice_types_filter"):
        client.v1.alerts.create(
            alert_type="spend_threshold_reached", name="x", threshold=1, invoice_types_filter=["USAGE"]
        )
    with pytest.raises(metronome.BadRequestError, match="access_type"):
        client.v1.alerts.create(
            alert_type="spend_threshold_reached", name="x", threshold=1, access_type="SPEND"
        )


def test_offset_notifications(client: metronome.Metronome) -> None:
    offsets = client.v2.notifications.offset
    key = uid("notice")
    made = offsets.create(
        name=uid("commit-ending"), policy={"type": "commit.segment.end", "offset": "-P7D"}, uniqueness_key=key
    ).data
    assert made.policy.offset == "-P7D" and made.archived_at is None
    assert offsets.retrieve(id=made.id).data.name == made.name
    assert made.id in {n.id for n in offsets.list()}
    with pytest.raises(metronome.ConflictError, match="uniqueness_key"):
        offsets.create(name="x", policy={"type": "contract.end", "offset": "-P1D"}, uniqueness_key=key)

    edited = offsets.edit(id=made.id, policy={"type": "commit.segment.end", "offset": "-P14D"}).data
    assert edited.id == made.id and offsets.retrieve(id=made.id).data.policy.offset == "-P14D"
    with pytest.raises(metronome.BadRequestError, match="policy.type"):
        offsets.edit(id=made.id, policy={"type": "contract.end", "offset": "-P1D"})
    with pytest.raises(metronome.BadRequestError, match="offset"):
        offsets.create(name="x", policy={"type": "contract.end", "offset": "7 days"})
    with pytest.raises(metronome.BadRequestError, match="policy.type"):
        offsets.create(name="x", policy={"type": "contract.explode", "offset": "P1D"})

    assert offsets.archive(id=made.id).data.archived_at is not None
    assert made.id not in {n.id for n in offsets.list()}
    assert made.id in {n.id for n in offsets.list(archive_filter="ARCHIVED")}
    with pytest.raises(metronome.BadRequestError, match="archived"):
        offsets.edit(id=made.id, policy={"type": "commit.segment.end", "offset": "-P1D"})
    with pytest.raises(metronome.NotFoundError):
        offsets.retrieve(id=str(uuid.uuid4()))
