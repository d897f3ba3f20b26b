"""Creating an object exactly once, and the custom fields that tag it.

`create_once`: one POST with an Idempotency-Key derived from the resource's identity and inputs, and
no listing before it; after an ambiguous failure, a look-up that starts after that POST was answered,
then the same key again (docs/architecture.md, "Identity and retries that never duplicate"). The
tagged kinds carry their identity in the custom field `iac_identity`, stamped with this host's token
(`HOST_TOKEN`); a custom field key the account has not registered is added when the API refuses a
request for want of it (`registering_keys`), never up front.

What concurrent calls in the host share lives here with its lock: the create slots (`_SLOTS_LOCK`
over `_SLOT_LOCKS`, `_CREATED`, `_RETIRED`) and the key registrations (`_REGISTERING` over
`_REGISTERED_AT`).
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import metronome

from .client import (
    MetronomeError,
    UnexpectedAnswer,
    api_message,
    client_key,
    created_id,
    raw_request,
    request,
    retry_after_seconds,
)

MAX_CREATE_ATTEMPTS = 8
FIRST_BACKOFF = 0.5  # seconds before the second attempt of a create, doubling up to MAX_BACKOFF
MAX_BACKOFF = 8.0
IDENTITY_FIELD = "iac_identity"  # the custom field a tagged kind's identity tag is stored in

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
