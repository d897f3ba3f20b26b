"""StripeIntegration: Stripe as the invoicing system of a Metronome account, with a go-live gate.

There is no Metronome object behind this resource. It checks the account-level Stripe connection (made
once in the dashboard; the API cannot make it), checks the Stripe key against `expected_account_id` and
the customers' Stripe ids against Stripe, and, only once `go_live` is true, sets each customer's Stripe
billing provider configuration. Its output `billing_provider_configuration_ids` ({customer_id: id}) is what
contracts reference.

This module is the resource, its schema and its provider. The rest is split along the domain:
`stripe_account.py` (the Stripe key, its account and the customers' Stripe ids; Metronome's connection to
Stripe), `stripe_gate.py` (the changes refused once live, and the go-live condition: the parallel run
reconciled), `stripe_configurations.py` (setting and archiving the customers' configurations, and what an
active contract's configuration forbids).

While live the resource owns each listed customer's Stripe configuration on the connected account; an
update never leaves a customer without one nor with two (`apply_live`). The Stripe secret key lives in
the provider host only, never in state, outputs or the pickled provider.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Literal

import metronome
import pulumi
from pulumi.dynamic import CheckFailure, ConfigureRequest, CreateResult, DiffResult, ReadResult, UpdateResult
from pydantic import BaseModel, ConfigDict, Field

from .base import COMPUTED_FIELDS, InputsBase, MetronomeProvider, declare_props
from .client import MetronomeError, get_client
from .diff import PROVIDER_KEY, UNKNOWN, compute_diff, contains_unknown
from .stripe_account import (
    CONNECT_HINT,
    NOT_VERIFIED,
    check_account,
    configure_stripe,
    missing_stripe_customers,
    stripe_checks_skipped,
    stripe_delivery_method,
)
from .stripe_configurations import (
    archive_replaced,
    blocked_replacements,
    desired_configurations,
    matching_configurations,
    removal_refused,
    replaced_configurations,
    replacement_refused,
    set_configurations,
    set_leave_in_draft,
    stripe_configurations,
)
from .stripe_gate import GO_LIVE_EVIDENCE, ReconcileRecord, gate_refusals, reconcile_refusal

KIND = "StripeIntegration"
OUTPUTS = (
    "billing_provider_configuration_ids",
    "go_live_pending",
    "delivery_method_id",
    "stripe_account_id",
    "extra_configuration_ids",  # read: other active Stripe configurations (set by hand) the next up archives
)


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------

CollectionMethod = Literal["charge_automatically", "send_invoice"]


class StripeCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1)
    stripe_customer_id: str = Field(pattern=r"^cus_[A-Za-z0-9]+$")
    collection_method: CollectionMethod | None = None


class Inputs(InputsBase):
    # No field replaces: there is no Metronome object to re-create, and a replacement would run
    # `delete`, which deliberately archives nothing. Changes that must not happen in place while live
    # are refused instead (`gate_refusals`, at check and again at diff/update).
    expected_account_id: str = Field(pattern=r"^acct_[A-Za-z0-9]+$")
    collection_method: CollectionMethod = "charge_automatically"
    go_live: bool = False
    customers: list[StripeCustomer] = Field(default_factory=list)
    # The go-live condition: turning go_live on is refused at check unless `reconciliation` (the last
    # reconcile's record) passed over at least this many whole days, ending at most RECONCILED_MAX_AGE
    # ago. Neither field is diffed: they gate the switch and change nothing in Metronome.
    require_reconciled_days: int | None = Field(default=None, ge=1)
    reconciliation: ReconcileRecord | None = None
    # Whether invoices Metronome sends to Stripe stay drafts there. Unset, Metronome leaves them in draft
    # (updateConfig docstring: "defaults to true if unset"): so it is set explicitly on each customer at
    # go-live, and shown in the plan.
    leave_invoices_in_draft: bool = False
    # The Stripe connection's delivery method (listConfiguredBillingProviders). Needed when several
    # Stripe accounts are connected and none can be told apart by expected_account_id: configurations
    # must then name it (set_billing_configurations docstring). The output `delivery_method_id` is the one
    # in use.
    stripe_delivery_method_id: str | None = None


HINTS = {
    "expected_account_id": "set it to the Stripe account id (acct_...) that the key must belong to",
    "stripe_customer_id": "use the Stripe customer id (cus_...)",
    "collection_method": "use charge_automatically or send_invoice",
    "customer_id": "pass the Metronome customer id (e.g. a Customer resource's id)",
    "stripe_delivery_method_id": "use a Stripe delivery_method_id from /v1/listConfiguredBillingProviders",
}

# ---------------------------------------------------------------------------------------------
# Diff rules
# ---------------------------------------------------------------------------------------------


def comparable(inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs as diffed: each customer with its effective collection method, so an override equal to
    the default and an omitted one compare equal (customer order and number types are handled by
    `compute_diff`'s normalisation)."""
    customers = inputs.get("customers")
    keys = ("customer_id", "stripe_customer_id")
    if not isinstance(customers, list) or not all(
        isinstance(c, dict) and all(k in c for k in keys) for c in customers
    ):
        return inputs  # a preview unknown or invalid inputs: compared as given
    return {**inputs, "customers": desired_configurations(inputs)}


