"""A mini Pulumi engine for end-to-end tests without the CLI.

It runs the real program (`metronome_iac.program.declare`) under `pulumi.runtime.set_mocks`; the mocks'
`new_resource` plays the engine's part against the real provider host (`python -m pulumi.dynamic`,
driven over gRPC by tests/provider_host.py): Check -> Diff against recorded state -> Create / Update /
Replace (create-before-delete, then archive the old object) -> record state, and return real ids and
outputs so dependents get real references. Resources in state but no longer declared are deleted
(archived) at the end, dependents first.

- `up(stack)`: apply; returns the steps.
- `plan(stack)`: report the steps only (Check and Diff run; Create/Update never): new or replaced
  resources return an unknown id, as in `pulumi preview`, so dependents show their follow-on steps.
- `refresh()`: Read every recorded resource; outputs (and inputs, when the provider returns them)
  replace the recorded ones; a resource that is gone leaves the state, as in `pulumi refresh`.
- `destroy()`: delete everything recorded, dependents first.

Aliases (`ResourceOptions(aliases=[Alias(name=...)])`) work as in Pulumi: a declared resource whose URN
is not in state but one of whose aliases is takes that state entry over (same id, same place in the
state), then diffs and updates as usual; the aliased URN is not deleted.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockMonitor

from metronome_iac.catalog import Stack
from metronome_iac.program import declare

PROVIDER_KEY = "__provider"
PROJECT = "metronome-iac"
REPO = Path(__file__).resolve().parent.parent
COMPUTED = frozenset({"adopt_report"})


@dataclass
class Step:
    op: str  # create | update | replace | delete | same | refresh
    type: str
    name: str
    id: str | None = None
    detail: list[str] = field(default_factory=list)  # changed / replaced fields

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1]

    def __repr__(self) -> str:
        extra = f" {self.detail}" if self.detail else ""
        return f"<{self.op} {self.kind} {self.name}{extra}>"


@dataclass
class Recorded:
    urn: str
    type: str
    name: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


class EngineError(Exception):
    pass


def plain(value: Any) -> Any:
    """What the engine would send the provider: secrets unwrapped, unknowns as the wire sentinel."""
    if isinstance(value, Unknown):
        return rpc.UNKNOWN
    if isinstance(value, dict):
        if rpc.is_rpc_secret(value):
            return plain(rpc.unwrap_rpc_secret(value))
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class _EngineMocks(pulumi.runtime.Mocks):
    def __init__(self, engine: MiniEngine, plan: bool) -> None:
        self.engine = engine
        self.plan = plan
        self.lock = threading.Lock()
        self.steps: list[Step] = []
        self.declared: list[str] = []
        self.pending_deletes: list[Recorded] = []
        self.errors: list[BaseException] = []
        self.aliases: dict[tuple[str, str], list[str]] = {}  # (type, name) -> alias URNs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        with self.lock:  # the SDK registers from several threads; the engine walks one at a time here
            try:
                return self._register(args)
            except BaseException as err:
                self.errors.append(err)
                raise

    def _register(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        engine, host = self.engine, self.engine.host
        urn = engine.urn(args.typ, args.name)
        self.declared.append(urn)
        news = {k: v for k, v in plain(args.inputs).items() if v is not None}
        old = engine.state.get(urn)
        if old is None:
            old = self._take_over_alias(urn, args)
        inputs, failures = host.check(urn, old.inputs if old else {}, news)
        if failures:
            raise EngineError(f"{args.typ}::{args.name} check failed: {failures}")

        if old is None:
            if self.plan:
                self.steps.append(Step("create", args.typ, args.name))
                return "", _public(inputs)
            object_id, outs = host.create(urn, inputs)
            engine.state[urn] = Recorded(urn, args.typ, args.name, object_id, inputs, outs)
            self.steps.append(Step("create", args.typ, args.name, object_id))
            return object_id, _public(outs)

        diff = host.diff(old.id, urn, old.outputs, inputs, old.inputs)
        changes, replaces = diff["changes"], list(diff["replaces"])
        if changes is None:  # DIFF_UNKNOWN: the engine compares inputs itself
            changes = _strip(old.inputs) != _strip(inputs)
        if not changes:
            if not self.plan:
                old.inputs = inputs
            self.steps.append(Step("same", args.typ, args.name, old.id))
            return old.id, _public(old.outputs)

        if replaces:
            if self.plan:
                self.steps.append(Step("replace", args.typ, args.name, old.id, replaces))
                return "", _public(inputs)
            if diff["delete_before_replace"]:
                host.delete(old.id, urn, old.outputs)
            else:
                self.pending_deletes.append(old)  # create-before-delete: the old goes at the end
            object_id, outs = host.create(urn, inputs)
            engine.state[urn] = Recorded(urn, args.typ, args.name, object_id, inputs, outs)
            self.steps.append(Step("replace", args.typ, args.name, object_id, replaces))
            return object_id, _public(outs)

        changed = sorted(
            k
            for k in set(_strip(old.inputs)) | set(_strip(inputs))
            if _strip(old.inputs).get(k) != _strip(inputs).get(k)
        )
        if self.plan:
            self.steps.append(Step("update", args.typ, args.name, old.id, changed))
            return old.id, _public({**old.outputs, **inputs})
        outs = host.update(old.id, urn, old.outputs, inputs, old.inputs)
        engine.state[urn] = Recorded(urn, args.typ, args.name, old.id, inputs, outs)
        self.steps.append(Step("update", args.typ, args.name, old.id, changed))
        return old.id, _public(outs)

    def _take_over_alias(self, urn: str, args: pulumi.runtime.MockResourceArgs) -> Recorded | None:
        """The state entry of the first alias of `args` found in state, now under `urn` (Pulumi's rule:
        an alias also declared as a resource of its own is an error)."""
        engine = self.engine
        for alias_urn in self.aliases.get((args.typ, args.name), []):
            recorded = engine.state.get(alias_urn)
            if recorded is None:
                continue
            if alias_urn in self.declared:
                raise EngineError(f"{urn}: alias {alias_urn} is also declared as a resource")
            self.declared.append(alias_urn)  # taken over: not "no longer declared"
            moved = Recorded(urn, args.typ, args.name, recorded.id, recorded.inputs, recorded.outputs)
            if not self.plan:  # re-keyed in place: creation order (dependents last) is kept
                engine.state = {
                    (urn if k == alias_urn else k): (moved if k == alias_urn else v)
                    for k, v in engine.state.items()
                }
            return moved
        return None


class _AliasMonitor(MockMonitor):
    """The mock monitor, plus what MockResourceArgs leaves out: each registration's aliases, as URNs."""

    def __init__(self, mocks: _EngineMocks) -> None:
        super().__init__(mocks)
        self.engine_mocks = mocks

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        urns = []
        for alias in request.aliases:
            if alias.urn:
                urns.append(alias.urn)
            else:
                spec = alias.spec
                urns.append(
                    self.engine_mocks.engine.urn(spec.type or request.type, spec.name or request.name)
                )
        with self.engine_mocks.lock:
            self.engine_mocks.aliases[(request.type, request.name)] = urns
        return super().RegisterResource(request)


