"""Contract-pricing products: `/v1/contract-pricing/products/*`.

A product keeps its `initial` state and a list of time-stamped `updates`; `current` is the initial state with
every update applied in `starting_at` order (scheduled updates included, the simplest model that lets a
client read back what it just wrote). The type never changes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    archive_or_400,
    bad,
    check_custom_fields,
    check_type,
    copy_optional,
    data,
    enum,
    get_or_404,
    id_response,
    json_body,
    list_documents,
    opt,
    parse_ts,
    ref_or_400,
    refuse_frozen,
    req,
    req_ts,
    store_of,
    str_list,
)
from metronome_iac.emulator.store import Store, now_iso

router = APIRouter()

KIND = "product"
ENTITY = "contract_product"  # the custom-field entity of contract-pricing products
TYPES = ("FIXED", "USAGE", "COMPOSITE", "SUBSCRIPTION", "PROFESSIONAL_SERVICE", "PRO_SERVICE")
STATE_FIELDS = (
    "name",
    "billable_metric_id",
    "composite_product_ids",
    "composite_tags",
    "exclude_free_usage",
    "include_composite_spend",
    "is_refundable",
    "netsuite_internal_item_id",
    "netsuite_overage_item_id",
    "presentation_group_key",
    "pricing_group_key",
    "quantity_conversion",
    "quantity_rounding",
    "tags",
    "sql_breakdown_granularity",
)
USAGE_ONLY = (
    "billable_metric_id",
    "pricing_group_key",
    "presentation_group_key",
    "quantity_conversion",
    "quantity_rounding",
)


def _fields(store: Store, body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate the state fields present in `body` (all optional when `partial`)."""
    out: dict[str, Any] = {}
    if not partial or "name" in body:
        out["name"] = req(body, "name")
    copy_optional(out, body, ("billable_metric_id", "netsuite_internal_item_id", "netsuite_overage_item_id"))
    for f in (
        "composite_product_ids",
        "composite_tags",
        "presentation_group_key",
        "pricing_group_key",
        "tags",
    ):
        if body.get(f) is not None:
            out[f] = str_list(body, f)
    copy_optional(out, body, ("exclude_free_usage", "include_composite_spend", "is_refundable"), bool)
    if "quantity_conversion" in body:
        qc = body["quantity_conversion"]
        if qc is not None:
            check_type(qc, dict, "quantity_conversion")
            qc = {
                "conversion_factor": req(qc, "conversion_factor", float, "quantity_conversion."),
                "operation": enum(
                    qc.get("operation"), ("MULTIPLY", "DIVIDE"), "quantity_conversion.operation"
                ),
                **(
                    {"name": opt(qc, "name", str, "quantity_conversion.")}
                    if qc.get("name") is not None
                    else {}
                ),
            }
            if qc["conversion_factor"] <= 0:
                raise bad("quantity_conversion.conversion_factor must be > 0")
        out["quantity_conversion"] = qc
    if "quantity_rounding" in body:
        qr = body["quantity_rounding"]
        if qr is not None:
            check_type(qr, dict, "quantity_rounding")
            qr = {
                "decimal_places": req(qr, "decimal_places", float, "quantity_rounding."),
                "rounding_method": enum(
                    qr.get("rounding_method"),
                    ("ROUND_UP", "ROUND_DOWN", "ROUND_HALF_UP"),
                    "quantity_rounding.rounding_method",
                ),
            }
        out["quantity_rounding"] = qr
    if body.get("sql_breakdown_granularity") is not None:
        out["sql_breakdown_granularity"] = enum(
            body["sql_breakdown_granularity"], ("HOUR", "SERVICE_PERIOD"), "sql_breakdown_granularity"
        )
    for i, pid in enumerate(out.get("composite_product_ids") or []):
        ref_or_400(store, KIND, pid, f"composite_product_ids[{i}]")
    return out


