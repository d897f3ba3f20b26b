"""Table tests for the diff rules: no phantom diffs, no phantom replacements (in-process)."""

from __future__ import annotations

import pytest
from pulumi.output import Unknown
from pulumi.runtime import rpc

from providers.billable_metric import BillableMetricProvider
from providers.contract import ContractProvider
from providers.customer import CustomerProvider
from providers.diff import normalize
from providers.product import ProductProvider
from providers.rate_card import RateCardProvider

METRIC = {
    "identity": "p/s/m",
    "name": "Input tokens",
    "aggregation_type": "SUM",
    "aggregation_key": "tokens",
    "event_type_filter": {"in_values": ["a", "b"]},
    "property_filters": [{"name": "model", "exists": True}, {"name": "region", "in_values": ["eu", "us"]}],
    "group_keys": [["model", "region"]],
}
PRODUCT = {
    "identity": "p/s/p",
    "name": "Tokens",
    "type": "USAGE",
    "billable_metric_id": "m-1",
    "pricing_group_key": ["model", "region"],
    "quantity_conversion": {"conversion_factor": 1000000, "operation": "DIVIDE"},
    "quantity_rounding": {"decimal_places": 2, "rounding_method": "ROUND_UP"},
    "tags": ["a", "b"],
}
CARD = {
    "identity": "p/s/c",
    "name": "Standard",
    "credit_type_conversions": [{"custom_credit_type_id": "ct-1", "fiat_per_custom_credit": 2}],
    "rates": [
        {
            "product_id": "p-1",
            "starting_at": "2026-01-01T00:00:00Z",
            "rate_type": "FLAT",
            "price": 3,
            "pricing_group_values": {"model": "large", "region": "us"},
        },
        {
            "product_id": "p-2",
            "starting_at": "2026-01-01T00:00:00Z",
            "rate_type": "TIERED",
            "tiers": [{"size": 1000, "price": 3}, {"price": 2}],
        },
    ],
}
CUSTOMER = {"identity": "p/s/u", "name": "Acme", "ingest_aliases": ["a", "b"], "external_id": "ext"}
CONTRACT = {
    "identity": "p/s/k",
    "customer_id": "cu-1",
    "rate_card_id": "rc-1",
    "starting_at": "2026-01-01T00:00:00Z",
    "name": "Acme 2026",
    "net_payment_terms_days": 30,
    "discounts": [
        {
            "product_id": "p-1",
            "schedule": {"schedule_items": [{"timestamp": "2026-01-01T00:00:00Z", "amount": 10}]},
        }
    ],
}

U = rpc.UNKNOWN


def with_(base, **over):
    return {**base, **over}


def rates_with(**over):
    return [with_(CARD["rates"][0], **over), CARD["rates"][1]]


