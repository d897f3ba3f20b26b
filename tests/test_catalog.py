"""Catalog loader: the shipped stacks load; each kind of bad file fails with file, entry, field and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from metronome_iac.catalog import (
    CatalogError,
    Environment,
    catalog_to_yaml,
    environment_to_yaml,
    load_catalog,
    load_stack,
)

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "catalogs"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_example_stacks_load(stack: str) -> None:
    s = load_stack(REPO / "stacks" / stack)
    assert s.name == stack
    assert {m.name for m in s.catalog.billable_metrics} == {"input_tokens", "output_tokens"}
    assert s.catalog.rate_cards[0].rates
    assert s.environment.customers and s.environment.contracts


def test_dev_stack_shape() -> None:
    s = load_stack(REPO / "stacks" / "dev")
    product = s.product("input_tokens_product")
    assert product.quantity_conversion is not None
    assert product.quantity_conversion.operation == "DIVIDE"
    assert product.quantity_conversion.conversion_factor == 1_000_000
    assert any(r.rate_type == "TIERED" and r.tiers for r in s.rate_card("standard").rates)
    assert len(s.environment.customers) == 4
    assert all(c.ingest_aliases for c in s.environment.customers)
    # Stripe-billed customers, and a self-serve sign-up (made from the package) not in Stripe yet.
    assert [c.name for c in s.environment.customers if not c.stripe_customer_id] == ["piedpiper"]
    assert s.environment.stripe is not None and s.environment.stripe.go_live is False
    commits = [c for k in s.environment.contracts for c in k.commits or []]
    assert any(c.type == "PREPAID" for c in commits)


def test_promotable_catalog_is_the_same_in_every_stack() -> None:
    dev = (REPO / "stacks" / "dev" / "catalog.yaml").read_text()
    for stack in ("staging", "prod"):
        assert (REPO / "stacks" / stack / "catalog.yaml").read_text() == dev


def _stack(
    tmp_path: Path, catalog_edit: tuple[str, str] | None = None, env_edit: tuple[str, str] | None = None
) -> Path:
    """A copy of the dev stack with one textual edit applied."""
    d = tmp_path / "stack"
    shutil.copytree(REPO / "stacks" / "dev", d)
    for name, edit in (("catalog.yaml", catalog_edit), ("environment.yaml", env_edit)):
        if edit:
            text = (d / name).read_text()
            assert edit[0] in text, edit[0]
            (d / name).write_text(text.replace(edit[0], edit[1], 1))
    return d


def _line_of(path: Path, needle: str, nth: int = 1) -> int:
    count = 0
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            count += 1
            if count == nth:
                return i
    raise AssertionError(f"{needle!r} not in {path}")


def _one_problem(d: Path) -> CatalogError:
    with pytest.raises(CatalogError) as info:
        load_stack(d)
    return info.value


def _assert_problem(err: CatalogError, file: str, entry: str, field: str, line: int, words: str) -> None:
    text = str(err)
    matching = [p for p in err.problems if p.entry == entry and p.field == field]
    assert matching, f"no problem for {entry} / {field} in:\n{text}"
    p = matching[0]
    assert p.file.endswith(file), p
    assert p.line == line, (p, line)
    assert words in p.message, p
    # The rendered message carries all four locations for a human.
    rendered = str(p)
    assert f"{file}:{line}" in rendered and entry in rendered and field in rendered


def test_unknown_field(tmp_path: Path) -> None:
    d = _stack(tmp_path, catalog_edit=("    tags: [tokens]", "    tagz: [tokens]"))
    err = _one_problem(d)
    _assert_problem(
        err,
        "catalog.yaml",
        "product 'input_tokens_product'",
        "tagz",
        _line_of(d / "catalog.yaml", "tagz"),
        "unknown field",
    )


def test_dangling_reference(tmp_path: Path) -> None:
    d = _stack(tmp_path, catalog_edit=("billable_metric: output_tokens", "billable_metric: output_tokenz"))
    err = _one_problem(d)
    _assert_problem(
        err,
        "catalog.yaml",
        "product 'output_tokens_product'",
        "billable_metric",
        _line_of(d / "catalog.yaml", "output_tokenz"),
        "unknown billable metric 'output_tokenz'",
    )


def test_dangling_reference_in_environment(tmp_path: Path) -> None:
    d = _stack(tmp_path, env_edit=("    customer: globex", "    customer: globexx"))
    err = _one_problem(d)
    _assert_problem(
        err,
        "environment.yaml",
        "contract 'globex_2026'",
        "customer",
        _line_of(d / "environment.yaml", "globexx"),
        "unknown customer 'globexx'",
    )


def test_duplicate_name(tmp_path: Path) -> None:
    d = _stack(tmp_path, catalog_edit=("  - name: output_tokens\n", "  - name: input_tokens\n"))
    err = _one_problem(d)
    _assert_problem(
        err,
        "catalog.yaml",
        "billable metric 'input_tokens'",
        "name",
        _line_of(d / "catalog.yaml", "- name: input_tokens", nth=2),
        "duplicate name",
    )


def test_wrong_enum(tmp_path: Path) -> None:
    d = _stack(tmp_path, catalog_edit=("    aggregation_type: SUM", "    aggregation_type: TOTAL"))
    err = _one_problem(d)
    _assert_problem(
        err,
        "catalog.yaml",
        "billable metric 'input_tokens'",
        "aggregation_type",
        _line_of(d / "catalog.yaml", "TOTAL"),
        "must be one of COUNT, SUM",
    )


def test_wrong_enum_nested(tmp_path: Path) -> None:
    d = _stack(tmp_path, env_edit=("        type: PREPAID", "        type: PREPAYED"))
    err = _one_problem(d)
    _assert_problem(
        err,
        "environment.yaml",
        "contract 'acme_2026'",
        "commits[0].type",
        _line_of(d / "environment.yaml", "PREPAYED"),
        "PREPAID",
    )


def test_ingest_alias_used_twice(tmp_path: Path) -> None:
    d = _stack(tmp_path, env_edit=("ingest_aliases: [globex]", "ingest_aliases: [globex, acme-batch]"))
    err = _one_problem(d)
    _assert_problem(
        err,
        "environment.yaml",
        "customer 'globex'",
        "ingest_aliases[1]",
        _line_of(d / "environment.yaml", "[globex, acme-batch]"),
        "already used by customer 'acme'",
    )


def test_bad_group_key(tmp_path: Path) -> None:
    d = _stack(
        tmp_path,
        catalog_edit=("    pricing_group_key: [model, region]", "    pricing_group_key: [model, tier]"),
    )
    err = _one_problem(d)
    _assert_problem(
        err,
        "catalog.yaml",
        "product 'input_tokens_product'",
        "pricing_group_key",
        _line_of(d / "catalog.yaml", "[model, tier]"),
        "not one of billable metric 'input_tokens'",
    )


def test_contract_ends_before_it_starts(tmp_path: Path) -> None:
    d = _stack(
        tmp_path,
        env_edit=('    ending_before: "2027-03-01T00:00:00Z"', '    ending_before: "2025-03-01T00:00:00Z"'),
    )
    err = _one_problem(d)
    _assert_problem(
        err,
        "environment.yaml",
        "contract 'initech_2026'",
        "ending_before",
        _line_of(d / "environment.yaml", "2025-03-01"),
        "ends",
    )


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    d = _stack(
        tmp_path,
        catalog_edit=("    aggregation_type: SUM", "    aggregation_type: TOTAL"),
        env_edit=("    customer: globex", "    customer: nobody"),
    )
    err = _one_problem(d)
    assert len(err.problems) == 2
    assert "catalog has 2 problems" in str(err)
    assert "catalog.yaml" in str(err) and "environment.yaml" in str(err)


def test_missing_required_field_points_at_the_entry(tmp_path: Path) -> None:
    d = _stack(tmp_path, catalog_edit=("    aggregation_type: SUM\n", ""))
    err = _one_problem(d)
    p = next(p for p in err.problems if p.field == "aggregation_type")
    assert p.entry == "billable metric 'input_tokens'"
    assert p.line == _line_of(d / "catalog.yaml", "- name: input_tokens")
    assert "required" in p.message


def test_fixture_files(tmp_path: Path) -> None:
    """The bad fixtures in tests/fixtures/catalogs/ each fail the way their name says."""
    expected = {
        "unknown_field": ("extra_thing", "unknown field"),
        "dangling_reference": ("rate_card", "unknown rate card"),
        "custom_unit_without_conversion": ("rates[0].credit_type_id", "credit_type_conversions"),
    }
    for name, (field, words) in expected.items():
        with pytest.raises(CatalogError) as info:
            load_stack(FIXTURES / name)
        assert any(p.field == field and words in p.message and p.line for p in info.value.problems), (
            name,
            str(info.value),
        )
    # The good fixture uses a custom pricing unit with its conversion and a commit_rate.
    good = load_stack(FIXTURES / "custom_pricing_unit")
    rate = good.rate_card("credits_card").rates[0]
    assert rate.credit_type_id and rate.commit_rate is not None


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    d = _stack(tmp_path)
    (d / "catalog.yaml").write_text("billable_metrics:\n  - name: x\n    group_keys: [[a, b]\n")
    err = _one_problem(d)
    assert err.problems[0].line is not None and "invalid YAML" in err.problems[0].message


def test_timestamps_are_normalised(tmp_path: Path) -> None:
    d = _stack(
        tmp_path, env_edit=('starting_at: "2026-03-01T00:00:00Z"', "starting_at: 2026-03-01T01:00:00+01:00")
    )
    s = load_stack(d)
    k = next(k for k in s.environment.contracts if k.name == "initech_2026")
    assert k.starting_at == "2026-03-01T00:00:00Z"


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    s = load_stack(REPO / "stacks" / "dev")
    out = tmp_path / "rt"
    out.mkdir()
    (out / "catalog.yaml").write_text(catalog_to_yaml(s.catalog))
    (out / "environment.yaml").write_text(environment_to_yaml(s.environment))
    again = load_stack(out)
    assert again.catalog == s.catalog
    assert again.environment == s.environment
    assert load_catalog(out / "catalog.yaml") == s.catalog


def test_environment_file_is_optional(tmp_path: Path) -> None:
    d = tmp_path / "only_catalog"
    d.mkdir()
    shutil.copy(REPO / "stacks" / "dev" / "catalog.yaml", d / "catalog.yaml")
    s = load_stack(d)
    assert s.environment == Environment()


def test_reference_of_an_invalid_entry_is_still_checked(tmp_path: Path) -> None:
    d = _stack(
        tmp_path,
        catalog_edit=(
            "    billable_metric: output_tokens\n",
            "    billable_metric: output_tokenz\n    colour: blue\n",
        ),
    )
    err = _one_problem(d)
    fields = {(p.entry, p.field) for p in err.problems}
    assert ("product 'output_tokens_product'", "colour") in fields
    assert ("product 'output_tokens_product'", "billable_metric") in fields
    lines = [p.line or 0 for p in err.problems]
    assert lines == sorted(lines)


def test_group_key_needs_a_property_filter(tmp_path: Path) -> None:
    d = _stack(tmp_path, catalog_edit=("      - {name: region, exists: true}\n", ""))
    err = _one_problem(d)
    p = next(p for p in err.problems if p.field == "group_keys[0][1]")
    assert p.entry == "billable metric 'input_tokens'" and "exists: true" in p.message


def test_one_live_object_adopted_twice(tmp_path: Path) -> None:
    """Two entries over one live object would undo each other (and removing one archives the other's)."""
    d = _stack(
        tmp_path,
        catalog_edit=(
            "    display_name: Input tokens\n",
            "    display_name: Input tokens\n    adopt: {name: Tokens}\n",
        ),
    )
    text = (d / "catalog.yaml").read_text()
    marker = "    display_name: Output tokens\n"
    (d / "catalog.yaml").write_text(text.replace(marker, marker + "    adopt: {name: Tokens}\n", 1))
    err = _one_problem(d)
    (problem,) = err.problems
    assert problem.entry == "billable metric 'output_tokens'" and problem.field == "adopt.name"
    assert "billable metric 'input_tokens' already adopts name 'Tokens'" in problem.message


# -- packages, alerts and notifications ---------------------------------------------------------


def test_package_product_reference_is_checked(tmp_path: Path) -> None:
    d = _stack(
        tmp_path,
        catalog_edit=(
            "      - product: prepaid_commit\n        name: Welcome",
            "      - product: prepaid\n        name: Welcome",
        ),
    )
    _assert_problem(
        _one_problem(d),
        "catalog.yaml",
        "package 'self_serve'",
        "credits[0].product",
        _line_of(d / "catalog.yaml", "- product: prepaid"),
        "unknown product 'prepaid'",
    )


def test_package_terms_are_checked_by_the_provider_schema(tmp_path: Path) -> None:
    d = _stack(
        tmp_path, catalog_edit=("duration: {unit: YEARS, value: 1}", "duration: {unit: DECADES, value: 1}")
    )
    _assert_problem(
        _one_problem(d),
        "catalog.yaml",
        "package 'self_serve'",
        "duration.unit",
        _line_of(d / "catalog.yaml", "DECADES"),
        "YEARS",
    )


def test_alert_field_its_type_does_not_take(tmp_path: Path) -> None:
    d = _stack(
        tmp_path,
        catalog_edit=("    threshold: 1000\n", "    threshold: 1000\n    invoice_types_filter: [USAGE]\n"),
    )
    _assert_problem(
        _one_problem(d),
        "catalog.yaml",
        "alert 'low_balance'",
        "invoice_types_filter",
        _line_of(d / "catalog.yaml", "invoice_types_filter"),
        "invoice_total_reached",
    )


def test_notification_offset_is_checked(tmp_path: Path) -> None:
    d = _stack(tmp_path, catalog_edit=('offset: "-P7D"', 'offset: "7 days before"'))
    _assert_problem(
        _one_problem(d),
        "catalog.yaml",
        "notification 'commit_ending'",
        "policy.offset",
        _line_of(d / "catalog.yaml", "7 days before"),
        "ISO-8601",
    )


def test_customer_alert_is_checked_where_it_sits(tmp_path: Path) -> None:
    d = _stack(
        tmp_path, env_edit=("alert_type: spend_threshold_reached", "alert_type: usage_threshold_reached")
    )
    _assert_problem(
        _one_problem(d),
        "environment.yaml",
        "customer 'acme'",
        "alerts[0].billable_metric",
        _line_of(d / "environment.yaml", "- name: spend_over_5000"),  # a missing field: its entry's line
        "name a billable metric of the catalog",
    )


# -- rates: what Metronome accepts in a rate (issue 10 item 5, issue 11 item 5) -----------------------

SEAT_PRODUCT = "  - name: seat_fee\n    type: SUBSCRIPTION\n\n"


def _with_rate(tmp_path: Path, rate: str, product: str = "") -> Path:
    """The dev stack with one more rate (YAML lines under `rates:`) on the standard card, and optionally
    one more product."""
    d = _stack(tmp_path)
    text = (d / "catalog.yaml").read_text()
    if product:
        text = text.replace("rate_cards:\n", product + "rate_cards:\n", 1)
    # The standard card is the last of `rate_cards:`: its rates end where the next top-level section starts.
    start = text.index("rate_cards:\n")
    following = [text.find(f"\n{key}:", start) for key in ("packages", "alerts", "notifications")]
    end = min((i for i in following if i != -1), default=len(text))
    text = text[:end].rstrip("\n") + "\n" + rate + text[end:]
    (d / "catalog.yaml").write_text(text)
    return d


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        # Usage above the last tier would have no price.
        (
            (
                "tiers: [{size: 1000, price: 1500}, {price: 1200}]",
                "tiers: [{size: 1000, price: 1500}, {size: 5000, price: 1200}]",
            ),
            "rates[3].tiers[1].size",
            "last tier",
        ),
        (("        price: 50\n", "        price: -50\n"), "rates[2].price", ">= 0"),
        (
            (
                "tiers: [{size: 1000, price: 1500}, {price: 1200}]",
                "tiers: [{size: 1000, price: 1500}, {price: -2}]",
            ),
            "rates[3].tiers[1].price",
            ">= 0",
        ),
    ],
)
def test_rate_values_refused_with_their_line(
    tmp_path: Path, edit: tuple[str, str], field: str, words: str
) -> None:
    d = _stack(tmp_path, catalog_edit=edit)
    err = _one_problem(d)
    _assert_problem(
        err,
        "catalog.yaml",
        "rate card 'standard'",
        field,
        _line_of(d / "catalog.yaml", edit[1].strip().split("\n")[0]),
        words,
    )
    assert len(err.problems) == 1, str(err)


