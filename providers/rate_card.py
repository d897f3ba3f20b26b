"""RateCard: a Metronome rate card with its rates (prices per product and pricing group).

This module holds the resource: its schema, provider (check, create, read, update, archive) and the
card's own API calls. The rates are read, diffed by their identity and written through the card's rate
schedule (`rate_schedule.py`: a removed rate is ended at the current hour, a changed price starts at
the current hour or in place if not started yet); what Metronome accepts in a rate is `rate_rules.py`.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

import metronome
import pulumi
from pulumi.dynamic import CheckFailure
from pydantic import BaseModel, ConfigDict, model_validator

from .base import InputsBase, MetronomeProvider, Timestamp, _path, declare_props
from .client import USD_CENTS_ID, KindIndex, MetronomeError, get_live, kind_index, paginate, request
from .diff import UNKNOWN, normalize
from .product import product_type
from .rate_rules import rate_problems, schedule_problems
from .rate_schedule import add_rates, card_with_rates, rate_identity, rate_key, update_rates
from .schema import RequiresReplace

ENTITY = "rate_card"

# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------

RateType = Literal["FLAT", "PERCENTAGE", "SUBSCRIPTION", "TIERED", "TIERED_PERCENTAGE", "CUSTOM"]


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")
    price: float
    size: float | None = None


class CommitRate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate_type: RateType
    price: float | None = None
    tiers: list[Tier] | None = None


class Rate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: str
    starting_at: Timestamp
    ending_before: Timestamp | None = None
    entitled: bool = True
    rate_type: RateType
    price: float | None = None
    tiers: list[Tier] | None = None
    pricing_group_values: dict[str, str] | None = None
    credit_type_id: str | None = None
    commit_rate: CommitRate | None = None
    billing_frequency: Literal["MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY"] | None = None
    quantity: float | None = None
    is_prorated: bool | None = None
    custom_rate: dict[str, Any] | None = None


class Alias(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    starting_at: Timestamp | None = None
    ending_before: Timestamp | None = None


class Conversion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    custom_credit_type_id: str
    fiat_per_custom_credit: float


class Inputs(InputsBase):
    # name, description and aliases change through update; rates through addRates (diffed by identity,
    # see the module docstring); custom_fields through setValues.
    name: str
    description: str | None = None
    fiat_credit_type_id: Annotated[
        str | None, RequiresReplace("a rate card's fiat credit type cannot change")
    ] = None
    # Conversions can be added by update (`add_credit_type_conversions`), never changed or removed.
    credit_type_conversions: Annotated[
        list[Conversion] | None,
        RequiresReplace(
            "existing credit type conversions cannot be changed or removed",
            unless=lambda old, new: conversions_only_added(old, new),
        ),
    ] = None
    aliases: list[Alias] | None = None
    rates: list[Rate] | None = None

    @model_validator(mode="after")
    def _defaults(self) -> Inputs:
        # Stated defaults read back explicitly: drop them so "absent" and "default" compare equal.
        fiat = self.fiat_credit_type_id or USD_CENTS_ID
        if self.fiat_credit_type_id == USD_CENTS_ID:
            self.fiat_credit_type_id = None
        # Rates stay in their declared order (Check names them by it); diff compares them by identity.
        for rate in self.rates or []:
            if rate.credit_type_id == fiat:
                rate.credit_type_id = None
            if rate.pricing_group_values == {}:
                rate.pricing_group_values = None
        return self


HINTS = {
    "rate_type": "use FLAT, PERCENTAGE, SUBSCRIPTION, TIERED, TIERED_PERCENTAGE or CUSTOM",
    "starting_at": "use an RFC 3339 time such as 2026-01-01T00:00:00Z",
    "product_id": "reference the product's id (product_id=product.id)",
}

# ---------------------------------------------------------------------------------------------
# Check and diff rules
# ---------------------------------------------------------------------------------------------


def describe_rate(rate: Rate) -> str:
    """A rate as the user declared it: product, pricing group values, start."""
    groups = ", ".join(f"{k}={v}" for k, v in (rate.pricing_group_values or {}).items())
    return f"the rate of product {rate.product_id}{f' ({groups})' if groups else ''} from {rate.starting_at}"


def conversions_only_added(old: list[dict[str, Any]] | None, new: list[dict[str, Any]] | None) -> bool:
    new_by_id = {c["custom_credit_type_id"]: normalize(c) for c in new or []}
    return all(new_by_id.get(c["custom_credit_type_id"]) == normalize(c) for c in old or [])


# ---------------------------------------------------------------------------------------------
# API calls
# ---------------------------------------------------------------------------------------------


def card_to_inputs(obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": obj.get("name")}
    if obj.get("description"):
        out["description"] = obj["description"]
    fiat = (obj.get("fiat_credit_type") or {}).get("id") or obj.get("fiat_credit_type_id")
    if fiat and fiat != USD_CENTS_ID:
        out["fiat_credit_type_id"] = fiat
    convs = [
        {
            "custom_credit_type_id": (c.get("custom_credit_type") or {}).get("id")
            or c.get("custom_credit_type_id"),
            "fiat_per_custom_credit": float(c["fiat_per_custom_credit"]),  # a string in responses
        }
        for c in obj.get("credit_type_conversions") or []
    ]
    if convs:
        out["credit_type_conversions"] = convs
    if obj.get("aliases"):
        out["aliases"] = [{k: v for k, v in a.items() if v is not None} for a in obj["aliases"]]
    if obj.get("custom_fields"):
        out["custom_fields"] = dict(obj["custom_fields"])
    return out


def _list_raw(client: metronome.Metronome) -> list[dict[str, Any]]:
    return list(
        paginate(client, "POST", "/v1/contract-pricing/rate-cards/list", label="RateCard listing", body={})
    )


def _get(client: metronome.Metronome, object_id: str, label: str) -> dict[str, Any] | None:
    return get_live(
        client, "POST", "/v1/contract-pricing/rate-cards/get", label=label, body={"id": object_id}
    )


def contracts_using(client: metronome.Metronome, rate_card_id: str, label: str) -> list[dict[str, Any]]:
    """Active contracts on this rate card (scans customers' contracts: only done when archiving)."""
    from . import contract_api, customer

    hits = []
    for customer_id, _ in customer.list_objects(client):
        hits += [
            c
            for c in contract_api.active_contracts(client, customer_id, label)
            if c.get("rate_card_id") == rate_card_id
        ]
    return hits


class RateCardProvider(MetronomeProvider[Inputs]):
    kind = "RateCard"
    entity = ENTITY
    inputs_model = Inputs
    natural_key = "name"
    hints = HINTS
    # API calls used by MetronomeProvider's create-once / read / adopt / archive
    get_raw = staticmethod(_get)
    list_raw = staticmethod(_list_raw)
    to_inputs = staticmethod(card_to_inputs)
    create_path = "/v1/contract-pricing/rate-cards/create"
    create_fields = ("name", "description", "fiat_credit_type_id", "credit_type_conversions", "aliases")
    archive_path = "/v1/contract-pricing/rate-cards/archive"

    @classmethod
    def list_objects(
        cls, client: metronome.Metronome, *, with_rates: bool = True
    ) -> list[tuple[str, dict[str, Any]]]:
        """All active rate cards, input-shaped (rates included unless with_rates=False)."""
        cards = super().list_objects(client)
        if with_rates:
            for card_id, card in cards:
                card_with_rates(client, card_id, card, None, f"RateCard {card_id}")
        return cards

    @classmethod
    def read_object(
        cls, client: metronome.Metronome, object_id: str, desired: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The live card with its rates in input shape; None if archived or missing.

        Pass the declared inputs as `desired` to fold price-change chains back into declared rates.
        """
        card = super().read_object(client, object_id)
        if card is None:
            return None
        desired_rates = (desired or {}).get("rates") if desired is not None else None
        return card_with_rates(client, object_id, card, desired_rates, f"RateCard {object_id}")

    @classmethod
    def live_index(cls, client: metronome.Metronome) -> KindIndex:
        # Listed without rates (no schedule calls); a hit is confirmed by a full read.
        return kind_index(
            client, cls.entity, functools.partial(cls.list_objects, with_rates=False), cls.read_object
        )

    def validate(self, inputs: Inputs, olds: dict[str, Any]) -> list[CheckFailure]:
        """The rules of `rate_rules` (the catalog's too), each failure naming the rate by its place in the
        declared list. A FLAT rate's billing_frequency rule needs its product's type: looked up only for
        the rates an update would send (new, or a changed type or frequency), once per product."""
        rates = inputs.rates or []
        units = {c.custom_credit_type_id for c in inputs.credit_type_conversions or []}
        accepted = {
            (rate_key(r), r.get("rate_type"), r.get("billing_frequency"))
            for r in olds.get("rates") or []
            if isinstance(r, dict)
        }
        keys = [rate_identity(r.product_id, r.pricing_group_values, r.starting_at) for r in rates]
        failures: list[CheckFailure] = []
        for i, rate in enumerate(rates):
            kind = None
            if (
                rate.rate_type == "FLAT"
                and rate.billing_frequency is None
                and rate.product_id != UNKNOWN
                and (keys[i], "FLAT", None) not in accepted
            ):
                kind = product_type(rate.product_id)
            for field, message in rate_problems(
                rate, product_type=kind, custom_units=None if rate.credit_type_id == UNKNOWN else units
            ):
                failures.append(
                    CheckFailure(_path(("rates", i, *field)), f"{describe_rate(rate)}: {message}")
                )
        schedule = [
            None
            if UNKNOWN in (r.product_id, r.starting_at, r.ending_before)
            else (key[:2], r.starting_at, r.ending_before)
            for r, key in zip(rates, keys, strict=True)
        ]
        for i, field, message in schedule_problems(schedule):
            failures.append(
                CheckFailure(_path(("rates", i, *field)), f"{describe_rate(rates[i])}: {message}")
            )
        return failures

    def create_object(self, client: metronome.Metronome, inputs: dict[str, Any], label: str) -> str:
        object_id = super().create_object(client, inputs, label)
        if inputs.get("rates"):
            add_rates(client, object_id, list(inputs["rates"]), label)
        return object_id

    def read_live(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        card = super().read_live(client, object_id, props)
        if card is None:
            return None
        # The recorded rates as written: folding needs only their identities (`rate_key` canonicalises).
        return card_with_rates(
            client, object_id, card, (props or {}).get("rates") or [], self.label(props or {})
        )

    def update_object(
        self,
        client: metronome.Metronome,
        object_id: str,
        olds: dict[str, Any],
        news: dict[str, Any],
        changed: list[str],
        label: str,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        removed = {"description": "", "aliases": []}  # cleared explicitly: a null may read as "unchanged"
        for field in ("name", "description", "aliases"):
            if field in changed:
                body[field] = news.get(field) if news.get(field) is not None else removed.get(field)
        if "credit_type_conversions" in changed:
            have = {c["custom_credit_type_id"] for c in olds.get("credit_type_conversions") or []}
            body["add_credit_type_conversions"] = [
                c for c in news.get("credit_type_conversions") or [] if c["custom_credit_type_id"] not in have
            ]
        if body:
            request(
                client,
                "POST",
                "/v1/contract-pricing/rate-cards/update",
                label=label,
                body={"rate_card_id": object_id, **body},
            )
        if "rates" in changed:
            fiat = news.get("fiat_credit_type_id") or USD_CENTS_ID
            update_rates(client, object_id, olds.get("rates") or [], news.get("rates") or [], fiat, label)
        return {}

    def archive_object(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any], label: str
    ) -> None:
        if _get(client, object_id, label) is None:
            return  # already archived or gone
        in_use = contracts_using(client, object_id, label)
        if in_use:
            names = ", ".join(
                f"{c.get('name') or '(unnamed)'} ({c['id']}, customer {c.get('customer_id')})" for c in in_use
            )
            raise MetronomeError(
                f"{label}: cannot archive rate card {object_id}: active contracts still use it: "
                f"{names}; end or remove those contracts first"
            )
        super().archive_object(client, object_id, props, label)


list_objects = RateCardProvider.list_objects  # (client, *, with_rates=True)
read_object = RateCardProvider.read_object  # (client, id, desired=None)


class RateCard(pulumi.dynamic.Resource, module="metronome", name="RateCard"):
    """A Metronome rate card and its rates.

    Project additions: `adopt` ({"id": ...} or {"name": ...}) takes over a live card (differences,
    rates included, land in `adopt_report`). `identity` is stored as the custom field `iac_identity`
    so a retried create never duplicates; the rates are added with ONE addRates call. Replacement is
    forced by `fiat_credit_type_id` and by changing/removing an existing credit type conversion.
    Rates are diffed by (product_id, pricing_group_values, starting_at): removed rates are ended at
    the current hour, changed prices start at the current hour (or in place if not started yet).
    """

    name: pulumi.Output[str]
    description: pulumi.Output[str]
    fiat_credit_type_id: pulumi.Output[str]
    credit_type_conversions: pulumi.Output[list]
    aliases: pulumi.Output[list]
    rates: pulumi.Output[list]
    custom_fields: pulumi.Output[dict]
    adopt_report: pulumi.Output[list]

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        name: pulumi.Input[str],
        description: pulumi.Input[str] | None = None,
        fiat_credit_type_id: pulumi.Input[str] | None = None,
        credit_type_conversions: pulumi.Input[list] | None = None,
        aliases: pulumi.Input[list] | None = None,
        rates: pulumi.Input[list] | None = None,
        custom_fields: pulumi.Input[dict] | None = None,
        adopt: pulumi.Input[dict] | None = None,
    ) -> None:
        props = declare_props(
            resource_name,
            dict(
                name=name,
                description=description,
                fiat_credit_type_id=fiat_credit_type_id,
                credit_type_conversions=credit_type_conversions,
                aliases=aliases,
                rates=rates,
                custom_fields=custom_fields,
                adopt=adopt,
            ),
        )
        super().__init__(RateCardProvider(), resource_name, props, opts)


__all__ = ["Inputs", "RateCard", "RateCardProvider", "list_objects", "read_object"]