# (provider, olds (recorded outputs), news, expected changes, expected replaces)
CASES = [
    # -- no change: defaults, number spellings, list order, missing vs None, engine fields
    (BillableMetricProvider, METRIC, METRIC, False, []),
    (BillableMetricProvider, METRIC, with_(METRIC, event_type_filter={"in_values": ["b", "a"]}), False, []),
    (
        BillableMetricProvider,
        METRIC,
        with_(METRIC, property_filters=METRIC["property_filters"][::-1]),
        False,
        [],
    ),
    (BillableMetricProvider, METRIC, with_(METRIC, custom_fields=None, __provider="other-blob"), False, []),
    (BillableMetricProvider, with_(METRIC, custom_fields={"iac_identity": "p/s/m#1"}), METRIC, False, []),
    (
        BillableMetricProvider,
        with_(METRIC, adopt_report=["x"]),
        with_(METRIC, adopt={"name": "x"}),
        False,
        [],
    ),
    (ProductProvider, PRODUCT, with_(PRODUCT, is_refundable=True), False, []),
    (
        ProductProvider,
        PRODUCT,
        with_(PRODUCT, tags=["b", "a"], update_starting_at="2026-05-01T00:00:00Z"),
        False,
        [],
    ),
    (
        ProductProvider,
        PRODUCT,
        with_(PRODUCT, quantity_conversion={"conversion_factor": 1e6, "operation": "DIVIDE"}),
        False,
        [],
    ),
    (
        ProductProvider,
        with_(PRODUCT, type="PRO_SERVICE"),
        with_(PRODUCT, type="PROFESSIONAL_SERVICE"),
        False,
        [],
    ),
    (RateCardProvider, CARD, with_(CARD, rates=CARD["rates"][::-1]), False, []),
    (RateCardProvider, CARD, with_(CARD, rates=rates_with(price=3.0)), False, []),
    (RateCardProvider, CARD, with_(CARD, rates=rates_with(price="3")), False, []),
    (RateCardProvider, CARD, with_(CARD, rates=rates_with(entitled=True)), False, []),
    (
        RateCardProvider,
        CARD,
        with_(CARD, rates=rates_with(starting_at="2026-01-01T00:00:00.000+00:00")),
        False,
        [],
    ),
    (
        RateCardProvider,
        CARD,
        with_(CARD, fiat_credit_type_id="2714e483-4ff1-48e4-9e25-ac732e8f24f2"),
        False,
        [],
    ),
    (
        RateCardProvider,
        with_(
            CARD, credit_type_conversions=[{"custom_credit_type_id": "ct-1", "fiat_per_custom_credit": "2"}]
        ),
        CARD,
        False,
        [],
    ),
    (CustomerProvider, CUSTOMER, with_(CUSTOMER, ingest_aliases=["b", "a"], custom_fields={}), False, []),
    (
        ContractProvider,
        CONTRACT,
        with_(CONTRACT, net_payment_terms_days=30.0, allow_replacement=True),
        False,
        [],
    ),
    (ContractProvider, with_(CONTRACT, uniqueness_key="iac:p/s/k#1"), CONTRACT, False, []),
    (ProductProvider, PRODUCT, with_(PRODUCT, pricing_group_key=["region", "model"]), False, []),
    (CustomerProvider, with_(CUSTOMER, external_id=None), with_(CUSTOMER, external_id=""), False, []),
    (
        ContractProvider,
        CONTRACT,
        with_(
            CONTRACT,
            discounts=[
                {
                    **d,
                    "schedule": {
                        "credit_type_id": "2714e483-4ff1-48e4-9e25-ac732e8f24f2",
                        "schedule_items": [
                            {**i, "timestamp": i["timestamp"].replace("T", " ").lower()}
                            for i in reversed(d["schedule"]["schedule_items"])
                        ],
                    },
                }
                for d in CONTRACT["discounts"]
            ],
        ),
        False,
        [],
    ),
    # -- in-place updates
    (BillableMetricProvider, METRIC, with_(METRIC, name="Renamed"), True, []),
    (BillableMetricProvider, METRIC, with_(METRIC, custom_fields={"team": "x"}), True, []),
    (ProductProvider, PRODUCT, with_(PRODUCT, billable_metric_id="m-2"), True, []),
    (ProductProvider, PRODUCT, with_(PRODUCT, tags=["a"]), True, []),
    (RateCardProvider, CARD, with_(CARD, rates=rates_with(price=4)), True, []),
    (RateCardProvider, CARD, with_(CARD, rates=CARD["rates"][:1]), True, []),
    (RateCardProvider, CARD, with_(CARD, description="new"), True, []),
    (
        RateCardProvider,
        CARD,
        with_(
            CARD,
            credit_type_conversions=[
                *CARD["credit_type_conversions"],
                {"custom_credit_type_id": "ct-2", "fiat_per_custom_credit": 5},
            ],
        ),
        True,
        [],
    ),
    (CustomerProvider, CUSTOMER, with_(CUSTOMER, name="Acme Corp"), True, []),
    (CustomerProvider, CUSTOMER, with_(CUSTOMER, ingest_aliases=["a"]), True, []),
    (ContractProvider, CONTRACT, with_(CONTRACT, name="x", ending_before="2027-01-01T00:00:00Z"), True, []),
    (
        ContractProvider,
        CONTRACT,
        with_(
            CONTRACT,
            discounts=[
                *CONTRACT["discounts"],
                {
                    "product_id": "p-2",
                    "schedule": {"schedule_items": [{"timestamp": "2026-02-01T00:00:00Z", "amount": 1}]},
                },
            ],
        ),
        True,
        [],
    ),
    # -- replacements, one per immutable field
    (BillableMetricProvider, METRIC, with_(METRIC, aggregation_type="MAX"), True, ["aggregation_type"]),
    (BillableMetricProvider, METRIC, with_(METRIC, aggregation_key="x"), True, ["aggregation_key"]),
    (
        BillableMetricProvider,
        METRIC,
        with_(METRIC, event_type_filter={"in_values": ["a"]}),
        True,
        ["event_type_filter"],
    ),
    (BillableMetricProvider, METRIC, with_(METRIC, property_filters=[]), True, ["property_filters"]),
    (BillableMetricProvider, METRIC, with_(METRIC, group_keys=[["model"]]), True, ["group_keys"]),
    (ProductProvider, PRODUCT, with_(PRODUCT, type="FIXED"), True, ["type"]),
    (RateCardProvider, CARD, with_(CARD, fiat_credit_type_id="eur"), True, ["fiat_credit_type_id"]),
    (
        RateCardProvider,
        CARD,
        with_(CARD, credit_type_conversions=[{"custom_credit_type_id": "ct-1", "fiat_per_custom_credit": 3}]),
        True,
        ["credit_type_conversions"],
    ),
    (RateCardProvider, CARD, with_(CARD, credit_type_conversions=None), True, ["credit_type_conversions"]),
    (CustomerProvider, CUSTOMER, with_(CUSTOMER, external_id="other"), True, ["external_id"]),
    (
        ContractProvider,
        CONTRACT,
        with_(CONTRACT, customer_id="cu-2", allow_replacement=True),
        True,
        ["customer_id"],
    ),
    (
        ContractProvider,
        CONTRACT,
        with_(CONTRACT, rate_card_id="rc-2", allow_replacement=True),
        True,
        ["rate_card_id"],
    ),
    (
        ContractProvider,
        CONTRACT,
        with_(CONTRACT, starting_at="2026-02-01T00:00:00Z", allow_replacement=True),
        True,
        ["starting_at"],
    ),
    (
        ContractProvider,
        CONTRACT,
        with_(CONTRACT, discounts=None, allow_replacement=True),
        True,
        ["discounts"],
    ),
    # -- preview unknowns: a changed reference shows, and replaces if immutable
    (ProductProvider, PRODUCT, with_(PRODUCT, billable_metric_id=U), True, []),
    (ProductProvider, PRODUCT, with_(PRODUCT, billable_metric_id=Unknown()), True, []),
    (
        ContractProvider,
        CONTRACT,
        with_(CONTRACT, customer_id=U, allow_replacement=True),
        True,
        ["customer_id"],
    ),
    (RateCardProvider, CARD, with_(CARD, rates=rates_with(product_id=U)), True, []),
]


