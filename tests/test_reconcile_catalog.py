"""The catalog fields reconcile adds: `stripe_meter` on a billable metric (never sent to Metronome) and
`stripe.require_reconciled_days`; each bad value is one problem naming file, entry, field, line and fix."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from metronome_iac.catalog import CatalogError, load_stack
from metronome_iac.program import metric_inputs

REPO = Path(__file__).resolve().parent.parent
METER_LINE = "    group_keys: [[model, region]]\n"
Edits = Sequence[tuple[str, str]]


def stack(tmp_path: Path, catalog: Edits = (), env: Edits = ()) -> Path:
    """The dev stack with textual edits (each (old, new) replaces the first `old`)."""
    d = tmp_path / "stack"
    shutil.copytree(REPO / "stacks" / "dev", d)
    for name, edits in (("catalog.yaml", catalog), ("environment.yaml", env)):
        text = (d / name).read_text()
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new, 1)
        (d / name).write_text(text)
    return d


def line_of(path: Path, needle: str, nth: int = 1) -> int:
    hits = [i for i, line in enumerate(path.read_text().splitlines(), start=1) if needle in line]
    return hits[nth - 1]


def problem(d: Path, entry: str, field: str) -> tuple[int | None, str, str]:
    with pytest.raises(CatalogError) as info:
        load_stack(d)
    matching = [p for p in info.value.problems if p.entry == entry and p.field == field]
    assert len(matching) == 1, str(info.value)
    assert len(info.value.problems) == 1, str(info.value)  # one clear error, not a cascade
    return matching[0].line, matching[0].message, str(matching[0])


def test_stripe_meter_loads_and_is_not_sent_to_metronome(tmp_path: Path) -> None:
    d = stack(tmp_path, catalog=[(METER_LINE, METER_LINE + "    stripe_meter: mtr_test_61Q8nQMq\n")])
    metric = load_stack(d).metric("input_tokens")
    assert metric.stripe_meter == "mtr_test_61Q8nQMq"
    assert "stripe_meter" not in metric_inputs(metric)


def test_stripe_meter_that_is_not_a_meter_id(tmp_path: Path) -> None:
    d = stack(tmp_path, catalog=[(METER_LINE, METER_LINE + "    stripe_meter: input_tokens\n")])
    line, message, rendered = problem(d, "billable metric 'input_tokens'", "stripe_meter")
    assert line == line_of(d / "catalog.yaml", "stripe_meter: input_tokens")
    assert "mtr_" in message and "catalog.yaml:" in rendered


def test_one_meter_on_two_metrics(tmp_path: Path) -> None:
    d = stack(tmp_path)
    text = (d / "catalog.yaml").read_text()
    assert text.count(METER_LINE) == 2  # input_tokens and output_tokens
    (d / "catalog.yaml").write_text(text.replace(METER_LINE, METER_LINE + "    stripe_meter: mtr_123\n"))
    line, message, _ = problem(d, "billable metric 'output_tokens'", "stripe_meter")
    assert line == line_of(d / "catalog.yaml", "stripe_meter: mtr_123", nth=2)
    assert "already the stripe_meter of billable metric 'input_tokens'" in message and "to fix" in message


def test_require_reconciled_days_needs_a_stripe_meter(tmp_path: Path) -> None:
    d = stack(tmp_path, env=[("  go_live: false", "  go_live: false\n  require_reconciled_days: 7")])
    line, message, rendered = problem(d, "stripe section", "require_reconciled_days")
    assert line == line_of(d / "environment.yaml", "require_reconciled_days")
    assert "no billable metric" in message and "stripe_meter" in message and "to fix" in message
    assert "environment.yaml:" in rendered

    with_meter = [(METER_LINE, METER_LINE + "    stripe_meter: mtr_123\n")]
    days = [("  go_live: false", "  go_live: false\n  require_reconciled_days: 7")]
    d = stack(tmp_path / "ok", catalog=with_meter, env=days)
    assert load_stack(d).environment.stripe.require_reconciled_days == 7


@pytest.mark.parametrize("value", ["0", "-3", "a week"])
def test_require_reconciled_days_is_a_positive_number_of_days(tmp_path: Path, value: str) -> None:
    d = stack(
        tmp_path,
        catalog=[(METER_LINE, METER_LINE + "    stripe_meter: mtr_123\n")],
        env=[("  go_live: false", f"  go_live: false\n  require_reconciled_days: {value}")],
    )
    line, _, _ = problem(d, "stripe section", "require_reconciled_days")
    assert line == line_of(d / "environment.yaml", "require_reconciled_days")
