"""Threshold notifications (v1 alerts): `/v1/alerts/create` and `/v1/alerts/archive` (no get, list or update).

A uniqueness key conflict answers 409 with the conflicting alert id in the message. Archiving is idempotent;
an archived alert keeps its key unless `release_uniqueness_key` is sent.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    bad,
    check_custom_fields,
    conflict,
    credit_type_data,
    enum,
    get_or_404,
    id_response,
    json_body,
    opt,
    ref_or_400,
    req,
    store_of,
)
from metronome_iac.emulator.store import now_iso

router = APIRouter()

KIND = "alert"
ALERT_TYPES = (
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
