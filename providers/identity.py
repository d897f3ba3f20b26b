"""Identity tags and uniqueness keys that let a retried or repeated create find its object.

- `identity` = "<project>/<stack>/<resource_name>", computed by the Resource class at declaration.
- Objects without a uniqueness key carry the custom field `iac_identity = "<identity>#<fingerprint>"`.
- Contracts carry `uniqueness_key = "iac:<identity>#<fingerprint>"`.
- The fingerprint hashes the create-time values of the fields that force replacement, so a
  create-before-delete replacement never mistakes the old object for the new one.
- Every create sends an Idempotency-Key derived from the identity and the create's body
  (`create_key`). A tagged object is created with its tag stamped with the host's token
  (`stamped`: "<identity>#<fingerprint>#<token>"), so the same create from another host run sends
  other parameters under the same key; `unstamped` gives the tag back for comparisons.
- Keys and tags are bounded, stably: a contract's uniqueness_key is 1-128 characters, a custom field
  value at most 200 ("There is a 200 character limit on custom field values", API reference: set custom
  field values), the host's stamp included. An identity too long for its room keeps its start (project
  and stack) and ends with a hash of the whole, so the same identity always gives the same key
  (`identity_forms` lists both spellings).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pulumi

from .diff import normalize
from .exactly_once import HOST_TOKEN, IDENTITY_FIELD

__all__ = [
    "IDENTITY_FIELD",
    "compute_identity",
    "contract_uniqueness_key",
    "create_key",
    "edit_uniqueness_key",
    "fingerprint",
    "identity_forms",
    "identity_tag",
    "resource_name_of",
    "stamped",
    "unstamped",
]


UNIQUENESS_KEY_MAX = 128
CUSTOM_FIELD_VALUE_MAX = 200
FINGERPRINT_LENGTH = 10
KEY_PREFIX = "iac:"
STAMP_LENGTH = 1 + 8  # "#<host token>" on a created object's tag (`stamped`)
# Room for the identity: the key less "iac:", "#<fingerprint>" and the "~N" suffix a create adds after
# archived contracts; the tag less "#<fingerprint>" and the host's stamp.
CONTRACT_IDENTITY_ROOM = UNIQUENESS_KEY_MAX - len(KEY_PREFIX) - 1 - FINGERPRINT_LENGTH - 2
TAG_IDENTITY_ROOM = CUSTOM_FIELD_VALUE_MAX - 1 - FINGERPRINT_LENGTH - STAMP_LENGTH


def bounded(identity: str, room: int) -> str:
    """`identity` if it fits in `room` characters, else its start and a hash of the whole (stable)."""
    if len(identity) <= room:
        return identity
    return identity[: room - 9] + "~" + hashlib.sha256(identity.encode()).hexdigest()[:8]


def identity_forms(identity: str) -> set[str]:
    """How `identity` may be spelled before the '#' of a live tag or key (in full, or bounded)."""
    return {identity, bounded(identity, CONTRACT_IDENTITY_ROOM), bounded(identity, TAG_IDENTITY_ROOM)}


def compute_identity(resource_name: str) -> str:
    return f"{pulumi.get_project()}/{pulumi.get_stack()}/{resource_name}"


def resource_name_of(identity: str | None) -> str:
    return (identity or "?").rsplit("/", 1)[-1]


def _digest(value: Any, length: int) -> str:
    canonical = json.dumps(normalize(value), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]


def fingerprint(inputs: dict[str, Any], fields: list[str] | tuple[str, ...]) -> str:
    """A short hash of the create-time values of `fields` (those that force replacement, or a
    contract's identifying terms)."""
    return _digest({k: inputs.get(k) for k in fields}, FINGERPRINT_LENGTH)


def identity_tag(identity: str, inputs: dict[str, Any], fields: list[str] | tuple[str, ...]) -> str:
    """The `iac_identity` custom field value: at most 200 characters."""
    return f"{bounded(identity, TAG_IDENTITY_ROOM)}#{fingerprint(inputs, fields)}"


def contract_uniqueness_key(
    identity: str, inputs: dict[str, Any], fields: list[str] | tuple[str, ...]
) -> str:
    """A contract's uniqueness key: at most 128 characters, with room for a "~N" suffix."""
    return f"{KEY_PREFIX}{bounded(identity, CONTRACT_IDENTITY_ROOM)}#{fingerprint(inputs, fields)}"


def edit_uniqueness_key(contract_id: str, edit: dict[str, Any]) -> str:
    """Derived from the edit itself: a retried edit reuses the key and cannot apply twice."""
    return f"iac-edit:{contract_id[:8]}:{_digest(edit, 24)}"


def create_key(tag: str, body: dict[str, Any]) -> str:
    """The Idempotency-Key of a create: the identity tag (or uniqueness key) and a digest of the body.
    The same resource with the same inputs always gets the same key; Metronome keys are opaque
    strings, unique per request (docs: idempotency), and ours stay under 120 characters."""
    return f"iac:{_digest({'tag': tag, 'body': body}, 40)}"


_STAMP = re.compile(r"^(.*#[0-9a-f]{10})#[0-9a-f]{8}$")


def stamped(tag: str) -> str:
    """The tag a created object carries: stamped with this host's token (see the module docstring)."""
    return f"{tag}#{HOST_TOKEN}"


def unstamped(tag: str | None) -> str | None:
    """A live `iac_identity` without the creating host's token: the tag to compare."""
    if not tag:
        return tag
    match = _STAMP.match(tag)
    return match.group(1) if match else tag
