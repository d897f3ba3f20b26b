"""Day-to-day changes a billing team makes, end to end (program -> provider host -> emulator).

Each scenario edits the YAML of a copy of the dev stack, then:
1. `plan` must show exactly the expected steps (update vs replace vs create vs delete, on exactly the
   expected resources; everything else "same");
2. `up` must do exactly that;
3. the live result is checked with the official Metronome client;
4. a second `plan` is all "same" (no phantom diffs), and so are `refresh` and the `plan` after it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from mini_engine import EngineError, MiniEngine, Step, engine_for, make_stack_dir

from metronome_iac.catalog import CatalogError, load_stack

Expected = dict[tuple[str, str], "str | tuple[str, list[str]]"]

PAST = "2026-03-15T12:00:00Z"  # inside the dev stack's rate validity, before any change made here


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_plus(hours: float) -> str:
    return _iso(datetime.now(timezone.utc) + timedelta(hours=hours))


class World:
    """A dev-stack copy applied to an emulator, with YAML editing and step assertions."""

    def __init__(self, tmp_path: Path, emulator: Any) -> None:
        self.emulator = emulator
        self.dir = make_stack_dir(tmp_path)
        self.engine: MiniEngine = engine_for(emulator, self.dir.name)
        self.client = emulator.client()

    # -- YAML ---------------------------------------------------------------------------------------

    def edit(self, file: str, change: Callable[[dict[str, Any]], None]) -> None:
        path = self.dir / file
        data = yaml.safe_load(path.read_text())
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))

    def catalog(self, change: Callable[[dict[str, Any]], None]) -> None:
        self.edit("catalog.yaml", change)

    def environment(self, change: Callable[[dict[str, Any]], None]) -> None:
        self.edit("environment.yaml", change)

    # -- engine -------------------------------------------------------------------------------------

    def plan(self) -> list[Step]:
        return self.engine.plan(load_stack(self.dir))

    def up(self) -> list[Step]:
        return self.engine.up(load_stack(self.dir))

    def id(self, kind: str, name: str) -> str:
        return self.engine.find(kind, name).id

    def apply(self, expected: Expected) -> list[Step]:
        """plan == expected, up == expected, then settled (see `settled`)."""
        assert_steps(self.plan(), expected, "plan")
        steps = self.up()
        assert_steps(steps, expected, "up")
        self.settled()
        return steps

    def settled(self) -> None:
        assert_all_same(self.plan(), "second plan")
        assert_all_same(self.engine.refresh(), "refresh")
        assert_all_same(self.plan(), "plan after refresh")

    # -- live reads ---------------------------------------------------------------------------------

    def rates_at(self, at: str, card: str = "standard") -> dict[tuple[str, tuple], Any]:
        """{(product id, pricing group values): rate} of the live card at `at` (official client)."""
        out = {}
        for entry in self.client.v1.contracts.rate_cards.rates.list(
            rate_card_id=self.id("RateCard", card), at=at
        ):
            key = (entry.product_id, tuple(sorted((entry.pricing_group_values or {}).items())))
            assert key not in out, f"two rates for {key} at {at}"
            out[key] = entry
        return out

    def contract(self, name: str) -> Any:
        rec = self.engine.find("Contract", name)
        return self.client.v2.contracts.retrieve(
            customer_id=rec.inputs["customer_id"], contract_id=rec.id
        ).data

    def stats_total(self) -> int:
        return self.emulator.admin("GET", "stats").json()["total"]

    def writes_total(self) -> int:
        """Calls that change something. A plan may read (a product's check looks its metric up)."""
        by_route = self.emulator.admin("GET", "stats").json()["by_route"]
        return sum(n for route, n in by_route.items() if not _is_read(route))


def _is_read(route: str) -> bool:
    method, path = route.split(" ", 1)
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return method == "GET" or last.startswith(("get", "list", "search")) or last in ("usage", "groups")


def _op(steps: list[Step]) -> dict[tuple[str, str], Step]:
    out: dict[tuple[str, str], Step] = {}
    for s in steps:
        assert (s.kind, s.name) not in out, f"two steps for {s.kind} {s.name}: {steps}"
        out[(s.kind, s.name)] = s
    return out


def assert_steps(steps: list[Step], expected: Expected, what: str) -> None:
    """Exactly the expected ops (and, for updates given as (op, fields), exactly those fields)."""
    by = _op(steps)
    missing = set(expected) - set(by)
    assert not missing, f"{what}: no step for {missing}; steps: {steps}"
    for key, step in by.items():
        want = expected.get(key, "same")
        op, detail = (want, None) if isinstance(want, str) else want
        assert step.op == op, f"{what}: {key} is {step.op} {step.detail}, expected {op}; all: {steps}"
        if detail is not None:
            assert sorted(step.detail) == sorted(detail), (
                f"{what}: {key} changes {step.detail}, expected {detail}"
            )


def assert_all_same(steps: list[Step], what: str) -> None:
    other = [s for s in steps if s.op != "same"]
    assert not other, f"{what}: expected no changes, got {other}"
    assert steps, f"{what}: no steps at all"


def find(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(i for i in items if i["name"] == name)


def rate_of(card: dict[str, Any], product: str, **groups: str) -> dict[str, Any]:
    return next(
        r
        for r in card["rates"]
        if r["product"] == product and (r.get("pricing_group_values") or {}) == groups
    )


@pytest.fixture
def world(tmp_path: Path, emulator: Any) -> World:
    w = World(tmp_path, emulator)
    steps = w.up()
    assert {s.op for s in steps} == {"create"}
    return w


def _key(world: World, product: str, **groups: str) -> tuple[str, tuple]:
    return (world.id("Product", product), tuple(sorted(groups.items())))


# ------------------------------------------------------------------------------------------------
# 1. a price change on a FLAT rate that started in the past


def test_price_change_on_a_past_flat_rate_is_not_retroactive(world: World) -> None:
    large_us = {"model": "large", "region": "us"}
    world.catalog(
        lambda c: rate_of(find(c["rate_cards"], "standard"), "input_tokens_product", **large_us).update(
            price=350
        )
    )
    world.apply({("RateCard", "standard"): ("update", ["rates"])})

    key = _key(world, "input_tokens_product", **large_us)
    assert world.rates_at(PAST)[key].rate.price == 300  # the past keeps its price
    assert world.rates_at(_now_plus(1))[key].rate.price == 350
    # Other rates untouched.
    eu = _key(world, "input_tokens_product", model="large", region="eu")
    assert world.rates_at(_now_plus(1))[eu].rate.price == 330
    # The recorded state shows the declared rate (first start, new price), not the live segments.
    recorded = world.engine.find("RateCard", "standard").outputs["rates"]
    mine = [r for r in recorded if r["product_id"] == key[0] and r.get("pricing_group_values") == large_us]
    assert len(mine) == 1 and mine[0]["price"] == 350 and mine[0]["starting_at"] == "2026-01-01T00:00:00Z"

    # A second change within the same hour rewrites the new segment, never the past.
    world.catalog(
        lambda c: rate_of(find(c["rate_cards"], "standard"), "input_tokens_product", **large_us).update(
            price=360
        )
    )
    world.apply({("RateCard", "standard"): ("update", ["rates"])})
    assert world.rates_at(PAST)[key].rate.price == 300
    assert world.rates_at(_now_plus(1))[key].rate.price == 360


# ------------------------------------------------------------------------------------------------
# 2. rates added, removed, a tier added


def test_rate_added_rate_removed_tier_added(world: World) -> None:
    def change(c: dict[str, Any]) -> None:
        card = find(c["rate_cards"], "standard")
        card["rates"].append(
            {
                "product": "input_tokens_product",
                "starting_at": "2026-01-01T00:00:00Z",
                "rate_type": "FLAT",
                "price": 60,
                "pricing_group_values": {"model": "small", "region": "eu"},
            }
        )
        card["rates"].remove(rate_of(card, "output_tokens_product", model="small", region="us"))
        tiered = rate_of(card, "output_tokens_product", model="large", region="us")
        tiered["tiers"] = [{"size": 1000, "price": 1500}, {"size": 5000, "price": 1200}, {"price": 1000}]

    world.catalog(change)
    world.apply({("RateCard", "standard"): ("update", ["rates"])})

    small_eu = _key(world, "input_tokens_product", model="small", region="eu")
    small_us = _key(world, "output_tokens_product", model="small", region="us")
    tiered = _key(world, "output_tokens_product", model="large", region="us")
    future, past = world.rates_at(_now_plus(1)), world.rates_at(PAST)
    assert future[small_eu].rate.price == 60
    assert small_us not in future, "a removed rate must be ended, not left active"
    assert past[small_us].rate.price == 200  # ended, not rewritten: the past still bills it
    assert [t.price for t in future[tiered].rate.tiers] == [1500, 1200, 1000]
    assert [t.price for t in past[tiered].rate.tiers] == [1500, 1200]
    assert len(future) == 7  # the six token rates and the platform fee

    # Putting the removed rate back re-activates it from now on.
    world.catalog(
        lambda c: find(c["rate_cards"], "standard")["rates"].append(
            {
                "product": "output_tokens_product",
                "starting_at": "2026-01-01T00:00:00Z",
                "rate_type": "FLAT",
                "price": 210,
                "pricing_group_values": {"model": "small", "region": "us"},
            }
        )
    )
    world.apply({("RateCard", "standard"): ("update", ["rates"])})
    assert world.rates_at(_now_plus(1))[small_us].rate.price == 210
    assert world.rates_at(PAST)[small_us].rate.price == 200


def test_scheduled_price_change_then_cancelled(world: World) -> None:
    """A price scheduled for next year (the current rate ends where it starts), later cancelled."""
    start = "2027-06-01T00:00:00Z"
    large_us = {"model": "large", "region": "us"}
    new_rate = {
        "product": "input_tokens_product",
        "starting_at": start,
        "rate_type": "FLAT",
        "price": 280,
        "pricing_group_values": large_us,
    }

    # Overlapping rates (the current one open-ended) are refused before any API call.
    before = world.stats_total()
    world.catalog(lambda c: find(c["rate_cards"], "standard")["rates"].append(dict(new_rate)))
    with pytest.raises(CatalogError, match=r"overlaps rates\[\d+\].*ending_before: \"2027-06-01T00:00:00Z\""):
        world.plan()
    assert world.stats_total() == before

    world.catalog(
        lambda c: rate_of(find(c["rate_cards"], "standard"), "input_tokens_product", **large_us).update(
            ending_before=start
        )
    )
    world.apply({("RateCard", "standard"): ("update", ["rates"])})
    key = _key(world, "input_tokens_product", **large_us)
    assert world.rates_at("2027-07-01T00:00:00Z")[key].rate.price == 280
    assert world.rates_at("2027-05-31T23:00:00Z")[key].rate.price == 300
    assert world.rates_at(PAST)[key].rate.price == 300

    def cancel(c: dict[str, Any]) -> None:
        rates = find(c["rate_cards"], "standard")["rates"]
        rates.remove(next(r for r in rates if r["starting_at"] == start))
        rate_of(find(c["rate_cards"], "standard"), "input_tokens_product", **large_us).pop("ending_before")

    world.catalog(cancel)
    world.apply({("RateCard", "standard"): ("update", ["rates"])})
    assert world.rates_at("2027-07-01T00:00:00Z")[key].rate.price == 300
    assert world.rates_at(PAST)[key].rate.price == 300


# ------------------------------------------------------------------------------------------------
# 3. products: a new product with its rates, a rename, a quantity conversion change


def test_new_product_with_rates_rename_and_quantity_conversion(world: World) -> None:
    def add(c: dict[str, Any]) -> None:
        c["products"].append(
            {
                "name": "cached_tokens_product",
                "display_name": "Cached input tokens",
                "type": "USAGE",
                "billable_metric": "input_tokens",
                "pricing_group_key": ["model", "region"],
                "quantity_conversion": {"conversion_factor": 1000000, "operation": "DIVIDE"},
                "tags": ["tokens"],
            }
        )
        for region, price in (("us", 30), ("eu", 33)):
            find(c["rate_cards"], "standard")["rates"].append(
                {
                    "product": "cached_tokens_product",
                    "starting_at": "2026-01-01T00:00:00Z",
                    "rate_type": "FLAT",
                    "price": price,
                    "pricing_group_values": {"model": "large", "region": region},
                }
            )

    card_id = world.id("RateCard", "standard")
    world.catalog(add)
    world.apply(
        {("Product", "cached_tokens_product"): "create", ("RateCard", "standard"): ("update", ["rates"])}
    )
    assert world.id("RateCard", "standard") == card_id
    product_id = world.id("Product", "cached_tokens_product")
    live = world.client.v1.contracts.products.retrieve(id=product_id).data
    assert live.current.name == "Cached input tokens"
    assert live.current.billable_metric_id == world.id("BillableMetric", "input_tokens")
    future = world.rates_at(_now_plus(1))
    assert future[(product_id, (("model", "large"), ("region", "eu")))].rate.price == 33
    assert future[(product_id, (("model", "large"), ("region", "us")))].rate.price == 30

    # Rename (display_name) and a new quantity conversion: in-place updates of one product.
    old_id = world.id("Product", "output_tokens_product")

    def rename(c: dict[str, Any]) -> None:
        p = find(c["products"], "output_tokens_product")
        p["display_name"] = "Generated tokens"
        p["quantity_conversion"] = {
            "conversion_factor": 1000,
            "operation": "DIVIDE",
            "name": "per thousand tokens",
        }

    world.catalog(rename)
    world.apply({("Product", "output_tokens_product"): ("update", ["name", "quantity_conversion"])})
    assert world.id("Product", "output_tokens_product") == old_id
    live = world.client.v1.contracts.products.retrieve(id=old_id).data
    assert live.archived_at is None
    assert live.current.name == "Generated tokens"
    assert live.current.quantity_conversion.conversion_factor == 1000
    assert live.current.quantity_conversion.name == "per thousand tokens"
    assert live.updates and live.updates[-1].starting_at is not None  # time-versioned, not rewritten


# ------------------------------------------------------------------------------------------------
# 4. a metric's group keys changed: replaced; its product follows


def test_metric_group_keys_changed_replaces_metric_and_product_follows(world: World) -> None:
    old_metric = world.id("BillableMetric", "input_tokens")
    product_id = world.id("Product", "input_tokens_product")

    def change(c: dict[str, Any]) -> None:
        m = find(c["billable_metrics"], "input_tokens")
        m["property_filters"].append({"name": "tier", "exists": True})
        m["group_keys"] = [["model", "region"], ["model", "region", "tier"]]

    world.catalog(change)
    world.apply(
        {
            ("BillableMetric", "input_tokens"): ("replace", ["group_keys", "property_filters"]),
            ("Product", "input_tokens_product"): ("update", ["billable_metric_id"]),
        }
    )
    new_metric = world.id("BillableMetric", "input_tokens")
    assert new_metric != old_metric
    assert world.id("Product", "input_tokens_product") == product_id
    client = world.client
    assert client.v1.contracts.products.retrieve(id=product_id).data.current.billable_metric_id == new_metric
    assert client.v1.billable_metrics.retrieve(billable_metric_id=old_metric).data.archived_at is not None
    live = client.v1.billable_metrics.retrieve(billable_metric_id=new_metric).data
    assert live.archived_at is None and live.group_keys == [["model", "region"], ["model", "region", "tier"]]
    # No orphan: one live metric carries this stack's identity for input_tokens.
    prefix = f"metronome-iac/{world.dir.name}/input_tokens#"
    tagged = [
        m.id
        for m in client.v1.billable_metrics.list()
        if (m.custom_fields or {}).get("iac_identity", "").startswith(prefix)
    ]
    assert tagged == [new_metric]


# ------------------------------------------------------------------------------------------------
# 5. customers: aliases and name; removal with and without its contract


def test_customer_aliases_and_name_change_in_place(world: World) -> None:
    acme = world.id("Customer", "acme")
    suffix = world.dir.name

    def change(c: dict[str, Any]) -> None:
        cust = find(c["customers"], "acme")
        cust["display_name"] = "Acme Corporation"
        cust["ingest_aliases"] = [f"acme-prod-{suffix}", f"acme-eu-{suffix}"]

    world.environment(change)
    world.apply({("Customer", "acme"): ("update", ["ingest_aliases", "name"])})
    assert world.id("Customer", "acme") == acme
    live = world.client.v1.customers.retrieve(customer_id=acme).data
    assert live.name == "Acme Corporation"
    assert sorted(live.ingest_aliases) == sorted([f"acme-prod-{suffix}", f"acme-eu-{suffix}"])
    # The dropped alias is free again (events carrying it no longer reach acme).
    assert not list(world.client.v1.customers.list(ingest_alias=f"acme-batch-{suffix}"))


def test_customer_removed_while_its_contract_remains_fails_before_planning(world: World) -> None:
    before = world.stats_total()
    world.environment(lambda e: e["customers"].remove(find(e["customers"], "initech")))
    with pytest.raises(CatalogError) as err:
        world.plan()
    assert "contract 'initech_2026'" in str(err.value) and "unknown customer 'initech'" in str(err.value)
    assert world.stats_total() == before  # nothing reached the API

    # Removing the contract too: both archived, the contract first.
    initech = world.id("Customer", "initech")
    contract = world.engine.find("Contract", "initech_2026")
    world.environment(lambda e: e["contracts"].remove(find(e["contracts"], "initech_2026")))
    steps = world.apply({("Contract", "initech_2026"): "delete", ("Customer", "initech"): "delete"})
    deletes = [(s.kind, s.name) for s in steps if s.op == "delete"]
    assert deletes == [("Contract", "initech_2026"), ("Customer", "initech")]
    live_contract = world.client.v2.contracts.retrieve(customer_id=initech, contract_id=contract.id).data
    assert live_contract.archived_at is not None
    assert world.client.v1.customers.retrieve(customer_id=initech).data.archived_at is not None


# ------------------------------------------------------------------------------------------------
# 6. contracts: edits in place; a rate card change refused unless allowed


def test_contract_end_date_commit_and_name_are_edits(world: World) -> None:
    contract_id = world.id("Contract", "acme_2026")

    def change(e: dict[str, Any]) -> None:
        k = find(e["contracts"], "acme_2026")
        k["display_name"] = "Acme 2026-2027 agreement"
        k["ending_before"] = "2028-01-01T00:00:00Z"
        k["commits"].append(
            {
                "product": "prepaid_commit",
                "type": "PREPAID",
                "name": "2027 prepaid tokens",
                "access_schedule": {
                    "schedule_items": [
                        {
                            "amount": 500000,
                            "starting_at": "2027-01-01T00:00:00Z",
                            "ending_before": "2028-01-01T00:00:00Z",
                        }
                    ]
                },
                "invoice_schedule": {
                    "schedule_items": [{"timestamp": "2027-01-01T00:00:00Z", "amount": 500000}]
                },
            }
        )

    world.environment(change)
    world.apply({("Contract", "acme_2026"): ("update", ["commits", "ending_before", "name"])})
    assert world.id("Contract", "acme_2026") == contract_id
    live = world.contract("acme_2026")
    assert live.archived_at is None
    assert live.name == "Acme 2026-2027 agreement"
    assert live.ending_before.year == 2028
    assert sorted(c.name for c in live.commits) == ["2026 prepaid tokens", "2027 prepaid tokens"]
    history = world.client.v2.contracts.get_edit_history(
        customer_id=live.customer_id, contract_id=contract_id
    )
    assert len(history.data) == 1  # one edit, applied once

    # Net payment terms from settings, changed for one contract: an edit too.
    world.environment(lambda e: find(e["contracts"], "globex_2026").update(net_payment_terms_days=45))
    world.apply({("Contract", "globex_2026"): ("update", ["net_payment_terms_days"])})
    assert world.contract("globex_2026").net_payment_terms_days == 45


ENTERPRISE_CARD = {
    "name": "enterprise",
    "display_name": "Enterprise 2026",
    "rates": [
        {
            "product": "input_tokens_product",
            "starting_at": "2026-01-01T00:00:00Z",
            "rate_type": "FLAT",
            "price": 250,
            "pricing_group_values": {"model": "large", "region": "us"},
        }
    ],
}


def test_contract_rate_card_change_refused_unless_replacement_allowed(world: World) -> None:
    old_contract = world.id("Contract", "globex_2026")
    # A new card and the contract moved onto it in the same change: still refused at plan.
    world.catalog(lambda c: c["rate_cards"].append(dict(ENTERPRISE_CARD)))
    world.environment(lambda e: find(e["contracts"], "globex_2026").update(rate_card="enterprise"))
    # Refused at plan (the preview `pulumi up` runs first), before anything is created: the new
    # card's id is not known yet, but it can never be the recorded one.
    before = world.writes_total()
    with pytest.raises(
        EngineError, match=r"rate_card_id.*resource this update creates.*allow_replacement: true"
    ):
        world.plan()
    assert world.writes_total() == before

    # The card on its own first; then the move (with a known id) is refused as well.
    world.environment(lambda e: find(e["contracts"], "globex_2026").update(rate_card="standard"))
    world.apply({("RateCard", "enterprise"): "create"})
    world.environment(lambda e: find(e["contracts"], "globex_2026").update(rate_card="enterprise"))
    with pytest.raises(EngineError, match=r"rate_card_id.*allow_replacement: true"):
        world.plan()

    world.environment(lambda e: find(e["contracts"], "globex_2026").update(allow_replacement=True))
    world.apply({("Contract", "globex_2026"): ("replace", ["rate_card_id"])})
    new_contract = world.id("Contract", "globex_2026")
    assert new_contract != old_contract
    globex = world.id("Customer", "globex")
    assert world.contract("globex_2026").rate_card_id == world.id("RateCard", "enterprise")
    old = world.client.v2.contracts.retrieve(customer_id=globex, contract_id=old_contract).data
    assert old.archived_at is not None
    active = [c for c in world.client.v2.contracts.list(customer_id=globex).data if c.archived_at is None]
    assert [c.id for c in active] == [new_contract]


# ------------------------------------------------------------------------------------------------
# 7. typos fail before any API call


TYPOS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "catalog.yaml",
        lambda c: rate_of(
            find(c["rate_cards"], "standard"), "input_tokens_product", model="large", region="us"
        ).update(product="input_tokens_prodcut"),
        "unknown product 'input_tokens_prodcut'",
    ),
    (
        "catalog.yaml",
        lambda c: find(c["billable_metrics"], "output_tokens").update(aggregation_type="sum"),
        "must be one of COUNT, SUM, MAX, LATEST or UNIQUE; got 'sum'",
    ),
    (
        "catalog.yaml",
        lambda c: rate_of(
            find(c["rate_cards"], "standard"), "input_tokens_product", model="large", region="eu"
        ).update(rate_type="FLATT"),
        "got 'FLATT'",
    ),
    (
        "environment.yaml",
        lambda e: find(e["contracts"], "acme_2026").update(rate_card="standrad"),
        "unknown rate card 'standrad'",
    ),
    (
        "environment.yaml",
        lambda e: find(e["contracts"], "acme_2026")["commits"][0].update(type="PREPAYED"),
        "got 'PREPAYED'",
    ),
]


