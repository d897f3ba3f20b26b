"""Going live on Stripe through the real engine, as a user runs it: the dev stack's `go_live` flips
from false to true against a local Stripe (tests/fake_stripe.py) and the emulator over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from conftest import Emulator, start_emulator
from fake_stripe import ACCOUNT_ID, API_KEY, FakeStripe
from pulumi_cli import PulumiProject

from metronome_iac.catalog import load_stack


@pytest.fixture(scope="module")
def stripe_fake() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def emulator_connected() -> Iterator[Emulator]:
    emu = start_emulator("--stripe-connected")
    yield emu
    emu.stop()


def test_go_live_flip_sets_each_customers_billing_configuration(
    pulumi_cli: str,
    emulator_connected: Emulator,
    stripe_fake: FakeStripe,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    project = PulumiProject(
        tmp_path_factory.mktemp("golive"),
        pulumi_cli,
        emulator_connected,
        config={"stripe:apiBase": stripe_fake.api_base},
    )
    project.run("config", "set", "--secret", "stripe:apiKey", API_KEY)
    env = project.environment.read_text().replace("acct_1DevTestAccount", ACCOUNT_ID)
    # The dev stack's customers, made in the local Stripe: their cus_ ids replace the examples.
    for example in sorted(set(re.findall(r"cus_Dev\w+", env))):
        env = env.replace(example, stripe_fake.create_customer(example))
    project.environment.write_text(env)

    project.run("up", "--yes")
    client = emulator_connected.client()
    stack = load_stack(project.environment.parent)
    billed = {c.name for c in stack.environment.customers if c.stripe_customer_id}
    from_package = {k.name for k in stack.environment.contracts if k.package}
    customers = {name: res["id"] for name, res in project.resources("Customer").items() if name in billed}
    for customer_id in customers.values():
        assert not client.v1.customers.retrieve_billing_configurations(customer_id=customer_id).data

    project.edit(project.environment, "go_live: false", "go_live: true")
    steps = project.preview_steps()
    assert steps.get("stripe") == {"update"}, steps
    diff = project.run("preview", "--diff").stdout
    assert "go_live" in diff, diff

    project.run("up", "--yes")
    integration = next(iter(project.resources("StripeIntegration").values()))["outputs"]
    configured = integration["billing_provider_configuration_ids"]
    assert set(configured) == set(customers.values()), configured
    for name, customer_id in customers.items():
        live = client.v1.customers.retrieve_billing_configurations(customer_id=customer_id).data
        assert [c.id for c in live] == [configured[customer_id]], name
        assert live[0].billing_provider == "stripe"
    for name, res in project.resources("Contract").items():
        contract = client.v2.contracts.retrieve(
            contract_id=res["id"], customer_id=res["outputs"]["customer_id"]
        )
        bound = contract.data.customer_billing_provider_configuration
        if name in from_package:  # the package's billing provider gives it (here: none)
            assert bound is None, name
            continue
        assert bound is not None and bound.id == configured[res["outputs"]["customer_id"]], name
    project.run("preview", "--expect-no-changes")
