"""RateCard: a Metronome rate card with its rates (prices per product and pricing group).

Rates have no id, no edit and no delete in Metronome: a rate is identified by (product_id,
pricing_group_values, starting_at), adding a rate with the same identity replaces it, and a rate is
ended by adding it again with `ending_before`. This module diffs rates by that identity:

- a new rate is added (one addRates batch for all changes);
- a removed rate is ENDED at the change time (the current hour), never left active; a removed rate
  that has not started yet cannot be ended before it starts, so it is replaced by a one-hour,
  not-entitled "tombstone" (recognised and hidden by read);
- a changed rate: if only its end moves, the live segment gets the new end; if its live segment
  starts at or after the current hour (or the rate is declared as entirely past: a retroactive
  correction) it is rewritten in place (same identity); otherwise the live segment is ended at the
  current hour and the new values start there;
- a removed (ended) rate declared again with its old identity starts again at the current hour: the
  ended segment stays as billed (adding it as declared would rewrite the past).

Read folds such a chain of segments back into the one declared rate (first starting_at,
latest values), so an update never leaves a phantom diff.

An update reads and plans only the (product, pricing group values) whose rates changed, with the
getRateSchedule selectors (`touched_rates`): a price changed on a card of thousands of rates costs one
schedule read and one addRates. Read (refresh) reads the whole schedule, 100 segments a page.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

import metronome
import pulumi
from pulumi.dynamic import CheckFailure
from pydantic import BaseModel, ConfigDict, model_validator

from .base import InputsBase, MetronomeProvider, Timestamp, _path, current_hour, declare_props
from .client import USD_CENTS_ID, KindIndex, MetronomeError, get_live, kind_index, paginate, request
from .diff import UNKNOWN, canonical_time, instant, normalize
from .product import product_type
from .rate_rules import rate_problems, schedule_problems
from .schema import RequiresReplace

ENTITY = "rate_card"
RATES_PER_CALL = 1000  # one addRates call per card unless a card is huge
SCHEDULE_FROM = "2000-01-01T00:00:00Z"  # read the whole schedule, history included
# Selectors per getRateSchedule call when an update reads only the rates it touches. The API states no
# limit; with about one segment per selected rate, 50 selectors fit one page of 100 (the page limit).
SELECTORS_PER_CALL = 50

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
# Diff rules
# ---------------------------------------------------------------------------------------------


RateKey = tuple[str, tuple[tuple[str, str], ...], str]


def rate_identity(
    product_id: str | None, pricing_group_values: Mapping[str, str] | None, starting_at: str | None
) -> RateKey:
    """A rate's identity in Metronome: (product_id, pricing_group_values, starting_at), hashable."""
    start = starting_at or ""
    try:
        start = canonical_time(start) if start != UNKNOWN else start
    except ValueError:
        pass  # not a time: refused by the schema, compared as written
    return (product_id or "", tuple(sorted((pricing_group_values or {}).items())), start)


def rate_key(rate: Mapping[str, Any]) -> RateKey:
    """`rate_identity` of a rate in input shape (a dict)."""
    return rate_identity(rate.get("product_id"), rate.get("pricing_group_values"), rate.get("starting_at"))


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


