"""SQLite state for the emulator: JSON documents plus a few index tables.

One table of documents `(kind, id, seq, parent, data, archived_at)` holds every object; `seq` gives a stable
creation order used as the list cursor. Uniqueness keys (ingest aliases, contract uniqueness keys...), custom
field keys, ingested events and the answers kept under Idempotency-Keys have tables of their own. Every
access goes through one re-entrant lock, and `tx()` groups several statements into one transaction so a
check-then-insert is atomic.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

# The well-known USD (cents) credit type every account has.
USD_CENTS_ID = "2714e483-4ff1-48e4-9e25-ac732e8f24f2"
USD_CENTS = {"id": USD_CENTS_ID, "name": "USD (cents)", "is_currency": True}

SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    parent TEXT,
    data TEXT NOT NULL,
    archived_at TEXT,
    UNIQUE (kind, id)
);
CREATE INDEX IF NOT EXISTS docs_kind_parent ON docs (kind, parent, seq);
CREATE TABLE IF NOT EXISTS unique_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE TABLE IF NOT EXISTS custom_field_keys (
    entity TEXT NOT NULL,
    key TEXT NOT NULL,
    enforce_uniqueness INTEGER NOT NULL,
    PRIMARY KEY (entity, key)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    data TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    stored_at REAL NOT NULL
);
"""

# Rows a listing reads from SQLite at a time: a page costs O(limit), not O(rows after the cursor).
CHUNK = 200

ARCHIVE_FILTERS = ("NOT_ARCHIVED", "ARCHIVED", "ALL")


def now_iso() -> str:
    """Current UTC time as RFC 3339 with milliseconds, the way Metronome prints timestamps."""
    return format_ts(datetime.now(timezone.utc))


def format_ts(value: datetime) -> str:
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def new_id() -> str:
    return str(uuid.uuid4())


