"""Packages: `/v1/packages/*` (create, get, list, archive, listContractsOnPackage; packages cannot be edited).

Package terms are relative (offsets and durations from the contract start). They are read back as
`metronome/types/v1/package_retrieve_response.py` types them: an `id` on every commit, credit, charge,
subscription, recurring grant and schedule item; `product_id` as `product {id, name}`; a schedule's
`credit_type_id` as `credit_type {id, name}`; an override's `tiers` as `override_tiers`; and the
`temporary_id`s a request names (`commit_ids`, `subscription_id`) as the template ids of those items.

An alias names one package at a time: a new package taking an alias ends the alias window of the package
that held it where the new window starts (the create docstring: "the original package's alias schedule
will be updated").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    archive_or_400,
    bad,
    check_custom_fields,
    check_type,
    conflict,
    credit_type_data,
    data,
    enum,
    get_or_404,
    id_response,
    json_body,
    list_documents,
    opt,
    page,
    page_args,
    parse_ts,
    req,
    store_of,
)
from metronome_iac.emulator.routers.contracts import FREQUENCIES, resolve_rate_card
from metronome_iac.emulator.routers.rate_cards import _aliases
from metronome_iac.emulator.routers.terms import COMMIT_TYPES, RATE_TARGETS, product_ref
from metronome_iac.emulator.store import USD_CENTS_ID, Store, new_id, now_iso

router = APIRouter()

KIND = "package"
KEY_PREFIX = "package:"  # the API reads keys back with this prefix; normalise both ways
UNITS = ("DAYS", "WEEKS", "MONTHS", "YEARS")
Item = dict[str, Any]


def _normalise_key(key: str) -> str:
    return key if key.startswith(KEY_PREFIX) else KEY_PREFIX + key


class _Terms:
    """One create request's terms: checks each item and keeps the temporary ids it has given out."""

    def __init__(self, store: Store, body: dict[str, Any]) -> None:
        self.store = store
        self.body = body
        self.temporary: dict[str, dict[str, str]] = {"commit": {}, "recurring": {}, "subscription": {}}

    # -- pieces ------------------------------------------------------------------------------------

    @staticmethod
    def offset(value: Any, field: str) -> dict[str, Any]:
        check_type(value, dict, field)
        return {
            "unit": enum(value.get("unit"), UNITS, f"{field}.unit"),
            "value": req(value, "value", int, f"{field}."),
        }

    def product(self, item: Item, field: str, prefix: str) -> dict[str, str]:
        return product_ref(self.store, item.get(field), prefix + field)

    def schedule(self, value: Any, field: str, *, access: bool) -> dict[str, Any]:
        check_type(value, dict, field)
        out: dict[str, Any] = {
            "credit_type": credit_type_data(
                self.store, opt(value, "credit_type_id"), f"{field}.credit_type_id"
            )
        }
        items = []
        for i, raw in enumerate(req(value, "schedule_items", list, f"{field}.")):
            where = f"{field}.schedule_items[{i}]"
            check_type(raw, dict, where)
            item: dict[str, Any] = {"id": new_id()}
            if access:
                item["amount"] = req(raw, "amount", float, where + ".")
                item["starting_at_offset"] = self.offset(
                    raw.get("starting_at_offset"), where + ".starting_at_offset"
                )
                item["duration"] = self.offset(raw.get("duration"), where + ".duration")
            else:
                item["date_offset"] = self.offset(raw.get("date_offset"), where + ".date_offset")
                item["quantity"] = req(raw, "quantity", float, where + ".")
                item["unit_price"] = req(raw, "unit_price", float, where + ".")
            items.append(item)
        out["schedule_items"] = items
        if access and value.get("access_type") is not None:
            out["access_type"] = enum(value["access_type"], ("SPEND", "QUANTITY"), f"{field}.access_type")
        if not access:
            out["do_not_invoice"] = bool(opt(value, "do_not_invoice", bool))
        return out

    def custom_fields(self, item: Item, entity: str, prefix: str) -> dict[str, str] | None:
        values = item.get("custom_fields")
        return check_custom_fields(self.store, entity, values, prefix + "custom_fields") if values else None

    @staticmethod
    def copy(out: Item, item: Item, fields: tuple[str, ...]) -> Item:
        out.update({f: item[f] for f in fields if item.get(f) is not None})
        return out

    def remember(self, space: str, item: Item, out: Item, prefix: str) -> None:
        temporary = opt(item, "temporary_id", str, prefix)
        if temporary is not None:
            self.temporary[space][temporary] = out["id"]

    def template_ids(self, values: Any, spaces: tuple[str, ...], field: str) -> list[str]:
        out = []
        for i, value in enumerate(check_type(values, list, field)):
            found = next((self.temporary[s][value] for s in spaces if value in self.temporary[s]), None)
            if found is None:
                raise bad(f"{field}[{i}]: '{value}' is not the temporary_id of an item in this package")
            out.append(found)
        return out

    def items(self, field: str, build: Callable[[Item, str], Item]) -> list[Item]:
        out = []
        for i, raw in enumerate(opt(self.body, field, list) or []):
            check_type(raw, dict, f"{field}[{i}]")
            out.append(build(raw, f"{field}[{i}]."))
        return out

    # -- items -------------------------------------------------------------------------------------

    GRANT_FIELDS = (
        "applicable_product_ids",
        "applicable_product_tags",
        "description",
        "name",
        "priority",
        "rate_type",
        "specifiers",
    )

    def commit(self, item: Item, prefix: str) -> Item:
        commit_type = enum(item.get("type"), COMMIT_TYPES, prefix + "type")
        out = {"id": new_id(), "product": self.product(item, "product_id", prefix), "type": commit_type}
        out["access_schedule"] = self.schedule(
            item.get("access_schedule"), prefix + "access_schedule", access=True
        )
        if item.get("invoice_schedule") is not None:
            out["invoice_schedule"] = self.schedule(
                item["invoice_schedule"], prefix + "invoice_schedule", access=False
            )
        elif commit_type == "POSTPAID":
            raise bad(f"{prefix}invoice_schedule is required for POSTPAID commits")
        self.copy(out, item, (*self.GRANT_FIELDS, "rollover_fraction"))
        out["custom_fields"] = self.custom_fields(item, "package_commit", prefix)
        self.remember("commit", item, out, prefix)
        return out

    def credit(self, item: Item, prefix: str) -> Item:
        out = {"id": new_id(), "product": self.product(item, "product_id", prefix)}
        out["access_schedule"] = self.schedule(
            item.get("access_schedule"), prefix + "access_schedule", access=True
        )
        self.copy(out, item, self.GRANT_FIELDS)
        out["custom_fields"] = self.custom_fields(item, "package_credit", prefix)
        return out

    def charge(self, item: Item, prefix: str) -> Item:
        out = {"id": new_id(), "product": self.product(item, "product_id", prefix)}
        out["schedule"] = self.schedule(item.get("schedule"), prefix + "schedule", access=False)
        out["schedule"].pop("do_not_invoice")
        self.copy(out, item, ("name", "description"))
        out["custom_fields"] = self.custom_fields(item, "package_scheduled_charge", prefix)
        return out

    def subscription(self, item: Item, prefix: str) -> Item:
        rate = item.get("subscription_rate")
        check_type(rate, dict, prefix + "subscription_rate")
        product = self.product(rate, "product_id", prefix + "subscription_rate.")
        if (self.store.get("product", product["id"]) or {}).get("type") != "SUBSCRIPTION":
            raise bad(f"{prefix}subscription_rate.product_id: product '{product['id']}' is not SUBSCRIPTION")
        proration = item.get("proration")
        check_type(proration, dict, prefix + "proration")
        mode = enum(
            item.get("quantity_management_mode") or "QUANTITY_ONLY",
            ("SEAT_BASED", "QUANTITY_ONLY"),
            prefix + "quantity_management_mode",
        )
        if mode == "QUANTITY_ONLY" and item.get("initial_quantity") is None:
            raise bad(f"{prefix}initial_quantity is required when quantity_management_mode is QUANTITY_ONLY")
        if mode == "SEAT_BASED" and item.get("seat_config") is None:
            raise bad(f"{prefix}seat_config is required when quantity_management_mode is SEAT_BASED")
        out: Item = {
            "id": new_id(),
            "collection_schedule": enum(
                item.get("collection_schedule"), ("ADVANCE", "ARREARS"), prefix + "collection_schedule"
            ),
            "proration": {
                "invoice_behavior": proration.get("invoice_behavior") or "BILL_IMMEDIATELY",
                "is_prorated": bool(proration.get("is_prorated", True)),
                **({"rounding": proration["rounding"]} if proration.get("rounding") else {}),
            },
            "subscription_rate": {
                "billing_frequency": enum(
                    rate.get("billing_frequency"), FREQUENCIES, prefix + "subscription_rate.billing_frequency"
                ),
                "product": product,
            },
            "quantity_management_mode": mode,
        }
        for field in ("starting_at_offset", "duration"):
            if item.get(field) is not None:
                out[field] = self.offset(item[field], prefix + field)
        self.copy(
            out, item, ("billing_cycle_config", "description", "initial_quantity", "name", "seat_config")
        )
        out["custom_fields"] = self.custom_fields(item, "package_subscription", prefix)
        self.remember("subscription", item, out, prefix)
        return out

    def recurring(self, item: Item, prefix: str, *, commit: bool) -> Item:
        amount = item.get("access_amount")
        check_type(amount, dict, prefix + "access_amount")
        req(amount, "unit_price", float, prefix + "access_amount.")
        duration = item.get("commit_duration")
        check_type(duration, dict, prefix + "commit_duration")
        out: Item = {
            "id": new_id(),
            "product": self.product(item, "product_id", prefix),
            "priority": req(item, "priority", float, prefix),
            "access_amount": {**amount, "credit_type_id": amount.get("credit_type_id") or USD_CENTS_ID},
            "commit_duration": {
                "value": req(duration, "value", float, prefix + "commit_duration."),
                "unit": duration.get("unit") or "PERIODS",
            },
            "starting_at_offset": self.offset(item.get("starting_at_offset"), prefix + "starting_at_offset"),
            "rate_type": enum(item.get("rate_type") or "COMMIT_RATE", RATE_TARGETS, prefix + "rate_type"),
        }
        if item.get("duration") is not None:
            out["duration"] = self.offset(item["duration"], prefix + "duration")
        config = item.get("subscription_config")
        if config is not None:
            check_type(config, dict, prefix + "subscription_config")
            [template] = self.template_ids(
                [req(config, "subscription_id", str, prefix + "subscription_config.")],
                ("subscription",),
                prefix + "subscription_config.subscription_id",
            )
            out["subscription_config"] = {
                "subscription_template_id": template,
                "apply_seat_increase_config": req(
                    config, "apply_seat_increase_config", dict, prefix + "subscription_config."
                ),
                "allocation": config.get("allocation") or "POOLED",
            }
        elif amount.get("quantity") is None:
            raise bad(f"{prefix}access_amount.quantity is required unless a subscription_config is given")
        extra = ("invoice_amount",) if commit else ()
        self.copy(
            out,
            item,
            (
                *self.GRANT_FIELDS[:3],
                "name",
                "proration",
                "proration_rounding",
                "recurrence_frequency",
                "rollover_fraction",
                "specifiers",
                *extra,
            ),
        )
        self.remember("recurring", item, out, prefix)
        return out

    def override(self, item: Item, prefix: str) -> Item:
        if item.get("starting_at_offset") is None:
            raise bad(f"{prefix}starting_at_offset is required")
        out: Item = {
            "id": new_id(),
            "starting_at_offset": self.offset(item["starting_at_offset"], prefix + "starting_at_offset"),
        }
        if item.get("duration") is not None:
            out["duration"] = self.offset(item["duration"], prefix + "duration")
        specifiers = []
        renamed = {
            "commit_ids": ("commit_template_ids", ("commit",)),
            "recurring_commit_ids": ("recurring_commit_template_ids", ("recurring",)),
            "any_commit_or_credit_ids": ("any_commit_or_credit_template_ids", ("commit", "recurring")),
        }
        for j, spec in enumerate(req(item, "override_specifiers", list, prefix)):
            where = f"{prefix}override_specifiers[{j}]"
            check_type(spec, dict, where)
            kept = {k: v for k, v in spec.items() if k not in renamed and v is not None}
            if spec.get("product_id") is not None:
                self.product(spec, "product_id", where + ".")
            for field, (template_field, spaces) in renamed.items():
                if spec.get(field) is not None:
                    kept[template_field] = self.template_ids(spec[field], spaces, f"{where}.{field}")
            specifiers.append(kept)
        out["override_specifiers"] = specifiers
        if item.get("overwrite_rate") is not None:
            rate = dict(item["overwrite_rate"])
            rate["credit_type"] = credit_type_data(
                self.store, rate.pop("credit_type_id", None), prefix + "overwrite_rate.credit_type_id"
            )
            out["overwrite_rate"] = rate
        if item.get("tiers") is not None:
            out["override_tiers"] = item["tiers"]
        inferred = (
            "OVERWRITE" if "overwrite_rate" in out else "TIERED" if "override_tiers" in out else "MULTIPLIER"
        )
        out["type"] = enum(
            item.get("type") or inferred, ("OVERWRITE", "MULTIPLIER", "TIERED"), prefix + "type"
        )
        if out["type"] == "MULTIPLIER" and item.get("multiplier") is None:
            raise bad(f"{prefix}multiplier is required for MULTIPLIER overrides")
        return self.copy(out, item, ("entitled", "is_commit_specific", "multiplier", "priority", "target"))

    def threshold_configuration(self, field: str, required: tuple[str, ...]) -> dict[str, Any] | None:
        value = opt(self.body, field, dict)
        if value is None:
            return None
        req(value, "commit", dict, field + ".")
        req(value, "is_enabled", bool, field + ".")
        req(value, "payment_gate_config", dict, field + ".")
        for amount in required:
            req(value, amount, float, field + ".")
        self.product(value["commit"], "product_id", f"{field}.commit.")
        gate = value["payment_gate_config"]
        enum(
            gate.get("payment_gate_type"),
            ("NONE", "STRIPE", "EXTERNAL"),
            f"{field}.payment_gate_config.payment_gate_type",
        )
        return dict(value)


