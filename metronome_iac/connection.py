"""Which Metronome account a stack command talks to, and how a failed conversation with it is worded.

The URL comes from `--base-url`, else METRONOME_BASE_URL, else `metronome:baseUrl` in Pulumi.<stack>.yaml
(else the official client's default); the token from METRONOME_BEARER_TOKEN, else `metronome:apiToken`
there. Used by `drift`, `export` and `reconcile`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import yaml

from metronome_iac.cli import program

DEFAULT_PROJECT = "metronome-iac"
DEFAULT_BASE_URL = "https://api.metronome.com"  # the official client's, when no setting names one


def project_name(explicit: str | None = None, root: Path | None = None) -> str:
    if explicit:
        return explicit
    path = (root or Path.cwd()) / "Pulumi.yaml"
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if isinstance(data.get("name"), str):
                return data["name"]
        except yaml.YAMLError:
            pass
    return DEFAULT_PROJECT


def stack_config(stack: str, root: Path | None = None) -> dict[str, Any]:
    path = (root or Path.cwd()) / f"Pulumi.{stack}.yaml"
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return {}
    return data.get("config") or {}


class SetupError(RuntimeError):
    """The command cannot start (no token, ...): its message says what to set."""


def resolve_base_url(stack: str | None, flag: str | None, root: Path | None = None) -> tuple[str | None, str]:
    """(URL, the setting that chose it): `--base-url`, else METRONOME_BASE_URL, else `metronome:baseUrl`
    in Pulumi.<stack>.yaml; (None, ...) when none is set and the official client's default applies."""
    if flag:
        return flag, "--base-url"
    if os.environ.get("METRONOME_BASE_URL"):
        return os.environ["METRONOME_BASE_URL"], "METRONOME_BASE_URL"
    if stack is not None:
        url = stack_config(stack, root).get("metronome:baseUrl")
        if isinstance(url, str) and url:
            return url, f"metronome:baseUrl in Pulumi.{stack}.yaml"
    where = " or METRONOME_BASE_URL"
    if stack:
        where = f", METRONOME_BASE_URL or metronome:baseUrl in Pulumi.{stack}.yaml"
    return None, f"the default: no --base-url{where}"


def token_settings(stack: str) -> str:
    """Where a stack's Metronome token is read from, as error messages name it."""
    return f"METRONOME_BEARER_TOKEN (or metronome:apiToken in Pulumi.{stack}.yaml)"


class Connection(NamedTuple):
    base_url: str | None
    source: str  # the setting that chose `base_url` (see resolve_base_url)
    token: str


def resolve_connection(stack: str, base_url: str | None, root: Path | None = None) -> Connection:
    """The base URL, the setting that chose it, and the token: flag/env/stack config. A `secure:` token
    needs the Pulumi CLI: use the env.

    Raises SetupError (a message that says what to set) when there is no usable token."""
    config = stack_config(stack, root)
    url, source = resolve_base_url(stack, base_url, root)
    token = os.environ.get("METRONOME_BEARER_TOKEN")
    if not token:
        value = config.get("metronome:apiToken")
        if isinstance(value, str):
            token = value
        elif isinstance(value, dict):
            raise SetupError(
                f"the token in Pulumi.{stack}.yaml is encrypted; export it first: "
                f"export METRONOME_BEARER_TOKEN=$(pulumi config get metronome:apiToken --stack {stack})"
            )
    if not token:
        raise SetupError(f"no Metronome API token: set {token_settings(stack)}")
    return Connection(url, source, token)


def api_client(base_url: str | None, token: str) -> Any:
    """A client with the provider's retry rules (429 and 5xx retried, honouring Retry-After), once one
    call with a single retry has been answered: a wrong URL or token fails in seconds, not after backoffs."""
    from providers.client import make_client

    client = make_client(base_url, token)
    client.with_options(max_retries=1).v1.billable_metrics.list(limit=1)
    return client


def describe_failure(err: Exception, url: str | None, source: str, token_setting: str) -> str:
    """One line for a failed conversation with the Metronome API: what failed, at which URL (and which
    setting chose it), and what to change. `token_setting`: where the token came from or goes."""
    import metronome

    shown = url or DEFAULT_BASE_URL
    text = str(err)
    status = getattr(err, "status_code", None)
    local = any(h in shown for h in ("://127.0.0.1", "://localhost", "://[::1]", "://0.0.0.0"))
    if isinstance(err, metronome.APITimeoutError) or text.endswith("request to Metronome timed out"):
        return f"Metronome at {shown} (from {source}) did not answer in time: retry, or check the URL"
    if isinstance(err, metronome.APIConnectionError) or "cannot reach Metronome" in text:
        if source == "--base-url":
            change = "pass the right --base-url"
        elif source.startswith("the default"):
            change = "set another URL with --base-url"
        else:
            change = f"correct {source}"
        port = urlsplit(shown).port
        command = f"{program()} emulator" + (f" --port {port}" if port else "")
        if local:
            advice = f"start the emulator there (`{command}`), or if the URL is wrong, {change}"
        else:  # the URL may well be right and the network the problem: do not send them to edit it
            advice = "check that URL and that this machine can reach it (network, proxy); "
            advice += f"if the URL is wrong, {change}"
        return f"cannot reach Metronome at {shown} (from {source}): {advice}"
    if status in (401, 403):
        return f"Metronome at {shown} (from {source}) refused the API token ({status}): check {token_setting}"
    return text or type(err).__name__
