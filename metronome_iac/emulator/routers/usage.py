"""Usage: `/v1/ingest` (bare JSON array, deduplicated on transaction_id), `/v1/events/search`, `/v1/usage`.

An event's `customer_id` (a Metronome id or an ingest alias) is resolved when usage is read, not when it
is ingested: events for an alias no customer has are accepted and stored, and count for the customer that
is later given that alias (Metronome associates them retroactively); until then search shows them with no
matched customer. See docs/emulator-fidelity.md, "Usage and events".
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    bad,
    check_type,
    empty,
    enum,
    json_array_body,
    json_body,
    offset_page,
    opt,
    page_args,
    parse_ts,
    query_cursor,
    ref_or_400,
    req,
    req_ts,
    store_of,
    str_list,
)
from metronome_iac.emulator.routers.customers import resolve_customer
from metronome_iac.emulator.store import Store, format_ts

router = APIRouter()


@router.post("/v1/ingest")
async def ingest(request: Request) -> JSONResponse:
    store = store_of(request)
    events = await json_array_body(request)
    with store.tx():
        accepted: list[dict[str, Any]] = []
        for i, event in enumerate(events):
            prefix = f"[{i}]."
            check_type(event, dict, f"[{i}]")
            transaction_id = req(event, "transaction_id", prefix=prefix)
            who = f"event {i} (transaction_id '{transaction_id}'): "
            for field in ("customer_id", "event_type", "timestamp"):
                if not event.get(field):
                    raise bad(f"{who}{field} is required")
            check_type(event["customer_id"], str, f"{who}customer_id")
            check_type(event["event_type"], str, f"{who}event_type")
            timestamp = req_ts(event, "timestamp", who)
            properties = opt(event, "properties", dict, who) or {}
            clean = {
                "transaction_id": transaction_id,
                "customer_id": event["customer_id"],
                "event_type": event["event_type"],
                "timestamp": timestamp,
                "properties": properties,
            }
            accepted.append(clean)  # also for an alias no customer has (yet): matched when usage is read
        # All or nothing: nothing is stored unless every event is valid; duplicates are silently ignored.
        for clean in accepted:
            store.add_event(clean)
    return empty()


class _Owners:
    """The customer each event belongs to now (by id or ingest alias), resolved once per request."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache: dict[str, dict[str, Any] | None] = {}

    def of(self, event: dict[str, Any]) -> dict[str, Any] | None:
        key = event["customer_id"]
        if key not in self.cache:
            self.cache[key] = resolve_customer(self.store, key)
        return self.cache[key]

    def events_of(self, customer_id: str) -> list[dict[str, Any]]:
        return [e for e in self.store.events() if (self.of(e) or {}).get("id") == customer_id]


def _midnight_range(body: dict[str, Any]) -> tuple[datetime, datetime]:
    """starting_on / ending_before: both on UTC midnight, ending_before at least a day later."""
    start = parse_ts(req(body, "starting_on"), "starting_on")
    end = parse_ts(req(body, "ending_before"), "ending_before")
    for name, moment in (("starting_on", start), ("ending_before", end)):
        if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
            raise bad(f"{name} must be aligned to UTC midnight, e.g. 2024-01-01T00:00:00Z")
    if end < start + timedelta(days=1):
        raise bad("ending_before must be at least one day after starting_on")
    return start, end


def _matches(metric: dict[str, Any], event: dict[str, Any]) -> bool:
    if metric.get("sql") or metric.get("archived_at"):
        return False
    etf = metric.get("event_type_filter") or {}
    if etf.get("in_values") and event["event_type"] not in etf["in_values"]:
        return False
    if etf.get("not_in_values") and event["event_type"] in etf["not_in_values"]:
        return False
    props = event.get("properties") or {}
    for pf in metric.get("property_filters") or []:
        present = pf["name"] in props
        value = str(props.get(pf["name"]))
        if pf.get("exists") is True and not present or pf.get("exists") is False and present:
            return False
        if pf.get("in_values") and (not present or value not in pf["in_values"]):
            return False
        if pf.get("not_in_values") and present and value in pf["not_in_values"]:
            return False
    return True


def _windows(start: datetime, end: datetime, window: str) -> list[tuple[datetime, datetime]]:
    step = {"HOUR": timedelta(hours=1), "DAY": timedelta(days=1), "NONE": end - start}[window]
    out = []
    cur = start
    while cur < end:
        out.append((cur, min(cur + step, end)))
        cur += step
    return out


def _aggregate(metric: dict[str, Any], events: list[dict[str, Any]]) -> float | None:
    agg = metric.get("aggregation_type")
    if agg == "COUNT":
        return float(len(events))
    key = metric.get("aggregation_key")
    values = [(e["timestamp"], (e.get("properties") or {}).get(key)) for e in events]
    values = [(t, v) for t, v in values if v is not None]
    if agg == "UNIQUE":
        return float(len({str(v) for _, v in values}))
    numbers = []
    for t, v in values:
        try:
            numbers.append((t, float(v)))
        except (TypeError, ValueError):
            continue
    if not numbers:
        return 0.0 if agg == "SUM" else None
    if agg == "SUM":
        return sum(n for _, n in numbers)
    if agg == "MAX":
        return max(n for _, n in numbers)
    return max(numbers)[1]  # LATEST: the value of the newest event


