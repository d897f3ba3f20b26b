"""Field types every catalog entry model shares (catalog.py and the entry modules it imports)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


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


Timestamp = Annotated[str, BeforeValidator(_timestamp)]
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
