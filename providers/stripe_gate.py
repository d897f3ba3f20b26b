"""The StripeIntegration's go-live gate: the changes refused once live, and the condition for going live
(the parallel run reconciled: `metronome-iac reconcile`).

Refused while live, because each would silently change who is invoiced how: turning `go_live` back off,
and changing `expected_account_id` (dropping a customer that still has an active configuration is
refused by the configurations' rules, `stripe_configurations.removal_refused`). Stopping is a deliberate,
manual archive (the refusal messages say how). Going live is refused, when `require_reconciled_days` is
set, until the last reconcile of the stack (its record, `ReconcileRecord`) passed over that many days.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .diff import UNKNOWN
from .stripe_configurations import ARCHIVE_PATH

GO_LIVE_OFF_REFUSED = (
    "go_live cannot be turned off once on: the customers' Stripe billing provider configurations would "
    "stay (or, if archived, invoices would silently stop reaching Stripe). To stop invoicing through Stripe, "
    "archive the configurations deliberately (/v1/archiveCustomerBillingProviderConfigurations, ids in the "
    "output billing_provider_configuration_ids), then remove this resource from the stack."
)


def account_change_refused(old: str, new: str) -> str:
    return (
        f"expected_account_id cannot change while go_live is true ({old} -> {new}): a different Stripe "
        "account means every customer's Stripe customer id and billing provider configuration changes. "
        "Do it as a planned migration: connect the new Stripe account in the Metronome dashboard; archive "
        f"the current configurations deliberately ({ARCHIVE_PATH}, ids in the output "
        "billing_provider_configuration_ids); remove this resource from the stack and `pulumi up`; then "
        "declare it again with the new expected_account_id, the customers' new stripe_customer_id values "
        "and go_live: false, and go live once the preview is clean"
    )


class ReconciledWindow(BaseModel):
    """A window the last reconcile found outside its tolerance (as its record lists them)."""

    model_config = ConfigDict(extra="ignore")
    customer: str
    metric: str
    window: str
    stripe: float
    metronome: float
    cause: str | None = None


class ReconcileRecord(BaseModel):
    """The stack's last `metronome-iac reconcile` (stacks/<stack>/reconcile.json, read by the program)."""

    model_config = ConfigDict(extra="ignore")
    ran_at: str
    starting_on: str
    ending_before: str
    window: str
    tolerance: float
    passed: bool
    checked: int  # windows compared
    failing_count: int = 0
    failing: list[ReconciledWindow] = Field(default_factory=list)  # the first few


# ---------------------------------------------------------------------------------------------
# Changes refused once live
# ---------------------------------------------------------------------------------------------


def gate_refusals(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, why) for changes refused once live; `old`/`new` are inputs in canonical shape."""
    if old.get("go_live") is not True:
        return []  # nothing has been set yet: everything may change
    refusals = []
    if new.get("go_live") is False:
        refusals.append(("go_live", GO_LIVE_OFF_REFUSED))
    old_account, new_account = old.get("expected_account_id"), new.get("expected_account_id")
    if old_account and new_account not in (None, UNKNOWN, old_account):
        refusals.append(("expected_account_id", account_change_refused(old_account, new_account)))
    return refusals


# ---------------------------------------------------------------------------------------------
# Go-live condition: the parallel run reconciled (metronome-iac reconcile)
# ---------------------------------------------------------------------------------------------

GO_LIVE_EVIDENCE = ("require_reconciled_days", "reconciliation")  # gate inputs, never diffed
RECONCILED_MAX_AGE = timedelta(days=2)  # a nightly reconcile ending at midnight is recent enough


def reconcile_refusal(
    days: int | None, record: ReconcileRecord | None, identity: str | None, now: datetime
) -> str | None:
    """Why going live is refused for want of a passed reconcile, or None (no condition, or it holds):
    `days` and `record` are the inputs `require_reconciled_days` and `reconciliation`."""
    if days is None:
        return None
    parts = (identity or "").split("/")
    stack = parts[1] if len(parts) == 3 else "STACK"
    today = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    command = (
        f"`metronome-iac reconcile --stack {stack} --from {(today - timedelta(days=days)):%Y-%m-%d} "
        f"--to {today:%Y-%m-%d}`"
    )
    lead = f"go_live is refused until the parallel run is reconciled (require_reconciled_days: {days})"
    fix = f"; to fix: run {command} until it passes and commit stacks/{stack}/reconcile.json, which it writes"
    if record is None:
        return f"{lead}: no reconcile of this stack is recorded (stacks/{stack}/reconcile.json){fix}"
    start, end = (
        datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (record.starting_on, record.ending_before)
    )
    last = (
        f"the last reconcile (ran {record.ran_at}, {record.starting_on} to {record.ending_before}, "
        f"{record.window} windows)"
    )
    if not record.passed:
        shown = "; ".join(
            f"{w.customer} {w.metric} {w.window}: Stripe {w.stripe:g}, Metronome {w.metronome:g}"
            + (f" ({w.cause})" if w.cause else "")
            for w in record.failing[:5]
        )
        more = record.failing_count - min(len(record.failing), 5)
        shown += f"; and {more} more" if more > 0 else ""
        why = f"{record.failing_count} window(s) outside {record.tolerance:.2%}: {shown}"
        return f"{lead}: {last} failed, {why}{fix}"
    if record.checked == 0:
        return f"{lead}: {last} compared no window{fix}"
    if end - start < timedelta(days=days):
        return f"{lead}: {last} covers {(end - start).days} day(s), fewer than {days}{fix}"
    if now - end > RECONCILED_MAX_AGE:
        return f"{lead}: {last} ended more than {RECONCILED_MAX_AGE.days} days ago{fix}"
    return None