def search_view(store: Store, event: dict[str, Any], owners: _Owners) -> dict[str, Any]:
    customer = owners.of(event)
    metrics = [m for m in store.all("billable_metric", archive_filter="NOT_ARCHIVED") if _matches(m, event)]
    return {
        "id": event["transaction_id"],
        "transaction_id": event["transaction_id"],
        "customer_id": event["customer_id"],
        "event_type": event["event_type"],
        "timestamp": event["timestamp"],
        "properties": event.get("properties") or {},
        "processed_at": event["_received_at"],
        "is_duplicate": False,
        "matched_customer": {"id": customer["id"], "name": customer.get("name")} if customer else None,
        "matched_billable_metrics": [
            {k: m.get(k) for k in ("id", "name", "aggregation_type", "aggregation_key", "group_keys")}
            for m in metrics
        ],
    }


@router.post("/v1/events/search")
async def search(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    ids = str_list(body, "transactionIds")
    if ids is None:
        raise bad("transactionIds is required")
    owners = _Owners(store)
    return JSONResponse([search_view(store, e, owners) for e in store.events(ids)])


@router.post("/v1/usage")
async def usage(request: Request) -> JSONResponse:
    """Aggregates per customer, metric and window, computed from the stored events."""
    store = store_of(request)
    body = await json_body(request)
    start, end = _midnight_range(body)
    window = enum(
        body.get("window_size"), ("HOUR", "DAY", "NONE", "hour", "day", "none"), "window_size"
    ).upper()
    customer_ids = str_list(body, "customer_ids")
    metric_specs = opt(body, "billable_metrics", list)
    if metric_specs:
        metrics = []
        for i, spec in enumerate(metric_specs):
            check_type(spec, dict, f"billable_metrics[{i}]")
            metric_id = req(spec, "id", prefix=f"billable_metrics[{i}].")
            metrics.append(ref_or_400(store, "billable_metric", metric_id, f"billable_metrics[{i}].id"))
    else:
        metrics = store.all("billable_metric", archive_filter="NOT_ARCHIVED")
    customers = customer_ids or [c["id"] for c in store.all("customer", archive_filter="NOT_ARCHIVED")]
    windows = _windows(start, end, window)
    owners = _Owners(store)
    rows = []
    for customer_id in customers:
        mine = owners.events_of(customer_id)
        for metric in metrics:
            matched = [e for e in mine if _matches(metric, e)]
            for w_start, w_end in windows:
                inside = [e for e in matched if w_start <= parse_ts(e["timestamp"], "timestamp") < w_end]
                rows.append(
                    {
                        "customer_id": customer_id,
                        "billable_metric_id": metric["id"],
                        "billable_metric_name": metric["name"],
                        "start_timestamp": format_ts(w_start),
                        "end_timestamp": format_ts(w_end),
                        "value": _aggregate(metric, inside),
                    }
                )
    return offset_page(rows, query_cursor(request), 100)


@router.post("/v1/usage/groups")
async def usage_groups(request: Request) -> JSONResponse:
    """One customer's usage of one metric per window, split by a group key (or a compound group key)."""
    store = store_of(request)
    body = await json_body(request)
    cursor, limit = page_args(request)
    metric = ref_or_400(store, "billable_metric", req(body, "billable_metric_id"), "billable_metric_id")
    customer = ref_or_400(store, "customer", req(body, "customer_id"), "customer_id")
    window = enum(body.get("window_size"), ("HOUR", "DAY", "NONE"), "window_size")
    start, end = _midnight_range(body)
    group_by = opt(body, "group_by", dict)
    keys = [req(group_by, "key", prefix="group_by.")] if group_by else (str_list(body, "group_key") or [])
    wanted_values = (group_by or {}).get("values")
    filters = opt(body, "group_filters", dict) or {}
    events = [e for e in _Owners(store).events_of(customer["id"]) if _matches(metric, e)]
    rows = []
    for w_start, w_end in _windows(start, end, window):
        inside = [e for e in events if w_start <= parse_ts(e["timestamp"], "timestamp") < w_end]
        groups: dict[tuple, list[dict[str, Any]]] = {}
        for e in inside:
            props = e.get("properties") or {}
            if any(str(props.get(k)) not in [str(v) for v in vals] for k, vals in filters.items()):
                continue
            value = tuple(None if props.get(k) is None else str(props[k]) for k in keys)
            if wanted_values is not None and value[0] not in wanted_values:
                continue
            groups.setdefault(value, []).append(e)
        for value, members in sorted(groups.items(), key=lambda kv: [str(v) for v in kv[0]]):
            row: dict[str, Any] = {
                "starting_on": format_ts(w_start),
                "ending_before": format_ts(w_end),
                "value": _aggregate(metric, members),
            }
            if group_by:
                row.update({"group_key": keys[0], "group_value": value[0]})
            elif keys:
                row["group"] = dict(zip(keys, value, strict=True))
            rows.append(row)
    return offset_page(rows, cursor, limit)
