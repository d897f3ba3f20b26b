"""Rate cards and their rates: `/v1/contract-pricing/rate-cards/*`.

Rates have no id: a rate is identified by (rate card, product_id, pricing_group_values, starting_at) and
adding a rate with the same identity replaces it (that is how a rate is ended: add it again with
`ending_before`). Each rate is its own document whose id is that identity.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    archive_or_400,
    bad,
    bounds,
    check_bounds,
    check_custom_fields,
    check_type,
    copy_optional,
    covers,
    credit_type_data,
    data,
    enum,
    get_or_404,
    id_response,
    json_body,
    list_documents,
    opt,
    opt_ts,
    page,
    page_args,
    parse_ts,
    ref_or_400,
    refuse_frozen,
    req,
    req_ts,
    store_of,
    str_dict,
    str_list,
)
from metronome_iac.emulator.routers.products import current_state
from metronome_iac.emulator.store import USD_CENTS_ID, Store, now_iso

router = APIRouter()

KIND = "rate_card"
RATE = "rate"
RATE_TYPES = ("FLAT", "PERCENTAGE", "SUBSCRIPTION", "TIERED", "TIERED_PERCENTAGE", "CUSTOM")
FREQUENCIES = ("MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY")


def num_str(value: float) -> str:
    """Numbers the API prints as strings (fiat_per_custom_credit): no trailing `.0`."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _aliases(body: dict[str, Any], field: str = "aliases") -> list[dict[str, Any]] | None:
    raw = opt(body, field, list)
    if raw is None:
        return None
    out = []
    for i, alias in enumerate(raw):
        prefix = f"{field}[{i}]."
        check_type(alias, dict, f"{field}[{i}]")
        item: dict[str, Any] = {"name": req(alias, "name", prefix=prefix)}
        for f in ("starting_at", "ending_before"):
            if alias.get(f) is not None:
                item[f] = opt_ts(alias, f, prefix)
        out.append(item)
    return out


def _conversions(store: Store, body: dict[str, Any], field: str) -> list[dict[str, Any]]:
    out = []
    for i, conv in enumerate(opt(body, field, list) or []):
        prefix = f"{field}[{i}]."
        check_type(conv, dict, f"{field}[{i}]")
        ct_id = req(conv, "custom_credit_type_id", prefix=prefix)
        credit_type_data(store, ct_id, prefix + "custom_credit_type_id")
        factor = req(conv, "fiat_per_custom_credit", float, prefix)
        if factor <= 0:
            raise bad(f"{prefix}fiat_per_custom_credit must be > 0")
        out.append({"custom_credit_type_id": ct_id, "fiat_per_custom_credit": num_str(factor)})
    ids = [c["custom_credit_type_id"] for c in out]
    if len(set(ids)) != len(ids):
        raise bad(f"{field}: a custom credit type appears more than once")
    return out


def view(store: Store, card: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": card["id"],
        "name": card["name"],
        "description": card.get("description"),
        "created_at": card["created_at"],
        "created_by": card["created_by"],
        "aliases": card.get("aliases") or [],
        "fiat_credit_type": credit_type_data(store, card["fiat_credit_type_id"]),
        "credit_type_conversions": [
            {
                "custom_credit_type": credit_type_data(store, c["custom_credit_type_id"]),
                "fiat_per_custom_credit": c["fiat_per_custom_credit"],
            }
            for c in card.get("credit_type_conversions") or []
        ],
        "custom_fields": card.get("custom_fields") or {},
        "archived_at": card.get("archived_at"),
    }


# -- rates ------------------------------------------------------------------------------------------


