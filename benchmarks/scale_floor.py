"""The floor under the apply's ratio to its ideal: what the same run costs with nothing of the provider's.

`FloorProvider` is a dynamic provider whose check hands the inputs back as they are and whose create
makes one metronome-sdk call (a customer, the provider's most common create) and returns the inputs as
its outputs. Driven like the apply (same resources, same property bags, the engine's pattern, the same
host and emulator), its ratio is what the Pulumi SDK's host, the engine's pattern, one SDK call per object
and the emulator cost on this machine: the part of the apply's ratio that the provider does not own.

The host imports this module by name (the pickled class refers to it): `HOST_ENV` puts benchmarks/ on
the host's import path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pulumi.dynamic import CheckResult, ConfigureRequest, CreateResult, ResourceProvider

from providers.client import get_client, raw_request
from providers.config import configure_from_request

HOST_ENV = {"PYTHONPATH": str(Path(__file__).resolve().parent)}


class FloorProvider(ResourceProvider):
    def configure(self, req: ConfigureRequest) -> None:
        configure_from_request(req)

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [])

    def create(self, props: dict[str, Any]) -> CreateResult:
        name = props.get("name") or props.get("identity") or "floor"
        answer = raw_request(get_client(), "POST", "/v1/customers", body={"name": str(name)})
        return CreateResult(answer["data"]["id"], {k: v for k, v in props.items() if k != "__provider"})
