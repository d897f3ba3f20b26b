"""One router per API family, plus the reserved `/_emulator/` knobs."""

from __future__ import annotations

from fastapi import APIRouter

from metronome_iac.emulator.routers import (
    admin,
    alerts,
    billable_metrics,
    billing_providers,
    contract_edits,
    contracts,
    credit_types,
    custom_fields,
    customer_grants,
    customers,
    notifications,
    packages,
    products,
    rate_cards,
    usage,
)

ALL_ROUTERS: list[APIRouter] = [
    admin.router,
    billable_metrics.router,
    custom_fields.router,
    products.router,
    rate_cards.router,
    credit_types.router,
    customers.router,
    billing_providers.router,
    contracts.router,
    contract_edits.router,
    customer_grants.router,
    packages.router,
    alerts.router,
    notifications.router,
    usage.router,
]
