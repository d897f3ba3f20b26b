"""Field types every catalog entry model shares (catalog.py and the entry modules it imports)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


def _timestamp(value: Any) -> Any:
    """Accept RFC 3339 strings (or YAML datetimes) and normalise to `YYYY-MM-DDTHH:MM:SSZ`."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"'{value}' is not an RFC 3339 timestamp (e.g. 2026-01-01T00:00:00Z)") from exc
    else:
        raise ValueError(f"expected an RFC 3339 timestamp string, got {type(value).__name__}")
    if dt.tzinfo is None:
        raise ValueError(f"'{value}' has no time zone; add 'Z' for UTC")
    dt = dt.astimezone(timezone.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    return text + "Z"


def _on_the_hour(value: str) -> str:
    """Product updates take effect on an hour boundary (SDK ProductUpdateParams.starting_at: "It must be
    on an hour boundary (e.g. 1:00, not 1:30)"); no other Metronome time has such a rule."""
    if value[14:19] != "00:00" or len(value) != 20:
        raise ValueError(
            f"'{value}' is not on an hour boundary (Metronome refuses it): use e.g. {value[:14]}00:00Z"
        )
    return value


Timestamp = Annotated[str, BeforeValidator(_timestamp)]
HourTimestamp = Annotated[str, AfterValidator(_on_the_hour), BeforeValidator(_timestamp)]
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
# Metronome's limits: an ingest alias (and the deprecated external_id) 1-128 characters (docs: create a
# customer, set ingest aliases); a custom field value at most 200 (docs: set custom field values).
Alias = Annotated[str, Field(min_length=1, max_length=128)]
CustomFields = dict[str, Annotated[str, Field(max_length=200)]]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
