"""Durable event store: customer state by key, feedback events, consent overrides, erasure tombstones.

SQLAlchemy 2 Core over SQLite (the default: one file, WAL so several server workers can read while
one writes) or PostgreSQL by URL. Every write returns only after COMMIT, so an acknowledged event
survives a crash. All workers read customer state from here by key (not from tables loaded into
process memory), which keeps fold-in, consent and erasure consistent across worker processes,
replicas and restarts, and keeps a worker's memory independent of the number of customers.

Customer state comes from three writers: `customer_base` holds what a prepared data set says
(consent, diet, recent purchases, lifecycle profile; `serving.publish`), `customer_overrides` what
the app said since (consent endpoint), `events` what happened since (feedback: purchases fold in).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
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
    Text,
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
from serving.state_cache import Listener, LocalBus, RedisBus, StateCache

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
)

# The data set's word on each customer, published from a prepared data directory (serving/publish.py);
# an override (above) wins over it. One row per customer, read by key.
customer_base = Table(
    "customer_base",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("consent_personalisation", Boolean, nullable=False),
    Column("consent_marketing", Boolean, nullable=False),
    Column("diet_exclusions", String(512)),
    Column("diet_preferences", String(512)),
    Column("recent_items", Text),  # JSON list of product ids bought in the data's last weeks
    Column("lifecycle", Text),  # JSON lifecycle profile (serving/profiles.py), NULL: no purchases
)
# Which data set customer_base holds (one row: the last publication).
publications = Table(
    "publications",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("customers", Integer, nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
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


@dataclass(frozen=True)
class CustomerState:
    """What serving needs to know about one customer beyond the model, read in one go per batch."""

    record: CustomerRecord | None = None  # the app's override (consent endpoint)
    erased: bool = False
    fresh_items: tuple[str, ...] = ()  # history items from events (purchases, add-to-cart), oldest first
    viewed: tuple[str, ...] = field(default=())
    base: CustomerRecord | None = None  # the published data set's consent and diet
    recent_items: tuple[str, ...] = ()  # bought in the published data's last weeks ("at home")
    lifecycle: str | None = None  # published lifecycle profile (JSON)


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

    Reads are cached per customer in a bounded LRU (serving/state_cache.py) and a key is dropped on
    every replica when that customer's state is written, so a products batch with nothing new costs
    no SQL query and an acknowledged event, consent change or erasure is seen by the next request of
    every worker. Which writes a worker hears of:
    - a cache bus (Redis pub/sub, `bus`): every replica's, per key;
    - without one, on a SQLite file: every process's, as `PRAGMA data_version` on a connection of our
      own (a few microseconds; it changes whenever another connection commits), which drops the
      whole cache;
    - without one on another database (PostgreSQL): none but its own, so nothing is cached and every
      call reads the store.
    """

    #: Customers kept in the read cache by default (RECSYS_STATE_CACHE_SIZE).
    CACHE_SIZE = 20_000

    def __init__(
        self,
        url: str,
        secret: bytes | None = None,
        timeout: float = 30.0,
        cache_size: int = CACHE_SIZE,
        bus: LocalBus | RedisBus | None = None,
    ):
        """Connects lazily: nothing touches the database until `connect()` or the first call.

        `secret`: erasure keys are HMACs under it (default: RECSYS_ERASURE_SECRET or its file).
        `timeout` (seconds) bounds how long the driver waits to connect, for a lock or a statement,
        so a stalled database frees the calling thread eventually (callers add their own deadline).
        `bus` carries cache invalidations between replicas (None: this process only).
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
        self.bus = bus if bus is not None else LocalBus()
        cached = url.startswith("sqlite") or not isinstance(self.bus, LocalBus)
        self.cache: StateCache[CustomerState] | None = StateCache(cache_size) if cached else None
        self._cache_version: int | None = None
        self._listeners: list[Listener] = []
        self._connect_hooks: list[Callable[[], object]] = []
        self._connected = False
        self.bus.start(self._dropped)

    def on_invalidate(self, listener: Listener) -> None:
        """Also tell `listener` which customers changed (None: possibly all), from any replica."""
        self._listeners.append(listener)

    def _dropped(self, ids: list[str] | None) -> None:
        if self.cache is not None:
            self.cache.drop(ids)
        for listener in self._listeners:
            listener(ids)

    def invalidate(self, ids: Iterable[str] | None) -> None:
        """After a commit: drop these customers' cached state here and on every replica."""
        ids = None if ids is None else sorted(set(ids))
        self._dropped(ids)
        self.bus.publish(ids)

    def on_connect(self, hook: Callable[[], object]) -> None:
        """Run `hook()` after every (re)connect and migration, e.g. to publish customer state into a
        database that was dropped and recreated; while it fails the store counts as not connected."""
        self._connect_hooks.append(hook)

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
        try:
            for hook in self._connect_hooks:
                hook()
        except BaseException:
            self._connected = False
            raise
        return version

    def published(self) -> str | None:
        """Digest of the data set whose customers `customer_base` holds (None: nothing published)."""
        self._ensure()
        with self.engine.connect() as conn:
            return conn.execute(select(publications.c.digest)).scalar()

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
        self.bus.close()
        self.engine.dispose()

    def _data_version(self) -> int | None:
        """Changes whenever another connection committed; None: no cheap change signal, don't cache."""
        with self._lock:
            if self._version_conn is None:
                return None
            return int(self._version_conn.execute("PRAGMA data_version").fetchone()[0])

    def _forget(self) -> None:
        """Drop the whole cache: the database failed or another process wrote (SQLite signal)."""
        if self.cache is not None:
            self.cache.drop(None)
        with self._lock:
            self._cache_version = None

    def _current_cache(self) -> StateCache[CustomerState] | None:
        """The cache when it is known current, else None (then read the store)."""
        cache = self.cache
        if cache is None or not self.bus.live:
            return None
        if isinstance(self.bus, LocalBus):  # SQLite without a bus: any commit anywhere drops it all
            version = self._data_version()
            if version is None:
                return None
            if version != self._cache_version:
                cache.drop(None)
                with self._lock:
                    self._cache_version = version
        return cache

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
        self.invalidate(e.customer_id for e in new)
        return len(new)

    def upsert_customer(self, record: CustomerRecord) -> None:
        self._ensure()
        values = {**record.__dict__, "updated_at": datetime.now(UTC)}
        with self.engine.begin() as conn:
            conn.execute(delete(customers).where(customers.c.customer_id == record.customer_id))
            conn.execute(insert(customers), [values])
        self.invalidate([record.customer_id])

    def delete_events(self, customer_id: str) -> int:
        self._ensure()
        with self.engine.begin() as conn:
            n = int(conn.execute(delete(events).where(events.c.customer_id == customer_id)).rowcount or 0)
        self.invalidate([customer_id])
        return n

    def erase(self, customer_id: str) -> tuple[int, bool]:
        """Delete the customer's events, override and published state and leave a tombstone; one
        transaction. Returns (events deleted, whether a profile (override or published) existed)."""
        self._ensure()
        with self.engine.begin() as conn:
            n_events = conn.execute(delete(events).where(events.c.customer_id == customer_id)).rowcount
            n_prof = conn.execute(delete(customers).where(customers.c.customer_id == customer_id)).rowcount
            n_base = conn.execute(
                delete(customer_base).where(customer_base.c.customer_id == customer_id)
            ).rowcount
            digest = self.id_hash(customer_id)
            conn.execute(delete(erasures).where(erasures.c.id_hash == digest))
            conn.execute(insert(erasures), [{"id_hash": digest, "erased_at": datetime.now(UTC)}])
        self.invalidate([customer_id])
        return int(n_events or 0), bool(n_prof or n_base)

    # ---- reads ----------------------------------------------------------------------------------
    def states(self, customer_ids: Iterable[str]) -> dict[str, CustomerState]:
        """State of every given customer (customers without any row get the empty state).

        From the cache when it is known current, else one round trip (UNION ALL of the four tables)
        for the customers not cached.
        """
        self._ensure()
        ids = sorted(set(customer_ids))
        if not ids:
            return {}
        cache = self._current_cache()
        if cache is None:
            return self._read_states(ids)
        generation = cache.generation()  # read BEFORE the query: a drop meanwhile keeps it uncached
        hits = cache.get_many(ids)
        if len(hits) == len(ids):
            return hits
        read = self._read_states([i for i in ids if i not in hits])
        cache.put(read, generation)
        return {**hits, **read}

    def cached_states(self, customer_ids: Iterable[str]) -> dict[str, CustomerState] | None:
        """Every customer's state from the cache, or None (not all cached, or cannot tell it is
        current). Never waits on the database: a SQLite `PRAGMA data_version` on a local file at
        most, so the event loop may call it."""
        if not self._connected:
            return None
        try:
            cache = self._current_cache()
        except sqlite3.Error:
            return None
        if cache is None:
            return None
        wanted = set(customer_ids)
        hits = cache.get_many(wanted)
        return hits if len(hits) == len(wanted) else None

    def _read_states(self, ids: list[str]) -> dict[str, CustomerState]:
        hashes = {self.id_hash(i): i for i in ids}
        with self.engine.connect() as conn:
            rows = conn.execute(self._state_query, {"ids": ids, "hashes": list(hashes)}).all()
        recs: dict[str, CustomerRecord] = {}
        base: dict[str, tuple[CustomerRecord, tuple[str, ...], str | None]] = {}
        erased: set[str] = set()
        fresh: dict[str, list[str]] = {}
        viewed: dict[str, list[str]] = {}
        for kind, key, a, b, c, d, e, f, _ in rows:
            if kind == "c":
                recs[key] = CustomerRecord(key, bool(int(a)), bool(int(b)), c, d)
            elif kind == "b":
                recent = tuple(json.loads(e)) if e else ()
                base[key] = (CustomerRecord(key, bool(int(a)), bool(int(b)), c, d), recent, f)
            elif kind == "x":
                erased.add(hashes[key])
            else:
                (fresh if a in HISTORY_EVENTS else viewed).setdefault(key, []).append(b)
        out = {}
        for i in ids:
            record, recent, lifecycle = base.get(i, (None, (), None))
            out[i] = CustomerState(
                recs.get(i),
                i in erased,
                tuple(fresh.get(i, ())),
                tuple(viewed.get(i, ())),
                record,
                recent,
                lifecycle,
            )
        return out

    @cached_property
    def _state_query(self):  # noqa: ANN202 - a compiled-once SQLAlchemy TextClause
        return text(
            """
            SELECT 'c' AS kind, customer_id AS key,
                   CAST(CAST(consent_personalisation AS INTEGER) AS VARCHAR(8)) AS a,
                   CAST(CAST(consent_marketing AS INTEGER) AS VARCHAR(8)) AS b,
                   diet_exclusions AS c, diet_preferences AS d,
                   CAST(NULL AS TEXT) AS e, CAST(NULL AS TEXT) AS f, 0 AS id
              FROM customer_overrides WHERE customer_id IN :ids
            UNION ALL
            SELECT 'b', customer_id,
                   CAST(CAST(consent_personalisation AS INTEGER) AS VARCHAR(8)),
                   CAST(CAST(consent_marketing AS INTEGER) AS VARCHAR(8)),
                   diet_exclusions, diet_preferences, recent_items, lifecycle, 0
              FROM customer_base WHERE customer_id IN :ids
            UNION ALL
            SELECT 'x', id_hash, NULL, NULL, NULL, NULL, NULL, NULL, 0 FROM erasures WHERE id_hash IN :hashes
            UNION ALL
            SELECT 'e', customer_id, event_type, item_id, NULL, NULL, NULL, NULL, id
              FROM events WHERE customer_id IN :ids AND item_id IS NOT NULL
            ORDER BY 9
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