def _rate_values(store: Store, body: dict[str, Any], prefix: str, *, commit: bool = False) -> dict[str, Any]:
    """rate_type + price/tiers/... checked per rate type (shared by rates, commit rates and overrides)."""
    rate_type = enum(body.get("rate_type"), RATE_TYPES, prefix + "rate_type")
    out: dict[str, Any] = {"rate_type": rate_type}
    price = opt(body, "price", float, prefix)
    if rate_type in ("FLAT", "SUBSCRIPTION"):
        if price is None:
            raise bad(f"{prefix}price is required for {rate_type} rates")
        if price < 0:
            raise bad(f"{prefix}price must be >= 0 for {rate_type} rates")
    if rate_type == "PERCENTAGE":
        if price is None or not 0 <= price <= 1:
            raise bad(f"{prefix}price must be a fraction between 0 and 1 for PERCENTAGE rates")
    if price is not None:
        out["price"] = price
    tiers = opt(body, "tiers", list, prefix)
    if rate_type in ("TIERED", "TIERED_PERCENTAGE") and not tiers:
        raise bad(f"{prefix}tiers is required for {rate_type} rates")
    if tiers:
        if rate_type not in ("TIERED", "TIERED_PERCENTAGE"):
            raise bad(f"{prefix}tiers is only allowed on TIERED rates")
        checked = []
        for i, tier in enumerate(tiers):
            tp = f"{prefix}tiers[{i}]."
            check_type(tier, dict, f"{prefix}tiers[{i}]")
            item = {"price": req(tier, "price", float, tp)}
            if item["price"] < 0:
                raise bad(f"{tp}price must be >= 0")
            size = opt(tier, "size", float, tp)
            if size is not None:
                if size <= 0:
                    raise bad(f"{tp}size must be > 0")
                item["size"] = size
            elif i != len(tiers) - 1:
                raise bad(f"{tp}size is required on every tier but the last")
            if size is not None and i == len(tiers) - 1:
                raise bad(f"{tp}size must not be set on the last tier (it is open-ended)")
            checked.append(item)
        out["tiers"] = checked
    if commit:
        return out
    if rate_type == "CUSTOM":
        out["custom_rate"] = req(body, "custom_rate", dict, prefix)
    copy_optional(out, body, ("quantity",), float, prefix)
    if rate_type == "SUBSCRIPTION" and out.get("quantity", 0) < 0:
        raise bad(f"{prefix}quantity must be >= 0 for SUBSCRIPTION rates")
    if body.get("is_prorated") is not None:
        out["is_prorated"] = opt(body, "is_prorated", bool, prefix)
        if rate_type != "SUBSCRIPTION":
            raise bad(f"{prefix}is_prorated is only allowed on SUBSCRIPTION rates")
        if not out["is_prorated"]:
            raise bad(f"{prefix}is_prorated must be true")
    return out


def validate_rate(
    store: Store, card: dict[str, Any], body: dict[str, Any], prefix: str = ""
) -> dict[str, Any]:
    product_id = req(body, "product_id", prefix=prefix)
    product = ref_or_400(store, "product", product_id, prefix + "product_id", live=True)
    rate: dict[str, Any] = {
        "rate_card_id": card["id"],
        "product_id": product_id,
        "entitled": req(body, "entitled", bool, prefix),
        "starting_at": req_ts(body, "starting_at", prefix),
        "ending_before": opt_ts(body, "ending_before", prefix),
    }
    check_bounds(rate, prefix)
    rate.update(_rate_values(store, body, prefix))
    pgv = str_dict(body, "pricing_group_values", prefix) or {}
    allowed = set(current_state(product).get("pricing_group_key") or [])
    unknown = sorted(set(pgv) - allowed)
    if unknown:
        raise bad(
            f"{prefix}pricing_group_values: {unknown} are not pricing group keys of product '{product_id}'"
        )
    rate["pricing_group_values"] = pgv or None
    ct_id = opt(body, "credit_type_id", str, prefix) or card["fiat_credit_type_id"]
    credit_type_data(store, ct_id, prefix + "credit_type_id")
    usable = {card["fiat_credit_type_id"]} | {
        c["custom_credit_type_id"] for c in card.get("credit_type_conversions") or []
    }
    if ct_id not in usable:
        raise bad(
            f"{prefix}credit_type_id: '{ct_id}' has no credit_type_conversion on rate card '{card['id']}'"
        )
    rate["credit_type_id"] = ct_id
    if body.get("billing_frequency") is not None:
        rate["billing_frequency"] = enum(body["billing_frequency"], FREQUENCIES, prefix + "billing_frequency")
    elif rate["rate_type"] == "FLAT" and product.get("type") == "SUBSCRIPTION":
        raise bad(f"{prefix}billing_frequency is required for a FLAT rate on a SUBSCRIPTION product")
    if body.get("commit_rate") is not None:
        check_type(body["commit_rate"], dict, prefix + "commit_rate")
        rate["commit_rate"] = _rate_values(store, body["commit_rate"], prefix + "commit_rate.", commit=True)
    rate["id"] = rate_identity(card["id"], rate)
    return rate


def rate_identity(rate_card_id: str, rate: dict[str, Any]) -> str:
    pgv = json.dumps(rate.get("pricing_group_values") or {}, sort_keys=True)
    return f"{rate_card_id}|{rate['product_id']}|{pgv}|{rate['starting_at']}"


