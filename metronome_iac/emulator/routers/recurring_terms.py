"""Contract terms that recur or bill on a threshold: subscriptions, recurring commits and credits, and the
spend and prepaid-balance threshold configurations. Requests in the shapes of
`metronome/types/v1/contract_create_params.py` and `types/v2/contract_edit_params.py`, answers in those of
`types/shared/contract_v2.py`.

A subscription keeps its whole quantity schedule; a read shows only the current quantity and those to come
(ContractV2.Subscription.quantity_schedule: "Only includes the current quantity and future quantity
changes"). Subscriptions and recurring grants are never archived or removed, only ended (`ending_before`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from metronome_iac.emulator.common import (
    bad,
    check_custom_fields,
    check_type,
    copy_optional,
    enum,
    opt,
    opt_ts,
    parse_ts,
    req,
    req_ts,
    str_list,
)
from metronome_iac.emulator.routers.terms import RATE_TARGETS, add_months, product_ref
from metronome_iac.emulator.store import USD_CENTS_ID, Store, format_ts, new_id, now_iso

FREQUENCIES = ("MONTHLY", "QUARTERLY", "ANNUAL", "WEEKLY")
RECURRENCES = (*FREQUENCIES, "DAILY")
ROUNDING = ("HALF_UP", "FLOOR", "CEILING")
GATES = ("NONE", "STRIPE", "EXTERNAL")
Item = dict[str, Any]


def _rounding(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    check_type(value, dict, field)
    return {
        "decimal_places": req(value, "decimal_places", float, field + "."),
        "rounding_method": enum(value.get("rounding_method"), ROUNDING, field + ".rounding_method"),
    }


def _end_after(start: str, end: str | None, field: str, allow_equal: bool = False) -> None:
    if end is None:
        return
    a, b = parse_ts(start, "starting_at"), parse_ts(end, field)
    if b < a or (b == a and not allow_equal):
        raise bad(f"{field} must be after starting_at ({start})")


# -- subscriptions ------------------------------------------------------------------------------------


def _has_rate(store: Store, rate_card_id: str | None, product_id: str, frequency: str) -> bool:
    if rate_card_id is None:
        return False
    return any(
        r["product_id"] == product_id and r.get("billing_frequency") == frequency
        for r in store.all("rate", parent=rate_card_id, archive_filter="ALL")
    )


def subscription(store: Store, item: Any, prefix: str, contract: Item) -> Item:
    """A subscription added to `contract` (its terms: start, end, rate card, statement schedule)."""
    check_type(item, dict, prefix.rstrip("."))
    rate = req(item, "subscription_rate", dict, prefix)
    product = product_ref(store, rate.get("product_id"), prefix + "subscription_rate.product_id")
    if (store.get("product", product["id"]) or {}).get("type") != "SUBSCRIPTION":
        raise bad(
            f"{prefix}subscription_rate.product_id: product '{product['id']}' is not a SUBSCRIPTION product"
        )
    frequency = enum(
        rate.get("billing_frequency"), FREQUENCIES, prefix + "subscription_rate.billing_frequency"
    )
    if not _has_rate(store, contract.get("rate_card_id"), product["id"], frequency):
        raise bad(
            f"{prefix}subscription_rate: the contract's rate card has no rate for product '{product['id']}' "
            f"billed {frequency} (product and billing_frequency must match a rate on the rate card)"
        )
    schedule = enum(item.get("collection_schedule"), ("ADVANCE", "ARREARS"), prefix + "collection_schedule")
    proration = req(item, "proration", dict, prefix)
    behavior = proration.get("invoice_behavior") or (
        "BILL_IMMEDIATELY" if schedule == "ADVANCE" else "BILL_ON_NEXT_COLLECTION_DATE"
    )
    enum(
        behavior, ("BILL_IMMEDIATELY", "BILL_ON_NEXT_COLLECTION_DATE"), prefix + "proration.invoice_behavior"
    )
    if behavior == "BILL_IMMEDIATELY" and schedule != "ADVANCE":
        raise bad(f"{prefix}proration.invoice_behavior: BILL_IMMEDIATELY is only available with ADVANCE")
    mode = enum(
        item.get("quantity_management_mode") or "QUANTITY_ONLY",
        ("SEAT_BASED", "QUANTITY_ONLY"),
        prefix + "quantity_management_mode",
    )
    quantity = opt(item, "initial_quantity", float, prefix)
    if mode == "QUANTITY_ONLY" and quantity is None:
        raise bad(f"{prefix}initial_quantity is required when quantity_management_mode is QUANTITY_ONLY")
    if quantity is not None and quantity < 0:
        raise bad(f"{prefix}initial_quantity must be non-negative")
    seat_config = opt(item, "seat_config", dict, prefix)
    if mode == "SEAT_BASED" and seat_config is None:
        raise bad(f"{prefix}seat_config is required when quantity_management_mode is SEAT_BASED")
    starting_at = opt_ts(item, "starting_at", prefix) or contract["starting_at"]
    ending_before = opt_ts(item, "ending_before", prefix) or contract.get("ending_before")
    _end_after(starting_at, ending_before, prefix + "ending_before")
    if seat_config is not None:
        quantity = float(len(str_list(seat_config, "initial_seat_ids", prefix + "seat_config.")))
    cycle = opt(item, "billing_cycle_config", dict, prefix) or {}
    anchor = (contract.get("usage_statement_schedule") or {}).get("billing_anchor_date") or starting_at
    out: Item = {
        "id": new_id(),
        "created_at": now_iso(),
        "collection_schedule": schedule,
        "proration": {
            "invoice_behavior": behavior,
            "is_prorated": bool(proration.get("is_prorated", True)),
            **(
                {"rounding": _rounding(proration["rounding"], prefix + "proration.rounding")}
                if proration.get("rounding")
                else {}
            ),
        },
        "quantity_management_mode": mode,
        "quantity_changes": [{"starting_at": starting_at, "quantity": quantity or 0.0}],
        "starting_at": starting_at,
        "ending_before": ending_before,
        "subscription_rate": {"billing_frequency": frequency, "product": product},
        "billing_cycle_config": {
            "anchor_date": opt_ts(cycle, "anchor_date", prefix + "billing_cycle_config.") or anchor,
            "invoice_placement": enum(
                cycle.get("invoice_placement") or "ON_USAGE_INVOICE",
                ("ON_SCHEDULED_INVOICE", "ON_USAGE_INVOICE"),
                prefix + "billing_cycle_config.invoice_placement",
            ),
        },
        "fiat_credit_type_id": USD_CENTS_ID,
        "custom_fields": check_custom_fields(
            store, "subscription", item.get("custom_fields"), prefix + "custom_fields"
        ),
    }
    if seat_config is not None:
        out["seat_config"] = {
            "seat_group_key": req(seat_config, "seat_group_key", str, prefix + "seat_config.")
        }
    copy_optional(out, item, ("name", "description"), str, prefix)
    return out


def _periods(sub: Item, now: datetime) -> dict[str, Any]:
    """Previous, current and next billing periods, stepped by the billing frequency from the anchor."""
    frequency = sub["subscription_rate"]["billing_frequency"]
    months = {"MONTHLY": 1, "QUARTERLY": 3, "ANNUAL": 12}.get(frequency)
    anchor = parse_ts(sub["billing_cycle_config"]["anchor_date"], "anchor_date")

    def at(n: int) -> datetime:
        if months is None:  # WEEKLY
            return anchor + timedelta(weeks=n)
        return add_months(anchor, months * n)

    n = 0
    while at(n + 1) <= now and n < 100000:
        n += 1
    while at(n) > now and n > -100000:
        n -= 1
    window = lambda k: {"starting_at": format_ts(at(k)), "ending_before": format_ts(at(k + 1))}  # noqa: E731
    return {"previous": window(n - 1), "current": window(n), "next": window(n + 1)}


def subscription_view(sub: Item) -> Item:
    """A stored subscription as ContractV2.Subscription: the quantities from the current one on."""
    now = datetime.now(timezone.utc)
    changes = sorted(sub["quantity_changes"], key=lambda q: parse_ts(q["starting_at"], "starting_at"))
    current = 0
    for i, change in enumerate(changes):
        if parse_ts(change["starting_at"], "starting_at") <= now:
            current = i
    shown = []
    for i, change in enumerate(changes[current:], start=current):
        nxt = changes[i + 1]["starting_at"] if i + 1 < len(changes) else sub.get("ending_before")
        shown.append({**change, "ending_before": nxt})
    view = {k: v for k, v in sub.items() if k != "quantity_changes"}
    return {**view, "quantity_schedule": shown, "billing_periods": _periods(sub, now)}


def update_subscription(sub: Item, change: Item, prefix: str, contract: Item) -> None:
    """update_subscriptions[i]: end, name, proration rounding, quantity updates."""
    for field in ("seat_updates", "quantity_management_mode_update"):
        if change.get(field) is not None:
            raise bad(f"{prefix}{field}: seat-based changes are not modelled by the emulator")
    if "ending_before" in change:
        end = opt_ts(change, "ending_before", prefix) or contract.get("ending_before")
        _end_after(sub["starting_at"], end, prefix + "ending_before", allow_equal=True)
        sub["ending_before"] = end
    if change.get("name") is not None:
        sub["name"] = opt(change, "name", str, prefix)
    if "proration_rounding" in change:
        rounding = _rounding(change["proration_rounding"], prefix + "proration_rounding")
        sub["proration"] = {k: v for k, v in sub["proration"].items() if k != "rounding"}
        if rounding is not None:
            sub["proration"]["rounding"] = rounding
    for i, update in enumerate(opt(change, "quantity_updates", list, prefix) or []):
        where = f"{prefix}quantity_updates[{i}]."
        check_type(update, dict, where.rstrip("."))
        at = req_ts(update, "starting_at", where)
        if parse_ts(at, "starting_at") < parse_ts(sub["starting_at"], "starting_at"):
            raise bad(f"{where}starting_at is before the subscription starts ({sub['starting_at']})")
        quantity, delta = opt(update, "quantity", float, where), opt(update, "quantity_delta", float, where)
        if (quantity is None) == (delta is None):
            raise bad(f"{where}quantity or quantity_delta is required (one of them)")
        changes = [c for c in sub["quantity_changes"] if parse_ts(c["starting_at"], "") != parse_ts(at, "")]
        before = [c for c in changes if parse_ts(c["starting_at"], "") < parse_ts(at, "")]
        base = before[-1]["quantity"] if before else 0.0
        value = quantity if quantity is not None else base + delta
        if value < 0:
            raise bad(f"{where}the quantity would be negative")
        changes.append({"starting_at": at, "quantity": value})
        sub["quantity_changes"] = sorted(changes, key=lambda c: parse_ts(c["starting_at"], ""))


# -- recurring commits and credits -------------------------------------------------------------------


def recurring(
    store: Store, item: Any, prefix: str, contract: Item, subscriptions: dict[str, str], commit: bool
) -> Item:
    """A recurring commit (or credit) added to `contract`; `subscriptions` maps the temporary ids of
    subscriptions added by the same request to their ids."""
    check_type(item, dict, prefix.rstrip("."))
    amount = req(item, "access_amount", dict, prefix)
    duration = req(item, "commit_duration", dict, prefix)
    starting_at = req_ts(item, "starting_at", prefix)
    ending_before = opt_ts(item, "ending_before", prefix)
    _end_after(starting_at, ending_before, prefix + "ending_before")
    out: Item = {
        "id": new_id(),
        "product": product_ref(store, item.get("product_id"), prefix + "product_id"),
        "priority": req(item, "priority", float, prefix),
        "access_amount": {
            "credit_type_id": opt(amount, "credit_type_id", str, prefix + "access_amount.") or USD_CENTS_ID,
            "unit_price": req(amount, "unit_price", float, prefix + "access_amount."),
        },
        "commit_duration": {
            "value": req(duration, "value", float, prefix + "commit_duration."),
            "unit": enum(duration.get("unit") or "PERIODS", ("PERIODS",), prefix + "commit_duration.unit"),
        },
        "starting_at": starting_at,
        "anchor_date": starting_at,
        "ending_before": ending_before,
        "rate_type": enum(item.get("rate_type") or "COMMIT_RATE", RATE_TARGETS, prefix + "rate_type"),
        "proration": enum(
            item.get("proration") or "FIRST_AND_LAST",
            ("NONE", "FIRST", "LAST", "FIRST_AND_LAST"),
            prefix + "proration",
        ),
        "contract": {"id": contract["id"]},
    }
    copy_optional(out["access_amount"], amount, ("quantity",), float, prefix + "access_amount.")
    if amount.get("access_type") is not None:
        out["access_amount"]["access_type"] = enum(
            amount["access_type"], ("SPEND", "QUANTITY"), prefix + "access_amount.access_type"
        )
    config = opt(item, "subscription_config", dict, prefix)
    if config is not None:
        ref = req(config, "subscription_id", str, prefix + "subscription_config.")
        live = {s["id"] for s in contract.get("subscriptions") or []}
        sub_id = subscriptions.get(ref) or (ref if ref in live else None)
        if sub_id is None:
            raise bad(
                f"{prefix}subscription_config.subscription_id: '{ref}' names no subscription of this contract"
            )
        out["subscription_config"] = {
            "subscription_id": sub_id,
            "apply_seat_increase_config": {
                "is_prorated": req(
                    req(config, "apply_seat_increase_config", dict, prefix + "subscription_config."),
                    "is_prorated",
                    bool,
                    prefix + "subscription_config.apply_seat_increase_config.",
                )
            },
            "allocation": enum(
                config.get("allocation") or "POOLED",
                ("INDIVIDUAL", "POOLED"),
                prefix + "subscription_config.allocation",
            ),
        }
    elif amount.get("quantity") is None:
        raise bad(f"{prefix}access_amount.quantity is required unless a subscription_config is given")
    if commit and item.get("invoice_amount") is not None:
        invoice = req(item, "invoice_amount", dict, prefix)
        out["invoice_amount"] = {
            "credit_type_id": req(invoice, "credit_type_id", str, prefix + "invoice_amount."),
            "quantity": req(invoice, "quantity", float, prefix + "invoice_amount."),
            "unit_price": req(invoice, "unit_price", float, prefix + "invoice_amount."),
        }
    if item.get("recurrence_frequency") is not None:
        out["recurrence_frequency"] = enum(
            item["recurrence_frequency"], RECURRENCES, prefix + "recurrence_frequency"
        )
    if item.get("rollover_fraction") is not None:
        fraction = opt(item, "rollover_fraction", float, prefix)
        if not 0 <= fraction <= 1:
            raise bad(f"{prefix}rollover_fraction must be between 0 and 1")
        out["rollover_fraction"] = fraction
    if item.get("proration_rounding") is not None:
        rounding = req(item, "proration_rounding", dict, prefix)
        out["proration_rounding"] = {
            k: _rounding(rounding[k], f"{prefix}proration_rounding.{k}")
            for k in ("access", "invoice")
            if rounding.get(k)
        }
    copy_optional(out, item, ("name", "description"), str, prefix)
    for f in ("applicable_product_ids", "applicable_product_tags"):
        if item.get(f) is not None:
            out[f] = str_list(item, f, prefix)
    copy_optional(out, item, ("specifiers",), list, prefix)
    return out


def update_recurring(grant: Item, change: Item, prefix: str, commit: bool) -> None:
    """update_recurring_commits[i] / update_recurring_credits[i]: amounts, end, rounding, rate type."""
    keys = ("access_amount", "invoice_amount") if commit else ("access_amount",)
    for key in keys:
        if change.get(key) is None:
            continue
        value = req(change, key, dict, prefix)
        if key == "invoice_amount" and not grant.get(key):
            raise bad(f"{prefix}invoice_amount: the recurring commit has none to update")
        for f in ("quantity", "unit_price"):
            if value.get(f) is not None:
                grant[key][f] = opt(value, f, float, f"{prefix}{key}.")
    if "ending_before" in change:
        end = opt_ts(change, "ending_before", prefix)
        _end_after(grant["starting_at"], end, prefix + "ending_before", allow_equal=True)
        grant["ending_before"] = end
    if change.get("rate_type") is not None:
        grant["rate_type"] = enum(change["rate_type"], RATE_TARGETS, prefix + "rate_type")
    if "proration_rounding" in change:
        rounding = change["proration_rounding"] or {}
        grant["proration_rounding"] = {
            k: _rounding(rounding[k], f"{prefix}proration_rounding.{k}") for k in rounding if rounding[k]
        } or None


# -- threshold configurations -------------------------------------------------------------------------

THRESHOLD_AMOUNTS = {
    "spend_threshold_configuration": ("threshold_amount",),
    "prepaid_balance_threshold_configuration": ("threshold_amount", "recharge_to_amount"),
}


def threshold_configuration(store: Store, value: Any, field: str, partial: bool = False) -> Item:
    """A spend or prepaid balance threshold configuration (or, `partial`, the fields an update sets)."""
    check_type(value, dict, field)
    required = (
        ()
        if partial
        else (
            "commit",
            "is_enabled",
            "payment_gate_config",
            *THRESHOLD_AMOUNTS[field.removeprefix("add_").removeprefix("update_")],
        )
    )
    for key in required:
        if value.get(key) is None:
            raise bad(f"{field}.{key} is required")
    if value.get("is_enabled") is not None:
        check_type(value["is_enabled"], bool, f"{field}.is_enabled")
    commit = value.get("commit")
    if commit is not None:
        check_type(commit, dict, f"{field}.commit")
        if commit.get("product_id") is not None or not partial:
            product_ref(store, commit.get("product_id"), f"{field}.commit.product_id")
    gate = value.get("payment_gate_config")
    if gate is not None:
        check_type(gate, dict, f"{field}.payment_gate_config")
        enum(gate.get("payment_gate_type"), GATES, f"{field}.payment_gate_config.payment_gate_type")
    for key in ("threshold_amount", "recharge_to_amount"):
        if value.get(key) is not None:
            check_type(value[key], float, f"{field}.{key}")
    return dict(value)


def set_threshold_configuration(store: Store, state: Item, body: Item, field: str) -> None:
    """add_<field> (the contract has none) and update_<field> (merged into the one it has)."""
    if body.get(f"add_{field}") is not None:
        if state.get(field):
            raise bad(f"add_{field}: the contract already has one; use update_{field}")
        state[field] = threshold_configuration(store, body[f"add_{field}"], f"add_{field}")
    if body.get(f"update_{field}") is not None:
        if not state.get(field):
            raise bad(f"update_{field}: the contract has none; use add_{field}")
        change = threshold_configuration(store, body[f"update_{field}"], f"update_{field}", partial=True)
        merged = {**state[field]}
        for key, value in change.items():
            if key == "commit" and value is not None:
                merged["commit"] = {**merged.get("commit", {}), **value}
            elif value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        state[field] = merged


__all__ = [
    "recurring",
    "set_threshold_configuration",
    "subscription",
    "subscription_view",
    "threshold_configuration",
    "update_recurring",
    "update_subscription",
]
