"""Credit types / custom pricing units: `/v1/credit-types` (create, list, archive; no get or update)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    bad,
    id_response,
    json_body,
    not_found,
    page,
    page_args,
    req,
    store_of,
)
from metronome_iac.emulator.store import USD_CENTS_ID, now_iso

router = APIRouter()

KIND = "credit_type"


@router.get("/v1/credit-types/list")
async def list_credit_types(request: Request) -> JSONResponse:
    cursor, limit = page_args(request)
    items, nxt = store_of(request).list_page(KIND, cursor=cursor, limit=limit)
    return page([{k: ct[k] for k in ("id", "name", "is_currency")} for ct in items], nxt)


@router.post("/v1/credit-types/create")
async def create(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    name = req(body, "name")
    with store.tx():
        ct = store.insert(KIND, {"name": name, "is_currency": False, "archived_at": None})
    return id_response(ct["id"])


@router.post("/v1/credit-types/archive")
async def archive(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    ct_id = req(body, "id")
    with store.tx():
        ct = store.get(KIND, ct_id)
        if ct is None:
            raise not_found("credit type", ct_id)
        if ct_id == USD_CENTS_ID:
            raise bad("id: the USD (cents) credit type cannot be archived")
        if ct.get("archived_at"):
            raise bad(f"credit type '{ct_id}' is already archived")
        store.archive(KIND, ct_id, now_iso())
    return id_response(ct_id)
