"""Metronome client construction, error wrapping, retries and create-exactly-once.

Reads, updates and archives go through the SDK's own retry loop (429/5xx/connection errors,
backoff honouring Retry-After), except that a 409 is never retried (`MetronomeClient`). An answer
that should carry `data` is checked for it: a 2xx without it, or with a body that is not JSON, is
an error naming the resource and the call (`UnexpectedAnswer`), never "nothing there".

Creates go through `create_once`: one POST with an Idempotency-Key derived from the resource's
identity and inputs, and no listing before it; after an ambiguous failure, a look-up that starts
after that POST was answered, then the same key again.
"""

from __future__ import annotations

import email.utils
import hashlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import metronome

from .config import get_settings

# The SDK default is 2; a flaky network or a throttled account deserves a few more attempts.
READ_MAX_RETRIES = 5
MAX_CREATE_ATTEMPTS = 8
FIRST_BACKOFF = 0.5  # seconds before the second attempt of a create, doubling up to MAX_BACKOFF
MAX_BACKOFF = 8.0
PAGE_LIMIT = 100
SHAPE_RETRIES = 2  # an idempotent call answered out of shape is asked again this many times


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


# ---------------------------------------------------------------------------------------------
# Custom field keys: registered when the API refuses a request for want of one
# ---------------------------------------------------------------------------------------------

T = TypeVar("T")


def is_key_registered(err: MetronomeError) -> bool:
    """addKey for a key the account has: the real API answers 400 "Duplicate custom field key"
    (the community Terraform provider's API notes); other wordings say it "already exists"."""
    message = str(err).lower()
    return err.status_code in (400, 409, 422) and ("duplicate" in message or "exist" in message)


def refused_for_key(err: metronome.APIStatusError, keys: Any) -> bool:
    """A request carrying custom field `keys` refused because a key is not on the entity's allow list
    ("Add a key to the allow list for an entity": docs, create a custom field key). Metronome does not
    publish the refusal's wording: a 400 or 422 that names one of the keys, or custom fields, and is not
    about a value (its length, a value another object has) counts."""
    if err.status_code not in (400, 422):
        return False
    message = api_message(err).lower()
    about_keys = any(word in message for word in ("custom field", "custom_field", *map(str.lower, keys)))
    about_a_value = any(word in message for word in ("character", "already used", "duplicate"))
    return about_keys and not about_a_value


_REGISTERED_AT: dict[tuple[str, str, str], float] = {}  # (account, entity, key): when this host added it
_REGISTERING = threading.Lock()  # registrations one at a time: parallel refusals make one addKey


def register_keys(
    client: metronome.Metronome, entity: str, keys: Any, *, label: str, refused_since: float = 0.0
) -> None:
    """Put `keys` on `entity`'s allow list (a key already there is no error). A key this host added after
    `refused_since` (the refused request was sent before that) is not added again."""
    with _REGISTERING:
        for key in sorted(set(keys)):
            marker = (client_key(client), entity, key)
            if _REGISTERED_AT.get(marker, -1.0) > refused_since:
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
                # Registered by an earlier `up`, another process, or a retried addKey: it is there.
                if not is_key_registered(err):
                    raise
            _REGISTERED_AT[marker] = time.monotonic()


def registering_keys(
    client: metronome.Metronome, entity: str, keys: Any, *, label: str, send: Callable[[], T]
) -> T:
    """`send()` a request carrying custom field `keys` of `entity`; if the API refuses it because a key
    is not registered, register them and send the same request once more. A refusal of validation
    keeps nothing under the request's Idempotency-Key (docs: idempotency), so the same key is sent again.
    Keys are registered when refused, never up front: an account that has them costs no call."""
    sent_at = time.monotonic()
    try:
        return send()
    except metronome.APIStatusError as err:
        if not entity or not keys or not refused_for_key(err, keys):
            raise
    register_keys(client, entity, keys, label=label, refused_since=sent_at)
    return send()


def set_custom_field_values(
    client: metronome.Metronome, entity: str, entity_id: str, values: dict[str, str], *, label: str
) -> None:
    if not values:
        return
    body = {"entity": entity, "entity_id": entity_id, "custom_fields": values}
    try:
        registering_keys(
            client,
            entity,
            values,
            label=label,
            send=lambda: raw_request(client, "POST", "/v1/customFields/setValues", body=body, label=label),
        )
    except metronome.APIError as err:
        raise MetronomeError.from_api(label, err) from None


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
# Listing cache (adopt by natural key)
# ---------------------------------------------------------------------------------------------

