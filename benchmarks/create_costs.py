"""What creating and previewing cost against a big account, and what the emulator's listing costs.

Against a fresh emulator, through the real provider host (as the engine drives it, 8 calls in flight):

1. the account is filled by hand with ACCOUNT objects of each kind (metrics, products, rate cards,
   customers; untagged, as an account moving to this tool has them), and has had an `up` before: the
   `iac_identity` custom field key is registered (a new account's first create of each kind pays
   three calls once for it: benchmarks/scale.py, "first create per kind");
2. adding one object of each kind: API calls per kind (issue 13 target: <= 2);
3. creating BULK metrics, BULK products on them and BULK customers: API calls per created object
   (target: <= 1.02);
4. a no-change preview of those (Check with the recorded inputs, then Diff): calls per resource
   (target: <= 0.01);
5. the emulator's listing, in-process: paging through LISTED rows, the first and the last page
   (linear: the last page costs what the first does), and the emulator's own seconds per route
   from /_emulator/stats for the run above.

    .venv/bin/python benchmarks/create_costs.py [--account 3000] [--bulk 300] [--listed 20000]

Exits non-zero when a call-count target is not met (counts, never times).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import start_emulator  # noqa: E402
from provider_host import ProviderHost  # noqa: E402

from metronome_iac.emulator.store import Store  # noqa: E402
from providers.billable_metric import BillableMetricProvider as M  # noqa: E402
from providers.contract import ContractProvider as K  # noqa: E402
from providers.customer import CustomerProvider as C  # noqa: E402
from providers.exactly_once import IDENTITY_FIELD  # noqa: E402
from providers.product import ProductProvider as P  # noqa: E402
from providers.rate_card import RateCardProvider as R  # noqa: E402


def calls(emu: Any) -> int:
    return int(emu.admin("GET", "stats").json()["total"])


def add_one(emu: Any, host: ProviderHost, customer_id: str, card_id: str) -> dict[str, int]:
    news = {
        M: {"identity": "b/b/one-m", "name": "one-m", "aggregation_type": "COUNT"},
        P: {"identity": "b/b/one-p", "name": "one-p", "type": "FIXED"},
        R: {"identity": "b/b/one-r", "name": "one-r"},
        C: {"identity": "b/b/one-c", "name": "one-c", "ingest_aliases": ["one-c"]},
        K: {
            "identity": "b/b/one-k",
            "customer_id": customer_id,
            "rate_card_id": card_id,
            "starting_at": "2026-01-01T00:00:00Z",
        },
    }
    cost = {}
    for provider, one in news.items():
        inputs = host.check_ok(provider, one)
        before = calls(emu)
        host.create(provider, inputs)
        cost[provider.kind] = calls(emu) - before
    return cost


def bulk(emu: Any, host: ProviderHost, n: int) -> tuple[int, int, float, int]:
    """(created objects, create calls, no-change preview calls per resource, preview resources)."""
    pool = ThreadPoolExecutor(8)
    recorded: list[tuple[Any, str, dict[str, Any], dict[str, Any]]] = []

    def declare(provider: Any, many: list[dict[str, Any]]) -> list[str]:
        checked = list(pool.map(lambda news: host.check_ok(provider, news), many))

        def create(inputs: dict[str, Any]) -> str:
            object_id, outs = host.create(provider, inputs)
            recorded.append((provider, object_id, inputs, outs))
            return object_id

        return list(pool.map(create, checked))

    before = calls(emu)
    metric_props = [{"name": "model", "exists": True}]
    metrics = declare(
        M,
        [
            {
                "identity": f"b/b/m{i}",
                "name": f"m{i}",
                "aggregation_type": "COUNT",
                "property_filters": metric_props,
                "group_keys": [["model"]],
            }
            for i in range(n)
        ],
    )
    declare(
        P,
        [
            {
                "identity": f"b/b/p{i}",
                "name": f"p{i}",
                "type": "USAGE",
                "billable_metric_id": metrics[i],
                "pricing_group_key": ["model"],
            }
            for i in range(n)
        ],
    )
    declare(C, [{"identity": f"b/b/c{i}", "name": f"c{i}", "ingest_aliases": [f"c{i}"]} for i in range(n)])
    create_calls = calls(emu) - before  # the products' checks included: their metrics are this host's

    before = calls(emu)

    def preview(item: tuple[Any, str, dict[str, Any], dict[str, Any]]) -> None:
        provider, object_id, inputs, outs = item
        news = host.check_ok(provider, inputs, olds=inputs)
        assert not host.diff(provider, object_id, outs, news).changed, (provider.kind, object_id)

    list(pool.map(preview, recorded))
    pool.shutdown()
    return len(recorded), create_calls, (calls(emu) - before) / len(recorded), len(recorded)


def listing(rows: int) -> tuple[float, float, float]:
    """(seconds to page through `rows`, first page, last page) on the emulator's store."""
    store = Store()
    for i in range(rows):
        store.insert("thing", {"n": i})
    t0 = time.perf_counter()
    cursor, pages = None, []
    while True:
        t = time.perf_counter()
        _, cursor = store.list_page("thing", cursor=cursor, limit=100)
        pages.append(time.perf_counter() - t)
        if cursor is None:
            break
    return time.perf_counter() - t0, pages[0], pages[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--account", type=int, default=3000, help="objects of each kind already there")
    parser.add_argument("--bulk", type=int, default=300, help="metrics, products and customers created")
    parser.add_argument("--listed", type=int, default=20000, help="rows the listing figure pages through")
    args = parser.parse_args()
    met = True
    emu = start_emulator()
    try:
        t0 = time.monotonic()
        customer_id = emu.fill(args.account)[0]
        card_id = emu.client().v1.contracts.rate_cards.create(name="hand-card").data.id
        for entity in ("billable_metric", "contract_product", "rate_card", "customer"):
            emu.client().v1.custom_fields.add_key(entity=entity, key=IDENTITY_FIELD, enforce_uniqueness=False)
        print(f"account: {args.account} of each kind, filled in {time.monotonic() - t0:.1f} s")
        with ProviderHost(emu.base_url, emu.token, project="b", stack="b") as host:
            cost = add_one(emu, host, customer_id, card_id)
        ok = max(cost.values()) <= 2
        met &= ok
        print(f"add one object: {cost} calls (target <= 2: {'MET' if ok else 'NOT MET'})")
        with ProviderHost(emu.base_url, emu.token, project="b", stack="b") as host:  # a new `up`
            made, create_calls, per_preview, n = bulk(emu, host, args.bulk)
        ok = create_calls / made <= 1.02
        met &= ok
        print(
            f"create: {create_calls} calls for {made} objects = {create_calls / made:.3f} per object "
            f"(target <= 1.02: {'MET' if ok else 'NOT MET'})"
        )
        ok = per_preview <= 0.01
        met &= ok
        print(
            f"no-change preview: {per_preview:.3f} calls per resource over {n} "
            f"(target <= 0.01: {'MET' if ok else 'NOT MET'})"
        )
        stats = emu.admin("GET", "stats").json()
        top = sorted(stats["seconds_by_route"].items(), key=lambda kv: -kv[1])[:4]
        print(
            f"emulator: {stats['total']} requests, {stats['seconds']:.2f} s of its own time (summed over "
            "concurrent requests); most: " + ", ".join(f"{route} {seconds:.2f} s" for route, seconds in top)
        )
    finally:
        emu.stop()
    total, first, last = listing(args.listed)
    print(
        f"listing {args.listed} rows in pages of 100: {total:.2f} s; first page {first * 1000:.2f} ms, "
        f"last page {last * 1000:.2f} ms"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
