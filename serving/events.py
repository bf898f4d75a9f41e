"""Durable event store: feedback events, consent/profile overrides and erasure tombstones.

SQLAlchemy 2 Core over SQLite (the default: one file, WAL so several server workers can read while
one writes) or PostgreSQL by URL. Every write returns only after COMMIT, so an acknowledged event
survives a crash. All workers read customer state from here (not from process memory), which is what
keeps fold-in, consent and erasure consistent across worker processes and restarts.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from recsys.data.erasure import erasure_key, load_secret
from serving.erasure_secret import claim_secret
from serving.migrations import migrate, schema_version_table

metadata = MetaData()

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False, index=True),
    Column("event_type", String(32), nullable=False),
    Column("item_id", String(128)),
    Column("quantity", Float, nullable=False, default=1.0),
    Column("offer_id", String(128)),
    Column("product_group", String(256)),
    Column("recommendation_id", String(64)),
    Column("store", String(128)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # client-supplied id: a retried request stores its events once (migration step 2)
    Column("event_id", String(64)),
    Index("uq_events_customer_event", "customer_id", "event_id", unique=True),
)

customers = Table(
    "customer_overrides",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("consent_personalisation", Boolean, nullable=False),
    Column("consent_marketing", Boolean, nullable=False),
    Column("diet_exclusions", String(512)),
    Column("diet_preferences", String(512)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # channels offers may use, comma separated; NULL = every channel under consent_marketing (step 3)
    Column("marketing_channels", String(64)),
)

# Only a keyed hash of the erased id is kept (recsys.data.erasure): enough to hide the customer's rows
# in an older model until the next retraining, without keeping the id itself.
erasures = Table(
    "erasures",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False),
)
# Unkeyed SHA-256 rows of stores written before keyed hashes (moved here once, re-keyed when matched).
erasures_legacy = Table(
    "erasures_legacy",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False),
)
# Fingerprint of the erasure secret the keys are made with; a process with another secret refuses.
erasure_secret = Table("erasure_secret", metadata, Column("fingerprint", String(64), primary_key=True))

schema_version_table(metadata)

#: Events that say "this customer has this product now": they count as history for fold-in.
HISTORY_EVENTS = ("purchase", "add_to_cart")


@dataclass(frozen=True)
class CustomerRecord:
    customer_id: str
    consent_personalisation: bool
    consent_marketing: bool
    diet_exclusions: str | None = None
    diet_preferences: str | None = None
    marketing_channels: str | None = None  # None: the marketing flag covers every channel


@dataclass(frozen=True)
class CustomerState:
    """What serving needs to know about one customer beyond the model, read in one go per batch."""

    record: CustomerRecord | None = None
    erased: bool = False
    fresh_items: tuple[str, ...] = ()  # history items from events (purchases, add-to-cart), oldest first
    viewed: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class NewEvent:
    customer_id: str
    event_type: str
    item_id: str | None = None
    quantity: float = 1.0
    offer_id: str | None = None
    product_group: str | None = None
    recommendation_id: str | None = None
    store: str | None = None
    event_id: str | None = None


class EventStore:
    """Thread-safe (an Engine pools connections); one instance per server worker.

    Reads are cached per customer in process memory and the whole cache is dropped as soon as the
    database changed, by any process: for a SQLite file that is `PRAGMA data_version` on a connection
    of our own (a few microseconds; it changes whenever another connection - another worker, or our
    own pool - commits). So a products batch with nothing new costs no SQL query at all, and an
    acknowledged event, consent change or erasure is seen by the next request of every worker.
    Other databases (PostgreSQL) are read on every call.
    """

    #: Customers kept in the read cache (all of them are dropped on any write anyway).
    CACHE_SIZE = 200_000

    def __init__(self, url: str, secret: bytes | None = None, timeout: float = 30.0):
        """Connects lazily: nothing touches the database until `connect()` or the first call.

        `secret`: erasure keys are HMACs under it (default: RECSYS_ERASURE_SECRET or its file).
        `timeout` (seconds) bounds how long the driver waits to connect, for a lock or a statement,
        so a stalled database frees the calling thread eventually (callers add their own deadline).
        """
        self.url = url
        #: erasure keys are HMACs under this secret (serving/erasure_secret.py checks it at start)
        self.secret = secret if secret is not None else load_secret(url)
        self._version_conn: sqlite3.Connection | None = None
        if url.startswith("sqlite"):
            args = {"check_same_thread": False, "timeout": timeout}
            self.engine: Engine = create_engine(url, connect_args=args)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(
                url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=_pg_timeouts(timeout)
            )
        self._lock = threading.Lock()
        self._cache: dict[str, CustomerState] = {}
        self._cache_version: int | None = None
        self._connected = False

    def connect(self) -> int:
        """Create or migrate the schema (idempotent); returns its version. Every call does this first
        when needed; after a failure `stale()` makes the next call do it again."""
        version = migrate(self.engine, metadata)
        claim_secret(self.engine, self.secret)  # refuses a store keyed with another erasure secret
        self._connected = True
        database = self.engine.url.database
        with self._lock:
            sqlite_file = self.engine.dialect.name == "sqlite" and database and database != ":memory:"
            if self._version_conn is None and sqlite_file:
                self._version_conn = sqlite3.connect(
                    database, check_same_thread=False, isolation_level=None, timeout=30
                )
        self._forget()
        return version

    def stale(self) -> None:
        """The database failed: re-check the schema (it may have been dropped) on the next call."""
        self._connected = False
        self._forget()

    def _ensure(self) -> None:
        if not self._connected:
            self.connect()

    def id_hash(self, customer_id: str) -> str:
        """The key stored for an erased customer; batch jobs match it the same way (training/privacy.py)."""
        return erasure_key(customer_id, self.secret)

    def close(self) -> None:
        if self._version_conn is not None:
            with self._lock:
                self._version_conn.close()
                self._version_conn = None
        self.engine.dispose()

    def _data_version(self) -> int | None:
        """Changes whenever another connection committed; None: no cheap change signal, don't cache."""
        with self._lock:
            if self._version_conn is None:
                return None
            return int(self._version_conn.execute("PRAGMA data_version").fetchone()[0])

    def _forget(self) -> None:
        with self._lock:
            self._cache.clear()
            self._cache_version = None

    def ping(self) -> bool:
        self._ensure()
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1

    # ---- writes (each returns after COMMIT) -----------------------------------------------------
    def add_events(self, new: Sequence[NewEvent]) -> int:
        """Store events; one with a (customer, event id) already stored is skipped, not stored twice.

        Returns how many are stored now (new or from an earlier attempt), so a retry answers as the
        first attempt did.
        """
        self._ensure()
        if not new:
            return 0
        now = datetime.now(UTC)
        rows = {}
        for e in new:  # the same id twice in one request: the first one counts
            key = (e.customer_id, e.event_id) if e.event_id is not None else id(e)
            rows.setdefault(key, {**e.__dict__, "created_at": now})
        dialect = {"sqlite": sqlite_insert, "postgresql": pg_insert}.get(self.engine.dialect.name)
        query = insert(events) if dialect is None else dialect(events).on_conflict_do_nothing()
        with self.engine.begin() as conn:
            conn.execute(query, list(rows.values()))
        self._forget()
        return len(new)

    def upsert_customer(self, record: CustomerRecord) -> None:
        self._ensure()
        values = {**record.__dict__, "updated_at": datetime.now(UTC)}
        with self.engine.begin() as conn:
            conn.execute(delete(customers).where(customers.c.customer_id == record.customer_id))
            conn.execute(insert(customers), [values])
        self._forget()

    def delete_events(self, customer_id: str) -> int:
        self._ensure()
        with self.engine.begin() as conn:
            n = int(conn.execute(delete(events).where(events.c.customer_id == customer_id)).rowcount or 0)
        self._forget()
        return n

    def erase(self, customer_id: str) -> tuple[int, bool]:
        """Delete the customer's events and profile and leave a tombstone; one transaction."""
        self._ensure()
        with self.engine.begin() as conn:
            n_events = conn.execute(delete(events).where(events.c.customer_id == customer_id)).rowcount
            n_prof = conn.execute(delete(customers).where(customers.c.customer_id == customer_id)).rowcount
            digest = self.id_hash(customer_id)
            conn.execute(delete(erasures).where(erasures.c.id_hash == digest))
            conn.execute(insert(erasures), [{"id_hash": digest, "erased_at": datetime.now(UTC)}])
        self._forget()
        return int(n_events or 0), bool(n_prof)

    # ---- reads ----------------------------------------------------------------------------------
    def states(self, customer_ids: Iterable[str]) -> dict[str, CustomerState]:
        """State of every given customer (customers without any row get the empty state).

        From the cache when the database has not changed since it was filled, else one round trip
        (UNION ALL of the three tables) for the customers not cached.
        """
        self._ensure()
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        version = self._data_version()  # read BEFORE the query: a later commit can only drop the cache
        if version is None:
            return self._read_states(ids)
        with self._lock:
            if version != self._cache_version:
                self._cache.clear()
                self._cache_version = version
            hits = {i: self._cache[i] for i in ids if i in self._cache}
        if len(hits) == len(ids):
            return hits
        read = self._read_states([i for i in ids if i not in hits])
        with self._lock:
            if self._cache_version == version:  # nothing committed meanwhile that we know of
                if len(self._cache) + len(read) > self.CACHE_SIZE:
                    self._cache.clear()
                self._cache.update(read)
        return {**hits, **read}

    def cached_states(self, customer_ids: Iterable[str]) -> dict[str, CustomerState] | None:
        """Every customer's state from the cache, or None (not all cached, or cannot tell it is
        current). Never waits on the database: a SQLite `PRAGMA data_version` on a local file at
        most, so the event loop may call it."""
        if not self._connected:
            return None
        try:
            version = self._data_version()
        except sqlite3.Error:
            return None
        if version is None:
            return None
        with self._lock:
            if version != self._cache_version:
                return None
            try:
                return {i: self._cache[i] for i in set(customer_ids)}
            except KeyError:
                return None

    def _read_states(self, ids: list[str]) -> dict[str, CustomerState]:
        hashes = {self.id_hash(i): i for i in ids}
        with self.engine.connect() as conn:
            rows = conn.execute(self._state_query, {"ids": ids, "hashes": list(hashes)}).all()
        recs: dict[str, CustomerRecord] = {}
        erased: set[str] = set()
        fresh: dict[str, list[str]] = {}
        viewed: dict[str, list[str]] = {}
        for kind, key, a, b, c, d, e, _ in rows:
            if kind == "c":
                recs[key] = CustomerRecord(key, bool(int(a)), bool(int(b)), c, d, e)
            elif kind == "x":
                erased.add(hashes[key])
            else:
                (fresh if a in HISTORY_EVENTS else viewed).setdefault(key, []).append(b)
        return {
            i: CustomerState(recs.get(i), i in erased, tuple(fresh.get(i, ())), tuple(viewed.get(i, ())))
            for i in ids
        }

    @cached_property
    def _state_query(self):  # noqa: ANN202 - a compiled-once SQLAlchemy TextClause
        return text(
            """
            SELECT 'c' AS kind, customer_id AS key,
                   CAST(CAST(consent_personalisation AS INTEGER) AS VARCHAR(8)) AS a,
                   CAST(CAST(consent_marketing AS INTEGER) AS VARCHAR(8)) AS b,
                   diet_exclusions AS c, diet_preferences AS d, marketing_channels AS e, 0 AS id
              FROM customer_overrides WHERE customer_id IN :ids
            UNION ALL
            SELECT 'x', id_hash, NULL, NULL, NULL, NULL, NULL, 0 FROM erasures WHERE id_hash IN :hashes
            UNION ALL
            SELECT 'e', customer_id, event_type, item_id, NULL, NULL, NULL, id
              FROM events WHERE customer_id IN :ids AND item_id IS NOT NULL
            ORDER BY 8
            """
        ).bindparams(bindparam("ids", expanding=True), bindparam("hashes", expanding=True))

    def count_events(self, customer_id: str | None = None) -> int:
        self._ensure()
        query = select(func.count()).select_from(events)
        if customer_id is not None:
            query = query.where(events.c.customer_id == customer_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _pg_timeouts(timeout: float) -> dict[str, object]:
    """libpq settings: give up connecting, waiting for a lock or a statement, and on a silent peer."""
    ms = max(int(timeout * 1000), 1)
    return {
        "connect_timeout": max(int(round(timeout)), 2),  # libpq's minimum is 2 s
        "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 2,
        "tcp_user_timeout": ms,
    }


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API objects
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # fsync at every commit: an acknowledged event survives power loss
    cur.close()
