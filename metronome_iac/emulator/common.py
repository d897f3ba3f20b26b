"""Helpers shared by the routers: errors, documents, request parsing, field validation, pagination, custom
fields."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from metronome_iac.emulator.store import ARCHIVE_FILTERS, USD_CENTS_ID, Store, format_ts, now_iso

MISSING = object()


class ApiError(Exception):
    """An API error answered as `{"message": ...}` with `status`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(what: str, id: Any, field: str = "id") -> ApiError:
    return ApiError(404, f"{what} not found: {field} '{id}' does not exist")


def conflict(message: str) -> ApiError:
    # No `x-should-retry: false`: the real API's 409s carry no such hint, so the official clients
    # retry them unless told otherwise (issue 10; docs/emulator-fidelity.md).
    return ApiError(409, message)


def store_of(request: Request) -> Store:
    return request.app.state.store


# -- documents --------------------------------------------------------------------------------------


def label(kind: str) -> str:
    """How messages name a document kind: `billable_metric` -> "billable metric"."""
    return kind.replace("_", " ")


def get_or_404(store: Store, kind: str, id: str, field: str = "id", *, live: bool = False) -> dict[str, Any]:
    """The document a request names by `field`: 404 if it does not exist; if `live`, 400 if it is archived."""
    doc = store.get(kind, id)
    if doc is None:
        raise not_found(label(kind), id, field)
    return refuse_archived(doc, kind, field) if live else doc


def ref_or_400(store: Store, kind: str, id: str, field: str, *, live: bool = False) -> dict[str, Any]:
    """A document that the object being written refers to by `field`: an unknown one (or, if `live`, an
    archived one) is bad input, 400."""
    doc = store.get(kind, id)
    if doc is None:
        raise bad(f"{field}: {label(kind)} '{id}' does not exist")
    return refuse_archived(doc, kind, field) if live else doc


def refuse_archived(doc: dict[str, Any], kind: str, field: str) -> dict[str, Any]:
    if doc.get("archived_at"):
        raise bad(f"{field}: {label(kind)} '{doc['id']}' is archived")
    return doc


