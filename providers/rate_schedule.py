"""A rate card's rate schedule: reading it (paged, or only some rates with getRateSchedule selectors),
folding it back into the declared rates, and planning and writing the changes (addRates batches).

Rates have no id, no edit and no delete in Metronome: a rate is identified by (product_id,
pricing_group_values, starting_at) (`rate_key`), adding a rate with the same identity replaces it, and
a rate is ended by adding it again with `ending_before`. Rates are diffed by that identity
(`plan_rate_changes`):

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
latest values), so an update never leaves a phantom diff (`fold_schedule`).

An update reads and plans only the (product, pricing group values) whose rates changed, with the
getRateSchedule selectors (`touched_rates`, `update_rates`): a price changed on a card of thousands of
rates costs one schedule read and one addRates. Read (refresh) reads the whole schedule, 100 segments a
page (`card_with_rates`). What Metronome accepts in a rate is `rate_rules.py`; the card resource, its
schema and provider are `rate_card.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import metronome

from .base import current_hour
from .client import USD_CENTS_ID, paginate, request
from .diff import UNKNOWN, canonical_time, instant, normalize

RATES_PER_CALL = 1000  # one addRates call per card unless a card is huge
SCHEDULE_FROM = "2000-01-01T00:00:00Z"  # read the whole schedule, history included
# Selectors per getRateSchedule call when an update reads only the rates it touches. The API states no
# limit; with about one segment per selected rate, 50 selectors fit one page of 100 (the page limit).
SELECTORS_PER_CALL = 50

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


def _fmt(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def _fiat(card: dict[str, Any]) -> str:
    return card.get("fiat_credit_type_id") or USD_CENTS_ID


def card_with_rates(
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


def update_rates(
    client: metronome.Metronome,
    card_id: str,
    old: list[dict[str, Any]],
    new: list[dict[str, Any]],
    fiat: str,
    label: str,
) -> None:
    """Make the card's schedule match the declared rates `new` (declared as `old` until now)."""
    # Only the rates that changed are read and planned: one price on a card of thousands costs
    # one schedule read and one addRates. A change to most of the card reads it whole instead.
    groups, old_rates, new_rates = touched_rates(old, new)
    rate_count = max(len(old), len(new))
    selected = groups if len(groups) * 2 <= rate_count else None
    entries = [
        e
        for e in _schedule(client, card_id, label, [*old_rates, *new_rates], selected)
        if _group(e) in groups
    ]
    live = fold_schedule(entries, fiat, old_rates, keep_last=True)
    history = [entry_to_rate(e, fiat) for e in entries]
    adds = plan_rate_changes(live, new_rates, current_hour(), history)
    if adds:
        add_rates(client, card_id, adds, label)
