"""The one place batch jobs learn who was erased and what consent customers gave through the service.

Every batch path (train in every form, tune, compare, refit, `recsys recommend`, `recsys recipes`,
`recsys offers`, the pipeline) calls `read_privacy()` and applies the `Privacy` it returns; serving
reads the same tables live (serving/events.py). Failing closed:

- RECSYS_EVENTS_URL set: that store must be readable. A PostgreSQL database that does not exist (a
  misspelt name), a refused connection or a missing SQLite file stop the job with `StoreUnavailable`
  instead of quietly finding nobody erased. A database without the tables is a store nobody has
  written to yet: nothing erased.
- RECSYS_EVENTS_URL unset: the service's default SQLite file (recsys.defaults), said in a log line;
  when that file does not exist yet, nothing was erased through the default service.
- A store whose secret fingerprint differs from this job's secret (recsys.data.erasure) stops the job:
  its erasure keys could not be matched.
- Erasure rows written before keyed hashes (unkeyed SHA-256) still match, as `legacy` keys.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from recsys.data.erasure import drop_customers, erased_ids, load_secret, secret_fingerprint
from recsys.defaults import DEFAULT_EVENTS_URL

logger = logging.getLogger("recsys.privacy")

#: Columns of the event store's consent/profile overrides (what POST /v1/customers/consent records).
OVERRIDE_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "consent_personalisation",
    "consent_marketing",
    "diet_exclusions",
    "diet_preferences",
    "marketing_channels",  # consent per channel; NULL (and stores from before it): every channel
)


class StoreUnavailable(RuntimeError):
    """The configured event store cannot be read; the job must not run without its erasures."""


def events_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("RECSYS_EVENTS_URL") or DEFAULT_EVENTS_URL


def _empty_overrides() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in OVERRIDE_COLUMNS})


@dataclass(frozen=True)
class Privacy:
    """Erasure keys and consent overrides read from one store at one moment."""

    source: str  # the store, password hidden
    secret: bytes = field(repr=False, default=b"")
    keys: frozenset[str] = frozenset()
    legacy: frozenset[str] = frozenset()
    overrides: pd.DataFrame = field(default_factory=_empty_overrides, repr=False)

    def erased(self, ids: Iterable[str]) -> set[str]:
        """The given customer ids that were erased."""
        return erased_ids(ids, self.keys, self.secret, self.legacy)

    def drop_erased(self, tables: Mapping[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], int]:
        """Canonical tables without any row of an erased customer, and how many customers went."""
        from recsys.data.erasure import customer_ids

        return drop_customers(tables, self.erased(customer_ids(tables)))

    def withdrawn(self, column: str = "consent_personalisation") -> set[str]:
        """Customers whose last consent recorded through the service is False for `column`."""
        o = self.overrides
        if o.empty:
            return set()
        last = o.assign(customer_id=o["customer_id"].astype(str)).drop_duplicates("customer_id", keep="last")
        return set(last.loc[~last[column].astype(bool), "customer_id"])


def read_privacy(url: str | None = None, env: Mapping[str, str] | None = None) -> Privacy:
    """Erasures and consent from the event store at `url` (default: RECSYS_EVENTS_URL, see above)."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    env = os.environ if env is None else env
    configured = url or env.get("RECSYS_EVENTS_URL")
    url = configured or DEFAULT_EVENTS_URL
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if not configured:
        logger.warning(
            "RECSYS_EVENTS_URL is unset: erasures and consent come from the default store %s", shown
        )
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            raise StoreUnavailable(
                f"event store {shown} is not a file; set RECSYS_EVENTS_URL to the service's"
            )
        if not Path(database).exists():
            if configured:
                raise StoreUnavailable(
                    f"event store {shown} does not exist; set RECSYS_EVENTS_URL to the store the service "
                    "writes (erased customers must not come back)"
                )
            logger.warning("the default event store %s does not exist yet: nothing erased", database)
            return Privacy(shown)
    engine = create_engine(parsed)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            fingerprints: list[str] = []
            if "erasure_secret" in tables:
                fingerprints = [
                    str(f) for f in conn.execute(text("SELECT fingerprint FROM erasure_secret")).scalars()
                ]
            keys: set[str] = set()
            if "erasures" in tables:
                keys = {str(k) for k in conn.execute(text("SELECT id_hash FROM erasures")).scalars()}
            legacy: set[str] = set()
            if "erasures_legacy" in tables:
                legacy = {str(k) for k in conn.execute(text("SELECT id_hash FROM erasures_legacy")).scalars()}
            overrides = _empty_overrides()
            if "customer_overrides" in tables:
                present = {c["name"] for c in inspect(conn).get_columns("customer_overrides")}
                columns = [c if c in present else f"NULL AS {c}" for c in OVERRIDE_COLUMNS]
                rows = conn.execute(text(f"SELECT {', '.join(columns)} FROM customer_overrides")).all()
                if rows:
                    overrides = pd.DataFrame([tuple(r) for r in rows], columns=list(OVERRIDE_COLUMNS))
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        raise StoreUnavailable(
            f"cannot read erasures and consent from the event store {shown}: {str(reason).strip()}"
        ) from exc
    finally:
        engine.dispose()
    if not fingerprints:
        # a store no keyed-hash process has written to: every erasure row is an unkeyed legacy one
        return Privacy(shown, b"", frozenset(), frozenset(keys | legacy), overrides)
    try:
        secret = load_secret(url, env, create=False)
    except FileNotFoundError as exc:
        raise StoreUnavailable(f"{exc}; the store {shown} holds keyed erasures") from exc
    if secret_fingerprint(secret) not in fingerprints:
        raise StoreUnavailable(
            f"the erasure secret of this job does not match the one the event store {shown} was written "
            "with; use the service's RECSYS_ERASURE_SECRET (or its secret file)"
        )
    return Privacy(shown, secret, frozenset(keys), frozenset(legacy), overrides)


def apply_customer_overrides(customers: pd.DataFrame, overrides: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The customers table with each override replacing the customer's consent and diet (the service's
    precedence: what the customer told the app last wins, a missing diet included), and how many
    customers it changed. Overrides of ids the table does not hold are ignored."""
    if overrides.empty:
        return customers, 0
    over = overrides.assign(customer_id=overrides["customer_id"].astype(str)).drop_duplicates(
        "customer_id", keep="last"
    )
    over = over.set_index("customer_id")
    ids = customers["customer_id"].astype(str)
    hit = ids.isin(over.index).to_numpy()
    if not hit.any():
        return customers, 0
    out = customers.copy()
    for column in OVERRIDE_COLUMNS[1:]:
        values = ids[hit].map(over[column])
        if column.startswith("consent_"):
            values = values.astype(bool)
        if column not in out:
            out[column] = pd.Series([None] * len(out), dtype=object)
        out[column] = out[column].astype(object)
        out.loc[hit, column] = values.to_numpy(dtype=object)
        if column.startswith("consent_"):
            out[column] = out[column].astype(bool)
    return out, int(hit.sum())
