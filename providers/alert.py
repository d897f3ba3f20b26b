"""Alert: a Metronome threshold notification (v1 alert) for one customer or for every customer.

Alerts cannot be edited (there is no update endpoint): every field replaces the alert, created before the
old one is archived. `evaluate_on_create` only says whether Metronome evaluates the new alert at once, so
changing it changes nothing live. There is no get or list either: an alert is read through a customer
(`/v1/customer-alerts/get`), its own for a per-customer alert, any live customer for an account-wide one
(an account with no customer cannot show it: read keeps the recorded values). The read-back omits
`customer_id`, `billable_metric_id`, `plan_id` and `evaluate_on_create`, which are kept as recorded.
Delete archives with `release_uniqueness_key`, so declaring the same alert again later can reuse its key.
"""

from __future__ import annotations

import re
import threading
from typing import Annotated, Any, Literal

import metronome
import pulumi
from pulumi.dynamic import CheckFailure, CreateResult
from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from .base import InputsBase, declare_props
from .client import USD_CENTS_ID, MetronomeError, archive, client_key, data_of, get_client, paginate, request
from .keyed import Holder, KeyedProvider
from .schema import RequiresReplace

# The alert types metronome-sdk lists (`alert_type: Required[Literal[...]]` in
# metronome/types/v1/alert_create_params.py; tests/test_provider_alert.py holds them equal). Written out:
# importing that module imports all of `metronome.types.v1` (90 ms), which the host would pay at the first
# alert's check, while the engine waits for it.
ALERT_TYPES: tuple[str, ...] = (
    "low_credit_balance_reached",
    "spend_threshold_reached",
    "monthly_invoice_total_spend_threshold_reached",
    "low_remaining_days_in_plan_reached",
    "low_remaining_credit_percentage_reached",
    "usage_threshold_reached",
    "low_remaining_days_for_commit_segment_reached",
    "low_remaining_commit_balance_reached",
    "low_remaining_commit_percentage_reached",
    "low_remaining_days_for_contract_credit_segment_reached",
    "low_remaining_contract_credit_balance_reached",
    "low_remaining_contract_credit_percentage_reached",
    "low_remaining_contract_credit_and_commit_balance_reached",
    "low_remaining_contract_credit_and_commit_percentage_reached",
    "invoice_total_reached",
    "low_remaining_seat_balance_reached",
)
CONTRACT_ENTITIES = Literal["Contract", "Commit", "ContractCredit", "ContractCreditOrCommit"]
# Filters only some types take (the create docstring of each field).
TAKEN_ONLY_BY: dict[str, tuple[str, ...]] = {
    "access_type": (
        "low_remaining_commit_balance_reached",
        "low_remaining_commit_percentage_reached",
        "low_remaining_contract_credit_and_commit_balance_reached",
        "low_remaining_contract_credit_and_commit_percentage_reached",
        "low_remaining_contract_credit_balance_reached",
        "low_remaining_contract_credit_percentage_reached",
        "low_remaining_seat_balance_reached",
    ),
    "alert_specifiers": (
        "low_remaining_contract_credit_and_commit_balance_reached",
        "low_remaining_contract_credit_and_commit_percentage_reached",
    ),
    "billable_metric_id": ("usage_threshold_reached",),
    "group_values": ("spend_threshold_reached",),
    "invoice_types_filter": ("invoice_total_reached",),
    "seat_filter": ("low_remaining_seat_balance_reached",),
    "credit_grant_type_filters": ("low_credit_balance_reached", "low_remaining_credit_percentage_reached"),
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
REQUIRED_BY: dict[str, str] = {
    "usage_threshold_reached": "billable_metric_id",
    "low_remaining_seat_balance_reached": "seat_filter",
}

# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroupValue(_Model):
    key: str
    value: str | None = None


class CustomFieldFilter(_Model):
    entity: CONTRACT_ENTITIES
    key: str
    value: str


class SpecifierFilter(_Model):
    entity: CONTRACT_ENTITIES
    key: str
    value: str | None = None


class SpecifierExclude(_Model):
    custom_field_filters: list[CustomFieldFilter] | None = None


class AlertSpecifier(_Model):
    custom_field_filters: list[SpecifierFilter] | None = None
    exclude: list[SpecifierExclude] | None = None


class SeatFilter(_Model):
    seat_group_key: str
    seat_group_value: str | None = None


def _known_type(value: str) -> str:
    if value not in ALERT_TYPES:
        raise ValueError(f"{value!r} is not an alert type metronome-sdk 4.12 lists")
    return value


CANNOT_EDIT = RequiresReplace("Metronome cannot edit an alert (no update endpoint)")


class Inputs(InputsBase):
    alert_type: Annotated[str, AfterValidator(_known_type), CANNOT_EDIT]
    name: Annotated[str, CANNOT_EDIT]
    threshold: Annotated[float, CANNOT_EDIT]
    customer_id: Annotated[str | None, CANNOT_EDIT] = None  # none: every customer
    plan_id: Annotated[str | None, CANNOT_EDIT] = None
    billable_metric_id: Annotated[str | None, CANNOT_EDIT] = None
    credit_type_id: Annotated[str | None, CANNOT_EDIT] = None  # none: USD (cents)
    access_type: Annotated[Literal["SPEND", "QUANTITY"] | None, CANNOT_EDIT] = None  # none: SPEND
    group_values: Annotated[list[GroupValue] | None, CANNOT_EDIT] = None
    custom_field_filters: Annotated[list[CustomFieldFilter] | None, CANNOT_EDIT] = None
    alert_specifiers: Annotated[list[AlertSpecifier] | None, CANNOT_EDIT] = None
    credit_grant_type_filters: Annotated[list[str] | None, CANNOT_EDIT] = None
    invoice_types_filter: Annotated[list[str] | None, CANNOT_EDIT] = None
    seat_filter: Annotated[SeatFilter | None, CANNOT_EDIT] = None
    # Whether the new alert is evaluated at once against customers already past the threshold
    # (Metronome's default: true). Read at creation only.
    evaluate_on_create: bool | None = None

    @model_validator(mode="after")
    def _defaults(self) -> Inputs:
        # Stated defaults read back explicitly: drop them so "absent" and "default" compare equal.
        if self.credit_type_id == USD_CENTS_ID:
            self.credit_type_id = None
        if self.access_type == "SPEND":
            self.access_type = None
        return self


HINTS = {
    "alert_type": "use one of " + ", ".join(ALERT_TYPES),
    "threshold": "a number: an amount in the credit type's unit, a count of days or a percentage, by type",
    "customer_id": "reference the customer's id (customer_id=customer.id); none: every customer",
    "billable_metric_id": "reference the metric's id (billable_metric_id=metric.id)",
}

# An account-wide alert is read through any customer (`/v1/customer-alerts/get`): the one found at its
# create is recorded (an output), so a refresh needs no look-up. A read never changes it (a refresh then
# shows no change); if that customer is not found, the read looks through another (once per host).
READ_THROUGH = "read_through"
# Fields the read-back does not carry (CustomerAlert.alert): kept as recorded.
UNREAD = ("customer_id", "plan_id", "billable_metric_id", "evaluate_on_create")
_READ = (
    "access_type",
    "alert_specifiers",
    "credit_grant_type_filters",
    "custom_field_filters",
    "group_values",
    "invoice_types_filter",
    "seat_filter",
)

# ---------------------------------------------------------------------------------------------
# API calls
# ---------------------------------------------------------------------------------------------


def to_inputs(view: dict[str, Any]) -> dict[str, Any]:
    """A CustomerAlert's `alert` in input shape, with its `uniqueness_key`."""
    out: dict[str, Any] = {
        "alert_type": view.get("type"),
        "name": view.get("name"),
        "threshold": view.get("threshold"),
    }
    credit_type = (view.get("credit_type") or {}).get("id")
    if credit_type and credit_type != USD_CENTS_ID:
        out["credit_type_id"] = credit_type
    out.update({f: view[f] for f in _READ if view.get(f) not in (None, [])})
    if out.get("access_type") == "SPEND":
        del out["access_type"]
    if view.get("uniqueness_key"):
        out["uniqueness_key"] = view["uniqueness_key"]
    return out


_LOOKOUT: dict[str, str] = {}  # per account: the customer account-wide alerts were last read through
_LOOKED: set[str] = set()  # accounts this host has looked a customer up in (found one or not)
_LOOKOUT_LOCK = threading.Lock()  # parallel reads of account-wide alerts make one look-up


def any_customer(client: metronome.Metronome, *, fresh: bool = False, once: bool = False) -> str | None:
    """A live customer to read account-wide alerts through (each customer sees them); remembered per
    process, so reading N alerts costs N calls, not 2N. With `once`, no look-up after the host's first,
    even if that one found no customer."""
    key = client_key(client)
    with _LOOKOUT_LOCK:
        if not fresh and (key in _LOOKOUT or (once and key in _LOOKED)):
            return _LOOKOUT.get(key)
        page = request(client, "GET", "/v1/customers", label="Customer listing", params={"limit": 1})
        _LOOKED.add(key)  # answered: a failed look-up is tried again
        customers = data_of(page) or []
        if not customers:
            return None
        _LOOKOUT[key] = customers[0]["id"]
        return _LOOKOUT[key]


def _view(client: metronome.Metronome, customer_id: str, alert_id: str, label: str) -> dict[str, Any] | None:
    try:
        got = request(
            client,
            "POST",
            "/v1/customer-alerts/get",
            label=label,
            body={"customer_id": customer_id, "alert_id": alert_id},
        )
    except MetronomeError as err:
        if err.status_code in (400, 404):
            return None
        raise
    view = (data_of(got) or {}).get("alert") or {}
    return view if view and view.get("status") != "archived" else None


def list_objects(client: metronome.Metronome, customer_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(id, input-shaped alert) for every live alert `customer_id` sees: its own and the account-wide."""
    views = paginate(
        client,
        "POST",
        "/v1/customer-alerts/list",
        label=f"alerts of customer {customer_id}",
        body={"customer_id": customer_id},
        limit=None,
    )
    return [(v["alert"]["id"], to_inputs(v["alert"])) for v in views]


class AlertProvider(KeyedProvider[Inputs]):
    kind = "Alert"
    inputs_model = Inputs
    natural_key = "name"
    hints = HINTS
    create_path = "/v1/alerts/create"
    create_fields = (*(f for f in Inputs.model_fields if f not in InputsBase.model_fields),)

    def validate(self, inputs: Inputs, olds: dict[str, Any]) -> list[CheckFailure]:
        failures = super().validate(inputs, olds)
        kind = inputs.alert_type
        for field, types in TAKEN_ONLY_BY.items():
            if getattr(inputs, field) is not None and kind not in types:
                failures.append(
                    CheckFailure(
                        field,
                        f"a {kind} alert takes no {field} (only {', '.join(types)} do); to fix: remove it "
                        "or change alert_type",
                    )
                )
        needed = REQUIRED_BY.get(kind)
        if needed and getattr(inputs, needed) is None:
            failures.append(
                CheckFailure(needed, f"a {kind} alert needs {needed}; to fix: {HINTS.get(needed, 'add it')}")
            )
        if inputs.access_type == "QUANTITY" and inputs.credit_type_id:
            failures.append(
                CheckFailure(
                    "credit_type_id",
                    "an alert on QUANTITY balances takes no credit type; to fix: remove credit_type_id",
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
        # Alerts have no listing to search: the 409 names the alert holding the key (`conflicting_id`,
        # metronome-behaviour notes), ours if it is live. Without a 409 nothing can be told yet: the
        # create is sent again, and a made alert answers with that 409. A 409 naming no alert is not
        # guessed at (it may be ours): the create fails, saying so.
        found = UUID.search(str(conflict.body)) if conflict is not None else None
        if not found:
            return Holder(None, held=False)
        live = self.read_live(client, found.group(0), inputs) is not None
        return Holder(found.group(0) if live else None, held=True)

    def read_live(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        props = props or {}
        own = props.get("customer_id")
        customer_id = own or props.get(READ_THROUGH) or any_customer(client)
        if customer_id is None:  # no customer to look through: nothing can be told, keep the record
            return self.shape(props)
        view = _view(client, customer_id, object_id, self.label(props))
        if view is None and not own:  # the recorded customer may be gone since: look through another
            customer_id = any_customer(client, fresh=True)
            view = _view(client, customer_id, object_id, self.label(props)) if customer_id else None
        if view is None:
            return None
        live = to_inputs(view)
        live.update({f: props[f] for f in UNREAD if props.get(f) is not None})
        return live

    def create(self, props: dict[str, Any]) -> CreateResult:
        result = super().create(props)
        if not props.get("customer_id"):
            # Account-wide: the customer later reads go through, one look-up per host at most. On a new
            # account the alerts may be created before any customer (nothing orders them): those record
            # none and their first read looks one up, rather than every create looking again until a
            # customer appears (a count of calls that would depend on the engine's order).
            result.outs[READ_THROUGH] = any_customer(get_client(), once=True)
        return result

    def update_object(
        self,
        client: metronome.Metronome,
        object_id: str,
        olds: dict[str, Any],
        news: dict[str, Any],
        changed: list[str],
        label: str,
    ) -> dict[str, Any]:
        return {}  # only evaluate_on_create reaches here: it acts at creation, nothing live changes

    def archive_object(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any], label: str
    ) -> None:
        archive(client, "/v1/alerts/archive", {"id": object_id, "release_uniqueness_key": True}, label=label)


class Alert(pulumi.dynamic.Resource, module="metronome", name="Alert"):
    """A Metronome threshold alert (spend, balance, invoice total, usage per metric, ...), for one
    customer (`customer_id`) or every customer. Any change but `evaluate_on_create` replaces it."""

    alert_type: pulumi.Output[str]
    name: pulumi.Output[str]
    threshold: pulumi.Output[float]
    customer_id: pulumi.Output[str]
    uniqueness_key: pulumi.Output[str]
    read_through: pulumi.Output[str]
    adopt_report: pulumi.Output[list]

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        alert_type: pulumi.Input[str],
        name: pulumi.Input[str],
        threshold: pulumi.Input[float],
        customer_id: pulumi.Input[str] | None = None,
        plan_id: pulumi.Input[str] | None = None,
        billable_metric_id: pulumi.Input[str] | None = None,
        credit_type_id: pulumi.Input[str] | None = None,
        access_type: pulumi.Input[str] | None = None,
        group_values: pulumi.Input[list] | None = None,
        custom_field_filters: pulumi.Input[list] | None = None,
        alert_specifiers: pulumi.Input[list] | None = None,
        credit_grant_type_filters: pulumi.Input[list] | None = None,
        invoice_types_filter: pulumi.Input[list] | None = None,
        seat_filter: pulumi.Input[dict] | None = None,
        evaluate_on_create: pulumi.Input[bool] | None = None,
        adopt: pulumi.Input[dict] | None = None,
    ) -> None:
        inputs = dict(
            alert_type=alert_type,
            name=name,
            threshold=threshold,
            customer_id=customer_id,
            plan_id=plan_id,
            billable_metric_id=billable_metric_id,
            credit_type_id=credit_type_id,
            access_type=access_type,
            group_values=group_values,
            custom_field_filters=custom_field_filters,
            alert_specifiers=alert_specifiers,
            credit_grant_type_filters=credit_grant_type_filters,
            invoice_types_filter=invoice_types_filter,
            seat_filter=seat_filter,
            evaluate_on_create=evaluate_on_create,
            adopt=adopt,
        )
        props = declare_props(resource_name, inputs, computed=("uniqueness_key", READ_THROUGH))
        super().__init__(AlertProvider(), resource_name, props, opts)


__all__ = ["ALERT_TYPES", "Alert", "AlertProvider", "Inputs", "list_objects"]
