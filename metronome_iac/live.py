"""The live account, read kind by kind as `drift` and `export` both read it.

Every kind is read through its provider module (`list_objects` / `read_object`, input shape), so what a
command sees is what the provider compares against. Also the identity tag a live object carries and the
account's Stripe side (its connections, a configuration's link to a Stripe customer).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from typing import Any

from metronome_iac.program import KINDS
from metronome_iac.progress import CONCURRENCY, Task, run_concurrently

IDENTITY_FIELD = "iac_identity"
# A kind's live objects as listed: [(id, object in input shape)].
Listing = list[tuple[str, dict[str, Any]]]

_IMPORTS = threading.Lock()


def provider_module(section: str) -> Any:
    """The section's provider module. Imported one at a time: a listing thread importing one provider
    module while another thread runs the package's `__init__` (which imports them all) can deadlock."""
    with _IMPORTS:
        return importlib.import_module(KINDS[section][0])


def provider_class(section: str) -> Any:
    """The section's provider class: `<Resource>Provider` in the resource's module."""
    return getattr(provider_module(section), f"{KINDS[section][1]}Provider")


def identity_of(live: dict[str, Any]) -> str | None:
    """The identity tag of a live object in input shape (custom field, or a contract's uniqueness key)."""
    tag = (live.get("custom_fields") or {}).get(IDENTITY_FIELD)
    if not tag and isinstance(live.get("uniqueness_key"), str) and live["uniqueness_key"].startswith("iac:"):
        tag = live["uniqueness_key"][len("iac:") :]
    return tag


def list_live(client: Any, section: str) -> Listing:
    """The live objects of an account-wide kind. Rate cards come without their rates: their tags are
    enough to match or name them, and each card's rates cost a read of its own (`read_object`)."""
    if section == "rate_cards":
        return provider_module(section).list_objects(client, with_rates=False)
    return provider_module(section).list_objects(client)


def list_contracts(
    client: Any, customer_ids: Iterable[str], task: Task | None = None, workers: int = CONCURRENCY
) -> list[Listing]:
    """Each customer's contracts (the API lists them per customer), `workers` customers at a time."""
    contracts = provider_module("contracts")
    return run_concurrently(
        lambda customer_id: contracts.list_objects(client, customer_id), customer_ids, task, workers
    )


def list_alerts(client: Any, customer_ids: Iterable[str]) -> dict[str, Listing]:
    """{customer id: the alerts it sees}: the API lists alerts only through a customer (its own and those
    for every customer)."""
    alerts = provider_module("alerts")
    return {customer_id: alerts.list_objects(client, customer_id) for customer_id in customer_ids}


# --------------------------------------------------------------------------------------------------
# the Stripe side


# The built-in default of Metronome and of the provider when a configuration names no method.
DEFAULT_COLLECTION_METHOD = "charge_automatically"


def stripe_connections(client: Any) -> list[dict[str, Any]]:
    """The account's connected Stripe delivery methods (/v1/listConfiguredBillingProviders)."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = client.v1.settings.billing_providers.list(**({"next_page": cursor} if cursor else {}))
        out += [m.model_dump() for m in page.data or [] if m.billing_provider == "stripe"]
        cursor = page.next_page
        if not cursor:
            return out


def stripe_link(config: dict[str, Any]) -> tuple[str | None, str]:
    """(stripe_customer_id, collection method) of a Stripe configuration, the method spelled out."""
    conf = config.get("configuration") or {}
    return conf.get("stripe_customer_id"), conf.get("stripe_collection_method") or DEFAULT_COLLECTION_METHOD
