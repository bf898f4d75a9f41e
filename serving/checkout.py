"""Benefits at checkout: the customer's planned discounts applied to a finished basket, settled once.

`POST /v1/checkout` (customer, store, lines of product/quantity/price, idempotency key) answers the
benefits that apply now and records them as redemptions, exactly once:

- which offers: the discount plan's answer for the customer (serving/discounts.py: erasure, marketing
  and personalisation consent, the live diet, all as /v1/discounts decides them);
- which lines: a line gets a planned offer's discount when its product is in the offer's product group
  (`recsys.offers.groups.product_groups`, the planner's grouping) AND the product itself passes the
  customer's live diet (fail-closed: an unknown attribute forbids, as for every list). Products the
  catalog does not know get no benefit (tills sell them; they are not an error);
- amount = discount_level x price x quantity, rounded to cents;
- once per offer: a planned offer (plan version, customer, product group) is redeemed at most once,
  whatever the key (a unique constraint on the redemption table);
- inside the budget: redemptions of a plan version never sum above the plan's budget; an offer that
  no longer fits is left out with the reason.

Idempotency: the first checkout under a key stores its answer (the response body) with a digest of
the request; the same key and request gives back exactly those bytes and records nothing new; the
same key with another request is a 409. Writes are serialised per database (SQLite: BEGIN IMMEDIATE;
PostgreSQL: a transaction advisory lock), so concurrent replays, budget and once-per-offer checks
cannot race.

Tables (on `serving.events.metadata`, created with the event store's other tables): `checkouts`
(one row per idempotency key) and `redemptions` (one row per applied benefit), read by training
(`training.offers.live_tables`) so the next offer-model fit sees which planned offers were redeemed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic_core import to_json
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from serving.errors import ApiError
from serving.events import metadata

checkouts = Table(
    "checkouts",
    metadata,
    Column("idempotency_key", String(128), primary_key=True),
    Column("request_digest", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False, index=True),
    Column("response", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

redemptions = Table(
    "redemptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(128), nullable=False, index=True),
    Column("plan_version", String(256), nullable=False),
    Column("plan_as_of", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False, index=True),
    Column("product_group", String(256), nullable=False),
    Column("discount_level", Float, nullable=False),
    Column("amount", Float, nullable=False),
    Column("store", String(128)),
    Column("redeemed_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("plan_version", "customer_id", "product_group", name="uq_redemption_once"),
)


@dataclass(frozen=True)
class Line:
    product_id: str
    quantity: float
    price: float


@dataclass(frozen=True)
class Benefit:
    line: int  # position of the basket line (0-based)
    product_id: str
    product_group: str
    discount_level: float
    amount: float


def request_digest(customer_id: str, store: str | None, lines: list[Line]) -> str:
    """What makes two checkouts "the same": customer, store and the lines in order."""
    canon = json.dumps(
        [customer_id, store, [[ln.product_id, ln.quantity, ln.price] for ln in lines]], separators=(",", ":")
    )
    return hashlib.sha256(canon.encode()).hexdigest()


def match_benefits(
    offers: list[dict[str, Any]],
    lines: list[Line],
    groups: dict[str, str],
    allowed: dict[str, bool],
) -> list[Benefit]:
    """Each offer's discount on the lines of its product group whose product passes the diet
    (`allowed`: product id -> passes; a product missing from it gets nothing)."""
    level = {str(o["product_group"]): float(o["discount_level"]) for o in offers}
    out = []
    for i, ln in enumerate(lines):
        group = groups.get(ln.product_id)
        if group is None or group not in level or not allowed.get(ln.product_id, False):
            continue
        amount = round(level[group] * ln.price * ln.quantity, 2)
        if amount > 0:
            out.append(Benefit(i, ln.product_id, group, level[group], amount))
    return out


def within_limits(
    benefits: list[Benefit], redeemed_groups: set[str], spent: float, budget: float
) -> tuple[list[Benefit], list[str]]:
    """Drop offers already redeemed and offers the remaining budget cannot pay (whole offers, in line
    order); the notes say what was left out and why."""
    by_group: dict[str, list[Benefit]] = {}
    for b in benefits:
        by_group.setdefault(b.product_group, []).append(b)
    kept: list[Benefit] = []
    notes = []
    for group, items in by_group.items():
        cost = round(sum(b.amount for b in items), 2)
        if group in redeemed_groups:
            notes.append(f"{group}: this offer was already redeemed")
        elif spent + cost > budget + 1e-9:
            notes.append(f"{group}: the plan's budget is spent")
        else:
            kept.extend(items)
            spent += cost
    return sorted(kept, key=lambda b: b.line), notes


logger = logging.getLogger("serving")


class CheckoutLedger:
    """The checkout and redemption tables; one per server worker (thread-safe through the pool)."""

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(self.engine, "connect", _sqlite_autocommit)
            event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
        try:  # normally made by the event store's migration; a store that is down makes them later
            metadata.create_all(self.engine, tables=[checkouts, redemptions])
        except SQLAlchemyError as exc:
            logger.warning("checkout tables not checked (event store unavailable: %s)", type(exc).__name__)

    def close(self) -> None:
        self.engine.dispose()

    def groups(self, rt: Any) -> dict[str, str]:
        """product id -> product group of a runtime's catalog (built once per runtime version)."""
        cached = getattr(self, "_groups", None)
        if cached is None or cached[0] is not rt:
            from recsys.offers.groups import product_groups

            series = product_groups(rt.items_table)
            cached = self._groups = (rt, dict(zip(series.index.astype(str), series.astype(str), strict=True)))
        return cached[1]

    def stored(self, key: str, digest: str) -> bytes | None:
        """The stored answer for a key (None: a new key); a 409 when the key was used for another
        checkout."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(checkouts.c.request_digest, checkouts.c.response).where(
                    checkouts.c.idempotency_key == key
                )
            ).first()
        return None if row is None else _replay(row, digest, key)

    def settle(self, key: str, digest: str, customer_id: str, store: str | None, plan: Any, compose) -> bytes:
        """Record a new checkout exactly once and return its answer. `compose(redeemed_groups, spent)`
        returns (benefits, body dict) given what was redeemed before under this plan version."""
        version, budget = plan.version, float(plan.artifact.meta["budget"])
        for _ in range(3):  # a concurrent writer of the same key (or offer) wins: read its answer
            try:
                with self.engine.begin() as conn:
                    self._lock(conn, version)
                    row = conn.execute(
                        select(checkouts.c.request_digest, checkouts.c.response).where(
                            checkouts.c.idempotency_key == key
                        )
                    ).first()
                    if row is not None:
                        return _replay(row, digest, key)
                    done = conn.execute(
                        select(redemptions.c.product_group).where(
                            (redemptions.c.plan_version == version)
                            & (redemptions.c.customer_id == customer_id)
                        )
                    )
                    redeemed = {str(g) for (g,) in done}
                    spent = conn.execute(
                        select(func.coalesce(func.sum(redemptions.c.amount), 0.0)).where(
                            redemptions.c.plan_version == version
                        )
                    ).scalar_one()
                    benefits, body = compose(redeemed, float(spent), budget)
                    payload = to_json(body)
                    now = datetime.now(UTC)
                    conn.execute(
                        insert(checkouts),
                        [
                            {
                                "idempotency_key": key,
                                "request_digest": digest,
                                "customer_id": customer_id,
                                "response": payload.decode(),
                                "created_at": now,
                            }
                        ],
                    )
                    rows = _redemption_rows(benefits, key, plan, customer_id, store, now)
                    if rows:
                        conn.execute(insert(redemptions), rows)
                return payload
            except IntegrityError:
                continue
        raise ApiError(409, f"idempotency key {key!r}: concurrent checkouts kept conflicting; retry")

    def erase(self, customer_id: str) -> int:
        """Right to erasure: the customer's checkouts and redemptions go."""
        with self.engine.begin() as conn:
            n = conn.execute(delete(redemptions).where(redemptions.c.customer_id == customer_id)).rowcount
            conn.execute(delete(checkouts).where(checkouts.c.customer_id == customer_id))
        return int(n or 0)

    def count(self, key: str | None = None) -> int:
        query = select(func.count()).select_from(redemptions)
        if key is not None:
            query = query.where(redemptions.c.idempotency_key == key)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def _lock(self, conn, version: str) -> None:  # noqa: ANN001 - a SQLAlchemy Connection
        """Serialise checkouts of one plan version (SQLite already holds the write lock)."""
        if self.engine.dialect.name == "postgresql":
            key = int.from_bytes(hashlib.sha256(version.encode()).digest()[:8], "big", signed=True)
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def _replay(row: Any, digest: str, key: str) -> bytes:
    if row[0] != digest:
        raise ApiError(409, f"idempotency key {key!r} was used for a different checkout")
    return str(row[1]).encode()


