"""Per (customer, product) aggregates of the purchase lines, computed by DuckDB out of core.

What the buy-again model and the factor models learn from is not the lines but one row per pair
the customer bought: how many lines, how many baskets, the first and last basket, a recency-weighted
basket count. A national program has hundreds of millions of lines but a few times fewer pairs, so
these aggregates are computed where the lines are (Parquet parts on disk, read by DuckDB with
bounded memory that spills) and only the pairs reach numpy. The same SQL runs over an in-memory
frame (registered with DuckDB), so both kinds of Dataset give the same numbers from one query.

Rows come sorted by (user, item): a CSR matrix is built from them without a conversion copy.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from recsys.data.idmap import IdMap
from recsys.data.io import connect, sql_list

DAY_NS = 86400e9
#: Columns of the line relation every aggregate reads.
LINE_COLUMNS = ("user_idx", "item_idx", "basket_id", "timestamp")


@dataclass(frozen=True)
class LineSource:
    """Purchase lines left on disk: the Parquet file(s) of a data directory, the id maps that turn
    their ids into indices (lines of customers or products not in them are dropped, as erased
    customers must be), and an optional time window (lines at or after `after`, strictly before
    `before`). `id_range` (the smallest and largest customer id of `users`) only narrows what is
    read: a filter on the file's own column lets the reader skip row groups of other customers."""

    files: tuple[Path, ...]
    users: IdMap
    items: IdMap
    before: pd.Timestamp | None = None
    after: pd.Timestamp | None = None
    id_range: tuple[str, str] | None = None


@dataclass(frozen=True)
class BasketStats:
    """One entry per bought (user, item), sorted: distinct baskets, first and last basket (days
    relative to `now`, the last basket of the data; <= 0) and the baskets' count weighted by
    0.5 ** (age / half_life_days)."""

    matrix_pattern: sp.csr_matrix  # users x items, data = baskets
    first: np.ndarray
    last: np.ndarray
    wcount: np.ndarray
    now: float  # days since the epoch


def _relation(
    con, interactions: pd.DataFrame | None, source: LineSource | None, with_store: bool = False
) -> str:
    """Register the lines as the view `lines` (user_idx, item_idx, basket_id, timestamp[, store_id])."""
    if interactions is not None:
        con.register("frame", interactions[list(LINE_COLUMNS) + (["store_id"] if with_store else [])])
        con.execute("CREATE VIEW lines AS SELECT * FROM frame")
        return "lines"
    assert source is not None
    con.register(
        "users",
        pa.table(
            {"customer_id": source.users.to_list(), "user_idx": np.arange(len(source.users), dtype=np.int32)}
        ),
    )
    con.register(
        "items",
        pa.table(
            {"product_id": source.items.to_list(), "item_idx": np.arange(len(source.items), dtype=np.int32)}
        ),
    )
    where = _where(source)
    con.execute(
        f"""CREATE VIEW lines AS
        SELECT u.user_idx, p.item_idx, i.basket_id, i.timestamp::TIMESTAMP_NS AS timestamp
            {", i.store_id" if with_store else ""}
        FROM read_parquet({sql_list(list(source.files))}) AS i
        JOIN users AS u USING (customer_id) JOIN items AS p USING (product_id) {where}"""
    )
    return "lines"


def _where(source: LineSource) -> str:
    """The WHERE clause of a line source's window and customer id range (on the raw columns)."""
    terms = []
    if source.after is not None:
        terms.append(f"i.timestamp >= TIMESTAMP '{pd.Timestamp(source.after).isoformat()}'")
    if source.before is not None:
        terms.append(f"i.timestamp < TIMESTAMP '{pd.Timestamp(source.before).isoformat()}'")
    if source.id_range is not None:
        lo, hi = (value.replace("'", "''") for value in source.id_range)
        terms.append(f"i.customer_id BETWEEN '{lo}' AND '{hi}'")
    return "WHERE " + " AND ".join(terms) if terms else ""


def _opened(
    interactions: pd.DataFrame | None, source: LineSource | None, with_store: bool = False
) -> duckdb.DuckDBPyConnection:
    """A fresh connection with the lines registered as the view `lines` (close it after use)."""
    con = connect(PASS_MEMORY)
    _relation(con, interactions, source, with_store)
    return con


def _scalar(interactions: pd.DataFrame | None, source: LineSource | None, query: str):
    """The single value of a query over `lines`."""
    with closing(_opened(interactions, source)) as con:
        return con.sql(query).fetchall()[0][0]


