"""Contracts on both kinds of Metronome account, truncated contract gets, and the money rule: through the
real provider host over gRPC, against emulators over HTTP.

An account has contract editing (/v2/contracts/edit) or amendments (/v1/contracts/amend and
/v1/contracts/updateEndDate), never both (SDK `contracts.amend` and `contracts.edit` docstrings).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Emulator, start_emulator
from provider_host import UNKNOWN, ProviderError, ProviderHost, unique

from providers.contract import ContractProvider as K
from providers.contract import list_objects
from providers.customer import CustomerProvider as C
from providers.product import ProductProvider as P
from providers.rate_card import RateCardProvider as R

START = "2026-01-01T00:00:00Z"
YEAR_END = "2027-01-01T00:00:00Z"


@pytest.fixture(scope="module", params=["on", "off"])
def account(request) -> Iterator[Emulator]:
    """An emulator account with contract editing on, and one with it off."""
    emu = start_emulator("--contract-editing", request.param)
    yield emu
    emu.stop()


def setup(host: ProviderHost) -> dict[str, str]:
    out = {}
    for key in ("p1", "p2"):
        name = unique(key)
        out[key] = host.create_checked(P, {"identity": f"t/s/{name}", "name": name, "type": "FIXED"})[0]
    name = unique("card")
    out["card"] = host.create_checked(R, {"identity": f"t/s/{name}", "name": name})[0]
    name = unique("cust")
    out["customer"] = host.create_checked(C, {"identity": f"t/s/{name}", "name": name})[0]
    return out


def commit(product_id: str, amount: float, name: str | None = "prepaid", **extra) -> dict:
    item = {
        "product_id": product_id,
        "type": "PREPAID",
        "access_schedule": {
            "schedule_items": [{"amount": amount, "starting_at": START, "ending_before": YEAR_END}]
        },
        "invoice_schedule": {"schedule_items": [{"timestamp": START, "amount": amount}]},
        **extra,
    }
    if name:
        item["name"] = name
    return item


def contract(refs: dict[str, str], **over) -> dict:
    name = unique("k")
    return {
        "identity": f"metronome-iac/test/{name}",
        "customer_id": refs["customer"],
        "rate_card_id": refs["card"],
        "starting_at": START,
        "name": name,
        "commits": [commit(refs["p1"], 10000)],
        **over,
    }


def active(emulator: Emulator, refs: dict[str, str], contract_id: str, field: str = "commits") -> list:
    got = emulator.client().v1.contracts.retrieve(customer_id=refs["customer"], contract_id=contract_id).data
    return [c for c in getattr(got.current, field) or [] if not c.archived_at], got


def test_contract_updates_on_both_kinds_of_account(account):
    """Adding a commit and moving the end date work on either kind of account, found out by the provider
    (an edit refused as not enabled -> amend); a repeated update adds nothing twice."""
    with ProviderHost(account.base_url, account.token) as host:
        refs = setup(host)
        object_id, inputs, outs = host.create_checked(K, contract(refs))
        changed = host.check_ok(
            K,
            {
                **inputs,
                "ending_before": "2026-12-01T00:00:00Z",
                "commits": [*inputs["commits"], commit(refs["p2"], 500, name="top-up")],
            },
            olds=inputs,
        )
        assert host.diff(K, object_id, outs, changed).changes == "SOME"
        outs = host.update(K, object_id, outs, changed)
        commits, got = active(account, refs, object_id)
        assert sorted(c.name for c in commits) == ["prepaid", "top-up"]
        assert got.current.ending_before.month == 12
        assert len(got.amendments) == (
            1 if account.admin("GET", "config").json()["contract_editing"] is False else 0
        )
        _, refreshed = host.read(K, object_id, outs)
        assert host.diff(K, object_id, refreshed, changed).changes == "NONE"
        host.update(K, object_id, outs, changed)  # a retried step
        assert len(active(account, refs, object_id)[0]) == 2


def test_what_an_amendment_cannot_do_is_refused_not_dropped(fresh_emulator):
    """Without contract editing a name change (or a commit removed) cannot be made: refused at preview
    when the account kind is set (metronome:contractEditing: off), and before anything is sent when the
    provider only finds out at the edit."""
    fresh_emulator.admin("POST", "config", json={"contract_editing": False})
    with ProviderHost(
        fresh_emulator.base_url, fresh_emulator.token, config={"metronome:contractEditing": "off"}
    ) as h:
        refs = setup(h)
        object_id, inputs, outs = h.create_checked(K, contract(refs))
        renamed = h.check_ok(K, {**inputs, "name": inputs["name"] + "-v2"}, olds=inputs)
        with pytest.raises(ProviderError) as info:
            h.diff(K, object_id, outs, renamed)
        assert (
            "no contract editing" in info.value.details and "change the contract's name" in info.value.details
        )
        dropped = h.check_ok(K, {**inputs, "commits": []}, olds=inputs)
        with pytest.raises(ProviderError) as info:
            h.diff(K, object_id, outs, dropped)
        assert "remove 1 existing commits ('prepaid'" in info.value.details
    with ProviderHost(
        fresh_emulator.base_url, fresh_emulator.token
    ) as h:  # kind not set: learned at the edit
        assert h.diff(K, object_id, outs, renamed).changes == "SOME"
        with pytest.raises(ProviderError) as info:
            h.update(K, object_id, outs, {**renamed, "ending_before": "2026-12-01T00:00:00Z"})
        assert (
            "change the contract's name" in info.value.details and "Nothing was changed" in info.value.details
        )
    commits, got = active(fresh_emulator, refs, object_id)
    assert got.current.name == inputs["name"] and got.current.ending_before is None and got.amendments == []


def test_a_truncated_contract_get_is_read_in_full(fresh_emulator):
    """The v2 get cuts commits and credits short past a size (has_more); the provider reads the full lists
    (customerCommits/list), so nothing is re-added or shown as drift, and the right commit is archived."""
    fresh_emulator.admin("POST", "config", json={"contract_item_limit": 2})
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as h:
        refs = setup(h)
        commits = [commit(refs["p1"], 100 * (i + 1), name=f"c{i}") for i in range(4)]
        object_id, inputs, outs = h.create_checked(K, contract(refs, commits=commits))
        got = fresh_emulator.client().v2.contracts.retrieve(
            customer_id=refs["customer"], contract_id=object_id
        )
        assert got.data.has_more.commits and len(got.data.commits) == 2
        _, refreshed = h.read(K, object_id, outs)
        assert len(refreshed["commits"]) == 4
        # The listing export and drift read is completed the same way.
        listed = dict(list_objects(fresh_emulator.client(), refs["customer"]))
        assert len(listed[object_id]["commits"]) == 4
        assert h.diff(K, object_id, refreshed, inputs).changes == "NONE"
        fewer = h.check_ok(K, {**inputs, "commits": commits[:3], "name": "renamed"}, olds=inputs)
        h.update(K, object_id, outs, fewer)
        live, _ = active(fresh_emulator, refs, object_id)
        assert sorted(c.name for c in live) == ["c0", "c1", "c2"]


# -- the money rule -----------------------------------------------------------------------------------


def test_a_commit_dropped_and_readded_is_refused_at_preview_with_its_amount(fresh_emulator):
    """Dropping a commit and adding one in its place invoices the customer again: refused at preview (and
    before anything is sent) naming the contract, the commit and the amount, unless allow_reinvoice."""
    client = fresh_emulator.client()
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as h:
        refs = setup(h)
        unnamed = [commit(refs["p1"], 10000, name=None)]
        object_id, inputs, outs = h.create_checked(K, contract(refs, commits=unnamed))
        cases = {
            # The path: the FIXED product renamed without previous_names and back is a new product
            # (its id unknown at preview), and an unnamed commit cannot be matched to it.
            "product replaced": [{**unnamed[0], "product_id": UNKNOWN}],
            "product changed": [{**unnamed[0], "product_id": refs["p2"]}],
            "type changed": [{**commit(refs["p1"], 10000, name=None), "type": "POSTPAID"}],
            "credit type changed": [
                {
                    **unnamed[0],
                    "access_schedule": {**unnamed[0]["access_schedule"], "credit_type_id": refs["p2"]},
                }
            ],
        }
        for case, commits in cases.items():
            news = h.check_ok(K, {**inputs, "commits": commits}, olds=inputs)
            with pytest.raises(ProviderError) as info:
                h.diff(K, object_id, outs, news)
            reason = info.value.details
            assert "re-invoicing" in reason and "10000 invoiced again" in reason, case
            assert f"Contract '{inputs['identity'].rsplit('/', 1)[-1]}'" in reason, case
            assert "allow_reinvoice: true" in reason, case
        # Renewals are no re-adds: last year's commit dropped, next year's (another period) added.
        next_year = {
            "product_id": refs["p1"],
            "type": "PREPAID",
            "access_schedule": {
                "schedule_items": [
                    {"amount": 8000, "starting_at": YEAR_END, "ending_before": "2028-01-01T00:00:00Z"}
                ]
            },
            "invoice_schedule": {"schedule_items": [{"timestamp": YEAR_END, "amount": 8000}]},
        }
        renewal = h.check_ok(K, {**inputs, "commits": [next_year]}, olds=inputs)
        assert h.diff(K, object_id, outs, renewal).changes == "SOME"
        # A credit granted again: refused the same way, naming what would be granted.
        credit = {
            "product_id": refs["p1"],
            "access_schedule": {
                "schedule_items": [{"amount": 700, "starting_at": START, "ending_before": YEAR_END}]
            },
        }
        with_credit = h.check_ok(K, {**inputs, "credits": [credit]}, olds=inputs)
        credit_outs = {**outs, "credits": with_credit["credits"]}
        moved_credit = h.check_ok(
            K, {**with_credit, "credits": [{**credit, "product_id": refs["p2"]}]}, olds=with_credit
        )
        with pytest.raises(ProviderError, match="700 granted again"):
            h.diff(K, object_id, credit_outs, moved_credit)
        # Applied regardless (preview skipped): refused against the live contract before anything is sent.
        moved = h.check_ok(K, {**inputs, "commits": cases["product changed"]}, olds=inputs)
        with pytest.raises(ProviderError, match="invoiced again"):
            h.update(K, object_id, outs, moved)
        live, _ = active(fresh_emulator, refs, object_id)
        assert len(live) == 1 and live[0].product.id == refs["p1"]
        # Meant: allowed, the old commit archived and the new one added.
        meant = {**moved, "allow_reinvoice": True}
        assert h.diff(K, object_id, outs, meant).changes == "SOME"
        h.update(K, object_id, outs, meant)
        live, _ = active(fresh_emulator, refs, object_id)
        assert [c.product.id for c in live] == [refs["p2"]]
    assert client  # the official client saw what the provider did


def test_a_named_commit_follows_a_replaced_product_in_place(fresh_emulator):
    """A named commit whose product was replaced is updated in place (update_commits.product_id): the
    customer is not invoiced again; a pure addition or removal is no re-invoice either."""
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as h:
        refs = setup(h)
        object_id, inputs, outs = h.create_checked(K, contract(refs))
        preview = h.check_ok(
            K, {**inputs, "commits": [{**inputs["commits"][0], "product_id": UNKNOWN}]}, olds=inputs
        )
        assert h.diff(K, object_id, outs, preview).changes == "SOME"
        moved = h.check_ok(
            K, {**inputs, "commits": [{**inputs["commits"][0], "product_id": refs["p2"]}]}, olds=inputs
        )
        outs = h.update(K, object_id, outs, moved)
        live, got = active(fresh_emulator, refs, object_id)
        assert [(c.name, c.product.id) for c in live] == [("prepaid", refs["p2"])]
        assert all(not c.archived_at for c in got.current.commits)  # nothing archived, nothing re-added
        more = h.check_ok(
            K, {**moved, "commits": [*moved["commits"], commit(refs["p1"], 5, name="extra")]}, olds=moved
        )
        assert h.diff(K, object_id, outs, more).changes == "SOME"
        fewer = h.check_ok(K, {**moved, "commits": []}, olds=moved)
        assert h.diff(K, object_id, outs, fewer).changes == "SOME"


# -- field limits --------------------------------------------------------------------------------------


def test_long_resource_names_give_bounded_stable_keys_and_tags(fresh_emulator):
    """Metronome takes a contract uniqueness_key of 1-128 characters and custom field values of at most
    200 (the emulator refuses more, as Metronome does): a long resource name still creates, and the same
    identity gives the same key, so a retried create takes its contract over."""
    long_name = "contract-" + "x" * 180
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as h:
        refs = setup(h)
        news = contract(refs, identity=f"metronome-iac/test/{long_name}")
        object_id, inputs, outs = h.create_checked(K, news)
        key = outs["uniqueness_key"]
        assert len(key) <= 126 and key.startswith("iac:metronome-iac/test/contract-x")  # room for "~N"
        assert h.create(K, inputs)[0] == object_id  # same key: the retried create takes it over
        # A tagged kind: the iac_identity custom field value stays within 200 characters.
        name = "customer-" + "y" * 250
        customer_id, _, _ = h.create_checked(C, {"identity": f"metronome-iac/test/{name}", "name": "long"})
        tag = fresh_emulator.client().v1.customers.retrieve(customer_id=customer_id).data.custom_fields
        assert len(tag["iac_identity"]) <= 200
        assert h.create(C, {"identity": f"metronome-iac/test/{name}", "name": "long"})[0] == customer_id


def test_emulator_field_limits(fresh_emulator):
    """uniqueness_key 1-128, ingest aliases (and external_id) 1-128, custom field values up to 200."""
    import metronome

    client = fresh_emulator.client(max_retries=0)
    with pytest.raises(metronome.BadRequestError, match="ingest_aliases\\[0\\] must be 1 to 128"):
        client.v1.customers.create(name="a", ingest_aliases=["a" * 129])
    customer = client.v1.customers.create(name="a", ingest_aliases=["a" * 128]).data
    with pytest.raises(metronome.BadRequestError, match="must be 1 to 128"):
        client.v1.customers.set_ingest_aliases(customer_id=customer.id, ingest_aliases=[""])
    with pytest.raises(metronome.BadRequestError, match="uniqueness_key must be 1 to 128"):
        client.v1.contracts.create(customer_id=customer.id, starting_at=START, uniqueness_key="k" * 129)
    client.v1.contracts.create(customer_id=customer.id, starting_at=START, uniqueness_key="k" * 128)
    client.v1.custom_fields.add_key(entity="customer", key="note", enforce_uniqueness=False)
    with pytest.raises(metronome.BadRequestError, match="at most 200 characters"):
        client.v1.custom_fields.set_values(
            entity="customer", entity_id=customer.id, custom_fields={"note": "n" * 201}
        )
    client.v1.custom_fields.set_values(
        entity="customer", entity_id=customer.id, custom_fields={"note": "n" * 200}
    )


def test_parallel_updates_learn_the_account_kind_once_and_add_nothing_twice(fresh_emulator):
    """The engine runs independent updates at once (the host serves 4 calls): on an account without
    contract editing every one of them ends up amending its contract exactly once."""
    from concurrent.futures import ThreadPoolExecutor

    fresh_emulator.admin("POST", "config", json={"contract_editing": False})
    with ProviderHost(fresh_emulator.base_url, fresh_emulator.token) as h:
        refs = setup(h)
        made = [h.create_checked(K, contract(refs)) for _ in range(6)]

        def add_commit(entry):
            object_id, inputs, outs = entry
            news = {**inputs, "commits": [*inputs["commits"], commit(refs["p2"], 5, name="extra")]}
            h.update(K, object_id, outs, h.check_ok(K, news, olds=inputs))
            return object_id

        with ThreadPoolExecutor(max_workers=4) as pool:
            done = list(pool.map(add_commit, made))
    for object_id in done:
        live, got = active(fresh_emulator, refs, object_id)
        assert sorted(c.name for c in live) == ["extra", "prepaid"] and len(got.amendments) == 1
