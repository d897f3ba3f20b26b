"""Package: a Metronome package, a template of a rate card and contract terms relative to each contract's
start, for self-serve sign-ups (`/v1/packages/create|get|list|archive`, `listContractsOnPackage`).

Packages cannot be edited (the create docstring: "Packages cannot be edited once created"), so every
field replaces the package: the new one is created first, then the old one archived. Existing contracts
keep the package they were made from and its terms ("existing contracts associated with the package will
continue to function as normal"); the preview of a replacement names them. An alias names the package it
was most recently assigned to: the new package, created with the same alias, takes it over at its
`starting_at` (now if none), so contracts provisioned by alias from then on get the new terms. The whole
story, step by step, is in docs/architecture.md ("Packages, alerts and notifications").
"""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal

import metronome
import pulumi
from pulumi.dynamic import CheckFailure, DiffResult

from . import package_terms as terms
from .base import InputsBase, declare_props
from .client import MetronomeError, get_client, get_live, paginate
from .diff import UNKNOWN, instant, project
from .keyed import Holder, KeyedProvider
from .schema import RequiresReplace

# Metronome reads package keys back with this prefix (metronome-behaviour notes): compare without it.
KEY_PREFIX = "package:"
CANNOT_EDIT = RequiresReplace("Metronome cannot edit a package: a new package replaces it")

# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


class Inputs(InputsBase):
    name: Annotated[str, CANNOT_EDIT]
    contract_name: Annotated[str | None, CANNOT_EDIT] = None  # the name of contracts made from it
    rate_card_id: Annotated[str | None, CANNOT_EDIT] = None
    aliases: Annotated[list[terms.Alias] | None, CANNOT_EDIT] = None
    duration: Annotated[terms.Offset | None, CANNOT_EDIT] = None  # none: contracts without an end
    billing_provider: Annotated[
        Literal["aws_marketplace", "azure_marketplace", "gcp_marketplace", "stripe", "netsuite"] | None,
        CANNOT_EDIT,
    ] = None
    delivery_method: Annotated[
        Literal["direct_to_billing_provider", "aws_sqs", "tackle", "aws_sns"] | None, CANNOT_EDIT
    ] = None
    net_payment_terms_days: Annotated[float | None, CANNOT_EDIT] = None
    usage_statement_schedule: Annotated[terms.UsageStatementSchedule | None, CANNOT_EDIT] = None
    multiplier_override_prioritization: Annotated[
        Literal["LOWEST_MULTIPLIER", "EXPLICIT"] | None, CANNOT_EDIT
    ] = None
    scheduled_charges_on_usage_invoices: Annotated[Literal["ALL"] | None, CANNOT_EDIT] = None
    commits: Annotated[list[terms.Commit] | None, CANNOT_EDIT] = None
    credits: Annotated[list[terms.Credit] | None, CANNOT_EDIT] = None
    recurring_commits: Annotated[list[terms.RecurringCommit] | None, CANNOT_EDIT] = None
    recurring_credits: Annotated[list[terms.RecurringCredit] | None, CANNOT_EDIT] = None
    subscriptions: Annotated[list[terms.Subscription] | None, CANNOT_EDIT] = None
    scheduled_charges: Annotated[list[terms.ScheduledCharge] | None, CANNOT_EDIT] = None
    overrides: Annotated[list[terms.Override] | None, CANNOT_EDIT] = None
    # Payment-gated threshold billing and auto-recharge (shared_params/*_threshold_configuration.py).
    spend_threshold_configuration: Annotated[dict[str, Any] | None, CANNOT_EDIT] = None
    prepaid_balance_threshold_configuration: Annotated[dict[str, Any] | None, CANNOT_EDIT] = None
    spend_trackers: Annotated[list[dict[str, Any]] | None, CANNOT_EDIT] = None


HINTS = {
    "name": "name the package (shown in Metronome)",
    "rate_card_id": "reference the rate card's id (rate_card_id=card.id)",
    "unit": "use DAYS, WEEKS, MONTHS or YEARS",
    "product_id": "reference the product's id (product_id=product.id)",
}
DEFAULT_STATEMENTS = {"frequency": "MONTHLY"}  # what Metronome fills in when none is given