def _csr(indptr: np.ndarray, item_idx: np.ndarray, data: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR from entries sorted by (row, column): the arrays are used as they are (int32 row
    pointers where they fit, so scipy does not copy the indices to a wider type)."""
    if indptr[-1] < 2**31:
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((data, item_idx, indptr), shape=shape)


#: Rows fetched from DuckDB at a time: the result reaches numpy batch by batch, never as one
#: Arrow table beside the arrays made from it.
FETCH_ROWS = 1 << 20


#: Lines one aggregate pass may group: DuckDB's hash aggregate over a national program's lines
#: (hundreds of millions of (customer, product, basket) groups) ran out of its bounded memory
#: instead of spilling, so larger data is aggregated in passes over contiguous customer ranges.
#: A customer's pairs all fall in one pass, so the passes' sorted results concatenate sorted.
LINES_PER_PASS = 30_000_000
#: DuckDB's working memory for one pass (it spills beyond): the pairs arrays grow beside it.
PASS_MEMORY = "1500MB"


def _customer_passes(total: int, n_users: int) -> list[str]:
    """WHERE clauses splitting `total` lines into passes of about LINES_PER_PASS by customer index."""
    passes = max(1, -(-int(total) // LINES_PER_PASS))
    if passes == 1:
        return [""]
    bounds = np.linspace(0, n_users, passes + 1).astype(np.int64)
    return [
        f"WHERE user_idx >= {lo} AND user_idx < {hi}" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _fetch(
    open_lines: Callable[[], duckdb.DuckDBPyConnection],
    queries: list[str],
    n_users: int,
    dtypes: dict[str, type],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(CSR row pointers, the other columns as numpy arrays of the given types) of queries that
    return rows sorted by (user_idx, item_idx), one after the other, fetched in record batches; the
    user column is counted per batch, never kept. Each query (a pass) runs on its own connection
    from `open_lines`, closed after it, and every batch is copied out of DuckDB's buffers: memory
    DuckDB used for one pass is given back before the next, not kept beside the growing arrays."""
    rows = np.zeros(n_users, dtype=np.int64)
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in dtypes}
    for query in queries:
        con = open_lines()
        try:
            for batch in con.sql(query).fetch_record_batch(FETCH_ROWS):
                rows += np.bincount(batch.column("user_idx").to_numpy(), minlength=n_users)
                for name, dtype in dtypes.items():
                    chunks[name].append(
                        np.array(batch.column(name).to_numpy(zero_copy_only=False), dtype=dtype)
                    )
                del batch
        finally:
            con.close()
    out = {}
    for name, dtype in dtypes.items():
        parts = chunks.pop(name)
        out[name] = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
        del parts
    return np.concatenate([[0], np.cumsum(rows)]), out


def line_counts(
    interactions: pd.DataFrame | None, source: LineSource | None, shape: tuple[int, int]
) -> sp.csr_matrix:
    """users x items float32 matrix of purchase lines per pair."""
    passes = _customer_passes(line_total(interactions, source), shape[0])
    indptr, got = _fetch(
        lambda: _opened(interactions, source),
        [
            f"SELECT user_idx, item_idx, count(*)::FLOAT AS n FROM lines {where}"
            " GROUP BY ALL ORDER BY user_idx, item_idx"
            for where in passes
        ],
        shape[0],
        {"item_idx": np.int32, "n": np.float32},
    )
    return _csr(indptr, got["item_idx"], got["n"], shape)


def basket_stats(
    interactions: pd.DataFrame | None,
    source: LineSource | None,
    shape: tuple[int, int],
    half_life_days: float,
) -> BasketStats:
    """Per bought pair: distinct baskets, first/last basket and the recency-weighted basket count.

    A basket's time is its earliest line. The weights are taken against the latest line (`ref`, one
    cheap scan) inside the aggregate and rescaled to the latest basket afterwards, exactly:
    0.5 ** ((now - t) / h) = 0.5 ** ((ref - t) / h) * 0.5 ** ((now - ref) / h).
    """
    ref = _scalar(interactions, source, f"SELECT epoch_ns(max(timestamp)) / {DAY_NS} FROM lines")
    if ref is None:
        empty = sp.csr_matrix(shape, dtype=np.float32)
        return BasketStats(empty, *(np.zeros(0, np.float32) for _ in range(3)), now=0.0)
    passes = _customer_passes(line_total(interactions, source), shape[0])
    # FLOAT in the query (DOUBLE rounded to nearest, as numpy would): no float64 batches to convert
    indptr, got = _fetch(
        lambda: _opened(interactions, source),
        [
            f"""WITH b AS (
                SELECT user_idx, item_idx, epoch_ns(min(timestamp)) / {DAY_NS} - {ref} AS t
                FROM lines {where} GROUP BY user_idx, item_idx, basket_id)
            SELECT user_idx, item_idx, count(*)::FLOAT AS n, min(t)::FLOAT AS first,
                max(t)::FLOAT AS last, sum(pow(0.5, -t / {float(half_life_days)}))::FLOAT AS w
            FROM b GROUP BY ALL ORDER BY user_idx, item_idx"""
            for where in passes
        ],
        shape[0],
        {"item_idx": np.int32, "n": np.float32, "first": np.float32, "last": np.float32, "w": np.float32},
    )  # fmt: skip
    # days relative to the latest line, small numbers: float32 keeps them to a few seconds
    shift = float(got["last"].max())  # now - ref (<= 0)
    got["first"] -= shift
    got["last"] -= shift
    got["w"] *= np.float32(0.5 ** (-shift / half_life_days))
    return BasketStats(
        matrix_pattern=_csr(indptr, got.pop("item_idx"), got.pop("n"), shape),
        first=got["first"],
        last=got["last"],
        wcount=got["w"],
        now=float(ref + shift),
    )


