"""Contract: a Metronome contract binding a customer to a rate card (plus commits, credits, ...).

This module is the resource and its provider. The contract's terms are modules of their own: one-off terms
(commits, credits, overrides, discounts, scheduled charges) in `contract_terms.py`; subscriptions in
`contract_subscriptions.py`, read and planned with recurring commits and credits in
`contract_recurring.py`; threshold billing and the statement schedule in `contract_thresholds.py`; the
money rule over all of them in `contract_money.py`. Its billing provider configuration is in
`contract_billing.py`, how a change reaches Metronome on either kind of account (edit or amendment) in
`contract_changes.py`, and the reads of contracts others share in `contract_api.py`.

A contract made from a package (`package_id` or `package_alias`) takes its rate card and terms from the
package: `contract_package.py` says what it takes and what reads back.

Contracts have a `uniqueness_key`: creates send "iac:<identity>#<fingerprint>" and a 409 means the
contract already exists, so it is found by that key and taken over. Changes are computed against the
LIVE contract and go through /v2/contracts/edit (with a uniqueness key per edit) on accounts with
contract editing, or through /v1/contracts/amend and /v1/contracts/updateEndDate on the others (an
account has one or the other: the SDK's `contracts.amend` docstring). The kind is the setting
`metronome:contractEditing` (on | off), else learned from the first edit refused as not enabled.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import metronome
import pulumi
from pulumi.dynamic import CheckFailure, CreateResult, DiffResult

from . import contract_api
from .base import InputsBase, MetronomeProvider, Timestamp, declare_props
from .client import USD_CENTS_ID, MetronomeError, archive
from .config import get_settings
from .contract_billing import (
    BPC,
    BillingProviderConfiguration,
    archived_configuration_warning,
    configuration_change_refused,
    configuration_changes,
    has_ended,
)
from .contract_changes import apply_change, contract_editing, preview_refusals
from .contract_package import made_from_package, package_contract_inputs, package_failures
from .contract_recurring import RecurringCommit, RecurringCredit, to_recurring_terms
from .contract_recurring import problems as recurring_problems
from .contract_subscriptions import Subscription
from .contract_terms import (
    Commit,
    Credit,
    Discount,
    Override,
    ScheduledCharge,
    discounts_only_added,
    strip_ids,
    to_terms,
)
from .contract_thresholds import (
    PrepaidBalanceThresholdConfiguration,
    SpendThresholdConfiguration,
    UsageStatementSchedule,
    to_threshold_terms,
)
from .contract_thresholds import problems as threshold_problems
from .customer import list_raw as list_customers
from .diff import UNKNOWN, canonical_time, changed_fields, compute_diff, describe
from .identity import contract_uniqueness_key
from .keyed import Holder, create_with_key
from .schema import RequiresReplace, replacement_rules
from .schema import replacing_fields as replacing_by_rules

ENTITY = "contract"

# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


# A contract's customer, rate card and start date can never change (Metronome: start a new contract);
# replacing a contract archives the old one and voids its invoices, so check refuses it unless
# `allow_replacement: true`. Everything else (name, end date, payment terms, commits, credits, overrides,
# billing provider) is an edit.
FIXED_AT_START = RequiresReplace("Metronome cannot change a contract's customer, rate card or start")


class Inputs(InputsBase):
    customer_id: Annotated[str, FIXED_AT_START]
    rate_card_id: Annotated[str | None, FIXED_AT_START] = None
    starting_at: Annotated[Timestamp, FIXED_AT_START]
    # Made from a package (instead of a rate card and terms): by id or by alias (resolved at the start).
    # A replaced package keeps its contracts, so a new `package_id` (the package's next version) changes
    # nothing here; `package` (the catalog name or alias the contract was made from, never sent) and
    # `package_alias` name the package itself: changing them replaces the contract.
    package_id: str | None = None
    package_alias: Annotated[str | None, FIXED_AT_START] = None
    package: Annotated[str | None, FIXED_AT_START] = None
    ending_before: Timestamp | None = None
    name: str | None = None
    net_payment_terms_days: int | None = None
    commits: list[Commit] | None = None
    credits: list[Credit] | None = None
    overrides: list[Override] | None = None
    scheduled_charges: list[ScheduledCharge] | None = None
    subscriptions: list[Subscription] | None = None
    recurring_commits: list[RecurringCommit] | None = None
    recurring_credits: list[RecurringCredit] | None = None
    spend_threshold_configuration: SpendThresholdConfiguration | None = None
    prepaid_balance_threshold_configuration: PrepaidBalanceThresholdConfiguration | None = None
    # The /v2/contracts/edit has no key for it: set at creation only.
    usage_statement_schedule: Annotated[
        UsageStatementSchedule | None,
        RequiresReplace("Metronome sets a contract's usage statement schedule at creation only"),
    ] = None
    # Discounts can be added by an edit but not removed or changed.
    discounts: Annotated[
        list[Discount] | None,
        RequiresReplace(
            "discounts can be added by an edit, never changed or removed",
            unless=lambda old, new: discounts_only_added(old, new),
        ),
    ] = None
    billing_provider_configuration: BillingProviderConfiguration | None = None
    allow_replacement: bool = False
    # A change that drops a commit or credit and adds one in its place invoices (or grants) it again:
    # refused at preview unless this says it is meant.
    allow_reinvoice: bool = False


HINTS = {
    "customer_id": "reference the customer's id (customer_id=customer.id)",
    "rate_card_id": "reference the rate card's id (rate_card_id=card.id)",
    "starting_at": "use an RFC 3339 time such as 2026-01-01T00:00:00Z",
}

# ---------------------------------------------------------------------------------------------
# Diff rules
# ---------------------------------------------------------------------------------------------

REPLACEMENT_RULES = replacement_rules(Inputs)
ALWAYS_REPLACE = tuple(f for f, rule in REPLACEMENT_RULES.items() if rule.unless is None)
# Fields the uniqueness key's fingerprint covers: what identifies this contract.
IDENTITY_FIELDS = ("customer_id", "rate_card_id", "starting_at")


def certain_replacements(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Fields whose change replaces the contract, known for certain now.

    An id not known yet (preview) belongs to a resource this update creates or replaces: it never
    equals the recorded id, so the change is certain. Other values holding unknowns (discounts naming a
    new product) may turn out to be additions only: up checks them again with known values.
    """
    return [
        f
        for f in replacing_fields(old, new)
        if (f in ALWAYS_REPLACE and old.get(f) not in (None, UNKNOWN))
        or (new.get(f) != UNKNOWN and UNKNOWN not in str(new.get(f)))
    ]


