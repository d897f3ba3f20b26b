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

from providers import notification


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
    declared = project.declared()
    assert f"{declared} created" in up.stdout, up.stdout
    outputs = project.outputs()
    client = project.emulator.client()
    for name, metric_id in outputs["billable_metrics"].items():
        metric = client.v1.billable_metrics.retrieve(billable_metric_id=metric_id).data
        assert metric.custom_fields["iac_identity"].startswith(f"metronome-iac/dev/{name}#")
    project.run("preview", "--expect-no-changes")
    again = project.run("up", "--yes", "--expect-no-changes")
    assert f"{declared} unchanged" in again.stdout, again.stdout


def test_state_holds_no_per_resource_ballast(project: PulumiProject) -> None:
    """The file backend writes the whole state again after every step, so what each resource carries
    beyond its properties costs an update of N resources N times: the pickled provider is plain (a
    class reference holding no secret, not encrypted twice per resource), and the stack trace keeps
    the project's own frames (not runpy's, the runner's, the SDK's and asyncio's)."""
    resources = [r for r in project.export()["deployment"]["resources"] if "dynamic/metronome" in r["type"]]
    assert len(resources) == project.declared() - 1
    for res in resources:
        for bag in ("inputs", "outputs"):
            blob = res[bag]["__provider"]
            assert isinstance(blob, str) and len(blob) < 200, (res["urn"], bag, blob)
        frames = [frame.get("sourcePosition", "") for frame in res.get("stackTrace", [])]
        assert frames and frames[0] == res["sourcePosition"], res["urn"]
        outside = [f for f in frames if not f.startswith("project:///") or "../" in f or "/.venv/" in f]
        assert not outside, (res["urn"], frames)


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


RENAMES = {  # kind: (old name, new name)
    "BillableMetric": ("output_tokens", "generated_tokens"),
    "Product": ("output_tokens_product", "generated_tokens_product"),
    "RateCard": ("standard", "standard_2026"),
    "Customer": ("globex", "globex_corp"),
    "Contract": ("acme_2026", "acme_main"),
}


def rename(project: PulumiProject, kinds: tuple[str, ...], with_previous_names: bool) -> None:
    """Entries of `kinds` renamed (RENAMES), and every reference to them follows."""
    for kind in kinds:
        old, new = RENAMES[kind]
        path = project.catalog if kind in ("BillableMetric", "Product", "RateCard") else project.environment
        previous = f"\n    previous_names: [{old}]" if with_previous_names else ""
        project.edit(path, f"  - name: {old}\n", f"  - name: {new}{previous}\n")
    references = {  # what names each kind's entries elsewhere (a package names its rate card too)
        "BillableMetric": ("billable_metric: output_tokens\n", "billable_metric: generated_tokens\n"),
        "Product": ("product: output_tokens_product\n", "product: generated_tokens_product\n"),
        "RateCard": ("rate_card: standard\n", "rate_card: standard_2026\n"),
        "Customer": ("customer: globex\n", "customer: globex_corp\n"),
    }
    for kind in kinds:
        if kind in references:
            old_ref, new_ref = references[kind]
            for path in (project.catalog, project.environment):
                path.write_text(path.read_text().replace(old_ref, new_ref))


def test_rename_without_previous_names_is_a_create_and_a_delete(project: PulumiProject) -> None:
    originals = project.catalog.read_text(), project.environment.read_text()
    rename(project, ("BillableMetric", "Product"), with_previous_names=False)
    steps = project.preview_steps()
    for kind in ("BillableMetric", "Product"):
        old, new = RENAMES[kind]
        assert steps.get(new) == {"create"} and steps.get(old) == {"delete"}, (old, new, steps)
    # What a contract references cannot be swapped that way: the contract would be replaced.
    rename(project, ("RateCard",), with_previous_names=False)
    refused = project.run("preview", check=False)
    assert (
        refused.returncode != 0 and "rate_card_id" in refused.stdout and "allow_replacement" in refused.stdout
    )
    project.catalog.write_text(originals[0])
    project.environment.write_text(originals[1])