#: Lines the basket co-occurrence is learned from at most: a product's partners are stable long
#: before a national program's hundreds of millions of lines, and beyond this a uniform sample of
#: whole baskets (by a hash of the basket id, so the same data gives the same sample) is used.
BASKET_SAMPLE_LINES = 5_000_000


def basket_sample(
    interactions: pd.DataFrame | None, source: LineSource | None, max_lines: int
) -> pd.DataFrame:
    """basket_id (a 64-bit hash of it), item_idx of a uniform sample of whole baskets holding about
    `max_lines` lines, or of every line when there are no more."""
    total = line_total(interactions, source)
    share = 1.0 if total <= max_lines else max_lines / total
    buckets = 1_000_000
    keep = "" if share >= 1.0 else f"WHERE hash(basket_id) % {buckets} < {int(share * buckets)}"
    with closing(_opened(interactions, source)) as con:
        return con.sql(f"SELECT hash(basket_id) AS basket_id, item_idx FROM lines {keep}").df()


@dataclass(frozen=True)
class CustomerStats:
    """Per customer (index = user_idx): distinct baskets, the time of the latest line (NaT without
    lines) and, when asked for, the most visited store (ties: the store seen first in the lines, then the
    smallest id: the order the in-memory frame's categories had)."""

    baskets: np.ndarray
    last: np.ndarray  # datetime64[ns]
    store: pd.DataFrame | None  # user_idx, store_id


def customer_stats(
    interactions: pd.DataFrame | None, source: LineSource | None, n_users: int, with_store: bool = False
) -> CustomerStats:
    con = _opened(interactions, source, with_store)
    got = con.sql(
        "SELECT user_idx, count(DISTINCT basket_id) AS baskets, epoch_ns(max(timestamp)) AS last"
        " FROM lines GROUP BY user_idx"
    ).df()
    baskets, last = np.zeros(n_users), np.full(n_users, np.datetime64("NaT"), dtype="datetime64[ns]")
    users = got["user_idx"].to_numpy(np.int64)
    baskets[users] = got["baskets"].to_numpy(np.float64)
    last[users] = got["last"].to_numpy(np.int64).astype("datetime64[ns]")
    store = None
    if with_store:
        store = con.sql(
            """WITH visits AS (
                SELECT user_idx, arg_min(store_id::VARCHAR, timestamp) AS store_id FROM lines
                WHERE store_id IS NOT NULL GROUP BY user_idx, basket_id),
            counts AS (SELECT user_idx, store_id, count(*) AS n FROM visits GROUP BY ALL),
            seen AS (SELECT store_id::VARCHAR AS store_id, min(timestamp) AS t FROM lines GROUP BY ALL)
            SELECT user_idx, store_id FROM counts JOIN seen USING (store_id)
            QUALIFY row_number() OVER (PARTITION BY user_idx ORDER BY n DESC, t, store_id) = 1
            ORDER BY user_idx"""
        ).df()[["user_idx", "store_id"]]
    con.close()
    return CustomerStats(baskets, last, store)


def line_total(interactions: pd.DataFrame | None, source: LineSource | None) -> int:
    """Number of lines (of the known customers and products, in the window)."""
    return int(_scalar(interactions, source, "SELECT count(*) FROM lines"))


def latest(interactions: pd.DataFrame | None, source: LineSource | None) -> pd.Timestamp | None:
    """Time of the latest line, None without lines."""
    value = _scalar(interactions, source, "SELECT epoch_ns(max(timestamp)) FROM lines")
    return None if value is None else pd.Timestamp(int(value), unit="ns")


def write_lines(source: LineSource, out: Path) -> None:
    """The source's lines (their raw columns, its window and customers only) as one Parquet file: a
    sample of customers that is read many times is then read from its own file, not filtered out of
    every line of the program again."""
    con = connect(PASS_MEMORY)
    con.register("users", pa.table({"customer_id": source.users.to_list()}))
    where = _where(source)
    keep = "i.customer_id IN (SELECT customer_id FROM users)"
    where = f"{where} AND {keep}" if where else f"WHERE {keep}"
    target = str(out).replace("'", "''")
    con.execute(
        f"COPY (SELECT i.* FROM read_parquet({sql_list(list(source.files))}) AS i {where})"
        f" TO '{target}' (FORMAT parquet)"
    )
    con.close()
