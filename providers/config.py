"""Provider settings, resolved inside the provider host, never stored on a provider instance.

The program pickles provider objects by reference and with no instance attributes, so the
`__provider` blob carries no URL and no token. The host calls `configure(req)` once per distinct
`__provider` string; we keep what it hands us in a module-level cache for every later call.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ProviderSettings:
    base_url: str | None = None
    # repr=False: settings may end up in a traceback or a log line; the token must not.
    token: str | None = field(default=None, repr=False)
    stripe_api_key: str | None = field(default=None, repr=False)
    # `metronome:contractEditing`: whether the account has contract editing (/v2/contracts/edit) or
    # amendments (/v1/contracts/amend); None: not set, learned from the first edit.
    contract_editing: bool | None = None


ON_OFF = {"on": True, "true": True, "enabled": True, "off": False, "false": False, "disabled": False}


def _on_off(key: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value.strip().lower() not in ON_OFF:
        raise ValueError(f"{key} must be on or off, not {value!r}")
    return ON_OFF[value.strip().lower()]


_LOCK = threading.Lock()
_SETTINGS: ProviderSettings | None = None


def _get(config: Any, key: str) -> str | None:
    try:
        value = config.get(key)
    except Exception:  # a config object without the key or a plain dict
        value = None
    return str(value) if value not in (None, "") else None


def configure_from_request(req: Any) -> ProviderSettings:
    """Resolve settings from a `pulumi.dynamic.ConfigureRequest` (env vars as fallback)."""
    config = getattr(req, "config", None)
    settings = ProviderSettings(
        base_url=_get(config, "metronome:baseUrl") or os.environ.get("METRONOME_BASE_URL") or None,
        token=_get(config, "metronome:apiToken") or os.environ.get("METRONOME_BEARER_TOKEN") or None,
        stripe_api_key=_get(config, "stripe:apiKey") or os.environ.get("STRIPE_API_KEY") or None,
        contract_editing=_on_off(
            "metronome:contractEditing",
            _get(config, "metronome:contractEditing") or os.environ.get("METRONOME_CONTRACT_EDITING"),
        ),
    )
    global _SETTINGS
    with _LOCK:
        # A Configure without metronome settings (e.g. another provider's blob configured
        # later with an empty config) must not wipe settings we already have.
        if _SETTINGS is None or settings.base_url or settings.token:
            _SETTINGS = settings
    return settings


def get_settings() -> ProviderSettings:
    """The settings for this process: from `configure`, else from the environment."""
    with _LOCK:
        if _SETTINGS is not None:
            return _SETTINGS
    return ProviderSettings(
        base_url=os.environ.get("METRONOME_BASE_URL") or None,
        token=os.environ.get("METRONOME_BEARER_TOKEN") or None,
        stripe_api_key=os.environ.get("STRIPE_API_KEY") or None,
        contract_editing=_on_off("METRONOME_CONTRACT_EDITING", os.environ.get("METRONOME_CONTRACT_EDITING")),
    )


def reset_settings() -> None:
    """For tests: forget configured settings."""
    global _SETTINGS
    with _LOCK:
        _SETTINGS = None