# ---------------------------------------------------------------------------------------------
# Going live and staying live
# ---------------------------------------------------------------------------------------------


def apply_live(
    client: metronome.Metronome,
    wanted: list[dict[str, str]],
    delivery_method_id: str,
    label: str,
    sleep: Callable[[float], None] = time.sleep,
    going_live: bool = False,
) -> dict[str, str]:
    """Make each wanted configuration the customer's only active Stripe configuration; {customer_id: id}.

    Idempotent: everything is looked up first, so re-running after any failure converges.
    """
    live = stripe_configurations(client, [w["customer_id"] for w in wanted], delivery_method_id, label)
    # Checked at preview; checked again here, before anything is set (a contract may have been bound since).
    blocked = blocked_replacements(client, wanted, live, label)
    if blocked:
        raise MetronomeError(f"{label}: {replacement_refused(blocked, wanted, going_live)}")
    ids = set_configurations(
        client, wanted, delivery_method_id, label, sleep=sleep, found=matching_configurations(wanted, live)
    )
    replaced = {cid: [c["id"] for c in live[cid] if c["id"] != new_id] for cid, new_id in ids.items()}
    archive_replaced(client, ids, replaced, label)
    return ids


# ---------------------------------------------------------------------------------------------
# Provider
# ---------------------------------------------------------------------------------------------