def test_typo_fails_before_any_api_call(world: World) -> None:
    """Each typo, alone, on an applied stack: the catalog refuses it (file, line, entry, field) and
    nothing reaches the API; every typo at once is reported at once."""
    pristine = {f: (world.dir / f).read_text() for f in ("catalog.yaml", "environment.yaml")}
    for file, change, message in TYPOS:
        before = world.stats_total()
        world.edit(file, change)
        with pytest.raises(CatalogError) as err:
            world.plan()
        assert message in str(err.value)
        assert f"{file}:" in str(err.value)  # names the file (and line)
        assert world.stats_total() == before
        (world.dir / file).write_text(pristine[file])
    for file, change, _ in TYPOS:
        world.edit(file, change)
    with pytest.raises(CatalogError) as err:
        world.plan()
    assert len(err.value.problems) == len(TYPOS)
    for f, text in pristine.items():
        (world.dir / f).write_text(text)
    assert_all_same(world.plan(), "plan after the typos are fixed")


def test_off_hour_update_time_fails_at_load_changes_nothing(tmp_path: Path, fresh_emulator: Any) -> None:
    """An update time off the hour (Metronome refuses it for product updates) fails when the catalog
    loads, naming the file and line; nothing is written."""
    world = World(tmp_path, fresh_emulator)
    world.up()
    before = world.writes_total()
    world.environment(lambda e: e["settings"].update(product_update_starting_at="2026-11-01T10:30:00Z"))
    world.catalog(
        lambda c: find(c["products"], "output_tokens_product").update(display_name="Generated tokens")
    )
    with pytest.raises(CatalogError, match=r"environment.yaml:\d+: settings.*not on an hour boundary"):
        world.plan()
    assert world.writes_total() == before


