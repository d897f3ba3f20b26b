"""Renaming catalog entries with `previous_names`: the same Metronome objects, re-tagged, no churn.

A rename changes the Pulumi resource name. With `previous_names` the program declares an alias per old
name, so the engine (here the mini engine, which honours aliases as Pulumi does) takes the old state
over; the provider sees only a new `identity` and updates in place: it re-tags the live object's
`iac_identity` (a contract keeps its uniqueness key and gets the tag too). Checked through the mini
engine and the emulator, read back with the official client.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from mini_engine import PROJECT, Step, engine_for, make_stack_dir

from metronome_iac.catalog import CatalogError, load_stack
from metronome_iac.cli import main

# (kind, old name, new name): one of each kind the catalog can rename.
RENAMES = [
    ("BillableMetric", "input_tokens", "prompt_tokens"),
    ("Product", "prepaid_commit", "prepaid_tokens"),
    ("RateCard", "standard", "list_2026"),
    ("Customer", "acme", "acme_corp"),
    ("Contract", "acme_2026", "acme_agreement_2026"),
]


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _rename(entries: list[dict[str, Any]], old: str, new: str, keep_previous: bool = True) -> None:
    entry = next(e for e in entries if e["name"] == old)
    entry["name"] = new
    if keep_previous:
        entry["previous_names"] = [old]


def _rename_catalog(c: dict[str, Any]) -> None:
    _rename(c["billable_metrics"], "input_tokens", "prompt_tokens")
    _rename(c["products"], "prepaid_commit", "prepaid_tokens")
    _rename(c["rate_cards"], "standard", "list_2026")
    for p in c["products"]:  # references follow the new names
        if p.get("billable_metric") == "input_tokens":
            p["billable_metric"] = "prompt_tokens"
    for package in c.get("packages") or []:
        package["rate_card"] = (
            "list_2026" if package.get("rate_card") == "standard" else package.get("rate_card")
        )
        for credit in package.get("credits") or []:
            if credit.get("product") == "prepaid_commit":
                credit["product"] = "prepaid_tokens"


def _rename_environment(e: dict[str, Any]) -> None:
    _rename(e["customers"], "acme", "acme_corp")
    _rename(e["contracts"], "acme_2026", "acme_agreement_2026")
    for k in e["contracts"]:
        if k.get("rate_card") == "standard":  # (a contract made from a package names none)
            k["rate_card"] = "list_2026"
        k["customer"] = "acme_corp" if k["customer"] == "acme" else k["customer"]
        for commit in k.get("commits") or []:
            if commit.get("product") == "prepaid_commit":
                commit["product"] = "prepaid_tokens"


# Renamed with them: a renamed customer's alerts (resource name `<customer>.<alert>`).
FOLLOWING = [("Alert", "acme.spend_over_5000", "acme_corp.spend_over_5000")]


def _assert_only_renames(steps: list[Step], what: str) -> None:
    renamed = {(kind, new) for kind, _, new in RENAMES + FOLLOWING}
    for s in steps:
        if (s.kind, s.name) in renamed:
            assert s.op == "update" and s.detail == ["identity"], f"{what}: {s} (all: {steps})"
        else:
            assert s.op == "same", f"{what}: {s} is not 'same' (all: {steps})"
    assert {(s.kind, s.name) for s in steps} >= renamed, f"{what}: {steps}"


def _live_tag(client: Any, kind: str, object_id: str, customer_id: str | None = None) -> str | None:
    """The live `iac_identity`, read with the official client."""
    if kind == "BillableMetric":
        fields = client.v1.billable_metrics.retrieve(billable_metric_id=object_id).data.custom_fields
    elif kind == "Product":
        fields = client.v1.contracts.products.retrieve(id=object_id).data.custom_fields
    elif kind == "RateCard":
        fields = client.v1.contracts.rate_cards.retrieve(id=object_id).data.custom_fields
    elif kind == "Customer":
        fields = client.v1.customers.retrieve(customer_id=object_id).data.custom_fields
    else:
        contract = client.v2.contracts.retrieve(customer_id=customer_id, contract_id=object_id).data
        fields = contract.custom_fields
    return (fields or {}).get("iac_identity")


def _drift(emulator: Any, stack_dir: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("METRONOME_BEARER_TOKEN", emulator.token)
    args = ["drift", "--stack", stack_dir.name, "--stacks-dir", str(stack_dir.parent), "--project", PROJECT]
    return main([*args, "--base-url", emulator.base_url])


def test_rename_every_kind_keeps_the_objects(
    fresh_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    emulator = fresh_emulator
    stack_dir = make_stack_dir(tmp_path)
    engine = engine_for(emulator, stack_dir.name)
    assert {s.op for s in engine.up(load_stack(stack_dir))} == {"create"}
    before = {(kind, old): engine.find(kind, old).id for kind, old, _ in RENAMES + FOLLOWING}
    all_ids = sorted(r.id for r in engine.state.values())

    _edit(stack_dir / "catalog.yaml", _rename_catalog)
    _edit(stack_dir / "environment.yaml", _rename_environment)
    stack = load_stack(stack_dir)

    # Renamed in the catalog, not applied yet: drift still matches every object (by previous name).
    assert _drift(emulator, stack_dir, monkeypatch) == 0, capsys.readouterr().out

    _assert_only_renames(engine.plan(stack), "plan")
    steps = engine.up(stack)
    _assert_only_renames(steps, "up")

    # Same Metronome objects under the new names; nothing created, nothing archived.
    for kind, old, new in RENAMES + FOLLOWING:
        assert engine.find(kind, new).id == before[(kind, old)], (kind, new)
        assert not any(r.name == old and r.type.endswith(":" + kind) for r in engine.state.values())
    assert sorted(r.id for r in engine.state.values()) == all_ids

    # The live tags carry the new names (a contract keeps its uniqueness key, which names the old one).
    client = emulator.client()
    prefix = f"{PROJECT}/{stack_dir.name}/"
    for kind, _old, new in RENAMES:
        rec = engine.find(kind, new)
        tag = _live_tag(client, kind, rec.id, rec.inputs.get("customer_id"))
        assert tag and tag.startswith(f"{prefix}{new}#"), (kind, tag)
        assert rec.outputs["identity"] == f"{prefix}{new}"
    contract = engine.find("Contract", "acme_agreement_2026")
    assert contract.outputs["uniqueness_key"].startswith(f"iac:{prefix}acme_2026#")
    live_contract = client.v2.contracts.retrieve(
        customer_id=contract.inputs["customer_id"], contract_id=contract.id
    ).data
    assert live_contract.uniqueness_key == contract.outputs["uniqueness_key"]
    assert client.v1.contracts.products.list().data  # products still listed (nothing archived)
    assert not any(p.archived_at for p in client.v1.contracts.products.list().data)

    # Applied: drift is still in sync, and nothing shows as changed afterwards.
    assert _drift(emulator, stack_dir, monkeypatch) == 0, capsys.readouterr().out
    assert {s.op for s in engine.plan(stack)} == {"same"}
    assert {s.op for s in engine.refresh()} == {"same"}
    assert {s.op for s in engine.plan(stack)} == {"same"}

    # Export writes the current names (from the re-tagged objects).
    out = tmp_path / "exported"
    capsys.readouterr()
    assert main(["export", "--out", str(out), "--base-url", emulator.base_url]) == 0, capsys.readouterr().err
    exported = load_stack(out)
    names = {
        "BillableMetric": {m.name for m in exported.catalog.billable_metrics},
        "Product": {p.name for p in exported.catalog.products},
        "RateCard": {c.name for c in exported.catalog.rate_cards},
        "Customer": {c.name for c in exported.environment.customers},
        "Contract": {k.name for k in exported.environment.contracts},
    }
    for kind, old, new in RENAMES:
        assert new in names[kind] and old not in names[kind], (kind, names[kind])


def _problems(stack_dir: Path) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        load_stack(stack_dir)
    return info.value


def test_previous_name_clashing_with_another_entry_is_refused(tmp_path: Path) -> None:
    stack_dir = make_stack_dir(tmp_path)
    _edit(
        stack_dir / "catalog.yaml",
        lambda c: c["billable_metrics"][0].update(previous_names=["output_tokens"]),  # a current name
    )
    err = _problems(stack_dir)
    hits = [p for p in err.problems if p.field and p.field.startswith("previous_names")]
    assert len(hits) == 1, str(err)
    p = hits[0]
    assert p.file.endswith("catalog.yaml") and p.entry == "billable metric 'input_tokens'" and p.line
    assert "output_tokens" in p.message and "current name" in p.message and "to fix" in p.message


def test_previous_names_listed_twice_or_own_name_are_refused(tmp_path: Path) -> None:
    stack_dir = make_stack_dir(tmp_path)

    def change(e: dict[str, Any]) -> None:
        e["customers"][0]["previous_names"] = ["old_acme"]
        e["customers"][1]["previous_names"] = ["old_acme"]  # two entries claim the same old name
        e["contracts"][0]["previous_names"] = [e["contracts"][0]["name"]]  # its own name

    _edit(stack_dir / "environment.yaml", change)
    err = _problems(stack_dir)
    messages = [
        (p.entry, p.message) for p in err.problems if p.field and p.field.startswith("previous_names")
    ]
    assert any("duplicate previous name" in m and "old_acme" in m for _, m in messages), str(err)
    assert any("own name" in m for _, m in messages), str(err)
    assert len(messages) == 2, str(err)


def test_previous_names_of_another_kind_are_independent(tmp_path: Path) -> None:
    """A previous name only clashes with entries of the same kind (resource names are per type)."""
    stack_dir = make_stack_dir(tmp_path)
    _edit(stack_dir / "environment.yaml", lambda e: e["customers"][0].update(previous_names=["standard"]))
    stack = load_stack(stack_dir)
    assert stack.environment.customers[0].previous_names == ["standard"]
