"""The cost of running an account as code, at scale: the record of issue 13's targets.

A generated stack of 100 / 1,000 / 3,000 resources (a realistic mix: billable metrics, usage products
priced by model and region, rate cards of 200-500 rates, self-serve packages, account-wide and
per-customer alerts, customers and contracts with prepaid commits and overrides) goes through the real
provider host (`python -m pulumi.dynamic` over gRPC, tests/provider_host.py) against the emulator, driven
the way the engine drives it: each resource is checked then created as soon as its dependencies are, 4
calls in flight (the Python dynamic provider host serves 4 gRPC calls at a time). Each phase runs in a
fresh host, as each `pulumi` command does:

    first create per kind  a new account: one object of each tagged kind, whose `iac_identity` custom
                       field key Metronome refuses until it is registered (once per account)
    apply              create the stack (on that account: the keys are there, as after any first `up`)
    no-change preview  Check + Diff of every resource against the recorded state
    refresh            Read of every resource
    price edit N       one price changed on a card of N rates (100 / 1,000 / 5,000): Check, Diff,
                       Update, then the card's Read, each with its CPU per rate
    add product/customer   one object added to the applied account
    listing            the 5,000-rate card's schedule read page by page (emulator time per page)

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
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from pulumi.runtime import rpc

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import Emulator, start_emulator  # noqa: E402
from provider_host import ProviderHost, provider_blob, struct  # noqa: E402
from scale_cli import Run, note_text, pulumi_cli_path, real_engine_runs  # noqa: E402

from metronome_iac.catalog import Stack, dump_yaml, load_stack  # noqa: E402
from metronome_iac.catalog_packages import alert_inputs, customer_alert_name, package_inputs  # noqa: E402
from metronome_iac.program import (  # noqa: E402
    contract_inputs,
    customer_inputs,
    metric_inputs,
    product_inputs,
    rate_card_inputs,
)
from providers.alert import AlertProvider  # noqa: E402
from providers.billable_metric import BillableMetricProvider  # noqa: E402
from providers.contract import ContractProvider  # noqa: E402
from providers.customer import CustomerProvider  # noqa: E402
from providers.exactly_once import IDENTITY_FIELD  # noqa: E402
from providers.package import PackageProvider  # noqa: E402
from providers.product import ProductProvider  # noqa: E402
from providers.rate_card import RateCardProvider  # noqa: E402

WORKERS = 4  # the Python dynamic provider host's ThreadPoolExecutor(max_workers=4)
PROJECT = "bench"
START = "2026-01-01T00:00:00Z"
MODELS = [f"model-{i:02d}" for i in range(10)]
REGIONS = [f"region-{i}" for i in range(8)]
EDIT_SIZES = (100, 1000, 5000)

# ----------------------------------------------------------------------------------------------------
# The generated stack


def stack_files(size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """catalog.yaml and environment.yaml of a stack of `size` resources: 2% metrics, 5% products
    (USAGE priced by model x region, a FIXED commit product, a SUBSCRIPTION platform fee), one rate card
    per 200 resources (200-500 rates each), one self-serve package per 100 (its card and a welcome
    credit), account-wide alerts (a low balance and a spend alert), the rest customers and their contracts
    (every other one with a prepaid commit, every third with an override) and a spend alert on every
    tenth customer."""
    n_metrics = max(2, size // 50)
    n_products = max(n_metrics + 2, size // 20)
    n_cards = max(1, size // 200)
    n_packages = max(1, size // 100)
    n_alerts = 2
    rest = size - n_metrics - n_products - n_cards - n_packages - n_alerts
    # customers + contracts + one alert per tenth customer = rest
    n_customers = rest * 10 // 21
    n_contracts = n_customers
    n_customer_alerts = rest - n_customers - n_contracts
    metrics = [
        {
            "name": f"metric_{i:03d}",
            "aggregation_type": "SUM",
            "aggregation_key": "tokens",
            "property_filters": [
                {"name": "tokens", "exists": True},
                {"name": "model", "exists": True},
                {"name": "region", "exists": True},
            ],
            "group_keys": [["model", "region"]],
        }
        for i in range(n_metrics)
    ]
    usage = [
        {
            "name": f"usage_{i:03d}",
            "type": "USAGE",
            "billable_metric": metrics[i % n_metrics]["name"],
            "pricing_group_key": ["model", "region"],
            "quantity_conversion": {"conversion_factor": 1000000, "operation": "DIVIDE"},
        }
        for i in range(n_products - 2)
    ]
    products = [
        *usage,
        {"name": "prepaid", "type": "FIXED"},
        {"name": "platform_fee", "type": "SUBSCRIPTION"},
    ]
    combos = [{"model": m, "region": r} for m in MODELS for r in REGIONS]
    cards = []
    for c in range(n_cards):
        want = 200 + (c * 137) % 301  # 200-500 rates
        rates: list[dict[str, Any]] = [
            {
                "product": "platform_fee",
                "starting_at": START,
                "rate_type": "FLAT",
                "price": 50000,
                "billing_frequency": "MONTHLY",
            }
        ]
        p = c
        while len(rates) < want:
            product = usage[p % len(usage)]["name"]
            for pgv in combos[: want - len(rates)]:
                rate: dict[str, Any] = {"product": product, "starting_at": START, "pricing_group_values": pgv}
                if len(rates) % 7 == 0:
                    rate |= {"rate_type": "TIERED", "tiers": [{"size": 1000, "price": 300}, {"price": 250}]}
                else:
                    rate |= {"rate_type": "FLAT", "price": 100 + len(rates) % 400}
                rates.append(rate)
            p += 1
        cards.append({"name": f"card_{c:02d}", "description": "list prices", "rates": rates})
    customers = [
        {"name": f"customer_{i:04d}", "ingest_aliases": [f"customer-{i:04d}"], "external_id": f"crm-{i:04d}"}
        for i in range(n_customers)
    ]
    contracts = []
    for i in range(n_contracts):
        card = cards[i % n_cards]
        contract: dict[str, Any] = {
            "name": f"contract_{i:04d}",
            "customer": customers[i % n_customers]["name"],
            "rate_card": card["name"],
            "starting_at": START,
            "ending_before": "2027-01-01T00:00:00Z",
        }
        if i % 2 == 0:
            contract["commits"] = [
                {
                    "product": "prepaid",
                    "type": "PREPAID",
                    "name": "prepaid tokens",
                    "access_schedule": {
                        "schedule_items": [
                            {
                                "amount": 100000 + i,
                                "starting_at": START,
                                "ending_before": "2027-01-01T00:00:00Z",
                            }
                        ]
                    },
                    "invoice_schedule": {"schedule_items": [{"timestamp": START, "amount": 100000 + i}]},
                }
            ]
        if i % 3 == 0:
            contract["overrides"] = [
                {
                    "starting_at": START,
                    "type": "MULTIPLIER",
                    "product": card["rates"][1]["product"],
                    "multiplier": 0.9,
                }
            ]
        contracts.append(contract)
    packages = [
        {
            "name": f"self_serve_{i:02d}",
            "rate_card": cards[i % n_cards]["name"],
            "contract_name": "Self-serve plan",
            "aliases": [{"name": f"self-serve-{i:02d}"}],
            "duration": {"unit": "YEARS", "value": 1},
            "credits": [
                {
                    "product": "prepaid",
                    "name": "Welcome credit",
                    "access_schedule": {
                        "schedule_items": [
                            {
                                "amount": 1000,
                                "starting_at_offset": {"unit": "DAYS", "value": 0},
                                "duration": {"unit": "MONTHS", "value": 1},
                            }
                        ]
                    },
                }
            ],
        }
        for i in range(n_packages)
    ]
    alerts = [
        {
            "name": "low_balance",
            "alert_type": "low_remaining_contract_credit_and_commit_balance_reached",
            "threshold": 1000,
            "evaluate_on_create": False,
        },
        {"name": "big_spender", "alert_type": "spend_threshold_reached", "threshold": 10_000_000},
    ][:n_alerts]
    for i in range(n_customer_alerts):
        customers[i * n_customers // n_customer_alerts]["alerts"] = [
            {"name": "spend_over_5000", "alert_type": "spend_threshold_reached", "threshold": 500000}
        ]
    catalog = {
        "billable_metrics": metrics,
        "products": products,
        "rate_cards": cards,
        "packages": packages,
        "alerts": alerts,
    }
    environment = {"settings": {"net_payment_terms_days": 30}, "customers": customers, "contracts": contracts}
    return catalog, environment


def write_stack(directory: Path, size: int) -> Stack:
    directory.mkdir(parents=True, exist_ok=True)
    catalog, environment = stack_files(size)
    (directory / "catalog.yaml").write_text(dump_yaml(catalog))
    (directory / "environment.yaml").write_text(dump_yaml(environment))
    return load_stack(directory)  # the catalog's validation, as the program runs it


# ----------------------------------------------------------------------------------------------------
# The engine's pattern


@dataclass
class Node:
    """One declared resource: its provider, the nodes it needs, and its inputs given their ids."""

    name: str
    provider: Any
    deps: tuple[str, ...]
    inputs: Callable[[dict[str, str]], dict[str, Any]]


def nodes_of(stack: Stack) -> list[Node]:
    settings = stack.environment.settings
    out: list[Node] = []

    def node(
        section: str, name: str, provider: Any, deps: list[str], build: Callable[..., dict[str, Any]]
    ) -> None:
        key = f"{section}/{name}"

        def inputs(ids: dict[str, str]) -> dict[str, Any]:
            return {"identity": f"{PROJECT}/{stack.name}/{name}", **build(ids)}

        out.append(Node(key, provider, tuple(dict.fromkeys(deps)), inputs))

    def by_section(ids: dict[str, str], section: str) -> dict[str, str]:
        prefix = section + "/"
        return {k[len(prefix) :]: v for k, v in ids.items() if k.startswith(prefix)}

    for m in stack.catalog.billable_metrics:
        node("billable_metrics", m.name, BillableMetricProvider, [], lambda ids, m=m: metric_inputs(m))
    for p in stack.catalog.products:
        deps = [f"billable_metrics/{p.billable_metric}"] if p.billable_metric else []
        node(
            "products",
            p.name,
            ProductProvider,
            deps,
            lambda ids, p=p: product_inputs(
                p, by_section(ids, "billable_metrics"), by_section(ids, "products"), settings
            ),
        )
    for card in stack.catalog.rate_cards:
        node(
            "rate_cards",
            card.name,
            RateCardProvider,
            [f"products/{r.product}" for r in card.rates],
            lambda ids, card=card: rate_card_inputs(card, by_section(ids, "products")),
        )
    for pkg in stack.catalog.packages:
        node(
            "packages",
            pkg.name,
            PackageProvider,
            [*([f"rate_cards/{pkg.rate_card}"] if pkg.rate_card else []), "products/prepaid"],
            lambda ids, pkg=pkg: package_inputs(
                pkg, by_section(ids, "rate_cards"), by_section(ids, "products")
            ),
        )
    for a in stack.catalog.alerts:
        deps = [f"billable_metrics/{a.billable_metric}"] if a.billable_metric else []
        node(
            "alerts",
            a.name,
            AlertProvider,
            deps,
            lambda ids, a=a: alert_inputs(a, by_section(ids, "billable_metrics")),
        )
    for c in stack.environment.customers:
        node("customers", c.name, CustomerProvider, [], lambda ids, c=c: customer_inputs(c))
        for a in c.alerts or []:
            node(
                "alerts",
                customer_alert_name(c.name, a.name),
                AlertProvider,
                [f"customers/{c.name}"],
                lambda ids, a=a, c=c: alert_inputs(
                    a, by_section(ids, "billable_metrics"), by_section(ids, "customers")[c.name]
                ),
            )
    for k in stack.environment.contracts:
        products = [i.product for i in [*(k.commits or []), *(k.overrides or [])] if i.product]
        node(
            "contracts",
            k.name,
            ContractProvider,
            [f"customers/{k.customer}", f"rate_cards/{k.rate_card}", *(f"products/{p}" for p in products)],
            lambda ids, k=k: contract_inputs(
                k,
                by_section(ids, "customers"),
                by_section(ids, "rate_cards"),
                by_section(ids, "products"),
                settings,
            ),
        )
    return out


Step = Callable[[Node, dict[str, str]], tuple[str, dict[str, Any]]]


# The kinds identified by the `iac_identity` custom field, and one object of each: what a new account
# refuses until the key is registered.
FIRST_OF_EACH_TAGGED_KIND: list[tuple[Any, dict[str, Any]]] = [
    (BillableMetricProvider, {"name": "first metric", "aggregation_type": "COUNT"}),
    (ProductProvider, {"name": "first product", "type": "FIXED"}),
    (RateCardProvider, {"name": "first card"}),
    (CustomerProvider, {"name": "first customer", "ingest_aliases": ["first-customer"]}),
]


def drive(
    nodes: list[Node], step: Step, known: dict[str, str] | None = None
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Run `step` for every node as soon as its dependencies are done, WORKERS at a time; returns
    {node: step's (id, outputs)}. `known` holds ids of nodes not run (an account applied earlier)."""
    ids: dict[str, str] = dict(known or {})
    results: dict[str, tuple[str, dict[str, Any]]] = {}
    by_name = {n.name: n for n in nodes}
    waiting = {n.name: {d for d in n.deps if d not in ids} for n in nodes}
    dependents: dict[str, list[str]] = {}
    for n in nodes:
        for d in n.deps:
            dependents.setdefault(d, []).append(n.name)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        running: dict[Future[tuple[str, dict[str, Any]]], str] = {}

        def submit(name: str) -> None:
            # The ids it needs, as they are now: `ids` grows under the running steps.
            running[pool.submit(step, by_name[name], {d: ids[d] for d in by_name[name].deps})] = name

        for name, deps in waiting.items():
            if not deps:
                submit(name)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                results[name] = future.result()
                ids[name] = results[name][0]
                for dependent in dependents.get(name, []):
                    waiting[dependent].discard(name)
                    if not waiting[dependent] and dependent in by_name:
                        submit(dependent)
    return results