# ------------------------------------------------------------------------------------------------
# 8. an up under injected faults: no duplicates, then nothing left to do


def test_up_under_faults_adds_objects_once(tmp_path: Path, fresh_emulator: Any) -> None:
    world = World(tmp_path, fresh_emulator)
    world.up()
    suffix = world.dir.name

    def catalog(c: dict[str, Any]) -> None:
        c["billable_metrics"].append(
            {
                "name": "requests",
                "display_name": "API requests",
                "aggregation_type": "COUNT",
                "event_type_filter": {"in_values": ["request"]},
                "property_filters": [{"name": "model", "exists": True}],
                "group_keys": [["model"]],
            }
        )
        c["products"].append(
            {
                "name": "requests_product",
                "display_name": "API requests",
                "type": "USAGE",
                "billable_metric": "requests",
                "pricing_group_key": ["model"],
            }
        )
        card = dict(ENTERPRISE_CARD)
        card["rates"] = [
            *ENTERPRISE_CARD["rates"],
            *(
                {
                    "product": "requests_product",
                    "starting_at": "2026-01-01T00:00:00Z",
                    "rate_type": "FLAT",
                    "price": price,
                    "pricing_group_values": {"model": model},
                }
                for model, price in (("large", 2), ("small", 1))
            ),
        ]
        c["rate_cards"].append(card)
        rate_of(find(c["rate_cards"], "standard"), "input_tokens_product", model="large", region="us")[
            "price"
        ] = 320

    def environment(e: dict[str, Any]) -> None:
        for n in range(3):
            e["customers"].append({"name": f"hooli{n}", "ingest_aliases": [f"hooli{n}-{suffix}"]})
            e["contracts"].append(
                {
                    "name": f"hooli{n}_2026",
                    "customer": f"hooli{n}",
                    "rate_card": "enterprise",
                    "starting_at": "2026-01-01T00:00:00Z",
                    "credits": [
                        {
                            "product": "prepaid_commit",
                            "name": "welcome credit",
                            "access_schedule": {
                                "schedule_items": [
                                    {
                                        "amount": 5000,
                                        "starting_at": "2026-01-01T00:00:00Z",
                                        "ending_before": "2027-01-01T00:00:00Z",
                                    }
                                ]
                            },
                        }
                    ],
                }
            )

    world.catalog(catalog)
    world.environment(environment)
    expected: Expected = {
        ("BillableMetric", "requests"): "create",
        ("Product", "requests_product"): "create",
        ("RateCard", "enterprise"): "create",
        ("RateCard", "standard"): ("update", ["rates"]),
        **{("Customer", f"hooli{n}"): "create" for n in range(3)},
        **{("Contract", f"hooli{n}_2026"): "create" for n in range(3)},
    }
    assert_steps(world.plan(), expected, "plan")

    fresh_emulator.admin("POST", "config", json={"fail_rate": 0.2, "seed": 7})
    try:
        steps = world.up()
    finally:
        fresh_emulator.admin("POST", "config", json={"fail_rate": 0})
    stats = fresh_emulator.admin("GET", "stats").json()
    assert sum(stats["injected_failures"].values()) > 0, stats
    assert_steps(steps, expected, "up")
    world.settled()

    client = world.client
    tag = f"metronome-iac/{suffix}/"

    def tagged(objects: Any) -> list[str]:
        return sorted(
            (o.custom_fields or {}).get("iac_identity", "").split("#")[0].rsplit("/", 1)[-1]
            for o in objects
            if (o.custom_fields or {}).get("iac_identity", "").startswith(tag) and not o.archived_at
        )

    assert tagged(client.v1.billable_metrics.list()) == ["input_tokens", "output_tokens", "requests"]
    assert tagged(client.v1.contracts.products.list()) == [
        "input_tokens_product",
        "output_tokens_product",
        "platform_fee",
        "prepaid_commit",
        "requests_product",
    ]
    assert tagged(client.v1.contracts.rate_cards.list()) == ["enterprise", "standard"]
    assert tagged(client.v1.customers.list()) == sorted(
        ["acme", "globex", "initech", "piedpiper", "hooli0", "hooli1", "hooli2"]
    )
    for n in range(3):
        customer_id = world.id("Customer", f"hooli{n}")
        contracts = client.v2.contracts.list(customer_id=customer_id).data
        assert [c.id for c in contracts] == [world.id("Contract", f"hooli{n}_2026")]
        assert len(contracts[0].credits) == 1
    enterprise = world.rates_at(_now_plus(1), "enterprise")
    assert len(enterprise) == 3
    key = _key(world, "input_tokens_product", model="large", region="us")
    assert world.rates_at(_now_plus(1))[key].rate.price == 320
    assert world.rates_at(PAST)[key].rate.price == 300


