"""The API token never reaches the pickled provider, outputs, or error messages."""

from __future__ import annotations

import base64

import pytest
from provider_host import ProviderError, ProviderHost, provider_blob, unique

from providers.billable_metric import BillableMetricProvider
from providers.contract import ContractProvider
from providers.customer import CustomerProvider
from providers.product import ProductProvider
from providers.rate_card import RateCardProvider

PROVIDERS = [BillableMetricProvider, ProductProvider, RateCardProvider, CustomerProvider, ContractProvider]
SECRET = "sk-very-secret-token-4242"


@pytest.mark.parametrize("cls", PROVIDERS, ids=lambda c: c.kind)
def test_provider_pickles_by_reference_and_tiny(cls, monkeypatch):
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", SECRET)
    from providers.config import configure_from_request, reset_settings

    class Req:
        class config:  # noqa: N801 - mimics pulumi.dynamic.Config
            @staticmethod
            def get(key):
                return {"metronome:apiToken": SECRET, "metronome:baseUrl": "http://x"}.get(key)

    configure_from_request(Req())  # settings live in the module cache, never on the instance
    try:
        provider = cls()
        assert vars(provider) == {}
        blob = provider_blob(provider)
        raw = base64.b64decode(blob)
        assert SECRET.encode() not in raw and b"sk-very" not in raw
        assert len(blob) < 200, len(blob)  # by reference: module + class name only
        assert cls.__module__.encode() in raw
    finally:
        reset_settings()


def test_token_in_no_output_and_no_error(emulator):
    # The emulator checks the token: a wrong one gives a 401 whose message must not echo it.
    with ProviderHost(emulator.base_url, SECRET) as host:
        name = unique("sec")
        news = {"identity": f"t/s/{name}", "name": name, "aggregation_type": "COUNT"}
        with pytest.raises(ProviderError) as err:
            host.create(BillableMetricProvider, host.check_ok(BillableMetricProvider, news))
        assert "401" in str(err.value)
        assert SECRET not in err.value.details
        host.close()
        assert SECRET not in host.stderr_text()

    # Every kind's outputs (and read results) are free of the token.
    with ProviderHost(emulator.base_url, emulator.token) as host:
        n = unique("sec")
        metric_id, _, m = host.create_checked(
            BillableMetricProvider, {"identity": f"t/s/{n}-m", "name": n, "aggregation_type": "COUNT"}
        )
        product_id, _, p = host.create_checked(
            ProductProvider,
            {"identity": f"t/s/{n}-p", "name": n, "type": "USAGE", "billable_metric_id": metric_id},
        )
        card_id, _, r = host.create_checked(
            RateCardProvider,
            {
                "identity": f"t/s/{n}-r",
                "name": n,
                "rates": [
                    {
                        "product_id": product_id,
                        "starting_at": "2026-01-01T00:00:00Z",
                        "rate_type": "FLAT",
                        "price": 1,
                    }
                ],
            },
        )
        customer_id, _, c = host.create_checked(CustomerProvider, {"identity": f"t/s/{n}-c", "name": n})
        contract_id, _, k = host.create_checked(
            ContractProvider,
            {
                "identity": f"t/s/{n}-k",
                "customer_id": customer_id,
                "rate_card_id": card_id,
                "starting_at": "2026-01-01T00:00:00Z",
            },
        )
        reads = [
            host.read(cls, object_id, outs)
            for cls, object_id, outs in (
                (BillableMetricProvider, metric_id, m),
                (ProductProvider, product_id, p),
                (RateCardProvider, card_id, r),
                (CustomerProvider, customer_id, c),
                (ContractProvider, contract_id, k),
            )
        ]
        for outs in (m, p, r, c, k, *reads):
            assert emulator.token not in repr(outs)


def test_configured_token_wins_over_environment(emulator):
    # Configure carries the real settings; a bogus env token must not be used.
    with ProviderHost(emulator.base_url, emulator.token, env={"METRONOME_BEARER_TOKEN": "wrong"}) as host:
        name = unique("cfg")
        host.create_checked(CustomerProvider, {"identity": f"t/s/{name}", "name": name})


def test_environment_fallback(emulator):
    env = {"METRONOME_BASE_URL": emulator.base_url, "METRONOME_BEARER_TOKEN": emulator.token}
    with ProviderHost(env=env) as host:
        name = unique("env")
        host.create_checked(CustomerProvider, {"identity": f"t/s/{name}", "name": name})
