"""The StripeIntegration go-live condition through the real provider host (Check over gRPC): going live
with `require_reconciled_days` needs the last reconcile's record to have passed over enough days, recently.
(tests/test_reconcile.py drives it end to end through the program and a real reconcile.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import Emulator
from provider_host import ProviderHost

from providers.stripe_integration import StripeIntegrationProvider

NOW = datetime.now(timezone.utc)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)


def record(days: int = 7, ended: datetime = TODAY, **fields: Any) -> dict[str, Any]:
    return {
        "ran_at": f"{NOW:%Y-%m-%dT%H:%M:%SZ}",
        "starting_on": f"{ended - timedelta(days=days):%Y-%m-%dT%H:%M:%SZ}",
        "ending_before": f"{ended:%Y-%m-%dT%H:%M:%SZ}",
        "window": "day",
        "tolerance": 0.005,
        "passed": True,
        "checked": 14,
        **fields,
    }


def inputs(reconciliation: dict[str, Any] | None, go_live: bool = True) -> dict[str, Any]:
    return {
        "identity": "metronome-iac/prod/stripe",
        "expected_account_id": "acct_1Gate",
        "go_live": go_live,
        "customers": [{"customer_id": "c-1", "stripe_customer_id": "cus_Gate1"}],
        "require_reconciled_days": 7,
        "reconciliation": reconciliation,
    }


@pytest.fixture(scope="module")
def host(emulator: Emulator) -> Iterator[ProviderHost]:
    # No Stripe key: a refusal needs no call at all; past the gate the Stripe checks fail on their own field.
    with ProviderHost(emulator.base_url, emulator.token, stack="prod") as h:
        yield h


def go_live_failure(
    host: ProviderHost, news: dict[str, Any], olds: dict[str, Any] | None = None
) -> str | None:
    _, failures = host.check(StripeIntegrationProvider, olds or {}, news, name="stripe")
    return next((why for field, why in failures if field == "go_live"), None)


@pytest.mark.parametrize(
    ("evidence", "words"),
    [
        (None, "no reconcile of this stack is recorded (stacks/prod/reconcile.json)"),
        (record(days=3), "covers 3 day(s), fewer than 7"),
        (record(ended=TODAY - timedelta(days=5)), "ended more than 2 days ago"),
        (record(checked=0), "compared no window"),
        (
            record(passed=False, failing_count=9, failing=[
                {"customer": "acme", "metric": "input_tokens", "window": "2026-01-03", "stripe": 1200,
                 "metronome": 0, "cause": "Metronome has no usage in this window"}]),
            "failed, 9 window(s) outside 0.50%: acme input_tokens 2026-01-03: Stripe 1200, Metronome 0 "
            "(Metronome has no usage in this window); and 8 more",
        ),
    ],
)  # fmt: skip
def test_going_live_is_refused_without_a_passed_recent_reconcile(
    host: ProviderHost, evidence: dict[str, Any] | None, words: str
) -> None:
    why = go_live_failure(host, inputs(evidence))
    assert why is not None and words in why, why
    start = f"{TODAY - timedelta(days=7):%Y-%m-%d}"
    assert f"to fix: run `metronome-iac reconcile --stack prod --from {start} --to {TODAY:%Y-%m-%d}`" in why


def test_a_passed_reconcile_lets_go_live_through_the_gate(host: ProviderHost) -> None:
    # The checks after the gate need Stripe (no key here: they fail on expected_account_id); the gate passes.
    assert go_live_failure(host, inputs(record())) is None
    assert go_live_failure(host, inputs(record(days=30, ended=TODAY - timedelta(days=1)))) is None


def test_the_condition_only_gates_the_switch(host: ProviderHost) -> None:
    """Before go-live nothing is refused; once live a stale or failed record refuses nothing."""
    assert go_live_failure(host, inputs(None, go_live=False)) is None
    live = inputs(record(passed=False, failing_count=1))
    assert go_live_failure(host, live, olds=live) is None
