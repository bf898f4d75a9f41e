"""Customer state into the event store: `recsys publish --data DIR` (and the service, at start).

A serving worker holds the model and the catalog only; what it needs to know about a customer is
read by key from the store (serving/events.py). This job puts a prepared data set's side of it
there, one `customer_base` row per customer: consent and diet (the customers table), the products
bought in the data's last `recent_days` days (at home, for recipes) and the lifecycle profile
(`recsys.offers.profiles`, for /v1/customers/profile). What happens later reaches the store through
the API: purchases as feedback events, consent and diets as overrides, erasures as tombstones.

A publication replaces the previous one whole, in one transaction, and drops every replica's cached
state. Erased customers are never published (their tombstones are checked, legacy ones re-keyed
first). The digest of the published data set is recorded, so a service started on the same data
directory does not publish it again.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import delete, insert, select, text

from recsys.data.io import read_manifest, read_tables
from serving.erasure_secret import rekey_legacy
from serving.events import EventStore, customer_base, erasures, publications

logger = logging.getLogger("serving")

#: "at home" for recipes: bought in the data's last four weeks (recsys.personalize.Personalizer)
RECENT_DAYS = 28.0
#: rows per INSERT statement
CHUNK = 5_000


@dataclass(frozen=True)
class Published:
    digest: str
    customers: int
    erased_left_out: int
    with_profile: int


def data_digest(data_dir: Path) -> str:
    """The data set's digest from its manifest (changes whenever the prepared tables change)."""
    manifest = read_manifest(data_dir)
    digest = manifest.get("digest")
    if not digest:
        raise ValueError(f"{data_dir}/manifest.json has no 'digest': re-run 'recsys data prepare'")
    return str(digest)


def customer_rows(data_dir: Path, recent_days: float = RECENT_DAYS) -> list[dict[str, Any]]:
    """One `customer_base` row per customer of a prepared data directory."""
    from recsys.offers.profiles import PROFILE_COLUMNS, customer_profiles

    tables = read_tables(
        data_dir, skip=("promotions", "offers", "engagement", "campaign_products", "products")
    )
    users, inter = tables["customers"], tables["interactions"]
    inter = inter.assign(
        customer_id=inter["customer_id"].astype(str), product_id=inter["product_id"].astype(str)
    )
    recent: dict[str, list[str]] = {}
    lifecycle: dict[str, str] = {}
    if not inter.empty:
        last = inter["timestamp"].max()
        rows = inter[inter["timestamp"] >= last - pd.Timedelta(days=recent_days)]
        rows = rows.sort_values("timestamp", kind="stable").drop_duplicates(
            ["customer_id", "product_id"], keep="last"
        )
        recent = rows.groupby("customer_id")["product_id"].agg(list).to_dict()
        need = {"basket_id", "value", "discount"}
        if need <= set(inter.columns):
            as_of = last.normalize() + pd.Timedelta(days=1)
            frame = inter[["customer_id", "basket_id", "timestamp", "value", "discount"]]
            table = customer_profiles(frame, as_of)
            day = str(as_of.date())
            for cid, row in zip(
                table.index.astype(str), table[list(PROFILE_COLUMNS)].to_dict("records"), strict=True
            ):
                lifecycle[cid] = json.dumps({"as_of": day, **{k: _plain(v) for k, v in row.items()}})
        else:
            logger.warning(
                "interactions lack %s: no lifecycle profiles published", sorted(need - set(inter.columns))
            )
    get = lambda c: users[c] if c in users else pd.Series([None] * len(users))  # noqa: E731
    out = []
    for cid, cp, cm, ex, pr, ch in zip(
        users["customer_id"].astype(str),
        get("consent_personalisation"),
        get("consent_marketing"),
        get("diet_exclusions"),
        get("diet_preferences"),
        get("marketing_channels"),
        strict=True,
    ):
        items = recent.get(cid)
        out.append(
            {
                "customer_id": cid,
                "consent_personalisation": _flag(cp),
                "consent_marketing": _flag(cm),
                "diet_exclusions": _text(ex),
                "diet_preferences": _text(pr),
                "marketing_channels": _text(ch),
                "recent_items": json.dumps(items) if items else None,
                "lifecycle": lifecycle.get(cid),
            }
        )
    return out


def publish(store: EventStore, data_dir: Path, recent_days: float = RECENT_DAYS) -> Published:
    """Replace the store's published customer state with this data directory's; drop every cache."""
    data_dir = Path(data_dir)
    digest = data_digest(data_dir)
    rows = customer_rows(data_dir, recent_days)
    store.ping()  # connected and migrated
    rekey_legacy(store.engine, store.secret, [r["customer_id"] for r in rows])
    with store.engine.connect() as conn:
        erased = set(conn.execute(select(erasures.c.id_hash)).scalars())
    keep = [r for r in rows if store.id_hash(r["customer_id"]) not in erased]
    with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # replicas starting together publish one at a time
            conn.execute(text("SELECT pg_advisory_xact_lock(7243002)"))
        conn.execute(delete(customer_base))
        for lo in range(0, len(keep), CHUNK):
            conn.execute(insert(customer_base), keep[lo : lo + CHUNK])
        conn.execute(delete(publications))
        conn.execute(
            insert(publications),
            [{"digest": digest, "customers": len(keep), "published_at": datetime.now(UTC)}],
        )
    store.invalidate(None)
    done = Published(digest, len(keep), len(rows) - len(keep), sum(r["lifecycle"] is not None for r in keep))
    logger.info("published %d customers of %s (digest %s)", done.customers, data_dir, digest)
    return done


def publish_if_new(store: EventStore, data_dir: Path | None) -> Published | None:
    """`publish` unless the store already holds this data set (a worker starting on a data dir)."""
    if data_dir is None:
        return None
    if store.published() == data_digest(Path(data_dir)):
        return None
    return publish(store, Path(data_dir))


def _flag(value: object) -> bool:
    return False if value is None or _missing(value) else bool(value)


def _text(value: object) -> str | None:
    return None if value is None or _missing(value) else str(value)


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN to None."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value if isinstance(value, (bool, int, float, str)) else str(value)
