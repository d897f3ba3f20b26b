"""Why a reconcile window differs, where that can be told, and the fix (`metronome-iac reconcile`).

Tried in this order for each window outside the tolerance:

1. With `--events FILE` (the Stripe meter events sent during the parallel run): up to `--sample` events of
   the window's customer and meter are looked up in Metronome by transaction id (`POST /v1/events/search`,
   the API's tool for sampling; ids as `events translate` makes them). An event Metronome never received,
   one received for an ingest alias no customer has (`matched_customer` null), one counted for another
   customer, and one that matched no metric (its event type or properties fail the metric's filters) each
   name their cause. Metronome's API has no other way to list such events: without `--events` these
   causes cannot be told apart.
2. One side has nothing in the window while the other has usage: that side is not being sent the events
   (the pipeline is not dual-writing yet, or not for this customer).
3. A constant factor: in every window where both sides have usage, Metronome's total is the same multiple
   of Stripe's. A quantity conversion (a product's `quantity_conversion`, imported from a Stripe price's
   `transform_quantity`) applied to one side's events rather than at pricing is named when it matches.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from metronome_iac.catalog import ENVIRONMENT_FILE, Stack
from metronome_iac.events import (
    EventError,
    MetricView,
    load_stack_view,
    parse_rfc3339,
    stripe_time,
    translate_event,
)
from metronome_iac.reconcile_record import Pair, Report, Window

SEARCH_BATCH = 50  # transaction ids per /v1/events/search call


def explain(
    report: Report,
    stack: Stack,
    meters: dict[str, dict[str, Any]],
    client: Any,
    events: Path | None,
    sample: int,
) -> None:
    """Set `cause` and `fix` on the failing windows of `report` that can be explained; add notes."""
    failing = report.failing
    if not failing:
        return
    if events is not None:
        explain_by_sampling(failing, stack, meters, client, events, sample)
    for w in failing:
        if w.cause is None:
            one_side_empty(w, stack)
    for pair in {w.pair for w in failing}:
        constant_factor([w for w in report.windows if w.pair == pair], stack, meters[pair.meter])
    unexplained = [w for w in failing if w.cause is None]
    if unexplained:
        hint = (
            "their sampled events reached Metronome and matched the metric: compare one window's raw events"
            if events is not None
            else "pass --events FILE (the Stripe meter events sent) to look up a sample of their events in "
            "Metronome"
        )
        report.notes.append(f"{len(unexplained)} differing window(s) have no cause found: {hint}")


# ---------------------------------------------------------------------------------------------- 2 and 3


def one_side_empty(w: Window, stack: Stack) -> None:
    if w.metronome == 0 and w.stripe != 0:
        w.cause = (
            f"Metronome has no usage in this window (Stripe has {w.stripe:,.10g}): these events are not "
            "sent to Metronome (not dual-writing yet?)"
        )
        w.fix = (
            f"send every event to both (`metronome-iac events translate --stack {stack.name}`, then "
            "POST /v1/ingest) and backfill this window (Metronome takes events up to 34 days old and drops "
            "repeated transaction ids)"
        )
    elif w.stripe == 0 and w.metronome != 0:
        w.cause = (
            f"Stripe has no usage in this window (Metronome has {w.metronome:,.10g}): these events are not "
            "sent to Stripe (not dual-writing yet?)"
        )
        w.fix = (
            "send every event to both, and backfill this window in Stripe (meter events take timestamps "
            "up to 35 days old)"
        )


def constant_factor(windows: list[Window], stack: Stack, meter: dict[str, Any]) -> None:
    """Metronome's total is one multiple of Stripe's wherever both have usage (at least two windows, or
    one whose factor a declared quantity conversion explains)."""
    both = [w for w in windows if w.stripe and w.metronome]
    todo = [w for w in both if not w.ok and w.cause is None]
    if not todo or len(todo) != len(both):
        return  # some window with usage on both sides agrees, or has another cause: not one factor
    ratios = [w.metronome / w.stripe for w in both]
    ratio = ratios[0]
    if any(abs(r - ratio) > 1e-6 * abs(ratio) for r in ratios):
        return
    pair = windows[0].pair
    declared = declared_conversion(stack, pair.metric, ratio)
    if len(both) < 2 and declared is None:
        return
    value_key = (meter.get("value_settings") or {}).get("event_payload_key") or "value"
    aggregated = stack.metric(pair.metric).aggregation_key
    for w in todo:
        w.cause = f"Metronome's total is {ratio:,.10g} x Stripe's in every window where both have usage" + (
            f"; product '{declared[0]}' declares quantity_conversion {declared[1]}, which Metronome applies "
            "when pricing: one side's events carry the converted quantity"
            if declared
            else ": the two receive different quantities (units, or another payload key)"
        )
        w.fix = (
            f"send both the same raw quantity (Stripe meter value key '{value_key}', metric aggregation_key "
            f"'{aggregated}'); conversions belong to pricing (Stripe's transform_quantity, Metronome's "
            "quantity_conversion), not to the events"
        )


def declared_conversion(stack: Stack, metric: str, ratio: float) -> tuple[str, str] | None:
    """(product name, "DIVIDE 1,000,000") for a product of the metric whose conversion is the ratio or its
    inverse (applied to Metronome's events, or to Stripe's)."""
    for product in stack.catalog.products:
        conversion = product.quantity_conversion
        if product.billable_metric != metric or conversion is None:
            continue
        factor = conversion.conversion_factor
        if any(abs(ratio - f) <= 1e-6 * f for f in (factor, 1 / factor)):
            return product.name, f"{conversion.operation} {factor:,.10g}"
    return None


# ---------------------------------------------------------------------------------------------- 1: sampling


def explain_by_sampling(
    failing: list[Window],
    stack: Stack,
    meters: dict[str, dict[str, Any]],
    client: Any,
    path: Path,
    sample: int,
) -> None:
    sent = index_events(path, meters)
    picked: dict[int, list[str]] = {}
    for i, w in enumerate(failing):
        in_window = [
            tx
            for moment, tx in sent.get((w.pair.stripe_customer_id, w.pair.meter), [])
            if w.start <= moment < w.end
        ]
        if in_window:
            picked[i] = in_window[:sample]
    wanted = sorted({tx for txs in picked.values() for tx in txs})
    received: dict[str, Any] = {}
    for n in range(0, len(wanted), SEARCH_BATCH):
        for item in client.v1.usage.search(transaction_ids=wanted[n : n + SEARCH_BATCH]):
            received[item.transaction_id] = item
    views = {m.name: m for m in load_stack_view(stack.path).metrics}
    for i, txs in picked.items():
        w = failing[i]
        counts: Counter = Counter()
        example: dict[Any, str] = {}
        for tx in txs:
            verdict = classify(received.get(tx), w.pair, views[w.pair.metric])
            if verdict is not None:
                counts[verdict] += 1
                example.setdefault(verdict, tx)
        if w.metronome == 0 and set(counts) == {("not_received",)}:
            continue  # nothing of it reached Metronome: told as "not dual-writing" (one_side_empty)
        if counts:
            causes, fixes = zip(
                *(describe(v, n, len(txs), example[v], w.pair, stack) for v, n in counts.most_common()),
                strict=True,
            )
            w.cause, w.fix = "; ".join(causes), "; ".join(dict.fromkeys(fixes))


def index_events(
    path: Path, meters: dict[str, dict[str, Any]]
) -> dict[tuple[str, str], list[tuple[datetime, str]]]:
    """(Stripe customer, meter id) -> [(time, transaction id Metronome got it under)] from a Stripe meter
    events file; lines that are no event of a compared meter are skipped (`events translate` tells why)."""
    by_name = {m["event_name"]: (meter_id, m) for meter_id, m in meters.items()}
    out: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                event = json.loads(line)
                meter_id, meter = by_name[event["event_name"]]
                customer_key = (meter.get("customer_mapping") or {}).get(
                    "event_payload_key"
                ) or "stripe_customer_id"
                translated = translate_event(event, customer_key=customer_key)
                moment = parse_rfc3339(stripe_time(event["timestamp"]))
            except (ValueError, KeyError, TypeError, EventError):
                continue
            out.setdefault((event["payload"][customer_key], meter_id), []).append(
                (moment, translated["transaction_id"])
            )
    return out


def classify(item: Any, pair: Pair, metric: MetricView) -> tuple[str, ...] | None:
    """What became of one sampled event in Metronome: None when it counts for the pair."""
    if item is None:
        return ("not_received",)
    matched = item.matched_customer
    if matched is None or not matched.id:
        return ("unknown_alias", item.customer_id)
    if matched.id != pair.customer_id:
        return ("other_customer", matched.name or matched.id, item.customer_id)
    if pair.metric_id in {m.id for m in item.matched_billable_metrics or []}:
        return None
    if not metric.matches_event_type(item.event_type):
        accepted = ", ".join(metric.in_values or []) or f"any but {', '.join(metric.not_in_values)}"
        return ("no_metric", f"event type '{item.event_type}' (metric '{metric.name}' takes {accepted})")
    failed = metric.unmatched_filters(item.properties or {})
    return (
        "no_metric",
        f"properties failing metric '{metric.name}'s property filters: {', '.join(failed) or '?'}",
    )


def describe(
    verdict: tuple[str, ...], n: int, of: int, example: str, pair: Pair, stack: Stack
) -> tuple[str, str]:
    """(cause, fix) for `n` of `of` sampled events with one verdict."""
    some = f"{n} of {of} sampled event(s)"
    env_file = stack.path / ENVIRONMENT_FILE
    code = verdict[0]
    if code == "not_received":
        return (
            f"{some} never reached Metronome (e.g. transaction_id {example})",
            "send this window's events to Metronome again (POST /v1/ingest drops repeated transaction ids, "
            "so resending all of them is safe; up to 34 days back)",
        )
    if code == "unknown_alias":
        alias = verdict[1]
        return (
            f"{some} reached Metronome for ingest alias '{alias}', which no customer has",
            f"correct the customer_id the pipeline sends for {pair.stripe_customer_id} "
            f"(`metronome-iac events translate --stack {stack.name}` maps it), or if '{alias}' is customer "
            f"'{pair.customer}''s, add it to its ingest_aliases in {env_file} (Metronome then counts the "
            "events already sent)",
        )
    if code == "other_customer":
        return (
            f"{some} were counted for customer '{verdict[1]}' (they carry its ingest alias '{verdict[2]}')",
            f"send {pair.stripe_customer_id}'s events with customer '{pair.customer}''s ingest alias, or "
            f"move the alias in {env_file}",
        )
    return (
        f"{some} reached Metronome but matched no metric: {verdict[1]}",
        "send the event type and properties the metric expects (`metronome-iac events check --stack "
        f"{stack.name}` finds such events before they are sent)",
    )
