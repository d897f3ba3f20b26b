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
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pulumi

from .client import HOST_TOKEN, IDENTITY_FIELD
from .diff import normalize

__all__ = [
    "IDENTITY_FIELD",
    "compute_identity",
    "contract_uniqueness_key",
    "create_key",
    "edit_uniqueness_key",
    "fingerprint",
    "identity_tag",
    "resource_name_of",
    "stamped",
    "unstamped",
]


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
    return _digest({k: inputs.get(k) for k in fields}, 10)


def identity_tag(identity: str, inputs: dict[str, Any], fields: list[str] | tuple[str, ...]) -> str:
    return f"{identity}#{fingerprint(inputs, fields)}"


def contract_uniqueness_key(
    identity: str, inputs: dict[str, Any], fields: list[str] | tuple[str, ...]
) -> str:
    return "iac:" + identity_tag(identity, inputs, fields)


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