@pytest.mark.parametrize(
    ("provider", "olds", "news", "changes", "replaces"),
    CASES,
    ids=[f"{i}-{c[0].kind}" for i, c in enumerate(CASES)],
)
def test_diff_table(provider, olds, news, changes, replaces):
    result = provider().diff("id-1", olds, news)
    assert (result.changes, sorted(result.replaces or [])) == (changes, sorted(replaces))


def test_normalize_table():
    assert normalize({"a": 3}) == normalize({"a": 3.0}) == normalize({"a": "3"}) == normalize({"a": "3.0"})
    assert normalize({"a": None, "b": [], "c": {}}) == {}
    assert normalize({"t": "2026-01-01T00:00:00Z"}) == normalize({"t": "2026-01-01T00:00:00.000+00:00"})
    assert normalize({"tiers": [{"size": 1, "price": 2}, {"price": 1}]}) != normalize(
        {"tiers": [{"price": 1}, {"size": 1, "price": 2}]}
    )  # tier order matters
    assert normalize({"tags": ["b", "a"]}) == normalize({"tags": ["a", "b"]})

    # Under time keys, the other spellings of one instant; elsewhere a date-like string stays a string.
    assert normalize({"timestamp": "2026-01-01"}) == normalize({"timestamp": "2026-01-01t00:00:00z"})
    assert normalize({"starting_at": "2026-01-01 01:00:00+01:00"}) == {"starting_at": "2026-01-01T00:00:00Z"}
    assert normalize({"name": "2026-01-01"}) == {"name": "2026-01-01"}
    assert normalize({"schedule_items": [2, 1]}) == normalize({"schedule_items": [1, 2]})


def test_recurring_schedule_reads_as_declared_only_while_the_items_fit_its_window():
    from providers.contract import to_inputs

    recurring = {
        "starting_at": "2026-01-01T00:00:00Z",
        "ending_before": "2026-04-01T00:00:00Z",
        "frequency": "MONTHLY",
        "amount_distribution": "EACH",
        "amount": 10,
    }
    declared = {
        "customer_id": "cu-1",
        "starting_at": "2026-01-01T00:00:00Z",
        "discounts": [{"product_id": "p-1", "schedule": {"recurring_schedule": recurring}}],
    }

    def live(*timestamps: str) -> dict:
        items = [{"id": f"i{n}", "timestamp": t, "amount": 10} for n, t in enumerate(timestamps)]
        return {
            "customer_id": "cu-1",
            "starting_at": "2026-01-01T00:00:00Z",
            "discounts": [{"id": "d-1", "product": {"id": "p-1"}, "schedule": {"schedule_items": items}}],
        }

    expanded = live("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")
    (read,) = to_inputs(expanded, declared)["discounts"]
    assert read["schedule"] == {"recurring_schedule": recurring}
    moved = live("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-06-01T00:00:00Z")
    (read,) = to_inputs(moved, declared)["discounts"]
    assert "recurring_schedule" not in read["schedule"]  # a hand edit outside the window is drift
    repriced = live("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")
    repriced["discounts"][0]["schedule"]["schedule_items"][1]["amount"] = 12
    (read,) = to_inputs(repriced, declared)["discounts"]
    assert "recurring_schedule" not in read["schedule"]  # so is an amount changed by hand
    divided = {**declared, "discounts": [{"product_id": "p-1", "schedule": {"recurring_schedule": {
        **recurring, "amount_distribution": "DIVIDED", "amount": 30}}}]}  # fmt: skip
    (read,) = to_inputs(expanded, divided)["discounts"]
    assert "recurring_schedule" in read["schedule"]  # 3 x 10 = 30
    (read,) = to_inputs(live("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"), divided)["discounts"]
    assert "recurring_schedule" not in read["schedule"]  # an item removed by hand


