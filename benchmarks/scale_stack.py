"""The scale benchmark's generated stack (catalog and environment of N resources) and the engine's
pattern that drives it through the provider host (`drive`): each resource checked as soon as its
dependencies are done, one at a time, and its create run at once with the others in flight."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metronome_iac.catalog import Stack, dump_yaml, load_stack
from metronome_iac.catalog_packages import alert_inputs, customer_alert_name, package_inputs
from metronome_iac.program import (
    contract_inputs,
    customer_inputs,
    metric_inputs,
    product_inputs,
    rate_card_inputs,
)
from providers.alert import AlertProvider
from providers.billable_metric import BillableMetricProvider
from providers.contract import ContractProvider
from providers.customer import CustomerProvider
from providers.package import PackageProvider
from providers.product import ProductProvider
from providers.rate_card import RateCardProvider

HOST_WORKERS = 4  # the Python dynamic provider host's ThreadPoolExecutor(max_workers=4)
# The engine's step executor starts a goroutine per step, without a bound; threads here, more than are
# ever in flight against a host of 4 workers (the apply reports its peak, 6 or 7).
STEP_EXECUTOR_THREADS = 64
PROJECT = "bench"
START = "2026-01-01T00:00:00Z"
MODELS = [f"model-{i:02d}" for i in range(10)]
REGIONS = [f"region-{i}" for i in range(8)]
EDIT_SIZES = (100, 1000, 5000)
# Each price edit is made this many times on its card, one after the other, and each step's row is its
# median by provider CPU: one sample of a 0.1 s step moves with the machine's other work.
EDIT_REPEATS = 3

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


# The step generator's part of a resource (Check, and Diff of an update): what the step executor is handed.
SerialStep = Callable[[Node, dict[str, str]], Any]
# The step executor's part (Create): given what the serial part handed it, the resource's (id, outputs).
ConcurrentStep = Callable[[Node, Any], tuple[str, dict[str, Any]]]


# The kinds identified by the `iac_identity` custom field, and one object of each: what a new account
# refuses until the key is registered.
FIRST_OF_EACH_TAGGED_KIND: list[tuple[Any, dict[str, Any]]] = [
    (BillableMetricProvider, {"name": "first metric", "aggregation_type": "COUNT"}),
    (ProductProvider, {"name": "first product", "type": "FIXED"}),
    (RateCardProvider, {"name": "first card"}),
    (CustomerProvider, {"name": "first customer", "ingest_aliases": ["first-customer"]}),
]


def drive(
    nodes: list[Node],
    serial: SerialStep,
    concurrent: ConcurrentStep | None = None,
) -> tuple[dict[str, tuple[str, dict[str, Any]]], int]:
    """Run every node the way the engine runs a deployment (pulumi pkg/v3 v3.260.0, resource/deploy).
    Its step generator takes the registrations one at a time, as their dependencies finish, and calls the
    provider itself (`serial`: deployment_executor.go `handleSingleEvent` -> step_generator.go
    `GenerateSteps` -> `prov.Check`, and the Diff of an update unless PULUMI_PARALLEL_DIFF is set); the
    step executor runs the steps it is handed at once, without a bound (`concurrent`: `pulumi up
    --parallel` is unbounded by default). So the provider host holds every step in flight and serves
    them HOST_WORKERS at a time, its checks waiting in the same queue.

    Without `concurrent`, `serial` returns the node's (id, outputs). Returns ({node: (id, outputs)}, the
    most steps that were in flight)."""
    results: dict[str, tuple[str, dict[str, Any]]] = {}
    by_name = {n.name: n for n in nodes}
    waiting = {n.name: set(n.deps) for n in nodes}
    dependents: dict[str, list[str]] = {}
    for n in nodes:
        for d in n.deps:
            dependents.setdefault(d, []).append(n.name)
    ready = deque(name for name, deps in waiting.items() if not deps)
    running: dict[Future[tuple[str, dict[str, Any]]], str] = {}
    peak = 0

    def done(name: str, result: tuple[str, dict[str, Any]]) -> None:
        results[name] = result
        for dependent in dependents.get(name, []):
            waiting[dependent].discard(name)
            if not waiting[dependent] and dependent in by_name:
                ready.append(dependent)

    with ThreadPoolExecutor(max_workers=STEP_EXECUTOR_THREADS) as executor:
        while len(results) < len(nodes):
            if running:
                # What the step executor finished; wait for one only when nothing is ready to generate.
                finished, _ = wait(running, timeout=0 if ready else None, return_when=FIRST_COMPLETED)
                for future in finished:
                    done(running.pop(future), future.result())
            if not ready:
                if running or len(results) == len(nodes):
                    continue
                stuck = sorted(name for name in by_name if name not in results)
                raise RuntimeError(f"nodes waiting on dependencies that are not in the stack: {stuck[:5]}")
            node = by_name[ready.popleft()]
            handed = serial(node, {d: results[d][0] for d in node.deps})
            if concurrent is None:
                done(node.name, handed)
                continue
            running[executor.submit(concurrent, node, handed)] = node.name
            peak = max(peak, len(running))
    return results, peak
