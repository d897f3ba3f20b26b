"""Identity tags and uniqueness keys that let a retried or repeated create find its object.

- `identity` = "<project>/<stack>/<resource_name>", computed by the Resource class at declaration.
- Objects without a uniqueness key carry the custom field `iac_identity = "<identity>#<fingerprint>"`.
- Contracts carry `uniqueness_key = "iac:<identity>#<fingerprint>"`.
- The fingerprint hashes the create-time values of the fields that force replacement, so a
  create-before-delete replacement never mistakes the old object for the new one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pulumi

from .client import IDENTITY_FIELD
from .diff import normalize

__all__ = [
    "IDENTITY_FIELD",
    "compute_identity",
    "contract_uniqueness_key",
    "edit_uniqueness_key",
    "fingerprint",
    "identity_tag",
    "resource_name_of",
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