def replacement_refused(field: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    to = "the id of a resource this update creates or replaces" if new.get(field) == UNKNOWN else None
    return (
        f"changing {field} (from {describe(old.get(field))} to {to or describe(new.get(field))}) "
        "replaces the contract: the old one is archived, its invoices voided; to fix: "
        "revert the change, or set allow_replacement: true if a new contract is wanted"
    )


def replacing_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return replacing_by_rules(REPLACEMENT_RULES, old, new, changed_fields(old, new, REPLACEMENT_RULES))


# ---------------------------------------------------------------------------------------------
# API calls
# ---------------------------------------------------------------------------------------------


def to_inputs(contract: dict[str, Any], desired: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ContractV2 in input shape (list items keep `_id`; strip with `strip_ids`).

    One made from a package reads back as such: customer, start, custom fields and the package as
    declared (a contract get does not say which alias or catalog entry it came through; a listing's
    `package_id`, where the answer carries one, is kept for export)."""
    out: dict[str, Any] = {
        "customer_id": contract.get("customer_id"),
        "starting_at": contract.get("starting_at"),
    }
    if made_from_package(desired or {}) or (desired is None and contract.get("package_id")):
        return {**out, **package_contract_inputs(contract, desired)}
    for field in ("rate_card_id", "ending_before", "name", "net_payment_terms_days"):
        if contract.get(field) is not None:
            out[field] = contract[field]
    if desired is not None and "net_payment_terms_days" not in desired:
        out.pop("net_payment_terms_days", None)  # Metronome fills a default in when none was declared
    out.update(to_terms(contract, desired))
    out.update(to_recurring_terms(contract, desired))
    out.update(to_threshold_terms(contract, desired))
    bpc = contract.get("customer_billing_provider_configuration")
    declared = (desired or {}).get("billing_provider_configuration") or {}
    if bpc:
        if "billing_provider_configuration_id" in declared or not declared:
            out["billing_provider_configuration"] = {"billing_provider_configuration_id": bpc.get("id")}
        else:
            out["billing_provider_configuration"] = {
                k: bpc.get(k) for k in ("billing_provider", "delivery_method") if bpc.get(k)
            }
    if contract.get("custom_fields"):
        out["custom_fields"] = dict(contract["custom_fields"])
    return out


def list_objects(client: metronome.Metronome, customer_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The customer's active contracts, input-shaped (uniqueness_key kept as an extra key)."""
    out = []
    label = f"Contract listing for {customer_id}"
    for c in contract_api.list_raw(client, customer_id, label):
        if c.get("archived_at"):
            continue
        c = contract_api.with_full_lists(client, c, label)
        shaped = strip_ids(to_inputs(c))
        if c.get("uniqueness_key"):
            shaped["uniqueness_key"] = c["uniqueness_key"]
        out.append((c["id"], shaped))
    return out


def read_object(
    client: metronome.Metronome,
    object_id: str,
    customer_id: str | None = None,
    desired: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The live contract in input shape; None if archived/missing. Contracts live under a customer:
    pass `customer_id` (or `desired` holding it), else the customers are scanned to find it."""
    customer_id = customer_id or (desired or {}).get("customer_id") or _owner_of(client, object_id)
    if not customer_id:
        return None
    obj = contract_api.get(client, customer_id, object_id, f"Contract {object_id}")
    return strip_ids(to_inputs(obj, desired)) if obj else None


def _owner_of(client: metronome.Metronome, contract_id: str) -> str | None:
    """The customer a contract belongs to (a scan over customers: only when no customer_id is known)."""
    for cust in list_customers(client):
        contracts = contract_api.list_raw(
            client, cust["id"], f"Contract {contract_id}", include_archived=True
        )
        if any(c["id"] == contract_id for c in contracts):
            return cust["id"]
    return None


def _create_body(inputs: dict[str, Any], key: str) -> dict[str, Any]:
    not_sent = {"package", "allow_replacement", "allow_reinvoice", "adopt", "identity"}
    body = {
        k: v for k, v in inputs.items() if k in Inputs.model_fields and k not in not_sent and v is not None
    }
    body = {k: _for_create(k, v) for k, v in body.items()}
    body["uniqueness_key"] = key
    return body


def _for_create(field: str, value: Any) -> Any:
    """An input as the create takes it: a recurring commit's invoice amount names its credit type
    (ContractCreateParams.RecurringCommitInvoiceAmount requires it; USD cents is the default left out)."""
    if field == "recurring_commits":
        return [
            {**c, "invoice_amount": {"credit_type_id": USD_CENTS_ID, **c["invoice_amount"]}}
            if c.get("invoice_amount")
            else c
            for c in value
        ]
    return value


class ContractProvider(MetronomeProvider[Inputs]):
    kind = "Contract"
    entity = ENTITY
    tagged = False  # found by its uniqueness key; `iac_identity` is set only after a rename
    inputs_model = Inputs
    natural_key = "uniqueness_key"
    hints = HINTS

    def validate(self, inputs: Inputs, olds: dict[str, Any]) -> list[CheckFailure]:
        failures = []
        start, end = inputs.starting_at, inputs.ending_before
        if end and UNKNOWN not in (start, end) and canonical_time(end) <= canonical_time(start):
            failures.append(
                CheckFailure(
                    "ending_before",
                    f"the contract ends ({end}) before it starts ({start}); "
                    "to fix: move ending_before after starting_at or remove it",
                )
            )
        for field in ("commits", "credits"):
            for i, grant in enumerate(getattr(inputs, field) or []):
                for j, item in enumerate(grant.access_schedule.schedule_items):
                    if canonical_time(item.ending_before) <= canonical_time(item.starting_at):
                        failures.append(
                            CheckFailure(
                                f"{field}[{i}].access_schedule.schedule_items[{j}].ending_before",
                                "ends before it starts; to fix: swap or correct the dates",
                            )
                        )
        dumped = inputs.model_dump(mode="json", exclude_none=True)
        for path, reason in recurring_problems(dumped) + threshold_problems(dumped):
            failures.append(CheckFailure(path, f"{reason.replace('; ', '; to fix: ', 1)}"))
        for i, override in enumerate(inputs.overrides or []):
            if override.override_specifiers and (override.product_id or override.applicable_product_tags):
                failures.append(
                    CheckFailure(
                        f"overrides[{i}].override_specifiers",
                        "cannot go with product_id or applicable_product_tags (SDK Override); to fix: move "
                        "the product into a specifier, or drop the specifiers",
                    )
                )
        failures += package_failures(dumped)
        # A change of billing provider configuration is refused by diff (at preview too), which knows the
        # contract: one whose configuration was archived outside the stack is not refused (see there).
        if olds and not inputs.allow_replacement:
            new = inputs.model_dump(mode="json", exclude_none=True)
            old = self.shape(olds)
            for field in certain_replacements(old, new):
                failures.append(CheckFailure(field, replacement_refused(field, old, new)))
        return failures

    @classmethod
    def api_fields(cls) -> list[str]:
        # A replaced package keeps its contracts: its next version's id is no change here (`package`
        # and `package_alias` name the package itself).
        return [f for f in super().api_fields() if f != "package_id"]

    def diff_pair(self, olds: dict[str, Any], news: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """As the base, but a billing provider configuration nothing can change is no difference (for
        diff and drift alike): none declared (Metronome cannot take one off a contract), or an ended
        contract's (it bills nothing more; it keeps the one it billed through)."""
        old, new = super().diff_pair(olds, news)
        if old.get(BPC) and (not new.get(BPC) or has_ended(new)):
            new = {**new, BPC: old[BPC]}
        return old, new

    def diff_inputs(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        old, new = self.diff_pair(olds, news)
        result = compute_diff(old, new, self.api_fields(), self.replace_rules)
        replaces = list(result.replaces or [])
        # Check compares with the recorded inputs; after a refresh the old side is the live contract,
        # so a hand edit (a discount added in the dashboard) can only show up here. Refused the same way.
        refused = [f for f in certain_replacements(old, new) if f in replaces]
        if refused and not new.get("allow_replacement"):
            raise MetronomeError(
                f"{self.label(news)}: "
                + "; ".join(replacement_refused(f, old, new) for f in refused)
                + ". If the live contract was changed outside this stack (a refresh brings such edits in; "
                "`metronome-iac drift` lists them), declare what it has now instead"
            )
        if not replaces and configuration_changes(old.get(BPC), new.get(BPC)):  # an edit could not do it
            if not self._bound_configuration_archived(_id, old, self.label(news)):
                raise MetronomeError(
                    f"{self.label(news)}: {configuration_change_refused(old.get(BPC), new.get(BPC))}"
                )
            # Archived outside the stack: nothing can bind this contract again, so nothing to refuse.
            new = {**new, BPC: old[BPC]}
            result = compute_diff(old, new, self.api_fields(), self.replace_rules)
        if result.changes and not replaces:
            refusal = preview_refusals(old, new, self._known_editing(), self.label(news))
            if refusal:
                raise MetronomeError(refusal)
        return DiffResult(changes=result.changes, replaces=replaces, stables=[], delete_before_replace=False)

    @staticmethod
    def _known_editing() -> bool | None:
        """The account kind as far as known without a call (setting, or learned in this host)."""
        from .client import get_client

        try:
            return contract_editing(get_client())
        except MetronomeError:  # no token configured: nothing learned either
            return get_settings().contract_editing

    @staticmethod
    def _bound_configuration_archived(contract_id: str, old: dict[str, Any], label: str) -> bool:
        """The live contract's billing provider configuration is archived (one look-up, made only when a
        configuration change would otherwise be refused); says what that means for invoicing."""
        from .client import get_client

        try:
            live = contract_api.get(get_client(), str(old.get("customer_id")), contract_id, label) or {}
        except MetronomeError:
            return False
        bound = live.get("customer_billing_provider_configuration") or {}
        if not bound.get("archived_at"):
            return False
        print(archived_configuration_warning(label, bound["id"]), file=sys.stderr, flush=True)
        return True

    def uniqueness_key(self, inputs: dict[str, Any]) -> str:
        identity = inputs.get("identity") or "unknown"
        return contract_uniqueness_key(identity, inputs, IDENTITY_FIELDS)

    def create_object(self, client: metronome.Metronome, inputs: dict[str, Any], label: str) -> str:
        customer_id = inputs["customer_id"]
        base_key = self.uniqueness_key(inputs)

        def holder_of(c: metronome.Metronome, key: str, _conflict: Any) -> Holder:
            # Archived, or live on other terms (the contract this one replaces: a discount change keeps
            # customer, rate card and start, so the key): held, never taken over.
            existing = contract_api.find_by_uniqueness_key(c, customer_id, key, label)
            if existing is None:
                return Holder(None, held=False)
            ours = not existing.get("archived_at") and self._same_terms(existing, inputs)
            return Holder(existing["id"] if ours else None, held=True)

        def still_ours(c: metronome.Metronome, object_id: str) -> bool:
            live = contract_api.get(c, customer_id, object_id, label)
            return live is not None and self._same_terms(live, inputs)

        return create_with_key(
            client,
            label=label,
            kind=ENTITY,
            path="/v1/contracts/create",
            body=_create_body(inputs, base_key),
            base_key=base_key,
            holder_of=holder_of,
            still_ours=still_ours,
            entity=ENTITY,
        )

    def _same_terms(self, live: dict[str, Any], inputs: dict[str, Any]) -> bool:
        """`live` has the terms a replacement would change (its discounts): an earlier attempt of this
        very create, not the contract being replaced."""
        have = strip_ids(to_inputs(live, self.shape(inputs)))
        return not replacing_fields(self.shape(have), self.shape(inputs))

    def computed_outputs(
        self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any]
    ) -> dict[str, Any]:
        return {"uniqueness_key": inputs.get("uniqueness_key") or self.uniqueness_key(inputs)}

    def tag_adopted(
        self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any], label: str
    ) -> None:
        pass  # contracts are identified by id/uniqueness key; nothing to tag

    def retag(self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any], label: str) -> None:
        # A renamed contract: its uniqueness key cannot change (it keeps the old name, and stays the
        # recorded `uniqueness_key` output), so the new identity is recorded in the state and on the
        # contract as `iac_identity`, which drift and export read before the key.
        from .exactly_once import IDENTITY_FIELD, set_custom_field_values

        tag = self.uniqueness_key(inputs)[len("iac:") :]
        set_custom_field_values(client, ENTITY, object_id, {IDENTITY_FIELD: tag}, label=label)

    def read_live(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        props = props or {}
        customer_id = props.get("customer_id")
        if not customer_id or customer_id == UNKNOWN:  # e.g. an import: find the owner (a scan)
            customer_id = _owner_of(client, object_id)
            if customer_id is None:
                return None
        obj = contract_api.get(client, customer_id, object_id, self.label(props))
        return strip_ids(to_inputs(obj, self.shape(props))) if obj else None

    def find_live(self, client: metronome.Metronome, key: str, value: str, label: str) -> str | None:
        raise NotImplementedError  # needs the customer: see _adopt_lookup

    def create(self, props: dict[str, Any]) -> CreateResult:
        adopt = props.get("adopt") or {}
        if adopt.get("uniqueness_key") and not adopt.get("id"):
            from .client import get_client

            found = contract_api.find_by_uniqueness_key(
                get_client(),
                props["customer_id"],
                adopt["uniqueness_key"],
                self.label(props),
                include_archived=False,
            )
            if found is None:
                raise MetronomeError(
                    f"{self.label(props)}: no live contract of customer {props['customer_id']} "
                    f"has uniqueness_key {adopt['uniqueness_key']!r}"
                )
            props = {**props, "adopt": {"id": found["id"]}}
            result = super().create(props)
            result.outs["adopt"] = adopt
            result.outs["uniqueness_key"] = found.get("uniqueness_key") or adopt["uniqueness_key"]
            return result
        return super().create(props)

    def update_object(
        self,
        client: metronome.Metronome,
        object_id: str,
        olds: dict[str, Any],
        news: dict[str, Any],
        changed: list[str],
        label: str,
    ) -> dict[str, Any]:
        if not changed:
            return {}
        live_obj = contract_api.get(client, news["customer_id"], object_id, label)
        if live_obj is None:
            raise MetronomeError(
                f"{label}: contract {object_id} is archived or missing; refresh and recreate it"
            )
        apply_change(client, object_id, live_obj, to_inputs(live_obj, news), news, changed, label)
        return {}

    def archive_object(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any], label: str
    ) -> None:
        # void_invoices=true: we only get here because the user removed the contract from the
        # program (or allowed its replacement); Metronome requires the choice to be explicit.
        archive(
            client,
            "/v1/contracts/archive",
            {"customer_id": props["customer_id"], "contract_id": object_id, "void_invoices": True},
            label=label,
        )


class Contract(pulumi.dynamic.Resource, module="metronome", name="Contract"):
    """A Metronome contract: a customer on a rate card with terms, or made from a package.

    Terms take the `Inputs` fields (metronome-sdk 4.12 names). Project additions: `uniqueness_key`
    (output) is "iac:<identity>#<fingerprint>", so a retried create never duplicates (a 409 takes the
    existing contract over). `adopt` ({"id": ...} or {"uniqueness_key": ...}) takes over a live contract
    of `customer_id`. `allow_replacement` (default false): changing customer_id, rate_card_id, the
    package, starting_at or the usage statement schedule (or removing a discount) replaces the contract,
    which archives the old one and voids its invoices; check refuses that unless allow_replacement is
    true. `allow_reinvoice` (default false): a change that would bill or grant a term again (a commit,
    credit or scheduled charge archived and added again; a subscription or recurring grant ended and
    added again over periods it billed) is refused unless true. Other changes go through
    /v2/contracts/edit with a uniqueness key per edit (or, on an account without contract editing,
    /v1/contracts/amend and updateEndDate, refusing what they cannot do). Deleting archives with
    void_invoices=true.
    """

    customer_id: pulumi.Output[str]
    starting_at: pulumi.Output[str]
    uniqueness_key: pulumi.Output[str]
    adopt_report: pulumi.Output[list]

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        customer_id: pulumi.Input[str],
        starting_at: pulumi.Input[str],
        adopt: pulumi.Input[dict] | None = None,
        **terms: Any,
    ) -> None:
        unknown = set(terms) - set(Inputs.model_fields)
        if unknown:
            raise TypeError(f"Contract {resource_name!r}: unknown arguments {sorted(unknown)}")
        every = dict.fromkeys(f for f in Inputs.model_fields if f != "identity")  # each an output
        props = declare_props(
            resource_name,
            {**every, "customer_id": customer_id, "starting_at": starting_at, "adopt": adopt, **terms},
            computed=("uniqueness_key",),
        )
        super().__init__(ContractProvider(), resource_name, props, opts)


__all__ = [
    "Contract",
    "ContractProvider",
    "Inputs",
    "list_objects",
    "read_object",
]
