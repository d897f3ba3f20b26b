"""A contract's billing provider configuration: which customer configuration it invoices through.

A billing provider configuration can be added to a contract that has none (going live), never changed
to another one: Metronome only adds one to a contract without one, and none can be provisioned once the
contract's configuration is archived. Such a change is refused at check and diff (and, against the live
contract, before any edit is sent); on a contract that has ended it is ignored (it bills nothing more).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict

from .client import MetronomeError
from .diff import contains_unknown, describe, instant, normalize


class BillingProviderConfiguration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    billing_provider_configuration_id: str | None = None
    billing_provider: str | None = None
    delivery_method: str | None = None


BPC = "billing_provider_configuration"
BPC_ID = "billing_provider_configuration_id"


def configuration_changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool | None:
    """Whether `new` names another billing provider configuration than `old` (both as declared).

    False when either is absent (none -> one is going live, an edit; one -> none changes nothing in
    Metronome); None when it cannot be told yet: a preview unknown, or one named by id and the other by
    provider and delivery method (decided against the live contract before the edit is sent).
    """
    if not old or not new:
        return False
    if contains_unknown(old) or contains_unknown(new):
        return None
    if old.get(BPC_ID) and new.get(BPC_ID):
        return old[BPC_ID] != new[BPC_ID]
    if old.get(BPC_ID) or new.get(BPC_ID):
        return None
    return normalize(old) != normalize(new)


def has_ended(inputs: dict[str, Any]) -> bool:
    """The contract's (declared) end is in the past: it bills nothing more."""
    end = inputs.get("ending_before")
    if not end or contains_unknown(end):
        return False
    return instant(end) <= datetime.now(timezone.utc)


def archived_configuration_warning(label: str, config_id: str) -> str:
    return (
        f"warning: {label}: its billing provider configuration {config_id} was archived outside this stack: "
        "the contract no longer invoices through it, and Metronome cannot give it another. End it "
        "(ending_before) and start a new contract on the customer's current configuration"
    )


def configuration_change_refused(old: Any, new: Any) -> str:
    return (
        f"billing_provider_configuration cannot change from {describe(old)} to {describe(new)}: this "
        "contract already has a billing provider configuration, and Metronome only adds one to a contract "
        "that has none (nor can a new one be provisioned once the contract's configuration is archived), so "
        "the edit would fail and the contract would keep invoicing through the old one (or, if that one is "
        "archived, through none). To bill it through the new configuration: end this contract (set "
        "ending_before) and start a new one on the new configuration (e.g. a renewal starting where this one "
        "ends); or make the change in the Metronome dashboard with Metronome's help. To fix: keep "
        f"billing_provider_configuration at {describe(old)} (in a stack it follows the customer's Stripe "
        "configuration: keep the customer's stripe_customer_id and collection method until this contract "
        "has ended)"
    )


def is_bound(bound: dict[str, Any], want: dict[str, Any]) -> bool:
    """`want` (as declared) names the configuration the live contract has (`bound`)."""
    if want.get(BPC_ID):
        return bound.get("id") == want[BPC_ID]
    return all(bound.get(k) == want[k] for k in ("billing_provider", "delivery_method") if want.get(k))


def billing_change(
    live_obj: dict[str, Any], live: dict[str, Any], news: dict[str, Any], changed: list[str], label: str
) -> dict[str, Any]:
    """The edit key that binds the declared billing provider configuration (going live: none -> one);
    a change to another one is refused here, against the live contract, before anything is sent."""
    bound = live_obj.get("customer_billing_provider_configuration")
    if BPC not in changed or not news.get(BPC):
        return {}
    if not bound:
        return {
            "add_billing_provider_configuration_update": {
                "billing_provider_configuration": news[BPC],
                "schedule": {"effective_at": "START_OF_CURRENT_PERIOD"},
            }
        }
    if bound.get("archived_at"):
        print(archived_configuration_warning(label, bound["id"]), file=sys.stderr, flush=True)
    elif not is_bound(bound, news[BPC]) and not has_ended(news):
        live_bpc = live.get(BPC) or {BPC_ID: bound.get("id")}
        raise MetronomeError(f"{label}: {configuration_change_refused(live_bpc, news[BPC])}")
    return {}
