"""Contract terms shared by contracts and packages: commits, credits, overrides, discounts, scheduled charges.

Inputs (the SDK's create params) are validated and turned into the response shapes once, at write time:
`product_id` becomes `product {id, name}`, `credit_type_id` becomes `credit_type {id, name}`, and every
commit, credit, override, charge and schedule item gets an id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from metronome_iac.emulator.common import (
    bad,
    check_bounds,
    check_custom_fields,
    check_type,
    copy_optional,
    credit_type_data,
    enum,
    opt,
    opt_ts,
    parse_ts,
    ref_or_400,
    req,
    req_ts,
    str_list,
)
from metronome_iac.emulator.routers.products import current_state
from metronome_iac.emulator.routers.rate_cards import RATE_TYPES, _rate_values
from metronome_iac.emulator.store import Store, format_ts, new_id, now_iso

RECURRING_FREQUENCIES = {"MONTHLY": 1, "QUARTERLY": 3, "SEMI_ANNUAL": 6, "ANNUAL": 12}
COMMIT_TYPES = ("PREPAID", "POSTPAID")
RATE_TARGETS = ("COMMIT_RATE", "LIST_RATE")  # a grant's rate_type, an override's target


def product_ref(store: Store, product_id: Any, field: str) -> dict[str, str]:
    check_type(product_id, str, field)
    product = ref_or_400(store, "product", product_id, field, live=True)
    return {"id": product_id, "name": current_state(product)["name"]}


def add_months(when: datetime, months: int) -> datetime:
    month = when.month - 1 + months
    year, month = when.year + month // 12, month % 12 + 1
    for day in (when.day, 30, 29, 28):
        try:
            return when.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def access_item(item: Any, prefix: str) -> dict[str, Any]:
    check_type(item, dict, prefix.rstrip("."))
    out = {
        "id": item.get("id") or new_id(),
        "amount": req(item, "amount", float, prefix),
        "starting_at": req_ts(item, "starting_at", prefix),
        "ending_before": req_ts(item, "ending_before", prefix),
    }
    check_bounds(out, prefix)
    return out


def access_schedule(store: Store, value: Any, field: str) -> dict[str, Any]:
    check_type(value, dict, field)
    items = req(value, "schedule_items", list, f"{field}.")
    out: dict[str, Any] = {
        "schedule_items": [access_item(it, f"{field}.schedule_items[{i}].") for i, it in enumerate(items)],
        "credit_type": credit_type_data(store, opt(value, "credit_type_id", str), f"{field}.credit_type_id"),
    }
    if value.get("access_type") is not None:
        out["access_type"] = enum(value["access_type"], ("SPEND", "QUANTITY"), f"{field}.access_type")
    return out


def invoice_item(item: Any, prefix: str) -> dict[str, Any]:
    check_type(item, dict, prefix.rstrip("."))
    amount = opt(item, "amount", float, prefix)
    unit_price = opt(item, "unit_price", float, prefix)
    quantity = opt(item, "quantity", float, prefix)
    if amount is None and unit_price is None:
        raise bad(f"{prefix}amount or unit_price (with quantity) is required")
    if amount is None:
        quantity = 1.0 if quantity is None else quantity
        amount = unit_price * quantity
    return {
        "id": item.get("id") or new_id(),
        "timestamp": req_ts(item, "timestamp", prefix),
        "amount": amount,
        "unit_price": unit_price if unit_price is not None else amount,
        "quantity": quantity if quantity is not None else 1.0,
    }


def point_schedule(store: Store, value: Any, field: str) -> dict[str, Any]:
    """A SchedulePointInTime (invoice schedules, discounts, charges); expands recurring schedules."""
    check_type(value, dict, field)
    items = [
        invoice_item(it, f"{field}.schedule_items[{i}].")
        for i, it in enumerate(opt(value, "schedule_items", list, f"{field}.") or [])
    ]
    recurring = value.get("recurring_schedule")
    if recurring is not None:
        rp = f"{field}.recurring_schedule."
        check_type(recurring, dict, rp.rstrip("."))
        months = RECURRING_FREQUENCIES[
            enum(recurring.get("frequency"), RECURRING_FREQUENCIES, rp + "frequency")
        ]
        distribution = enum(
            recurring.get("amount_distribution"),
            ("DIVIDED", "DIVIDED_ROUNDED", "EACH"),
            rp + "amount_distribution",
        )
        start = parse_ts(req_ts(recurring, "starting_at", rp), "")
        end = parse_ts(req_ts(recurring, "ending_before", rp), "")
        stamps = []
        cur = start
        while cur < end:
            stamps.append(cur)
            cur = add_months(start, months * len(stamps))
        if not stamps:
            raise bad(f"{rp}ending_before must be after starting_at")
        template = invoice_item({**recurring, "timestamp": recurring["starting_at"]}, rp)
        amount = template["amount"]
        if distribution != "EACH":
            amount = amount / len(stamps)
            if distribution == "DIVIDED_ROUNDED":
                amount = round(amount, 2)
        for stamp in stamps:
            items.append(
                {
                    "id": new_id(),
                    "timestamp": format_ts(stamp),
                    "amount": amount,
                    "unit_price": amount,
                    "quantity": 1.0,
                }
            )
    if not items:
        raise bad(f"{field}.schedule_items or {field}.recurring_schedule is required")
    out: dict[str, Any] = {
        "schedule_items": items,
        "credit_type": credit_type_data(store, opt(value, "credit_type_id", str), f"{field}.credit_type_id"),
    }
    copy_optional(out, value, ("do_not_invoice",), bool, f"{field}.")
    return out


def _common_grant_fields(store: Store, item: dict[str, Any], prefix: str, entity: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": new_id(),
        "created_at": now_iso(),
        "created_by": "emulator",
        "product": product_ref(store, item.get("product_id"), prefix + "product_id"),
        "archived_at": None,
    }
    copy_optional(
        out,
        item,
        ("name", "description", "netsuite_sales_order_id", "salesforce_opportunity_id", "uniqueness_key"),
        str,
        prefix,
    )
    copy_optional(out, item, ("priority",), float, prefix)
    if item.get("rate_type") is not None:
        out["rate_type"] = enum(item["rate_type"], RATE_TARGETS, prefix + "rate_type")
    for f in ("applicable_product_ids", "applicable_product_tags", "applicable_contract_ids"):
        if item.get(f) is not None:
            out[f] = str_list(item, f, prefix)
    for i, pid in enumerate(out.get("applicable_product_ids") or []):
        product_ref(store, pid, f"{prefix}applicable_product_ids[{i}]")
    copy_optional(out, item, ("specifiers",), list, prefix)
    copy_optional(out, item, ("hierarchy_configuration",), dict, prefix)
    out["custom_fields"] = check_custom_fields(
        store, entity, item.get("custom_fields"), prefix + "custom_fields"
    )
    return out


def commit(store: Store, item: Any, prefix: str) -> dict[str, Any]:
    check_type(item, dict, prefix.rstrip("."))
    out = _common_grant_fields(store, item, prefix, "commit")
    out["type"] = enum(item.get("type"), COMMIT_TYPES, prefix + "type")
    if item.get("access_schedule") is None:
        raise bad(f"{prefix}access_schedule is required")
    out["access_schedule"] = access_schedule(store, item["access_schedule"], prefix + "access_schedule")
    if item.get("invoice_schedule") is not None:
        out["invoice_schedule"] = point_schedule(store, item["invoice_schedule"], prefix + "invoice_schedule")
    elif out["type"] == "POSTPAID":
        raise bad(f"{prefix}invoice_schedule is required for POSTPAID commits")
    if item.get("rollover_fraction") is not None:
        fraction = opt(item, "rollover_fraction", float, prefix)
        if not 0 <= fraction <= 1:
            raise bad(f"{prefix}rollover_fraction must be between 0 and 1")
        out["rollover_fraction"] = fraction
    return out


def credit(store: Store, item: Any, prefix: str) -> dict[str, Any]:
    check_type(item, dict, prefix.rstrip("."))
    out = _common_grant_fields(store, item, prefix, "contract_credit")
    out["type"] = "CREDIT"
    if item.get("access_schedule") is None:
        raise bad(f"{prefix}access_schedule is required")
    out["access_schedule"] = access_schedule(store, item["access_schedule"], prefix + "access_schedule")
    return out


def override(store: Store, item: Any, prefix: str) -> dict[str, Any]:
    check_type(item, dict, prefix.rstrip("."))
    out: dict[str, Any] = {
        "id": new_id(),
        "created_at": now_iso(),
        "starting_at": req_ts(item, "starting_at", prefix),
        "ending_before": opt_ts(item, "ending_before", prefix),
    }
    check_bounds(out, prefix)
    otype = enum(item.get("type") or "MULTIPLIER", ("OVERWRITE", "MULTIPLIER", "TIERED"), prefix + "type")
    out["type"] = otype
    if item.get("product_id") is not None:
        out["product"] = product_ref(store, item["product_id"], prefix + "product_id")
    if item.get("applicable_product_tags") is not None:
        out["applicable_product_tags"] = str_list(item, "applicable_product_tags", prefix)
    if item.get("override_specifiers") is not None:
        specs = opt(item, "override_specifiers", list, prefix)
        for i, spec in enumerate(specs):
            check_type(spec, dict, f"{prefix}override_specifiers[{i}]")
            if spec.get("product_id") is not None:
                product_ref(store, spec["product_id"], f"{prefix}override_specifiers[{i}].product_id")
        out["override_specifiers"] = specs
    if not any(k in out for k in ("product", "applicable_product_tags", "override_specifiers")):
        raise bad(f"{prefix}product_id, applicable_product_tags or override_specifiers is required")
    if otype == "MULTIPLIER":
        multiplier = req(item, "multiplier", float, prefix)
        if multiplier < 0:
            raise bad(f"{prefix}multiplier must be >= 0")
        out["multiplier"] = multiplier
    if otype == "OVERWRITE":
        rate = req(item, "overwrite_rate", dict, prefix)
        rp = prefix + "overwrite_rate."
        checked = _rate_values(store, {k: v for k, v in rate.items() if k != "credit_type_id"}, rp)
        checked["credit_type"] = credit_type_data(
            store, opt(rate, "credit_type_id", str), rp + "credit_type_id"
        )
        out["overwrite_rate"] = checked
    if otype == "TIERED":
        tiers = req(item, "tiers", list, prefix)
        if not tiers:
            raise bad(f"{prefix}tiers must have at least one tier")
        out["override_tiers"] = [
            {
                "multiplier": req(t, "multiplier", float, f"{prefix}tiers[{i}]."),
                **(
                    {"size": opt(t, "size", float, f"{prefix}tiers[{i}].")}
                    if t.get("size") is not None
                    else {}
                ),
            }
            for i, t in enumerate(tiers)
        ]
    copy_optional(out, item, ("entitled", "is_commit_specific"), bool, prefix)
    copy_optional(out, item, ("priority",), float, prefix)
    if item.get("target") is not None:
        out["target"] = enum(item["target"], RATE_TARGETS, prefix + "target")
    return out


def charge(store: Store, item: Any, prefix: str, entity: str) -> dict[str, Any]:
    """A discount or scheduled charge: product + point-in-time schedule."""
    check_type(item, dict, prefix.rstrip("."))
    out: dict[str, Any] = {
        "id": new_id(),
        "product": product_ref(store, item.get("product_id"), prefix + "product_id"),
        "schedule": point_schedule(store, req(item, "schedule", dict, prefix), prefix + "schedule"),
        "archived_at": None,
    }
    copy_optional(out, item, ("name", "description", "netsuite_sales_order_id"), str, prefix)
    out["custom_fields"] = check_custom_fields(
        store, entity, item.get("custom_fields"), prefix + "custom_fields"
    )
    return out


def many(store: Store, body: dict[str, Any], field: str, kind: str) -> list[dict[str, Any]]:
    items = opt(body, field, list) or []
    make = {
        "commit": lambda it, p: commit(store, it, p),
        "credit": lambda it, p: credit(store, it, p),
        "override": lambda it, p: override(store, it, p),
        "discount": lambda it, p: charge(store, it, p, "discount"),
        "scheduled_charge": lambda it, p: charge(store, it, p, "scheduled_charge"),
    }[kind]
    return [make(item, f"{field}[{i}].") for i, item in enumerate(items)]


__all__ = ["RATE_TYPES", "many", "commit", "credit", "override", "charge", "access_item", "invoice_item"]
