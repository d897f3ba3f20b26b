"""With injected 429s and 500s (before AND after processing), a full create makes no duplicates."""

from __future__ import annotations

from collections import Counter

from provider_host import ProviderHost, unique

from providers.billable_metric import BillableMetricProvider as M
from providers.contract import ContractProvider as K
from providers.customer import CustomerProvider as C
from providers.product import ProductProvider as P
from providers.rate_card import RateCardProvider as R


def create(host: ProviderHost, provider, news: dict) -> str:
    object_id, _, _ = host.create_checked(provider, news)
    return object_id


def test_catalog_under_faults_has_no_duplicates(fresh_emulator):
    emu = fresh_emulator
    assert emu.admin("POST", "config", json={"fail_rate": 0.3, "seed": 7}).status_code == 200
    run = unique("f")
    with ProviderHost(emu.base_url, emu.token) as host:
        metrics = [
            create(
                host,
                M,
                {
                    "identity": f"p/s/{run}-m{i}",
                    "name": f"{run}-m{i}",
                    "aggregation_type": "SUM",
                    "aggregation_key": "tokens",
                    "property_filters": [{"name": "tokens", "exists": True}],
                },
            )
            for i in range(3)
        ]
        products = [
            create(
                host,
                P,
                {
                    "identity": f"p/s/{run}-p{i}",
                    "name": f"{run}-p{i}",
                    "type": "USAGE",
                    "billable_metric_id": metrics[i],
                },
            )
            for i in range(3)
        ]
        card = create(
            host,
            R,
            {
                "identity": f"p/s/{run}-card",
                "name": f"{run}-card",
                "rates": [
                    {
                        "product_id": p,
                        "starting_at": "2026-01-01T00:00:00Z",
                        "rate_type": "FLAT",
                        "price": 10 + i,
                    }
                    for i, p in enumerate(products)
                ],
            },
        )
        customers = [
            create(
                host,
                C,
                {"identity": f"p/s/{run}-c{i}", "name": f"{run}-c{i}", "ingest_aliases": [f"{run}-a{i}"]},
            )
            for i in range(2)
        ]
        create(
            host,
            K,
            {
                "identity": f"p/s/{run}-k",
                "customer_id": customers[0],
                "rate_card_id": card,
                "starting_at": "2026-01-01T00:00:00Z",
                "name": f"{run}-k",
            },
        )

    stats = emu.admin("GET", "stats").json()
    emu.admin("POST", "config", json={"fail_rate": 0})
    injected = stats["injected_failures"]
    assert sum(injected.values()) >= 3, injected  # the faults really happened

    client = emu.client()
    names = Counter(m.name for m in client.v1.billable_metrics.list())
    names += Counter(p.current.name for p in client.v1.contracts.products.list())
    names += Counter(c.name for c in client.v1.contracts.rate_cards.list())
    names += Counter(c.name for c in client.v1.customers.list())
    for customer_id in customers:
        names += Counter(c.name for c in client.v2.contracts.list(customer_id=customer_id).data)
    ours = {n: k for n, k in names.items() if n and n.startswith(run)}
    assert len(ours) == 3 + 3 + 1 + 2 + 1, ours
    assert all(k == 1 for k in ours.values()), {n: k for n, k in ours.items() if k > 1}
    rates = client.v1.contracts.rate_cards.retrieve_rate_schedule(
        rate_card_id=card, starting_at="2026-01-01T00:00:00Z"
    )
    assert len(rates.data) == 3
