"""Provider cost figures: API calls per declared resource for create and read, and state size.

Against a fresh emulator, through the real provider host (`python -m pulumi.dynamic` over gRPC,
as the engine drives it), create a catalog of METRICS billable metrics, PRODUCTS products and
CARDS rate cards holding RATES_PER_PRODUCT rates per product, PACKAGES packages on those cards, ALERTS
account-wide alerts, and CUSTOMERS customers with one spend alert each, then read every resource back.
API calls come from the emulator's /_emulator/stats. A rate card's rates count with their card
(they are part of that one resource). Check runs before create, as in a preview; its look-ups
(a product's group keys against its live metric) are counted apart.

    .venv/bin/python benchmarks/bench_providers.py [--products 200] [--packages 20] [--workers 4]

Targets: <= 1.1 create calls per resource, <= 1.1 read calls per resource, < 4 KB of state per
resource (pickled provider + outputs as JSON, averaged over the resources).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import start_emulator  # noqa: E402
from provider_host import ProviderHost, provider_blob  # noqa: E402

from providers.alert import AlertProvider  # noqa: E402
from providers.billable_metric import BillableMetricProvider  # noqa: E402
from providers.customer import CustomerProvider  # noqa: E402
from providers.package import PackageProvider  # noqa: E402
from providers.product import ProductProvider  # noqa: E402
from providers.rate_card import RateCardProvider  # noqa: E402

MODELS = ["nano", "small", "medium", "large", "xl"]


def total_calls(emu: Any) -> int:
    return int(emu.admin("GET", "stats").json()["total"])


def run(
    products: int,
    metrics: int,
    cards: int,
    workers: int,
    packages: int = 20,
    alerts: int = 10,
    customers: int = 10,
) -> dict[str, Any]:
    emu = start_emulator()
    try:
        with ProviderHost(emu.base_url, emu.token, project="bench", stack="bench") as host:
            pool = ThreadPoolExecutor(
                max_workers=workers
            )  # the engine creates independent resources in parallel
            state: list[tuple[Any, str, dict[str, Any]]] = []

            check_calls = 0
            create_by_kind: dict[str, int] = {}

            def declare(provider: Any, many: list[dict[str, Any]]) -> list[str]:
                """Check every resource of a kind (as preview does), then create them."""
                nonlocal check_calls
                before_check = total_calls(emu)
                checked = list(pool.map(lambda news: host.check_ok(provider, news), many))
                check_calls += total_calls(emu) - before_check

                def create(inputs: dict[str, Any]) -> str:
                    object_id, outs = host.create(provider, inputs)
                    state.append((provider, object_id, outs))
                    return object_id

                before_create = total_calls(emu)
                made = list(pool.map(create, checked))
                kind = provider.kind
                create_by_kind[kind] = create_by_kind.get(kind, 0) + total_calls(emu) - before_create
                return made

            t0 = time.monotonic()
            before = total_calls(emu)
            metric_ids = declare(
                BillableMetricProvider,
                [
                    {
                        "identity": f"bench/bench/metric_{i}",
                        "name": f"metric {i}",
                        "aggregation_type": "SUM",
                        "aggregation_key": "tokens",
                        "property_filters": [
                            {"name": "tokens", "exists": True},
                            {"name": "model", "exists": True},
                        ],
                        "group_keys": [["model"]],
                    }
                    for i in range(metrics)
                ],
            )
            product_ids = declare(
                ProductProvider,
                [
                    {
                        "identity": f"bench/bench/product_{i}",
                        "name": f"product {i}",
                        "type": "USAGE",
                        "billable_metric_id": metric_ids[i % metrics],
                        "pricing_group_key": ["model"],
                        "quantity_conversion": {"conversion_factor": 1000000, "operation": "DIVIDE"},
                    }
                    for i in range(products)
                ],
            )

            def card(c: int) -> dict[str, Any]:
                mine = product_ids[c::cards]
                rates = [
                    {
                        "product_id": pid,
                        "starting_at": "2026-01-01T00:00:00Z",
                        "rate_type": "FLAT",
                        "price": 100 + 10 * m,
                        "pricing_group_values": {"model": model},
                    }
                    for pid in mine
                    for m, model in enumerate(MODELS)
                ]
                return {"identity": f"bench/bench/card_{c}", "name": f"card {c}", "rates": rates}

            card_ids = declare(RateCardProvider, [card(c) for c in range(cards)])
            days0 = {"unit": "DAYS", "value": 0}
            declare(
                PackageProvider,
                [
                    {
                        "identity": f"bench/bench/package_{i}",
                        "name": f"package {i}",
                        "rate_card_id": card_ids[i % cards],
                        "aliases": [{"name": f"plan-{i}"}],
                        "duration": {"unit": "YEARS", "value": 1},
                        "credits": [
                            {
                                "product_id": product_ids[i % products],
                                "access_schedule": {
                                    "schedule_items": [
                                        {
                                            "amount": 1000,
                                            "starting_at_offset": days0,
                                            "duration": {"unit": "MONTHS", "value": 1},
                                        }
                                    ]
                                },
                            }
                        ],
                    }
                    for i in range(packages)
                ],
            )
            customer_ids = declare(
                CustomerProvider,
                [
                    {
                        "identity": f"bench/bench/customer_{i}",
                        "name": f"customer {i}",
                        "ingest_aliases": [f"c{i}"],
                    }
                    for i in range(customers)
                ],
            )
            low_balance = "low_remaining_contract_credit_and_commit_balance_reached"
            everyone = [
                {
                    "identity": f"bench/bench/alert_{i}",
                    "name": f"low {i}",
                    "alert_type": low_balance,
                    "threshold": i,
                }
                for i in range(alerts)
            ]
            own = [
                {
                    "identity": f"bench/bench/c{i}.spend",
                    "name": f"spend {i}",
                    "alert_type": "spend_threshold_reached",
                    "threshold": 100_000,
                    "customer_id": customer_ids[i],
                }
                for i in range(customers)
            ]
            declare(AlertProvider, everyone + own)
            create_calls = total_calls(emu) - before - check_calls
            create_seconds = time.monotonic() - t0

            t0 = time.monotonic()
            before = total_calls(emu)
            read_by_kind: dict[str, int] = {}
            for provider, object_id, outs in list(pool.map(lambda s: s, state)):
                before_one = total_calls(emu)
                read_id, read_outs = host.read(provider, object_id, outs)
                read_by_kind[provider.kind] = (
                    read_by_kind.get(provider.kind, 0) + total_calls(emu) - before_one
                )
                assert read_id == object_id, (provider.kind, object_id)
                assert host.diff(provider, object_id, read_outs, outs).changes == "NONE", (
                    provider.kind,
                    object_id,
                )
            read_calls = total_calls(emu) - before
            read_seconds = time.monotonic() - t0

            sizes = {}
            for provider, _, outs in state:
                blob = provider_blob(provider)
                sizes.setdefault(provider.kind, []).append(len(json.dumps({"__provider": blob, **outs})))
            pool.shutdown()
    finally:
        emu.stop()

    resources = len(state)
    counts: dict[str, int] = {}
    for provider, _, _ in state:
        counts[provider.kind] = counts.get(provider.kind, 0) + 1
    all_sizes = [s for v in sizes.values() for s in v]
    return {
        "resources": resources,
        "rates": products * len(MODELS),
        "check_calls": check_calls,
        "create_calls": create_calls,
        "read_calls": read_calls,
        "create_per_resource": create_calls / resources,
        "read_per_resource": read_calls / resources,
        "state_bytes_mean": sum(all_sizes) / len(all_sizes),
        "state_bytes_by_kind": {k: (min(v), round(sum(v) / len(v)), max(v)) for k, v in sizes.items()},
        "calls_by_kind": {
            k: (n, create_by_kind.get(k, 0) / n, read_by_kind.get(k, 0) / n) for k, n in counts.items()
        },
        "create_seconds": create_seconds,
        "read_seconds": read_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--cards", type=int, default=4)
    parser.add_argument("--packages", type=int, default=20)
    parser.add_argument("--alerts", type=int, default=10, help="account-wide alerts")
    parser.add_argument("--customers", type=int, default=10, help="customers, with one alert each")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    r = run(args.products, args.metrics, args.cards, args.workers, args.packages, args.alerts, args.customers)

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    print(
        f"declared resources: {r['resources']} ({args.metrics} metrics, {args.products} products, "
        f"{args.cards} rate cards holding {r['rates']} rates, {args.packages} packages, {args.customers} "
        f"customers, {args.alerts} account-wide alerts and {args.customers} customer alerts)"
    )
    print(
        f"create: {r['create_calls']} API calls = {r['create_per_resource']:.3f} per resource "
        f"(target <= 1.1: {verdict(r['create_per_resource'] <= 1.1)}), {r['create_seconds']:.1f} s"
    )
    print(
        f"check:  {r['check_calls']} API calls at preview (a product's group keys against its live metric, "
        "once per metric)"
    )
    print(
        f"read:   {r['read_calls']} API calls = {r['read_per_resource']:.3f} per resource "
        f"(target <= 1.1: {verdict(r['read_per_resource'] <= 1.1)}), {r['read_seconds']:.1f} s"
    )
    print(
        f"state:  {r['state_bytes_mean']:.0f} bytes per resource on average "
        f"(target < 4096: {verdict(r['state_bytes_mean'] < 4096)})"
    )
    for kind, (lo, mean, hi) in r["state_bytes_by_kind"].items():
        print(f"        {kind}: min {lo}, mean {mean}, max {hi} bytes")
    print("calls per resource, by kind (create / read):")
    for kind, (n, create, read) in r["calls_by_kind"].items():
        print(f"        {kind} x{n}: {create:.2f} / {read:.2f}")
    met = r["create_per_resource"] <= 1.1 and r["read_per_resource"] <= 1.1 and r["state_bytes_mean"] < 4096
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