class Store:
    def __init__(self, path: str = ":memory:") -> None:
        self.path = path
        # check_same_thread=False: uvicorn may serve from worker threads; the lock serialises access.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._depth = 0
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._seed()

    # -- transactions -------------------------------------------------------------------------------

    @contextmanager
    def tx(self) -> Iterator[Store]:
        """Hold the lock and run everything inside as one transaction (nested calls join the outer one)."""
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    def _seed(self) -> None:
        with self.tx():
            if self.get("credit_type", USD_CENTS_ID) is None:
                self.insert("credit_type", dict(USD_CENTS), id=USD_CENTS_ID)

    def reset(self) -> None:
        with self.tx():
            for table in ("docs", "unique_keys", "custom_field_keys", "events", "settings", "idempotency"):
                self._db.execute(f"DELETE FROM {table}")
            self._seed()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- documents ----------------------------------------------------------------------------------

    def insert(
        self, kind: str, data: dict[str, Any], *, id: str | None = None, parent: str | None = None
    ) -> dict:
        """Store a new document; `data["id"]` is set to the (generated) id."""
        data["id"] = id or data.get("id") or new_id()
        with self.tx():
            self._db.execute(
                "INSERT INTO docs (kind, id, parent, data, archived_at) VALUES (?, ?, ?, ?, ?)",
                (kind, data["id"], parent, json.dumps(data), data.get("archived_at")),
            )
        return data

    def get(self, kind: str, id: str) -> dict | None:
        with self.tx():
            row = self._db.execute("SELECT data FROM docs WHERE kind = ? AND id = ?", (kind, id)).fetchone()
        return json.loads(row[0]) if row else None

    def update(self, kind: str, data: dict[str, Any]) -> dict:
        """Replace a document's data (keeps its position in listings)."""
        with self.tx():
            self._db.execute(
                "UPDATE docs SET data = ?, archived_at = ? WHERE kind = ? AND id = ?",
                (json.dumps(data), data.get("archived_at"), kind, data["id"]),
            )
        return data

    def upsert(self, kind: str, data: dict[str, Any], *, parent: str | None = None) -> dict:
        with self.tx():
            if self.get(kind, data["id"]) is None:
                return self.insert(kind, data, parent=parent)
            return self.update(kind, data)

    def archive(self, kind: str, id: str, when: str | None = None) -> dict | None:
        with self.tx():
            doc = self.get(kind, id)
            if doc is not None:
                doc["archived_at"] = when or now_iso()
                self.update(kind, doc)
        return doc

    def iter_docs(
        self, kind: str, *, parent: str | None = None, archive_filter: str = "ALL", after_seq: int = 0
    ) -> Iterator[tuple[int, dict]]:
        """Documents in creation order after `after_seq`, read CHUNK rows at a time (a caller that
        stops early has read only what it used)."""
        sql = "SELECT seq, data FROM docs WHERE kind = ? AND seq > ?"
        filters: list[Any] = []
        if parent is not None:
            sql += " AND parent = ?"
            filters.append(parent)
        if archive_filter == "NOT_ARCHIVED":
            sql += " AND archived_at IS NULL"
        elif archive_filter == "ARCHIVED":
            sql += " AND archived_at IS NOT NULL"
        sql += " ORDER BY seq LIMIT ?"
        while True:
            with self.tx():
                rows = self._db.execute(sql, [kind, after_seq, *filters, CHUNK]).fetchall()
            for seq, data in rows:
                yield seq, json.loads(data)
            if len(rows) < CHUNK:
                return
            after_seq = rows[-1][0]

    def all(self, kind: str, **kwargs: Any) -> list[dict]:
        return [doc for _, doc in self.iter_docs(kind, **kwargs)]

    def list_page(
        self,
        kind: str,
        *,
        cursor: str | None,
        limit: int,
        archive_filter: str = "NOT_ARCHIVED",
        parent: str | None = None,
        where: Callable[[dict], bool] | None = None,
    ) -> tuple[list[dict], str | None]:
        """One page in creation order; the cursor is the `seq` of the last item returned (None at the end)."""
        after = int(cursor) if cursor else 0
        page: list[dict] = []
        last_seq = after
        for seq, doc in self.iter_docs(kind, parent=parent, archive_filter=archive_filter, after_seq=after):
            if where is not None and not where(doc):
                continue
            if len(page) == limit:
                return page, str(last_seq)
            page.append(doc)
            last_seq = seq
        return page, None

    # -- uniqueness keys ----------------------------------------------------------------------------

    def key_owner(self, scope: str, key: str) -> str | None:
        with self.tx():
            row = self._db.execute(
                "SELECT owner_id FROM unique_keys WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
        return row[0] if row else None

    def claim_key(self, scope: str, key: str, owner_id: str) -> None:
        with self.tx():
            self._db.execute(
                "INSERT OR REPLACE INTO unique_keys (scope, key, owner_id) VALUES (?, ?, ?)",
                (scope, key, owner_id),
            )

    def release_key(self, scope: str, key: str) -> None:
        with self.tx():
            self._db.execute("DELETE FROM unique_keys WHERE scope = ? AND key = ?", (scope, key))

    # -- custom field keys --------------------------------------------------------------------------

    def add_custom_field_key(self, entity: str, key: str, enforce_uniqueness: bool) -> bool:
        """Register a key; False if it was already registered."""
        with self.tx():
            if self.custom_field_key(entity, key) is not None:
                return False
            self._db.execute(
                "INSERT INTO custom_field_keys (entity, key, enforce_uniqueness) VALUES (?, ?, ?)",
                (entity, key, int(enforce_uniqueness)),
            )
        return True

    def custom_field_key(self, entity: str, key: str) -> dict | None:
        with self.tx():
            row = self._db.execute(
                "SELECT enforce_uniqueness FROM custom_field_keys WHERE entity = ? AND key = ?", (entity, key)
            ).fetchone()
        return {"entity": entity, "key": key, "enforce_uniqueness": bool(row[0])} if row else None

    def remove_custom_field_key(self, entity: str, key: str) -> bool:
        with self.tx():
            cur = self._db.execute(
                "DELETE FROM custom_field_keys WHERE entity = ? AND key = ?", (entity, key)
            )
        return cur.rowcount > 0

    def custom_field_keys(self) -> list[dict]:
        with self.tx():
            rows = self._db.execute(
                "SELECT entity, key, enforce_uniqueness FROM custom_field_keys ORDER BY entity, key"
            ).fetchall()
        return [{"entity": e, "key": k, "enforce_uniqueness": bool(u)} for e, k, u in rows]

    # -- events -------------------------------------------------------------------------------------

    def add_event(self, event: dict[str, Any]) -> bool:
        """Store an ingested event; False if its transaction_id was already seen (a duplicate). Its
        customer_id (id or ingest alias) is kept as sent: readers resolve it to a customer."""
        with self.tx():
            cur = self._db.execute(
                "INSERT OR IGNORE INTO events (transaction_id, customer_id, data, received_at)"
                " VALUES (?, ?, ?, ?)",
                (event["transaction_id"], event["customer_id"], json.dumps(event), now_iso()),
            )
        return cur.rowcount > 0

    def events(self, transaction_ids: list[str] | None = None) -> list[dict]:
        with self.tx():
            if transaction_ids is None:
                rows = self._db.execute("SELECT data, received_at FROM events ORDER BY seq").fetchall()
            else:
                marks = ",".join("?" * len(transaction_ids))
                rows = self._db.execute(
                    f"SELECT data, received_at FROM events WHERE transaction_id IN ({marks}) ORDER BY seq",
                    transaction_ids,
                ).fetchall()
        return [{**json.loads(d), "_received_at": r} for d, r in rows]

    def event_count(self) -> int:
        with self.tx():
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    # -- settings -----------------------------------------------------------------------------------

    def setting(self, key: str, default: Any = None) -> Any:
        with self.tx():
            row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_setting(self, key: str, value: Any) -> None:
        with self.tx():
            self._db.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    # -- Idempotency-Key answers ----------------------------------------------------------------------

    def idempotent_answer(self, key: str, newer_than: float) -> tuple[str, int, bytes] | None:
        """(request fingerprint, status, body) kept for `key`, if stored after `newer_than`."""
        with self.tx():
            row = self._db.execute(
                "SELECT fingerprint, status, body, stored_at FROM idempotency WHERE key = ?", (key,)
            ).fetchone()
        if row is None or row[3] <= newer_than:
            return None
        return row[0], int(row[1]), bytes(row[2])

    def keep_idempotent_answer(self, key: str, fingerprint: str, status: int, body: bytes, at: float) -> None:
        with self.tx():
            self._db.execute(
                "INSERT OR REPLACE INTO idempotency (key, fingerprint, status, body, stored_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (key, fingerprint, status, body, at),
            )
