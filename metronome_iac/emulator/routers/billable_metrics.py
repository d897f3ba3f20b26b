"""Billable metrics: `/v1/billable-metrics` (only the name can change after creation)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    archive_or_400,
    bad,
    bool_query,
    check_custom_fields,
    check_type,
    data,
    enum,
    get_or_404,
    id_response,
    json_body,
    opt,
    page,
    page_args,
    req,
    store_of,
    str_list,
)
from metronome_iac.emulator.store import Store

router = APIRouter()

KIND = "billable_metric"
AGGREGATION_TYPES = ("COUNT", "LATEST", "MAX", "SUM", "UNIQUE")


def _filter(value: dict, field: str) -> dict:
    check_type(value, dict, field)
    out = {}
    for key in ("in_values", "not_in_values"):
        values = str_list(value, key, prefix=f"{field}.")
        if values is not None:
            out[key] = values
    return out


def _validate(store: Store, body: dict) -> dict:
    metric: dict = {"name": req(body, "name"), "archived_at": None}
    sql = opt(body, "sql")
    configured = [
        f
        for f in (
            "aggregation_type",
            "aggregation_key",
            "event_type_filter",
            "property_filters",
            "group_keys",
        )
        if body.get(f) is not None
    ]
    if sql is not None:
        if configured:
            raise bad(f"sql cannot be combined with {', '.join(configured)}")
        metric["sql"] = sql
    else:
        agg = enum(body.get("aggregation_type"), AGGREGATION_TYPES, "aggregation_type")
        metric["aggregation_type"] = agg
        key = opt(body, "aggregation_key")
        if agg != "COUNT" and not key:
            raise bad(f"aggregation_key is required for aggregation_type {agg}")
        metric["aggregation_key"] = key
        if body.get("event_type_filter") is not None:
            metric["event_type_filter"] = _filter(body["event_type_filter"], "event_type_filter")
        filters = []
        for i, pf in enumerate(opt(body, "property_filters", list) or []):
            field = f"property_filters[{i}]"
            check_type(pf, dict, field)
            item: dict = {"name": req(pf, "name", prefix=f"{field}.")}
            if pf.get("exists") is not None:
                item["exists"] = check_type(pf["exists"], bool, f"{field}.exists")
            item.update(_filter({k: pf[k] for k in ("in_values", "not_in_values") if k in pf}, field))
            filters.append(item)
        metric["property_filters"] = filters
        group_keys = []
        for i, gk in enumerate(opt(body, "group_keys", list) or []):
            check_type(gk, list, f"group_keys[{i}]")
            for j, k in enumerate(gk):
                check_type(k, str, f"group_keys[{i}][{j}]")
            group_keys.append(gk)
        metric["group_keys"] = group_keys
        # The API names every property that is not a filter name, all in one answer.
        names = {f["name"] for f in filters}
        problems = [
            f"group_keys[{i}][{j}]: Group key '{k}' does not match one of the property filter names."
            for i, gk in enumerate(group_keys)
            for j, k in enumerate(gk)
            if k not in names
        ]
        if agg != "COUNT" and key not in names:
            problems.append(
                "aggregation_key: The specified aggregation key must be one of the property filter names."
            )
        if problems:
            raise bad(" ".join(problems))
    metric["custom_fields"] = check_custom_fields(store, KIND, body.get("custom_fields"))
    return metric


@router.post("/v1/billable-metrics/create")
async def create(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    with store.tx():
        metric = store.insert(KIND, _validate(store, body))
    return id_response(metric["id"])


@router.get("/v1/billable-metrics")
async def list_metrics(request: Request) -> JSONResponse:
    store = store_of(request)
    cursor, limit = page_args(request)
    flt = "ALL" if bool_query(request, "include_archived") else "NOT_ARCHIVED"
    items, nxt = store.list_page(KIND, cursor=cursor, limit=limit, archive_filter=flt)
    return page(items, nxt)


@router.post("/v1/billable-metrics/archive")
async def archive(request: Request) -> JSONResponse:
    body = await json_body(request)
    metric = archive_or_400(store_of(request), KIND, req(body, "id"))
    return id_response(metric["id"])


@router.get("/v1/billable-metrics/{billable_metric_id}")
async def retrieve(billable_metric_id: str, request: Request) -> JSONResponse:
    return data(get_or_404(store_of(request), KIND, billable_metric_id, "billable_metric_id"))


@router.put("/v1/billable-metrics/{billable_metric_id}")
async def update(billable_metric_id: str, request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    frozen = sorted(set(body) - {"name"})
    if frozen:
        raise bad(f"{', '.join(frozen)} cannot be changed: only name can be updated on a billable metric")
    name = req(body, "name")
    with store.tx():
        metric = get_or_404(store, KIND, billable_metric_id, "billable_metric_id")
        metric["name"] = name
        store.update(KIND, metric)
    return id_response(billable_metric_id)