def test_rename_with_previous_names_keeps_every_metronome_object(project: PulumiProject) -> None:
    before = {kind: ids(project, kind)[old] for kind, (old, _) in RENAMES.items()}
    rename(project, tuple(RENAMES), with_previous_names=True)
    steps = project.preview_steps()
    for _, new in RENAMES.values():
        assert steps.get(new, set()) <= {"update"}, steps  # re-tagged in place, never created
    assert not {old for old, _ in RENAMES.values()} & set(steps), steps  # nothing deleted

    up = project.run("up", "--yes")
    assert " created" not in up.stdout and " deleted" not in up.stdout, up.stdout
    for kind, (_, new) in RENAMES.items():
        assert ids(project, kind)[new] == before[kind], kind
    client = project.emulator.client()
    metric = client.v1.billable_metrics.retrieve(billable_metric_id=before["BillableMetric"]).data
    assert metric.archived_at is None
    assert metric.custom_fields["iac_identity"].startswith("metronome-iac/dev/generated_tokens#")
    project.run("preview", "--expect-no-changes")


def test_display_name_change_updates_in_place(project: PulumiProject) -> None:
    project.edit(
        project.catalog,
        "    display_name: Output tokens\n    type: USAGE",
        "    display_name: Generated tokens\n    type: USAGE",
    )
    assert project.preview_steps() == {"generated_tokens_product": {"update"}}
    product_id = ids(project, "Product")["generated_tokens_product"]
    project.run("up", "--yes")
    product = project.emulator.client().v1.contracts.products.retrieve(id=product_id).data
    assert product.current.name == "Generated tokens"


def test_hand_edit_is_drift_until_up_refresh_restores_it(project: PulumiProject) -> None:
    metric_id = ids(project, "BillableMetric")["generated_tokens"]
    client = project.emulator.client()
    client.v1.billable_metrics.update(billable_metric_id=metric_id, name="edited by hand")

    drift = project.run("preview", "--refresh", "--expect-no-changes", check=False)
    assert drift.returncode != 0, drift.stdout
    assert "generated_tokens" in drift.stdout, drift.stdout
    make_drift = project.make("drift", "STACK=dev")
    assert make_drift.returncode != 0, make_drift.stdout + make_drift.stderr
    assert "generated_tokens" in make_drift.stdout, make_drift.stdout

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


def test_removed_entries_are_archived_dependents_first(project: PulumiProject) -> None:
    text = project.environment.read_text()
    text = text[: text.index("  - name: initech\n")] + text[text.index("contracts:\n") :]
    text = text[: text.index("  - name: initech_2026\n")]
    project.environment.write_text(text)
    customer_id = ids(project, "Customer")["initech"]
    contract_id = ids(project, "Contract")["initech_2026"]
    # The Stripe integration lists the stack's customers: it drops initech too.
    expected = {"initech": {"delete"}, "initech_2026": {"delete"}, "stripe": {"update"}}
    assert project.preview_steps() == expected
    project.run("up", "--yes")
    client = project.emulator.client()
    assert client.v1.customers.retrieve(customer_id=customer_id).data.archived_at
    contract = client.v2.contracts.retrieve(contract_id=contract_id, customer_id=customer_id).data
    assert contract.archived_at
    project.run("preview", "--expect-no-changes")


def test_object_archived_by_hand_leaves_the_state_at_refresh(project: PulumiProject) -> None:
    customer_id = ids(project, "Customer")["globex_corp"]
    project.emulator.client().v1.customers.archive(id=customer_id)  # archives its contracts too
    steps = project.preview_steps("--refresh")
    assert steps.get("globex_corp") == {"create"} and steps.get("globex_2026") == {"create"}, steps
    project.run("refresh", "--yes")
    assert "globex_corp" not in project.resources("Customer")
    assert "globex_2026" not in project.resources("Contract")


def test_destroy_archives_every_object(project: PulumiProject) -> None:
    state = {
        kind: project.resources(kind)
        for kind in (
            "BillableMetric",
            "Product",
            "RateCard",
            "Customer",
            "Contract",
            "Package",
            "Alert",
            "Notification",
        )
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
    for name, res in state["Package"].items():
        assert client.v1.packages.retrieve(package_id=res["id"]).data.archived_at, name
    for name, res in state["Notification"].items():
        assert notification.read_object(client, res["id"]) is None, name  # None: archived
    any_customer = next(iter(state["Customer"].values()))["id"]
    for name, res in state["Alert"].items():
        customer_id = res["outputs"].get("customer_id") or any_customer
        alert = client.v1.customers.alerts.retrieve(customer_id=customer_id, alert_id=res["id"]).data
        assert alert.alert.status == "archived", name
    live_cards = {card.id for card in client.v1.contracts.rate_cards.list()}
    assert not live_cards & {res["id"] for res in state["RateCard"].values()}
