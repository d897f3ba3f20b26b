"""The dev stack through the real Pulumi engine, as a user runs it, against the emulator over HTTP.

One project and one emulator for the module; the tests run in order, each starting from the state the
one before left (as a user's stack lives on): up, no-change preview, a replacement, a refused contract
replacement, a rename, drift, a secret token, destroy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Emulator, start_emulator
from pulumi_cli import PulumiProject


@pytest.fixture(scope="module")
def emulator_for_cli() -> Iterator[Emulator]:
    emu = start_emulator("--stripe-connected")
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def project(
    pulumi_cli: str, emulator_for_cli: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> PulumiProject:
    return PulumiProject(tmp_path_factory.mktemp("cli"), pulumi_cli, emulator_for_cli)


def ids(project: PulumiProject, kind: str) -> dict[str, str]:
    return {name: res["id"] for name, res in project.resources(kind).items()}


def test_up_from_empty_then_nothing_to_do(project: PulumiProject) -> None:
    up = project.run("up", "--yes")
    assert "14 created" in up.stdout, up.stdout
    outputs = project.outputs()
    client = project.emulator.client()
    for name, metric_id in outputs["billable_metrics"].items():
        metric = client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data
        assert metric.custom_fields["iac_identity"].startswith(f"metronome-iac/dev/{name}#")
    project.run("preview", "--expect-no-changes")
    again = project.run("up", "--yes", "--expect-no-changes")
    assert "14 unchanged" in again.stdout, again.stdout


def test_group_key_edit_replaces_the_metric_and_moves_the_product(project: PulumiProject) -> None:
    before = ids(project, "BillableMetric")["input_tokens"]
    project.edit(
        project.catalog,
        "      - {name: region, exists: true}\n    group_keys: [[model, region]]",
        "      - {name: region, exists: true}\n      - {name: tier, exists: true}\n"
        "    group_keys: [[model, region], [model, region, tier]]",
    )
    steps = project.preview_steps()
    assert steps["input_tokens"] == {"replace"}, steps
    assert "output_tokens" not in steps, steps  # only the edited metric
    assert steps["input_tokens_product"] == {"update"}, steps  # its metric id changes in place
    diff = project.run("preview", "--diff").stdout
    assert "group_keys" in diff and "replace" in diff, diff

    project.run("up", "--yes")
    after = ids(project, "BillableMetric")["input_tokens"]
    assert after != before
    client = project.emulator.client()
    assert client.v1.billable_metrics.retrieve(billable_metric_id=before).data.archived_at is not None
    product_id = ids(project, "Product")["input_tokens_product"]
    product = client.v1.contracts.products.retrieve(id=product_id).data
    assert product.current.billable_metric_id == after
    project.run("preview", "--expect-no-changes")


def test_contract_start_change_is_refused_unless_replacement_is_allowed(project: PulumiProject) -> None:
    original = project.environment.read_text()
    project.edit(
        project.environment, 'starting_at: "2026-03-01T00:00:00Z"', 'starting_at: "2026-04-01T00:00:00Z"'
    )
    refused = project.run("preview", check=False)
    assert refused.returncode != 0
    out = refused.stdout + refused.stderr
    assert "initech_2026" in out and "starting_at" in out and "allow_replacement" in out, out

    project.edit(
        project.environment,
        'starting_at: "2026-04-01T00:00:00Z"',
        'starting_at: "2026-04-01T00:00:00Z"\n    allow_replacement: true',
    )
    steps = project.preview_steps()
    assert steps["initech_2026"] == {"replace"}, steps
    project.environment.write_text(original)
    project.run("preview", "--expect-no-changes")


def test_rename_with_previous_names_keeps_the_metronome_object(project: PulumiProject) -> None:
    customer_id = ids(project, "Customer")["globex"]
    contract_id = ids(project, "Contract")["globex_2026"]
    project.edit(
        project.environment, "  - name: globex\n", "  - name: globex_corp\n    previous_names: [globex]\n"
    )
    project.edit(project.environment, "    customer: globex\n", "    customer: globex_corp\n")
    steps = project.preview_steps()
    assert steps.get("globex_corp", set()) <= {"update"}, steps  # re-tagged in place, never created
    assert "globex" not in steps, steps  # nothing deleted under the old name
    assert "globex_2026" not in steps, steps  # the contract's customer id does not change

    up = project.run("up", "--yes")
    assert "created" not in up.stdout and "deleted" not in up.stdout, up.stdout
    assert ids(project, "Customer")["globex_corp"] == customer_id
    assert ids(project, "Contract")["globex_2026"] == contract_id
    client = project.emulator.client()
    assert client.v1.customers.retrieve(customer_id=customer_id).data.archived_at is None
    project.run("preview", "--expect-no-changes")


def test_hand_edit_is_drift_until_up_refresh_restores_it(project: PulumiProject) -> None:
    metric_id = ids(project, "BillableMetric")["output_tokens"]
    client = project.emulator.client()
    client.v1.billable_metrics.update(billable_metric_id=metric_id, name="edited by hand")

    drift = project.run("preview", "--refresh", "--expect-no-changes", check=False)
    assert drift.returncode != 0, drift.stdout
    assert "output_tokens" in drift.stdout, drift.stdout
    make_drift = project.make("drift", "STACK=dev")
    assert make_drift.returncode != 0, make_drift.stdout + make_drift.stderr
    assert "output_tokens" in make_drift.stdout, make_drift.stdout

    project.run("up", "--refresh", "--yes")
    assert client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data.name == "Output tokens"
    project.run("preview", "--refresh", "--expect-no-changes")
    assert project.make("drift", "STACK=dev").returncode == 0


def test_secret_token_stays_out_of_state_logs_and_outputs(project: PulumiProject) -> None:
    token = project.emulator.token
    project.run("config", "set", "--secret", "metronome:apiToken", token)
    env = {
        k: v for k, v in project.env.items() if k != "METRONOME_BEARER_TOKEN"
    }  # the config is the only source
    logs = Path(env["PULUMI_HOME"]) / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    # A refresh reads with the provider settings the last update recorded (Pulumi's rule for every
    # provider): the update that follows a config change records the token, then a refresh uses it.
    project.run("up", "--yes", env=env)
    run = project.run("up", "--refresh", "--yes", "--logflow", "-v=9", env=env)
    engine_logs = "".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file())
    assert engine_logs, f"the engine wrote no log under {logs}"
    config = (project.dir / "Pulumi.dev.yaml").read_text()
    assert "metronome:apiToken" in config and "secure:" in config
    for where, text in {
        "stack export": project.run("stack", "export", env=env).stdout,
        "outputs": project.run("stack", "output", "--json", "--show-secrets", env=env).stdout,
        "the engine's output": run.stdout + run.stderr,
        "the engine's logs": engine_logs,
        "Pulumi.dev.yaml": config,
    }.items():
        assert token not in text, f"the API token appears in {where}"
    project.run("config", "rm", "metronome:apiToken")


def test_destroy_archives_every_object(project: PulumiProject) -> None:
    state = {
        kind: project.resources(kind)
        for kind in ("BillableMetric", "Product", "RateCard", "Customer", "Contract")
    }
    assert all(state.values()), state
    project.run("destroy", "--yes")
    client = project.emulator.client()
    for name, res in state["BillableMetric"].items():
        assert client.v1.billable_metrics.retrieve(billable_metric_id=res["id"]).data.archived_at, name
    for name, res in state["Product"].items():
        assert client.v1.contracts.products.retrieve(id=res["id"]).data.archived_at, name
    for name, res in state["Customer"].items():
        assert client.v1.customers.retrieve(customer_id=res["id"]).data.archived_at, name
    for name, res in state["Contract"].items():
        contract = client.v2.contracts.retrieve(
            contract_id=res["id"], customer_id=res["outputs"]["customer_id"]
        )
        assert contract.data.archived_at, name
    live_cards = {card.id for card in client.v1.contracts.rate_cards.list()}
    assert not live_cards & {res["id"] for res in state["RateCard"].values()}
