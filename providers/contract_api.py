"""Reads of contracts: the listing, one contract with its full commit and credit lists, the active
ones of a customer, one by uniqueness key. Shared by the contract, the customer (which refuses to be
archived under active contracts) and the Stripe integration (which never archives a configuration
active contracts bill through)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import metronome

from .client import get_live, paginate
from .diff import instant

# The lists a v2 get may truncate, where the full list is (customer-wide: filtered by contract), and the
# flag that includes contract-level items (without it the listing holds customer-level ones only).
FULL_LISTS = (
    ("commits", "/v1/contracts/customerCommits/list", "include_contract_commits"),
    ("credits", "/v1/contracts/customerCredits/list", "include_contract_credits"),
)
GRANT_PAGE_LIMIT = 25  # docs (List commits): "limit ... Defaults to 25", 1 <= limit <= 25


def list_raw(
    client: metronome.Metronome, customer_id: str, label: str, include_archived: bool = False
) -> list[dict[str, Any]]:
    """The customer's contracts as /v2/contracts/list returns them (raw)."""
    body: dict[str, Any] = {"customer_id": customer_id}
    if include_archived:
        body["include_archived"] = True
    return list(
        paginate(
            client, "POST", "/v2/contracts/list", label=label, body=body, limit=None, cursor_in_body="cursor"
        )
    )


def active_contracts(client: metronome.Metronome, customer_id: str, label: str) -> list[dict[str, Any]]:
    """Contracts not archived and not ended (raw objects)."""
    now = datetime.now(timezone.utc)
    out = []
    for c in list_raw(client, customer_id, label):
        if c.get("archived_at"):
            continue
        end = c.get("ending_before")
        if end and instant(end) <= now:
            continue
        out.append(c)
    return out


def get(client: metronome.Metronome, customer_id: str, contract_id: str, label: str) -> dict[str, Any] | None:
    """The live contract (raw ContractV2), None if archived or missing, with ALL its commits and credits.

    The v2 get may cut the lists short and say so in `has_more` ("use the /contracts/customerCommits/list
    endpoint to get the full list", ContractV2.HasMore in the SDK): then the full list is read there, so
    an item the get left out is never taken for one to add (invoiced twice) or shown as drift.
    """
    body = {"customer_id": customer_id, "contract_id": contract_id}
    contract = get_live(client, "POST", "/v2/contracts/get", label=label, body=body)
    return with_full_lists(client, contract, label) if contract else None


def with_full_lists(client: metronome.Metronome, contract: dict[str, Any], label: str) -> dict[str, Any]:
    """`contract` (a get's or a listing's) with the commits and credits its `has_more` says were cut."""
    more = contract.get("has_more") or {}
    for field, path, include in FULL_LISTS:
        if more.get(field):
            contract[field] = [
                item
                for item in paginate(
                    client,
                    "POST",
                    path,
                    label=label,
                    body={"customer_id": contract["customer_id"], include: True, "include_archived": True},
                    limit=GRANT_PAGE_LIMIT,
                    cursor_in_body="next_page",
                )
                if (item.get("contract") or {}).get("id") == contract["id"]
            ]
    return contract


def _key_matches(live_key: str | None, key: str) -> bool:
    # Metronome may read keys back with a prefix ("x" becomes "contract:x"): compare the tail.
    return bool(live_key) and (live_key == key or live_key.endswith(":" + key))


def find_by_uniqueness_key(
    client: metronome.Metronome, customer_id: str, key: str, label: str, include_archived: bool = True
) -> dict[str, Any] | None:
    hits = [
        c
        for c in list_raw(client, customer_id, label, include_archived)
        if _key_matches(c.get("uniqueness_key"), key)
    ]
    active = [c for c in hits if not c.get("archived_at")]
    return (active or hits or [None])[0]