IDENTITY_FIELD = "iac_identity"
USD_CENTS_ID = "2714e483-4ff1-48e4-9e25-ac732e8f24f2"  # Metronome's default (fiat) credit type
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
# Creating exactly once
# ---------------------------------------------------------------------------------------------

IDEMPOTENCY_HEADER = "Idempotency-Key"
# This host process's mark. Tagged kinds carry it in the `iac_identity` they are created with (so
# another host run's create of the same resource sends other parameters under the same key, which
# the API refuses with a 409: see `create_once`); contracts in their Idempotency-Key.
HOST_TOKEN = secrets.token_hex(4)

_SLOTS_LOCK = threading.Lock()
_SLOT_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_CREATED: dict[tuple[str, str, str], str] = {}  # (account, scope, tag) -> the object this host made or found
_RETIRED: set[tuple[str, str]] = set()  # (account, id) archived by this host or read as gone
_FRESH_KEYS = itertools.count(1)
# The look-up after an ambiguous create: (client, the 409 of a held uniqueness key or None) -> live id.
Finder = Callable[[metronome.Metronome, "metronome.ConflictError | None"], "str | None"]


def retire(client: metronome.Metronome, object_id: str) -> None:
    """`object_id` is archived (by this host) or gone (read): an Idempotency-Key that answers with it
    again is a replay of an old create, and a later create of its resource needs a new object."""
    with _SLOTS_LOCK:
        _RETIRED.add((client_key(client), object_id))
        for slot in [s for s, oid in _CREATED.items() if oid == object_id]:
            del _CREATED[slot]


def _retired(client: metronome.Metronome, object_id: str) -> bool:
    with _SLOTS_LOCK:
        return (client_key(client), object_id) in _RETIRED


def _slot_lock(slot: tuple[str, str, str]) -> threading.Lock:
    with _SLOTS_LOCK:
        return _SLOT_LOCKS.setdefault(slot, threading.Lock())


def _fresh_key(key: str) -> str:
    """A key no earlier request used: this host's token and a counter, after the derived key."""
    return f"{key}~{HOST_TOKEN}.{next(_FRESH_KEYS)}"


def created_id(answer: Any, label: str, call: str) -> str:
    """The id a create answered (`{"data": {"id": ...}}`); `UnexpectedAnswer` if it is not there."""
    object_id = data_in(answer, label, call).get("id")
    if not isinstance(object_id, str) or not object_id:
        raise UnexpectedAnswer(f"{label}: {call} answered without `data.id`: {_excerpt(answer)}")
    return object_id


def _idempotency_conflict(err: metronome.APIStatusError) -> str | None:
    """What a 409 says of the Idempotency-Key: "reused" (the key answered a request with other
    parameters), "in_progress" (a request with the key is still running), None (another conflict:
    a uniqueness key, an ingest alias)."""
    message = api_message(err).lower()
    if "idempotency" not in message:
        return None
    return "reused" if "different" in message else "in_progress"


