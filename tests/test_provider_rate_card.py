"""RateCard (and its rates) through the real provider host over gRPC, against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
from provider_host import ProviderError, ProviderHost, unique

from providers.billable_metric import BillableMetricProvider as M
from providers.exactly_once import IDENTITY_FIELD
from providers.product import ProductProvider as P
from providers.rate_card import RateCardProvider as R

PAST = "2026-01-01T00:00:00Z"
FUTURE = "2099-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def host(emulator) -> Iterator[ProviderHost]:
    with ProviderHost(emulator.base_url, emulator.token) as h:
        yield h


@pytest.fixture(scope="module")
def products(host) -> dict[str, str]:
    name = unique("rm")
    metric_id, _, _ = host.create_checked(
        M,
        {
            "identity": f"metronome-iac/test/{name}",
            "name": name,
            "aggregation_type": "SUM",
            "aggregation_key": "tokens",
            "property_filters": [{"name": "tokens", "exists": True}, {"name": "model", "exists": True}],
            "group_keys": [["model"]],
        },
    )
    out = {}
    for key, extra in {
        "tokens": {"type": "USAGE", "billable_metric_id": metric_id, "pricing_group_key": ["model"]},
        "requests": {"type": "USAGE", "billable_metric_id": metric_id},
        "seat": {"type": "FIXED"},
        "platform": {"type": "SUBSCRIPTION"},
    }.items():
        pname = unique(f"rp-{key}")
        out[key], _, _ = host.create_checked(
            P, {"identity": f"metronome-iac/test/{pname}", "name": pname, **extra}
        )
    return out


def card(products: dict[str, str], **over):
    name = unique("card")
    base = {
        "identity": f"metronome-iac/test/{name}",
        "name": name,
        "description": "Standard",
        "aliases": [{"name": name + "-alias"}],
        "rates": [
            {
                "product_id": products["tokens"],
                "starting_at": PAST,
                "rate_type": "FLAT",
                "price": 300,
                "pricing_group_values": {"model": "large"},
            },
            {
                "product_id": products["tokens"],
                "starting_at": PAST,
                "rate_type": "FLAT",
                "price": 100,
                "pricing_group_values": {"model": "small"},
            },
            {
                "product_id": products["requests"],
                "starting_at": PAST,
                "rate_type": "TIERED",
                "tiers": [{"size": 1000, "price": 3}, {"price": 2}],
            },
            {"product_id": products["seat"], "starting_at": FUTURE, "rate_type": "FLAT", "price": 5000},
        ],
    }
    return {**base, **over}


def schedule(client, card_id: str) -> list:
    return client.v1.contracts.rate_cards.retrieve_rate_schedule(rate_card_id=card_id, starting_at=PAST).data


def current_hour() -> datetime:
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def test_check(host, products):
    host.check_ok(R, card(products))
    rates = card(products)["rates"]

    no_price = {**rates[0]}
    no_price.pop("price")
    failures = dict(host.check(R, {}, card(products, rates=[no_price]))[1])
    assert "rates[0].price" in failures and "to fix" in failures["rates[0].price"]

    bad_tiers = {**rates[2], "tiers": [{"price": 3}, {"size": 10, "price": 2}]}
    failures = dict(host.check(R, {}, card(products, rates=[bad_tiers]))[1])
    assert "rates[0].tiers[0].size" in failures

    no_tiers = {**rates[2], "tiers": None}
    assert "rates[0].tiers" in dict(host.check(R, {}, card(products, rates=[no_tiers]))[1])

    dup = dict(host.check(R, {}, card(products, rates=[rates[0], {**rates[0], "price": 1}]))[1])
    assert "rates[1]" in dup

    backwards = {**rates[0], "ending_before": "2025-01-01T00:00:00Z"}
    assert "rates[0].ending_before" in dict(host.check(R, {}, card(products, rates=[backwards]))[1])

    # Preview: the products are not created yet.
    from provider_host import UNKNOWN

    pending = [{**r, "product_id": UNKNOWN} for r in rates]
    pending[1]["pricing_group_values"] = {"model": "other"}
    inputs = host.check_ok(R, card(products, rates=pending))
    assert {r["product_id"] for r in inputs["rates"]} == {UNKNOWN}

    bad_type = dict(host.check(R, {}, card(products, rates=[{**rates[0], "rate_type": "FLATTISH"}]))[1])
    assert "rates[0].rate_type" in bad_type


def test_check_names_rates_as_declared(host, products):
    """A failure names the rate by its place in the declared list, whatever order rates are kept in."""
    small = {
        "product_id": products["tokens"],
        "starting_at": PAST,
        "rate_type": "FLAT",
        "price": -1,
        "pricing_group_values": {"model": "small"},
    }
    large = {**small, "price": 300, "pricing_group_values": {"model": "large"}}
    failures = dict(host.check(R, {}, card(products, rates=[small, large]))[1])
    assert list(failures) == ["rates[0].price"], failures
    assert "model" in failures["rates[0].price"] and "small" in failures["rates[0].price"]
    failures = dict(host.check(R, {}, card(products, rates=[large, small]))[1])
    assert list(failures) == ["rates[1].price"], failures


def test_check_refuses_what_the_api_refuses(host, emulator, products):
    tiered = {"product_id": products["requests"], "starting_at": PAST, "rate_type": "TIERED"}
    open_top = dict(
        host.check(R, {}, card(products, rates=[{**tiered, "tiers": [{"size": 10, "price": 2}]}]))[1]
    )
    assert "rates[0].tiers[0].size" in open_top and "last tier" in open_top["rates[0].tiers[0].size"]
    negative_tier = [{"size": 10, "price": 2}, {"price": -1}]
    assert "rates[0].tiers[1].price" in dict(
        host.check(R, {}, card(products, rates=[{**tiered, "tiers": negative_tier}]))[1]
    )

    fee = {"product_id": products["platform"], "starting_at": PAST, "rate_type": "FLAT", "price": 10000}
    failures = dict(host.check(R, {}, card(products, rates=[fee]))[1])
    assert "rates[0].billing_frequency" in failures and "to fix" in failures["rates[0].billing_frequency"]
    host.check_ok(R, card(products, rates=[{**fee, "billing_frequency": "MONTHLY"}]))
    # A FLAT rate on a product of another type takes no billing frequency.
    host.check_ok(R, card(products, rates=[{**fee, "product_id": products["seat"]}]))

    seats = {**fee, "rate_type": "SUBSCRIPTION", "quantity": 1}
    failures = dict(host.check(R, {}, card(products, rates=[{**seats, "is_prorated": False}]))[1])
    assert "rates[0].is_prorated" in failures and "true" in failures["rates[0].is_prorated"]
    host.check_ok(R, card(products, rates=[{**seats, "is_prorated": True}]))


def test_check_looks_up_a_product_type_once_and_only_for_rates_it_would_send(host, fresh_emulator):
    """The product type behind the billing_frequency rule is looked up for new or re-typed FLAT rates only
    (a price change needs none), once per product per host: a preview costs no calls per rate."""
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as own:
        pid, _, _ = own.create_checked(
            P, {"identity": "metronome-iac/test/fee", "name": "fee", "type": "FIXED"}
        )
        other, _, _ = own.create_checked(
            P, {"identity": "metronome-iac/test/fee2", "name": "fee2", "type": "FIXED"}
        )
    rates = [{"product_id": p, "starting_at": PAST, "rate_type": "FLAT", "price": 1} for p in (pid, other)]
    inputs = {"identity": "metronome-iac/test/c", "name": "c", "rates": rates}
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as fresh:  # knows no product yet

        def calls() -> int:
            return int(fresh_emulator.admin("GET", "stats").json()["total"])

        before = calls()
        checked = fresh.check_ok(R, inputs)
        assert calls() - before == 2  # one look-up per product
        fresh.check_ok(R, inputs)
        assert calls() - before == 2  # cached: a type never changes
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as later:
        before = int(fresh_emulator.admin("GET", "stats").json()["total"])
        repriced = {**inputs, "rates": [{**rates[0], "price": 2}, rates[1]]}
        later.check_ok(R, repriced, olds=checked)
        assert int(fresh_emulator.admin("GET", "stats").json()["total"]) == before


def test_diff_rules(host, products):
    inputs = host.check_ok(R, card(products))
    outs = dict(inputs)
    # No phantom diffs: reordered rates, "300" vs 300.0, timestamps spelled differently, explicit defaults.
    same = {
        **inputs,
        "rates": [
            {
                **r,
                "price": str(int(r["price"])) if "price" in r else None,
                "starting_at": r["starting_at"].replace("Z", "+00:00"),
                "entitled": True,
            }
            for r in reversed(inputs["rates"])
        ],
        "fiat_credit_type_id": "2714e483-4ff1-48e4-9e25-ac732e8f24f2",
    }
    assert host.diff(R, "x", outs, host.check_ok(R, same)).changes == "NONE"
    assert host.diff(R, "x", outs, same).changes == "NONE"

    for change in (
        {"name": "other"},
        {"description": "other"},
        {"aliases": []},
        {"rates": inputs["rates"][:1]},
        {"credit_type_conversions": [{"custom_credit_type_id": "ct", "fiat_per_custom_credit": 2}]},
    ):
        d = host.diff(R, "x", outs, {**inputs, **change})
        assert d.changes == "SOME" and d.replaces == [], change

    d = host.diff(R, "x", outs, {**inputs, "fiat_credit_type_id": "another"})
    assert d.replaces == ["fiat_credit_type_id"]
    with_conv = {
        **inputs,
        "credit_type_conversions": [{"custom_credit_type_id": "ct", "fiat_per_custom_credit": 2}],
    }
    d = host.diff(
        R,
        "x",
        with_conv,
        {
            **with_conv,
            "credit_type_conversions": [{"custom_credit_type_id": "ct", "fiat_per_custom_credit": 3}],
        },
    )
    assert d.replaces == ["credit_type_conversions"]
    d = host.diff(R, "x", with_conv, {**with_conv, "credit_type_conversions": None})
    assert d.replaces == ["credit_type_conversions"]


def test_lifecycle(host, emulator, products):
    client = emulator.client()
    before = emulator.admin("GET", "stats").json()
    object_id, inputs, outs = host.create_checked(R, card(products))
    live = client.v1.contracts.rate_cards.retrieve(id=object_id).data
    assert live.name == inputs["name"] and live.description == "Standard"
    assert len(schedule(client, object_id)) == 4
    del before

    read_id, read_outs = host.read(R, object_id, outs)
    assert read_id == object_id and read_outs == outs == inputs

    # Update: rename, change a past price, end a rate, add one, reprice the future rate.
    large, small, tiered, seat = card(products)["rates"]  # declaration order
    rates = [{**large, "entitled": True}, small, {**tiered, "entitled": True}, {**seat, "entitled": True}]
    new_rates = [
        {**rates[0], "price": 350.0},  # started in the past: new price from the current hour
        rates[2],
        {**rates[3], "price": 6000.0},  # not started: rewritten in place
        {
            "product_id": products["tokens"],
            "starting_at": PAST,
            "rate_type": "FLAT",
            "price": 50.0,
            "pricing_group_values": {"model": "tiny"},
            "entitled": True,
        },
    ]
    changed = host.check_ok(R, {**inputs, "name": inputs["name"] + "-v2", "rates": new_rates})
    d = host.diff(R, object_id, outs, changed)
    assert d.changes == "SOME" and d.replaces == []
    outs = host.update(R, object_id, outs, changed)

    assert client.v1.contracts.rate_cards.retrieve(id=object_id).data.name == changed["name"]
    hour = current_hour()
    entries = schedule(client, object_id)
    large = sorted(
        (e for e in entries if (e.pricing_group_values or {}).get("model") == "large"),
        key=lambda e: e.starting_at,
    )
    assert [(e.rate.price, e.ending_before) for e in large] == [(300, hour), (350, None)]
    small = [e for e in entries if (e.pricing_group_values or {}).get("model") == "small"]
    assert len(small) == 1 and small[0].ending_before == hour  # removed: ended, not left active
    seat = [e for e in entries if e.product_id == products["seat"]]
    assert [(e.rate.price, e.starting_at.year) for e in seat] == [(6000, 2099)]
    assert any((e.pricing_group_values or {}).get("model") == "tiny" for e in entries)

    # Read maps the live schedule back to the declared shape: no phantom diff after the update.
    _, read_outs = host.read(R, object_id, outs)
    assert host.diff(R, object_id, read_outs, changed).changes == "NONE", read_outs["rates"]

    # A second price change on the same rate (the chain grows) still reads back cleanly.
    again = host.check_ok(R, {**changed, "rates": [{**new_rates[0], "price": 360.0}, *new_rates[1:]]})
    outs = host.update(R, object_id, outs, again)
    _, read_outs = host.read(R, object_id, outs)
    assert host.diff(R, object_id, read_outs, again).changes == "NONE"

    # Out-of-band: a rate added by hand shows up on read.
    client.v1.contracts.rate_cards.rates.add_many(
        rate_card_id=object_id,
        rates=[
            {
                "product_id": products["requests"],
                "starting_at": "2026-02-01T00:00:00Z",
                "entitled": True,
                "rate_type": "FLAT",
                "price": 9,
            }
        ],
    )
    _, drifted = host.read(R, object_id, outs)
    assert host.diff(R, object_id, drifted, again).changes == "SOME"
    assert any(r.get("price") == 9 for r in drifted["rates"])

    # Adding a credit type conversion is an update.
    ct = client.v1.pricing_units.create(name=unique("credits")).data.id
    conv = host.check_ok(
        R, {**again, "credit_type_conversions": [{"custom_credit_type_id": ct, "fiat_per_custom_credit": 2}]}
    )
    assert host.diff(R, object_id, outs, conv).replaces == []
    outs = host.update(R, object_id, outs, conv)
    live = client.v1.contracts.rate_cards.retrieve(id=object_id).data
    assert [c.custom_credit_type.id for c in live.credit_type_conversions] == [ct]

    host.delete(R, object_id, outs)
    assert client.v1.contracts.rate_cards.retrieve(id=object_id).data.archived_at is not None
    assert host.read(R, object_id, outs)[0] == ""


def test_read_after_out_of_band_archive(host, emulator, products):
    object_id, _, outs = host.create_checked(R, card(products))
    emulator.client().v1.contracts.rate_cards.archive(id=object_id)
    assert host.read(R, object_id, outs) == ("", {})


def test_archive_refused_while_contracts_use_it(host, emulator, products):
    client = emulator.client()
    object_id, _, outs = host.create_checked(R, card(products))
    customer_id = client.v1.customers.create(name=unique("rc-customer")).data.id
    client.v1.contracts.create(
        customer_id=customer_id, starting_at=PAST, rate_card_id=object_id, name="on-card"
    )
    with pytest.raises(ProviderError) as err:
        host.delete(R, object_id, outs)
    assert "on-card" in str(err.value)
    assert client.v1.contracts.rate_cards.retrieve(id=object_id).data.archived_at is None


def test_create_is_one_card_call_plus_one_rates_call(fresh_emulator):
    # An account managed before: `iac_identity` is a registered key (a new account's first create of
    # each kind is refused once for it: tests/test_provider_reliability.py).
    fresh_emulator.client().v1.custom_fields.add_key(
        entity="rate_card", key=IDENTITY_FIELD, enforce_uniqueness=False
    )
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as h:
        name = unique("m")
        metric_id, _, _ = h.create_checked(
            M, {"identity": f"p/s/{name}", "name": name, "aggregation_type": "COUNT"}
        )
        prods = {}
        for key in ("tokens", "requests", "seat"):
            pname = unique(key)
            extra = {"type": "FIXED"} if key == "seat" else {"type": "USAGE", "billable_metric_id": metric_id}
            if key == "tokens":
                extra = {**extra, "pricing_group_key": []}
            prods[key], _, _ = h.create_checked(P, {"identity": f"p/s/{pname}", "name": pname, **extra})
        spec = card(prods)
        for r in spec["rates"]:
            r.pop("pricing_group_values", None)
        spec["rates"] = spec["rates"][1:]
        inputs = h.check_ok(R, spec)
        before = fresh_emulator.admin("GET", "stats").json()
        h.create(R, inputs)
        after = fresh_emulator.admin("GET", "stats").json()
    calls = {k: after["by_route"].get(k, 0) - before["by_route"].get(k, 0) for k in after["by_route"]}
    made = {k: v for k, v in calls.items() if v}
    assert made.get("POST /v1/contract-pricing/rate-cards/create") == 1, made
    assert made.get("POST /v1/contract-pricing/rate-cards/addRates") == 1, made


def test_rate_removed_in_the_hour_its_price_changed_reads_as_gone(host, products):
    """The price change starts a segment at the current hour; removing the rate in that same hour ends it
    with a one-hour tombstone. A refresh must show the rate gone, not a leftover to end again."""
    inputs = card(products)
    object_id, checked, outs = host.create_checked(R, inputs)
    cheaper = [{**r, "price": 250} if r["price"] == 300 else r for r in checked["rates"] if "price" in r]
    cheaper += [r for r in checked["rates"] if "price" not in r]
    news = host.check_ok(R, {**checked, "rates": cheaper}, outs)
    outs = host.update(R, object_id, outs, news)
    removed = host.check_ok(R, {**news, "rates": [r for r in news["rates"] if r.get("price") != 250]}, outs)
    outs = host.update(R, object_id, outs, removed)
    _, read_outs = host.read(R, object_id, outs)
    assert not [r for r in read_outs["rates"] if r.get("pricing_group_values") == {"model": "large"}], (
        read_outs
    )
    assert host.diff(R, object_id, read_outs, removed).changes == "NONE"


def test_a_rate_from_before_2000_reads_back(host, products):
    """The schedule is read from the earliest declared rate when that is older than the default start."""
    old = {
        "product_id": products["seat"],
        "starting_at": "1999-01-01T00:00:00Z",
        "ending_before": "1999-06-01T00:00:00Z",
        "rate_type": "FLAT",
        "price": 1,
    }
    object_id, checked, outs = host.create_checked(R, card(products, rates=[old]))
    _, read_outs = host.read(R, object_id, outs)
    assert host.diff(R, object_id, read_outs, checked).changes == "NONE", read_outs


def test_one_price_change_reads_only_the_rates_it_touches(fresh_emulator):
    """Changing one price on a card of many rates reads that rate's schedule (getRateSchedule selectors),
    not the whole card page by page: one read and one addRates, whatever the card's size."""
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as h:
        metric_id, _, _ = h.create_checked(
            M,
            {
                "identity": "p/s/metric",
                "name": "metric",
                "aggregation_type": "SUM",
                "aggregation_key": "tokens",
                "property_filters": [{"name": "tokens", "exists": True}, {"name": "model", "exists": True}],
                "group_keys": [["model"]],
            },
        )
        product_id, _, _ = h.create_checked(
            P,
            {
                "identity": "p/s/tokens",
                "name": "tokens",
                "type": "USAGE",
                "billable_metric_id": metric_id,
                "pricing_group_key": ["model"],
            },
        )
        plain_id, _, _ = h.create_checked(P, {"identity": "p/s/fee", "name": "fee", "type": "FIXED"})
        rates = [
            {
                "product_id": product_id,
                "starting_at": PAST,
                "rate_type": "FLAT",
                "price": 100 + i,
                "pricing_group_values": {"model": f"m{i:03d}"},
            }
            for i in range(350)
        ]
        rates.append({"product_id": plain_id, "starting_at": PAST, "rate_type": "FLAT", "price": 7})
        object_id, inputs, outs = h.create_checked(
            R, {"identity": "p/s/card", "name": "card", "rates": rates}
        )

        def stats() -> dict:
            return fresh_emulator.admin("GET", "stats").json()

        for edited_index in (200, 350):  # a rate with pricing group values, then one without
            edited = [dict(r) for r in inputs["rates"]]
            edited[edited_index]["price"] += 1
            before = stats()
            news = h.check_ok(R, {**inputs, "rates": edited}, olds=outs)
            assert h.diff(R, object_id, outs, news).changed
            outs = h.update(R, object_id, outs, news)
            after = stats()
            routes = {k: v - before["by_route"].get(k, 0) for k, v in after["by_route"].items()}
            assert after["total"] - before["total"] <= 3, routes
            assert routes.get("POST /v1/contract-pricing/rate-cards/getRateSchedule") == 1, routes
            inputs = news

            _, read_outs = h.read(R, object_id, outs)
            assert h.diff(R, object_id, read_outs, news).changes == "NONE"
            live = fresh_emulator.client().v1.contracts.rate_cards.retrieve_rate_schedule(
                rate_card_id=object_id,
                starting_at=PAST,
                selectors=[
                    {
                        k: v
                        for k, v in edited[edited_index].items()
                        if k in ("product_id", "pricing_group_values")
                    }
                ],
            )
            prices = sorted(
                e.rate.price
                for e in live.data
                if e.pricing_group_values == edited[edited_index].get("pricing_group_values")
                and e.ending_before is None
            )
            assert prices == [edited[edited_index]["price"]]