# ------------------------------------------------------------------------------------------------
# More day-to-day changes


def test_contract_commit_removed_credit_and_override_added_end_date_dropped(world: World) -> None:
    contract_id = world.id("Contract", "initech_2026")
    product = world.id("Product", "input_tokens_product")

    def change(e: dict[str, Any]) -> None:
        k = find(e["contracts"], "initech_2026")
        k.pop("ending_before")  # open-ended now
        k["credits"] = [
            {
                "product": "prepaid_commit",
                "name": "onboarding credit",
                "priority": 1,
                "applicable_products": ["input_tokens_product"],
                "access_schedule": {
                    "schedule_items": [
                        {
                            "amount": 20000,
                            "starting_at": "2026-03-01T00:00:00Z",
                            "ending_before": "2026-09-01T00:00:00Z",
                        }
                    ]
                },
            }
        ]
        k["overrides"] = [
            {
                "starting_at": "2026-03-01T00:00:00Z",
                "type": "OVERWRITE",
                "product": "input_tokens_product",
                "overwrite_rate": {"rate_type": "FLAT", "price": 275},
            },
            {
                "starting_at": "2026-06-01T00:00:00Z",
                "ending_before": "2027-01-01T00:00:00Z",
                "type": "MULTIPLIER",
                "applicable_product_tags": ["tokens"],
                "multiplier": 0.9,
                "priority": 1,
            },
        ]

    world.environment(change)
    world.apply({("Contract", "initech_2026"): ("update", ["credits", "ending_before", "overrides"])})
    live = world.contract("initech_2026")
    assert live.id == contract_id and live.ending_before is None
    assert [(c.name, c.access_schedule.schedule_items[0].amount) for c in live.credits] == [
        ("onboarding credit", 20000)
    ]
    assert sorted(o.type for o in live.overrides) == ["MULTIPLIER", "OVERWRITE"]
    overwrite = next(o for o in live.overrides if o.type == "OVERWRITE")
    assert overwrite.product.id == product and overwrite.overwrite_rate.price == 275

    # A commit removed from a contract is archived on it; the override dropped is removed.
    def drop(e: dict[str, Any]) -> None:
        find(e["contracts"], "acme_2026")["commits"] = []
        find(e["contracts"], "initech_2026")["overrides"].pop(1)

    world.environment(drop)
    world.apply(
        {
            ("Contract", "acme_2026"): ("update", ["commits"]),
            ("Contract", "initech_2026"): ("update", ["overrides"]),
        }
    )
    assert [c for c in world.contract("acme_2026").commits if c.archived_at is None] == []
    assert [o.type for o in world.contract("initech_2026").overrides] == ["OVERWRITE"]


