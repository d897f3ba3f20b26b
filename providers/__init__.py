"""Pulumi dynamic resources for Metronome (see docs/architecture.md, "Providers package")."""

from .billable_metric import BillableMetric
from .contract import Contract
from .customer import Customer
from .product import Product
from .rate_card import RateCard
from .stripe_integration import StripeIntegration

__all__ = ["BillableMetric", "Contract", "Customer", "Product", "RateCard", "StripeIntegration"]
