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