# ----------------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Row:
    size: int
    latency_ms: float
    phase: str
    calls: int
    resources: int
    wall_s: float
    host_cpu_s: float
    emulator_cpu_s: float
    emulator_handler_s: float | None  # from /_emulator/stats `seconds`, when the emulator reports it
    host_peak_rss_mb: float
    rates: int = 0  # rates involved (the price edits)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_resource(self) -> float:
        return self.calls / self.resources if self.resources else 0.0

    @property
    def ideal_s(self) -> float:
        return self.calls * self.latency_ms / 1000 / WORKERS

    @property
    def ratio(self) -> float | None:
        return self.wall_s / self.ideal_s if self.ideal_s else None

    @property
    def provider_cpu_s(self) -> float:
        """The host's CPU less the Pulumi SDK's conversion of the call's property bags."""
        return max(self.host_cpu_s - self.extra.get("sdk_cpu_s", 0.0), 0.0)


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
    def host(self) -> Iterator[ProviderHost]:
        with ProviderHost(
            self.emulator.base_url, self.emulator.token, project=PROJECT, stack=self.stack.name
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

            def create(node: Node, ids: dict[str, str]) -> tuple[str, dict[str, Any]]:
                checked = h.check_ok(node.provider, node.inputs(ids))
                object_id, outs = h.create(node.provider, checked, name=node.name)
                return object_id, outs

            self.state = drive(self.nodes, create)
            sizes = {
                n.name: len(json.dumps({"__provider": provider_blob(n.provider), **self.state[n.name][1]}))
                for n in self.nodes
            }
            cards = [n.name for n in self.nodes if n.provider is RateCardProvider]
            rates = sum(len(self.state[c][1].get("rates") or []) for c in cards)
            extra["state_bytes_per_resource"] = sum(sizes.values()) / len(sizes)
            extra["state_bytes_per_rate"] = sum(sizes[c] for c in cards) / rates if rates else 0
            extra["rates"] = rates

    def preview(self) -> None:
        with self.host() as h, self.measure(h, "no-change preview", len(self.nodes)) as extra:
            extra["objects_by_kind"] = objects_by_kind(self.nodes)

            def check_and_diff(node: Node, ids: dict[str, str]) -> tuple[str, dict[str, Any]]:
                object_id, outs = self.state[node.name]
                recorded = {k: v for k, v in outs.items() if k != "adopt_report"}
                checked = h.check_ok(node.provider, node.inputs(ids), olds=recorded)
                diff = h.diff(node.provider, object_id, outs, checked, name=node.name)
                return object_id, {"changes": diff.changes}

            results = drive(self.nodes, check_and_diff)
            extra["changed"] = sorted(n for n, (_, r) in results.items() if r["changes"] != "NONE")

    def refresh(self) -> None:
        with self.host() as h, self.measure(h, "refresh", len(self.nodes)) as extra:
            extra["objects_by_kind"] = objects_by_kind(self.nodes)
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
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
            edited = [dict(r) for r in outs["rates"]]
            edited[n // 2]["price"] += 1
            news = {**outs, "rates": edited}
            with self.host() as h:
                # Loading the provider into the host (once per run) is not the operation's cost.
                h.check_ok(
                    RateCardProvider, {"identity": f"{PROJECT}/{self.stack.name}/warm", "name": "warm"}
                )
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
                assert (
                    read_id == card_id
                    and h.diff(RateCardProvider, card_id, read_outs, checked).changes == "NONE"
                )
        self.edit_cards = {n: card_id for n, (card_id, _) in cards.items()}

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
            for provider, _ in FIRST_OF_EACH_TAGGED_KIND:
                self.emulator.client().v1.custom_fields.add_key(
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
# Targets


@dataclass
class Target:
    key: str  # stable name, e.g. "edit_calls_5000@100": what tests/test_benchmark_targets.py holds
    name: str
    figure: str
    met: bool
    kind: str  # "calls" (counts: held by CI) or "time" (this machine's figures)
    item: str = ""  # the issue 13 item whose fix moves it

    def line(self) -> str:
        owner = f"   [issue 13 item {self.item}]" if self.item and not self.met else ""
        return f"  {'met' if self.met else 'NOT met':8} {self.name}: {self.figure}{owner}"


def targets(rows: list[Row], listing: dict[str, Any]) -> list[Target]:
    """Every target of issue 13 that the rows measure. Counts are taken at the lowest latency (they do not
    depend on it), CPU at 0 ms, the ratio to the ideal at 50 ms for 1,000 resources and more."""
    out: list[Target] = []
    lowest = min(r.latency_ms for r in rows)
    by = {(r.size, r.latency_ms, r.phase): r for r in rows}
    for r in rows:
        at, where = f"@{r.size}", f"{r.size} resources"
        counted = r.latency_ms == lowest
        if r.phase == "apply" and counted:
            state = r.extra["state_bytes_per_resource"]
            out += [
                Target(
                    "apply_calls" + at,
                    f"apply <= 1.02 calls per declared object ({where})",
                    f"{r.per_resource:.3f}",
                    r.per_resource <= 1.02,
                    "calls",
                    "1",
                ),
                Target(
                    "state_bytes" + at,
                    f"state < 4 KB per resource ({where})",
                    f"{state:.0f} bytes",
                    state < 4096,
                    "calls",
                ),
            ]
        if r.phase == "apply" and counted:
            made, calls = r.extra["objects_by_kind"], r.extra["calls_by_kind"]
            packages = made.get("packages", 0)
            out.append(
                Target(
                    "apply_package_calls" + at,
                    f"apply <= 1.02 calls per package ({packages} packages, {where})",
                    f"{calls.get('packages', 0) / max(packages, 1):.3f}",
                    bool(packages) and calls.get("packages", 0) <= 1.02 * packages,
                    "calls",
                )
            )
            alerts = made.get("alerts", 0)
            out.append(
                Target(
                    "apply_alert_calls" + at,
                    "apply: one call per alert, plus one look-up per host of a customer to read the "
                    f"account-wide ones through ({alerts} alerts, {where})",
                    f"{calls.get('alerts', 0)} calls",
                    bool(alerts) and calls.get("alerts", 0) <= alerts + 1,
                    "calls",
                )
            )
        if r.phase == "first create per kind" and counted:
            out.append(
                Target(
                    "first_creates" + at,
                    "a new account's first create of a tagged kind <= 3 calls (refused for the "
                    f"`iac_identity` key, key registered, created; once per account) ({where})",
                    f"{r.calls} calls for {r.resources} kinds",
                    r.calls <= 3 * r.resources,
                    "calls",
                )
            )
        if r.phase == "apply" and r.latency_ms > 0 and r.size >= 1000 and r.ratio is not None:
            out.append(
                Target(
                    "apply_ratio" + at,
                    f"apply within 1.2x of calls x latency / 4 ({where}, {r.latency_ms:g} ms)",
                    f"{r.ratio:.2f}x",
                    r.ratio <= 1.2,
                    "time",
                )
            )
        if r.phase == "no-change preview" and counted:
            changed = r.extra["changed"]
            out += [
                Target(
                    "preview_calls" + at,
                    f"no-change preview <= 0.01 calls per resource ({where})",
                    f"{r.per_resource:.3f}",
                    r.per_resource <= 0.01,
                    "calls",
                    "4",
                ),
                Target(
                    "preview_no_change" + at,
                    f"no-change preview shows no change ({where})",
                    ", ".join(changed[:5]) or "none changed",
                    not changed,
                    "calls",
                ),
            ]
        if r.phase == "refresh" and counted:
            out.append(
                Target(
                    "refresh_calls" + at,
                    f"no-change refresh <= 1.02 calls per resource ({where})",
                    f"{r.per_resource:.3f}",
                    r.per_resource <= 1.02,
                    "calls",
                )
            )
        if r.phase.startswith("add one") and counted:
            kind = r.phase.rsplit(" ", 1)[1]
            out.append(
                Target(
                    f"add_{kind}_calls" + at,
                    f"adding one {kind} to an account of {r.size}: <= 2 calls",
                    f"{r.calls}",
                    r.calls <= 2,
                    "calls",
                    "1",
                )
            )
        if r.phase.startswith("price edit") and r.latency_ms == 0 and r.rates == max(EDIT_SIZES):
            # The provider's own CPU: the host's less what the Pulumi SDK spends converting the call's
            # property bags (outside the provider's reach; both are in the table).
            op = r.phase.rsplit(": ", 1)[1]
            per_rate = r.provider_cpu_s * 1000 / r.rates
            sdk = r.extra.get("sdk_cpu_s", 0)
            host = f"host {r.host_cpu_s:.3f} s, of which Pulumi SDK conversion {sdk:.3f} s"
            if op == "diff":
                out.append(
                    Target(
                        "diff_cpu" + at,
                        f"diff of a {r.rates}-rate card <= 0.2 s of provider CPU ({where})",
                        f"{r.provider_cpu_s:.3f} s ({host})",
                        r.provider_cpu_s <= 0.2,
                        "time",
                        "3",
                    )
                )
            out.append(
                Target(
                    f"{op}_cpu_per_rate" + at,
                    f"provider CPU per rate per {op} <= 0.05 ms ({r.rates} rates, {where})",
                    f"{per_rate:.4f} ms ({host})",
                    per_rate <= 0.05,
                    "time",
                    "3",
                )
            )
    for size in sorted({r.size for r in rows if r.phase.startswith("price edit")}):
        for n in EDIT_SIZES:
            ops = [by.get((size, lowest, f"price edit {n}: {op}")) for op in ("check", "diff", "update")]
            calls = sum(r.calls for r in ops if r)
            out.append(
                Target(
                    f"edit_calls_{n}@{size}",
                    f"one price edit on a {n}-rate card <= 3 calls ({size} resources)",
                    f"{calls}",
                    calls <= 3,
                    "calls",
                    "2",
                )
            )
    if listing:
        ratio = listing["per_row_ratio"]
        figure = (
            f"{listing['ms_per_row_big']:.3f} ms a row over {listing['rows']} rows, "
            f"{listing['ms_per_row_1000']:.3f} ms over 1000: {ratio:.2f}x (full pages of the "
            f"{listing['rows']}: median of the first tenth {listing['first_tenth_ms']:.1f} ms, "
            f"of the last tenth {listing['last_tenth_ms']:.1f} ms; {listing['source']})"
        )
        out.append(
            Target(
                "listing_linear",
                f"emulator listing linear in rows (a row of a {listing['rows']}-row listing costs <= 1.3x "
                "a row of a 1000-row one)",
                figure,
                ratio <= 1.3,
                "time",
                "5",
            )
        )
    return out


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


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'size':>5} {'lat':>4} {'phase':<28} {'calls':>6} {'/res':>7} {'wall s':>7} {'ideal s':>7} "
        f"{'ratio':>6} {'host cpu':>8} {'emu cpu':>8} {'emu hdl':>8} {'rss MB':>7}  notes"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        notes = []
        if "state_bytes_per_resource" in r.extra:
            per_resource, per_rate = r.extra["state_bytes_per_resource"], r.extra["state_bytes_per_rate"]
            notes.append(
                f"state {per_resource:.0f} B/resource, {per_rate:.0f} B/rate ({r.extra['rates']} rates)"
            )
        if r.rates:
            notes.append(
                f"CPU/rate: provider {r.provider_cpu_s * 1000 / r.rates:.4f} ms, Pulumi SDK "
                f"{r.extra.get('sdk_cpu_s', 0) * 1000 / r.rates:.4f} ms"
            )
        if r.extra.get("changed"):
            notes.append(f"{len(r.extra['changed'])} showed a change")
        if "cpu_by_role" in r.extra:
            notes.append(note_text(r.extra, r.resources))
        cells = [
            f"{r.size:>5} {r.latency_ms:>4g} {r.phase:<28} {r.calls:>6} {r.per_resource:>7.3f}",
            f"{r.wall_s:>7.2f} {r.ideal_s:>7.2f} {fmt(r.ratio, '6.2f'):>6} {fmt(r.host_cpu_s, '8.2f'):>8}",
            f"{r.emulator_cpu_s:>8.2f} {fmt(r.emulator_handler_s, '8.2f'):>8}",
            f"{fmt(r.host_peak_rss_mb, '7.0f'):>7}",
        ]
        print(" ".join(cells) + "  " + "; ".join(notes))


def print_by_kind(rows: list[Row]) -> None:
    """Calls per object by kind (endpoint families: FAMILIES) for the phases over the whole stack."""
    print("\ncalls per object by kind (calls / objects)")
    for r in rows:
        objects = r.extra.get("objects_by_kind")
        if not objects:
            continue
        calls = r.extra["calls_by_kind"]
        cells = [f"{k} {calls.get(k, 0) / n:.2f} ({calls.get(k, 0)}/{n})" for k, n in objects.items()]
        cells += [f"{k} {n}" for k, n in calls.items() if k not in objects]
        print(f"{r.size:>5} {r.latency_ms:>4g} {r.phase:<18} " + ", ".join(cells))


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