@pytest.mark.parametrize(
    "change",
    [{"customer_id": "cu-2"}, {"rate_card_id": "rc-2"}, {"discounts": None}, {"customer_id": U}],
)
def test_contract_replacement_is_refused_by_diff_too(change):
    """Check refuses against the recorded inputs; after a refresh only diff sees the live contract."""
    from providers.client import MetronomeError

    with pytest.raises(MetronomeError, match="replaces the contract.*allow_replacement: true"):
        ContractProvider().diff("id-1", CONTRACT, with_(CONTRACT, **change))


@pytest.mark.parametrize(
    ("desired", "why"),
    [
        ({"billing_provider_configuration": None}, "none declared: Metronome cannot take one off a contract"),
        (
            {
                "ending_before": "2026-03-01T00:00:00Z",
                "billing_provider_configuration": {"billing_provider_configuration_id": "bpc-new"},
            },  # fmt: skip
            "an ended contract keeps the configuration it billed through",
        ),
    ],
)
def test_a_billing_configuration_nothing_can_change_is_no_diff_and_no_drift(desired, why):
    """Diff and drift (which shares diff_pair) agree: no perpetual update, no perpetual drift."""
    from providers.diff import changed_fields

    live = with_(
        CONTRACT,
        ending_before=desired.get("ending_before"),
        billing_provider_configuration={"billing_provider_configuration_id": "bpc-old"},
    )
    news = with_(live, **desired)
    provider = ContractProvider()
    assert provider.diff("id-1", live, news).changes is False, why
    have, want = provider.diff_pair(live, news)
    assert "billing_provider_configuration" not in changed_fields(have, want, provider.api_fields()), why


@pytest.mark.parametrize(
    ("old", "new", "changed"),
    [
        # Unordered lists compare as multisets, whatever the order and spelling of the items.
        ([{"a": 1}, {"b": 2}, {"c": 3}], [{"c": 3.0}, {"a": "1"}, {"b": 2}], False),
        ([{"a": 1}, {"b": 2}, {"c": 3}], [{"a": 1}, {"b": 5}, {"c": 3}], True),
        ([{"a": 1}, {"a": 1}], [{"a": 1}], True),  # a duplicate item is an item
        ([{"a": 1}], [{"a": 1}, {"a": 1.0}], True),
        ([{"a": 1}, {"b": 2}], [{"b": 2}, {"a": 1}, {"c": None}], True),
        ([{"a": 1}], [], True),
        ([], None, False),
        ([{"a": 1}, {"b": 2}], [{"a": 1}, {"b": 2}], False),
    ],
)
def test_unordered_list_field_compares_what_differs(old, new, changed):
    from providers.diff import field_changed

    assert field_changed("rates", old, new) is changed
    assert field_changed("rates", new, old) is changed


def test_an_unknown_inside_a_list_is_a_change():
    from providers.diff import field_changed

    assert field_changed("rates", [{"a": 1}], [{"a": rpc.UNKNOWN}])


def test_order_sensitive_list_field_keeps_its_order():
    from providers.diff import field_changed

    assert field_changed("tiers", [{"price": 1}, {"price": 2}], [{"price": 2}, {"price": 1}])
    assert not field_changed("tiers", [{"price": 1}, {"price": 2}], [{"price": "1"}, {"price": 2.0}])


def test_a_price_changed_in_a_big_card_is_a_change_and_nothing_else_is():
    """One price of 5,000 changed, as state and checked inputs hold them: a change, no replacement."""
    rates = [
        {
            "product_id": f"p{i // 10}",
            "starting_at": "2026-01-01T00:00:00Z",
            "rate_type": "FLAT",
            "price": float(i),
            "pricing_group_values": {"model": f"m{i % 10}"},
            "entitled": True,
        }
        for i in range(5000)
    ]
    olds = {**CARD, "credit_type_conversions": None, "rates": rates}
    edited = [dict(r) for r in rates]
    edited[2500]["price"] = 1.5
    provider = RateCardProvider()
    assert not provider.diff("x", olds, {**olds, "rates": list(reversed(rates))}).changes
    result = provider.diff("x", olds, {**olds, "rates": edited})
    assert result.changes and not result.replaces
