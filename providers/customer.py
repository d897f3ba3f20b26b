"""Customer: a Metronome customer (who is billed; events reach it through its ingest aliases)."""

from __future__ import annotations

from typing import Annotated, Any

import metronome
import pulumi
from pulumi.dynamic import CheckFailure

from .base import InputsBase, MetronomeProvider, declare_props, tagged_in
from .client import MetronomeError, get_live, paginate, request
from .contract_api import active_contracts
from .schema import RequiresReplace

ENTITY = "customer"

# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


class Inputs(InputsBase):
    # name (setName), ingest_aliases (setIngestAliases, a full replace) and custom_fields
    # (customFields/setValues) change in place.
    name: str
    ingest_aliases: list[str] | None = None
    # Set at creation only (there is no call to change it): a new value means a new customer.
    external_id: Annotated[str | None, RequiresReplace("Metronome sets external_id at creation only")] = None


HINTS = {
    "name": "give the customer a name (shown on invoices, at most 160 characters)",
    "ingest_aliases": "list the ids your usage events carry, e.g. [acme-prod]",
}

# ---------------------------------------------------------------------------------------------
# Diff rules
# ---------------------------------------------------------------------------------------------

# Ingest aliases are unique across customers, and the old customer holds them until it is archived
# (delete frees them): so a replacement archives the old customer first, then creates the new one.
# Delete refuses while active contracts use the customer, and contracts refuse to change customer
# unless allow_replacement, so this never strands a contract.
DELETE_BEFORE_REPLACE = True

# ---------------------------------------------------------------------------------------------
# API calls
# ---------------------------------------------------------------------------------------------


def to_inputs(obj: dict[str, Any], declared: dict[str, Any] | None = None) -> dict[str, Any]:
    """A customer in input shape. `external_id` is read back only where it can have been declared:
    when none is given, Metronome fills in the first ingest alias (docs, create a customer) or the id,
    and keeps that value when the aliases change later, so a live external_id is taken as declared when
    `declared` (the state or the desired inputs) names one, or, without `declared`, when it is neither the
    id nor one of the aliases."""
    out: dict[str, Any] = {"name": obj.get("name")}
    if obj.get("ingest_aliases"):
        out["ingest_aliases"] = list(obj["ingest_aliases"])
    live_external = obj.get("external_id")
    if declared is not None:
        if live_external and declared.get("external_id"):
            out["external_id"] = live_external
    elif (
        live_external
        and live_external != obj.get("id")
        and live_external not in (obj.get("ingest_aliases") or [])
    ):
        out["external_id"] = live_external
    if obj.get("custom_fields"):
        out["custom_fields"] = dict(obj["custom_fields"])
    return out


def _get(client: metronome.Metronome, object_id: str, label: str) -> dict[str, Any] | None:
    return get_live(client, "GET", f"/v1/customers/{object_id}", label=label)


def list_raw(client: metronome.Metronome, **params: Any) -> list[dict[str, Any]]:
    return list(paginate(client, "GET", "/v1/customers", label="Customer listing", params=params))


