"""import-stripe: a Stripe account (localstripe + the fake extras) -> a stack that validates and declares."""

from __future__ import annotations

import importlib.util
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from conftest import free_port
from fake_stripe import ACCOUNT_ID, API_KEY, FakeStripe

from metronome_iac import stripe_import
from metronome_iac.catalog import CatalogError, load_stack
from metronome_iac.cli import main

N_CUSTOMERS = 250
START = "2026-01-01T00:00:00Z"
JAN_1, FEB_1 = 1767225600, 1769904000  # 2026-01-01, 2026-02-01: FEB_1 is in the past
# An expiry in the future whenever the tests run: 1 February of next year.
NEXT_FEB = datetime(datetime.now(timezone.utc).year + 1, 2, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def account() -> Iterator[dict]:
    fake = FakeStripe()
    try:
        tokens = fake.add_meter(
            "input_tokens", value_key="tokens", display_name="Input tokens", dimensions=["model", "region"]
        )
        requests_meter = fake.add_meter("api_requests", formula="count", display_name="API requests")
        peak = fake.add_meter("peak_gpus", formula="max")  # no Metronome equivalent of this aggregation
        tokens_product = fake.add_product("Input tokens")
        requests_product = fake.add_product("API requests")
        per_million = fake.add_price(
            tokens_product["id"],
            meter=tokens["id"],
            unit_amount=300,
            lookup_key="input_tokens_per_million",
            transform_quantity={"divide_by": 1000000, "round": "up"},
        )
        graduated = fake.add_price(
            requests_product["id"],
            meter=requests_meter["id"],
            nickname="graduated",
            tiers_mode="graduated",
            tiers=[
                {"up_to": 1000, "unit_amount": 0},
                {"up_to": 10000, "unit_amount_decimal": "0.5"},
                {"up_to": None, "unit_amount_decimal": "0.25"},
            ],
        )
        fake.add_price(
            requests_product["id"],
            meter=requests_meter["id"],
            nickname="volume",
            tiers_mode="volume",
            tiers=[{"up_to": 1000, "unit_amount": 1}, {"up_to": None, "unit_amount": 0}],
        )
        fake.add_price(
            tokens_product["id"], meter=tokens["id"], currency="eur", unit_amount=280, nickname="euro"
        )
        # Licensed prices: a monthly seat, a yearly platform fee, and one billed every 2 months.
        seat = fake.add_price(tokens_product["id"], usage_type="licensed", unit_amount=5000, nickname="seat")
        platform_product = fake.add_product("Platform")
        platform = fake.add_price(
            platform_product["id"],
            usage_type="licensed",
            unit_amount=120000,
            nickname="platform",
            interval="year",
        )
        fake.add_price(
            platform_product["id"],
            usage_type="licensed",
            unit_amount=100,
            nickname="bimonthly",
            interval_count=2,
        )
        fake.add_price(
            requests_product["id"],
            meter=requests_meter["id"],
            nickname="with fee",
            tiers_mode="graduated",
            tiers=[{"up_to": 10, "unit_amount": 1, "flat_amount": 500}, {"up_to": None, "unit_amount": 1}],
        )

        customers = [fake.create_customer(f"Customer {i:03d}") for i in range(N_CUSTOMERS)]
        idle = [fake.create_customer(f"Idle {i}") for i in range(5)]  # no subscription: not imported
        for i, cus in enumerate(customers):
            method = "send_invoice" if i == 7 else "charge_automatically"
            fake.add_subscription(cus, [per_million["id"], graduated["id"]], collection_method=method)
        fake.add_subscription(customers[0], [seat["id"], platform["id"]], quantities={seat["id"]: 3})
        # Billing alerts: a customer's usage, everyone's usage, a customer's credit balance; and three
        # that cannot be imported (inactive, an idle customer's, a meter that was not imported).
        alerts = {
            "tokens": fake.add_alert(
                "Big token user", meter=tokens["id"], gte=1000000, customer=customers[0]
            ),
            "requests": fake.add_alert("Over 5000 requests", meter=requests_meter["id"], gte=5000),
            "credit": fake.add_alert("Low credit", customer=customers[1], credit_below=500),
            "inactive": fake.add_alert("Old", meter=tokens["id"], gte=5, status="inactive"),
            "idle": fake.add_alert("Idle watch", meter=tokens["id"], gte=1, customer=idle[0]),
            "gpus": fake.add_alert("GPUs", meter=peak["id"], gte=8),
        }
        grants = {
            "expiring": fake.add_credit_grant(
                customers[0],
                10000,
                name="Launch credit",
                effective_at=JAN_1,
                expires_at=int(NEXT_FEB.timestamp()),
                priority=10,
                used=4000,  # the customer already spent 40 USD of it in Stripe
            ),
            "expired": fake.add_credit_grant(customers[4], 700, effective_at=JAN_1, expires_at=FEB_1),
            "used_up": fake.add_credit_grant(customers[5], 300, used=300),
            "forever": fake.add_credit_grant(customers[1], 2500, name="Goodwill"),
            "voided": fake.add_credit_grant(customers[2], 100, voided=True),
            "euro": fake.add_credit_grant(customers[3], 100, currency="eur"),
            "idle": fake.add_credit_grant(idle[0], 100),
        }
        yield {
            "fake": fake,
            "customers": customers,
            "grants": grants,
            "per_million": per_million,
            "alerts": alerts,
        }
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def imported(account: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    fake: FakeStripe = account["fake"]
    out = tmp_path_factory.mktemp("stacks") / "imported"
    before = len(fake.requests)
    code = main(
        [
            "import-stripe",
            "--out",
            str(out),
            "--api-key",
            API_KEY,
            "--api-base",
            fake.api_base,
            "--rates-starting-at",
            START,
        ]
    )
    assert code == 0
    return {"out": out, "requests": fake.requests[before:]}


def test_import_validates_and_maps(imported: dict, account: dict) -> None:
    stack = load_stack(imported["out"])
    metrics = {m.name: m for m in stack.catalog.billable_metrics}
    assert set(metrics) == {"input_tokens", "api_requests"}
    assert metrics["input_tokens"].aggregation_type == "SUM"
    assert metrics["input_tokens"].aggregation_key == "tokens"
    assert metrics["input_tokens"].event_type_filter.in_values == ["input_tokens"]
    assert metrics["input_tokens"].group_keys == [["model", "region"]]
    # The meter each metric came from, for `metronome-iac reconcile` (never sent to Metronome).
    meter_of = {m["event_name"]: m["id"] for m in account["fake"].meters.values()}
    assert {m.name: m.stripe_meter for m in metrics.values()} == {
        "input_tokens": meter_of["input_tokens"],
        "api_requests": meter_of["api_requests"],
    }
    assert [(f.name, f.exists) for f in metrics["input_tokens"].property_filters] == [
        ("tokens", True),  # the aggregated key, then the dimensions
        ("model", True),
        ("region", True),
    ]
    assert (
        metrics["api_requests"].aggregation_type == "COUNT"
        and metrics["api_requests"].aggregation_key is None
    )

    products = {p.name: p for p in stack.catalog.products}
    assert set(products) == {"input_tokens_per_million", "graduated", "seat", "platform", "stripe_credit"}
    tokens = products["input_tokens_per_million"]
    assert tokens.billable_metric == "input_tokens"
    assert tokens.quantity_conversion.conversion_factor == 1000000
    assert tokens.quantity_conversion.operation == "DIVIDE"
    assert tokens.quantity_rounding.rounding_method == "ROUND_UP"
    assert products["stripe_credit"].type == "FIXED"

    (card,) = stack.catalog.rate_cards
    rates = {r.product: r for r in card.rates}
    assert (
        rates["input_tokens_per_million"].rate_type == "FLAT"
        and rates["input_tokens_per_million"].price == 300
    )
    tiers = rates["graduated"].tiers
    assert [(t.size, t.price) for t in tiers] == [(1000, 0), (9000, 0.5), (None, 0.25)]  # up_to -> sizes
    assert all(r.starting_at == START for r in card.rates)

    env = stack.environment
    assert env.stripe.expected_account_id == ACCOUNT_ID and env.stripe.go_live is False
    assert len(env.customers) == N_CUSTOMERS  # all pages read; idle customers left out
    by_stripe = {c.stripe_customer_id: c for c in env.customers}
    assert set(by_stripe) == set(account["customers"])
    first = by_stripe[account["customers"][0]]
    assert first.ingest_aliases == [account["customers"][0]] and first.display_name == "Customer 000"
    assert by_stripe[account["customers"][7]].stripe_collection_method == "send_invoice"
    assert by_stripe[account["customers"][8]].stripe_collection_method is None

    contracts = {k.customer: k for k in env.contracts}
    assert len(contracts) == N_CUSTOMERS
    (launch,) = contracts[first.name].credits
    assert launch.name == "Launch credit" and launch.priority == 10 and launch.product == "stripe_credit"
    (item,) = launch.access_schedule.schedule_items
    # What is left in Stripe moves, not what was granted; usable from the contract's start.
    ending = NEXT_FEB.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (item.amount, item.starting_at, item.ending_before) == (6000, START, ending)
    (forever,) = contracts[by_stripe[account["customers"][1]].name].credits
    assert forever.access_schedule.schedule_items[0].ending_before == stripe_import.NO_EXPIRY
    assert not contracts[by_stripe[account["customers"][2]].name].credits  # voided
    assert not contracts[by_stripe[account["customers"][3]].name].credits  # EUR


def test_licensed_prices_become_subscriptions_and_alerts_become_alerts(imported: dict, account: dict) -> None:
    """A seat or platform fee: a SUBSCRIPTION product with a FLAT rate billed at the price's interval,
    and on the customer's contract a subscription with the item's quantity. Billing alerts: a usage
    threshold on an imported meter, for a customer or for everyone, and a customer's credit balance."""
    stack = load_stack(imported["out"])
    products = {p.name: p for p in stack.catalog.products}
    assert products["seat"].type == "SUBSCRIPTION" and products["platform"].type == "SUBSCRIPTION"
    rates = {r.product: r for r in stack.catalog.rate_cards[0].rates}
    assert (rates["seat"].rate_type, rates["seat"].price, rates["seat"].billing_frequency) == (
        "FLAT",
        5000,
        "MONTHLY",
    )
    assert (rates["platform"].price, rates["platform"].billing_frequency) == (120000, "ANNUAL")
    by_stripe = {c.stripe_customer_id: c for c in stack.environment.customers}
    first = by_stripe[account["customers"][0]]
    contract = next(k for k in stack.environment.contracts if k.customer == first.name)
    subs = {s["subscription_rate"]["product"]: s for s in contract.subscriptions}
    assert subs["seat"]["initial_quantity"] == 3 and subs["platform"]["initial_quantity"] == 1
    assert subs["seat"]["collection_schedule"] == "ADVANCE" and subs["seat"]["proration"] == {
        "is_prorated": True
    }
    assert subs["platform"]["subscription_rate"]["billing_frequency"] == "ANNUAL"
    others = [k for k in stack.environment.contracts if k.customer != first.name]
    assert not any(k.subscriptions for k in others)

    (everyone,) = stack.catalog.alerts
    assert (everyone.alert_type, everyone.billable_metric, everyone.threshold) == (
        "usage_threshold_reached",
        "api_requests",
        5000,
    )
    (tokens,) = first.alerts
    assert (tokens.alert_type, tokens.billable_metric, tokens.threshold) == (
        "usage_threshold_reached",
        "input_tokens",
        1000000,
    )
    (credit,) = by_stripe[account["customers"][1]].alerts
    assert (credit.alert_type, credit.threshold) == ("low_remaining_contract_credit_balance_reached", 500)


def test_import_pages_through_everything(imported: dict) -> None:
    customer_pages = [p for m, p in imported["requests"] if m == "GET" and p == "/v1/customers"]
    subscription_pages = [p for m, p in imported["requests"] if m == "GET" and p == "/v1/subscriptions"]
    assert len(customer_pages) == 3  # 255 customers, 100 a page
    assert len(subscription_pages) == 3


def test_import_reports_what_it_could_not_map(
    account: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake: FakeStripe = account["fake"]
    assert (
        main(
            [
                "import-stripe",
                "--out",
                str(tmp_path / "s"),
                "--api-key",
                API_KEY,
                "--api-base",
                fake.api_base,
                "--rates-starting-at",
                START,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "meter" in out and "aggregation formula 'max' has no Metronome equivalent" in out
    assert "(volume): volume tiers" in out
    assert "(euro): currency EUR" in out
    assert "(bimonthly): licensed price billed every 2 month(s)" in out
    alerts = account["alerts"]
    assert f"billing alert {alerts['inactive']['id']} (Old): status is inactive" in out
    assert f"billing alert {alerts['idle']['id']} (Idle watch): it watches customer" in out
    assert f"billing alert {alerts['gpus']['id']} (GPUs): its meter" in out and "was not imported" in out
    assert "(with fee): tiers with a flat fee" in out
    grants = account["grants"]
    assert f"credit grant {grants['voided']['id']}: voided" in out
    assert f"credit grant {grants['euro']['id']}: currency EUR is not USD" in out
    assert f"credit grant {grants['idle']['id']}: customer" in out and "has no imported subscription" in out
    assert f"credit grant {grants['expired']['id']}: expired at 2026-02-01T00:00:00Z" in out
    assert f"credit grant {grants['used_up']['id']}: fully used in Stripe" in out
    assert "imported the remaining 6000 of 10000 cents granted" in out
    assert (
        "imported 2 billable metric(s), 5 product(s), 4 rate(s), 250 customer(s), 2 credit(s), "
        "2 subscription(s), 3 alert(s)" in out
    )


def test_invalid_result_is_never_written(account: dict, tmp_path: Path) -> None:
    data = stripe_import.read_account(stripe_import.make_client(API_KEY, account["fake"].api_base))
    result = stripe_import.build_stack(data, START)
    result.catalog["products"][0]["billable_metric"] = "no_such_metric"  # a cross-reference error
    out = tmp_path / "broken"
    with pytest.raises(CatalogError, match="no_such_metric"):
        stripe_import.write_stack(result, out)
    assert not out.exists() or not any(out.iterdir())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # staging cleaned up


def test_refuses_to_overwrite_and_needs_a_key(
    imported: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Both could-not-run cases exit 1 (2 means "ran and found something"); the refusal is export's."""
    out = imported["out"]
    written = {name: (out / name).read_bytes() for name in ("catalog.yaml", "environment.yaml")}
    assert main(["import-stripe", "--out", str(out), "--api-key", API_KEY]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {out} already has catalog.yaml and environment.yaml") and "--force" in err
    assert {name: (out / name).read_bytes() for name in written} == written
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    assert main(["import-stripe", "--out", str(out) + "-new"]) == 1
    assert "STRIPE_API_KEY" in capsys.readouterr().err


def test_map_price_units() -> None:
    decimal_price = {
        "id": "price_1",
        "type": "recurring",
        "currency": "usd",
        "billing_scheme": "per_unit",
        "recurring": {"usage_type": "metered", "meter": "mtr_1"},
        "unit_amount": None,
        "unit_amount_decimal": "0.0003",
        "transform_quantity": {"divide_by": 1000, "round": "down"},
    }
    product, rate, reason = stripe_import.map_price(decimal_price, {"mtr_1": "m"})
    assert reason is None and rate == {"rate_type": "FLAT", "price": 0.0003}
    assert product["quantity_rounding"] == {"decimal_places": 0, "rounding_method": "ROUND_DOWN"}
    last = {
        "id": "mtr_2",
        "event_name": "gpus",
        "default_aggregation": {"formula": "last"},
        "value_settings": {"event_payload_key": "gpus"},
    }
    metric, reason = stripe_import.map_meter(last, "gpus")
    assert metric["aggregation_type"] == "LATEST" and metric["aggregation_key"] == "gpus"


_PROVIDERS = [
    "providers.billable_metric",
    "providers.product",
    "providers.rate_card",
    "providers.customer",
    "providers.contract",
    "providers.stripe_integration",
]


@pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in _PROVIDERS),
    reason="not every provider module exists yet",
)
def test_program_declares_the_imported_stack(imported: dict) -> None:
    import pulumi

    from metronome_iac.program import declare

    stack = load_stack(imported["out"])
    seen: Counter = Counter()
    stripe_inputs: dict = {}

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            seen[args.typ.rsplit(":", 1)[-1]] += 1
            if args.typ.endswith("StripeIntegration"):
                stripe_inputs.update(args.inputs)
            return f"{args.name}_id", dict(args.inputs)

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
            return {}

    pulumi.runtime.set_mocks(Mocks(), project="metronome-iac", stack="imported", preview=False)

    @pulumi.runtime.test
    def run() -> pulumi.Output:
        out = declare(stack)
        return pulumi.Output.all(*[r.id for section in out.values() for r in section.values()])

    run()
    assert seen == {
        "BillableMetric": 2,
        "Product": 5,
        "RateCard": 1,
        "Alert": 3,
        "Customer": N_CUSTOMERS,
        "Contract": N_CUSTOMERS,
        "StripeIntegration": 1,
    }
    assert stripe_inputs["go_live"] is False and len(stripe_inputs["customers"]) == N_CUSTOMERS
    assert yaml.safe_load((imported["out"] / "environment.yaml").read_text())["stripe"]["go_live"] is False


def test_rates_starting_at_off_the_hour_is_taken_as_given() -> None:
    """Metronome's docs put no hour rule on rates, contract starts or access schedules (only product
    updates must be on the hour), so an off-hour start is taken as the API takes it (fidelity ledger)."""
    from metronome_iac.stripe_import import rates_start

    assert rates_start("2026-01-01T00:30:00Z") == "2026-01-01T00:30:00Z"
    assert rates_start("2026-01-01T01:30:15+01:00") == "2026-01-01T00:30:15Z"
    assert rates_start("2026-01-01") == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("yesterday", "is not a date or an RFC 3339 time"),
        ("2026-13-01", "is not a date or an RFC 3339 time"),
    ],
)
def test_bad_rates_starting_at_is_refused_before_reading_stripe(
    value: str, why: str, account: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    fake: FakeStripe = account["fake"]
    before = len(fake.requests)
    args = ["import-stripe", "--out", str(tmp_path / "s"), "--api-key", API_KEY, "--api-base", fake.api_base]
    with pytest.raises(SystemExit) as exited:
        main([*args, "--rates-starting-at", value])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "error: argument --rates-starting-at" in err and why in err and "Traceback" not in err, err
    assert len(fake.requests) == before  # refused before any Stripe call
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("2026-01-01", "2026-01-01T00:00:00Z"),
        ("2026-01-01T05:00:00+05:00", "2026-01-01T00:00:00Z"),
        ("2026-03-01T10:00:00", "2026-03-01T10:00:00Z"),
        ("2026-03-01t10:00:00z", "2026-03-01T10:00:00Z"),
    ],
)
def test_rates_start_normalises_to_utc(value: str, utc: str) -> None:
    assert stripe_import.rates_start(value) == utc


def test_plain_date_rates_starting_at_imports(account: dict, tmp_path: Path) -> None:
    """A plain date is midnight UTC (it used to fail comparing a naive time with an aware one)."""
    out = tmp_path / "s"
    args = ["import-stripe", "--out", str(out), "--api-key", API_KEY, "--api-base", account["fake"].api_base]
    assert main([*args, "--rates-starting-at", "2026-01-01"]) == 0
    catalog = yaml.safe_load((out / "catalog.yaml").read_text())
    assert {r["starting_at"] for c in catalog["rate_cards"] for r in c["rates"]} == {START}


@pytest.mark.parametrize("case", ["bad_key", "unreachable"])
def test_unreadable_stripe_is_one_error_line(
    case: str, account: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = f"http://127.0.0.1:{free_port()}" if case == "unreachable" else account["fake"].api_base
    key = "sk_test_not_a_key" if case == "bad_key" else API_KEY
    assert main(["import-stripe", "--out", str(tmp_path / "s"), "--api-key", key, "--api-base", base]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "warning" not in captured.out + captured.err
    assert base in lines[0]
    if case == "bad_key":
        assert "refused the key" in lines[0] and "--api-key" in lines[0]
    else:
        assert "cannot reach Stripe" in lines[0] and "--api-base" in lines[0] and "network" in lines[0]
    assert not (tmp_path / "s").exists()


def test_what_metronome_would_refuse_is_mended_or_left_out_not_the_whole_import(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A customer name over Metronome's 160 characters is shortened (and said); a credit grant that
    expires before the imported contracts start has nothing to move and is skipped with that reason."""
    fake = FakeStripe()
    try:
        meter = fake.add_meter("api_requests", formula="count")
        price = fake.add_price(fake.add_product("Requests")["id"], meter=meter["id"], unit_amount=2)
        long_name = "Very Long Company Name " * 8  # 184 characters
        customer = fake.create_customer(long_name)
        fake.add_subscription(customer, [price["id"]])
        start = datetime(datetime.now(timezone.utc).year + 1, 6, 1, tzinfo=timezone.utc)
        early = fake.add_credit_grant(customer, 500, expires_at=int(start.timestamp()) - 86400 * 30)
        kept = fake.add_credit_grant(customer, 700)
        out = tmp_path / "imported"
        args = ["import-stripe", "--out", str(out), "--api-key", API_KEY, "--api-base", fake.api_base]
        assert main([*args, "--rates-starting-at", start.strftime("%Y-%m-%dT%H:%M:%SZ")]) == 0
    finally:
        fake.stop()
    printed = capsys.readouterr()
    text = printed.out + printed.err
    stack = load_stack(out)
    (imported,) = stack.environment.customers
    assert len(imported.metronome_name) == 160 and long_name.startswith(imported.metronome_name)
    assert "160 characters" in text and customer in text
    assert early["id"] in text and "before the imported contracts start" in text, text
    (contract,) = stack.environment.contracts
    assert [c.access_schedule.schedule_items[0].amount for c in contract.credits or []] == [700], kept
