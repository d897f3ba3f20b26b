"""Metronome client construction, error wrapping, retries and create-exactly-once.

Reads, updates and archives go through the SDK's own retry loop (429/5xx/connection errors,
backoff honouring Retry-After). Creates of objects without a uniqueness key go through
`create_once`: the SDK's retries are off for the create itself, because a blind replay after a
500-after-processing makes a duplicate; after an ambiguous failure we re-check a listing index.
"""

from __future__ import annotations

import email.utils
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import metronome

from .config import get_settings

# The SDK default is 2; a flaky network or a throttled account deserves a few more attempts.
READ_MAX_RETRIES = 5
MAX_CREATE_ATTEMPTS = 8
PAGE_LIMIT = 100


class MetronomeError(Exception):
    """An API failure, worded as `<Resource> '<name>': <status> <Metronome's message>`."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

    @classmethod
    def from_api(cls, label: str, err: Exception) -> MetronomeError:
        if isinstance(err, metronome.APIStatusError):
            return cls(f"{label}: {err.status_code} {api_message(err)}", err.status_code)
        if isinstance(err, metronome.APITimeoutError):
            return cls(f"{label}: request to Metronome timed out")
        if isinstance(err, metronome.APIConnectionError):
            return cls(f"{label}: cannot reach Metronome ({type(err.__cause__ or err).__name__})")
        return cls(f"{label}: {err}")


def api_message(err: metronome.APIStatusError) -> str:
    """Metronome's own message from an error body (never the request, so never the token)."""
    body = err.body
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if body.get(key):
                value = body[key]
                return value if isinstance(value, str) else str(value)
        return str(body)
    if isinstance(body, str) and body:
        return body
    return err.response.reason_phrase or "error"


# ---------------------------------------------------------------------------------------------
# Client construction
# ---------------------------------------------------------------------------------------------

_CLIENTS: dict[tuple[str | None, str], metronome.Metronome] = {}
_CLIENTS_LOCK = threading.Lock()


def make_client(
    base_url: str | None = None, token: str | None = None, *, max_retries: int = READ_MAX_RETRIES
) -> metronome.Metronome:
    """Build an official client; falls back to METRONOME_BASE_URL / METRONOME_BEARER_TOKEN."""
    try:
        return metronome.Metronome(
            bearer_token=token,
            base_url=base_url,
            max_retries=max_retries,
            timeout=httpx.Timeout(30.0, connect=5.0),
        )
    except metronome.MetronomeError as err:
        raise MetronomeError(
            "no Metronome API token: set the secret config `metronome:apiToken` "
            "(pulumi config set --secret metronome:apiToken ...) or METRONOME_BEARER_TOKEN"
        ) from err


def get_client() -> metronome.Metronome:
    """The per-process client for the configured settings (built on first use, in the host)."""
    settings = get_settings()
    key = (settings.base_url, hashlib.sha256((settings.token or "").encode()).hexdigest())
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = make_client(settings.base_url, settings.token)
        return client


def client_key(client: metronome.Metronome) -> str:
    """What separates per-account caches in one process: the base URL."""
    return str(client.base_url)


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


def raw_request(
    client: metronome.Metronome,
    method: str,
    path: str,
    *,
    body: Any = None,
    params: dict[str, Any] | None = None,
    max_retries: int | None = None,
) -> Any:
    """One API call returning the parsed JSON (SDK exceptions propagate)."""
    options: dict[str, Any] = {}
    if params:
        options["params"] = {k: v for k, v in params.items() if v is not None}
    if max_retries is not None:
        options["max_retries"] = max_retries
    if method == "GET":
        return client.get(path, cast_to=object, options=options)
    if method == "PUT":
        return client.put(path, cast_to=object, body=body, options=options)
    if method == "DELETE":
        return client.delete(path, cast_to=object, body=body, options=options)
    return client.post(path, cast_to=object, body=body if body is not None else {}, options=options)