def rate_view(store: Store, rate: dict[str, Any]) -> dict[str, Any]:
    """The shared `Rate` model (credit_type as {id, name}, not credit_type_id)."""
    out = {
        k: rate.get(k)
        for k in (
            "rate_type",
            "price",
            "tiers",
            "quantity",
            "is_prorated",
            "custom_rate",
            "pricing_group_values",
            "commit_rate",
        )
    }
    out["credit_type"] = credit_type_data(store, rate.get("credit_type_id"))
    return {k: v for k, v in out.items() if v is not None}


def schedule_entry(store: Store, rate: dict[str, Any]) -> dict[str, Any]:
    product = store.get("product", rate["product_id"]) or {}
    state = current_state(product) if product else {}
    return {
        "product_id": rate["product_id"],
        "product_name": state.get("name", ""),
        "product_tags": state.get("tags") or [],
        "product_custom_fields": product.get("custom_fields") or {},
        "entitled": rate["entitled"],
        "starting_at": rate["starting_at"],
        "ending_before": rate.get("ending_before"),
        "billing_frequency": rate.get("billing_frequency"),
        "pricing_group_values": rate.get("pricing_group_values"),
        "commit_rate": rate.get("commit_rate"),
        "rate": rate_view(store, rate),
    }


def _selector_match(store: Store, rate: dict[str, Any], selectors: list[dict[str, Any]] | None) -> bool:
    if not selectors:
        return True
    pgv = rate.get("pricing_group_values") or {}
    for sel in selectors:
        if sel.get("product_id") and sel["product_id"] != rate["product_id"]:
            continue
        if sel.get("billing_frequency") and sel["billing_frequency"] != rate.get("billing_frequency"):
            continue
        if sel.get("pricing_group_values") is not None and sel["pricing_group_values"] != pgv:
            continue
        partial = sel.get("partial_pricing_group_values") or {}
        if any(pgv.get(k) != v for k, v in partial.items()):
            continue
        if sel.get("product_tags"):
            product = store.get("product", rate["product_id"]) or {"initial": {}, "updates": []}
            if not set(sel["product_tags"]) & set(current_state(product).get("tags") or []):
                continue
        return True
    return False


# Selector fields per endpoint: getRates' selectors (rate_list_params.Selector) take product_tags,
# getRateSchedule's (rate_card_retrieve_rate_schedule_params.Selector) do not.
SCHEDULE_SELECTOR_FIELDS = (
    "product_id",
    "billing_frequency",
    "pricing_group_values",
    "partial_pricing_group_values",
)
RATES_SELECTOR_FIELDS = (*SCHEDULE_SELECTOR_FIELDS, "product_tags")


def _selectors(body: dict[str, Any], fields: tuple[str, ...]) -> list[dict[str, Any]] | None:
    sels = opt(body, "selectors", list)
    for i, sel in enumerate(sels or []):
        prefix = f"selectors[{i}]."
        check_type(sel, dict, f"selectors[{i}]")
        unknown = sorted(set(sel) - set(fields))
        if unknown:
            raise bad(f"{prefix}{unknown[0]} is not a selector field here (allowed: {', '.join(fields)})")
        opt(sel, "product_id", str, prefix)
        if sel.get("billing_frequency") is not None:
            enum(sel["billing_frequency"], FREQUENCIES, prefix + "billing_frequency")
        str_dict(sel, "pricing_group_values", prefix)
        str_dict(sel, "partial_pricing_group_values", prefix)
        str_list(sel, "product_tags", prefix)
    return sels


def _overlaps(rate: dict[str, Any], start: datetime, end: datetime | None) -> bool:
    """Does the rate's window overlap [start, end) (open-ended when end is None)?"""
    r_start, r_end = bounds(rate)
    return (end is None or r_start is None or r_start < end) and (r_end is None or start < r_end)


# -- endpoints --------------------------------------------------------------------------------------


