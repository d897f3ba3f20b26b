"""Customers: `/v1/customers*`, ingest aliases, and per-customer billing provider configurations.

Ingest aliases (and the deprecated external_id) are unique across customers, archived ones included: an
archived customer keeps its aliases until they are cleared, as in the real API.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from metronome_iac.emulator.common import (
    ApiError,
    archive_or_400,
    bad,
    bool_query,
    check_custom_fields,
    check_type,
    conflict,
    data,
    empty,
    enum,
    get_or_404,
    id_response,
    json_body,
    not_found,
    opt,
    page,
    page_args,
    req,
    store_of,
    str_list,
)
from metronome_iac.emulator.routers.billing_providers import resolve_delivery
from metronome_iac.emulator.store import Store, now_iso

router = APIRouter()

KIND = "customer"
CONFIG = "billing_provider_configuration"
ALIAS_SCOPE = "ingest_alias"
LEGACY_PROVIDERS = (
    "aws_marketplace",
    "stripe",
    "netsuite",
    "custom",
    "azure_marketplace",
    "quickbooks_online",
    "workday",
    "gcp_marketplace",
    "metronome",
)
CREATE_PROVIDERS = ("aws_marketplace", "azure_marketplace", "gcp_marketplace", "stripe", "netsuite")
COLLECTION_METHODS = ("charge_automatically", "send_invoice")
TAX_PROVIDERS = ("anrok", "avalara", "stripe")


def resolve_customer(store: Store, id_or_alias: str) -> dict[str, Any] | None:
    """A customer by Metronome id or by ingest alias (what usage events carry)."""
    customer = store.get(KIND, id_or_alias)
    if customer is not None:
        return customer
    owner = store.key_owner(ALIAS_SCOPE, id_or_alias)
    return store.get(KIND, owner) if owner else None


ALIAS_MAX = 128  # docs (create a customer, set ingest aliases): "Required string length: 1 - 128"


def check_aliases(aliases: list[str], field: str) -> None:
    for i, alias in enumerate(aliases):
        if not 1 <= len(alias) <= ALIAS_MAX:
            raise bad(f"{field}[{i}] must be 1 to {ALIAS_MAX} characters (got {len(alias)})")


def _claim_aliases(store: Store, customer_id: str, aliases: list[str], field: str) -> None:
    for alias in aliases:
        owner = store.key_owner(ALIAS_SCOPE, alias)
        if owner is not None and owner != customer_id:
            raise conflict(f"{field}: ingest alias '{alias}' is already used by customer '{owner}'")
    for alias in aliases:
        store.claim_key(ALIAS_SCOPE, alias, customer_id)


def summary(customer: dict[str, Any]) -> dict[str, Any]:
    """The `Customer` model (create and setName)."""
    return {k: customer.get(k) for k in ("id", "external_id", "ingest_aliases", "name", "custom_fields")}


def detail(customer: dict[str, Any]) -> dict[str, Any]:
    """The `CustomerDetail` model (get and list)."""
    return {
        **summary(customer),
        "created_at": customer["created_at"],
        "updated_at": customer["updated_at"],
        "archived_at": customer.get("archived_at"),
        "customer_config": {"salesforce_account_id": customer.get("salesforce_account_id")},
        "current_billable_status": {
            "value": "unbillable" if customer.get("archived_at") else "billable",
            "effective_at": customer["created_at"],
        },
    }


def _legacy_config(body: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    config = {"billing_provider_customer_id": req(body, "billing_provider_customer_id", prefix=prefix)}
    if body.get("stripe_collection_method") is not None:
        config["stripe_collection_method"] = enum(
            body["stripe_collection_method"], COLLECTION_METHODS, prefix + "stripe_collection_method"
        )
    for key, value in body.items():
        if key.startswith(("aws_", "azure_")) and value is not None:
            config[key] = value
    return config


def _new_provider_config(
    store: Store, customer_id: str, item: dict[str, Any], providers: tuple[str, ...], prefix: str
) -> dict[str, Any]:
    check_type(item, dict, prefix.rstrip("."))
    provider = enum(item.get("billing_provider"), providers, prefix + "billing_provider")
    method, method_id = resolve_delivery(store, provider, item, prefix)
    configuration = opt(item, "configuration", dict, prefix) or {}
    if provider == "stripe":
        if not configuration.get("stripe_customer_id"):
            raise bad(f"{prefix}configuration.stripe_customer_id is required for Stripe configurations")
        if configuration.get("stripe_collection_method") is not None:
            enum(
                configuration["stripe_collection_method"],
                COLLECTION_METHODS,
                prefix + "configuration.stripe_collection_method",
            )
    tax = item.get("tax_provider")
    if tax is not None:
        enum(tax, TAX_PROVIDERS, prefix + "tax_provider")
        if provider != "stripe":
            raise bad(f"{prefix}tax_provider is only allowed on Stripe configurations")
    return {
        "customer_id": customer_id,
        "billing_provider": provider,
        "configuration": configuration,
        "delivery_method": method,
        "delivery_method_id": method_id,
        "delivery_method_configuration": {},
        "tax_provider": tax,
        "archived_at": None,
    }


def config_view(config: dict[str, Any]) -> dict[str, Any]:
    return {
        k: config.get(k)
        for k in (
            "id",
            "customer_id",
            "billing_provider",
            "configuration",
            "delivery_method",
            "delivery_method_id",
            "delivery_method_configuration",
            "tax_provider",
            "archived_at",
        )
    }


# -- customers --------------------------------------------------------------------------------------


@router.post("/v1/customers")
async def create(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    name = req(body, "name")[:160]
    aliases = str_list(body, "ingest_aliases") or []
    if len(set(aliases)) != len(aliases):
        raise bad("ingest_aliases must not repeat an alias")
    check_aliases(aliases, "ingest_aliases")
    external_id = opt(body, "external_id")
    if external_id is not None and not 1 <= len(external_id) <= ALIAS_MAX:
        raise bad(f"external_id must be 1 to {ALIAS_MAX} characters (got {len(external_id)})")
    with store.tx():
        now = now_iso()
        customer: dict[str, Any] = {
            "name": name,
            "ingest_aliases": aliases,
            "custom_fields": check_custom_fields(store, KIND, body.get("custom_fields")),
            "created_at": now,
            "updated_at": now,
            "archived_at": None,
            "salesforce_account_id": None,
            "billing_configs": {},
        }
        legacy = opt(body, "billing_config", dict)
        if legacy is not None:
            ptype = enum(
                legacy.get("billing_provider_type"), LEGACY_PROVIDERS, "billing_config.billing_provider_type"
            )
            if ptype == "stripe":
                resolve_delivery(
                    store, "stripe", {"delivery_method": "direct_to_billing_provider"}, "billing_config."
                )
            customer["billing_configs"][ptype] = _legacy_config(legacy, "billing_config.")
        customer = store.insert(KIND, customer)
        # Unset, Metronome answers the first ingest alias as external_id (docs, create a customer: the
        # example sends ingest_aliases ["team@example.com"] and gets external_id "team@example.com");
        # with no alias either, the customer's id (assumed).
        customer["external_id"] = external_id or (aliases[0] if aliases else customer["id"])
        # Only an external_id given at creation is an alias of its own (kept when the aliases change);
        # the defaulted one is a copy of the first alias (assumed).
        customer["explicit_external_id"] = external_id
        if external_id and external_id not in aliases:
            _claim_aliases(store, customer["id"], [external_id], "external_id")
        _claim_aliases(store, customer["id"], aliases, "ingest_aliases")
        for i, item in enumerate(opt(body, "customer_billing_provider_configurations", list) or []):
            config = _new_provider_config(
                store,
                customer["id"],
                item,
                CREATE_PROVIDERS,
                f"customer_billing_provider_configurations[{i}].",
            )
            store.insert(CONFIG, config, parent=customer["id"])
        store.update(KIND, customer)
    return data(summary(customer))


@router.get("/v1/customers")
async def list_customers(request: Request) -> JSONResponse:
    store = store_of(request)
    cursor, limit = page_args(request)
    q = request.query_params
    ids = {i for i in (q.get("customer_ids") or "").split(",") if i} | set(q.getlist("customer_ids[]"))
    sf_ids = {i for i in (q.get("salesforce_account_ids") or "").split(",") if i}
    alias = q.get("ingest_alias")

    def wanted(c: dict[str, Any]) -> bool:
        return (
            (not ids or c["id"] in ids)
            and (alias is None or alias in c["ingest_aliases"] or c.get("explicit_external_id") == alias)
            and (not sf_ids or c.get("salesforce_account_id") in sf_ids)
        )

    flt = "ARCHIVED" if bool_query(request, "only_archived") else "NOT_ARCHIVED"
    items, nxt = store.list_page(KIND, cursor=cursor, limit=limit, archive_filter=flt, where=wanted)
    return page([detail(c) for c in items], nxt)


@router.post("/v1/customers/archive")
async def archive(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    with store.tx():
        customer = archive_or_400(store, KIND, req(body, "id"))
        # Archiving a customer archives its contracts (and would void their invoices).
        for contract in store.all("contract", parent=customer["id"], archive_filter="NOT_ARCHIVED"):
            store.archive("contract", contract["id"], customer["archived_at"])
    return id_response(customer["id"])


@router.get("/v1/customers/{customer_id}")
async def retrieve(customer_id: str, request: Request) -> JSONResponse:
    return data(detail(get_or_404(store_of(request), KIND, customer_id, "customer_id")))


@router.post("/v1/customers/{customer_id}/setIngestAliases")
async def set_ingest_aliases(customer_id: str, request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    aliases = str_list(body, "ingest_aliases")
    if aliases is None:
        raise bad("ingest_aliases is required")
    check_aliases(aliases, "ingest_aliases")
    with store.tx():
        customer = get_or_404(store, KIND, customer_id, "customer_id")
        keep = set(aliases) | (
            {customer["explicit_external_id"]} if customer.get("explicit_external_id") else set()
        )
        for old in customer["ingest_aliases"]:
            if old not in keep:
                store.release_key(ALIAS_SCOPE, old)
        _claim_aliases(store, customer_id, aliases, "ingest_aliases")
        customer["ingest_aliases"] = list(dict.fromkeys(aliases))
        customer["updated_at"] = now_iso()
        store.update(KIND, customer)
    return empty()


@router.post("/v1/customers/{customer_id}/setName")
async def set_name(customer_id: str, request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    name = req(body, "name")[:160]
    with store.tx():
        customer = get_or_404(store, KIND, customer_id, "customer_id")
        customer["name"] = name
        customer["updated_at"] = now_iso()
        store.update(KIND, customer)
    return data(summary(customer))


@router.post("/v1/customers/{customer_id}/updateConfig")
async def update_config(customer_id: str, request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    with store.tx():
        customer = get_or_404(store, KIND, customer_id, "customer_id")
        if "salesforce_account_id" in body:
            customer["salesforce_account_id"] = opt(body, "salesforce_account_id")
        if "leave_stripe_invoices_in_draft" in body:
            customer["leave_stripe_invoices_in_draft"] = opt(body, "leave_stripe_invoices_in_draft", bool)
        customer["updated_at"] = now_iso()
        store.update(KIND, customer)
    return empty()


# -- legacy billing config --------------------------------------------------------------------------


@router.post("/v1/customers/{customer_id}/billing-config/{billing_provider_type}")
async def create_billing_config(
    customer_id: str, billing_provider_type: str, request: Request
) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    enum(billing_provider_type, LEGACY_PROVIDERS, "billing_provider_type")
    with store.tx():
        customer = get_or_404(store, KIND, customer_id, "customer_id")
        if billing_provider_type == "stripe":
            resolve_delivery(store, "stripe", {"delivery_method": "direct_to_billing_provider"})
        customer.setdefault("billing_configs", {})[billing_provider_type] = _legacy_config(body)
        store.update(KIND, customer)
    return empty()


@router.get("/v1/customers/{customer_id}/billing-config/{billing_provider_type}")
async def get_billing_config(customer_id: str, billing_provider_type: str, request: Request) -> JSONResponse:
    store = store_of(request)
    enum(billing_provider_type, LEGACY_PROVIDERS, "billing_provider_type")
    customer = get_or_404(store, KIND, customer_id, "customer_id")
    config = customer.get("billing_configs", {}).get(billing_provider_type)
    if config is None:
        raise not_found(f"{billing_provider_type} billing config for customer", customer_id, "customer_id")
    return data(config)


@router.delete("/v1/customers/{customer_id}/billing-config/{billing_provider_type}")
async def delete_billing_config(
    customer_id: str, billing_provider_type: str, request: Request
) -> JSONResponse:
    store = store_of(request)
    enum(billing_provider_type, LEGACY_PROVIDERS, "billing_provider_type")
    with store.tx():
        customer = get_or_404(store, KIND, customer_id, "customer_id")
        customer.get("billing_configs", {}).pop(billing_provider_type, None)
        store.update(KIND, customer)
    return empty()


# -- billing provider configurations ----------------------------------------------------------------


@router.post("/v1/setCustomerBillingProviderConfigurations")
async def set_configurations(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    items = req(body, "data", list)
    with store.tx():
        created = []
        for i, item in enumerate(items):
            prefix = f"data[{i}]."
            check_type(item, dict, f"data[{i}]")
            customer_id = req(item, "customer_id", prefix=prefix)
            customer = store.get(KIND, customer_id)
            if customer is None:
                # Reported behaviour of the real API: an unknown customer here answers 500, not 400/404.
                raise ApiError(500, f"Internal server error: {prefix}customer_id '{customer_id}' not found")
            created.append(_new_provider_config(store, customer_id, item, LEGACY_PROVIDERS, prefix))
        for config in created:
            store.insert(CONFIG, config, parent=config["customer_id"])
    return data(
        [
            {
                k: c.get(k)
                for k in (
                    "id",
                    "billing_provider",
                    "configuration",
                    "customer_id",
                    "delivery_method_id",
                    "tax_provider",
                )
            }
            for c in created
        ]
    )


@router.post("/v1/getCustomerBillingProviderConfigurations")
async def get_configurations(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    customer_id = req(body, "customer_id")
    # An unknown customer answers 200 with no configurations, not 404 (reported: the community Metronome
    # Terraform provider's API notes), as does a customer that has none.
    flt = "ALL" if opt(body, "include_archived", bool) else "NOT_ARCHIVED"
    return data([config_view(c) for c in store.all(CONFIG, parent=customer_id, archive_filter=flt)])


@router.post("/v1/archiveCustomerBillingProviderConfigurations")
async def archive_configurations(request: Request) -> JSONResponse:
    store = store_of(request)
    body = await json_body(request)
    customer_id = req(body, "customer_id")
    ids = str_list(body, "customer_billing_provider_configuration_ids")
    if not ids:
        raise bad("customer_billing_provider_configuration_ids is required")
    with store.tx():
        get_or_404(store, KIND, customer_id, "customer_id")
        now = now_iso()
        archived: set[str] = set()
        for config_id in ids:
            config = store.get(CONFIG, config_id)
            if config is None or config["customer_id"] != customer_id:
                raise not_found(
                    "billing provider configuration", config_id, "customer_billing_provider_configuration_ids"
                )
            if not config.get("archived_at"):
                store.archive(CONFIG, config_id, now)
                archived.add(config_id)
        archive_on_contracts(store, customer_id, archived, now)
    return data({"customer_id": customer_id, "customer_billing_provider_configuration_ids": ids})


def archive_on_contracts(store: Store, customer_id: str, config_ids: set[str], when: str) -> None:
    """Metronome (BETA note on customer billing provider configurations): archiving a configuration that
    a contract uses archives it on the contract at once; the contract no longer bills to that destination,
    and no new configuration can be provisioned on it (see the v2 edit)."""
    if not config_ids:
        return
    for contract in store.all("contract", parent=customer_id, archive_filter="NOT_ARCHIVED"):
        bound = contract.get("billing_provider_configuration")
        if bound and bound.get("id") in config_ids and not bound.get("archived_at"):
            bound["archived_at"] = when
            store.update("contract", contract)