def test_product_and_its_rates_removed(world: World) -> None:
    """Prices of a product withdrawn: its rates end now (the past still bills), then it is archived."""
    product_id = world.id("Product", "output_tokens_product")

    def change(c: dict[str, Any]) -> None:
        c["products"].remove(find(c["products"], "output_tokens_product"))
        card = find(c["rate_cards"], "standard")
        card["rates"] = [r for r in card["rates"] if r["product"] != "output_tokens_product"]

    world.catalog(change)
    world.apply(
        {("RateCard", "standard"): ("update", ["rates"]), ("Product", "output_tokens_product"): "delete"}
    )
    assert world.client.v1.contracts.products.retrieve(id=product_id).data.archived_at is not None
    assert {k[0] for k in world.rates_at(_now_plus(1))} == {
        world.id("Product", "input_tokens_product"),
        world.id("Product", "platform_fee"),
    }
    assert sum(1 for k in world.rates_at(PAST) if k[0] == product_id) == 3


def test_renames_of_metric_rate_card_and_description(world: World) -> None:
    def change(c: dict[str, Any]) -> None:
        find(c["billable_metrics"], "output_tokens")["display_name"] = "Completion tokens"
        card = find(c["rate_cards"], "standard")
        card["display_name"] = "Standard 2026 (list)"
        card["description"] = "List prices, cents per million tokens."

    world.catalog(change)
    world.apply(
        {
            ("BillableMetric", "output_tokens"): ("update", ["name"]),
            ("RateCard", "standard"): ("update", ["description", "name"]),
        }
    )
    metric = world.client.v1.billable_metrics.retrieve(
        billable_metric_id=world.id("BillableMetric", "output_tokens")
    )
    assert metric.data.name == "Completion tokens"
    card = world.client.v1.contracts.rate_cards.retrieve(id=world.id("RateCard", "standard")).data
    assert (card.name, card.description) == ("Standard 2026 (list)", "List prices, cents per million tokens.")