def _strip(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != PROVIDER_KEY and k not in COMPUTED}


def _public(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


class MiniEngine:
    """State is an ordered dict urn -> Recorded (creation order, so reverse order = dependents first)."""

    def __init__(self, connect: Callable[[], Any], project: str = PROJECT, stack: str = "dev") -> None:
        # Each operation starts a fresh provider host, as each `pulumi` command starts the plugin:
        # per-process caches (settings, listing indexes) never outlive one operation.
        self.connect = connect
        self.host: Any = None
        self.project = project
        self.stack = stack
        self.state: dict[str, Recorded] = {}

    def urn(self, typ: str, name: str) -> str:
        return f"urn:pulumi:{self.stack}::{self.project}::{typ}::{name}"

    def find(self, kind: str, name: str) -> Recorded:
        return next(r for r in self.state.values() if r.type.endswith(":" + kind) and r.name == name)

    @contextmanager
    def _session(self) -> Iterator[None]:
        self.host = self.connect()
        try:
            yield
        finally:
            self.host.close()
            self.host = None

    # ---------------------------------------------------------------------------------------------

    def _run(self, stack: Stack, plan: bool) -> list[Step]:
        with self._session():
            return self._run_in_session(stack, plan)

    def _run_in_session(self, stack: Stack, plan: bool) -> list[Step]:
        mocks = _EngineMocks(self, plan)
        pulumi.runtime.set_mocks(
            mocks, project=self.project, stack=self.stack, preview=plan, monitor=_AliasMonitor(mocks)
        )

        @pulumi.runtime.test
        def program() -> Any:
            resources = declare(stack)
            return pulumi.Output.all(*[r.id for by_name in resources.values() for r in by_name.values()])

        try:
            program()
        except Exception as err:
            if not mocks.errors:
                raise
            raise EngineError(f"{'plan' if plan else 'up'} failed: {mocks.errors[0]}") from err
        if mocks.errors:
            raise EngineError(f"{'plan' if plan else 'up'} failed: {mocks.errors[0]}") from mocks.errors[0]

        steps = list(mocks.steps)
        # Replaced objects first (their replacements exist and dependents point at them), then
        # resources no longer declared, dependents first.
        for old in reversed(mocks.pending_deletes):
            self.host.delete(old.id, old.urn, old.outputs)
        gone = [r for urn, r in self.state.items() if urn not in mocks.declared]
        for r in reversed(gone):
            steps.append(Step("delete", r.type, r.name, r.id))
            if not plan:
                self.host.delete(r.id, r.urn, r.outputs)
                del self.state[r.urn]
        return steps

    def up(self, stack: Stack) -> list[Step]:
        return self._run(stack, plan=False)

    def plan(self, stack: Stack) -> list[Step]:
        return self._run(stack, plan=True)

    def refresh(self) -> list[Step]:
        with self._session():
            return self._refresh()

    def _refresh(self) -> list[Step]:
        steps = []
        for urn, r in list(self.state.items()):
            new_id, outs, inputs = self.host.read(r.id, urn, r.outputs, r.inputs)
            if not new_id:
                del self.state[urn]
                steps.append(Step("delete", r.type, r.name, r.id, ["gone"]))
                continue
            changed = sorted(
                k
                for k in set(_strip(r.outputs)) | set(_strip(outs))
                if _strip(r.outputs).get(k) != _strip(outs).get(k)
            )
            r.id, r.outputs = new_id, outs
            if inputs:
                r.inputs = inputs
            steps.append(Step("refresh" if changed else "same", r.type, r.name, r.id, changed))
        return steps

    def destroy(self) -> list[Step]:
        with self._session():
            return self._destroy()

    def _destroy(self) -> list[Step]:
        steps = []
        for urn, r in reversed(list(self.state.items())):
            self.host.delete(r.id, urn, r.outputs)
            steps.append(Step("delete", r.type, r.name, r.id))
            del self.state[urn]
        return steps


def summary(steps: list[Step]) -> dict[str, list[tuple[str, str]]]:
    """{op: [(kind, name), ...]} for assertions."""
    out: dict[str, list[tuple[str, str]]] = {}
    for s in steps:
        out.setdefault(s.op, []).append((s.kind, s.name))
    return out


class EngineHost:
    """The engine's side of the provider protocol, over tests/provider_host.py's `ProviderHost`.

    Property bags carry `__provider` (as the engine's state does); it is split off and handed to
    ProviderHost as the provider blob, and put back on what comes back. Unknowns travel as the wire
    sentinel string, as the engine sends them.
    """

    def __init__(self, host: Any) -> None:
        self.host = host

    @staticmethod
    def _split(props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        return props[PROVIDER_KEY], {k: v for k, v in props.items() if k != PROVIDER_KEY}

    @staticmethod
    def _name(urn: str) -> str:
        return urn.rsplit("::", 1)[-1]

    @staticmethod
    def _with(blob: str, props: dict[str, Any]) -> dict[str, Any]:
        return {**plain(props), PROVIDER_KEY: blob}

    def check(self, urn: str, olds: dict[str, Any], news: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        blob, new = self._split(news)
        old = {k: v for k, v in olds.items() if k != PROVIDER_KEY}
        inputs, failures = self.host.check(blob, old, new, self._name(urn))
        return self._with(blob, inputs), failures

    def diff(self, id_: str, urn: str, olds: dict, news: dict, old_inputs: dict) -> dict[str, Any]:
        blob, new = self._split(news)
        old = {k: v for k, v in olds.items() if k != PROVIDER_KEY}
        d = self.host.diff(blob, id_, old, new, self._name(urn))
        changes = {"NONE": False, "SOME": True}.get(d.changes)  # UNKNOWN -> None
        return {
            "changes": changes,
            "replaces": list(d.replaces),
            "delete_before_replace": d.delete_before_replace,
        }

    def create(self, urn: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        blob, inputs = self._split(props)
        object_id, outs = self.host.create(blob, inputs, self._name(urn))
        return object_id, self._with(blob, outs)

    def read(self, id_: str, urn: str, props: dict, inputs: dict) -> tuple[str, dict, dict | None]:
        blob, outs = self._split(props)
        new_id, new_outs = self.host.read(blob, id_, outs, self._name(urn))
        return new_id, self._with(blob, new_outs), None

    def update(self, id_: str, urn: str, olds: dict, news: dict, old_inputs: dict) -> dict[str, Any]:
        blob, new = self._split(news)
        old = {k: v for k, v in olds.items() if k != PROVIDER_KEY}
        return self._with(blob, self.host.update(blob, id_, old, new, self._name(urn)))

    def delete(self, id_: str, urn: str, props: dict[str, Any]) -> None:
        blob, outs = self._split(props)
        self.host.delete(blob, id_, outs, self._name(urn))

    def close(self) -> None:
        self.host.close()


def make_host(base_url: str, token: str, project: str = PROJECT, stack: str = "test") -> EngineHost:
    """A provider host pointed at `base_url` (config sent through Configure, like the engine does)."""
    from provider_host import ProviderHost

    return EngineHost(ProviderHost(base_url, token, project=project, stack=stack))


def make_stack_dir(root: Path, name: str | None = None, stripe: bool = False) -> Path:
    """A copy of the dev stack under a unique stack name, with unique ingest aliases.

    The `stripe:` section is left out unless asked for: StripeIntegration needs Stripe connected on the
    Metronome account (tests/test_stripe_integration.py covers it against a fake Stripe).
    """
    name = name or f"e2e-{uuid.uuid4().hex[:8]}"
    d = root / name
    shutil.copytree(REPO / "stacks" / "dev", d)
    lines = (d / "environment.yaml").read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        if "ingest_aliases:" in line:  # [a, b] -> [a-<stack>, b-<stack>]
            head, items = line.split("[", 1)
            aliases = [a.strip() for a in items.split("]", 1)[0].split(",")]
            lines[i] = head + "[" + ", ".join(f"{a}-{name}" for a in aliases) + "]\n"
        elif "external_id:" in line:  # Metronome treats external ids as ingest aliases too
            lines[i] = line.rstrip("\n") + f"-{name}\n"
    env = "".join(lines)
    if not stripe:
        start = env.index("stripe:\n")
        end = env.index("customers:\n")
        env = env[:start] + env[end:]
    (d / "environment.yaml").write_text(env)
    return d


def engine_for(emulator: Any, stack: str, project: str = PROJECT) -> MiniEngine:
    """A mini engine whose provider hosts talk to `emulator`."""
    return MiniEngine(lambda: make_host(emulator.base_url, emulator.token, project, stack), project, stack)


def scratch_project(work: Path, state: Path, token: str, project: str = PROJECT) -> dict[str, str]:
    """A Pulumi project in `work` running this repo's program (`__main__.py`, this repo's virtualenv)
    with a file backend in `state`; returns the environment for `pulumi` commands. Stacks go under
    `work/stacks/<stack>/`."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "__main__.py", work / "__main__.py")
    (work / "Pulumi.yaml").write_text(
        f"name: {project}\n"
        "runtime:\n  name: python\n  options:\n    toolchain: pip\n"
        f"    virtualenv: {REPO / '.venv'}\n"
    )
    state.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": "test-only-passphrase",
        "PULUMI_SKIP_UPDATE_CHECKS": "true",
        "PULUMI_HOME": str(state.parent / "pulumi-home"),
        "METRONOME_BEARER_TOKEN": token,
    }
