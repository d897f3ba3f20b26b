"""Notification: a Metronome offset notification, "7 days before a commit segment ends" (v2 lifecycle-event
notifications, metronome/resources/v2/notifications/offset.py).

It fires `policy.offset` (a signed ISO-8601 duration: "-P7D" is 7 days before, "P3D" 3 days after) from a
lifecycle event of every customer's contracts, commits or credits, as a webhook to the endpoints set up in
Metronome's dashboard. `/v2/notifications/edit` changes the offset in place; the event type must stay
(edit requires the same `policy.type`) and the name cannot change, so those replace it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import metronome
import pulumi
from pydantic import BaseModel, ConfigDict, field_validator

from .base import InputsBase, declare_props
from .client import get_live, paginate, request
from .keyed import Holder, KeyedProvider
from .schema import RequiresReplace

# The lifecycle events offset notifications are set around (docs.metronome.com, Set up notifications >
# System notifications: "Offset notifications can be configured around any of the system notification types").
EventType = Literal[
    "contract.create",
    "contract.start",
    "contract.edit",
    "contract.end",
    "contract.archive",
    "commit.create",
    "commit.edit",
    "commit.archive",
    "commit.segment.start",
    "commit.segment.end",
    "credit.create",
    "credit.edit",
    "credit.archive",
    "credit.segment.start",
    "credit.segment.end",
]
# Offsets in hours, days, weeks, months and years (the offset notifications docs), negative = before.
OFFSET = re.compile(r"^-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?)?$")

# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: EventType
    offset: str

    @field_validator("offset")
    @classmethod
    def _iso_duration(cls, value: str) -> str:
        if not OFFSET.match(value):
            raise ValueError(
                f"{value!r} is not a signed ISO-8601 duration in hours, days, weeks, months or years"
            )
        return value


def same_event(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    return (old or {}).get("type") == (new or {}).get("type")


class Inputs(InputsBase):
    name: Annotated[str, RequiresReplace("the edit endpoint changes only the policy")]
    policy: Annotated[
        Policy,
        RequiresReplace(
            "edit keeps the lifecycle event type (policy.type): only the offset changes in place",
            unless=same_event,
        ),
    ]


HINTS = {
    "type": "use a lifecycle event such as commit.segment.end, credit.segment.end or contract.end",
    "offset": "write a signed ISO-8601 duration, e.g. -P7D (7 days before) or PT12H (12 hours after)",
    "name": "name the notification (shown in Metronome and in its webhooks)",
}

# ---------------------------------------------------------------------------------------------
# API calls
# ---------------------------------------------------------------------------------------------


def to_inputs(obj: dict[str, Any]) -> dict[str, Any]:
    policy = obj.get("policy") or {}
    return {"name": obj.get("name"), "policy": {"type": policy.get("type"), "offset": policy.get("offset")}}


def _get(client: metronome.Metronome, object_id: str, label: str) -> dict[str, Any] | None:
    return get_live(client, "POST", "/v2/notifications/get", label=label, body={"id": object_id})


def _list_raw(client: metronome.Metronome) -> list[dict[str, Any]]:
    return list(
        paginate(
            client,
            "POST",
            "/v2/notifications/offset/list",
            label="Notification listing",
            body={"archive_filter": "NOT_ARCHIVED"},
            cursor_in_body="cursor",
        )
    )


class NotificationProvider(KeyedProvider[Inputs]):
    kind = "Notification"
    inputs_model = Inputs
    natural_key = "name"
    hints = HINTS
    get_raw = staticmethod(_get)
    list_raw = staticmethod(_list_raw)
    to_inputs = staticmethod(to_inputs)
    create_path = "/v2/notifications/create"
    create_fields = ("name", "policy")
    archive_path = "/v2/notifications/archive"

    def holder_of(
        self,
        client: metronome.Metronome,
        key: str,
        conflict: metronome.ConflictError | None,
        inputs: dict[str, Any],
        label: str,
    ) -> Holder:
        # The listing does not carry keys (LifecycleEventOffsetNotificationConfig): the live notification
        # with this name and policy (what the key's fingerprint covers) is the one an earlier attempt
        # made. A 409 on the key (a notification's only unique field) says it is held all the same.
        policy = self.shape(inputs)["policy"]
        for obj in _list_raw(client):
            if obj.get("name") == inputs["name"] and to_inputs(obj)["policy"] == policy:
                return Holder(obj["id"], held=True)
        return Holder(None, held=conflict is not None)

    def update_object(
        self,
        client: metronome.Metronome,
        object_id: str,
        olds: dict[str, Any],
        news: dict[str, Any],
        changed: list[str],
        label: str,
    ) -> dict[str, Any]:
        if "policy" in changed:
            request(
                client,
                "POST",
                "/v2/notifications/edit",
                label=label,
                body={"id": object_id, "policy": news["policy"]},
            )
        return {}


list_objects = NotificationProvider.list_objects  # (client): all live offset notifications, input-shaped
read_object = NotificationProvider.read_object  # (client, id): None if archived or missing


class Notification(pulumi.dynamic.Resource, module="metronome", name="Notification"):
    """A Metronome offset notification: a webhook `policy.offset` before or after a lifecycle event.

    The offset changes in place; the name and the event type replace the notification. `uniqueness_key`
    (computed) makes a retried create find the notification it made.
    """

    name: pulumi.Output[str]
    policy: pulumi.Output[dict]
    uniqueness_key: pulumi.Output[str]
    adopt_report: pulumi.Output[list]

    def __init__(
        self,
        resource_name: str,
        opts: pulumi.ResourceOptions | None = None,
        *,
        name: pulumi.Input[str],
        policy: pulumi.Input[dict],
        adopt: pulumi.Input[dict] | None = None,
    ) -> None:
        props = declare_props(
            resource_name, dict(name=name, policy=policy, adopt=adopt), computed=("uniqueness_key",)
        )
        super().__init__(NotificationProvider(), resource_name, props, opts)


__all__ = ["Inputs", "Notification", "NotificationProvider", "list_objects", "read_object"]
