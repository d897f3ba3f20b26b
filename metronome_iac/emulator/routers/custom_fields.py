"""Custom field keys and values: `/v1/customFields/*`.

Adding a key that is already registered answers 400 "Duplicate custom field key" (as the real API is
reported to); callers that want idempotency treat that as success.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    CUSTOM_FIELD_ENTITIES,
    DOCUMENT_KIND,
    bad,
    check_custom_fields,
    check_type,
    empty,
    enum,
    get_or_404,
    json_body,
    label,
    not_found,
    offset_page,
    opt,
    query_cursor,
    req,
    store_of,
    str_list,
)
from metronome_iac.emulator.store import Store

router = APIRouter()

# Entities stored as documents of their own (the document kind has the entity's name, but for
# contract_product, see common.DOCUMENT_KIND).
DOCUMENTS = {"billable_metric", "contract_product", "rate_card", "customer", "contract", "alert"}
# Entities stored inside a contract document, under these lists of its terms.
NESTED = {"commit": "commits", "contract_credit": "credits"}


def _find(store: Store, entity: str, entity_id: str) -> tuple[dict, dict, Callable[[], None]]:
    """The document to save and the object inside it that holds `custom_fields`."""
    if entity in DOCUMENTS:
        kind = DOCUMENT_KIND.get(entity, entity)
        doc = get_or_404(store, kind, entity_id, "entity_id")
        return doc, doc, lambda: store.update(kind, doc)
    if entity in NESTED:
        for contract in store.all("contract"):
            for item in contract["terms"].get(NESTED[entity], []):
                if item["id"] == entity_id:
                    return contract, item, lambda c=contract: store.update("contract", c)
        raise not_found(label(entity), entity_id, "entity_id")
    # Entities the emulator does not model: keep their values in a document of their own.
    kind = f"custom_values:{entity}"
    doc = store.get(kind, entity_id) or store.insert(kind, {"custom_fields": {}}, id=entity_id)
    return doc, doc, lambda: store.update(kind, doc)


@router.post("/v1/customFields/addKey")
async def add_key(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    entity = enum(body.get("entity"), CUSTOM_FIELD_ENTITIES, "entity")
    key = req(body, "key")
    enforce = req(body, "enforce_uniqueness", bool)
    if not store.add_custom_field_key(entity, key, enforce):
        raise bad(f"Duplicate custom field key: '{key}' for entity '{entity}'")
    return empty()


@router.post("/v1/customFields/removeKey")
async def remove_key(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    entity = enum(body.get("entity"), CUSTOM_FIELD_ENTITIES, "entity")
    key = req(body, "key")
    if not store.remove_custom_field_key(entity, key):
        raise not_found("custom field key", key, "key")
    return empty()


@router.post("/v1/customFields/listKeys")
async def list_keys(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    entities = str_list(body, "entities")
    for i, e in enumerate(entities or []):
        enum(e, CUSTOM_FIELD_ENTITIES, f"entities[{i}]")
    keys = [k for k in store.custom_field_keys() if not entities or k["entity"] in entities]
    return offset_page(keys, query_cursor(request), 100)  # CursorPageWithoutLimit: fixed pages of 100


@router.post("/v1/customFields/setValues")
async def set_values(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    entity = enum(body.get("entity"), CUSTOM_FIELD_ENTITIES, "entity")
    entity_id = req(body, "entity_id")
    values = req(body, "custom_fields", dict)
    with store.tx():
        values = check_custom_fields(store, entity, values, entity_id=entity_id)
        _, holder, save = _find(store, entity, entity_id)
        holder["custom_fields"] = {**(holder.get("custom_fields") or {}), **values}
        save()
    return empty()


@router.post("/v1/customFields/deleteValues")
async def delete_values(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    entity = enum(body.get("entity"), CUSTOM_FIELD_ENTITIES, "entity")
    entity_id = req(body, "entity_id")
    keys = str_list(body, "keys")
    if keys is None:
        raise bad("keys is required")
    check_type(opt(body, "keys", list), list, "keys")
    with store.tx():
        _, holder, save = _find(store, entity, entity_id)
        holder["custom_fields"] = {
            k: v for k, v in (holder.get("custom_fields") or {}).items() if k not in keys
        }
        save()
    return empty()
