"""Notification (v2 offset notifications) through the real provider host over gRPC, against the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from provider_host import ProviderHost, unique

from providers.notification import NotificationProvider as N


@pytest.fixture(scope="module")
def host(emulator) -> Iterator[ProviderHost]:
    with ProviderHost(emulator.base_url, emulator.token) as h:
        yield h


def notification(**over):
    name = unique("commit-ending")
    return {
        "identity": f"metronome-iac/test/{name}",
        "name": name,
        "policy": {"type": "commit.segment.end", "offset": "-P7D"},
        **over,
    }


def test_check_names_the_field_and_the_fix(host):
    _, failures = host.check(N, {}, notification(policy={"type": "commit.ending", "offset": "-P7D"}))
    assert "policy.type" in dict(failures) and "commit.segment.end" in dict(failures)["policy.type"]
    _, failures = host.check(N, {}, notification(policy={"type": "contract.end", "offset": "7 days"}))
    assert "policy.offset" in dict(failures) and "-P7D" in dict(failures)["policy.offset"]
    _, failures = host.check(N, {}, notification(custom_fields={"team": "billing"}))
    assert "custom_fields" in dict(failures)


def test_lifecycle(host, emulator):
    offsets = emulator.client().v2.notifications.offset
    object_id, inputs, outs = host.create_checked(N, notification())
    live = offsets.retrieve(id=object_id).data
    assert live.policy.offset == "-P7D" and live.name == inputs["name"]
    assert outs["uniqueness_key"].startswith("iac:" + inputs["identity"] + "#")

    _, read_outs = host.read(N, object_id, outs)
    assert host.diff(N, object_id, read_outs, inputs).changes == "NONE"

    # The offset changes in place (the edit endpoint); the name or the event type replace it.
    later = {**inputs, "policy": {"type": "commit.segment.end", "offset": "-P14D"}}
    d = host.diff(N, object_id, outs, later)
    assert d.changed and d.replaces == []
    outs = host.update(N, object_id, outs, later)
    assert offsets.retrieve(id=object_id).data.policy.offset == "-P14D"
    assert host.diff(N, object_id, outs, {**later, "name": "other"}).replaces == ["name"]
    retyped = {**later, "policy": {"type": "contract.end", "offset": "-P14D"}}
    assert host.diff(N, object_id, outs, retyped).replaces == ["policy"]

    # A hand edit shows on read and the next update puts the declared offset back.
    offsets.edit(id=object_id, policy={"type": "commit.segment.end", "offset": "-P1D"})
    _, drifted = host.read(N, object_id, outs)
    assert drifted["policy"]["offset"] == "-P1D"
    assert host.diff(N, object_id, drifted, later).changed
    host.update(N, object_id, drifted, later)
    assert offsets.retrieve(id=object_id).data.policy.offset == "-P14D"

    host.delete(N, object_id, outs)
    assert offsets.retrieve(id=object_id).data.archived_at is not None
    assert host.read(N, object_id, outs)[0] == ""
    host.delete(N, object_id, outs)  # archiving again is success


def test_a_replayed_create_takes_the_first_over(host):
    news = notification()
    first, inputs, _ = host.create_checked(N, news)
    again, _ = host.create(N, inputs)
    assert again == first