FEE = '      - product: seat_fee\n        starting_at: "2026-01-01T00:00:00Z"\n'


@pytest.mark.parametrize(
    ("rate", "field", "needle", "words", "fixed"),
    [
        # billing_frequency: "Required for subscription type products with Flat rate" (rate_add_many_params)
        (
            FEE + "        rate_type: FLAT\n        price: 10000\n",
            "rates[7].billing_frequency",
            "- product: seat_fee",
            "billing_frequency",
            ("price: 10000\n", "price: 10000\n        billing_frequency: MONTHLY\n"),
        ),
        # is_prorated: "Only valid for SUBSCRIPTION rate_type. Must be set to true."
        (
            FEE + "        rate_type: SUBSCRIPTION\n        price: 10000\n        quantity: 1\n"
            "        is_prorated: false\n",
            "rates[7].is_prorated",
            "is_prorated: false",
            "true",
            ("is_prorated: false", "is_prorated: true"),
        ),
    ],
)
def test_subscription_rate_rules(
    tmp_path: Path, rate: str, field: str, needle: str, words: str, fixed: tuple[str, str]
) -> None:
    d = _with_rate(tmp_path, rate, SEAT_PRODUCT)
    err = _one_problem(d)
    _assert_problem(
        err, "catalog.yaml", "rate card 'standard'", field, _line_of(d / "catalog.yaml", needle), words
    )
    assert len(err.problems) == 1, str(err)
    load_stack(_with_rate(tmp_path / "fixed", rate.replace(*fixed), SEAT_PRODUCT))


