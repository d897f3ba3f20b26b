"""Credit types / custom pricing units: `/v1/credit-types` (create, list, archive; no get or update)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    archive_or_400,
    bad,
    id_response,
    json_body,
    list_documents,
    req,
    store_of,
)
from metronome_iac.emulator.store import USD_CENTS_ID

router = APIRouter()

KIND = "credit_type"


@router.get("/v1/credit-types/list")
async def list_credit_types(request: Request) -> JSONResponse:
    return list_documents(request, KIND, lambda ct: {k: ct[k] for k in ("id", "name", "is_currency")})


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
    body = await json_body(request)
    ct_id = req(body, "id")
    if ct_id == USD_CENTS_ID:  # always exists (seeded), so this answer never hides a 404
        raise bad("id: the USD (cents) credit type cannot be archived")
    ct = archive_or_400(store_of(request), KIND, ct_id)
    return id_response(ct["id"])
