"""Catalog checks of contract terms (subscriptions, scheduled charges, recurring grants, thresholds) and of
contracts made from a package: one error each, with file, entry, field and line, before anything is made."""

from __future__ import annotations

from pathlib import Path

from test_catalog import _assert_problem, _line_of, _one_problem, _stack

from metronome_iac.catalog import load_stack

PACKAGE_CONTRACT = '''  - name: piedpiper_self_serve
    customer: piedpiper
    package: self-serve
    starting_at: "2026-06-01T00:00:00Z"'''
FEE = (
    "      - name: Platform fee\n"
    "        subscription_rate: {product: platform_fee, billing_frequency: MONTHLY}"
)


def test_a_package_contract_takes_only_what_metronome_allows(tmp_path: Path) -> None:
    d = _stack(tmp_path, env_edit=(PACKAGE_CONTRACT, PACKAGE_CONTRACT + "\n    rate_card: standard"))
    _assert_problem(
        _one_problem(d),
        "environment.yaml",
        "contract 'piedpiper_self_serve'",
        "rate_card",
        _line_of(d / "environment.yaml", "rate_card: standard", nth=3),
        "takes its rate card and terms from package 'self-serve'",
    )


def test_a_package_contract_names_a_package_or_an_alias(tmp_path: Path) -> None:
    d = _stack(tmp_path, env_edit=("    package: self-serve", "    package: self-service"))
    _assert_problem(
        _one_problem(d),
        "environment.yaml",
        "contract 'piedpiper_self_serve'",
        "package",
        _line_of(d / "environment.yaml", "package: self-service"),
        "names no package or package alias of the catalog (known: self-serve, self_serve)",
    )
    # By catalog name: fine; by an alias whose window does not cover the start: refused.
    by_name = _stack(tmp_path / "n", env_edit=("    package: self-serve", "    package: self_serve"))
    assert [k.package for k in load_stack(by_name).environment.contracts if k.package] == ["self_serve"]
    late = _stack(
        tmp_path / "a",
        catalog_edit=(
            "      - name: self-serve\n",
            '      - name: self-serve\n        starting_at: "2026-09-01T00:00:00Z"\n',
        ),
    )
    _assert_problem(
        _one_problem(late),
        "environment.yaml",
        "contract 'piedpiper_self_serve'",
        "package",
        _line_of(late / "environment.yaml", "package: self-serve"),
        "names no package at the contract's start",
    )


def test_a_subscription_needs_a_rate_of_its_frequency_on_the_rate_card(tmp_path: Path) -> None:
    d = _stack(tmp_path, env_edit=("billing_frequency: MONTHLY}", "billing_frequency: ANNUAL}"))
    _assert_problem(
        _one_problem(d),
        "environment.yaml",
        "contract 'acme_2026'",
        "subscriptions[0].subscription_rate.product",
        _line_of(d / "environment.yaml", "subscription_rate:"),
        "has no rate for 'platform_fee' billed ANNUAL",
    )
    usage = _stack(tmp_path / "u", env_edit=("{product: platform_fee,", "{product: prepaid_commit,"))
    _assert_problem(
        _one_problem(usage),
        "environment.yaml",
        "contract 'acme_2026'",
        "subscriptions[0].subscription_rate.product",
        _line_of(usage / "environment.yaml", "subscription_rate:"),
        "is FIXED: a subscription bills a SUBSCRIPTION product",
    )


def test_terms_are_checked_by_the_provider_schema_and_rules(tmp_path: Path) -> None:
    d = _stack(tmp_path, env_edit=("        initial_quantity: 1\n", ""))
    _assert_problem(
        _one_problem(d),
        "environment.yaml",
        "contract 'acme_2026'",
        "subscriptions[0].initial_quantity",
        _line_of(d / "environment.yaml", "- name: Platform fee"),
        "QUANTITY_ONLY subscription needs it; to fix: set it",
    )
    typo = _stack(tmp_path / "t", env_edit=("collection_schedule: ADVANCE", "collection_schedule: UPFRONT"))
    _assert_problem(
        _one_problem(typo),
        "environment.yaml",
        "contract 'acme_2026'",
        "subscriptions[0].collection_schedule",
        _line_of(typo / "environment.yaml", "UPFRONT"),
        "ADVANCE",
    )
    charge = (
        "    subscriptions:\n",
        "    scheduled_charges:\n      - product: prepaid_comit\n        schedule: {schedule_items: "
        '[{timestamp: "2026-01-01T00:00:00Z", amount: 5}]}\n    subscriptions:\n',
    )
    unknown = _stack(tmp_path / "c", env_edit=charge)
    _assert_problem(
        _one_problem(unknown),
        "environment.yaml",
        "contract 'acme_2026'",
        "scheduled_charges[0].product",
        _line_of(unknown / "environment.yaml", "prepaid_comit"),
        "unknown product 'prepaid_comit'",
    )


def test_the_dev_stack_declares_a_fee_and_a_package_contract() -> None:
    from test_catalog import REPO

    stack = load_stack(REPO / "stacks" / "dev")
    by_name = {k.name: k for k in stack.environment.contracts}
    assert by_name["acme_2026"].subscriptions[0]["subscription_rate"]["product"] == "platform_fee"
    signup = by_name["piedpiper_self_serve"]
    assert signup.package == "self-serve" and signup.rate_card is None
    fee = [r for r in stack.rate_card("standard").rates if r.product == "platform_fee"]
    assert fee and fee[0].rate_type == "FLAT" and fee[0].billing_frequency == "MONTHLY"
    assert FEE in (REPO / "stacks" / "dev" / "environment.yaml").read_text()