def _check_usage(store: Store, ptype: str, state: dict[str, Any]) -> None:
    """USAGE products need an existing metric whose group keys cover the pricing/presentation keys."""
    if ptype != "USAGE":
        for f in USAGE_ONLY:
            if state.get(f) is not None:
                raise bad(f"{f} is only allowed on USAGE products")
        return
    metric_id = state.get("billable_metric_id")
    if not metric_id:
        raise bad("billable_metric_id is required for USAGE products")
    metric = ref_or_400(store, "billable_metric", metric_id, "billable_metric_id", live=True)
    keys = set(state.get("pricing_group_key") or []) | set(state.get("presentation_group_key") or [])
    if keys and not any(keys == set(gk) for gk in metric.get("group_keys") or []):
        raise bad(
            f"pricing_group_key: the union of pricing_group_key and presentation_group_key {sorted(keys)} "
            f"must be one of the billable metric's group_keys {metric.get('group_keys') or []}"
        )


def current_state(product: dict[str, Any]) -> dict[str, Any]:
    state = dict(product["initial"])
    for upd in sorted(product["updates"], key=lambda u: parse_ts(u["starting_at"], "starting_at")):
        state.update(
            {k: v for k, v in upd.items() if k not in ("created_at", "created_by") and v is not None}
        )
    return state


def view(product: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": product["id"],
        "type": product["type"],
        "initial": product["initial"],
        "current": current_state(product),
        "updates": product["updates"],
        "archived_at": product.get("archived_at"),
        "custom_fields": product.get("custom_fields") or {},
    }


@router.post("/v1/contract-pricing/products/create")
async def create(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    ptype = enum(body.get("type"), TYPES, "type")
    ptype = "PRO_SERVICE" if ptype == "PROFESSIONAL_SERVICE" else ptype
    with store.tx():
        state = _fields(store, body, partial=False)
        _check_usage(store, ptype, state)
        now = now_iso()
        state.update({"starting_at": now, "created_at": now, "created_by": "emulator"})
        state.setdefault("is_refundable", True)
        product = {
            "type": ptype,
            "initial": state,
            "updates": [],
            "archived_at": None,
            "custom_fields": check_custom_fields(store, ENTITY, body.get("custom_fields")),
        }
        store.insert(KIND, product)
    return id_response(product["id"])


@router.post("/v1/contract-pricing/products/get")
async def retrieve(request: Request) -> JSONResponse:
    body = await json_body(request)
    return data(view(get_or_404(store_of(request), KIND, req(body, "id"))))


@router.post("/v1/contract-pricing/products/list")
async def list_products(request: Request) -> JSONResponse:
    return list_documents(request, KIND, view, body=await json_body(request))


@router.post("/v1/contract-pricing/products/update")
async def update(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    product_id = req(body, "product_id")
    refuse_frozen(body, ("type", "custom_fields"), "with a product update")
    starting_at = req_ts(body, "starting_at")
    when = parse_ts(body["starting_at"], "starting_at")
    if (when.minute, when.second, when.microsecond) != (0, 0, 0):
        raise bad(f"starting_at must be on an hour boundary (got {body['starting_at']})")
    with store.tx():
        product = get_or_404(store, KIND, product_id, "product_id", live=True)
        fields = _fields(
            store, {k: v for k, v in body.items() if k not in ("product_id", "starting_at")}, partial=True
        )
        merged = {**current_state(product), **fields}
        _check_usage(store, product["type"], merged)
        product["updates"].append(
            {**fields, "starting_at": starting_at, "created_at": now_iso(), "created_by": "emulator"}
        )
        store.update(KIND, product)
    return id_response(product_id)


@router.post("/v1/contract-pricing/products/archive")
async def archive(request: Request) -> JSONResponse:
    body = await json_body(request)
    product = archive_or_400(store_of(request), KIND, req(body, "product_id"), "product_id")
    return id_response(product["id"])
