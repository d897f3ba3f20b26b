"""Commits and credits across a customer's contracts: `/v1/contracts/customerCommits/list` and
`/v1/contracts/customerCredits/list`, where the full lists are when a contract get cuts them short
(ContractV2.HasMore: "Use the /contracts/customerCommits/list endpoint to get the full list").

Only contract-level grants are modelled (the emulator has no customer-level commits or credits), so the
listing holds something only with `include_contract_commits` / `include_contract_credits`, as on Metronome
(reported: the community Metronome Terraform provider's API notes, "Contract-level commits require
include_contract_commits: true"). Pages of at most 25 (docs, List commits: "limit ... Defaults to 25").
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    check_cursor,
    check_limit,
    covers,
    get_or_404,
    json_body,
    opt,
    page,
    parse_ts,
    req,
    store_of,
)

router = APIRouter()

PAGE_MAX = 25


def _listing(
    request_body: dict[str, Any], request: Request, field: str, id_key: str, include: str
) -> JSONResponse:
    store = store_of(request)
    customer_id = req(request_body, "customer_id")
    get_or_404(store, "customer", customer_id, "customer_id")
    cursor = check_cursor(request_body.get("next_page"), "next_page")
    limit = check_limit(request_body.get("limit"), PAGE_MAX, PAGE_MAX)
    wanted_id = opt(request_body, id_key)
    with_archived = bool(opt(request_body, "include_archived", bool))
    covering = (
        parse_ts(request_body["covering_date"], "covering_date")
        if request_body.get("covering_date")
        else None
    )
    rows: list[dict[str, Any]] = []
    if opt(request_body, include, bool):
        flt = "ALL" if with_archived else "NOT_ARCHIVED"
        for contract in store.all("contract", parent=customer_id, archive_filter=flt):
            for item in contract["terms"].get(field) or []:
                if item.get("archived_at") and not with_archived:
                    continue
                if wanted_id is not None and item["id"] != wanted_id:
                    continue
                items = (item.get("access_schedule") or {}).get("schedule_items") or []
                if covering is not None and not any(covers(i, covering) for i in items):
                    continue
                rows.append({**item, "contract": {"id": contract["id"]}})
    start = int(cursor or 0)
    end = start + limit
    return page(rows[start:end], str(end) if end < len(rows) else None)


@router.post("/v1/contracts/customerCommits/list")
async def list_commits(request: Request) -> JSONResponse:
    return _listing(await json_body(request), request, "commits", "commit_id", "include_contract_commits")


@router.post("/v1/contracts/customerCredits/list")
async def list_credits(request: Request) -> JSONResponse:
    return _listing(await json_body(request), request, "credits", "credit_id", "include_contract_credits")