def request(
    client: metronome.Metronome,
    method: str,
    path: str,
    *,
    label: str,
    body: Any = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """An idempotent call, retried by the SDK; failures become MetronomeError naming `label`."""
    try:
        return raw_request(client, method, path, body=body, params=params)
    except metronome.APIError as err:
        raise MetronomeError.from_api(label, err) from None


def data_of(response: Any) -> Any:
    return response.get("data") if isinstance(response, dict) else None


def get_live(
    client: metronome.Metronome, method: str, path: str, *, label: str, body: Any = None
) -> dict[str, Any] | None:
    """One object by id (the raw `data`); None when it is missing (400/404) or archived."""
    try:
        obj = data_of(request(client, method, path, label=label, body=body))
    except MetronomeError as err:
        if err.status_code in (400, 404):
            return None
        raise
    return obj if obj and not obj.get("archived_at") else None


def paginate(
    client: metronome.Metronome,
    method: str,
    path: str,
    *,
    label: str,
    body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    limit: int | None = PAGE_LIMIT,
    cursor_in_body: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Iterate a cursor-paged listing: query `next_page` (CursorPage) or a body cursor field."""
    cursor: str | None = None
    while True:
        query = dict(params or {})
        req_body = dict(body or {}) if method != "GET" else None
        if cursor_in_body:
            assert req_body is not None
            if limit:
                req_body["limit"] = limit
            if cursor:
                req_body[cursor_in_body] = cursor
        else:
            if limit:
                query["limit"] = limit
            if cursor:
                query["next_page"] = cursor
        page = request(client, method, path, label=label, body=req_body, params=query)
        yield from (page.get("data") or []) if isinstance(page, dict) else []
        cursor = page.get(cursor_in_body or "next_page") if isinstance(page, dict) else None
        if not cursor:
            return


def is_already_archived(err: MetronomeError) -> bool:
    # Metronome answers 400/422 when archiving something already archived: that is success.
    return err.status_code in (400, 422) and "archived" in str(err).lower()


def archive(client: metronome.Metronome, path: str, body: dict[str, Any], *, label: str) -> None:
    try:
        request(client, "POST", path, label=label, body=body)
    except MetronomeError as err:
        if not is_already_archived(err):
            raise


# ---------------------------------------------------------------------------------------------
# Custom field keys: registered once per (account, entity, key) per process
# ---------------------------------------------------------------------------------------------

_KEYS: set[tuple[str, str, str]] = set()
_KEYS_LOCK = threading.Lock()


def ensure_custom_field_keys(client: metronome.Metronome, entity: str, keys: Any, *, label: str) -> None:
    for key in sorted(set(keys)):
        marker = (client_key(client), entity, key)
        # Held across the call so the host's 4 threads register a key once, not once each.
        with _KEYS_LOCK:
            if marker in _KEYS:
                continue
            try:
                request(
                    client,
                    "POST",
                    "/v1/customFields/addKey",
                    label=label,
                    body={"entity": entity, "key": key, "enforce_uniqueness": False},
                )
            except MetronomeError as err:
                # A retried addKey (or another process) meets "already exists": the key is there.
                if not (err.status_code in (400, 409, 422) and "exist" in str(err).lower()):
                    raise
            _KEYS.add(marker)


def set_custom_field_values(
    client: metronome.Metronome, entity: str, entity_id: str, values: dict[str, str], *, label: str
) -> None:
    if not values:
        return
    ensure_custom_field_keys(client, entity, values, label=label)
    request(
        client,
        "POST",
        "/v1/customFields/setValues",
        label=label,
        body={"entity": entity, "entity_id": entity_id, "custom_fields": values},
    )


def delete_custom_field_values(
    client: metronome.Metronome, entity: str, entity_id: str, keys: list[str], *, label: str
) -> None:
    if keys:
        request(
            client,
            "POST",
            "/v1/customFields/deleteValues",
            label=label,
            body={"entity": entity, "entity_id": entity_id, "keys": sorted(keys)},
        )


# ---------------------------------------------------------------------------------------------
# Identity index and create_once
# ---------------------------------------------------------------------------------------------

IDENTITY_FIELD = "iac_identity"
USD_CENTS_ID = "2714e483-4ff1-48e4-9e25-ac732e8f24f2"  # Metronome's default (fiat) credit type
Lister = Callable[[metronome.Metronome], list[tuple[str, dict[str, Any]]]]
Reader = Callable[[metronome.Metronome, str], "dict[str, Any] | None"]


class KindIndex:
    """Live (non-archived) objects of one kind, by `iac_identity` tag; loaded once per process.

    The provider host serves with 4 threads, so loading and refreshing are under a lock; a
    refresh is skipped when another thread already refreshed after our failure.
    """

    def __init__(self, lister: Lister, reader: Reader) -> None:
        self._lister = lister
        self._reader = reader
        self._lock = threading.Lock()
        self._by_tag: dict[str, str] = {}
        self._objects: dict[str, dict[str, Any]] = {}
        self._loaded_at: float | None = None

    def _load(self, client: metronome.Metronome) -> None:
        for object_id, obj in self._lister(client):
            self._objects[object_id] = {"id": object_id, **obj}
            tag = (obj.get("custom_fields") or {}).get(IDENTITY_FIELD)
            if tag:
                self._by_tag[tag] = object_id  # merge: keep ids added locally meanwhile
        self._loaded_at = time.monotonic()

    def ensure_loaded(self, client: metronome.Metronome) -> None:
        with self._lock:
            if self._loaded_at is None:
                self._load(client)

    def refresh(self, client: metronome.Metronome, since: float) -> None:
        with self._lock:
            if self._loaded_at is None or self._loaded_at < since:
                self._load(client)

    def find(self, client: metronome.Metronome, tag: str) -> str | None:
        """The live object tagged `tag`. The index may be older than an archive made since it was
        loaded (a long-lived host, a hand edit), so a hit is confirmed by reading the object."""
        with self._lock:
            object_id = self._by_tag.get(tag)
        if object_id is None:
            return None
        if self._reader(client, object_id) is None:
            self.forget(object_id)
            return None
        return object_id

    def objects(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._objects.values())

    def add(self, tag: str, object_id: str) -> None:
        with self._lock:
            self._by_tag[tag] = object_id

    def forget(self, object_id: str) -> None:
        with self._lock:
            self._objects.pop(object_id, None)
            for tag, oid in list(self._by_tag.items()):
                if oid == object_id:
                    del self._by_tag[tag]


_INDEXES: dict[tuple[str, str], KindIndex] = {}
_INDEXES_LOCK = threading.Lock()


def kind_index(client: metronome.Metronome, kind: str, lister: Lister, reader: Reader) -> KindIndex:
    """The process-wide index of one kind: `lister` gives (id, object) pairs of live objects,
    `reader` reads one object (None when archived or missing)."""
    with _INDEXES_LOCK:
        key = (client_key(client), kind)
        if key not in _INDEXES:
            _INDEXES[key] = KindIndex(lister, reader)
        return _INDEXES[key]


def retry_after_seconds(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    ms = response.headers.get("retry-after-ms")
    if ms:
        try:
            return min(float(ms) / 1000, 60.0)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 60.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return min(max(parsed.timestamp() - time.time(), 0.0), 60.0) if parsed else None


def create_once(
    client: metronome.Metronome,
    *,
    label: str,
    index: KindIndex,
    tag: str,
    create: Callable[[metronome.Metronome], str],
) -> tuple[str, bool]:
    """Create an object tagged `tag` exactly once; returns (id, taken_over_existing).

    `create(client)` must send ONE request with the SDK retries off (use `no_retry(client)`) and
    return the new id. After a timeout, a connection error or a 5xx the create may or may not
    have happened, so we re-read the listing before trying again; after a 429 we wait as told.
    """
    index.ensure_loaded(client)
    existing = index.find(client, tag)
    if existing:
        return existing, True
    delay = 0.5
    last: Exception | None = None
    single = client.with_options(max_retries=0)
    for _attempt in range(MAX_CREATE_ATTEMPTS):
        failed_at = time.monotonic()
        try:
            new_id = create(single)
        except metronome.RateLimitError as err:
            last = err
            time.sleep(retry_after_seconds(err.response) or delay)
        except (metronome.APIConnectionError, metronome.InternalServerError) as err:
            last = err
            index.refresh(client, failed_at)
            existing = index.find(client, tag)
            if existing:
                return existing, True
            time.sleep(retry_after_seconds(getattr(err, "response", None)) or delay)
        except metronome.APIError as err:
            raise MetronomeError.from_api(label, err) from None
        else:
            index.add(tag, new_id)
            return new_id, False
        delay = min(delay * 2, 8.0)
    assert last is not None
    raise MetronomeError(
        f"{MetronomeError.from_api(label, last)} (gave up after {MAX_CREATE_ATTEMPTS} attempts)"
    )
