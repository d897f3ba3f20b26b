"""Which live object is which catalog entry, matched the way the provider matches them (`drift`, `reconcile`).

The custom field `iac_identity` ("<project>/<stack>/<name>#<fingerprint>"; the uniqueness key "iac:..."
for contracts), where <name> is the entry's name or one of its `previous_names` (a rename matches before
and after it is applied), else the entry's `adopt` key.
"""

from __future__ import annotations

from typing import Any

from metronome_iac.live import identity_of, provider_module


def _tag_base(tag: str | None) -> str | None:
    return tag.split("#", 1)[0] if tag else None


def _adopt_match(section: str, adopt: dict[str, str], live: list[tuple[str, dict[str, Any]]]) -> str | None:
    if adopt.get("id"):
        return adopt["id"]
    for key, value in adopt.items():
        for object_id, obj in live:
            if key == "ingest_alias" and value in (obj.get("ingest_aliases") or []):
                return object_id
            if key == "uniqueness_key" and str(obj.get("uniqueness_key", "")).endswith(value):
                return object_id
            if obj.get(key) == value:
                return object_id
    return None


class Matcher:
    """Matches catalog entries of one kind with live objects, tracking what stays unclaimed."""

    def __init__(
        self, section: str, identity_prefix: str, live: list[tuple[str, dict[str, Any]]], client: Any
    ) -> None:
        self.section = section
        self.client = client
        self.prefix = identity_prefix
        self.live = live
        self.by_id = dict(live)
        self.claimed: set[str] = set()

    def match(
        self, name: str, adopt: dict[str, str] | None, previous_names: list[str] | None = None
    ) -> tuple[str | None, dict[str, Any] | None]:
        from providers.identity import identity_forms

        # The current name first, then each previous name: an entry renamed in the catalog matches its
        # object before the rename is applied (old tag) and after (new tag).
        for candidate in [name, *(previous_names or [])]:
            identity = self.prefix + candidate
            for object_id, obj in self.live:
                if object_id not in self.claimed and _tag_base(identity_of(obj)) in identity_forms(identity):
                    self.claimed.add(object_id)
                    return object_id, obj
        if adopt:
            object_id = _adopt_match(self.section, adopt, self.live)
            if object_id:
                self.claimed.add(object_id)
                obj = self.by_id.get(object_id)
                if obj is None:  # adopt by id of an object the listing no longer shows (archived)
                    obj = provider_module(self.section).read_object(self.client, object_id)
                return object_id, obj
        return None, None

    def unclaimed(self, stack_prefix: str) -> list[dict[str, Any]]:
        """Live, unclaimed objects that this stack owns (its tag) or nobody owns (no tag)."""
        out = []
        for object_id, obj in self.live:
            if object_id in self.claimed:
                continue
            tag = identity_of(obj)
            if tag and not tag.startswith(stack_prefix):
                continue  # another stack's or project's object
            out.append({"kind": self.section, "id": object_id, "name": obj.get("name"), "identity": tag})
        return out