def _redemption_rows(benefits, key, plan, customer_id, store, now) -> list[dict[str, Any]]:  # noqa: ANN001
    per_group: dict[str, dict[str, Any]] = {}
    for b in benefits:
        row = per_group.setdefault(
            b.product_group,
            {
                "idempotency_key": key,
                "plan_version": plan.version,
                "plan_as_of": plan.as_of,
                "customer_id": customer_id,
                "product_group": b.product_group,
                "discount_level": b.discount_level,
                "amount": 0.0,
                "store": store,
                "redeemed_at": now,
            },
        )
        row["amount"] = round(row["amount"] + b.amount, 2)
    return list(per_group.values())


def _sqlite_autocommit(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API objects
    """Let SQLAlchemy's BEGIN IMMEDIATE start the transaction (takes the write lock up front, so a
    read-then-write transaction never fails on a snapshot another writer moved)."""
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()


def diet_allowed(rt: Any, profile: Any, product_ids: list[str]) -> dict[str, bool]:
    """product id -> passes the profile's hard exclusions (unknown products: False)."""
    idx = rt.item_index(product_ids)
    ok = rt.engine.allowed(profile) if profile.exclusions else np.ones(rt.n_items, dtype=bool)
    return {p: bool(i >= 0 and ok[i]) for p, i in zip(product_ids, idx.tolist(), strict=True)}


def settle_checkout(
    ledger: CheckoutLedger, plan: Any, rt: Any, customer: Any, erased: bool, req: Any
) -> bytes:
    """The checkout answer (a `CheckoutResponse` body) for a request, recorded once: the stored
    answer for a replayed key, else the benefits that apply now, settled in one transaction."""
    lines = [Line(ln.product_id, float(ln.quantity), float(ln.price)) for ln in req.lines]
    digest = request_digest(req.customer_id, req.store, lines)
    hit = ledger.stored(req.idempotency_key, digest)
    if hit is not None:
        return hit
    answer = plan.answer(customer, erased, len(plan.offers.get(customer.customer_id, ())))
    ids = sorted({ln.product_id for ln in lines})
    found = match_benefits(answer.offers, lines, ledger.groups(rt), diet_allowed(rt, customer.profile, ids))

    def compose(redeemed: set[str], spent: float, budget: float) -> tuple[list[Benefit], dict[str, Any]]:
        kept, notes = within_limits(found, redeemed, spent, budget)
        reason = answer.reason
        if reason is None and not found:
            reason = "no basket line is in a planned offer's product group (or the diet forbids it)"
        return kept, {
            "checkout_id": req.idempotency_key,
            "customer_id": req.customer_id,
            "store": req.store,
            "plan_version": plan.version,
            "benefits": [b.__dict__ for b in kept],
            "total_discount": round(sum(b.amount for b in kept), 2),
            "reason": reason,
            "notes": notes,
        }

    return ledger.settle(req.idempotency_key, digest, req.customer_id, req.store, plan, compose)