def test_customer_external_id_change_with_a_contract_is_refused_at_plan(world: World) -> None:
    world.environment(
        lambda e: find(e["customers"], "globex").update(external_id=f"globex-crm-9999-{world.dir.name}")
    )
    before = world.writes_total()
    with pytest.raises(EngineError, match=r"globex_2026.*customer_id.*allow_replacement: true"):
        world.plan()
    assert world.writes_total() == before


def test_customer_external_id_change_replaces_it_aliases_and_all(world: World) -> None:
    """A customer without contracts gets a new external id: archived first (its aliases freed), then
    made again with the same aliases (create-first would collide on the aliases)."""
    alias = f"umbrella-{world.dir.name}"
    world.environment(
        lambda e: e["customers"].append(
            {"name": "umbrella", "ingest_aliases": [alias], "external_id": f"crm-1-{world.dir.name}"}
        )
    )
    world.apply({("Customer", "umbrella"): "create"})
    old = world.id("Customer", "umbrella")
    world.environment(
        lambda e: find(e["customers"], "umbrella").update(external_id=f"crm-2-{world.dir.name}")
    )
    world.apply({("Customer", "umbrella"): ("replace", ["external_id"])})
    new = world.id("Customer", "umbrella")
    assert new != old
    assert world.client.v1.customers.retrieve(customer_id=old).data.archived_at is not None
    live = world.client.v1.customers.retrieve(customer_id=new).data
    assert live.ingest_aliases == [alias] and live.external_id == f"crm-2-{world.dir.name}"


def test_customer_renamed_in_the_catalog_fails_clearly(world: World) -> None:
    """A new catalog name is a new resource, created before the old one is archived: the ingest
    alias is still taken (Metronome keeps aliases unique). A limitation of create-then-delete, so the
    error says what to do; done in two updates, it works."""
    alias = f"umbrella-{world.dir.name}"
    world.environment(lambda e: e["customers"].append({"name": "umbrella", "ingest_aliases": [alias]}))
    world.apply({("Customer", "umbrella"): "create"})
    old = world.id("Customer", "umbrella")
    world.environment(lambda e: find(e["customers"], "umbrella").update(name="umbrella_corp"))
    assert_steps(
        world.plan(), {("Customer", "umbrella_corp"): "create", ("Customer", "umbrella"): "delete"}, "plan"
    )
    with pytest.raises(EngineError, match=r"409 .*already used.*remove it in one update and add the new one"):
        world.up()
    assert [c.id for c in world.client.v1.customers.list(ingest_alias=alias)] == [old]

    world.environment(lambda e: e["customers"].remove(find(e["customers"], "umbrella_corp")))
    world.apply({("Customer", "umbrella"): "delete"})
    world.environment(lambda e: e["customers"].append({"name": "umbrella_corp", "ingest_aliases": [alias]}))
    world.apply({("Customer", "umbrella_corp"): "create"})
    assert [c.id for c in world.client.v1.customers.list(ingest_alias=alias)] == [
        world.id("Customer", "umbrella_corp")
    ]


