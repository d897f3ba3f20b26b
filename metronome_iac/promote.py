"""`metronome-iac promote --from staging --to prod [--check]`: copy the promotable catalog between stacks.

Only `catalog.yaml` (metrics, products, rate cards, packages, account-wide alerts, notifications) moves;
`environment.yaml` (customers and their alerts, contracts) is never touched. The report lists what the
target gains, loses and changes per entry and field. `--check` writes nothing and exits 2 when the target
lags the source (0 when up to date, 1 when it cannot run). Promotion refuses to overwrite a target catalog
with uncommitted git edits (they would be lost silently), and refuses a target stack whose folder does not
exist: a new stack is made deliberately, by copying a stack's folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from metronome_iac.catalog import (
    CATALOG_FILE,
    ENVIRONMENT_FILE,
    CatalogError,
    load_catalog,
    load_stack,
)
from metronome_iac.catalog_read import parse_yaml
from metronome_iac.catalog_write import as_written
from metronome_iac.cli import EXIT_ATTENTION, EXIT_OK, CommandError, missing_stack, program

_KINDS = (
    ("billable_metrics", "billable metric"),
    ("products", "product"),
    ("rate_cards", "rate card"),
    ("packages", "package"),
    ("alerts", "alert"),  # account-wide ones: customers' alerts are in environment.yaml, never promoted
    ("notifications", "notification"),
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True, help="stack to promote from (e.g. staging)")
    parser.add_argument("--to", dest="target", required=True, help="stack to promote to (e.g. prod)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 2 if the target lags")
    parser.add_argument("--stacks-dir", default="stacks", help="directory holding one folder per stack")


# --------------------------------------------------------------------------------------------------
# semantic diff


def _rate_key(rate: dict[str, Any]) -> str:
    # Metronome identifies a rate by product + pricing group values + start.
    groups = rate.get("pricing_group_values") or {}
    group_text = "{" + ", ".join(f"{k}: {v}" for k, v in sorted(groups.items())) + "}" if groups else ""
    return " ".join(p for p in (rate.get("product", "?"), group_text, f"from {rate.get('starting_at')}") if p)


def _show(value: Any) -> str:
    return json.dumps(as_written(value), sort_keys=True) if value is not None else "(unset)"


def _field_diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    """Dotted-path differences; dict-like lists (rates, named items) are matched by key, not position."""
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            _field_diff(old.get(key), new.get(key), f"{path}.{key}" if path else str(key), out)
        return
    if isinstance(old, list) and isinstance(new, list) and path.split(".")[-1] == "rates":
        olds = {_rate_key(r): r for r in old}
        news = {_rate_key(r): r for r in new}
        for key in olds.keys() - news.keys():
            out.append(f"{path}[{key}]: removed ({_show(olds[key])})")
        for key in news.keys() - olds.keys():
            out.append(f"{path}[{key}]: added ({_show(news[key])})")
        for key in sorted(olds.keys() & news.keys()):
            _field_diff(olds[key], news[key], f"{path}[{key}]", out)
        return
    out.append(f"{path}: {_show(old)} -> {_show(new)}")


def _entries(data: dict[str, Any] | None, section: str) -> dict[str, dict[str, Any]]:
    items = (data or {}).get(section) or []
    return {str(e.get("name")): e for e in items if isinstance(e, dict)}


def semantic_diff(
    source: dict[str, Any] | None, target: dict[str, Any] | None
) -> list[tuple[str, str, list[str]]]:
    """[(action, "kind 'name'", details)] of what applying `source` over `target` does to target.

    An entry the source renamed (its `previous_names` holds a name the target still uses, which the
    source no longer does) is one "rename": the same Metronome object, re-tagged, not a gain and a loss."""
    changes: list[tuple[str, str, list[str]]] = []
    for section, label in _KINDS:
        src, dst = _entries(source, section), _entries(target, section)
        renamed: set[str] = set()
        for name in src:
            entry = f"{label} '{name}'"
            if name in dst:
                if src[name] != dst[name]:
                    details: list[str] = []
                    _field_diff(dst[name], src[name], "", details)
                    changes.append(("change", entry, details))
                continue
            old = next(
                (
                    n
                    for n in src[name].get("previous_names") or []
                    if n in dst and n not in src and n not in renamed
                ),
                None,
            )
            if old is None:
                changes.append(("gain", entry, []))
                continue
            renamed.add(old)
            details = []
            unrenamed = {k: v for k, v in src[name].items() if k not in ("name", "previous_names")}
            before = {k: v for k, v in dst[old].items() if k not in ("name", "previous_names")}
            _field_diff(before, unrenamed, "", details)
            changes.append(("rename", f"{label} '{old}' -> '{name}'", details))
        for name in dst:
            if name not in src and name not in renamed:
                changes.append(("lose", f"{label} '{name}'", []))
    return changes


def _as_data(path: Path) -> dict[str, Any] | None:
    """A catalog file as canonical data (validated when possible, so formatting never shows as a diff)."""
    if not path.exists():
        return None
    try:
        return load_catalog(path).model_dump(mode="json", exclude_none=True)
    except CatalogError:
        doc, _ = parse_yaml(path.read_text(encoding="utf-8"), str(path))
        return doc.data if isinstance(doc.data, dict) else None


# --------------------------------------------------------------------------------------------------
# git


def uncommitted_edits(path: Path) -> bool | None:
    """True if git reports edits (staged, unstaged or untracked) to `path`; None when not in a git repo."""
    try:
        result = subprocess.run(
            ["git", "status", "--porcelain", "--", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return bool(result.stdout.strip())


# --------------------------------------------------------------------------------------------------


def _missing_stack(stacks: Path, name: str, flag: str, source: str = "") -> str | None:
    """Why `name` is not a stack folder under `stacks` (naming the stacks that exist), or None if it is."""
    text = missing_stack(stacks, name, flag)
    if text and flag == "--to" and stacks.is_dir():
        text += (
            f". Promotion never creates a stack; to start one, copy a stack's folder "
            f"(cp -r {stacks / source} {stacks / name}), review its "
            "environment.yaml, then promote into it"
        )
    return text


def run(args: argparse.Namespace) -> int:
    stacks = Path(args.stacks_dir)
    src_dir, dst_dir = stacks / args.source, stacks / args.target
    src_file, dst_file = src_dir / CATALOG_FILE, dst_dir / CATALOG_FILE
    if args.source == args.target:
        raise CommandError("--from and --to name the same stack")
    missing = _missing_stack(stacks, args.source, "--from")
    missing = missing or _missing_stack(stacks, args.target, "--to", args.source)
    if missing:
        raise CommandError(missing)
    try:
        load_catalog(src_file)
    except CatalogError as err:
        raise CommandError(f"the source catalog is invalid, nothing promoted:\n{err}") from None

    changes = semantic_diff(_as_data(src_file), _as_data(dst_file))
    text_differs = not dst_file.exists() or dst_file.read_bytes() != src_file.read_bytes()

    print(f"promote {args.source} -> {args.target} ({dst_file})")
    if not changes:
        print("  no catalog changes" + (" (only comments or formatting differ)" if text_differs else ""))
    verbs = {
        "gain": f"{args.target} gains",
        "lose": f"{args.target} loses",
        "change": "changes",
        "rename": "renamed (previous_names: the same Metronome object, re-tagged)",
    }
    for action, entry, details in changes:
        sign = {"gain": "+", "lose": "-"}.get(action, "~")
        print(f"  {sign} {entry}: {verbs[action]}")
        for line in details:
            print(f"      {line}")
    counts = {a: sum(1 for c in changes if c[0] == a) for a in verbs}
    renames = f"{counts['rename']} to rename, " if counts["rename"] else ""
    print(
        f"summary: {counts['gain']} to gain, {counts['lose']} to lose, {renames}{counts['change']} to change"
    )

    if args.check:
        if text_differs:
            print(
                f"{args.target} lags {args.source}: run `{program()} promote --from {args.source} "
                f"--to {args.target}`",
                file=sys.stderr,
            )
            return EXIT_ATTENTION
        print(f"{args.target} is up to date with {args.source}")
        return EXIT_OK

    if not text_differs:
        print("nothing to promote")
        return EXIT_OK
    if dst_file.exists() and uncommitted_edits(dst_file):
        raise CommandError(
            f"{dst_file} has uncommitted edits; commit or discard them first (promotion would overwrite them)"
        )

    # The target's environment must still resolve against the promoted catalog (e.g. a contract
    # whose rate card the source dropped): check in a scratch copy before writing anything.
    with tempfile.TemporaryDirectory() as scratch:
        trial = Path(scratch) / args.target
        trial.mkdir()
        shutil.copyfile(src_file, trial / CATALOG_FILE)
        if (dst_dir / ENVIRONMENT_FILE).exists():
            shutil.copyfile(dst_dir / ENVIRONMENT_FILE, trial / ENVIRONMENT_FILE)
        try:
            load_stack(trial)
        except CatalogError as err:
            message = str(err).replace(str(trial), str(dst_dir))
            raise CommandError(
                f"{args.target}'s environment.yaml would not load after promotion; nothing written:\n"
                + message
            ) from None

    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src_file, dst_file)
    print(f"wrote {dst_file}; review and commit it (environment.yaml untouched)")
    return EXIT_OK
