"""Event-store schema: created on first connect and migrated forward on every (re)connect.

Versioned and idempotent, run by the service itself: `migrate(engine)` is called before the first
store query and again after any store failure (a database dropped and recreated comes back empty).
Why not Alembic: the store has a handful of tables owned by one service, every worker must migrate
on its own at (re)connect without an operator step, and a new table needs no migration at all; a
numbered list of steps in one module covers that without a script directory, env.py and ini file.

- A new TABLE: define it on `serving.events.metadata` in your own module and import that module
  before the service starts; `create_all` (checkfirst) makes it on the next connect.
- A change to an EXISTING table: append a `Step(n + 1, "what", fn)` to `STEPS`; `fn(conn)` runs once
  per database, inside the migration transaction, and must be idempotent (IF NOT EXISTS).
A fresh database gets every table at its latest shape and is stamped with the latest version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, DateTime, Engine, Integer, MetaData, Table, inspect, select, text

logger = logging.getLogger("serving")


@dataclass(frozen=True)
class Step:
    version: int
    what: str
    apply: Callable[[Connection], None] | None  # None: the tables of the first release


def _event_ids(conn: Connection) -> None:
    if "event_id" not in {c["name"] for c in inspect(conn).get_columns("events")}:
        conn.execute(text("ALTER TABLE events ADD COLUMN event_id VARCHAR(64)"))
    conn.execute(
        text("CREATE UNIQUE INDEX IF NOT EXISTS uq_events_customer_event ON events (customer_id, event_id)")
    )


def _marketing_channels(conn: Connection) -> None:
    if not inspect(conn).has_table("customer_overrides"):  # create_all makes it at its latest shape
        return
    if "marketing_channels" not in {c["name"] for c in inspect(conn).get_columns("customer_overrides")}:
        conn.execute(text("ALTER TABLE customer_overrides ADD COLUMN marketing_channels VARCHAR(64)"))


STEPS: list[Step] = [
    Step(1, "events, customer_overrides, erasures", None),
    Step(2, "events.event_id: client event ids, stored once", _event_ids),
    Step(3, "customer_overrides.marketing_channels: consent per channel", _marketing_channels),
]


def schema_version_table(metadata: MetaData) -> Table:
    return Table(
        "schema_version",
        metadata,
        Column("version", Integer, primary_key=True),
        Column("applied_at", DateTime(timezone=True), nullable=False),
    )


def migrate(engine: Engine, metadata: MetaData) -> int:
    """Bring the database to the latest version; returns it. Safe to run from every worker at once."""
    versions = metadata.tables["schema_version"]
    latest = STEPS[-1].version
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # one migrating worker at a time, per database
            conn.execute(text("SELECT pg_advisory_xact_lock(7243001)"))
        tables = set(inspect(conn).get_table_names())
        if "schema_version" in tables:
            current = conn.execute(select(versions.c.version).order_by(versions.c.version.desc())).scalar()
            current = int(current or 0)
        else:  # a store from before versioning has the first release's tables; an empty one has none
            current = 1 if "events" in tables else 0
        if current == 0:
            metadata.create_all(conn)
        else:
            for step in STEPS:
                if step.version > current and step.apply is not None:
                    logger.info("event store: migrating to version %d (%s)", step.version, step.what)
                    step.apply(conn)
            metadata.create_all(conn)  # tables added since (checkfirst: existing ones untouched)
        if current < latest:
            conn.execute(versions.insert(), [{"version": latest, "applied_at": datetime.now(UTC)}])
    return latest
