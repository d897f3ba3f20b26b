"""`MetronomeProvider`: the dynamic-provider plumbing every resource shares.

A resource module supplies the schema (an `Inputs` model whose fields carry their diff rules: see
`providers.schema.RequiresReplace`) and the API calls (hooks below); this class turns them into
check / diff / create / read / update / delete. Provider objects carry NO instance state: they are
pickled by reference into the program's state, and everything they need (settings, clients, listing
indexes) lives in the host process.
"""

from __future__ import annotations

import gc
import sys
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import metronome
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

from .client import KindIndex, MetronomeError, archive, get_client, kind_index, raw_request
from .config import configure_from_request
from .diff import (
    PROVIDER_KEY,
    UNKNOWN,
    canonical_time,
    canonical_timestamps,
    changed_fields,
    compute_diff,
    describe,
    instant,
    mark_unknowns,
    normalize,
)
from .exactly_once import (
    IDENTITY_FIELD,
    create_once,
    delete_custom_field_values,
    registering_keys,
    retire,
    set_custom_field_values,
)
from .identity import create_key, identity_forms, resource_name_of, stamped, unstamped
from .schema import RequiresReplace, replacement_rules, replacing_fields

# Inputs the project adds that Metronome never stores: carried from state on read, never diffed.
NON_API_FIELDS = frozenset(
    {"adopt", "identity", "allow_replacement", "allow_reinvoice", "update_starting_at"}
)
# Outputs computed by the provider (never inputs). `read_through`: the customer an account-wide alert
# is read through (providers/alert.py).
COMPUTED_FIELDS = frozenset({"adopt_report", "uniqueness_key", "retag_needed", "read_through"})
# Set by read when the live `iac_identity` tag is gone or wrong (edited by hand): the next up re-tags.
RETAG = "retag_needed"


def _timestamp(value: str) -> str:
    if value == UNKNOWN:
        return value
    try:
        return canonical_time(value)
    except ValueError:
        raise ValueError("is not an RFC 3339 timestamp such as 2026-01-01T00:00:00Z") from None


Timestamp = Annotated[str, AfterValidator(_timestamp)]


class InputsBase(BaseModel):
    """Fields every resource takes besides Metronome's own."""

    model_config = ConfigDict(extra="forbid")

    custom_fields: dict[str, str] | None = None
    adopt: dict[str, str] | None = None
    identity: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        """An optional top-level string left blank ("") is not set: Metronome reads it back as absent."""
        if not isinstance(data, dict):
            return data
        optional = {k for k, f in cls.model_fields.items() if not f.is_required() and f.default is None}
        return {k: v for k, v in data.items() if not (v == "" and k in optional)}


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _reason(err: dict[str, Any], hints: dict[str, str], allowed: list[str]) -> str:
    loc = err.get("loc") or ()
    field = next((p for p in reversed(loc) if isinstance(p, str)), "")
    msg = err.get("msg", "invalid")
    kind = err.get("type", "")
    if kind == "missing":
        what = f"`{_path(loc)}` is required"
        fix = hints.get(field, f"add `{field}`")
    elif kind == "extra_forbidden":
        what = f"`{_path(loc)}` is not a known field"
        fix = f"remove it or fix its spelling (known fields here: {', '.join(allowed)})"
    else:
        got = err.get("input")
        what = f"{msg} (got {got!r})"
        fix = hints.get(field, f"set `{field}` to a value of the right type")
    return f"{what}; to fix: {fix}"


InputsT = TypeVar("InputsT", bound=InputsBase)


