"""Contracts made from a package (`package_id` or `package_alias`, metronome-sdk 4.12 ContractCreateParams).

Such a contract takes its rate card and terms from the package, placed at its start ("If provided,
provisions a customer on a package instead of creating a traditional contract. When specified, only
customer_id, starting_at, package_id, uniqueness_key, transition, and custom_fields are allowed"). The
stack creates it with those and reads back and compares only those: its terms are the package's, not the
stack's to edit. A replaced package keeps its contracts ("existing contracts associated with the package
will continue to function as normal"), so a new `package_id` (the package's next version) changes nothing;
`package` (the catalog name or alias it was made from, never sent) and `package_alias` name the package
itself, and changing them replaces the contract (see the contract's Inputs).
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import CheckFailure

PACKAGE_FIELDS = ("package_id", "package_alias", "package")
# What such a contract takes besides them (and the inputs every resource takes).
TAKEN = frozenset({"customer_id", "starting_at", "custom_fields", "adopt", "identity", *PACKAGE_FIELDS})
NOT_SENT = ("allow_replacement", "allow_reinvoice")


def made_from_package(inputs: dict[str, Any]) -> bool:
    return any(inputs.get(f) for f in PACKAGE_FIELDS)


def package_contract_inputs(contract: dict[str, Any], desired: dict[str, Any] | None) -> dict[str, Any]:
    """The live contract's own fields in input shape: custom fields, and the package as declared (a
    contract get does not say which alias or catalog entry it came through; a listing's `package_id`,
    where the answer carries one, is kept for export)."""
    package = {f: (desired or {}).get(f) for f in PACKAGE_FIELDS if (desired or {}).get(f)}
    out: dict[str, Any] = dict(package or {"package_id": contract["package_id"]})
    if contract.get("custom_fields"):
        out["custom_fields"] = dict(contract["custom_fields"])
    return out


def package_failures(inputs: dict[str, Any]) -> list[CheckFailure]:
    """What a contract made from a package cannot take, and a package named twice or not at all."""
    if not made_from_package(inputs):
        return []
    failures = []
    if inputs.get("package_id") and inputs.get("package_alias"):
        failures.append(
            CheckFailure("package_alias", "package_id and package_alias exclude each other; to fix: keep one")
        )
    if not (inputs.get("package_id") or inputs.get("package_alias")):
        failures.append(
            CheckFailure("package_id", "names no package to make the contract from; to fix: set package_id")
        )
    for field in sorted(set(inputs) - TAKEN):
        if field in NOT_SENT or inputs.get(field) in (None, False):
            continue
        failures.append(
            CheckFailure(
                field,
                "a contract made from a package takes its rate card and terms from the package "
                "(Metronome allows only customer_id, starting_at, uniqueness_key, transition and "
                f"custom_fields with package_id); to fix: remove {field} here, or set it on the package",
            )
        )
    return failures