def create_once(
    client: metronome.Metronome,
    *,
    label: str,
    scope: str,
    tag: str,
    key: str,
    call: str,
    post: Callable[[metronome.Metronome, dict[str, str]], Any],
    find: Finder,
    still_ours: Callable[[metronome.Metronome, str], bool],
) -> tuple[str, bool]:
    """Create the object that `tag` names exactly once; returns (id, taken_over_existing).

    - `post(single, headers)` sends ONE create (`call`, e.g. "POST /v1/customers") with the SDK
      retries off (`single`) and `headers` (the Idempotency-Key), and returns the parsed answer.
    - `find(client, conflict)` looks up, now, the live object carrying `tag` (a filtered query where
      the API has one); `conflict` is the 409 the create was refused with for a uniqueness key or an
      ingest alias another object holds (its body may name that object), None after other failures;
      `still_ours(client, id)` reads one object: is it live, and what this create asks for?
    - `key` is the Idempotency-Key, derived from the resource's identity and inputs.

    Creates of one `tag` in this host run one at a time; a later one takes the earlier one's object
    (if `still_ours`). Nothing is listed first: Metronome answers a repeated Idempotency-Key with the
    first answer for at least 24 h, an error included (docs.metronome.com/api-reference/idempotency),
    so a retry with the same key cannot duplicate. After an ambiguous failure (connection error,
    timeout, 5xx, a 2xx that is not the documented shape, a 409) the provider waits, looks the object
    up (the look-up starts after the POST was answered, so it sees what that POST made), and only
    then sends again. The same key, unless it cannot succeed and the look-up found nothing: it was
    used for a request with other parameters (another host run's create, whose object is gone), the
    API keeps answering it with the same 500, or it answers with an object this host has archived;
    then a fresh key. A look-up that fails never counts as "not there".
    """
    slot = (client_key(client), scope, tag)
    with _slot_lock(slot):
        with _SLOTS_LOCK:
            known = _CREATED.get(slot)
        if known is not None:
            if still_ours(client, known):
                return known, True
            # Archived since, or no longer what this create asks for (a replacement that keeps the
            # uniqueness key): the key that made it would answer with it again.
            key = _fresh_key(key)
        object_id, taken_over = _create(client, label, key, call, post, find)
        with _SLOTS_LOCK:
            _CREATED[slot] = object_id
        return object_id, taken_over


def _create(
    client: metronome.Metronome,
    label: str,
    key: str,
    call: str,
    post: Callable[[metronome.Metronome, dict[str, str]], Any],
    find: Finder,
) -> tuple[str, bool]:
    single = client.with_options(max_retries=0)
    attempt_key, delay, errors_on_key = key, FIRST_BACKOFF, 0
    last = ""
    for _attempt in range(MAX_CREATE_ATTEMPTS):
        try:
            object_id = created_id(post(single, {IDEMPOTENCY_HEADER: attempt_key}), label, call)
        except metronome.RateLimitError as err:  # refused before it ran: wait as told, same key
            last = str(MetronomeError.from_api(label, err))
            time.sleep(retry_after_seconds(err.response) or delay)
        except metronome.ConflictError as err:
            last = str(MetronomeError.from_api(label, err))
            conflict = _idempotency_conflict(err)
            if conflict == "in_progress":  # an earlier attempt (timed out here) still runs: let it end
                time.sleep(retry_after_seconds(err.response) or delay)
            found, lookup_error = _look_up(client, find, err if conflict is None else None)
            if found:
                return found, True
            if conflict is None:  # a uniqueness key or an ingest alias another object holds
                raise MetronomeError.from_api(label, err) from None
            if conflict == "reused":
                if lookup_error is not None:
                    raise MetronomeError(f"{last}; the look-up failed: {lookup_error}", 409) from None
                attempt_key, errors_on_key = _fresh_key(key), 0
            # in progress: the same key again, which the API answers with that attempt's answer
        except (metronome.APIConnectionError, metronome.InternalServerError, UnexpectedAnswer) as err:
            failure = err if isinstance(err, UnexpectedAnswer) else MetronomeError.from_api(label, err)
            last = str(failure)
            time.sleep(retry_after_seconds(getattr(err, "response", None)) or delay)
            found, lookup_error = _look_up(client, find, None)
            if found:
                return found, True
            if isinstance(err, metronome.InternalServerError) and err.status_code == 500:
                # The API keeps a 500 under its key too: after the second one, and nothing found by a
                # look-up that began after it was answered, that key can only answer 500 again.
                errors_on_key += 1
                if errors_on_key >= 2 and lookup_error is None:
                    attempt_key, errors_on_key = _fresh_key(key), 0
            if lookup_error is not None:
                last = f"{last}; looking the object up failed: {lookup_error}"
        except metronome.APIError as err:
            raise MetronomeError.from_api(label, err) from None
        else:
            if not _retired(client, object_id):
                return object_id, False
            attempt_key, errors_on_key = _fresh_key(key), 0  # a replay of a create since archived
            continue
        delay = min(delay * 2, MAX_BACKOFF)
    raise MetronomeError(f"{last} (gave up after {MAX_CREATE_ATTEMPTS} attempts)")


def _look_up(
    client: metronome.Metronome, find: Finder, conflict: metronome.ConflictError | None
) -> tuple[str | None, MetronomeError | None]:
    """(found id or None, the error if the look-up itself failed: then nothing is known)."""
    try:
        return find(client, conflict), None
    except MetronomeError as err:
        return None, err
