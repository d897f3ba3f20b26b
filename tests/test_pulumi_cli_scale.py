"""A generated 300-resource stack through the real engine with its default parallelism: metrics,
products, a rate card with 500 rates, customers and contracts. No error, no duplicate object (counted
by identity through the official SDK), nothing lost, and a second preview with nothing to do."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import Emulator, start_emulator
from pulumi_cli import PulumiProject

METRICS, FIXED_PRODUCTS, CUSTOMERS = 40, 20, 99  # + 40 usage products, 2 rate cards, 99 contracts = 300
REGIONS = ("us", "eu", "ap")
STARTS = ("2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z", "2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z")


def generated_stack(root: Path) -> Path:
    """stacks/<name>/ with catalog.yaml and environment.yaml for 300 resources."""
    metrics = [
        {
            "name": f"m{i}",
            "aggregation_type": "SUM",
            "aggregation_key": "units",
            "event_type_filter": {"in_values": [f"event_{i}"]},
            "property_filters": [{"name": "units", "exists": True}, {"name": "region", "exists": True}],
            "group_keys": [["region"]],
        }
        for i in range(METRICS)
    ]
    usage = [
        {"name": f"p{i}", "type": "USAGE", "billable_metric": f"m{i}", "pricing_group_key": ["region"]}
        for i in range(METRICS)
    ]
    fixed = [{"name": f"f{i}", "type": "FIXED"} for i in range(FIXED_PRODUCTS)]
    rates = [
        {
            "product": f"p{i}",
            "starting_at": start,
            **({"ending_before": STARTS[j + 1]} if j + 1 < len(STARTS) else {}),
            "rate_type": "FLAT",
            "price": 100 + i + j,
            "pricing_group_values": {"region": region},
        }
        for i in range(METRICS)
        for j, start in enumerate(STARTS)
        for region in REGIONS
    ] + [
        {"product": f"f{i}", "starting_at": STARTS[0], "rate_type": "FLAT", "price": 5000} for i in range(20)
    ]
    assert len(rates) == 500
    catalog = {
        "billable_metrics": metrics,
        "products": usage + fixed,
        "rate_cards": [
            {"name": "big", "rates": rates},
            {"name": "small", "rates": rates[:10]},
        ],
    }
    customers = [{"name": f"c{i}", "ingest_aliases": [f"scale-c{i}"]} for i in range(CUSTOMERS)]
    contracts = [
        {
            "name": f"k{i}",
            "customer": f"c{i}",
            "rate_card": "big" if i % 2 else "small",
            "starting_at": STARTS[0],
            **(
                {
                    "commits": [
                        {
                            "product": f"f{i % FIXED_PRODUCTS}",
                            "type": "PREPAID",
                            "access_schedule": {
                                "schedule_items": [
                                    {
                                        "amount": 10000,
                                        "starting_at": STARTS[0],
                                        "ending_before": "2027-01-01T00:00:00Z",
                                    }
                                ]
                            },
                            "invoice_schedule": {
                                "schedule_items": [{"timestamp": STARTS[0], "amount": 10000}]
                            },
                        }
                    ]
                }
                if i % 10 == 0
                else {}
            ),
        }
        for i in range(CUSTOMERS)
    ]
    stack = root / "scale"
    stack.mkdir()
    (stack / "catalog.yaml").write_text(yaml.safe_dump(catalog, sort_keys=False))
    (stack / "environment.yaml").write_text(
        yaml.safe_dump({"customers": customers, "contracts": contracts}, sort_keys=False)
    )
    return stack


@pytest.fixture(scope="module")
def emulator_for_scale() -> Iterator[Emulator]:
    emu = start_emulator()
    yield emu
    emu.stop()


def identities(items: list, field: str = "iac_identity") -> Counter:
    return Counter((item.custom_fields or {}).get(field, "").split("#", 1)[0] for item in items)


def test_300_resources_with_the_engines_parallelism(
    pulumi_cli: str, emulator_for_scale: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("scale")
    project = PulumiProject(
        root, pulumi_cli, emulator_for_scale, stack="scale", stack_dir=generated_stack(root)
    )
    started = time.monotonic()
    up = project.run("up", "--yes")
    wall = time.monotonic() - started
    print(f"\n300-resource stack: pulumi up took {wall:.1f} s (default parallelism)")
    assert "301 created" in up.stdout, up.stdout[-3000:]  # and the stack itself

    client = emulator_for_scale.client()
    prefix = "metronome-iac/scale/"
    counts = {
        "metrics": identities(list(client.v1.billable_metrics.list())),
        "products": identities(list(client.v1.contracts.products.list())),
        "rate cards": identities(list(client.v1.contracts.rate_cards.list())),
        "customers": identities(list(client.v1.customers.list())),
    }
    expected = {
        "metrics": {f"{prefix}m{i}" for i in range(METRICS)},
        "products": {f"{prefix}p{i}" for i in range(METRICS)}
        | {f"{prefix}f{i}" for i in range(FIXED_PRODUCTS)},
        "rate cards": {f"{prefix}big", f"{prefix}small"},
        "customers": {f"{prefix}c{i}" for i in range(CUSTOMERS)},
    }
    for kind, counted in counts.items():
        assert set(counted) == expected[kind], f"{kind}: lost or stray objects"
        assert max(counted.values()) == 1, f"{kind}: duplicates {[k for k, n in counted.items() if n > 1]}"
    contracts = Counter()
    for name, res in project.resources("Customer").items():
        contracts[name] += len(client.v2.contracts.list(customer_id=res["id"]).data)
    assert contracts == Counter({f"c{i}": 1 for i in range(CUSTOMERS)}), "lost or duplicated contracts"
    card = project.resources("RateCard")["big"]["id"]
    rates, page = 0, None
    while True:
        schedule = client.v1.contracts.rate_cards.retrieve_rate_schedule(
            rate_card_id=card, starting_at=STARTS[0], next_page=page
        )
        rates += len(schedule.data)
        if not (page := schedule.next_page):
            break
    assert rates == 500

    project.run("preview", "--expect-no-changes")