def _fmt(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def entry_to_rate(entry: dict[str, Any], fiat: str) -> dict[str, Any]:
    """A getRateSchedule entry in the input shape of one rate."""
    live = entry.get("rate") or {}
    rate: dict[str, Any] = {
        "product_id": entry["product_id"],
        "starting_at": canonical_time(entry["starting_at"]),
        "entitled": entry.get("entitled", True),
        "rate_type": live.get("rate_type"),
    }
    if entry.get("ending_before"):
        rate["ending_before"] = canonical_time(entry["ending_before"])
    for field in ("price", "tiers", "quantity", "is_prorated", "custom_rate"):
        if live.get(field) is not None:
            rate[field] = live[field]
    pgv = entry.get("pricing_group_values") or live.get("pricing_group_values")
    if pgv:
        rate["pricing_group_values"] = pgv
    credit_type = (live.get("credit_type") or {}).get("id")
    if credit_type and credit_type != fiat:
        rate["credit_type_id"] = credit_type
    if entry.get("commit_rate"):
        rate["commit_rate"] = {k: v for k, v in entry["commit_rate"].items() if v is not None}
    if entry.get("billing_frequency"):
        rate["billing_frequency"] = entry["billing_frequency"]
    return rate


def _is_tombstone(rate: dict[str, Any]) -> bool:
    end = rate.get("ending_before")
    return (
        bool(end)
        and not rate.get("entitled", True)
        and instant(end) - instant(rate["starting_at"]) == timedelta(hours=1)
    )


def fold_schedule(
    entries: list[dict[str, Any]], fiat: str, desired: list[dict[str, Any]] | None, *, keep_last: bool = False
) -> list[dict[str, Any]]:
    """Map live schedule segments back to declared rates (see the module docstring).

    With `desired` (the declared rates), a segment that continues the previous one without starting
    at a declared starting_at is folded into it, and ended segments matching nothing declared are
    history (dropped). Without it, each live, not-ended segment is a rate of its own.
    """
    now = datetime.now(timezone.utc)
    # Declared rates come back in their declared order (a read compares equal to the state as written),
    # the others after them by identity.
    desired_starts = {rate_key(r): i for i, r in enumerate(desired or [])}
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[RateKey, dict[str, Any]]]] = {}
    for entry in entries:
        rate = entry_to_rate(entry, fiat)
        key = rate_key(rate)
        groups.setdefault(key[:2], []).append((key, rate))
    out: list[tuple[RateKey, dict[str, Any]]] = []
    for segments in groups.values():
        segments.sort(key=lambda segment: instant(segment[1]["starting_at"]))
        chains: list[tuple[RateKey, dict[str, Any]]] = []  # (key of the chain's first segment, chain)
        for key, seg in segments:
            # A segment not starting at a declared start continues the previous chain: right after
            # it (a price change), or after a gap (a removed rate declared again: see
            # `plan_rate_changes`; the gap is history, when the rate was not active).
            if chains and desired is not None and key not in desired_starts:
                first, prev = chains[-1]
                if prev.get("ending_before") and instant(prev["ending_before"]) <= instant(
                    seg["starting_at"]
                ):
                    chains[-1] = (first, {**seg, "starting_at": prev["starting_at"], "_last": seg})
                    continue
            chains.append((key, {**seg, "_last": seg}))
        for key, chain in chains:
            ended = chain.get("ending_before") and instant(chain["ending_before"]) <= now
            # A tombstone is the chain's last segment (after a price change the chain starts earlier).
            if key in desired_starts or not (ended or _is_tombstone(chain["_last"])):
                out.append((key, chain if keep_last else _strip(chain)))
    last = len(desired_starts)
    out.sort(key=lambda keyed: (desired_starts.get(keyed[0], last), keyed[0]))
    return [chain for _, chain in out]


def _list_raw(client: metronome.Metronome) -> list[dict[str, Any]]:
    return list(
        paginate(client, "POST", "/v1/contract-pricing/rate-cards/list", label="RateCard listing", body={})
    )


def _schedule(
    client: metronome.Metronome,
    card_id: str,
    label: str,
    declared: list[dict[str, Any]] | None = None,
    groups: set[RateGroup] | None = None,
) -> list[dict[str, Any]]:
    """The card's rate schedule from SCHEDULE_FROM (or the earliest declared rate if older): every
    segment, or only those of `groups` (read with getRateSchedule selectors, SELECTORS_PER_CALL at a
    time: a product's rates without pricing group values are selected by product and filtered here)."""
    starts = [r["starting_at"] for r in declared or [] if isinstance(r.get("starting_at"), str)]
    since = min([instant(SCHEDULE_FROM), *(instant(t) for t in starts if t != UNKNOWN)])
    body: dict[str, Any] = {"rate_card_id": card_id, "starting_at": _fmt(since)}
    path = "/v1/contract-pricing/rate-cards/getRateSchedule"
    if groups is None:
        return list(paginate(client, "POST", path, label=label, body=body))
    selectors = _selectors(groups)
    entries = []
    for i in range(0, len(selectors), SELECTORS_PER_CALL):
        chunk = {**body, "selectors": selectors[i : i + SELECTORS_PER_CALL]}
        entries += [e for e in paginate(client, "POST", path, label=label, body=chunk) if _group(e) in groups]
    return entries