def archive_or_400(store: Store, kind: str, id: str, field: str = "id") -> dict[str, Any]:
    """Archive a document: 404 if it does not exist, 400 if it is already archived. Returns it archived."""
    with store.tx():
        doc = get_or_404(store, kind, id, field)
        if doc.get("archived_at"):
            raise bad(f"{label(kind)} '{id}' is already archived")
        doc["archived_at"] = now_iso()
        return store.update(kind, doc)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise bad(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise bad("request body must be a JSON object")
    return body


async def json_array_body(request: Request) -> list[Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise bad(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, list):
        raise bad("request body must be a JSON array")
    return body


def data(value: Any) -> JSONResponse:
    return JSONResponse({"data": value})


def id_response(id: str) -> JSONResponse:
    return data({"id": id})


def empty() -> Response:
    """Calls the SDK casts to None: answer 200 with an empty JSON object."""
    return JSONResponse({})


# -- field validation -------------------------------------------------------------------------------


def _typename(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def check_type(value: Any, kind: type | tuple[type, ...], field: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds:
        kinds = (*kinds, int)
    # bool is an int in Python, but not a number in JSON.
    if isinstance(value, bool) and bool not in kinds:
        raise bad(f"{field} must be {_typename(kind)}")
    if not isinstance(value, kinds):
        raise bad(f"{field} must be {_typename(kind)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise bad(f"{field} must be a finite number")
    return value


def req(body: dict[str, Any], field: str, kind: type | tuple[type, ...] = str, prefix: str = "") -> Any:
    value = body.get(field, MISSING)
    if value is MISSING or value is None:
        raise bad(f"{prefix}{field} is required")
    value = check_type(value, kind, prefix + field)
    if kind is str and not value.strip():
        raise bad(f"{prefix}{field} must not be empty")
    return value


def opt(body: dict[str, Any], field: str, kind: type | tuple[type, ...] = str, prefix: str = "") -> Any:
    value = body.get(field)
    if value is None:
        return None
    return check_type(value, kind, prefix + field)


def copy_optional(
    out: dict[str, Any],
    body: dict[str, Any],
    fields: Iterable[str],
    kind: type | tuple[type, ...] = str,
    prefix: str = "",
) -> None:
    """Copy into `out` each of `fields` that `body` sets, type-checked; an unset (or null) field stays absent
    from `out`."""
    for f in fields:
        if body.get(f) is not None:
            out[f] = check_type(body[f], kind, prefix + f)


def refuse_frozen(body: dict[str, Any], fields: Iterable[str], context: str) -> None:
    """Fields that cannot change after creation are refused when present at all (even null)."""
    for f in fields:
        if f in body:
            raise bad(f"{f} cannot be changed {context}")


def enum(value: Any, allowed: Iterable[str], field: str) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise bad(f"{field} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def str_list(body: dict[str, Any], field: str, prefix: str = "") -> list[str] | None:
    value = opt(body, field, list, prefix)
    if value is None:
        return None
    for i, item in enumerate(value):
        check_type(item, str, f"{prefix}{field}[{i}]")
    return value


def str_dict(body: dict[str, Any], field: str, prefix: str = "") -> dict[str, str] | None:
    value = opt(body, field, dict, prefix)
    if value is None:
        return None
    for k, v in value.items():
        check_type(v, str, f"{prefix}{field}.{k}")
    return value


def parse_ts(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise bad(f"{field} must be an RFC 3339 timestamp string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise bad(f"{field} is not a valid RFC 3339 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def ts(value: Any, field: str) -> str:
    """Validate a timestamp and print it in the canonical form (so equal instants compare equal)."""
    return format_ts(parse_ts(value, field))


def opt_ts(body: dict[str, Any], field: str, prefix: str = "") -> str | None:
    value = body.get(field)
    return None if value is None else ts(value, prefix + field)


def req_ts(body: dict[str, Any], field: str, prefix: str = "") -> str:
    if body.get(field) is None:
        raise bad(f"{prefix}{field} is required")
    return ts(body[field], prefix + field)


def bounds(obj: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """An object's `starting_at` (inclusive) and `ending_before` (exclusive); a missing bound is open."""
    start, end = (parse_ts(obj[f], f) if obj.get(f) else None for f in ("starting_at", "ending_before"))
    return start, end


def covers(obj: dict[str, Any], at: datetime) -> bool:
    """Is `at` inside the object's [starting_at, ending_before) window?"""
    start, end = bounds(obj)
    return (start is None or start <= at) and (end is None or at < end)


def check_bounds(obj: dict[str, Any], prefix: str = "") -> None:
    start, end = bounds(obj)
    if start is not None and end is not None and end <= start:
        raise bad(f"{prefix}ending_before must be after starting_at")


# -- pagination -------------------------------------------------------------------------------------


def page_args(request: Request, default_limit: int = 100, max_limit: int = 100) -> tuple[str | None, int]:
    """`next_page` and `limit` from the query string (CursorPage, even on POST lists)."""
    return query_cursor(request), check_limit(request.query_params.get("limit"), default_limit, max_limit)


def query_cursor(request: Request) -> str | None:
    return check_cursor(request.query_params.get("next_page"), "next_page")


def check_cursor(cursor: Any, field: str) -> str | None:
    if cursor in (None, ""):
        return None
    if not str(cursor).isdigit():
        raise bad(f"{field} is not a valid cursor: {cursor!r}")
    return str(cursor)


def check_limit(raw: Any, default: int, maximum: int, field: str = "limit") -> int:
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except (TypeError, ValueError) as exc:
        raise bad(f"{field} must be an integer") from exc
    if limit < 1 or limit > maximum:
        raise bad(f"{field} must be between 1 and {maximum}")
    return limit


def page(items: list[Any], next_page: str | None) -> JSONResponse:
    return JSONResponse({"data": items, "next_page": next_page})


def offset_page(rows: list[Any], cursor: str | None, size: int) -> JSONResponse:
    """A page of a list computed per request (not stored documents): the cursor is an offset into it."""
    start = int(cursor or 0)
    end = start + size
    return page(rows[start:end], str(end) if end < len(rows) else None)


def archive_filter(body: dict[str, Any]) -> str:
    value = body.get("archive_filter") or "NOT_ARCHIVED"
    return enum(value, ARCHIVE_FILTERS, "archive_filter")


def list_documents(
    request: Request,
    kind: str,
    view: Callable[[dict[str, Any]], Any] | None = None,
    *,
    body: dict[str, Any] | None = None,
    default_limit: int = 100,
) -> JSONResponse:
    """A plain list endpoint: one CursorPage of the `kind` documents in creation order, each shaped by
    `view`. Live documents only, unless `body` (a POST list's) has another `archive_filter`."""
    cursor, limit = page_args(request, default_limit)
    flt = "NOT_ARCHIVED" if body is None else archive_filter(body)
    items, nxt = store_of(request).list_page(kind, cursor=cursor, limit=limit, archive_filter=flt)
    return page([view(doc) for doc in items] if view else items, nxt)


def bool_query(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise bad(f"{name} must be true or false")
    return raw.lower() == "true"


# -- custom fields ----------------------------------------------------------------------------------

CUSTOM_FIELD_ENTITIES = (
    "alert",
    "billable_metric",
    "charge",
    "commit",
    "contract_credit",
    "contract_product",
    "contract",
    "credit_grant",
    "customer_plan",
    "customer",
    "discount",
    "invoice",
    "plan",
    "professional_service",
    "product",
    "rate_card",
    "scheduled_charge",
    "subscription",
    "package_commit",
    "package_credit",
    "package_subscription",
    "package_scheduled_charge",
)


# API reference, Set custom field values: "There is a 200 character limit on custom field values."
CUSTOM_FIELD_VALUE_MAX = 200


# Custom-field entities whose objects are stored under another document kind. Contract-pricing
# products are the entity `contract_product` ("Product (Contracts)" in the dashboard); the entity
# `product` means the legacy plans' products, which the emulator does not model.
DOCUMENT_KIND = {"contract_product": "product"}


def check_custom_fields(
    store: Store, entity: str, values: Any, field: str = "custom_fields", entity_id: str | None = None
) -> dict[str, str]:
    """Custom field values may only use keys registered for the entity (the real API refuses others), and
    a key registered with enforce_uniqueness refuses a value another object of the entity already has."""
    if values is None:
        return {}
    check_type(values, dict, field)
    for key, value in values.items():
        check_type(value, str, f"{field}.{key}")
        if len(value) > CUSTOM_FIELD_VALUE_MAX:
            raise bad(f"{field}.{key}: custom field values are at most {CUSTOM_FIELD_VALUE_MAX} characters")
        spec = store.custom_field_key(entity, key)
        if spec is None:
            raise bad(f"{field}: custom field key '{key}' is not registered for entity '{entity}'")
        if spec["enforce_uniqueness"]:
            for other in store.all(DOCUMENT_KIND.get(entity, entity)):
                if other["id"] != entity_id and (other.get("custom_fields") or {}).get(key) == value:
                    raise bad(f"{field}.{key}: value '{value}' is already used by {entity} '{other['id']}'")
    return dict(values)


def credit_type_data(
    store: Store, credit_type_id: str | None, field: str = "credit_type_id"
) -> dict[str, str]:
    ct = ref_or_400(store, "credit_type", credit_type_id or USD_CENTS_ID, field)
    return {"id": ct["id"], "name": ct["name"]}
