"""What a `metronome-iac reconcile` found (its windows), and its record `stacks/<stack>/reconcile.json`.

`reconcile` writes the record after every check it could make (passed or not); CI commits it. The program
reads it for the `StripeIntegration` go-live condition (`stripe.require_reconciled_days`), whose provider
judges it (`providers/stripe_gate.py`, `ReconcileRecord` is its shape). Standard library only: the
program imports this module.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

RECORD_FILE = "reconcile.json"
FAILING_KEPT = 20  # failing windows kept in the record (the count says how many there were)


STEPS = {"day": timedelta(days=1), "hour": timedelta(hours=1)}
FLOAT_NOISE = 1e-9  # sums of decimals differ in the last bits between two systems


# ---------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Pair:
    """One customer and one metric, on both sides."""

    customer: str  # catalog name
    customer_id: str  # Metronome id
    stripe_customer_id: str
    metric: str  # catalog name
    metric_id: str  # Metronome id
    meter: str  # Stripe meter id (the metric's stripe_meter)


@dataclass
class Window:
    pair: Pair
    start: datetime
    end: datetime
    stripe: float
    metronome: float
    cause: str | None = None  # what explains the difference (short, for the table and the record)
    fix: str | None = None  # what to do about it
    ok: bool = True

    @property
    def difference(self) -> float:
        return self.metronome - self.stripe

    def label(self) -> str:
        if self.end - self.start == STEPS["day"]:
            return f"{self.start:%Y-%m-%d}"
        return f"{self.start:%Y-%m-%dT%H:%M}Z"


@dataclass
class Report:
    stack: str
    start: datetime
    end: datetime
    window: str
    tolerance: float
    windows: list[Window] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said once, after the table

    @property
    def failing(self) -> list[Window]:
        return [w for w in self.windows if not w.ok]

    @property
    def passed(self) -> bool:
        return bool(self.windows) and not self.failing

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "starting_on": rfc3339(self.start),
            "ending_before": rfc3339(self.end),
            "window": self.window,
            "tolerance": self.tolerance,
            "passed": self.passed,
            "checked": len(self.windows),
            "failing_count": len(self.failing),
            "windows": [window_json(w) for w in self.windows],
            "notes": self.notes,
        }

    def record(self, now: datetime) -> dict[str, Any]:
        """What the go-live condition reads (providers/stripe_gate.py, ReconcileRecord)."""
        out = self.as_json()
        del out["windows"], out["notes"]
        return {**out, "ran_at": rfc3339(now), "failing": [window_json(w) for w in self.failing]}


def window_json(w: Window) -> dict[str, Any]:
    out = {
        "customer": w.pair.customer,
        "metric": w.pair.metric,
        "window": w.label(),
        "stripe": w.stripe,
        "metronome": w.metronome,
        "difference": w.difference,
        "ok": w.ok,
    }
    if w.cause:
        out.update(cause=w.cause, fix=w.fix)
    return out


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def within(stripe: float, metronome: float, tolerance: float) -> bool:
    return abs(metronome - stripe) <= tolerance * max(abs(stripe), abs(metronome)) + FLOAT_NOISE


# ---------------------------------------------------------------------------------------------- the file


def load_record(stack_dir: Path) -> dict[str, Any] | None:
    """The last reconcile's record, or None when the stack has none. Raises ValueError naming the file
    when it cannot be read as one (a hand edit, a merge conflict): preview stops there."""
    path = stack_dir / RECORD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"{path}: not a reconcile record ({exc}); to fix: run `metronome-iac reconcile --stack "
            f"{stack_dir.name} ...` again (it rewrites the file) or delete it"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a reconcile record (not a JSON object); to fix: run reconcile again")
    return data


def write_record(stack_dir: Path, record: dict[str, Any]) -> Path:
    """Replace the record atomically (a crash leaves the old one, never half a file)."""
    path = stack_dir / RECORD_FILE
    kept = {**record, "failing": record.get("failing", [])[:FAILING_KEPT]}
    with tempfile.NamedTemporaryFile(
        "w", dir=stack_dir, prefix=f".{RECORD_FILE}.", delete=False, encoding="utf-8"
    ) as tmp:
        json.dump(kept, tmp, indent=2, sort_keys=True)
        tmp.write("\n")
    os.replace(tmp.name, path)
    return path
