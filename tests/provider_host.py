"""Drive `python -m pulumi.dynamic` over gRPC the way the Pulumi engine does, without the engine.

    with ProviderHost(base_url, token) as host:           # starts the host, sends Configure
        inputs, failures = host.check(BillableMetricProvider, {}, news)
        object_id, outs = host.create(BillableMetricProvider, inputs)
        object_id, outs = host.read(BillableMetricProvider, object_id, outs)   # "" when gone
        result = host.diff(BillableMetricProvider, object_id, outs, inputs)   # Diff(changes, replaces, ...)
        outs = host.update(BillableMetricProvider, object_id, outs, new_inputs)
        host.delete(BillableMetricProvider, object_id, outs)

`provider` is a ResourceProvider class or instance (serialised like `pulumi.dynamic.Resource`
does) or an already-serialised `__provider` string. Every property bag is a plain dict without
`__provider` (the host adds it, as the engine would); values that are None are dropped, the way
the engine drops them. Numbers come back as floats (gRPC Struct). A provider error raises
`ProviderError` carrying the host's traceback text. Preview unknowns are the `UNKNOWN` sentinel
string both ways.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic import ResourceProvider
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2 as pb
from pulumi.runtime.proto import provider_pb2_grpc as pbg

REPO = Path(__file__).resolve().parent.parent
PROVIDER_KEY = "__provider"
UNKNOWN = rpc.UNKNOWN


class ProviderError(Exception):
    """A CRUD call that raised inside the host; `details` is the host's traceback text."""

    def __init__(self, method: str, details: str) -> None:
        lines = [line for line in details.strip().splitlines() if line.strip()]
        super().__init__(f"{method}: {lines[-1] if lines else details}")
        self.details = details


@dataclass
class Diff:
    changes: str  # "NONE", "SOME" or "UNKNOWN"
    replaces: list[str] = field(default_factory=list)
    delete_before_replace: bool = False

    @property
    def changed(self) -> bool:
        return self.changes == "SOME"


def secret(value: Any) -> dict[str, Any]:
    """A value wrapped as a secret, the way the engine sends secret config."""
    return {rpc._special_sig_key: rpc._special_secret_sig, "value": value}


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(_drop_none(values))
    return s


def _sentinel(value: Any) -> Any:
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, dict):
        return {k: _sentinel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sentinel(v) for v in value]
    return value