def test_commit_amount_change_updates_the_commit_in_place(world: World) -> None:
    """A prepaid commit raised from 1.0M to 1.2M: the same commit, its schedules updated. Archiving it
    and adding a new one would invoice the customer for the new commit on top of the old one."""
    commit_id = world.contract("acme_2026").commits[0].id

    def change(e: dict[str, Any]) -> None:
        commit = find(e["contracts"], "acme_2026")["commits"][0]
        commit["access_schedule"]["schedule_items"][0]["amount"] = 1200000
        commit["invoice_schedule"]["schedule_items"][0]["amount"] = 1200000

    world.environment(change)
    world.apply({("Contract", "acme_2026"): ("update", ["commits"])})
    live = world.contract("acme_2026")
    assert [c.id for c in live.commits] == [commit_id]
    commit = live.commits[0]
    assert commit.archived_at is None
    assert [i.amount for i in commit.access_schedule.schedule_items] == [1200000]
    assert [(i.amount, i.unit_price, i.quantity) for i in commit.invoice_schedule.schedule_items] == [
        (1200000, 1200000, 1)
    ]

    # A second access period added and a priority set: still the same commit.
    def more(e: dict[str, Any]) -> None:
        commit = find(e["contracts"], "acme_2026")["commits"][0]
        commit["priority"] = 2
        commit["access_schedule"]["schedule_items"].append(
            {"amount": 100000, "starting_at": "2027-01-01T00:00:00Z", "ending_before": "2027-02-01T00:00:00Z"}
        )

    world.environment(more)
    world.apply({("Contract", "acme_2026"): ("update", ["commits"])})
    live = world.contract("acme_2026")
    assert [(c.id, c.priority) for c in live.commits] == [(commit_id, 2)]
    assert sorted(i.amount for i in live.commits[0].access_schedule.schedule_items) == [100000, 1200000]

    # Last year's commit dropped and next year's added (same product, another name): the old one is
    # archived and a new one made, never the invoiced one rewritten.
    def renew(e: dict[str, Any]) -> None:
        k = find(e["contracts"], "acme_2026")
        k["ending_before"] = "2028-01-01T00:00:00Z"
        k["commits"] = [
            {
                "product": "prepaid_commit",
                "type": "PREPAID",
                "name": "2027 prepaid tokens",
                "access_schedule": {
                    "schedule_items": [
                        {
                            "amount": 800000,
                            "starting_at": "2027-01-01T00:00:00Z",
                            "ending_before": "2028-01-01T00:00:00Z",
                        }
                    ]
                },
                "invoice_schedule": {
                    "schedule_items": [{"timestamp": "2027-01-01T00:00:00Z", "amount": 800000}]
                },
            }
        ]

    world.environment(renew)
    world.apply({("Contract", "acme_2026"): ("update", ["commits", "ending_before"])})
    commits = {c.name: c for c in world.contract("acme_2026").commits}
    assert commits["2026 prepaid tokens"].id == commit_id
    assert commits["2026 prepaid tokens"].access_schedule.schedule_items[0].starting_at.year == 2026
    assert commits["2026 prepaid tokens"].archived_at is not None
    assert commits["2027 prepaid tokens"].archived_at is None


@pytest.mark.parametrize("seed", [3, 11])
def test_up_under_faults_updates_each_object_once(tmp_path: Path, fresh_emulator: Any, seed: int) -> None:
    """Edits under faults (429s, 500s before and after processing): each applied exactly once."""
    world = World(tmp_path, fresh_emulator)
    world.up()
    suffix = world.dir.name
    commit_id = world.contract("acme_2026").commits[0].id

    def catalog(c: dict[str, Any]) -> None:
        card = find(c["rate_cards"], "standard")
        rate_of(card, "input_tokens_product", model="large", region="eu")["price"] = 340
        card["rates"].remove(rate_of(card, "input_tokens_product", model="small", region="us"))
        find(c["products"], "output_tokens_product")["display_name"] = "Generated tokens"
        find(c["billable_metrics"], "input_tokens")["display_name"] = "Prompt tokens"

    def environment(e: dict[str, Any]) -> None:
        find(e["customers"], "globex")["display_name"] = "Globex Inc"
        find(e["customers"], "globex")["ingest_aliases"].append(f"globex-eu-{suffix}")
        k = find(e["contracts"], "acme_2026")
        k["ending_before"] = "2027-07-01T00:00:00Z"
        k["commits"][0]["access_schedule"]["schedule_items"][0]["amount"] = 900000
        k["credits"] = [
            {
                "product": "prepaid_commit",
                "name": "goodwill",
                "access_schedule": {
                    "schedule_items": [
                        {
                            "amount": 1000,
                            "starting_at": "2026-06-01T00:00:00Z",
                            "ending_before": "2026-12-01T00:00:00Z",
                        }
                    ]
                },
            }
        ]

    world.catalog(catalog)
    world.environment(environment)
    expected: Expected = {
        ("RateCard", "standard"): ("update", ["rates"]),
        ("Product", "output_tokens_product"): ("update", ["name"]),
        ("BillableMetric", "input_tokens"): ("update", ["name"]),
        ("Customer", "globex"): ("update", ["ingest_aliases", "name"]),
        ("Contract", "acme_2026"): ("update", ["commits", "credits", "ending_before"]),
    }
    assert_steps(world.plan(), expected, "plan")
    fresh_emulator.admin("POST", "config", json={"fail_rate": 0.3, "seed": seed})
    try:
        steps = world.up()
    finally:
        fresh_emulator.admin("POST", "config", json={"fail_rate": 0})
    assert sum(fresh_emulator.admin("GET", "stats").json()["injected_failures"].values()) > 0
    assert_steps(steps, expected, "up")
    world.settled()

    live = world.contract("acme_2026")
    assert [(c.id, c.access_schedule.schedule_items[0].amount) for c in live.commits] == [(commit_id, 900000)]
    assert [c.name for c in live.credits] == ["goodwill"]
    assert live.ending_before.month == 7
    history = world.client.v2.contracts.get_edit_history(customer_id=live.customer_id, contract_id=live.id)
    assert len(history.data) == 1
    future = world.rates_at(_now_plus(1))
    assert future[_key(world, "input_tokens_product", model="large", region="eu")].rate.price == 340
    assert _key(world, "input_tokens_product", model="small", region="us") not in future
    assert (
        world.rates_at(PAST)[_key(world, "input_tokens_product", model="large", region="eu")].rate.price
        == 330
    )
    globex = world.client.v1.customers.retrieve(customer_id=world.id("Customer", "globex")).data
    assert globex.name == "Globex Inc" and f"globex-eu-{suffix}" in globex.ingest_aliases


