"""What other code relies on from `providers` (program, drift, export, pickled state) keeps its shape."""

from __future__ import annotations

import importlib
import inspect

import pytest

from providers.base import MetronomeProvider
from providers.schema import replacement_rules

MODULES = {
    "billable_metric": ("BillableMetric", "BillableMetricProvider"),
    "product": ("Product", "ProductProvider"),
    "rate_card": ("RateCard", "RateCardProvider"),
    "customer": ("Customer", "CustomerProvider"),
    "contract": ("Contract", "ContractProvider"),
    "stripe_integration": ("StripeIntegration", "StripeIntegrationProvider"),
}

# Module functions and their parameters (docs/architecture.md, "Providers as built").
READ_LIST = {
    "billable_metric": (["client", "object_id"], ["client"]),
    "product": (["client", "object_id"], ["client"]),
    "customer": (["client", "object_id"], ["client"]),
    "rate_card": (["client", "object_id", "desired"], ["client", "with_rates"]),
    "contract": (["client", "object_id", "customer_id", "desired"], ["client", "customer_id"]),
}


def test_package_exports_every_resource() -> None:
    import providers

    for resource, _ in MODULES.values():
        assert getattr(providers, resource).__name__ == resource


@pytest.mark.parametrize("name", sorted(MODULES))
def test_resource_and_provider_live_in_their_module(name: str) -> None:
    module = importlib.import_module(f"providers.{name}")
    resource, provider = MODULES[name]
    assert getattr(module, resource).__module__ == module.__name__
    assert getattr(module, provider).__module__ == module.__name__  # pickled by reference
    assert hasattr(module, "Inputs")
    # What replaces is declared on the schema fields themselves, and the provider reads it from there.
    assert getattr(module, provider).replace_rules == replacement_rules(module.Inputs)
    # drift finds a section's provider by this name (`<Resource>Provider`), not by looking through the module.
    assert provider == f"{resource}Provider" and issubclass(getattr(module, provider), MetronomeProvider)


@pytest.mark.parametrize("name", sorted(READ_LIST))
def test_read_and_list_signatures(name: str) -> None:
    module = importlib.import_module(f"providers.{name}")
    read_params, list_params = READ_LIST[name]
    assert list(inspect.signature(module.read_object).parameters) == read_params
    assert list(inspect.signature(module.list_objects).parameters) == list_params


def test_client_names() -> None:
    from providers.client import MetronomeError, kind_index, make_client
    from providers.exactly_once import create_once

    assert issubclass(MetronomeError, Exception)
    assert list(inspect.signature(kind_index).parameters) == ["client", "kind", "lister", "reader"]
    assert callable(create_once) and callable(make_client)
