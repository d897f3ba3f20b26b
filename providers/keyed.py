"""`KeyedProvider`: the kinds Metronome gives a `uniqueness_key` but no custom fields of their own
(packages, alerts, offset notifications).

Their create sends `uniqueness_key = "iac:<identity>#<fingerprint>"` (the fingerprint covers the fields
that replace the object, so a create-before-delete replacement never collides with the object it
replaces). A 409 on that key means an earlier attempt of this very create made the object: it is found
(`holder_of`) and taken over. A key held by an archived object (kept by Metronome) moves on to the
next suffix `~2`, `~3`, ... The key is recorded as the `uniqueness_key` output; drift and export read the
identity from it as they do from a contract's.
"""

from __future__ import annotations

from typing import Any, ClassVar

import metronome
from pulumi.dynamic import CheckFailure

from .base import InputsT, MetronomeProvider
from .client import MetronomeError, raw_request
from .identity import contract_uniqueness_key

KEY_ATTEMPTS = 5


class KeyedProvider(MetronomeProvider[InputsT]):
    tagged = False
    # The create body is the API fields present in the inputs; `create_fields` lists none of the
    # project's own. The fingerprint covers `key_fields` (default: the fields that replace the object).
    key_fields: ClassVar[tuple[str, ...]] = ()

    def holder_of(
        self,
        client: metronome.Metronome,
        key: str,
        conflict: metronome.ConflictError,
        inputs: dict[str, Any],
        label: str,
    ) -> str | None:
        """The LIVE object an earlier create made with `key` (None if the key is an archived object's)."""
        raise NotImplementedError

    def create_body(self, inputs: dict[str, Any]) -> dict[str, Any]:
        # Shaped by the model: whole numbers the wire turned into floats (offsets, days) are ints again.
        shaped = self.shape(inputs)
        return {k: shaped[k] for k in self.create_fields if shaped.get(k) is not None}

    def validate(self, inputs: InputsT, olds: dict[str, Any]) -> list[CheckFailure]:
        if inputs.custom_fields:
            return [
                CheckFailure(
                    "custom_fields",
                    f"Metronome keeps no custom fields on a {self.kind}; to fix: remove custom_fields",
                )
            ]
        return []

    def uniqueness_key(self, inputs: dict[str, Any]) -> str:
        identity = inputs.get("identity") or f"unknown/{inputs.get('name', '?')}"
        return contract_uniqueness_key(identity, inputs, self.key_fields or tuple(self.replace_rules))

    def create_object(self, client: metronome.Metronome, inputs: dict[str, Any], label: str) -> str:
        base = self.uniqueness_key(inputs)
        body = self.create_body(inputs)
        for attempt in range(1, KEY_ATTEMPTS + 1):
            key = base if attempt == 1 else f"{base}~{attempt}"
            try:
                # A replay after a timeout or a 5xx answers 409 and is resolved below: SDK retries are safe.
                return raw_request(client, "POST", self.create_path, body={**body, "uniqueness_key": key})[
                    "data"
                ]["id"]
            except metronome.ConflictError as err:
                found = self.holder_of(client, key, err, inputs, label)
                if found is not None:
                    return found
            except metronome.APIError as err:
                raise MetronomeError.from_api(label, err) from None
        raise MetronomeError(
            f"{label}: uniqueness keys {base}~1..{KEY_ATTEMPTS} all belong to archived {self.kind}s"
        )

    def computed_outputs(
        self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any]
    ) -> dict[str, Any]:
        return {"uniqueness_key": inputs.get("uniqueness_key") or self.uniqueness_key(inputs)}

    def tag_adopted(
        self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any], label: str
    ) -> None:
        pass  # identified by id and uniqueness key: nothing to tag

    def retag(self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any], label: str) -> None:
        pass  # a key cannot change: a renamed resource keeps the object and its key (the state has the name)
