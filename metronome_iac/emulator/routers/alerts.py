"""Threshold notifications (v1 alerts): `/v1/alerts/create` and `/v1/alerts/archive` (no get, list or update),
and their per-customer view `/v1/customer-alerts/get` and `/v1/customer-alerts/list`.

A uniqueness key conflict answers 409 with the conflicting alert id in the message. Archiving is idempotent;
an archived alert keeps its key unless `release_uniqueness_key` is sent. A customer sees the alerts made for
it and those made for every customer (no `customer_id`); the view is `CustomerAlert`
(`metronome/types/v1/customers/customer_alert.py`). The filters each type takes are the create docstring's.
"""

from __future__ import annotations

from typing import Any, get_args, get_type_hints

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from metronome.types.v1.alert_create_params import AlertCreateParams

from metronome_iac.emulator.common import (
    bad,
    check_custom_fields,
    check_type,
    conflict,
    credit_type_data,
    enum,
    get_or_404,
    id_response,
    json_body,
    not_found,
    opt,
    page,
    query_cursor,
    ref_or_400,
    req,
    store_of,
)
from metronome_iac.emulator.store import now_iso

router = APIRouter()

KIND = "alert"
# The alert types the SDK lists (`alert_type: Required[Literal[...]]` in alert_create_params.py).
ALERT_TYPES: tuple[str, ...] = get_args(
    get_args(get_type_hints(AlertCreateParams, include_extras=True)["alert_type"])[0]
)
# The filters only some types take (alert_create_params.py docstrings).
ACCESS_TYPE_ALERTS = (
    "low_remaining_commit_balance_reached",
    "low_remaining_commit_percentage_reached",
    "low_remaining_contract_credit_and_commit_balance_reached",
    "low_remaining_contract_credit_and_commit_percentage_reached",
    "low_remaining_contract_credit_balance_reached",
    "low_remaining_contract_credit_percentage_reached",
    "low_remaining_seat_balance_reached",
)
ONLY_FOR: dict[str, tuple[str, ...]] = {
    "access_type": ACCESS_TYPE_ALERTS,
    "alert_specifiers": (
        "low_remaining_contract_credit_and_commit_balance_reached",
        "low_remaining_contract_credit_and_commit_percentage_reached",
    ),
    "group_values": ("spend_threshold_reached",),
    "invoice_types_filter": ("invoice_total_reached",),
    "seat_filter": ("low_remaining_seat_balance_reached",),
    "credit_grant_type_filters": ("low_credit_balance_reached", "low_remaining_credit_percentage_reached"),
}
# CustomerAlert.alert fields read back as created.
VIEW_FIELDS = (
    "alert_specifiers",
    "credit_grant_type_filters",
    "custom_field_filters",
    "group_values",
    "invoice_types_filter",
    "seat_filter",
    "uniqueness_key",
)


