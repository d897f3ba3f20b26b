"""The cost of running an account as code, at scale: the record of issue 13's targets.

A generated stack of 100 / 1,000 / 3,000 resources (a realistic mix: billable metrics, usage products
priced by model and region, rate cards of 200-500 rates, self-serve packages, account-wide and
per-customer alerts, customers and contracts with prepaid commits and overrides) goes through the real
provider host (`python -m pulumi.dynamic` over gRPC, tests/provider_host.py) against the emulator, driven
the way the engine drives it (`scale_stack.drive`): each resource checked as soon as its dependencies are
created, one check at a time, and its create sent at once with every other in flight; the host serves 4
gRPC calls at a time. Each phase runs in a fresh host, as each `pulumi` command does:

    first create per kind  a new account: one object of each tagged kind, whose `iac_identity` custom
                       field key Metronome refuses until it is registered (once per account)
    apply              create the stack (on that account: the keys are there, as after any first `up`)
    no-change preview  Check + Diff of every resource against the recorded state
    refresh            Read of every resource
    price edit N       one price changed on a card of N rates (100 / 1,000 / 5,000): Check, Diff,
                       Update, then the card's Read, each with its CPU per rate
    add product/customer   one object added to the applied account
    listing            the 5,000-rate card's schedule read page by page (emulator time per page)
    floor              with latency: the apply again with no provider code (benchmarks/scale_floor.py)

Per phase: API calls (from the emulator's /_emulator/stats), calls per resource, wall time, the ideal
(calls x latency / 4) and the ratio to it, CPU of the provider host and of the emulator, the host's peak
RSS; for apply, preview and refresh also the calls per object of each kind (by endpoint family). Then
every target of the issue with "met" or "NOT met".

    .venv/bin/python benchmarks/scale.py                          # the full table (make bench)
    .venv/bin/python benchmarks/scale.py --sizes 100 --latencies 0 --json out.json   # what CI runs

Call counts do not depend on the machine; times and CPU do (2 shared cores here): CI holds the counts
(tests/test_benchmark_targets.py), never the times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil
from pulumi.runtime import rpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import Emulator, start_emulator  # noqa: E402
from provider_host import ProviderHost, provider_blob, struct  # noqa: E402
from scale_cli import Run, pulumi_cli_path, real_engine_runs  # noqa: E402
from scale_floor import HOST_ENV, FloorProvider  # noqa: E402
from scale_report import FLOOR_PHASE, Row, median_rows, print_by_kind, print_table, targets  # noqa: E402
from scale_stack import (  # noqa: E402
    EDIT_REPEATS,
    EDIT_SIZES,
    FIRST_OF_EACH_TAGGED_KIND,
    PROJECT,
    REGIONS,
    START,
    STEP_EXECUTOR_THREADS,
    Node,
    drive,
    nodes_of,
    write_stack,
)

from metronome_iac.catalog import Stack  # noqa: E402
from providers.customer import CustomerProvider  # noqa: E402
from providers.exactly_once import IDENTITY_FIELD  # noqa: E402
from providers.product import ProductProvider  # noqa: E402
from providers.rate_card import RateCardProvider  # noqa: E402

# ----------------------------------------------------------------------------------------------------
# Measuring


# Endpoint families, for calls per object by kind (first match wins). The customer listing is, in these
# (fault-free) phases, the look-up of a customer to read account-wide alerts through, once per host
# (providers/alert.py `any_customer`): counted with the alerts.
ROUTE_KINDS = {"GET /v1/customers": "alerts"}
FAMILIES = (
    ("/v1/billable-metrics", "metrics"),
    ("/v1/contract-pricing/products", "products"),
    ("/v1/contract-pricing/rate-cards", "rate cards"),
    ("/v1/packages", "packages"),
    ("/v1/alerts", "alerts"),
    ("/v1/customer-alerts", "alerts"),
    ("/v1/customers", "customers"),
    ("/v1/contracts", "contracts"),
    ("/v2/contracts", "contracts"),
    ("/v1/customFields", "custom field keys"),
)
SECTION_KINDS = {
    "billable_metrics": "metrics",
    "products": "products",
    "rate_cards": "rate cards",
    "packages": "packages",
    "alerts": "alerts",
    "customers": "customers",
    "contracts": "contracts",
}


def calls_by_kind(routes: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for route, n in routes.items():
        path = route.split(" ", 1)[-1]
        kind = ROUTE_KINDS.get(route) or next(
            (k for prefix, k in FAMILIES if path.startswith(prefix)), "other"
        )
        if n:
            out[kind] = out.get(kind, 0) + n
    return out


def objects_by_kind(nodes: list[Node]) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in nodes:
        kind = SECTION_KINDS[n.name.split("/", 1)[0]]
        out[kind] = out.get(kind, 0) + 1
    return out


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def sdk_seconds(requests: list[dict[str, Any]], response: dict[str, Any] | None) -> float:
    """CPU the Pulumi SDK spends in the host on one call's property bags, whatever the provider does:
    `rpc.deserialize_properties` of each request bag and `rpc.serialize_properties` of the response
    (pulumi/dynamic/__main__.py), timed here on the same values (best of 3)."""
    blob = provider_blob(RateCardProvider)
    structs = [struct({**bag, "__provider": blob}) for bag in requests]
    best = math.inf
    for _ in range(3):
        loop = asyncio.new_event_loop()
        started = time.process_time()
        for s in structs:
            rpc.deserialize_properties(s, True)
        if response is not None:
            loop.run_until_complete(rpc.serialize_properties({**response, "__provider": blob}, {}))
        best = min(best, time.process_time() - started)
        loop.close()
    return best


class PeakRss:
    """The host's peak resident memory, sampled every 20 ms (VmHWM is not portable)."""

    def __init__(self, process: psutil.Process) -> None:
        self.process, self.peak = process, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 1e6


