"""The Metronome client: its construction, requests, error wording, retries, the shape of an answer,
and listings (paged, and the per-process listing cache adopt searches).

Reads, updates and archives go through the SDK's own retry loop (429/5xx/connection errors,
backoff honouring Retry-After), except that a 409 is never retried (`MetronomeClient`). An answer
that should carry `data` is checked for it: a 2xx without it, or with a body that is not JSON, is
an error naming the resource and the call (`UnexpectedAnswer`), never "nothing there".

Creates go through `exactly_once.create_once` (the Idempotency-Key, the look-up after an ambiguous
failure, custom field key registration), which sends its single POST through `raw_request` here.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import metronome

from .config import get_settings

# The SDK default is 2; a flaky network or a throttled account deserves a few more attempts.
READ_MAX_RETRIES = 5
PAGE_LIMIT = 100
SHAPE_RETRIES = 2  # an idempotent call answered out of shape is asked again this many times
USD_CENTS_ID = "2714e483-4ff1-48e4-9e25-ac732e8f24f2"  # Metronome's default (fiat) credit type


class MetronomeError(Exception):
    """An API failure, worded as `<Resource> '<name>': <status> <Metronome's message>`."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

    @classmethod
    def from_api(cls, label: str, err: Exception) -> MetronomeError:
        call = _call_of(err)
        if isinstance(err, metronome.APIStatusError):
            return cls(f"{label}: {err.status_code} {api_message(err)}{call}", err.status_code)
        if isinstance(err, metronome.APITimeoutError):
            return cls(f"{label}: request to Metronome timed out{call}")
        if isinstance(err, metronome.APIConnectionError):
            return cls(f"{label}: cannot reach Metronome ({type(err.__cause__ or err).__name__}){call}")
        return cls(f"{label}: {err}")


def _call_of(err: Exception) -> str:
    """ " (METHOD /path)" of the request an SDK error is about (never its headers: the token)."""
    request = getattr(err, "request", None)
    return f" ({request.method} {request.url.path})" if isinstance(request, httpx.Request) else ""


class UnexpectedAnswer(MetronomeError):
    """A 2xx answer whose body is not the documented shape: not JSON, or without its `data`.

    Never read as "nothing there": after a create it is ambiguous (the object may exist), after a
    read or a listing it is an error naming the resource and the call."""


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