def test_one_rule_for_times_only_product_updates_on_the_hour(tmp_path: Path) -> None:
    """Metronome's docs put an hour rule on product updates only: an off-hour product_update_starting_at
    is refused with file and line; an off-hour contract start and access schedule load as given."""
    d = _stack(
        tmp_path,
        env_edit=(
            "  net_payment_terms_days: 30",
            "  net_payment_terms_days: 30\n  product_update_starting_at: 2026-01-01T00:30:00Z",
        ),
    )
    err = _one_problem(d)
    (p,) = err.problems
    assert p.field == "product_update_starting_at" and "not on an hour boundary" in p.message
    assert p.line == _line_of(d / "environment.yaml", "product_update_starting_at")
    d = _stack(
        tmp_path / "b",
        env_edit=('starting_at: "2026-01-01T00:00:00Z"', 'starting_at: "2026-01-01T00:30:15Z"'),
    )
    assert load_stack(d).environment.contracts[0].starting_at == "2026-01-01T00:30:15Z"


def test_metronome_field_limits_are_checked_at_load(tmp_path: Path) -> None:
    """Ingest aliases and external_id 1-128 characters, custom field values at most 200 (Metronome's)."""
    long_alias = "a" * 129
    d = _stack(tmp_path, env_edit=("ingest_aliases: [globex]", f"ingest_aliases: [{long_alias}]"))
    _assert_problem(
        _one_problem(d),
        "environment.yaml",
        "customer 'globex'",
        "ingest_aliases[0]",
        _line_of(d / "environment.yaml", long_alias),
        "at most 128",
    )
    d = _stack(
        tmp_path / "b", env_edit=("external_id: globex-crm-4711", "custom_fields: {note: " + "n" * 201 + "}")
    )
    err = _one_problem(d)
    assert any("at most 200" in p.message and p.entry == "customer 'globex'" for p in err.problems), str(err)