RateGroup = tuple[str, tuple[tuple[str, str], ...]]  # (product_id, pricing group values): rate_key[:2]


def _group(entry: dict[str, Any]) -> RateGroup:
    pgv = entry.get("pricing_group_values") or (entry.get("rate") or {}).get("pricing_group_values") or {}
    return (entry.get("product_id") or "", tuple(sorted(pgv.items())))


def _selectors(groups: set[RateGroup]) -> list[dict[str, Any]]:
    """getRateSchedule selectors for `groups`, none overlapping another (so no segment comes twice): a
    product with a rate without pricing group values is selected whole, else each group exactly."""
    whole = {product for product, pgv in groups if not pgv}
    selectors: list[dict[str, Any]] = [{"product_id": product} for product in sorted(whole)]
    selectors += [
        {"product_id": product, "pricing_group_values": dict(pgv)}
        for product, pgv in sorted(groups)
        if product not in whole
    ]
    return selectors


def touched_rates(
    old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> tuple[set[RateGroup], list[dict[str, Any]], list[dict[str, Any]]]:
    """The (product, pricing group values) of every rate added, removed or changed from `old` to `new`
    (the only part of the schedule an update has to read and plan), with the old and new rates of
    those groups."""
    old_by = {rate_key(r): r for r in old}
    new_by = {rate_key(r): r for r in new}
    groups = {
        key[:2]
        for key in old_by.keys() | new_by.keys()
        if old_by.get(key) != new_by.get(key) and normalize(old_by.get(key)) != normalize(new_by.get(key))
    }
    return (
        groups,
        [r for key, r in old_by.items() if key[:2] in groups],
        [r for key, r in new_by.items() if key[:2] in groups],
    )


def _get(client: metronome.Metronome, object_id: str, label: str) -> dict[str, Any] | None:
    return get_live(
        client, "POST", "/v1/contract-pricing/rate-cards/get", label=label, body={"id": object_id}
    )


def _fiat(card: dict[str, Any]) -> str:
    return card.get("fiat_credit_type_id") or USD_CENTS_ID


def _with_rates(
    client: metronome.Metronome,
    card_id: str,
    card: dict[str, Any],
    desired: list[dict[str, Any]] | None,
    label: str,
) -> dict[str, Any]:
    """`card` (input-shaped) with its live rates, folded against `desired` (see `fold_schedule`)."""
    rates = fold_schedule(_schedule(client, card_id, label, desired), _fiat(card), desired)
    if rates:
        card["rates"] = rates
    return card


def _rate_body(rate: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rate.items() if v is not None}


def add_rates(client: metronome.Metronome, card_id: str, rates: list[dict[str, Any]], label: str) -> None:
    # Adding a rate with an existing identity replaces it, so a replayed batch is harmless and the
    # SDK's own retries are fine here.
    for i in range(0, len(rates), RATES_PER_CALL):
        chunk = [_rate_body(r) for r in rates[i : i + RATES_PER_CALL]]
        request(
            client,
            "POST",
            "/v1/contract-pricing/rate-cards/addRates",
            label=label,
            body={"rate_card_id": card_id, "rates": chunk},
        )


def plan_rate_changes(
    live: list[dict[str, Any]],
    new: list[dict[str, Any]],
    now_hour: str,
    history: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The rates to add so the live schedule matches `new` (see the module docstring).

    `live` is the schedule folded against the previously declared rates (`fold_schedule(...,
    keep_last=True)`), so each declared rate maps to its chain and `_last` is the chain's last
    live segment, the one to end or rewrite. `history` is every live segment, ended ones
    included (`entry_to_rate` of each schedule entry): a rate declared again after it was removed
    has an ended segment with its identity, which adding it as declared would overwrite.
    """
    hour = instant(now_hour)
    new_by = {rate_key(r): r for r in new}
    live_by = {rate_key(r): r for r in live}
    past_by = {rate_key(r): r for r in history or [] if instant(r["starting_at"]) < hour}
    adds: list[dict[str, Any]] = []
    for key, want in new_by.items():
        current = live_by.get(key)
        if current is None:
            want_end = instant(want["ending_before"]) if want.get("ending_before") else None
            if key in past_by and (want_end is None or want_end > hour):
                # Declared again after it was removed (ended): the past stays as billed; the
                # declared values apply from the current hour (read folds the two back together).
                adds.append({**want, "starting_at": _fmt(hour)})
            else:
                adds.append(want)
            continue
        if normalize(_strip(current)) == normalize(want):
            continue
        last = current.get("_last", current)
        start = instant(last["starting_at"])
        want_end = instant(want["ending_before"]) if want.get("ending_before") else None
        if _only_end_differs(current, want):
            # Only the end moves: the price history stays as it was.
            adds.append(
                {**_strip(last), "ending_before": want["ending_before"]}
                if want_end is not None
                else {k: v for k, v in _strip(last).items() if k != "ending_before"}
            )
        elif start >= hour or (want_end is not None and want_end <= hour):
            # Not started yet, or declared as entirely past (a deliberate retroactive correction):
            # rewrite the live segment in place.
            adds.append({**want, "starting_at": last["starting_at"]})
        else:  # a new price from the current hour; the old one ends there
            adds.append({**_strip(last), "ending_before": _fmt(hour)})
            adds.append({**want, "starting_at": _fmt(hour)})
    for key, current in live_by.items():
        if key in new_by:
            continue
        last = current.get("_last", current)
        if _is_tombstone(last) or (last.get("ending_before") and instant(last["ending_before"]) <= hour):
            continue  # already ended
        start = instant(last["starting_at"])
        if start < hour:
            adds.append({**_strip(last), "ending_before": _fmt(hour)})
        else:  # not started yet: a rate cannot end before it starts; leave a one-hour tombstone
            adds.append(
                {**_strip(last), "entitled": False, "ending_before": _fmt(start + timedelta(hours=1))}
            )
    return adds


def _strip(rate: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rate.items() if not k.startswith("_") and v is not None}


def _only_end_differs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def rest(r: dict[str, Any]) -> Any:
        return normalize({k: v for k, v in _strip(r).items() if k != "ending_before"})

    return rest(a) == rest(b)


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
                _with_rates(client, card_id, card, None, f"RateCard {card_id}")
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
        return _with_rates(client, object_id, card, desired_rates, f"RateCard {object_id}")

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
        return _with_rates(client, object_id, card, (props or {}).get("rates") or [], self.label(props or {}))

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
            # Only the rates that changed are read and planned: one price on a card of thousands costs
            # one schedule read and one addRates. A change to most of the card reads it whole instead.
            groups, old_rates, new_rates = touched_rates(olds.get("rates") or [], news.get("rates") or [])
            rate_count = max(len(olds.get("rates") or []), len(news.get("rates") or []))
            selected = groups if len(groups) * 2 <= rate_count else None
            entries = [
                e
                for e in _schedule(client, object_id, label, [*old_rates, *new_rates], selected)
                if _group(e) in groups
            ]
            live = fold_schedule(entries, fiat, old_rates, keep_last=True)
            history = [entry_to_rate(e, fiat) for e in entries]
            adds = plan_rate_changes(live, new_rates, current_hour(), history)
            if adds:
                add_rates(client, object_id, adds, label)
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