class MetronomeProvider(ResourceProvider, Generic[InputsT]):
    """Base provider; subclasses set the class attributes and implement the hooks.

    The default `create_object / read_live / find_live / archive_object` serve the kinds tagged with
    `iac_identity` (metrics, products, rate cards, customers): such a subclass only states where its
    objects live (`get_raw`, `list_raw`, `to_inputs`, `create_path` / `create_fields`, `archive_path`
    / `archive_id_field`). Contracts (uniqueness keys, objects under a customer) and the Stripe
    integration (no object at all) override the hooks.
    """

    kind: ClassVar[str] = "Resource"  # "BillableMetric", used in messages
    entity: ClassVar[str] = ""  # Metronome custom-field entity ("billable_metric", ...)
    inputs_model: type[InputsT]
    # {field: marker} for the fields whose change replaces the object, read off `inputs_model`.
    replace_rules: ClassVar[dict[str, RequiresReplace]] = {}
    natural_key: ClassVar[str] = "name"  # adopt: {"id": ...} or {natural_key: ...}
    # A replacement archives the old object before creating the new one (the new one needs something
    # the old one holds, e.g. a customer's ingest aliases); default: create first, archive after.
    delete_before_replace: ClassVar[bool] = False
    tagged: ClassVar[bool] = True  # identified by the `iac_identity` custom field (not a uniqueness key)
    hints: ClassVar[dict[str, str]] = {}
    # The pickled provider (`__provider`, in every resource's inputs and outputs) is the class by
    # reference and holds no secret (settings live in the host: see providers/config.py), so it need
    # not be a secret in the state. The SDK still makes it one if pickling ever captured a secret
    # Output (pulumi/pulumi#15864). As a secret it was encrypted twice per resource: 320 more bytes of
    # state per resource, which the file backend writes again after every step.
    serialize_as_secret_always: ClassVar[bool] = False

    # ------------------------------------------------------------------ API of a tagged kind (per module)

    create_path: ClassVar[str] = ""  # POST; the body takes `create_fields` plus custom_fields
    create_fields: ClassVar[tuple[str, ...]] = ()
    archive_path: ClassVar[str] = ""  # POST {archive_id_field: id}
    archive_id_field: ClassVar[str] = "id"

    @staticmethod
    def get_raw(client: metronome.Metronome, object_id: str, label: str) -> dict[str, Any] | None:
        """One API object (see `client.get_live`): None if archived or missing."""
        raise NotImplementedError

    @staticmethod
    def list_raw(client: metronome.Metronome) -> list[dict[str, Any]]:
        """Every object of the kind, as the listing returns it."""
        raise NotImplementedError

    @staticmethod
    def to_inputs(obj: dict[str, Any]) -> dict[str, Any]:
        """An API object in input shape (custom_fields including iac_identity)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ reads, kind index (tagged kinds)

    @classmethod
    def list_objects(cls, client: metronome.Metronome) -> list[tuple[str, dict[str, Any]]]:
        """(id, object) for every live object, input-shaped: the module's `list_objects(client)`."""
        return [(o["id"], cls.to_inputs(o)) for o in cls.list_raw(client) if not o.get("archived_at")]

    @classmethod
    def read_object(cls, client: metronome.Metronome, object_id: str) -> dict[str, Any] | None:
        """One live object, input-shaped; None if archived or missing: the module's `read_object`."""
        return cls._read(client, object_id, f"{cls.kind} {object_id}")

    @classmethod
    def _read(cls, client: metronome.Metronome, object_id: str, label: str) -> dict[str, Any] | None:
        obj = cls.get_raw(client, object_id, label)
        return cls.to_inputs(obj) if obj else None

    @classmethod
    def live_index(cls, client: metronome.Metronome) -> KindIndex:
        """The host-wide listing cache of the kind's live objects (adopt by natural key)."""
        return kind_index(client, cls.entity, cls.list_objects, cls.read_object)

    def find_tagged(self, client: metronome.Metronome, tag: str, inputs: dict[str, Any]) -> str | None:
        """The live object carrying `tag` (whichever host created it): the look-up after an
        ambiguous create. The listings have no filter by custom field, so this reads the kind's
        listing; kinds with a filtered query (a customer's ingest alias) override it."""
        return tagged_in(self.list_raw(client), tag)

    # ------------------------------------------------------------------ hooks (defaults: tagged kinds)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "inputs_model" in cls.__dict__:
            cls.replace_rules = replacement_rules(cls.inputs_model)

    def validate(self, inputs: InputsT, olds: dict[str, Any]) -> list[CheckFailure]:
        """Cross-field rules pydantic cannot express; `olds` are the previous inputs ({} on create)."""
        return []

    def warnings(self, inputs: InputsT) -> list[str]:
        return []

    def create_object(self, client: metronome.Metronome, inputs: dict[str, Any], label: str) -> str:
        """Create the object exactly once (`create_once`), tagged with its `iac_identity`: ONE call
        (three, once per account, when the account refuses the tag's custom field key: it is registered
        and the create sent again, `registering_keys`)."""
        tag = self.tag(inputs)
        custom_fields = {**(inputs.get("custom_fields") or {}), IDENTITY_FIELD: tag}
        body = {k: inputs[k] for k in self.create_fields if inputs.get(k) is not None}
        key = create_key(tag, {**body, "custom_fields": custom_fields})
        body["custom_fields"] = {**custom_fields, IDENTITY_FIELD: stamped(tag)}

        def post(single: metronome.Metronome, headers: dict[str, str]) -> Any:
            def send() -> Any:
                return raw_request(single, "POST", self.create_path, body=body, headers=headers, label=label)

            return registering_keys(client, self.entity, custom_fields, label=label, send=send)

        object_id, _ = create_once(
            client,
            label=label,
            scope=self.entity,
            tag=tag,
            key=key,
            call=f"POST {self.create_path}",
            post=post,
            find=lambda c, _conflict: self.find_tagged(c, tag, inputs),
            still_ours=lambda c, object_id: self.get_raw(c, object_id, label) is not None,
        )
        return object_id

    def read_live(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The live object in input shape (custom_fields incl. iac_identity), None if archived/missing."""
        return self._read(client, object_id, self.label(props or {}))

    def find_live(self, client: metronome.Metronome, key: str, value: str, label: str) -> str | None:
        """Id of the live object whose natural key `key` equals `value` (adopt)."""
        return find_by_field(client, self.live_index(client), key, value, label)

    def update_object(
        self,
        client: metronome.Metronome,
        object_id: str,
        olds: dict[str, Any],
        news: dict[str, Any],
        changed: list[str],
        label: str,
    ) -> dict[str, Any]:
        """Apply `changed` (API fields other than custom_fields); return extra computed outputs."""
        raise NotImplementedError

    def archive_object(
        self, client: metronome.Metronome, object_id: str, props: dict[str, Any], label: str
    ) -> None:
        archive(client, self.archive_path, {self.archive_id_field: object_id}, label=label)
        self.live_index(client).forget(object_id)

    def computed_outputs(
        self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any]
    ) -> dict[str, Any]:
        return {}

    def tag_adopted(
        self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any], label: str
    ) -> None:
        set_custom_field_values(
            client, self.entity, object_id, {IDENTITY_FIELD: self.tag(inputs)}, label=label
        )

    def retag(self, client: metronome.Metronome, object_id: str, inputs: dict[str, Any], label: str) -> None:
        """A renamed resource (new `identity`, same object): the live `iac_identity` follows the name."""
        tag = self.tag(inputs)
        set_custom_field_values(client, self.entity, object_id, {IDENTITY_FIELD: tag}, label=label)

    # ------------------------------------------------------------------ helpers

    @classmethod
    def api_fields(cls) -> list[str]:
        return [f for f in cls.inputs_model.model_fields if f not in NON_API_FIELDS]

    @classmethod
    def label(cls, props: dict[str, Any]) -> str:
        return f"{cls.kind} '{resource_name_of(props.get('identity'))}'"

    def tag(self, inputs: dict[str, Any]) -> str:
        from .identity import identity_tag

        identity = inputs.get("identity") or f"unknown/{inputs.get('name', '?')}"
        return identity_tag(identity, inputs, tuple(self.replace_rules))

    @classmethod
    def shape(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Inputs in canonical form (model defaults, coerced numbers); lenient if invalid."""
        data = {k: v for k, v in values.items() if k in cls.inputs_model.model_fields}
        try:
            return canonical_timestamps(
                cls.inputs_model.model_validate(data).model_dump(mode="json", exclude_none=True)
            )
        except ValidationError:
            return {k: v for k, v in data.items() if v is not None}

    @staticmethod
    def strip_identity(values: dict[str, Any]) -> dict[str, Any]:
        fields = dict(values.get("custom_fields") or {})
        fields.pop(IDENTITY_FIELD, None)
        out = dict(values)
        if fields:
            out["custom_fields"] = fields
        else:
            out.pop("custom_fields", None)
        return out

    # ------------------------------------------------------------------ ResourceProvider

    def configure(self, req: ConfigureRequest) -> None:
        configure_from_request(req)
        # The host calls this once a provider is loaded. What exists by then (the SDKs, pydantic schemas)
        # lives as long as the host: out of the cyclic collector's view, the full collections that a big
        # rate card's allocations trigger several times per operation scan only what the operation made
        # (a 5,000-rate read: a third less CPU). Objects are still freed by reference counting.
        gc.freeze()

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        news, olds = mark_unknowns(news), mark_unknowns(olds or {})
        raw = {k: v for k, v in news.items() if k != PROVIDER_KEY and k not in COMPUTED_FIELDS}
        # Preview unknowns: string fields keep the sentinel (rules treat it as "some value");
        # whole values of other types are set aside for validation and put back afterwards.
        known = {k: v for k, v in raw.items() if v is not None}
        unknown: dict[str, Any] = {}
        allowed = sorted(self.inputs_model.model_fields)
        try:
            try:
                model = self.inputs_model.model_validate(known)
            except ValidationError as err:
                bad = {str(e["loc"][0]) for e in err.errors() if e.get("loc")}
                unknown = {k: v for k, v in known.items() if k in bad and v == UNKNOWN}
                if not unknown:
                    raise
                model = self.inputs_model.model_validate({k: v for k, v in known.items() if k not in unknown})
        except ValidationError as err:
            failures = [
                CheckFailure(_path(e.get("loc") or ()), _reason(e, self.hints, allowed))  # type: ignore[arg-type]
                for e in err.errors()
            ]
            return CheckResult(dict(news), failures)
        failures = self.validate(model, {k: v for k, v in (olds or {}).items() if k != PROVIDER_KEY})
        for warning in self.warnings(model):
            print(f"warning: {self.label(raw)}: {warning}", file=sys.stderr, flush=True)
        inputs = canonical_timestamps(model.model_dump(mode="json", exclude_none=True))
        inputs.update(unknown)
        return CheckResult(inputs, failures)

    def diff_pair(self, olds: dict[str, Any], news: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Recorded outputs and new inputs, both in canonical input shape (unknowns kept)."""
        olds, news = mark_unknowns(olds), mark_unknowns(news)
        recorded, declared = self.strip_identity(olds), self.strip_identity(news)
        old = self.shape(recorded)
        # Unchanged inputs (the usual case) are shaped once: equal as written, equal in shape.
        same = {k: v for k, v in recorded.items() if k in self.inputs_model.model_fields} == {
            k: v for k, v in declared.items() if k in self.inputs_model.model_fields
        }
        new = {**(old if same else self.shape(declared)), **{k: v for k, v in news.items() if v == UNKNOWN}}
        return old, new

    @staticmethod
    def identity_changed(olds: dict[str, Any], news: dict[str, Any]) -> bool:
        """A rename (an alias took the old state over): same object, new `identity`. A state without
        an identity (older state) or an unknown one never counts as a change."""
        old, new = mark_unknowns(olds.get("identity")), mark_unknowns(news.get("identity"))
        return bool(old) and bool(new) and UNKNOWN not in (old, new) and old != new

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """The kind's diff rules (`diff_inputs`), plus: a changed identity alone is an in-place update
        (re-tag the object), never a replacement."""
        result = self.diff_inputs(_id, olds, news)
        if not result.changes and (self.identity_changed(olds, news) or olds.get(RETAG)):
            return DiffResult(changes=True, replaces=[], stables=[], delete_before_replace=False)
        return result

    def diff_inputs(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Diff of the API fields (identity aside); kinds with extra rules override this."""
        old, new = self.diff_pair(olds, news)
        return compute_diff(
            old, new, self.api_fields(), self.replace_rules, delete_before_replace=self.delete_before_replace
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        inputs = {k: v for k, v in props.items() if k != PROVIDER_KEY and k not in COMPUTED_FIELDS}
        label = self.label(inputs)
        client = get_client()
        if inputs.get("adopt"):
            return self._adopt(client, inputs, label)
        object_id = self.create_object(client, inputs, label)
        return CreateResult(object_id, {**inputs, **self.computed_outputs(client, object_id, inputs)})

    def _adopt(self, client: metronome.Metronome, inputs: dict[str, Any], label: str) -> CreateResult:
        adopt = dict(inputs["adopt"])
        if adopt.get("id"):
            object_id: str | None = adopt["id"]
        elif adopt.get(self.natural_key):
            object_id = self.find_live(client, self.natural_key, adopt[self.natural_key], label)
        else:
            raise MetronomeError(f"{label}: adopt needs `id` or `{self.natural_key}`")
        live = self.read_live(client, object_id, inputs) if object_id else None
        if live is None:
            raise MetronomeError(f"{label}: nothing live to adopt for {adopt} (missing or archived)")
        owner = ((live.get("custom_fields") or {}).get(IDENTITY_FIELD) or "").split("#", 1)[0]
        live = self.shape(self.strip_identity(live))
        desired = self.shape(self.strip_identity(inputs))
        differing = changed_fields(live, desired, self.api_fields())
        report = [f"{f}: desired {describe(desired.get(f))}, live {describe(live.get(f))}" for f in differing]
        if self.tagged and owner and owner not in identity_forms(inputs.get("identity") or ""):
            report.append(
                f"{IDENTITY_FIELD}: managed until now as {owner}, which will see it as drift or missing: "
                "take it out of that stack's state with `pulumi state delete` (removing it from that "
                "stack's files would archive it)"
            )
        immutable = replacing_fields(self.replace_rules, live, desired, differing)
        if immutable:
            raise MetronomeError(
                f"{label}: cannot adopt {object_id}: fields that cannot change in place differ "
                f"({', '.join(immutable)}). All differences: " + "; ".join(report)
            )
        assert object_id is not None
        self.tag_adopted(client, object_id, inputs, label)
        for line in report:
            print(f"adopt {label} ({object_id}): {line}", file=sys.stderr, flush=True)
        carried = {k: v for k, v in inputs.items() if k in NON_API_FIELDS}
        outs = {**live, **carried, "adopt_report": report}
        outs.update(self.computed_outputs(client, object_id, outs))
        return CreateResult(object_id, outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        client = get_client()
        live = self.read_live(client, id_, props)
        if live is None:  # the API said so: a 404 or `archived_at` (any other failure raised)
            retire(client, id_)
            return ReadResult(None, {})
        outs = self.shape(self.strip_identity(live))
        outs.update(self.same_as_recorded(outs, props))
        # An empty list or map the API fills in where the state has none is no change (group_keys: []).
        for field in [f for f in self.api_fields() if outs.get(f) in ([], {}) and props.get(f) is None]:
            outs.pop(field)
        outs.update({k: v for k, v in props.items() if k in NON_API_FIELDS or k in COMPUTED_FIELDS})
        outs.update(self.computed_outputs(client, id_, outs))
        outs.pop(RETAG, None)
        identity = mark_unknowns(props.get("identity"))
        if self.tagged and identity and identity != UNKNOWN:
            live_tag = unstamped((live.get("custom_fields") or {}).get(IDENTITY_FIELD))
            if live_tag != self.tag(props):
                outs[RETAG] = True
        return ReadResult(id_, outs)

    def same_as_recorded(self, live: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
        """Recorded values the live ones equal under the diff rules (`commits: []` vs none, 3 vs 3.0,
        list order): read keeps the recorded spelling, so refresh reports only real changes."""
        recorded = self.strip_identity(mark_unknowns(recorded))
        # Equal as written needs no shaping (a card read back in its recorded order is); the rest is
        # compared in canonical shape.
        same = {
            f: recorded[f]
            for f in self.api_fields()
            if recorded.get(f) is not None and recorded[f] == live.get(f)
        }
        if len(same) == sum(1 for f in self.api_fields() if recorded.get(f) is not None):
            return same
        shaped = self.shape(recorded)
        return {
            field: shaped[field]
            for field in self.api_fields()
            if field in shaped and not changed_fields(live, shaped, [field])
        } | same

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        inputs = {k: v for k, v in news.items() if k != PROVIDER_KEY and k not in COMPUTED_FIELDS}
        label = self.label(inputs)
        client = get_client()
        old = self.shape(self.strip_identity(olds))
        new = self.shape(self.strip_identity(inputs))
        changed = changed_fields(old, new, self.api_fields())
        fixed = replacing_fields(self.replace_rules, old, new, changed)
        if fixed:  # the engine replaces on these (diff); an update reaching here is a bug, never a no-op
            raise MetronomeError(
                f"{label}: {', '.join(fixed)} cannot change in place "
                f"({'; '.join(self.replace_rules[f].why for f in fixed)}); replace the {self.kind}"
            )
        if self.identity_changed(olds, inputs) or olds.get(RETAG):
            self.retag(client, id_, inputs, label)
        if "custom_fields" in changed:
            self.update_custom_fields(
                client, id_, old.get("custom_fields") or {}, new.get("custom_fields") or {}, label
            )
        extra = self.update_object(client, id_, old, new, [c for c in changed if c != "custom_fields"], label)
        # Computed outputs recorded at create (adopt_report, an adopted contract's key) carry over.
        carried = {k: v for k, v in olds.items() if k in COMPUTED_FIELDS and k != RETAG and v is not None}
        outs = {**inputs, **carried, **extra}
        outs.update(self.computed_outputs(client, id_, outs))
        return UpdateResult(outs)

    def update_custom_fields(
        self,
        client: metronome.Metronome,
        object_id: str,
        old: dict[str, str],
        new: dict[str, str],
        label: str,
    ) -> None:
        changed = {k: v for k, v in new.items() if normalize(old.get(k)) != normalize(v)}
        set_custom_field_values(client, self.entity, object_id, changed, label=label)
        delete_custom_field_values(
            client, self.entity, object_id, [k for k in old if k not in new], label=label
        )

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        client = get_client()
        self.archive_object(client, id_, props, self.label(props))
        retire(client, id_)


def declare_props(
    resource_name: str, inputs: dict[str, Any], computed: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Props for `pulumi.dynamic.Resource.__init__`: inputs, the computed identity, output slots."""
    from .identity import compute_identity

    props = dict(inputs)  # None values stay: every declared output gets its attribute
    props["identity"] = compute_identity(resource_name)
    for name in ("adopt_report", *computed):
        props.setdefault(name, None)  # declared so dependents can reference the output
    return props


def tagged_in(objects: list[dict[str, Any]], tag: str) -> str | None:
    """Id of the first live object (raw, from a listing) whose `iac_identity` is `tag`, stamped or not."""
    for obj in objects:
        live_tag = (obj.get("custom_fields") or {}).get(IDENTITY_FIELD)
        if not obj.get("archived_at") and unstamped(live_tag) == tag:
            return obj["id"]
    return None


def find_by_field(client: metronome.Metronome, index: Any, field: str, value: str, label: str) -> str | None:
    """Natural-key lookup (adopt) on a kind index of input-shaped objects; reloaded once if not found."""
    index.ensure_loaded(client)
    for attempt in range(2):
        hits = []
        for obj in index.objects():
            have = obj.get(field)
            if have == value or (isinstance(have, list) and value in have):
                hits.append(obj["id"])
        if len(hits) > 1:  # the listing may be older than an archive: only live ones count
            hits = [object_id for object_id in hits if index.still_live(client, object_id)]
        if len(hits) > 1:
            raise MetronomeError(
                f"{label}: several live objects have {field} {value!r}: {hits}; adopt by id instead"
            )
        if hits:
            return hits[0]
        if attempt == 0:
            index.reload(client)
    return None


def current_hour() -> str:
    from datetime import datetime, timezone

    return (
        datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def is_hour_aligned(ts: str) -> bool:
    parsed = instant(ts)
    return (parsed.minute, parsed.second, parsed.microsecond) == (0, 0, 0)