class CustomerProvider(MetronomeProvider[Inputs]):
    kind = "Customer"
    entity = ENTITY
    inputs_model = Inputs
    natural_key = "ingest_alias"
    hints = HINTS
    delete_before_replace = DELETE_BEFORE_REPLACE
    # API calls used by MetronomeProvider's create-once / read / archive
    get_raw = staticmethod(_get)
    list_raw = staticmethod(list_raw)
    to_inputs = staticmethod(to_inputs)
    create_path = "/v1/customers"
    create_fields = ("name", "ingest_aliases", "external_id")
    archive_path = "/v1/customers/archive"

    def validate(self, inputs: Inputs, olds: dict[str, Any]) -> list[CheckFailure]:
        failures = []
        if len(inputs.name) > 160:
            failures.append(
                CheckFailure("name", "Metronome truncates names to 160 characters; to fix: shorten it")
            )
        aliases = inputs.ingest_aliases or []
        dupes = sorted({a for a in aliases if aliases.count(a) > 1})
        if dupes:
            failures.append(
                CheckFailure("ingest_aliases", f"{dupes} listed twice; to fix: list each alias once")
            )
        return failures

    def create_object(self, client: metronome.Metronome, inputs: dict[str, Any], label: str) -> str:
        try:
            return super().create_object(client, inputs, label)
        except MetronomeError as err:
            if err.status_code != 409:
                raise
            raise MetronomeError(
                f"{err}. Ingest aliases (and external ids) are unique in Metronome, and a customer keeps "
                "them until it is archived; if that customer is one this update removes or renames "
                "(a new catalog name), remove it in one update and add the new one in the next, or "
                "give the new customer other aliases",
                err.status_code,
            ) from None

    def find_tagged(self, client: metronome.Metronome, tag: str, inputs: dict[str, Any]) -> str | None:
        # An alias is held by one customer at most: the listing filtered by it is one call.
        aliases = inputs.get("ingest_aliases") or []
        return tagged_in(list_raw(client, ingest_alias=aliases[0]) if aliases else list_raw(client), tag)

    def read_live(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        obj = _get(client, object_id, self.label(props or {}))
        return to_inputs(obj, props or {}) if obj else None

    def find_live(self, client: metronome.Metronome, key: str, value: str, label: str) -> str | None:
        # The listing filters by alias server-side: one call, no index needed.
        hits = [o["id"] for o in list_raw(client, ingest_alias=value) if not o.get("archived_at")]
        if len(hits) > 1:
            raise MetronomeError(f"{label}: several live customers have ingest alias {value!r}: {hits}")
        return hits[0] if hits else None

    def update_object(
        self,
        client: metronome.Metronome,
        object_id: str,
        olds: dict[str, Any],
        news: dict[str, Any],
        changed: list[str],
        label: str,
    ) -> dict[str, Any]:
        if "external_id" in changed:
            raise MetronomeError(f"{label}: external_id cannot change in place; replace the customer")
        if "name" in changed:
            request(
                client, "POST", f"/v1/customers/{object_id}/setName", label=label, body={"name": news["name"]}
            )
        if "ingest_aliases" in changed:
            request(
                client,
                "POST",
                f"/v1/customers/{object_id}/setIngestAliases",
                label=label,
                body={"ingest_aliases": list(news.get("ingest_aliases") or [])},
            )
        return {}

    def archive_object(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any], label: str
    ) -> None:
        in_use = active_contracts(client, object_id, label)
        if in_use:
            names = ", ".join(f"{c.get('name') or '(unnamed)'} ({c['id']})" for c in in_use)
            raise MetronomeError(
                f"{label}: cannot archive customer {object_id}: active contracts still use it: {names}. "
                "Archiving a customer also archives its contracts and voids their invoices; remove those "
                "contracts first (or archive them explicitly)"
            )
        # Free the aliases first: an archived customer keeps them, and they may be reused.
        if _get(client, object_id, label) is not None:
            request(
                client,
                "POST",
                f"/v1/customers/{object_id}/setIngestAliases",
                label=label,
                body={"ingest_aliases": []},
            )
        super().archive_object(client, object_id, props, label)


list_objects = CustomerProvider.list_objects  # (client): all live customers, input-shaped
read_object = CustomerProvider.read_object  # (client, id): None if archived or missing


class Customer(pulumi.dynamic.Resource, module="metronome", name="Customer"):
    """A Metronome customer.

    Project additions: `adopt` ({"id": ...} or {"ingest_alias": ...}) takes over a live customer
    instead of creating one (differences land in `adopt_report`). `identity` is stored as the custom
    field `iac_identity` so a retried create never duplicates. `external_id` forces replacement;
    name and ingest aliases change in place. Deleting archives the customer (its aliases are freed
    first) and is refused while active contracts still use it.
    """

    name: pulumi.Output[str]
    ingest_aliases: pulumi.Output[list]
    external_id: pulumi.Output[str]
    custom_fields: pulumi.Output[dict]
    adopt_report: pulumi.Output[list]

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        name: pulumi.Input[str],
        ingest_aliases: pulumi.Input[list] | None = None,
        external_id: pulumi.Input[str] | None = None,
        custom_fields: pulumi.Input[dict] | None = None,
        adopt: pulumi.Input[dict] | None = None,
    ) -> None:
        props = declare_props(
            resource_name,
            dict(
                name=name,
                ingest_aliases=ingest_aliases,
                external_id=external_id,
                custom_fields=custom_fields,
                adopt=adopt,
            ),
        )
        super().__init__(CustomerProvider(), resource_name, props, opts)


__all__ = ["Customer", "CustomerProvider", "Inputs", "list_objects", "read_object"]