def plain(s: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as a plain dict; preview unknowns come back as the UNKNOWN sentinel string."""
    out = _sentinel(rpc.deserialize_properties(s, True))
    out.pop(PROVIDER_KEY, None)
    return out


def provider_blob(provider: Any) -> str:
    """The `__provider` property the program sends with every call: a provider class's is made once (the
    engine holds the program's string too), an instance's each time (its state may have changed)."""
    if isinstance(provider, str):
        return provider
    if isinstance(provider, type) and issubclass(provider, ResourceProvider):
        return _class_blob(provider)
    return serialize_provider(provider)


@functools.cache
def _class_blob(provider: type[ResourceProvider]) -> str:
    return serialize_provider(provider())


def type_token(provider: Any) -> str:
    kind = getattr(provider, "kind", None) if not isinstance(provider, str) else None
    return f"pulumi-python:dynamic/metronome:{kind}" if kind else "pulumi-python:dynamic:Resource"


class ProviderHost:
    """One `python -m pulumi.dynamic` process. Use as a context manager or call close()."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        project: str = "metronome-iac",
        stack: str = "test",
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.project, self.stack = project, stack
        child_env = {**os.environ, "PULUMI_PROJECT": project, "PULUMI_STACK": stack, **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pulumi.dynamic"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env,
            cwd=REPO,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip():
            err = self.process.stderr.read().decode() if self.process.stderr else ""
            raise RuntimeError(f"provider host did not start: {err}")
        self.port = int(line)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pbg.ResourceProviderStub(self.channel)
        args = dict(config or {})
        if base_url is not None:
            args["metronome:baseUrl"] = base_url
        if token is not None:
            args["metronome:apiToken"] = secret(token)
        self.configure(args)

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> ProviderHost:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stderr_text(self) -> str:
        """Everything the host printed to stderr so far (call after close())."""
        return self.process.stderr.read().decode() if self.process.stderr else ""

    # -- RPCs -----------------------------------------------------------------------------------

    def configure(self, args: dict[str, Any]) -> None:
        """Send Configure with namespaced config (`metronome:baseUrl`, secret-wrapped values ok)."""
        self.stub.Configure(pb.ConfigureRequest(acceptSecrets=True, args=struct(args)))

    def urn(self, provider: Any, name: str = "r") -> str:
        return f"urn:pulumi:{self.stack}::{self.project}::{type_token(provider)}::{name}"

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request)
        except grpc.RpcError as err:
            raise ProviderError(method, err.details() or str(err)) from None

    def check(
        self, provider: Any, olds: dict[str, Any], news: dict[str, Any], name: str = "r"
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Returns (checked inputs, [(property, reason), ...])."""
        blob = provider_blob(provider)
        old = {**olds, PROVIDER_KEY: blob} if olds else {}
        resp = self._call(
            "Check",
            pb.CheckRequest(
                urn=self.urn(provider, name), olds=struct(old), news=struct({**news, PROVIDER_KEY: blob})
            ),
        )
        return plain(resp.inputs), [(f.property, f.reason) for f in resp.failures]

    def diff(
        self, provider: Any, object_id: str, olds: dict[str, Any], news: dict[str, Any], name: str = "r"
    ) -> Diff:
        """`olds` are the recorded outputs, `news` the new (checked) inputs."""
        blob = provider_blob(provider)
        resp = self._call(
            "Diff",
            pb.DiffRequest(
                id=object_id,
                urn=self.urn(provider, name),
                olds=struct({**olds, PROVIDER_KEY: blob}),
                news=struct({**news, PROVIDER_KEY: blob}),
            ),
        )
        return Diff(
            pb.DiffResponse.DiffChanges.Name(resp.changes).removeprefix("DIFF_"),
            list(resp.replaces),
            resp.deleteBeforeReplace,
        )

    def create(self, provider: Any, props: dict[str, Any], name: str = "r") -> tuple[str, dict[str, Any]]:
        blob = provider_blob(provider)
        resp = self._call(
            "Create",
            pb.CreateRequest(urn=self.urn(provider, name), properties=struct({**props, PROVIDER_KEY: blob})),
        )
        return resp.id, plain(resp.properties)

    def read(
        self, provider: Any, object_id: str, props: dict[str, Any], name: str = "r"
    ) -> tuple[str, dict[str, Any]]:
        """Returns (id, outputs); id is "" when the object is gone (archived or missing)."""
        blob = provider_blob(provider)
        resp = self._call(
            "Read",
            pb.ReadRequest(
                id=object_id, urn=self.urn(provider, name), properties=struct({**props, PROVIDER_KEY: blob})
            ),
        )
        return resp.id, plain(resp.properties)

    def update(
        self, provider: Any, object_id: str, olds: dict[str, Any], news: dict[str, Any], name: str = "r"
    ) -> dict[str, Any]:
        blob = provider_blob(provider)
        resp = self._call(
            "Update",
            pb.UpdateRequest(
                id=object_id,
                urn=self.urn(provider, name),
                olds=struct({**olds, PROVIDER_KEY: blob}),
                news=struct({**news, PROVIDER_KEY: blob}),
            ),
        )
        return plain(resp.properties)

    def delete(self, provider: Any, object_id: str, props: dict[str, Any], name: str = "r") -> None:
        blob = provider_blob(provider)
        self._call(
            "Delete",
            pb.DeleteRequest(
                id=object_id, urn=self.urn(provider, name), properties=struct({**props, PROVIDER_KEY: blob})
            ),
        )

    # -- convenience ----------------------------------------------------------------------------

    def check_ok(
        self, provider: Any, news: dict[str, Any], olds: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """check that must pass; returns the checked inputs."""
        inputs, failures = self.check(provider, olds or {}, news)
        assert not failures, failures
        return inputs

    def create_checked(
        self, provider: Any, news: dict[str, Any]
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """check + create; returns (id, checked inputs, outputs)."""
        inputs = self.check_ok(provider, news)
        object_id, outs = self.create(provider, inputs)
        return object_id, inputs, outs


def unique(prefix: str) -> str:
    """A name no other test uses (the session emulator is shared)."""
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:8]}"
