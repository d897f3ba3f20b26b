"""Offset lifecycle-event notifications (v2): `/v2/notifications/{create,get,edit,archive}` and
`/v2/notifications/offset/list` (metronome/resources/v2/notifications/offset.py).

A notification fires `policy.offset` (a signed ISO-8601 duration: "-P7D" is 7 days before) from a lifecycle
event of the types Metronome's system notifications have (docs: Set up notifications > System notifications).
Edit changes the policy's offset only: `policy.type` must match the existing one, and `is_enabled` is for
system notifications. An archived notification cannot be edited; uniqueness keys answer 409 on reuse.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    archive_filter,
    bad,
    check_cursor,
    check_limit,
    check_type,
    conflict,
    data,
    enum,
    get_or_404,
    json_body,
    opt,
    req,
    store_of,
)
from metronome_iac.emulator.store import now_iso

router = APIRouter()

KIND = "notification"
EVENT_TYPES = (
    "contract.create",
    "contract.start",
    "contract.edit",
    "contract.end",
    "contract.archive",
    "commit.create",
    "commit.edit",
    "commit.archive",
    "commit.segment.start",
    "commit.segment.end",
    "credit.create",
    "credit.edit",
    "credit.archive",
    "credit.segment.start",
    "credit.segment.end",
)
# Hours, days, weeks, months and years (the offset notifications docs), signed.
OFFSET = re.compile(r"^-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?)?$")
MAX_PAGE = 400  # "Returns a maximum of 400 results per request"


def _policy(body: dict[str, Any]) -> dict[str, str]:
    policy = req(body, "policy", dict)
    kind = enum(policy.get("type"), EVENT_TYPES, "policy.type")
    offset = req(policy, "offset", str, "policy.")
    if not OFFSET.match(offset):
        raise bad(f"policy.offset: '{offset}' is not an ISO-8601 duration such as -P7D or PT12H")
    return {"type": kind, "offset": offset}


@router.post("/v2/notifications/create")
async def create(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    name = req(body, "name")
    policy = _policy(body)
    key = opt(body, "uniqueness_key")
    with store.tx():
        if key is not None:
            owner = store.key_owner(KIND, key)
            if owner is not None:
                raise conflict(f"uniqueness_key: '{key}' is already used by notification {owner}")
        doc = {
            "name": name,
            "policy": policy,
            "type": "OFFSET",
            "environment_type": "SANDBOX",
            "created_at": now_iso(),
            "created_by": "emulator",
            "archived_at": None,
        }
        store.insert(KIND, doc)
        if key is not None:
            store.claim_key(KIND, key, doc["id"])
    return data(doc)


@router.post("/v2/notifications/get")
async def retrieve(request: Request) -> JSONResponse:
    body = await json_body(request)
    return data(get_or_404(store_of(request), KIND, req(body, "id")))


@router.post("/v2/notifications/offset/list")
async def list_offsets(request: Request) -> JSONResponse:
    body = await json_body(request)
    cursor = check_cursor(body.get("cursor"), "cursor")
    limit = check_limit(body.get("limit"), MAX_PAGE, MAX_PAGE)
    items, nxt = store_of(request).list_page(
        KIND, cursor=cursor, limit=limit, archive_filter=archive_filter(body)
    )
    return JSONResponse({"data": items, "cursor": nxt})


@router.post("/v2/notifications/edit")
async def edit(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    notification_id = opt(body, "id")
    if notification_id is None:
        raise bad("id is required to edit an offset notification (system notifications are not modelled)")
    if body.get("is_enabled") is not None:
        raise bad("is_enabled is only supported for system lifecycle events")
    with store.tx():
        doc = get_or_404(store, KIND, notification_id)
        if doc.get("archived_at"):
            raise bad(f"notification '{notification_id}' is archived")
        policy = check_type(req(body, "policy", dict), dict, "policy")
        if policy.get("type") != doc["policy"]["type"]:
            raise bad(f"policy.type must match the existing lifecycle event type '{doc['policy']['type']}'")
        doc["policy"] = _policy(body)
        doc = store.update(KIND, doc)
    return data(doc)


@router.post("/v2/notifications/archive")
async def archive(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    with store.tx():
        doc = get_or_404(store, KIND, req(body, "id"))
        if not doc.get("archived_at"):
            doc = store.archive(KIND, doc["id"], now_iso()) or doc
    return data(doc)
