"""The parallel run end to end, through real HTTP on both sides: Stripe-format meter events are translated
(`metronome-iac events translate`), sent to the local Stripe (tests/fake_stripe.py) and to the emulator,
and `metronome-iac reconcile` compares the two. Then the same usage with faults injected on one side, each
of which reconcile must find and explain; and the StripeIntegration go-live condition, refused and then
allowed at preview through the program and the provider host (tests/mini_engine.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Emulator, start_emulator
from fake_stripe import ACCOUNT_ID, API_KEY, FakeStripe
from mini_engine import PROJECT, EngineError, EngineHost, MiniEngine
from provider_host import ProviderHost, secret

from metronome_iac.catalog import load_stack
from metronome_iac.cli import main

TODAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
DAYS = [TODAY - timedelta(days=n) for n in (3, 2, 1)]  # the three days compared
FROM, TO = f"{DAYS[0]:%Y-%m-%d}", f"{TODAY:%Y-%m-%d}"
CUSTOMERS = ("acme", "beta", "gamma", "delta")


@dataclass
class World:
    fake: FakeStripe
    emulator: Emulator
    stack_dir: Path
    stripe_ids: dict[str, str]  # customer name -> cus_...
    meters: dict[str, str]  # event name -> mtr_...
    engine: MiniEngine
    tmp: Path
    sent: int = 0

    def send(self, stripe_events: list[dict], *, metronome: Any = "same") -> None:
        """Send Stripe-format events to Stripe; their translation (`events translate --stack`) to Metronome.
        `metronome`: a function editing the translated events first (a faulty pipeline), or None (not
        sent to Metronome at all)."""
        client = self.fake.client()
        for event in stripe_events:
            client.v1.billing.meter_events.create(params=event)
        self.sent += 1
        source = self.tmp / f"stripe-{self.sent}.jsonl"
        source.write_text("".join(json.dumps(e) + "\n" for e in stripe_events))
        with (self.tmp / "all-stripe-events.jsonl").open("a") as log:  # what --events reads
            log.write(source.read_text())
        if metronome is None:
            return
        out = self.tmp / f"metronome-{self.sent}.jsonl"
        stacks = str(self.stack_dir.parent)
        args = ["events", "translate", "--stack", self.stack_dir.name, "--stacks-dir", stacks]
        assert main([*args, "--in", str(source), "--out", str(out)]) == 0
        translated = [json.loads(line) for line in out.read_text().splitlines()]
        if callable(metronome):
            translated = metronome(translated)
        self.emulator.client().v1.usage.ingest(usage=translated)

    def reconcile(self, *extra: str, monkeypatch: pytest.MonkeyPatch) -> int:
        monkeypatch.setenv("METRONOME_BEARER_TOKEN", self.emulator.token)
        return main(
            ["reconcile", "--stack", self.stack_dir.name, "--stacks-dir", str(self.stack_dir.parent),
             "--from", FROM, "--to", TO, "--base-url", self.emulator.base_url, "--project", PROJECT,
             "--api-key", API_KEY, "--api-base", self.fake.api_base, *extra]
        )  # fmt: skip

    def environment(self, **stripe: Any) -> None:
        path = self.stack_dir / "environment.yaml"
        env = yaml.safe_load(path.read_text())
        env["stripe"].update(stripe)
        path.write_text(yaml.safe_dump(env, sort_keys=False))


def tokens(customer: str, day: datetime, hour: int, value: int, tag: str) -> dict:
    return {
        "event_name": "input_tokens",
        "identifier": f"{tag}-{customer}-{day:%m%d}-{hour}",
        "timestamp": int((day + timedelta(hours=hour)).timestamp()),
        "payload": {"stripe_customer_id": customer, "tokens": str(value), "model": "large"},
    }


def translated(event: dict, alias: str) -> dict:
    """A Stripe meter event as `events translate` writes it for Metronome (the customer's ingest alias)."""
    properties = {k: v for k, v in event["payload"].items() if k != "stripe_customer_id"}
    timestamp = f"{datetime.fromtimestamp(event['timestamp'], tz=timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    return {"transaction_id": event["identifier"], "customer_id": alias, "event_type": event["event_name"],
            "timestamp": timestamp, "properties": properties}  # fmt: skip


def per_thousand(events: list[dict]) -> list[dict]:
    """A pipeline that applies the product's quantity conversion (DIVIDE 1000) to Metronome's events."""
    return [
        {**e, "properties": {**e["properties"], "tokens": e["properties"]["tokens"] / 1000}} for e in events
    ]


