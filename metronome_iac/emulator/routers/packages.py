"""Packages: `/v1/packages/*` (create, get, list, archive; packages cannot be edited).

Package terms are relative (offsets and durations from the contract start); they are stored as sent, with an
id on every commit, credit, override and charge and `product_id` resolved to `product {id, name}`.
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
    conflict,
    data,
    enum,
    get_or_404,
    id_response,
    json_body,
    list_documents,
    opt,
    page,
    page_args,
    req,
    store_of,
)
from metronome_iac.emulator.routers.contracts import FREQUENCIES, resolve_rate_card
from metronome_iac.emulator.routers.rate_cards import _aliases
from metronome_iac.emulator.routers.terms import COMMIT_TYPES, product_ref
from metronome_iac.emulator.store import Store, new_id, now_iso

router = APIRouter()

KIND = "package"
KEY_PREFIX = "package:"  # the API reads keys back with this prefix; normalise both ways
UNITS = ("DAYS", "WEEKS", "MONTHS", "YEARS")


def _normalise_key(key: str) -> str:
    return key if key.startswith(KEY_PREFIX) else KEY_PREFIX + key


def _items(store: Store, body: dict[str, Any], field: str, *, kind: str) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(opt(body, field, list) or []):
        prefix = f"{field}[{i}]."
        check_type(item, dict, f"{field}[{i}]")
        entry = {k: v for k, v in item.items() if k != "product_id"}
        entry["id"] = new_id()
        if kind == "override":
            entry.setdefault("override_specifiers", [])
            if item.get("starting_at_offset") is None:
                raise bad(f"{prefix}starting_at_offset is required")
            if item.get("product_id") is not None:
                entry["product"] = product_ref(store, item["product_id"], prefix + "product_id")
        else:
            entry["product"] = product_ref(store, item.get("product_id"), prefix + "product_id")
        if kind == "commit":
            entry["type"] = enum(item.get("type"), COMMIT_TYPES, prefix + "type")
        if kind == "charge" and item.get("schedule") is None:
            raise bad(f"{prefix}schedule is required")
        out.append(entry)
    return out


@router.post("/v1/packages/create")
async def create(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    name = req(body, "name")
    key = opt(body, "uniqueness_key")
    with store.tx():
        if key is not None:
            owner = store.key_owner(KIND, _normalise_key(key))
            if owner is not None:
                raise conflict(f"uniqueness_key: '{key}' was already used by package '{owner}'")
        duration = opt(body, "duration", dict)
        if duration is not None:
            duration = {
                "unit": enum(duration.get("unit"), UNITS, "duration.unit"),
                "value": req(duration, "value", int, "duration."),
            }
        schedule = opt(body, "usage_statement_schedule", dict) or {"frequency": "MONTHLY"}
        enum(schedule.get("frequency"), FREQUENCIES, "usage_statement_schedule.frequency")
        package = {
            "name": name,
            "contract_name": opt(body, "contract_name"),
            "rate_card_id": resolve_rate_card(store, body, now_iso()),
            "aliases": _aliases(body) or [],
            "billing_provider": body.get("billing_provider"),
            "delivery_method": body.get("delivery_method"),
            "duration": duration,
            "net_payment_terms_days": opt(body, "net_payment_terms_days", float),
            "commits": _items(store, body, "commits", kind="commit"),
            "credits": _items(store, body, "credits", kind="credit"),
            "overrides": _items(store, body, "overrides", kind="override"),
            "scheduled_charges": _items(store, body, "scheduled_charges", kind="charge"),
            "usage_statement_schedule": schedule,
            "custom_fields": check_custom_fields(store, KIND, body.get("custom_fields")),
            "uniqueness_key": _normalise_key(key) if key is not None else None,
            "created_at": now_iso(),
            "created_by": "emulator",
            "archived_at": None,
        }
        store.insert(KIND, package)
        if key is not None:
            store.claim_key(KIND, _normalise_key(key), package["id"])
    return id_response(package["id"])


@router.post("/v1/packages/get")
async def retrieve(request: Request) -> JSONResponse:
    body = await json_body(request)
    return data(get_or_404(store_of(request), KIND, req(body, "package_id"), "package_id"))


@router.post("/v1/packages/list")
async def list_packages(request: Request) -> JSONResponse:
    return list_documents(request, KIND, body=await json_body(request), default_limit=10)


@router.post("/v1/packages/archive")
async def archive(request: Request) -> JSONResponse:
    body = await json_body(request)
    package = archive_or_400(store_of(request), KIND, req(body, "package_id"), "package_id")
    return id_response(package["id"])


@router.post("/v1/packages/listContractsOnPackage")
async def contracts_on_package(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    package_id = req(body, "package_id")
    get_or_404(store, KIND, package_id, "package_id")
    cursor, limit = page_args(request)
    flt = "ALL" if opt(body, "include_archived", bool) else "NOT_ARCHIVED"
    items, nxt = store.list_page(
        "contract",
        cursor=cursor,
        limit=limit,
        archive_filter=flt,
        where=lambda c: c.get("package_id") == package_id,
    )
    return page(
        [
            {
                "contract_id": c["id"],
                "customer_id": c["customer_id"],
                "starting_at": c["terms"]["starting_at"],
                "ending_before": c["terms"].get("ending_before"),
                "archived_at": c.get("archived_at"),
            }
            for c in items
        ],
        nxt,
    )