def _excerpt(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------------------------
# Client construction
# ---------------------------------------------------------------------------------------------


class MetronomeClient(metronome.Metronome):
    """The official client, except that it never retries a 409.

    The SDK retries a 409 ("lock timeouts", `SyncAPIClient._should_retry` in the SDK's
    `_base_client.py`) unless the answer says `x-should-retry: false`, which Metronome's 409s
    (a used uniqueness key or ingest alias, an Idempotency-Key reused) do not: the retries only
    delay (about 14 s with our retry count) what the provider does with a 409 anyway."""

    def _should_retry(self, response: httpx.Response) -> bool:
        return response.status_code != 409 and super()._should_retry(response)


_CLIENTS: dict[tuple[str | None, str], metronome.Metronome] = {}
_CLIENTS_LOCK = threading.Lock()


def make_client(
    base_url: str | None = None, token: str | None = None, *, max_retries: int = READ_MAX_RETRIES
) -> metronome.Metronome:
    """Build an official client; falls back to METRONOME_BASE_URL / METRONOME_BEARER_TOKEN."""
    try:
        return MetronomeClient(
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
    headers: dict[str, str] | None = None,
    label: str = "Metronome",
) -> Any:
    """One API call returning the parsed JSON (SDK exceptions propagate). An empty body reads as
    `{}`; a body that is not JSON raises `UnexpectedAnswer` naming `label` and the call."""
    options: dict[str, Any] = {}
    if params:
        options["params"] = {k: v for k, v in params.items() if v is not None}
    if max_retries is not None:
        options["max_retries"] = max_retries
    if headers:
        options["headers"] = headers
    try:
        if method == "GET":
            answer = client.get(path, cast_to=object, options=options)
        elif method == "PUT":
            answer = client.put(path, cast_to=object, body=body, options=options)
        elif method == "DELETE":
            answer = client.delete(path, cast_to=object, body=body, options=options)
        else:
            answer = client.post(path, cast_to=object, body=body if body is not None else {}, options=options)
    except json.JSONDecodeError as err:  # a JSON content type with something else in it
        if not err.doc.strip():
            return {}
        raise UnexpectedAnswer(
            f"{label}: {method} {path} answered with a body that is not JSON: {_excerpt(err.doc)!r}"
        ) from None
    if not isinstance(answer, (dict, list)):  # the SDK hands other content types back as text
        raise UnexpectedAnswer(f"{label}: {method} {path} answered with a body that is not JSON: {answer!r}")
    return answer


def request(
    client: metronome.Metronome,
    method: str,
    path: str,
    *,
    label: str,
    body: Any = None,
    params: dict[str, Any] | None = None,
    expect: type | None = None,
) -> Any:
    """An idempotent call, retried by the SDK; failures become MetronomeError naming `label`.

    With `expect` (dict or list), the answer's `data` must be one. An answer not in shape (not JSON,
    no `data`) is asked again, up to SHAPE_RETRIES times (the call is idempotent), then raises
    `UnexpectedAnswer`."""
    for attempt in range(SHAPE_RETRIES + 1):
        try:
            answer = raw_request(client, method, path, body=body, params=params, label=label)
            if expect is not None:
                data_in(answer, label, f"{method} {path}", expect)
            return answer
        except metronome.APIError as err:
            raise MetronomeError.from_api(label, err) from None
        except UnexpectedAnswer:
            if attempt == SHAPE_RETRIES:
                raise
    raise AssertionError("unreachable")


def data_of(response: Any) -> Any:
    return response.get("data") if isinstance(response, dict) else None


def data_in(answer: Any, label: str, call: str, kind: type = dict) -> Any:
    """The answer's `data`, which must be a `kind` (dict or list): else `UnexpectedAnswer`."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, kind):
        what = "without `data`" if data is None else f"with `data` that is not a {kind.__name__}"
        raise UnexpectedAnswer(f"{label}: {call} answered {what}: {_excerpt(answer)}")
    return data


def created_id(answer: Any, label: str, call: str) -> str:
    """The id a create answered (`{"data": {"id": ...}}`); `UnexpectedAnswer` if it is not there."""
    object_id = data_in(answer, label, call).get("id")
    if not isinstance(object_id, str) or not object_id:
        raise UnexpectedAnswer(f"{label}: {call} answered without `data.id`: {_excerpt(answer)}")
    return object_id


def get_live(
    client: metronome.Metronome, method: str, path: str, *, label: str, body: Any = None
) -> dict[str, Any] | None:
    """One object by id (the raw `data`); None only when the API says it is gone: a 404, or the
    object carries `archived_at`. Any other failure, or an answer without `data`, raises."""
    try:
        obj = request(client, method, path, label=label, body=body, expect=dict)["data"]
    except MetronomeError as err:
        if err.status_code == 404:
            return None
        raise
    return None if obj.get("archived_at") else obj


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
    """Iterate a cursor-paged listing: query `next_page` (CursorPage) or a body cursor field.
    A page without a `data` list raises (a listing that cannot be read is not an empty one)."""
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
        page = request(client, method, path, label=label, body=req_body, params=query, expect=list)
        yield from page["data"]
        cursor = page.get(cursor_in_body or "next_page")
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


# ---------------------------------------------------------------------------------------------
# Listing cache (adopt by natural key)
# ---------------------------------------------------------------------------------------------

Lister = Callable[[metronome.Metronome], list[tuple[str, dict[str, Any]]]]
Reader = Callable[[metronome.Metronome, str], "dict[str, Any] | None"]


class KindIndex:
    """Live objects of one kind, input-shaped, as one listing gave them: what adopt searches by
    natural key (a name has no filtered query). Loaded on the first adopt by name in a host, not on
    the create path. Loading is under a lock: the host serves 4 calls at a time."""

    def __init__(self, lister: Lister, reader: Reader) -> None:
        self._lister = lister
        self._reader = reader
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Any]] | None = None

    def _load(self, client: metronome.Metronome) -> None:
        self._objects = {object_id: {"id": object_id, **obj} for object_id, obj in self._lister(client)}

    def ensure_loaded(self, client: metronome.Metronome) -> None:
        with self._lock:
            if self._objects is None:
                self._load(client)

    def reload(self, client: metronome.Metronome) -> None:
        with self._lock:
            self._load(client)

    def objects(self) -> list[dict[str, Any]]:
        with self._lock:
            return list((self._objects or {}).values())

    def forget(self, object_id: str) -> None:
        with self._lock:
            (self._objects or {}).pop(object_id, None)

    def still_live(self, client: metronome.Metronome, object_id: str) -> bool:
        """Read the object now: the listing may be older than an archive (a long-lived host, a hand edit)."""
        if self._reader(client, object_id) is not None:
            return True
        self.forget(object_id)
        return False


_INDEXES: dict[tuple[str, str], KindIndex] = {}
_INDEXES_LOCK = threading.Lock()


def kind_index(client: metronome.Metronome, kind: str, lister: Lister, reader: Reader) -> KindIndex:
    """The process-wide listing cache of one kind: `lister` gives (id, object) pairs of live
    objects, `reader` reads one object (None when archived or missing)."""
    with _INDEXES_LOCK:
        key = (client_key(client), kind)
        if key not in _INDEXES:
            _INDEXES[key] = KindIndex(lister, reader)
        return _INDEXES[key]
