"""Customer through the real provider host over gRPC, against the emulator over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provider_host import ProviderError, ProviderHost, unique

from providers.customer import CustomerProvider as C
from providers.identity import unstamped


@pytest.fixture(scope="module")
def host(emulator) -> Iterator[ProviderHost]:
    with ProviderHost(emulator.base_url, emulator.token) as h:
        yield h


def customer(**over):
    name = unique("customer")
    base = {
        "identity": f"metronome-iac/test/{name}",
        "name": name,
        "ingest_aliases": [f"{name}-prod", f"{name}-staging"],
        "custom_fields": {"team": "billing"},
    }
    return {**base, **over}


def test_check(host):
    host.check_ok(C, customer())
    failures = dict(host.check(C, {}, customer(name=None))[1])
    assert "name" in failures and "required" in failures["name"]
    failures = dict(host.check(C, {}, customer(ingest_aliases=["a", "a"]))[1])
    assert "ingest_aliases" in failures and "once" in failures["ingest_aliases"]
    failures = dict(host.check(C, {}, customer(ingest_aliases="acme"))[1])
    assert "ingest_aliases" in failures


def test_lifecycle(host, emulator):
    client = emulator.client()
    object_id, inputs, outs = host.create_checked(C, customer())
    live = client.v1.customers.retrieve(customer_id=object_id).data
    assert live.name == inputs["name"] and sorted(live.ingest_aliases) == sorted(inputs["ingest_aliases"])
    assert live.custom_fields["team"] == "billing" and "iac_identity" in live.custom_fields

    read_id, read_outs = host.read(C, object_id, outs)
    assert read_id == object_id and read_outs == outs == inputs

    same = {**inputs, "ingest_aliases": list(reversed(inputs["ingest_aliases"])), "external_id": None}
    assert host.diff(C, object_id, read_outs, same).changes == "NONE"

    changed = {
        **inputs,
        "name": inputs["name"] + "-v2",
        "ingest_aliases": [inputs["name"] + "-new"],
        "custom_fields": {"team": "growth"},
    }
    d = host.diff(C, object_id, outs, changed)
    assert d.changes == "SOME" and d.replaces == []
    outs = host.update(C, object_id, outs, changed)
    live = client.v1.customers.retrieve(customer_id=object_id).data
    assert live.name == changed["name"] and live.ingest_aliases == changed["ingest_aliases"]
    assert live.custom_fields["team"] == "growth"
    _, read_outs = host.read(C, object_id, outs)
    assert host.diff(C, object_id, read_outs, changed).changes == "NONE"

    assert host.diff(C, object_id, outs, {**changed, "external_id": "ext-1"}).replaces == ["external_id"]

    client.v1.customers.set_name(customer_id=object_id, name="hand-edited")
    _, drifted = host.read(C, object_id, outs)
    assert drifted["name"] == "hand-edited"

    host.delete(C, object_id, outs)
    live = client.v1.customers.retrieve(customer_id=object_id).data
    assert live.archived_at is not None and live.ingest_aliases == []  # aliases freed for reuse
    assert host.read(C, object_id, outs)[0] == ""


def test_read_after_out_of_band_archive(host, emulator):
    object_id, _, outs = host.create_checked(C, customer())
    emulator.client().v1.customers.archive(id=object_id)
    assert host.read(C, object_id, outs) == ("", {})


def test_archive_refused_while_contracts_use_it(host, emulator):
    client = emulator.client()
    object_id, _, outs = host.create_checked(C, customer())
    contract = client.v1.contracts.create(
        customer_id=object_id, starting_at="2026-01-01T00:00:00Z", name="keep-me"
    )
    with pytest.raises(ProviderError) as err:
        host.delete(C, object_id, outs)
    assert "keep-me" in str(err.value) and contract.data.id in str(err.value)
    assert client.v1.customers.retrieve(customer_id=object_id).data.archived_at is None


def test_identity_tag_removed_by_hand_is_put_back_by_the_next_up(host, emulator):
    """Without its `iac_identity` tag a retried create could not find the customer and drift would call
    it missing: refresh notices, and the update that follows tags it again."""
    client = emulator.client()
    object_id, inputs, outs = host.create_checked(C, customer())
    tag = client.v1.customers.retrieve(customer_id=object_id).data.custom_fields["iac_identity"]
    client.v1.custom_fields.delete_values(entity="customer", entity_id=object_id, keys=["iac_identity"])

    _, refreshed = host.read(C, object_id, outs)
    assert host.diff(C, object_id, refreshed, inputs).changes == "SOME"
    updated = host.update(C, object_id, refreshed, inputs)
    # The same tag (without the stamp of the host that created the customer: see providers/identity.py).
    retagged = client.v1.customers.retrieve(customer_id=object_id).data.custom_fields["iac_identity"]
    assert unstamped(retagged) == unstamped(tag)
    _, again = host.read(C, object_id, updated)
    assert host.diff(C, object_id, again, inputs).changes == "NONE"
    # Untouched, the tag is not looked at twice: no diff.
    assert host.diff(C, object_id, outs, inputs).changes == "NONE"


def test_the_external_id_metronome_fills_in_is_not_a_declared_value(host, emulator):
    """Real Metronome answers a customer created without external_id with its first ingest alias as
    external_id (docs, create a customer). Refresh, adopt and drift must not take that for a declared
    external_id, which forces replacement (archiving the customer)."""
    from providers.customer import CustomerProvider

    client = emulator.client()
    object_id, inputs, outs = host.create_checked(C, customer())
    live = client.v1.customers.retrieve(customer_id=object_id).data
    assert live.external_id == inputs["ingest_aliases"][0]  # the emulator does as Metronome does

    _, refreshed = host.read(C, object_id, outs)  # refresh
    assert "external_id" not in refreshed
    d = host.diff(C, object_id, refreshed, inputs)
    assert (d.changes, d.replaces) == ("NONE", [])
    # The aliases change later; the external_id Metronome filled in stays the old first alias.
    moved = host.check_ok(C, {**inputs, "ingest_aliases": [inputs["name"] + "-other"]}, olds=inputs)
    outs = host.update(C, object_id, outs, moved)
    _, refreshed = host.read(C, object_id, outs)
    assert host.diff(C, object_id, refreshed, moved).replaces == []

    # Adopt (by alias) a customer made by hand without external_id: no replacement, nothing to report.
    name = unique("by-hand")
    hand = client.v1.customers.create(name=name, ingest_aliases=[f"{name}-alias"]).data
    adopted_id, adopted = host.create(
        C,
        host.check_ok(
            C,
            {
                "identity": f"metronome-iac/test/{name}",
                "name": name,
                "ingest_aliases": [f"{name}-alias"],
                "adopt": {"ingest_alias": f"{name}-alias"},
            },
        ),
    )
    assert adopted_id == hand.id and adopted["adopt_report"] == []

    # Drift reads through the provider the same way (read_live projected on the desired inputs).
    provider = CustomerProvider()
    have, want = provider.diff_pair(provider.read_live(client, object_id, moved), moved)
    assert "external_id" not in have and have.get("ingest_aliases") == want.get("ingest_aliases")

    # A declared external_id is read back and compared.
    declared_id, declared_in, declared_out = host.create_checked(C, customer(external_id=unique("ext")))
    _, back = host.read(C, declared_id, declared_out)
    assert back["external_id"] == declared_in["external_id"]