# ---------------------------------------------------------------------------------------------
# API calls
# ---------------------------------------------------------------------------------------------

_SCALARS = (
    "name",
    "contract_name",
    "rate_card_id",
    "billing_provider",
    "delivery_method",
    "duration",
    "net_payment_terms_days",
    "multiplier_override_prioritization",
    "scheduled_charges_on_usage_invoices",
    "spend_threshold_configuration",
    "prepaid_balance_threshold_configuration",
    "spend_trackers",
    "usage_statement_schedule",
)


def normal_key(key: str | None) -> str | None:
    return key[len(KEY_PREFIX) :] if key and key.startswith(KEY_PREFIX) else key


def to_inputs(obj: dict[str, Any], declared: dict[str, Any] | None = None) -> dict[str, Any]:
    """A package read-back in input shape (with its `uniqueness_key`, prefix removed)."""
    out = {k: obj[k] for k in _SCALARS if obj.get(k) not in (None, [])}
    if out.get("usage_statement_schedule") == DEFAULT_STATEMENTS and not (declared or {}).get(
        "usage_statement_schedule"
    ):
        del out["usage_statement_schedule"]
    if obj.get("aliases"):
        out["aliases"] = [{k: v for k, v in a.items() if v is not None} for a in obj["aliases"]]
    out.update(terms.terms_to_inputs(obj, declared))
    if obj.get("uniqueness_key"):
        out["uniqueness_key"] = normal_key(obj["uniqueness_key"])
    return out


def _get(client: metronome.Metronome, object_id: str, label: str) -> dict[str, Any] | None:
    return get_live(client, "POST", "/v1/packages/get", label=label, body={"package_id": object_id})


def _list_raw(client: metronome.Metronome, archive_filter: str = "NOT_ARCHIVED") -> list[dict[str, Any]]:
    return list(
        paginate(
            client,
            "POST",
            "/v1/packages/list",
            label="Package listing",
            body={"archive_filter": archive_filter},
        )
    )


def contracts_on(client: metronome.Metronome, package_id: str, label: str) -> list[dict[str, Any]]:
    """The live contracts made from the package."""
    return list(
        paginate(
            client,
            "POST",
            "/v1/packages/listContractsOnPackage",
            label=label,
            body={"package_id": package_id},
        )
    )