def test_stop_pricing_by_region(world: World) -> None:
    """Input tokens priced by model only from now on: a metric with a [model] group key (replaced),
    a product priced by [model] (replaced: Metronome refuses rates whose group values do not match the
    product's key, so the per-region rates could not be ended after an in-place change), per-region
    rates ended (the past still bills them), per-model rates added; the old product archived."""
    old_product = world.id("Product", "input_tokens_product")

    def change(c: dict[str, Any]) -> None:
        find(c["billable_metrics"], "input_tokens")["group_keys"] = [["model", "region"], ["model"]]
        find(c["products"], "input_tokens_product")["pricing_group_key"] = ["model"]
        card = find(c["rate_cards"], "standard")
        card["rates"] = [r for r in card["rates"] if r["product"] != "input_tokens_product"]
        for model, price in (("large", 310), ("small", 50)):
            card["rates"].append(
                {
                    "product": "input_tokens_product",
                    "starting_at": "2026-01-01T00:00:00Z",
                    "rate_type": "FLAT",
                    "price": price,
                    "pricing_group_values": {"model": model},
                }
            )

    world.catalog(change)
    world.apply(
        {
            ("BillableMetric", "input_tokens"): ("replace", ["group_keys"]),
            ("Product", "input_tokens_product"): ("replace", ["pricing_group_key"]),
            ("RateCard", "standard"): ("update", ["rates"]),
        }
    )
    product_id = world.id("Product", "input_tokens_product")
    assert product_id != old_product
    live = world.client.v1.contracts.products.retrieve(id=product_id).data.current
    assert live.pricing_group_key == ["model"]
    assert live.billable_metric_id == world.id("BillableMetric", "input_tokens")
    assert world.client.v1.contracts.products.retrieve(id=old_product).data.archived_at is not None
    future = world.rates_at(_now_plus(1))
    assert {k[1]: v.rate.price for k, v in future.items() if k[0] == product_id} == {
        (("model", "large"),): 310,
        (("model", "small"),): 50,
    }
    assert not [k for k in future if k[0] == old_product], "the old product's rates must be ended"
    past = {k[1]: v.rate.price for k, v in world.rates_at(PAST).items() if k[0] == old_product}
    assert past[(("model", "large"), ("region", "us"))] == 300


def test_discount_added_then_removal_refused_and_payment_terms_default_changed(world: World) -> None:
    discount = {
        "product": "prepaid_commit",
        "name": "launch discount",
        "schedule": {"schedule_items": [{"timestamp": "2026-12-01T00:00:00Z", "amount": 5000}]},
    }
    world.environment(lambda e: find(e["contracts"], "globex_2026").update(discounts=[discount]))
    world.apply({("Contract", "globex_2026"): ("update", ["discounts"])})
    assert [d.name for d in world.contract("globex_2026").discounts] == ["launch discount"]

    # Metronome cannot remove a discount by an edit: refused at plan (it would replace the contract).
    world.environment(lambda e: find(e["contracts"], "globex_2026").pop("discounts"))
    with pytest.raises(EngineError, match=r"globex_2026.*discounts.*allow_replacement: true"):
        world.plan()
    world.environment(lambda e: find(e["contracts"], "globex_2026").update(discounts=[discount]))

    # The environment's default payment terms: every contract without its own follows.
    world.environment(lambda e: e["settings"].update(net_payment_terms_days=45))
    world.apply(
        {
            ("Contract", name): ("update", ["net_payment_terms_days"])
            for name in ("acme_2026", "globex_2026", "initech_2026")
        }
    )
    assert {
        world.contract(n).net_payment_terms_days for n in ("acme_2026", "globex_2026", "initech_2026")
    } == {45}


# ------------------------------------------------------------------------------------------------
# The same rules in process (for programs that declare resources without the catalog)


def test_rate_rules_in_process() -> None:
    from providers.rate_card import RateCardProvider
    from providers.rate_schedule import fold_schedule, plan_rate_changes

    def rate(start: str, price: float, end: str | None = None) -> dict[str, Any]:
        out = {
            "product_id": "p1",
            "starting_at": start,
            "rate_type": "FLAT",
            "price": price,
            "entitled": True,
        }
        return {**out, "ending_before": end} if end else out

    # Overlapping rates of one product and group: refused by the provider's check too.
    checked = RateCardProvider().check(
        {}, {"name": "c", "rates": [rate("2026-01-01T00:00:00Z", 3), rate("2027-01-01T00:00:00Z", 4)]}
    )
    assert [f.property for f in checked.failures] == ["rates[0].ending_before"]

    # A removed rate (ended at 10:00) declared again at 12:00: it restarts at 12:00, the past intact,
    # and the schedule reads back as the one declared rate.
    hour, ended = "2026-06-01T12:00:00Z", "2026-06-01T10:00:00Z"
    history = [rate("2026-01-01T00:00:00Z", 3, ended)]
    declared = [rate("2026-01-01T00:00:00Z", 5)]
    adds = plan_rate_changes([], declared, hour, history)
    assert adds == [rate(hour, 5)]
    fiat = "2714e483-4ff1-48e4-9e25-ac732e8f24f2"

    def entry(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "product_id": r["product_id"],
            "starting_at": r["starting_at"],
            "ending_before": r.get("ending_before"),
            "entitled": True,
            "rate": {"rate_type": "FLAT", "price": r["price"], "credit_type": {"id": fiat}},
        }

    assert fold_schedule([entry(r) for r in history + adds], fiat, declared) == declared
    # Declared as entirely past, it is a deliberate correction: rewritten in place.
    past = [rate("2026-01-01T00:00:00Z", 5, ended)]
    assert plan_rate_changes([], past, hour, history) == past