def _hand_over_aliases(store: Store, aliases: list[dict[str, Any]], when: str) -> None:
    """The packages holding any of `aliases` keep them only until the new holder's window starts."""
    for alias in aliases:
        start = alias.get("starting_at") or when
        for package in store.all(KIND, archive_filter="NOT_ARCHIVED"):
            changed = False
            for held in package.get("aliases") or []:
                if held["name"] != alias["name"]:
                    continue
                end = held.get("ending_before")
                if end is None or parse_ts(end, "ending_before") > parse_ts(start, "starting_at"):
                    held["ending_before"] = start
                    changed = True
            if changed:
                store.update(KIND, package)


@router.post("/v1/packages/create")
async def create(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    name = req(body, "name")
    key = opt(body, "uniqueness_key")
    with store.tx():
        if key is not None:
            owner = store.key_owner(KIND, _normalise_key(key))
            if owner is not None:
                raise conflict(f"uniqueness_key: '{key}' was already used by package '{owner}'")
        terms = _Terms(store, body)
        duration = body.get("duration")
        schedule = opt(body, "usage_statement_schedule", dict) or {"frequency": "MONTHLY"}
        enum(schedule.get("frequency"), FREQUENCIES, "usage_statement_schedule.frequency")
        subscriptions = terms.items("subscriptions", terms.subscription)
        commits = terms.items("commits", terms.commit)
        recurring_commits = terms.items("recurring_commits", lambda i, p: terms.recurring(i, p, commit=True))
        recurring_credits = terms.items("recurring_credits", lambda i, p: terms.recurring(i, p, commit=False))
        aliases = _aliases(body) or []
        now = now_iso()
        package = {
            "name": name,
            "contract_name": opt(body, "contract_name"),
            "rate_card_id": resolve_rate_card(store, body, now),
            "aliases": aliases,
            "billing_provider": body.get("billing_provider"),
            "delivery_method": body.get("delivery_method"),
            "duration": terms.offset(duration, "duration") if duration is not None else None,
            "net_payment_terms_days": opt(body, "net_payment_terms_days", float),
            "multiplier_override_prioritization": opt(body, "multiplier_override_prioritization"),
            "scheduled_charges_on_usage_invoices": opt(body, "scheduled_charges_on_usage_invoices"),
            "commits": commits,
            "credits": terms.items("credits", terms.credit),
            "recurring_commits": recurring_commits,
            "recurring_credits": recurring_credits,
            "subscriptions": subscriptions,
            "overrides": terms.items("overrides", terms.override),
            "scheduled_charges": terms.items("scheduled_charges", terms.charge),
            "spend_threshold_configuration": terms.threshold_configuration(
                "spend_threshold_configuration", ("threshold_amount",)
            ),
            "prepaid_balance_threshold_configuration": terms.threshold_configuration(
                "prepaid_balance_threshold_configuration", ("threshold_amount", "recharge_to_amount")
            ),
            "spend_trackers": opt(body, "spend_trackers", list),
            "usage_statement_schedule": schedule,
            "uniqueness_key": _normalise_key(key) if key is not None else None,
            "created_at": now,
            "created_by": "emulator",
            "archived_at": None,
        }
        _hand_over_aliases(store, aliases, now)
        store.insert(KIND, package)
        if key is not None:
            store.claim_key(KIND, _normalise_key(key), package["id"])
    return id_response(package["id"])


@router.post("/v1/packages/get")
async def retrieve(request: Request) -> JSONResponse:
    body = await json_body(request)
    return data(get_or_404(store_of(request), KIND, req(body, "package_id"), "package_id"))


@router.post("/v1/packages/list")
async def list_packages(request: Request) -> JSONResponse:
    return list_documents(request, KIND, body=await json_body(request), default_limit=10)


@router.post("/v1/packages/archive")
async def archive(request: Request) -> JSONResponse:
    body = await json_body(request)
    package = archive_or_400(store_of(request), KIND, req(body, "package_id"), "package_id")
    return id_response(package["id"])


@router.post("/v1/packages/listContractsOnPackage")
async def contracts_on_package(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    package_id = req(body, "package_id")
    get_or_404(store, KIND, package_id, "package_id")
    cursor, limit = page_args(request)
    flt = "ALL" if opt(body, "include_archived", bool) else "NOT_ARCHIVED"
    items, nxt = store.list_page(
        "contract",
        cursor=cursor,
        limit=limit,
        archive_filter=flt,
        where=lambda c: c.get("package_id") == package_id,
    )
    return page(
        [
            {
                "contract_id": c["id"],
                "customer_id": c["customer_id"],
                "starting_at": c["terms"]["starting_at"],
                "ending_before": c["terms"].get("ending_before"),
                "archived_at": c.get("archived_at"),
            }
            for c in items
        ],
        nxt,
    )
