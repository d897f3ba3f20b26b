"""Packages, alerts and notifications in the program: declared from the catalog, wired by output."""

from __future__ import annotations

from pathlib import Path

from test_program import RecordingMocks, T, _declare_dev, mocks  # noqa: F401  (the fixture)

REPO = Path(__file__).resolve().parent.parent


def test_package_takes_its_rate_card_and_products_by_output(mocks: RecordingMocks) -> None:  # noqa: F811
    _declare_dev()
    package = mocks.resources[(T + "Package", "self_serve")]
    assert package["name"] == "Self-serve"  # display_name -> Metronome name
    assert package["rate_card_id"] == "standard-id"
    assert package["aliases"] == [{"name": "self-serve"}]
    assert package["duration"] == {"unit": "YEARS", "value": 1}
    assert package["credits"][0]["product_id"] == "prepaid_commit-id"
    assert "product" not in package["credits"][0]


def test_alerts_account_wide_and_per_customer(mocks: RecordingMocks) -> None:  # noqa: F811
    _declare_dev()
    everyone = mocks.resources[(T + "Alert", "low_balance")]
    assert everyone["alert_type"] == "low_remaining_contract_credit_and_commit_balance_reached"
    assert "customer_id" not in everyone and everyone["evaluate_on_create"] is False
    acme = mocks.resources[(T + "Alert", "acme.spend_over_5000")]
    assert acme["customer_id"] == "acme-id" and acme["threshold"] == 500000
    assert acme["name"] == "Acme spend over $5,000"


def test_notification(mocks: RecordingMocks) -> None:  # noqa: F811
    _declare_dev()
    notice = mocks.resources[(T + "Notification", "commit_ending")]
    assert notice == {**notice, "name": "Commit ends in 7 days"}
    assert notice["policy"] == {"type": "commit.segment.end", "offset": "-P7D"}


def test_usage_alert_takes_its_metric_by_output(mocks: RecordingMocks, tmp_path: Path) -> None:  # noqa: F811
    import shutil

    import pulumi

    from metronome_iac.catalog import load_stack
    from metronome_iac.program import declare

    d = tmp_path / "dev"
    shutil.copytree(REPO / "stacks" / "dev", d)
    text = (d / "catalog.yaml").read_text()
    usage = (
        "\nalerts:\n  - name: heavy_input\n    alert_type: usage_threshold_reached\n    threshold: 1000000\n"
        "    billable_metric: input_tokens\n"
    )
    (d / "catalog.yaml").write_text(text.replace("\nalerts:\n", usage, 1))
    stack = load_stack(d)

    @pulumi.runtime.test
    def run():
        resources = declare(stack)
        return pulumi.Output.all(*[r.id for by_name in resources.values() for r in by_name.values()])

    run()
    assert mocks.resources[(T + "Alert", "heavy_input")]["billable_metric_id"] == "input_tokens-id"