def request(customer: str, day: datetime, hour: int, tag: str) -> dict:
    return {
        "event_name": "api_request",
        "identifier": f"{tag}-req-{customer}-{day:%m%d}-{hour}",
        "timestamp": int((day + timedelta(hours=hour)).timestamp()),
        "payload": {"stripe_customer_id": customer},
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fake = FakeStripe()
    emulator = start_emulator()
    try:
        connect = {"billing_provider": "stripe", "connected": True}
        assert emulator.admin("POST", "billing-providers", json=connect).status_code == 200
        meters = {
            "input_tokens": fake.add_meter("input_tokens", value_key="tokens", dimensions=["model"])["id"],
            "api_request": fake.add_meter("api_request", formula="count")["id"],
        }
        stripe_ids = {name: fake.create_customer(name) for name in CUSTOMERS}
        tmp = tmp_path_factory.mktemp("parallel-run")
        stack_dir = tmp / "stacks" / "parallel"
        stack_dir.mkdir(parents=True)
        (stack_dir / "catalog.yaml").write_text(
            yaml.safe_dump(
                {
                    "billable_metrics": [
                        {
                            "name": "input_tokens",
                            "aggregation_type": "SUM",
                            "aggregation_key": "tokens",
                            "event_type_filter": {"in_values": ["input_tokens"]},
                            "property_filters": [
                                {"name": "tokens", "exists": True},
                                {"name": "model", "exists": True},
                            ],
                            "group_keys": [["model"]],
                            "stripe_meter": meters["input_tokens"],
                        },
                        {
                            "name": "api_requests",
                            "aggregation_type": "COUNT",
                            "event_type_filter": {"in_values": ["api_request"]},
                            "stripe_meter": meters["api_request"],
                        },
                    ],  # fmt: skip
                    "products": [
                        {
                            "name": "input_tokens_product",
                            "type": "USAGE",
                            "billable_metric": "input_tokens",
                            "quantity_conversion": {"conversion_factor": 1000, "operation": "DIVIDE"},
                        },
                    ],  # fmt: skip
                }
            )
        )
        (stack_dir / "environment.yaml").write_text(
            yaml.safe_dump(
                {
                    "stripe": {
                        "expected_account_id": ACCOUNT_ID,
                        "go_live": False,
                        "require_reconciled_days": 3,
                    },
                    "customers": [
                        {"name": n, "ingest_aliases": [f"{n}-prod"], "stripe_customer_id": stripe_ids[n]}
                        for n in CUSTOMERS
                    ],
                },
                sort_keys=False,
            )
        )
        config = {"stripe:apiKey": secret(API_KEY), "stripe:apiBase": fake.api_base}
        engine = MiniEngine(
            lambda: EngineHost(ProviderHost(emulator.base_url, emulator.token, project=PROJECT,
                                            stack=stack_dir.name, config=config)),
            PROJECT,
            stack_dir.name,
        )  # fmt: skip
        engine.up(load_stack(stack_dir))
        yield World(fake, emulator, stack_dir, stripe_ids, meters, engine, tmp)
    finally:
        emulator.stop()
        fake.stop()


def causes(report: dict) -> dict[tuple[str, str, str], str]:
    return {
        (w["customer"], w["metric"], w["window"]): w.get("cause", "")
        for w in report["windows"]
        if not w["ok"]
    }


def test_parallel_run(world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    ids = world.stripe_ids
    record = world.stack_dir / "reconcile.json"

    # Go-live condition, before any reconcile: refused, saying what to run.
    world.environment(go_live=True)
    with pytest.raises(EngineError, match="no reconcile of this stack is recorded") as refused:
        world.engine.plan(load_stack(world.stack_dir))
    assert f"metronome-iac reconcile --stack parallel --from {FROM} --to {TO}" in str(refused.value)

    # 1. Everything sent to both: reconcile finds every window equal (exit 0) and records it.
    clean = [
        tokens(ids[c], d, h, v, "a")
        for c in ("acme", "beta")
        for d in DAYS
        for h, v in ((9, 1200), (15, 800))
    ]
    clean += [request(ids[c], d, h, "a") for c in ("acme", "beta") for d in DAYS for h in (10, 11)]
    world.send(clean)
    assert world.reconcile(monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert "reconcile parallel: 24 day window(s)" in out and "all within tolerance 0.00%" in out
    assert json.loads(record.read_text())["passed"] is True

    # A new record alone is no change to the stack (the evidence gates the switch, it is not diffed) ...
    world.environment(go_live=False)
    assert {s.op for s in world.engine.plan(load_stack(world.stack_dir))} == {"same"}
    # ... and with it the go-live condition holds: the preview turns go_live on.
    world.environment(go_live=True)
    steps = [s for s in world.engine.plan(load_stack(world.stack_dir)) if s.op != "same"]
    assert [(s.op, s.kind) for s in steps] == [("update", "StripeIntegration")] and "go_live" in steps[
        0
    ].detail

    # 2. The same kind of usage with faults, one cause per customer, metric and day.
    d0, d1, d2 = DAYS
    dropped = [tokens(ids["acme"], d1, 17, 500, "b")]  # never sent to Metronome
    world.send(dropped, metronome=None)
    world.send([tokens(ids["acme"], d1, 18, 300, "b")])  # sent to both: the window still differs by 500
    world.send([tokens(ids["beta"], d1, 12, 700, "b")],
               metronome=lambda evs: [{**e, "event_type": "input_tokns"} for e in evs])  # fmt: skip
    world.send([request(ids["acme"], d2, 13, "b"), request(ids["acme"], d2, 14, "b")],
               metronome=lambda evs: [{**e, "customer_id": "acme-typo"} for e in evs])  # fmt: skip
    world.send([tokens(ids["gamma"], d0, 9, 40, "b")], metronome=None)  # gamma: Stripe only on d0 ...
    only_metronome = request(ids["gamma"], d2, 9, "b")  # ... and Metronome only on d2
    world.emulator.client().v1.usage.ingest(usage=[translated(only_metronome, "gamma-prod")])
    world.send([tokens(ids["delta"], d, 9, 250_000, "b") for d in (d0, d1)], metronome=per_thousand)

    assert (
        world.reconcile(
            "--json", "--events", str(world.tmp / "all-stripe-events.jsonl"), monkeypatch=monkeypatch
        )
        == 2
    )
    report = json.loads(capsys.readouterr().out)
    found = causes(report)
    day = {d: f"{d:%Y-%m-%d}" for d in DAYS}
    assert set(found) == {
        ("acme", "input_tokens", day[d1]),
        ("beta", "input_tokens", day[d1]),
        ("acme", "api_requests", day[d2]),
        ("gamma", "input_tokens", day[d0]),
        ("gamma", "api_requests", day[d2]),
        ("delta", "input_tokens", day[d0]),
        ("delta", "input_tokens", day[d1]),
    }, found
    assert (
        "1 of 4 sampled event(s) never reached Metronome (e.g. transaction_id b-"
        in found[("acme", "input_tokens", day[d1])]
    )
    assert "matched no metric: event type 'input_tokns'" in found[("beta", "input_tokens", day[d1])]
    assert (
        "2 of 4 sampled event(s) reached Metronome for ingest alias 'acme-typo', which no customer has"
        in found[("acme", "api_requests", day[d2])]
    )
    assert (
        "Metronome has no usage in this window (Stripe has 40)" in found[("gamma", "input_tokens", day[d0])]
    )
    assert "Stripe has no usage in this window (Metronome has 1)" in found[("gamma", "api_requests", day[d2])]
    assert "0.001 x Stripe's in every window" in found[("delta", "input_tokens", day[d0])]
    assert (
        "product 'input_tokens_product' declares quantity_conversion DIVIDE 1,000"
        in found[("delta", "input_tokens", day[d1])]
    )
    fixes = {(w["customer"], w["metric"]): w.get("fix", "") for w in report["windows"] if not w["ok"]}
    assert "add it to its ingest_aliases in" in fixes[("acme", "api_requests")]
    assert "POST /v1/ingest" in fixes[("acme", "input_tokens")]
    assert report["checked"] == 24 and report["failing_count"] == 7 and report["passed"] is False  # fmt: skip

    # Without --events what only Metronome's event search can tell is not guessed: a note says so.
    assert world.reconcile(monkeypatch=monkeypatch) == 2
    out = capsys.readouterr().out
    assert "7 outside tolerance" in out and "pass --events FILE" in out
    assert "Metronome has no usage in this window" in out  # the causes that need no sampling still show

    # The go-live condition now refuses, naming the last run and its failing windows.
    with pytest.raises(EngineError, match="the last reconcile") as refused:
        world.engine.plan(load_stack(world.stack_dir))
    message = str(refused.value)
    assert "failed, 7 window(s) outside 0.00%" in message, message
    assert f"acme input_tokens {day[d1]}: Stripe 2800, Metronome 2300;" in message, message
    assert f"gamma input_tokens {day[d0]}: Stripe 40, Metronome 0 (Metronome has no usage" in message, message
