"""A contract provisioned from a package: the package's rate card and terms, each offset placed from the
contract's start (`package_id` / `package_alias` in metronome/types/v1/contract_create_params.py; the package
shapes in types/v1/package_retrieve_response.py, the contract's in types/shared/contract_v2.py).

Offsets `{unit: DAYS|WEEKS|MONTHS|YEARS, value}` count from the contract's start; a `duration` from the start
of what it belongs to. The template ids the package's references hold (an override's commits, a recurring
grant's subscription) name the contract's own items made from those templates.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from metronome_iac.emulator.common import parse_ts
from metronome_iac.emulator.routers.terms import add_months
from metronome_iac.emulator.store import USD_CENTS_ID, Store, format_ts, new_id, now_iso

Item = dict[str, Any]


def shifted(when: str, offset: Item | None) -> str:
    """`when` moved on by an offset (none: not moved)."""
    at = parse_ts(when, "starting_at")
    if offset:
        unit, value = offset["unit"], int(offset["value"])
        if unit in ("DAYS", "WEEKS"):
            at = at + timedelta(days=value * (7 if unit == "WEEKS" else 1))
        else:
            at = add_months(at, value * (12 if unit == "YEARS" else 1))
    return format_ts(at)


def _access(schedule: Item, start: str) -> Item:
    items = []
    for item in schedule["schedule_items"]:
        begins = shifted(start, item["starting_at_offset"])
        items.append(
            {
                "id": new_id(),
                "amount": item["amount"],
                "starting_at": begins,
                "ending_before": shifted(begins, item["duration"]),
            }
        )
    out = {"schedule_items": items, "credit_type": schedule.get("credit_type")}
    if schedule.get("access_type"):
        out["access_type"] = schedule["access_type"]
    return out


def _charges(schedule: Item, start: str) -> Item:
    items = [
        {
            "id": new_id(),
            "timestamp": shifted(start, item["date_offset"]),
            "amount": item["quantity"] * item["unit_price"],
            "unit_price": item["unit_price"],
            "quantity": item["quantity"],
        }
        for item in schedule["schedule_items"]
    ]
    out = {"schedule_items": items, "credit_type": schedule.get("credit_type")}
    if schedule.get("do_not_invoice") is not None:
        out["do_not_invoice"] = schedule["do_not_invoice"]
    return out


def _grant(template: Item, start: str, made: dict[str, str]) -> Item:
    out = {
        k: v
        for k, v in template.items()
        if k not in ("id", "access_schedule", "invoice_schedule", "schedule", "custom_fields")
    }
    out.update(id=new_id(), created_at=now_iso(), created_by="emulator", archived_at=None)
    out["custom_fields"] = template.get("custom_fields") or {}
    made[template["id"]] = out["id"]
    if template.get("access_schedule"):
        out["access_schedule"] = _access(template["access_schedule"], start)
    if template.get("invoice_schedule"):
        out["invoice_schedule"] = _charges(template["invoice_schedule"], start)
    if template.get("schedule"):
        out["schedule"] = _charges(template["schedule"], start)
    return out


def _override(template: Item, start: str, made: dict[str, str]) -> Item:
    begins = shifted(start, template["starting_at_offset"])
    out = {
        k: v
        for k, v in template.items()
        if k not in ("id", "starting_at_offset", "duration", "override_specifiers")
    }
    out.update(
        id=new_id(),
        created_at=now_iso(),
        starting_at=begins,
        ending_before=shifted(begins, template["duration"]) if template.get("duration") else None,
    )
    names = {
        "commit_template_ids": "commit_ids",
        "recurring_commit_template_ids": "recurring_commit_ids",
        "any_commit_or_credit_template_ids": "any_commit_or_credit_ids",
    }
    specifiers = []
    for spec in template.get("override_specifiers") or []:
        spec = dict(spec)
        for field, name in names.items():
            if field in spec:
                spec[name] = [made.get(t, t) for t in spec.pop(field)]
        specifiers.append(spec)
    out["override_specifiers"] = specifiers
    return out


def _subscription(template: Item, start: str, end: str | None, made: dict[str, str]) -> Item:
    begins = shifted(start, template.get("starting_at_offset"))
    out: Item = {
        "id": new_id(),
        "created_at": now_iso(),
        "collection_schedule": template["collection_schedule"],
        "proration": template["proration"],
        "quantity_management_mode": template["quantity_management_mode"],
        "quantity_changes": [
            {"starting_at": begins, "quantity": float(template.get("initial_quantity") or 0)}
        ],
        "starting_at": begins,
        "ending_before": shifted(begins, template["duration"]) if template.get("duration") else end,
        "subscription_rate": template["subscription_rate"],
        "billing_cycle_config": {
            "anchor_date": (template.get("billing_cycle_config") or {}).get("anchor_date") or begins,
            "invoice_placement": (template.get("billing_cycle_config") or {}).get("invoice_placement")
            or "ON_USAGE_INVOICE",
        },
        "fiat_credit_type_id": USD_CENTS_ID,
        "custom_fields": template.get("custom_fields") or {},
    }
    for field in ("name", "description", "seat_config"):
        if template.get(field) is not None:
            out[field] = template[field]
    made[template["id"]] = out["id"]
    return out


def _recurring(template: Item, start: str, contract_id: str, made: dict[str, str]) -> Item:
    begins = shifted(start, template["starting_at_offset"])
    out = {
        k: v
        for k, v in template.items()
        if k not in ("id", "starting_at_offset", "duration", "subscription_config")
    }
    out.update(
        id=new_id(),
        starting_at=begins,
        anchor_date=begins,
        ending_before=shifted(begins, template["duration"]) if template.get("duration") else None,
        contract={"id": contract_id},
    )
    out.setdefault("proration", "FIRST_AND_LAST")
    config = template.get("subscription_config")
    if config:
        out["subscription_config"] = {
            "subscription_id": made.get(
                config["subscription_template_id"], config["subscription_template_id"]
            ),
            "apply_seat_increase_config": config["apply_seat_increase_config"],
            "allocation": config.get("allocation") or "POOLED",
        }
    made[template["id"]] = out["id"]
    return out


def provision(store: Store, package: Item, starting_at: str, contract_id: str) -> Item:
    """The terms of a contract made from `package` starting at `starting_at`."""
    made: dict[str, str] = {}  # template id -> the contract item made from it
    end = shifted(starting_at, package["duration"]) if package.get("duration") else None
    subscriptions = [_subscription(s, starting_at, end, made) for s in package.get("subscriptions") or []]
    commits = [_grant(c, starting_at, made) for c in package.get("commits") or []]
    state: Item = {
        "starting_at": starting_at,
        "ending_before": end,
        "name": package.get("contract_name"),
        "net_payment_terms_days": package.get("net_payment_terms_days"),
        "rate_card_id": package.get("rate_card_id"),
        "commits": commits,
        "credits": [_grant(c, starting_at, made) for c in package.get("credits") or []],
        "scheduled_charges": [_grant(c, starting_at, made) for c in package.get("scheduled_charges") or []],
        "discounts": [],
        "subscriptions": subscriptions,
        "recurring_commits": [
            _recurring(r, starting_at, contract_id, made) for r in package.get("recurring_commits") or []
        ],
        "recurring_credits": [
            _recurring(r, starting_at, contract_id, made) for r in package.get("recurring_credits") or []
        ],
        "transitions": [],
        "usage_filter": [],
        "usage_statement_schedule": {
            "frequency": (package.get("usage_statement_schedule") or {}).get("frequency") or "MONTHLY",
            "billing_anchor_date": starting_at,
        },
    }
    state["overrides"] = [_override(o, starting_at, made) for o in package.get("overrides") or []]
    for field in (
        "spend_threshold_configuration",
        "prepaid_balance_threshold_configuration",
        "multiplier_override_prioritization",
        "scheduled_charges_on_usage_invoices",
    ):
        if package.get(field) is not None:
            state[field] = package[field]
    return state


def billing(package: Item | None) -> Item | None:
    """The billing provider configuration a package contract takes: the customer's one of the package's
    provider and delivery method ("the customer needs exactly one", the package create docstring)."""
    if not package or not package.get("billing_provider"):
        return None
    return {"billing_provider": package["billing_provider"], "delivery_method": package["delivery_method"]}


__all__ = ["billing", "provision", "shifted"]