class Bench:
    """One emulator and one generated stack, measured phase by phase."""

    def __init__(self, emulator: Emulator, stack: Stack, size: int, latency_ms: float) -> None:
        self.emulator, self.stack, self.size, self.latency_ms = emulator, stack, size, latency_ms
        self.emulator_process = psutil.Process(emulator.process.pid)
        self.rows: list[Row] = []
        self.state: dict[str, tuple[str, dict[str, Any]]] = {}  # node -> (id, outputs)
        self.nodes = nodes_of(stack)

    def stats(self) -> dict[str, Any]:
        return self.emulator.admin("GET", "stats").json()

    def set_latency(self, ms: float) -> None:
        self.emulator.admin("POST", "config", json={"latency_ms": ms})

    @contextmanager
    def host(self, env: dict[str, str] | None = None) -> Iterator[ProviderHost]:
        with ProviderHost(
            self.emulator.base_url, self.emulator.token, project=PROJECT, stack=self.stack.name, env=env
        ) as h:
            yield h

    @contextmanager
    def measure(
        self, host: ProviderHost, phase: str, resources: int, rates: int = 0
    ) -> Iterator[dict[str, Any]]:
        extra: dict[str, Any] = {}
        process = psutil.Process(host.process.pid)
        rss = PeakRss(process)
        before, host_cpu, emu_cpu = self.stats(), cpu_seconds(process), cpu_seconds(self.emulator_process)
        started = time.monotonic()
        yield extra
        wall = time.monotonic() - started
        host = cpu_seconds(process) - host_cpu
        self.add_row(phase, before, emu_cpu, resources, wall, host, rss.stop(), rates, extra)

    def add_row(
        self,
        phase: str,
        stats_before: dict[str, Any],
        emulator_cpu_before: float,
        resources: int,
        wall: float,
        cpu: float,
        rss_mb: float,
        rates: int,
        extra: dict[str, Any],
    ) -> None:
        """A row for what the emulator counted since `stats_before` (its calls, its CPU and its own time)."""
        after = self.stats()
        handler = after["seconds"] - stats_before["seconds"] if "seconds" in after else None
        routes = {r: n - stats_before["by_route"].get(r, 0) for r, n in after["by_route"].items()}
        extra["calls_by_kind"] = calls_by_kind(routes)
        calls = after["total"] - stats_before["total"]
        emulator_cpu = cpu_seconds(self.emulator_process) - emulator_cpu_before
        self.rows.append(
            Row(
                self.size, self.latency_ms, phase, calls, resources, wall, cpu, emulator_cpu, handler, rss_mb,
                rates, extra,
            )
        )  # fmt: skip

    # -- phases --------------------------------------------------------------------------------------

    def first_creates(self) -> None:
        """The first `up` on a new account: Metronome refuses the first create of each tagged kind, whose
        `iac_identity` custom field key is not registered yet; the provider registers it and creates
        again. Once per account: one object of each such kind, made before the stack (which then meets
        an account whose keys are there, as every `up` after the first does)."""
        with self.host() as h, self.measure(h, "first create per kind", len(FIRST_OF_EACH_TAGGED_KIND)):
            for provider, inputs in FIRST_OF_EACH_TAGGED_KIND:
                name = "first_" + provider.kind.lower()
                checked = h.check_ok(provider, {"identity": f"{PROJECT}/{self.stack.name}/{name}", **inputs})
                h.create(provider, checked, name=name)

    def apply(self) -> None:
        with self.host() as h, self.measure(h, "apply", len(self.nodes)) as extra:
            extra["objects_by_kind"] = objects_by_kind(self.nodes)

            def check(node: Node, ids: dict[str, str]) -> dict[str, Any]:
                return h.check_ok(node.provider, node.inputs(ids))

            def create(node: Node, checked: dict[str, Any]) -> tuple[str, dict[str, Any]]:
                return h.create(node.provider, checked, name=node.name)

            self.state, extra["in_flight"] = drive(self.nodes, check, create)
            sizes = {
                n.name: len(json.dumps({"__provider": provider_blob(n.provider), **self.state[n.name][1]}))
                for n in self.nodes
            }
            cards = [n.name for n in self.nodes if n.provider is RateCardProvider]
            rates = sum(len(self.state[c][1].get("rates") or []) for c in cards)
            extra["state_bytes_per_resource"] = sum(sizes.values()) / len(sizes)
            extra["state_bytes_per_rate"] = sum(sizes[c] for c in cards) / rates if rates else 0
            extra["rates"] = rates

    def floor(self) -> None:
        """The apply again with nothing of the provider's (`scale_floor`): its ratio is the part of the
        apply's that the Pulumi SDK's host, one SDK call per object and the emulator make on this machine.
        Last, on its own objects (customers): the account the other phases measured is left as it was."""
        if not self.latency_ms:
            return
        self.set_latency(self.latency_ms)
        with self.host(HOST_ENV) as h, self.measure(h, FLOOR_PHASE, len(self.nodes)):

            def check(node: Node, ids: dict[str, str]) -> dict[str, Any]:
                return h.check_ok(FloorProvider, node.inputs(ids))

            def create(node: Node, checked: dict[str, Any]) -> tuple[str, dict[str, Any]]:
                return h.create(FloorProvider, checked, name=node.name)

            drive(self.nodes, check, create)

    def preview(self) -> None:
        with self.host() as h, self.measure(h, "no-change preview", len(self.nodes)) as extra:
            extra["objects_by_kind"] = objects_by_kind(self.nodes)

            def check_and_diff(node: Node, ids: dict[str, str]) -> tuple[str, dict[str, Any]]:
                object_id, outs = self.state[node.name]
                recorded = {k: v for k, v in outs.items() if k != "adopt_report"}
                checked = h.check_ok(node.provider, node.inputs(ids), olds=recorded)
                diff = h.diff(node.provider, object_id, outs, checked, name=node.name)
                return object_id, {"changes": diff.changes}

            # Check and Diff are both the step generator's (PULUMI_PARALLEL_DIFF is off by default).
            results, _ = drive(self.nodes, check_and_diff)
            extra["changed"] = sorted(n for n, (_, r) in results.items() if r["changes"] != "NONE")

    def refresh(self) -> None:
        with self.host() as h, self.measure(h, "refresh", len(self.nodes)) as extra:
            extra["objects_by_kind"] = objects_by_kind(self.nodes)
            # The engine's step executor reads every resource at once; the host serves HOST_WORKERS at a time.
            with ThreadPoolExecutor(max_workers=STEP_EXECUTOR_THREADS) as pool:
                reads = list(
                    pool.map(
                        lambda n: h.read(
                            n.provider, self.state[n.name][0], self.state[n.name][1], name=n.name
                        ),
                        self.nodes,
                    )
                )
            extra["gone"] = sum(1 for object_id, _ in reads if not object_id)

    def price_edits(self) -> None:
        """One price changed on cards of 100 / 1,000 / 5,000 rates (made without latency: setup)."""
        usage = [p for p in self.stack.catalog.products if p.type == "USAGE"]
        product_ids = {n.split("/", 1)[1]: self.state[n][0] for n in self.state if n.startswith("products/")}
        self.set_latency(0)
        cards = {}
        with self.host() as h:
            for n in EDIT_SIZES:
                # Up to 1,000 rates per product keep the products few (the emulator checks only the keys).
                rates = [
                    {
                        "product_id": product_ids[usage[i // 1000 % len(usage)].name],
                        "starting_at": START,
                        "rate_type": "FLAT",
                        "price": 100 + i % 400,
                        "pricing_group_values": {"model": f"m{i // 8:04d}", "region": REGIONS[i % 8]},
                    }
                    for i in range(n)
                ]
                inputs = {
                    "identity": f"{PROJECT}/{self.stack.name}/edit_{n}",
                    "name": f"edit card {n}",
                    "rates": rates,
                }
                cards[n] = h.create(RateCardProvider, h.check_ok(RateCardProvider, inputs), name=f"edit_{n}")
        self.set_latency(self.latency_ms)
        for n, (card_id, outs) in cards.items():
            with self.host() as h:
                # Loading the provider into the host (once per run) is not the operation's cost.
                h.check_ok(
                    RateCardProvider, {"identity": f"{PROJECT}/{self.stack.name}/warm", "name": "warm"}
                )
                first = len(self.rows)
                for _ in range(EDIT_REPEATS):
                    outs = self.edit_one_price(h, card_id, outs, n)
                self.rows[first:] = median_rows(self.rows[first:])
        self.edit_cards = {n: card_id for n, (card_id, _) in cards.items()}

    def edit_one_price(self, h: ProviderHost, card_id: str, outs: dict[str, Any], n: int) -> dict[str, Any]:
        """One price changed on the card recorded as `outs`: check, diff, update and read, each measured
        apart; returns the outputs the update recorded."""
        edited = [dict(r) for r in outs["rates"]]
        edited[n // 2]["price"] += 1
        news = {**outs, "rates": edited}
        with self.measure(h, f"price edit {n}: check", 1, n) as extra:
            checked = h.check_ok(RateCardProvider, news, olds=outs)
        extra["sdk_cpu_s"] = sdk_seconds([outs, news], checked)
        with self.measure(h, f"price edit {n}: diff", 1, n) as extra:
            assert h.diff(RateCardProvider, card_id, outs, checked).changed
        extra["sdk_cpu_s"] = sdk_seconds([outs, checked], None)
        with self.measure(h, f"price edit {n}: update", 1, n) as extra:
            updated = h.update(RateCardProvider, card_id, outs, checked)
        extra["sdk_cpu_s"] = sdk_seconds([outs, checked], updated)
        with self.measure(h, f"price edit {n}: read", 1, n) as extra:
            read_id, read_outs = h.read(RateCardProvider, card_id, updated)
        extra["sdk_cpu_s"] = sdk_seconds([updated], read_outs)
        assert read_id == card_id and h.diff(RateCardProvider, card_id, read_outs, checked).changes == "NONE"
        return updated

    def add_one(self) -> None:
        """One product, then one customer, added to the applied account (each in a fresh host)."""
        metric = next(n for n in self.state if n.startswith("billable_metrics/"))
        added = {
            "product": (
                ProductProvider,
                {"name": "added product", "type": "USAGE", "billable_metric_id": self.state[metric][0]},
            ),
            "customer": (CustomerProvider, {"name": "added customer", "ingest_aliases": ["added-customer"]}),
        }
        for kind, (provider, inputs) in added.items():
            with self.host() as h, self.measure(h, f"add one {kind}", 1):
                checked = h.check_ok(
                    provider, {"identity": f"{PROJECT}/{self.stack.name}/added_{kind}", **inputs}
                )
                h.create(provider, checked, name=f"added_{kind}")

    def listing(self) -> None:
        """The schedules of the 1,000- and 5,000-rate cards, page by page through the SDK, without
        latency, timed by the emulator (its handler time from /_emulator/stats when it reports time, else
        the client's wall). Linear in rows: a row costs the same in a listing five times longer (paging
        that reads every row after the cursor for each page costs 1.6x per row at 5,000 rows, 4x at
        20,000). Also the pages' costs by place: the last page, partly filled (5,001 rows end in a page of
        one row), is left out, and medians are taken as one slow page on a busy machine is noise."""
        self.set_latency(0)
        client = self.emulator.client()
        per_row, pages = {}, []
        for n in (1000, max(EDIT_SIZES)):
            times, sizes = [], []
            cursor = None
            while True:
                before, started = self.stats(), time.perf_counter()
                page = client.v1.contracts.rate_cards.retrieve_rate_schedule(
                    rate_card_id=self.edit_cards[n],
                    starting_at="2000-01-01T00:00:00Z",
                    limit=100,
                    next_page=cursor,
                )
                wall = time.perf_counter() - started
                after = self.stats()
                times.append(after["seconds"] - before["seconds"] if "seconds" in after else wall)
                sizes.append(len(page.data))
                cursor = page.next_page
                if not cursor:
                    break
            per_row[n] = sum(times) / sum(sizes)
            pages = [t for t, rows in zip(times, sizes, strict=True) if rows == max(sizes)]
        self.set_latency(self.latency_ms)
        tenth = max(1, len(pages) // 10)
        small, big = per_row[1000], per_row[max(EDIT_SIZES)]
        self.listing_figures = {
            "rows": max(EDIT_SIZES),
            "ms_per_row_1000": small * 1000,
            "ms_per_row_big": big * 1000,
            "per_row_ratio": big / max(small, 1e-9),
            "first_tenth_ms": statistics.median(pages[:tenth]) * 1000,
            "last_tenth_ms": statistics.median(pages[-tenth:]) * 1000,
            "source": "emulator handler time" if "seconds" in self.stats() else "client wall time",
        }

    def real_engine(self, work: Path, cli: str) -> None:
        """The same stack through the Pulumi CLI (benchmarks/scale_cli.py): up, no-change preview,
        up --refresh, and up with PULUMI_SKIP_CHECKPOINTS, on an emptied emulator."""

        def empty_emulator() -> None:
            # An account that has the `iac_identity` keys, as every `up` after an account's first meets
            # (the first's refusals are the "first create per kind" row): on a new account, how many of
            # the engine's parallel first creates are refused varies from run to run.
            self.emulator.admin("POST", "reset")
            client = self.emulator.client()
            for provider, _ in FIRST_OF_EACH_TAGGED_KIND:
                client.v1.custom_fields.add_key(
                    entity=provider.entity, key=IDENTITY_FIELD, enforce_uniqueness=False
                )
            self.set_latency(self.latency_ms)

        def record(phase: str, run: Callable[[], tuple[Run, dict[str, Any]]]) -> None:
            before, emu_cpu = self.stats(), cpu_seconds(self.emulator_process)
            done, extra = run()
            nodes = len(self.nodes)
            self.add_row(phase, before, emu_cpu, nodes, done.wall_s, done.cpu_total_s, math.nan, 0, extra)

        real_engine_runs(self.stack, self.emulator, work, cli, empty_emulator, record)


# ----------------------------------------------------------------------------------------------------
# The run


def run(size: int, latency_ms: float) -> tuple[list[Row], dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        stack = write_stack(Path(tmp) / f"scale{size}", size)
        emulator = start_emulator()
        try:
            bench = Bench(emulator, stack, size, latency_ms)
            bench.set_latency(latency_ms)
            bench.first_creates()
            bench.apply()
            bench.preview()
            bench.refresh()
            bench.price_edits()
            bench.add_one()
            bench.listing()
            bench.floor()
            return bench.rows, bench.listing_figures
        finally:
            emulator.stop()


def run_real_engine(size: int, latency_ms: float, cli: str) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        stack = write_stack(Path(tmp) / f"scale{size}", size)
        emulator = start_emulator()
        try:
            bench = Bench(emulator, stack, size, latency_ms)
            bench.real_engine(Path(tmp), cli)
            return bench.rows
        finally:
            emulator.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000])
    parser.add_argument("--latencies", type=float, nargs="+", default=[0, 50], help="emulator latency, ms")
    parser.add_argument(
        "--pulumi-cli",
        type=int,
        nargs="+",
        default=[],
        metavar="SIZE",
        help="add the real CLI's rows (up, no-change preview, up --refresh, up skipping checkpoints) for "
        "the stack of each SIZE resources, at the highest latency (benchmarks/scale_cli.py)",
    )
    parser.add_argument(
        "--cli-only", action="store_true", help="only the --pulumi-cli rows, not the provider host's phases"
    )
    parser.add_argument("--json", type=Path, help="also write every row and target here")
    args = parser.parse_args()
    rows: list[Row] = []
    listing: dict[str, Any] = {}
    for size in [] if args.cli_only else args.sizes:
        for latency in args.latencies:
            print(f"... {size} resources at {latency:g} ms", file=sys.stderr, flush=True)
            got, figures = run(size, latency)
            rows += got
            if size == max(args.sizes) and latency == min(args.latencies):
                listing = figures
    cli = pulumi_cli_path() if args.pulumi_cli else None
    if args.pulumi_cli and cli is None:
        print("the pulumi CLI is not installed: no real-engine rows", file=sys.stderr)
    for size in args.pulumi_cli if cli else []:
        latency = max(args.latencies)
        print(f"... {size} resources through the pulumi CLI at {latency:g} ms", file=sys.stderr, flush=True)
        rows += run_real_engine(size, latency, cli)
    print_table(rows)
    print_by_kind(rows)
    found = targets(rows, listing)
    print("\ntargets (calls: held by CI; time: this machine)")
    for t in found:
        print(t.line())
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": [
                        asdict(r) | {"per_resource": r.per_resource, "ideal_s": r.ideal_s, "ratio": r.ratio}
                        for r in rows
                    ],
                    "listing": listing,
                    "targets": [asdict(t) for t in found],
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
