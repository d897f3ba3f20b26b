"""Reliability soak: many parallel creates through injected faults, and a provider host killed mid-apply.

Each run starts a fresh emulator and puts a fault proxy between it and the provider host
(tests/fault_proxy.py: 500s before and after processing, `{}` and non-JSON 200s, delays, late answers,
at the run's rate). It declares RESOURCES objects (metrics, products on them, rate cards pricing them,
customers with ingest aliases, contracts), created as the engine does: a kind once what it references
exists, PARALLEL creates in flight (the host serves 4 at a time). Like a user re-running `pulumi up`,
the creates that failed are run again by a new provider host (each `up` starts one), up to MAX_UPS
times. The "killed" run kills the host while a create it sent has been processed but not answered
(an orphan the next `up` must take over, not duplicate).

Per run it prints: declared, live (declared objects live exactly where the state says), duplicates
(extra live objects of a declared name), lost (declared objects not live, or state naming an object
that is not), errors (creates that failed and were retried by a later `up`), ups and injected faults.

    .venv/bin/python benchmarks/soak.py             # 300 resources, 20% and 40%, seeds 1-3, a killed host
    .venv/bin/python benchmarks/soak.py --smallest  # what CI runs (tests/test_soak.py)
    .venv/bin/python benchmarks/soak.py --resources 100 --rates 0.3 --seeds 7

Exits non-zero when any run has a duplicate or a lost object.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import start_emulator  # noqa: E402
from fault_proxy import FaultProxy, Rule  # noqa: E402
from provider_host import ProviderError, ProviderHost  # noqa: E402

from providers.billable_metric import BillableMetricProvider as M  # noqa: E402
from providers.contract import ContractProvider as K  # noqa: E402
from providers.customer import CustomerProvider as C  # noqa: E402
from providers.product import ProductProvider as P  # noqa: E402
from providers.rate_card import RateCardProvider as R  # noqa: E402

MAX_UPS = 6
START = "2026-01-01T00:00:00Z"
CREATE_PATHS = (
    r"/v1/(customers|billable-metrics/create|contract-pricing/(products|rate-cards)/create|contracts/create)"
)
# Shares of the declared resources, in the order they are created (each kind references earlier ones).
MIX = (("metric", 0.2), ("product", 0.2), ("rate_card", 0.1), ("customer", 0.3), ("contract", 0.2))


@dataclass
class Run:
    rate: float
    seed: int
    killed: bool
    declared: int = 0
    live: int = 0
    duplicates: int = 0
    lost: int = 0
    errors: int = 0
    ups: int = 0
    faults: int = 0
    seconds: float = 0.0
    orphan: str | None = None  # the name whose create the killed host sent but never heard back from
    samples: list[str] = field(default_factory=list)

    def line(self) -> str:
        killed = f" killed host (orphan {self.orphan})" if self.killed else ""
        return (
            f"faults {self.rate:.0%} seed {self.seed}{killed}: "
            f"declared {self.declared}, live {self.live}, duplicates {self.duplicates}, lost {self.lost}, "
            f"errors {self.errors} (retried), ups {self.ups}, injected {self.faults}, {self.seconds:.1f} s"
        )


class Apply:
    """The declared objects, the state (name -> id) and the `up`s that create what is missing."""

    def __init__(self, resources: int, parallel: int, proxy: FaultProxy, token: str, run: Run) -> None:
        self.parallel, self.proxy, self.token, self.run = parallel, proxy, token, run
        counts = {kind: max(1, round(resources * share)) for kind, share in MIX}
        self.names = {kind: [f"{kind}-{i}" for i in range(n)] for kind, n in counts.items()}
        self.state: dict[str, str] = {}
        self.run.declared = sum(counts.values())

    def news(self, kind: str, i: int) -> tuple[Any, dict[str, Any]]:
        name = self.names[kind][i]
        base = {"identity": f"soak/soak/{name}", "name": name}
        ids = self.state
        if kind == "metric":
            props = [{"name": "model", "exists": True}]
            return M, {
                **base,
                "aggregation_type": "COUNT",
                "property_filters": props,
                "group_keys": [["model"]],
            }
        if kind == "product":
            metric = ids[self.names["metric"][i % len(self.names["metric"])]]
            return P, {**base, "type": "USAGE", "billable_metric_id": metric, "pricing_group_key": ["model"]}
        if kind == "rate_card":
            products = self.names["product"][i :: len(self.names["rate_card"])]
            rates = [
                {
                    "product_id": ids[p],
                    "starting_at": START,
                    "rate_type": "FLAT",
                    "price": 100 + j,
                    "pricing_group_values": {"model": model},
                }
                for j, p in enumerate(products)
                for model in ("small", "large")
            ]
            return R, {**base, "rates": rates}
        if kind == "customer":
            return C, {**base, "ingest_aliases": [f"{name}-alias"]}
        customer = ids[self.names["customer"][i % len(self.names["customer"])]]
        card = ids[self.names["rate_card"][i % len(self.names["rate_card"])]]
        return K, {**base, "customer_id": customer, "rate_card_id": card, "starting_at": START}

    def up(self, host: ProviderHost) -> int:
        """Create every declared object the state lacks, kind by kind; returns the failures."""
        failures = 0
        for kind, _ in MIX:
            todo = [i for i, name in enumerate(self.names[kind]) if name not in self.state]
            if any(not self._ready(kind, i) for i in todo):
                return failures + len(todo)  # something it references failed: the next `up` does it

            def create(i: int, kind: str = kind) -> str | None:
                provider, news = self.news(kind, i)
                try:
                    inputs, problems = host.check(provider, {}, news)
                    assert not problems, problems
                    object_id, _ = host.create(provider, inputs)
                except ProviderError as err:
                    if len(self.run.samples) < 5:
                        self.run.samples.append(str(err)[:300])
                    return None
                self.state[self.names[kind][i]] = object_id
                return object_id

            with ThreadPoolExecutor(self.parallel) as pool:
                failures += sum(1 for made in pool.map(create, todo) if made is None)
        return failures

    def _ready(self, kind: str, i: int) -> bool:
        try:
            self.news(kind, i)
            return True
        except KeyError:
            return False


def live_by_name(client: Any, customer_ids: list[str]) -> dict[str, list[str]]:
    live: dict[str, list[str]] = {}

    def add(name: str | None, object_id: str) -> None:
        live.setdefault(name or "", []).append(object_id)

    for m in client.v1.billable_metrics.list():
        add(m.name, m.id)
    for p in client.v1.contracts.products.list():
        add(p.current.name, p.id)
    for c in client.v1.contracts.rate_cards.list():
        add(c.name, c.id)
    for c in client.v1.customers.list():
        add(c.name, c.id)
    for customer_id in customer_ids:
        for k in client.v2.contracts.list(customer_id=customer_id).data:
            if not k.archived_at:
                add(k.name, k.id)
    return live


def soak(resources: int, parallel: int, rate: float, seed: int, killed: bool) -> Run:
    run = Run(rate, seed, killed)
    started = time.monotonic()
    emu = start_emulator()
    try:
        with FaultProxy(emu.base_url) as proxy:
            proxy.random_faults(rate, seed)
            apply = Apply(resources, parallel, proxy, emu.token, run)
            for up in range(MAX_UPS):
                host = ProviderHost(proxy.base_url, emu.token, project="soak", stack="soak")
                held = (
                    _kill_mid_create(proxy, host, skip=apply.run.declared // 3)
                    if killed and up == 0
                    else None
                )
                try:
                    failures = apply.up(host)
                finally:
                    host.close()
                if held is not None:
                    if not held.bodies:
                        raise RuntimeError("the host was not killed mid-create: no create was held")
                    run.orphan = json.loads(held.bodies[0]).get("name")
                run.ups = up + 1
                run.errors += failures
                if not failures:
                    break
            proxy.clear()
            run.faults = proxy.faults_injected()
        customers = [apply.state[n] for n in apply.names["customer"] if n in apply.state]
        live = live_by_name(emu.client(), customers)
    finally:
        emu.stop()
    declared = [name for names in apply.names.values() for name in names]
    counts = Counter({name: len(live.get(name, [])) for name in declared})
    run.duplicates = sum(n - 1 for n in counts.values() if n > 1)
    run.lost = sum(1 for name in declared if apply.state.get(name) not in live.get(name, []))
    run.live = sum(1 for name in declared if apply.state.get(name) in live.get(name, []))
    run.seconds = time.monotonic() - started
    return run


def _kill_mid_create(proxy: FaultProxy, host: ProviderHost, skip: int) -> Rule:
    """Kill `host` once the emulator has processed a create (after `skip` others) whose answer the
    proxy holds back: the object exists and no state records it. Returns the proxy rule."""
    killed = threading.Event()
    held = proxy.add(Rule("POST", CREATE_PATHS, skip=skip, hold_response=killed))

    def watch() -> None:
        if held.forwarded.wait(120):
            host.process.kill()
        killed.set()

    threading.Thread(target=watch, daemon=True).start()
    return held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=300)
    parser.add_argument("--parallel", type=int, default=16)
    parser.add_argument("--rates", default="0.2,0.4", help="fault rates, comma-separated")
    parser.add_argument("--seeds", default="1,2,3", help="fault seeds, comma-separated")
    parser.add_argument("--smallest", action="store_true", help="CI: 30 resources, 30%% faults, one seed")
    args = parser.parse_args()
    if args.smallest:
        args.resources, args.rates, args.seeds = 30, "0.3", "1"
    rates = [float(r) for r in args.rates.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    plan = [(rate, seed, False) for rate in rates for seed in seeds] + [(rates[0], seeds[0], True)]
    bad = 0
    for rate, seed, killed in plan:
        run = soak(args.resources, args.parallel, rate, seed, killed)
        print(run.line(), flush=True)
        for sample in run.samples[:2]:
            print(f"    e.g. {sample}", flush=True)
        bad += run.duplicates + run.lost
    print("no duplicate, nothing lost" if not bad else f"{bad} duplicated or lost objects: NOT MET")
    return 0 if not bad else 1


if __name__ == "__main__":
    raise SystemExit(main())