class PackageProvider(KeyedProvider[Inputs]):
    kind = "Package"
    inputs_model = Inputs
    natural_key = "name"
    hints = HINTS
    get_raw = staticmethod(_get)
    list_raw = staticmethod(_list_raw)
    to_inputs = staticmethod(to_inputs)
    create_path = "/v1/packages/create"
    create_fields = tuple(f for f in Inputs.model_fields if f not in InputsBase.model_fields)
    archive_path = "/v1/packages/archive"
    archive_id_field = "package_id"

    def validate(self, inputs: Inputs, olds: dict[str, Any]) -> list[CheckFailure]:
        failures = super().validate(inputs, olds)
        dumped = inputs.model_dump(mode="json", exclude_none=True)
        for path, ref, fix in terms.dangling_references(dumped):
            if ref != UNKNOWN:
                failures.append(CheckFailure(path, f"{ref!r} names no item of this package; to fix: {fix}"))
        for i, commit in enumerate(inputs.commits or []):
            if commit.type == "POSTPAID" and commit.invoice_schedule is None:
                failures.append(
                    CheckFailure(
                        f"commits[{i}].invoice_schedule",
                        "a POSTPAID commit needs an invoice_schedule (its true-up); to fix: add one",
                    )
                )
        for i, sub in enumerate(inputs.subscriptions or []):
            mode = sub.quantity_management_mode or "QUANTITY_ONLY"
            if mode == "QUANTITY_ONLY" and sub.initial_quantity is None:
                failures.append(
                    CheckFailure(
                        f"subscriptions[{i}].initial_quantity",
                        "a QUANTITY_ONLY subscription needs initial_quantity; to fix: set it (e.g. 1)",
                    )
                )
        if (inputs.billing_provider is None) != (inputs.delivery_method is None):
            failures.append(
                CheckFailure(
                    "delivery_method",
                    "billing_provider and delivery_method go together; to fix: set both "
                    "(e.g. stripe, direct_to_billing_provider) or neither",
                )
            )
        return failures

    def holder_of(
        self,
        client: metronome.Metronome,
        key: str,
        conflict: metronome.ConflictError | None,
        inputs: dict[str, Any],
        label: str,
    ) -> Holder:
        for obj in _list_raw(client, "ALL"):  # archived packages keep their keys
            if normal_key(obj.get("uniqueness_key")) == key:
                return Holder(None if obj.get("archived_at") else obj["id"], held=True)
        return Holder(None, held=False)

    def read_live(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        obj = _get(client, object_id, self.label(props or {}))
        if obj is None:
            return None
        declared = self.shape(props) if props else None
        live = to_inputs(obj, declared)
        # Nested items as declared: what Metronome fills in (defaults, names) is not a difference.
        for field in terms.ITEM_LISTS:
            if declared and declared.get(field) and live.get(field):
                live[field] = project(live[field], declared[field])
        return live

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        result = super().diff(_id, olds, news)
        if result.replaces:  # the engine's plan (drift compares through diff_inputs, without this)
            self.warn_replacement(_id, olds, news)
        return result

    def warn_replacement(self, package_id: str, olds: dict[str, Any], news: dict[str, Any]) -> None:
        """What a replacement means for contracts: said in the plan, before anything changes."""
        label = self.label(news)
        try:
            contracts = contracts_on(get_client(), package_id, label)
        except MetronomeError as err:
            contracts = []
            print(
                f"warning: {label}: cannot list the contracts on package {package_id}: {err}", file=sys.stderr
            )
        if contracts:
            listed = ", ".join(f"{c['contract_id']} (customer {c['customer_id']})" for c in contracts)
            print(
                f"warning: {label}: replacing package {package_id}: {len(contracts)} contract(s) made "
                f"from it keep its terms and stay on it: {listed}; only contracts provisioned from now on "
                "get the new package",
                file=sys.stderr,
                flush=True,
            )
        for alias in news.get("aliases") or []:
            start = alias.get("starting_at")
            if isinstance(start, str) and start != UNKNOWN and instant(start) > instant(_now()):
                print(
                    f"warning: {label}: alias {alias['name']!r} moves to the new package only at {start}; "
                    "until then it names the old package, which this replacement archives, so contracts "
                    "provisioned through the alias before that date are refused (docs/architecture.md, "
                    "Packages)",
                    file=sys.stderr,
                    flush=True,
                )


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


list_objects = PackageProvider.list_objects  # (client): all live packages, input-shaped
read_object = PackageProvider.read_object  # (client, id): None if archived or missing


class Package(pulumi.dynamic.Resource, module="metronome", name="Package"):
    """A Metronome package: a rate card and contract terms relative to each contract's start.

    Every change replaces the package (created first, then the old one archived); contracts already made
    from it keep it. An alias moves to the replacement, so new contracts provisioned through it get the
    new terms. `uniqueness_key` (computed) makes a retried create find the package it made.
    """

    name: pulumi.Output[str]
    aliases: pulumi.Output[list]
    uniqueness_key: pulumi.Output[str]
    adopt_report: pulumi.Output[list]

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        name: pulumi.Input[str],
        adopt: pulumi.Input[dict] | None = None,
        **terms_inputs: Any,
    ) -> None:
        unknown = set(terms_inputs) - set(PackageProvider.create_fields)
        if unknown:
            raise TypeError(f"Package {resource_name!r}: unknown arguments {sorted(unknown)}")
        props = declare_props(
            resource_name, {"name": name, "adopt": adopt, **terms_inputs}, computed=("uniqueness_key",)
        )
        super().__init__(PackageProvider(), resource_name, props, opts)


__all__ = ["Inputs", "Package", "PackageProvider", "contracts_on", "list_objects", "read_object"]
