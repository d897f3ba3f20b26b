"""Creating by uniqueness key: contracts and the `KeyedProvider` kinds (packages, alerts, offset
notifications), the kinds Metronome gives a `uniqueness_key`.

A create sends `uniqueness_key = "iac:<identity>#<fingerprint>"` (the fingerprint covers the fields that
replace the object, so a create-before-delete replacement never collides with the object it replaces)
through `create_once`: one POST at a time per key in a host, with an Idempotency-Key, SDK retries off,
and after an ambiguous failure a look-up that starts after that POST was answered. A 409 on the key
means an earlier attempt of this very create may have made the object: the kind's `holder_of` says
whether the live holder is this create's (taken over) or the key is held by an archived object or one
on other terms (a contract being replaced), and then the create moves on to the next suffix `~2`,
`~3`, ... The key is recorded as the `uniqueness_key` output; drift and export read the identity from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import metronome
from pulumi.dynamic import CheckFailure

from .base import InputsT, MetronomeProvider
from .client import MetronomeError, raw_request
from .exactly_once import HOST_TOKEN, create_once, registering_keys
from .identity import contract_uniqueness_key, create_key

KEY_ATTEMPTS = 5  # the key and its suffixes ~2..~5 (identity.CONTRACT_IDENTITY_ROOM leaves room for them)


class Holder(NamedTuple):
    """What a look-up found of a uniqueness key: `ours` is the live object an earlier attempt of this
    very create made (taken over); `held` says whether anything holds the key (ours, an archived object,
    or one on other terms: then the next suffix)."""

    ours: str | None
    held: bool


# (client, key, the 409 the create was refused with, or None after another failure) -> Holder
HolderOf = Callable[[metronome.Metronome, str, "metronome.ConflictError | None"], Holder]


def create_with_key(
    client: metronome.Metronome,
    *,
    label: str,
    kind: str,
    path: str,
    body: dict[str, Any],
    base_key: str,
    holder_of: HolderOf,
    still_ours: Callable[[metronome.Metronome, str], bool],
    entity: str = "",
) -> str:
    """Create `body` at `path` exactly once under `base_key` (or its next free suffix, which each attempt
    sets as the body's `uniqueness_key`); the object's id.

    `still_ours(client, id)` reads an object this host made or found earlier: is it live, and what this
    create asks for? `entity` names the custom-field entity of `body["custom_fields"]`, whose keys are
    registered when the API refuses them (`registering_keys`)."""
    for attempt in range(1, KEY_ATTEMPTS + 1):
        key = base_key if attempt == 1 else f"{base_key}~{attempt}"
        sent = {**body, "uniqueness_key": key}
        seen: list[Holder | None] = [None]  # the last look-up's answer (None: it failed, nothing known)

        def find(c: metronome.Metronome, conflict: Any, key: str = key, seen: list = seen) -> str | None:
            seen[0] = None
            seen[0] = holder_of(c, key, conflict)
            return seen[0].ours

        def post(single: metronome.Metronome, headers: dict[str, str], sent: dict[str, Any] = sent) -> Any:
            return registering_keys(
                client,
                entity,
                sent.get("custom_fields") or {},
                label=label,
                send=lambda: raw_request(single, "POST", path, body=sent, headers=headers, label=label),
            )

        try:
            object_id, _ = create_once(
                client,
                label=label,
                scope=kind,
                tag=key,
                # The uniqueness key finds another host run's object (a 409), so the Idempotency-Key is
                # this host's own: it never replays a create an earlier run made (and has since archived).
                key=f"{create_key(key, sent)}.{HOST_TOKEN}",
                call=f"POST {path}",
                post=post,
                find=find,
                still_ours=still_ours,
            )
            return object_id
        except MetronomeError as err:
            holder = seen[0]
            if err.status_code != 409 or holder is None or not holder.held:
                raise  # not the key's conflict, or nothing is known of the key: never guess
    raise MetronomeError(
        f"{label}: uniqueness keys {base_key} and ~2..~{KEY_ATTEMPTS} all belong to archived {kind}s "
        "or ones on other terms"
    )


class KeyedProvider(MetronomeProvider[InputsT]):
    """Packages, alerts and offset notifications: a uniqueness key, no custom fields of their own."""

    tagged = False
    # The create body is the API fields present in the inputs; `create_fields` lists none of the
    # project's own. The fingerprint covers `key_fields` (default: the fields that replace the object).
    key_fields: ClassVar[tuple[str, ...]] = ()

    def holder_of(
        self,
        client: metronome.Metronome,
        key: str,
        conflict: metronome.ConflictError | None,
        inputs: dict[str, Any],
        label: str,
    ) -> Holder:
        """Who holds `key` (see `Holder`). The key's fingerprint covers every field that replaces the
        object, so a live object holding it has what this create asks for."""
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
        return create_with_key(
            client,
            label=label,
            kind=self.kind,
            path=self.create_path,
            body=self.create_body(inputs),
            base_key=self.uniqueness_key(inputs),
            holder_of=lambda c, key, conflict: self.holder_of(c, key, conflict, inputs, label),
            still_ours=lambda c, object_id: self.read_live(c, object_id, inputs) is not None,
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