class StripeIntegrationProvider(MetronomeProvider[Inputs]):
    kind = KIND
    entity = ""
    inputs_model = Inputs
    hints = HINTS

    def configure(self, req: ConfigureRequest) -> None:
        super().configure(req)
        configure_stripe(req)

    # check: schema (base), then the go-live gate, then the look-ups (Metronome, Stripe).
    def validate(self, inputs: Inputs, olds: dict[str, Any]) -> list[CheckFailure]:
        label = self.label(inputs.model_dump())
        failures: list[CheckFailure] = []
        if inputs.custom_fields or inputs.adopt:
            failures.append(
                CheckFailure(
                    "adopt" if inputs.adopt else "custom_fields",
                    "StripeIntegration takes neither "
                    "adopt nor custom_fields: there is no Metronome object behind it; to fix: remove it",
                )
            )
        known_ids = [c.customer_id for c in inputs.customers if c.customer_id != UNKNOWN]
        dupes = sorted({c for c in known_ids if known_ids.count(c) > 1})
        if dupes:
            failures.append(
                CheckFailure("customers", f"customers listed twice: {dupes}; to fix: list each once")
            )
        old = self.shape(olds) if olds else {}
        new = inputs.model_dump(mode="json", exclude_none=True)
        failures += [CheckFailure(field, why) for field, why in gate_refusals(old, new)]
        if inputs.go_live and old.get("go_live") is not True:
            unreconciled = reconcile_refusal(
                inputs.require_reconciled_days,
                inputs.reconciliation,
                inputs.identity,
                datetime.now(timezone.utc),
            )
            if unreconciled:
                failures.append(CheckFailure("go_live", unreconciled))
        if failures:
            return failures
        removed = self._removed_customers(old, inputs)
        if removed:
            try:
                still = stripe_configurations(get_client(), removed, None, label, missing_ok=True)
            except MetronomeError as err:
                return [CheckFailure("customers", str(err))]
            active = {cid: [c["id"] for c in configs] for cid, configs in still.items() if configs}
            if active:
                return [CheckFailure("customers", removal_refused(active))]
        refused = self._replacements_refused(old, new, label)
        if refused:
            return [CheckFailure("customers", refused)]
        if stripe_checks_skipped(inputs.go_live):
            print(f"{label}: {NOT_VERIFIED}", file=sys.stderr, flush=True)
            return failures
        try:
            check_account(inputs.expected_account_id, label)
            missing = missing_stripe_customers(
                [c.stripe_customer_id for c in inputs.customers if c.stripe_customer_id != UNKNOWN], label
            )
        except MetronomeError as err:
            return [CheckFailure("expected_account_id", str(err))]
        if missing:
            listed = ", ".join(f"{sid} ({why})" for sid, why in missing)
            failures.append(
                CheckFailure(
                    "customers",
                    f"{len(missing)} Stripe customer id(s) not found in Stripe account "
                    f"{inputs.expected_account_id}: {listed}; to fix: correct the stripe_customer_id of "
                    "those customers (or create them in Stripe)",
                )
            )
        return failures

    @staticmethod
    def _replacements_refused(old: dict[str, Any], new: dict[str, Any], label: str) -> str | None:
        """The refusal when an update while live would archive a configuration active contracts use.

        Looked up only for the customers whose wanted configuration is not the recorded one (a changed
        Stripe customer id or collection method, an added customer): a preview that changes nothing makes
        no calls. The preview that goes live looks up every customer (once: a configuration set by hand
        that contracts already use); `up` checks again in `apply_live` before anything is set.
        """
        if new.get("go_live") is not True:
            return None
        going_live = old.get("go_live") is not True
        recorded = {} if going_live else {w["customer_id"]: w for w in desired_configurations(old)}
        touched = [
            w
            for w in desired_configurations(new)
            if UNKNOWN not in w.values() and recorded.get(w["customer_id"]) != w
        ]
        if not touched:
            return None
        client = get_client()
        try:
            delivery_method_id = stripe_delivery_method(
                client, new["expected_account_id"], label, new.get("stripe_delivery_method_id")
            )
        except MetronomeError as err:
            if CONNECT_HINT in str(err):
                return None  # not connected: `up` fails with the dashboard step before setting anything
            return str(err)
        try:
            live = stripe_configurations(
                client, [w["customer_id"] for w in touched], delivery_method_id, label, missing_ok=True
            )
            blocked = blocked_replacements(client, touched, live, label)
        except MetronomeError as err:
            return str(err)
        return replacement_refused(blocked, touched, going_live) if blocked else None

    @classmethod
    def api_fields(cls) -> list[str]:
        return [f for f in super().api_fields() if f not in GO_LIVE_EVIDENCE]

    @staticmethod
    def _removed_customers(old: dict[str, Any], inputs: Inputs) -> list[str]:
        """Customers dropped from a live integration (none while a preview id is still unknown)."""
        if old.get("go_live") is not True or not inputs.go_live:
            return []
        new_ids = {c.customer_id for c in inputs.customers}
        if UNKNOWN in new_ids:
            return []
        old_ids = {c.get("customer_id") for c in old.get("customers") or [] if isinstance(c, dict)}
        return sorted(i for i in old_ids - new_ids if i and i != UNKNOWN)

    def diff_inputs(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old, new = self.diff_pair(olds, news)
        refused = gate_refusals(old, new)
        if refused:
            raise MetronomeError(f"{self.label(news)}: " + "; ".join(why for _, why in refused))
        result = compute_diff(comparable(old), comparable(new), self.api_fields(), self.replace_rules)
        if not result.changes and new.get("go_live") is True and not contains_unknown(new.get("customers")):
            # A configuration archived by hand (seen by refresh) is set again by an update, and a second
            # one set by hand is archived by it.
            have = olds.get("billing_provider_configuration_ids") or {}
            if olds.get("extra_configuration_ids") or any(
                c.get("customer_id") not in have for c in new.get("customers") or []
            ):
                return DiffResult(changes=True, replaces=[], stables=[], delete_before_replace=False)
        return result

    # create / read / update: no single Metronome object, so these are written out rather than hooked.
    def _apply(
        self, inputs: dict[str, Any], label: str, going_live: bool, olds: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        client = get_client()
        delivery_method_id = self._delivery_method(client, inputs, label)
        wanted = desired_configurations(inputs)
        outs = {**inputs, "delivery_method_id": delivery_method_id, **self._account(inputs, label)}
        if inputs.get("go_live"):
            outs["billing_provider_configuration_ids"] = apply_live(
                client, wanted, delivery_method_id, label, going_live=going_live
            )
            outs["go_live_pending"] = []
            # Going live, or the setting changed: every customer; otherwise the customers just added.
            before = olds or {}
            done = set((before.get("billing_provider_configuration_ids") or {}) if not going_live else ())
            if bool(before.get("leave_invoices_in_draft")) != bool(inputs.get("leave_invoices_in_draft")):
                done = set()
            todo = [w["customer_id"] for w in wanted if w["customer_id"] not in done]
            set_leave_in_draft(client, todo, bool(inputs.get("leave_invoices_in_draft")), label)
        else:
            outs["billing_provider_configuration_ids"] = {}
            outs["go_live_pending"] = [NOT_VERIFIED] if stripe_checks_skipped(False) else []
            outs["go_live_pending"] += [
                f"customer {w['customer_id']}: Stripe customer {w['stripe_customer_id']}, "
                f"{w['collection_method']}"
                for w in wanted
            ]
        return outs

    @staticmethod
    def _delivery_method(client: metronome.Metronome, inputs: dict[str, Any], label: str) -> str | None:
        """The Stripe connection in use. Before go-live nothing is set through it: one that cannot be told
        apart from another yet (several Stripe accounts, no setting) is left open (None) until then."""
        try:
            return stripe_delivery_method(
                client, inputs["expected_account_id"], label, inputs.get("stripe_delivery_method_id")
            )
        except MetronomeError as err:
            if inputs.get("go_live") or "several Stripe accounts" not in str(err):
                raise
            print(f"warning: {err}", file=sys.stderr, flush=True)
            return None

    @staticmethod
    def _account(inputs: dict[str, Any], label: str) -> dict[str, str]:
        """{"stripe_account_id": ...} once the key is checked; nothing while checks are skipped."""
        if stripe_checks_skipped(inputs.get("go_live")):
            return {}
        return {"stripe_account_id": check_account(inputs["expected_account_id"], label)}

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = self._inputs(props)
        outs = self._apply(inputs, self.label(inputs), going_live=True)
        return CreateResult(f"stripe-{inputs['expected_account_id']}", outs)

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = self._inputs(news)
        refused = gate_refusals(self._inputs(olds), inputs)  # checked at preview; never applied regardless
        if refused:
            raise MetronomeError(f"{self.label(inputs)}: " + "; ".join(why for _, why in refused))
        going_live = self._inputs(olds).get("go_live") is not True
        return UpdateResult(self._apply(inputs, self.label(inputs), going_live, olds))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        inputs = self._inputs(props)
        label = self.label(inputs)
        client = get_client()
        delivery_method_id = self._delivery_method(client, inputs, label)
        outs = {**inputs, "delivery_method_id": delivery_method_id, **self._account(inputs, label)}
        if inputs.get("go_live"):
            wanted = desired_configurations(inputs)
            live = stripe_configurations(
                client, [w["customer_id"] for w in wanted], delivery_method_id, label
            )
            kept = outs["billing_provider_configuration_ids"] = matching_configurations(wanted, live)
            outs["go_live_pending"] = []
            # More than one active Stripe configuration on a customer risks billing it twice: the next up
            # archives the others, as going live does (unless an active contract bills through one).
            extra = {
                cid: [c["id"] for c in configs]
                for cid, configs in replaced_configurations(wanted, live).items()
                if configs and cid in kept
            }
            if extra:
                outs["extra_configuration_ids"] = extra
        else:
            outs["billing_provider_configuration_ids"] = {}
            outs["go_live_pending"] = props.get("go_live_pending") or []
        return ReadResult(id_, outs)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        # Archiving the configurations would stop invoicing: leave them, and say so.
        ids = props.get("billing_provider_configuration_ids") or {}
        if ids:
            print(
                f"{self.label(props)}: removed from the stack; {len(ids)} Stripe billing provider "
                "configuration(s) stay active in Metronome (archive them deliberately to stop invoicing)",
                file=sys.stderr,
                flush=True,
            )

    def _inputs(self, props: dict[str, Any]) -> dict[str, Any]:
        raw = {
            k: v
            for k, v in props.items()
            if k != PROVIDER_KEY and k not in COMPUTED_FIELDS and k not in OUTPUTS
        }
        return self.shape(raw)


class StripeIntegration(pulumi.dynamic.Resource, module="metronome", name="StripeIntegration"):
    """Stripe as the invoicing system for Metronome customers, behind a go-live gate.

    While `go_live` is false nothing is set on any customer (`go_live_pending` lists what would be);
    turning it on sets each customer's Stripe configuration; turning it off again is refused.
    `billing_provider_configuration_ids` ({customer_id: configuration id}) is what contracts reference.
    `leave_invoices_in_draft` (default false: invoices auto-advance in Stripe) is set on every customer at
    go-live; `stripe_delivery_method_id` names the Stripe connection when several are connected.
    """

    billing_provider_configuration_ids: pulumi.Output[dict]
    go_live_pending: pulumi.Output[list]
    delivery_method_id: pulumi.Output[str]
    stripe_account_id: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        expected_account_id: pulumi.Input[str],
        collection_method: pulumi.Input[str] = "charge_automatically",
        go_live: pulumi.Input[bool] = False,
        customers: pulumi.Input[list] | None = None,
        require_reconciled_days: pulumi.Input[int] | None = None,
        reconciliation: pulumi.Input[dict] | None = None,
        leave_invoices_in_draft: pulumi.Input[bool] = False,
        stripe_delivery_method_id: pulumi.Input[str] | None = None,
    ) -> None:
        props = declare_props(
            resource_name,
            dict(
                expected_account_id=expected_account_id,
                collection_method=collection_method,
                go_live=go_live,
                customers=customers if customers is not None else [],
                require_reconciled_days=require_reconciled_days,
                reconciliation=reconciliation,
                leave_invoices_in_draft=leave_invoices_in_draft,
                stripe_delivery_method_id=stripe_delivery_method_id,
            ),
            computed=OUTPUTS,
        )
        super().__init__(StripeIntegrationProvider(), resource_name, props, opts)


__all__ = ["Inputs", "StripeIntegration", "StripeIntegrationProvider"]