@router.post("/v1/alerts/create")
async def create(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    alert_type = enum(body.get("alert_type"), ALERT_TYPES, "alert_type")
    name = req(body, "name")
    threshold = req(body, "threshold", float)
    key = opt(body, "uniqueness_key")
    with store.tx():
        if key is not None:
            owner = store.key_owner(KIND, key)
            if owner is not None:
                raise conflict(f"uniqueness_key: '{key}' is already used by alert {owner}")
        customer_id = opt(body, "customer_id")
        if customer_id is not None:
            ref_or_400(store, "customer", customer_id, "customer_id")
        for field, types in ONLY_FOR.items():
            if body.get(field) is not None and alert_type not in types:
                raise bad(f"{field} is only supported for {', '.join(types)} alerts")
        if alert_type == "low_remaining_seat_balance_reached" and body.get("seat_filter") is None:
            raise bad("seat_filter is required for low_remaining_seat_balance_reached alerts")
        if body.get("access_type") == "QUANTITY" and body.get("credit_type_id") is not None:
            raise bad("credit_type_id cannot be given with access_type QUANTITY")
        metric_id = opt(body, "billable_metric_id")
        if alert_type == "usage_threshold_reached" and not metric_id:
            raise bad("billable_metric_id is required for usage_threshold_reached alerts")
        if metric_id is not None:
            ref_or_400(store, "billable_metric", metric_id, "billable_metric_id")
        alert = {
            **{k: v for k, v in body.items() if k not in ("custom_field_filters",)},
            "alert_type": alert_type,
            "name": name,
            "threshold": threshold,
            "credit_type": credit_type_data(store, opt(body, "credit_type_id")),
            "custom_field_filters": body.get("custom_field_filters") or [],
            "custom_fields": check_custom_fields(store, KIND, body.get("custom_fields")),
            "updated_at": now_iso(),
            "archived_at": None,
        }
        alert.pop("id", None)
        store.insert(KIND, alert)
        if key is not None:
            store.claim_key(KIND, key, alert["id"])
    return id_response(alert["id"])


@router.post("/v1/alerts/archive")
async def archive(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    alert_id = req(body, "id")
    release = bool(opt(body, "release_uniqueness_key", bool))
    with store.tx():
        alert = get_or_404(store, KIND, alert_id)
        if not alert.get("archived_at"):
            store.archive(KIND, alert_id, now_iso())
        key = alert.get("uniqueness_key")
        if release and key and store.key_owner(KIND, key) == alert_id:
            store.release_key(KIND, key)
    return id_response(alert_id)


def _view(alert: dict[str, Any]) -> dict[str, Any]:
    archived = bool(alert.get("archived_at"))
    out = {
        "id": alert["id"],
        "name": alert["name"],
        "status": "archived" if archived else "enabled",
        "threshold": alert["threshold"],
        "type": alert["alert_type"],
        "updated_at": alert.get("archived_at") or alert.get("updated_at") or alert.get("created_at"),
        "credit_type": alert["credit_type"],
        **{f: alert[f] for f in VIEW_FIELDS if alert.get(f) not in (None, [])},
    }
    if alert["alert_type"] in ACCESS_TYPE_ALERTS:
        out["access_type"] = alert.get("access_type") or "SPEND"
    return {"alert": out, "customer_status": None if archived else "ok", "triggered_by": None}


def _applies_to(alert: dict[str, Any], customer_id: str) -> bool:
    return alert.get("customer_id") in (None, customer_id)


@router.post("/v1/customer-alerts/get")
async def customer_alert(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    customer_id = req(body, "customer_id")
    alert_id = req(body, "alert_id")
    get_or_404(store, "customer", customer_id, "customer_id")
    alert = get_or_404(store, KIND, alert_id, "alert_id")
    if not _applies_to(alert, customer_id):
        raise not_found("alert", alert_id, "alert_id")
    return JSONResponse({"data": _view(alert)})


@router.post("/v1/customer-alerts/list")
async def customer_alerts(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    customer_id = req(body, "customer_id")
    get_or_404(store, "customer", customer_id, "customer_id")
    statuses = opt(body, "alert_statuses", list) or ["ENABLED"]
    for i, status in enumerate(statuses):
        check_type(status, str, f"alert_statuses[{i}]")
        enum(status, ("ENABLED", "DISABLED", "ARCHIVED"), f"alert_statuses[{i}]")
    wanted = {"ENABLED": "NOT_ARCHIVED", "ARCHIVED": "ARCHIVED"}
    filters = {wanted[s] for s in statuses if s in wanted}  # the API cannot disable an alert: none is
    if not filters:
        return page([], None)
    flt = filters.pop() if len(filters) == 1 else "ALL"
    items, nxt = store.list_page(
        KIND,
        cursor=query_cursor(request),
        limit=100,
        archive_filter=flt,
        where=lambda a: _applies_to(a, customer_id),
    )
    return page([_view(a) for a in items], nxt)