@router.post("/v1/contract-pricing/rate-cards/create")
async def create(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    with store.tx():
        fiat = opt(body, "fiat_credit_type_id") or USD_CENTS_ID
        credit_type_data(store, fiat, "fiat_credit_type_id")
        now = now_iso()
        card = {
            "name": req(body, "name"),
            "description": opt(body, "description"),
            "aliases": _aliases(body) or [],
            "fiat_credit_type_id": fiat,
            "credit_type_conversions": _conversions(store, body, "credit_type_conversions"),
            "custom_fields": check_custom_fields(store, KIND, body.get("custom_fields")),
            "created_at": now,
            "created_by": "emulator",
            "archived_at": None,
        }
        store.insert(KIND, card)
    return id_response(card["id"])


@router.post("/v1/contract-pricing/rate-cards/get")
async def retrieve(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    return data(view(store, get_or_404(store, KIND, req(body, "id"))))


@router.post("/v1/contract-pricing/rate-cards/list")
async def list_rate_cards(request: Request) -> JSONResponse:
    store = store_of(request)
    return list_documents(request, KIND, lambda card: view(store, card), body=await json_body(request))


@router.post("/v1/contract-pricing/rate-cards/update")
async def update(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    rate_card_id = req(body, "rate_card_id")
    refuse_frozen(body, ("fiat_credit_type_id", "credit_type_conversions"), "on an existing rate card")
    with store.tx():
        card = get_or_404(store, KIND, rate_card_id, "rate_card_id", live=True)
        if "name" in body:
            card["name"] = req(body, "name")
        if "description" in body:
            card["description"] = opt(body, "description")
        if "aliases" in body:
            card["aliases"] = _aliases(body) or []
        added = _conversions(store, body, "add_credit_type_conversions")
        existing = {c["custom_credit_type_id"] for c in card["credit_type_conversions"]}
        for conv in added:
            if conv["custom_credit_type_id"] in existing:
                raise bad(
                    f"add_credit_type_conversions: '{conv['custom_credit_type_id']}' already has a "
                    "conversion; existing conversions cannot be changed"
                )
        card["credit_type_conversions"].extend(added)
        store.update(KIND, card)
    return id_response(rate_card_id)


@router.post("/v1/contract-pricing/rate-cards/archive")
async def archive(request: Request) -> JSONResponse:
    body = await json_body(request)
    card = archive_or_400(store_of(request), KIND, req(body, "id"))
    return id_response(card["id"])


@router.post("/v1/contract-pricing/rate-cards/addRate")
async def add_rate(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    with store.tx():
        card = get_or_404(store, KIND, req(body, "rate_card_id"), "rate_card_id", live=True)
        rate = validate_rate(store, card, body)
        store.upsert(RATE, rate, parent=card["id"])
    return data(rate_view(store, rate))


@router.post("/v1/contract-pricing/rate-cards/addRates")
async def add_rates(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    rates = req(body, "rates", list)
    with store.tx():
        card = get_or_404(store, KIND, req(body, "rate_card_id"), "rate_card_id", live=True)
        checked = []
        for i, item in enumerate(rates):
            check_type(item, dict, f"rates[{i}]")
            checked.append(validate_rate(store, card, item, prefix=f"rates[{i}]."))
        for rate in checked:  # all or nothing: validate every rate before storing any
            store.upsert(RATE, rate, parent=card["id"])
    return id_response(card["id"])


@router.post("/v1/contract-pricing/rate-cards/getRates")
async def get_rates(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    cursor, limit = page_args(request)
    card = get_or_404(store, KIND, req(body, "rate_card_id"), "rate_card_id")
    at = parse_ts(req(body, "at"), "at")
    selectors = _selectors(body, RATES_SELECTOR_FIELDS)
    items, nxt = store.list_page(
        RATE,
        cursor=cursor,
        limit=limit,
        archive_filter="ALL",
        parent=card["id"],
        where=lambda r: covers(r, at) and _selector_match(store, r, selectors),
    )
    return page([schedule_entry(store, r) for r in items], nxt)


@router.post("/v1/contract-pricing/rate-cards/getRateSchedule")
async def get_rate_schedule(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    cursor, limit = page_args(request)
    card = get_or_404(store, KIND, req(body, "rate_card_id"), "rate_card_id")
    start = parse_ts(req(body, "starting_at"), "starting_at")
    end = parse_ts(body["ending_before"], "ending_before") if body.get("ending_before") else None
    selectors = _selectors(body, SCHEDULE_SELECTOR_FIELDS)

    def wanted(rate: dict[str, Any]) -> bool:
        return _overlaps(rate, start, end) and _selector_match(store, rate, selectors)

    items, nxt = store.list_page(
        RATE, cursor=cursor, limit=limit, archive_filter="ALL", parent=card["id"], where=wanted
    )
    return page([schedule_entry(store, r) for r in items], nxt)
