"""The in-memory Dataset: id maps, interactions in internal indices, item and user tables."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from recsys.data import pairs
from recsys.data.idmap import IdMap
from recsys.data.io import connect, read_tables, sql_list, table_files
from recsys.data.pairs import BasketStats, LineSource

Weighting = Literal["binary", "count", "log", "recency", "bm25"]


@dataclass(frozen=True)
class Dataset:
    """Everything a model needs, in dense internal indices. Frozen: derive new datasets, never mutate.

    `items` covers the whole catalog (also products nobody bought yet, which hybrid models can rank)
    and `users` every customer, so splits of one dataset share the same id maps.

    Out of core (`in_memory=False`), `interactions` is None and the lines stay in Parquet (`lines`):
    models that learn from per-pair aggregates (`user_item_matrix`, `basket_stats`, computed by
    DuckDB with bounded memory) fit from it; memory then grows with the pairs, not the lines.
    """

    users: IdMap
    items: IdMap
    #: user_idx, item_idx, timestamp, quantity, value, discount, channel, basket_id; None out of core
    interactions: pd.DataFrame | None
    items_table: pd.DataFrame  # row i describes item i
    users_table: pd.DataFrame  # row u describes user u
    offers: pd.DataFrame | None = None
    #: item_idx, store_id (categorical), week_start, display, mailer; a plan, so splits keep all of it
    promotions: pd.DataFrame | None = None
    lines: LineSource | None = None
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_tables(
        cls,
        tables: dict[str, pd.DataFrame],
        lines: Path | None = None,
        before: pd.Timestamp | None = None,
        in_memory: bool = True,
    ) -> Dataset:
        """From canonical tables; with `lines` (a prepared data directory) the purchase lines are
        read from its Parquet file(s) by DuckDB instead of `tables["interactions"]` (see
        `_lines_from_parquet`), keeping only lines of the customers in `tables["customers"]` and,
        with `before`, only lines strictly before it: a training set read without its test weeks is
        `temporal_split(full, before).train` without ever holding the full set. `in_memory=False`
        (needs `lines`) leaves them on disk: an out-of-core Dataset (see the class)."""
        customers, products = tables["customers"], tables["products"]
        users = IdMap(customers["customer_id"], "customer")
        items = IdMap(products["product_id"], "product")
        source = None
        if not in_memory:
            if lines is None:
                raise ValueError("an out-of-core Dataset needs `lines` (a data directory)")
            end = None if before is None else pd.Timestamp(before)
            frame, source = None, LineSource(tuple(table_files(lines, "interactions")), users, items, end)
        elif lines is not None:
            frame = _lines_from_parquet(table_files(lines, "interactions"), users, items, before)
        else:
            if before is not None:
                raise ValueError("`before` needs `lines` (a data directory read by DuckDB)")
            inter = tables["interactions"]
            frame = inter.drop(columns=["customer_id", "product_id"]).assign(
                user_idx=users.to_internal(inter["customer_id"]).astype(np.int32),
                item_idx=items.to_internal(inter["product_id"]).astype(np.int32),
            )
            frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
        return cls(
            users=users,
            items=items,
            interactions=frame,
            items_table=products.reset_index(drop=True),
            users_table=customers.reset_index(drop=True),
            offers=tables.get("offers"),
            promotions=_promotions(tables.get("promotions"), items),
            lines=source,
        )

    @classmethod
    def load(cls, data_dir: Path) -> Dataset:
        return cls.from_tables(read_tables(data_dir, skip=("interactions",)), lines=data_dir)

    @property
    def n_lines(self) -> int:
        """Purchase lines, in memory or on disk."""
        if self.interactions is not None:
            return len(self.interactions)
        if "n_lines" not in self._cache:
            # one counting scan: the pair matrix is a national program's largest array, and a
            # model that never reads it (buy-again) must not hold it for a count
            self._cache["n_lines"] = pairs.line_total(None, self.lines)
        return self._cache["n_lines"]

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def with_interactions(self, interactions: pd.DataFrame) -> Dataset:
        """Same id maps and tables, a subset of the interactions (how splits are made)."""
        return replace(self, interactions=interactions.reset_index(drop=True), lines=None, _cache={})

    def window(self, after: pd.Timestamp | None = None, before: pd.Timestamp | None = None) -> Dataset:
        """The lines at or after `after` and strictly before `before` (either may be None), same id
        maps and tables: in memory a filtered frame, out of core a narrower line source."""
        if self.interactions is None:
            assert self.lines is not None
            lines = self.lines
            if after is not None:
                after = pd.Timestamp(after) if lines.after is None else max(pd.Timestamp(after), lines.after)
            if before is not None:
                before = (
                    pd.Timestamp(before) if lines.before is None else min(pd.Timestamp(before), lines.before)
                )
            lines = replace(
                lines,
                after=lines.after if after is None else after,
                before=lines.before if before is None else before,
            )
            return replace(self, lines=lines, _cache={})
        ts = self.interactions["timestamp"]
        keep = np.ones(len(ts), dtype=bool)
        if after is not None:
            keep &= (ts >= pd.Timestamp(after)).to_numpy()
        if before is not None:
            keep &= (ts < pd.Timestamp(before)).to_numpy()
        return self.with_interactions(self.interactions[keep])

    def subset(self, user_idx: np.ndarray, workdir: Path | None = None) -> Dataset:
        """The customers `user_idx` (sorted, unique) as a program of their own: users re-indexed
        0..m-1 in that order, same catalog. Out of core with a `workdir`, their lines are written
        there once (`pairs.write_lines`), so every later aggregate reads them alone; without one,
        each aggregate filters them out of all the lines again."""
        user_idx = np.asarray(user_idx, dtype=np.int64)
        ids = self.users.external_ids[user_idx]
        users = IdMap(ids, self.users.kind)
        table = self.users_table.iloc[user_idx].reset_index(drop=True)
        if self.interactions is not None:
            position = np.full(self.n_users, -1, dtype=np.int64)
            position[user_idx] = np.arange(len(user_idx))
            inter = self.interactions
            new = position[inter["user_idx"].to_numpy()]
            keep = new >= 0
            frame = inter[keep].assign(user_idx=new[keep].astype(np.int32)).reset_index(drop=True)
            return replace(self, users=users, users_table=table, interactions=frame, lines=None, _cache={})
        assert self.lines is not None
        sorted_ids = np.sort(ids.astype(str)) if len(ids) else None
        id_range = None if sorted_ids is None else (str(sorted_ids[0]), str(sorted_ids[-1]))
        lines = replace(self.lines, users=users, id_range=id_range)
        sub = replace(self, users=users, users_table=table, lines=lines, _cache={})
        return sub if workdir is None else sub.written(workdir)

    def written(self, workdir: Path) -> Dataset:
        """Out of core: the same Dataset reading its lines from one file written into `workdir` (its
        window and customers only, `pairs.write_lines`); in memory: itself."""
        if self.interactions is not None:
            return self
        assert self.lines is not None
        out = Path(workdir) / "lines.parquet"
        Path(workdir).mkdir(parents=True, exist_ok=True)
        pairs.write_lines(self.lines, out)
        lines = replace(self.lines, files=(out,), before=None, after=None, id_range=None)
        return replace(self, lines=lines, _cache={})

    def latest(self) -> pd.Timestamp | None:
        """Time of the latest line, None without lines."""
        if self.interactions is not None:
            return self.interactions["timestamp"].max() if len(self.interactions) else None
        return pairs.latest(None, self.lines)

    def customer_stats(self, with_store: bool = False) -> pairs.CustomerStats:
        """Per customer: distinct baskets, latest line (days since the epoch), main store if asked."""
        return pairs.customer_stats(self.interactions, self.lines, self.n_users, with_store)

    def basket_stats(self, half_life_days: float) -> BasketStats:
        """Per bought (user, item): baskets, first/last basket, recency-weighted basket count."""
        return pairs.basket_stats(self.interactions, self.lines, (self.n_users, self.n_items), half_life_days)

    def basket_lines(self, max_lines: int = pairs.BASKET_SAMPLE_LINES) -> pd.DataFrame:
        """basket_id, item_idx of the lines (a basket sample when there are more than `max_lines`)."""
        if self.interactions is not None and len(self.interactions) <= max_lines:
            return self.interactions[["basket_id", "item_idx"]]
        return pairs.basket_sample(self.interactions, self.lines, max_lines)

    def user_item_matrix(
        self,
        weighting: Weighting = "count",
        half_life_days: float = 60.0,
        now: pd.Timestamp | None = None,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
    ) -> sp.csr_matrix:
        """users x items CSR matrix of purchase strength.

        count: purchase lines; log: log1p(count); recency: lines weighted by exp(-ln2 * age/half_life)
        (age relative to `now`, default the latest interaction); bm25: count re-weighted like
        implicit's bm25_weight so that staples bought by everyone weigh less. Out of core every
        weighting but recency is computed from the per-pair line counts.
        """
        if self.interactions is None:
            if weighting == "recency":
                raise ValueError("recency weighting needs the lines in memory (Dataset in_memory=True)")
            if "counts" not in self._cache:
                self._cache["counts"] = pairs.line_counts(None, self.lines, (self.n_users, self.n_items))
            counts = self._cache["counts"]  # every weighting shares its index arrays (read-only)
            data = counts.data.astype(np.float64)
            return _weighted(
                sp.csr_matrix((data, counts.indices, counts.indptr), shape=counts.shape),
                weighting,
                bm25_k1,
                bm25_b,
            )
        inter = self.interactions
        rows = inter["user_idx"].to_numpy()
        cols = inter["item_idx"].to_numpy()
        if weighting == "recency":
            ts = inter["timestamp"].to_numpy(dtype="datetime64[ns]")
            ref = (
                np.datetime64(now if now is not None else ts.max(), "ns")
                if len(ts)
                else np.datetime64(0, "ns")
            )
            age_days = (ref - ts).astype("timedelta64[s]").astype(np.float64) / 86400.0
            data = np.exp(-np.log(2.0) * np.clip(age_days, 0, None) / half_life_days)
        else:
            data = np.ones(len(inter), dtype=np.float64)
        shape = (self.n_users, self.n_items)
        matrix = sp.csr_matrix((data, (rows, cols)), shape=shape, dtype=np.float64)  # duplicates summed
        matrix.sum_duplicates()
        return _weighted(matrix, weighting, bm25_k1, bm25_b)


def _weighted(matrix: sp.csr_matrix, weighting: str, bm25_k1: float, bm25_b: float) -> sp.csr_matrix:
    if weighting == "binary":
        matrix.data[:] = 1.0
    elif weighting == "log":
        matrix.data = np.log1p(matrix.data)
    elif weighting == "bm25":
        matrix = bm25_weight(matrix, bm25_k1, bm25_b)
    elif weighting not in ("count", "recency"):
        raise ValueError(f"unknown weighting {weighting!r}; use binary, count, log, recency or bm25")
    # float32 values over the same index arrays (scipy's astype would copy those too)
    return sp.csr_matrix((matrix.data.astype(np.float32), matrix.indices, matrix.indptr), shape=matrix.shape)


def _lines_from_parquet(
    files: list[Path], users: IdMap, items: IdMap, before: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Purchase lines in internal indices, straight from Parquet: DuckDB joins the ids to their
    indices and numbers the baskets (in id order) out of core, so pandas only ever holds the compact
    result (integer indices and basket numbers, categorical channel and store), never the id text.
    Rows come in time order, ties in file order, as the in-memory path sorts them."""
    con = connect()
    con.register(
        "users",
        pa.table(
            {"customer_id": users.to_list(), "user_idx": pa.array(np.arange(len(users), dtype=np.int32))}
        ),
    )
    con.register(
        "items",
        pa.table(
            {"product_id": items.to_list(), "item_idx": pa.array(np.arange(len(items), dtype=np.int32))}
        ),
    )
    table = con.sql(
        f"""
        SELECT i.* EXCLUDE (customer_id, product_id, basket_id, filename, file_row_number),
            (dense_rank() OVER (ORDER BY i.basket_id) - 1)::INTEGER AS basket_id, u.user_idx, p.item_idx
        FROM read_parquet({sql_list(files)}, filename = true, file_row_number = true) AS i
        JOIN users AS u USING (customer_id) JOIN items AS p USING (product_id)
        {"" if before is None else f"WHERE i.timestamp < TIMESTAMP '{pd.Timestamp(before).isoformat()}'"}
        ORDER BY i.timestamp, i.filename, i.file_row_number
        """
    ).to_arrow_table()
    for name in ("channel", "store_id"):
        if name in table.column_names:
            at = table.column_names.index(name)
            table = table.set_column(at, name, pc.dictionary_encode(table[name]))
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _promotions(table: pd.DataFrame | None, items: IdMap) -> pd.DataFrame | None:
    if table is None or len(table) == 0:
        return None
    # tens of millions of rows but tens of thousands of products: map each distinct id once
    products = pd.Categorical(table["product_id"])
    item_idx = items.to_internal(products.categories)[products.codes]
    return pd.DataFrame(
        {
            "item_idx": item_idx.astype(np.int32),
            "store_id": table["store_id"].astype("category"),
            "week_start": table["week_start"].astype("datetime64[ns]"),
            "display": table["display"].astype(bool),
            "mailer": table["mailer"].astype(bool),
        }
    )


def bm25_parameters(matrix: sp.csr_matrix) -> tuple[np.ndarray, float]:
    """(idf per item, average row sum) of a users x items count matrix: what BM25 learns from the
    whole population, so that rows of other customers can be weighted as the population's were."""
    n_users = matrix.shape[0]
    item_df = np.bincount(matrix.indices, minlength=matrix.shape[1])
    idf = np.log(n_users) - np.log1p(item_df)
    avg = float(np.asarray(matrix.sum(axis=1)).ravel().mean()) if n_users else 1.0
    return idf, avg


def bm25_weight(
    matrix: sp.csr_matrix,
    k1: float = 1.2,
    b: float = 0.75,
    parameters: tuple[np.ndarray, float] | None = None,
) -> sp.csr_matrix:
    """BM25 weighting of a users x items matrix (items play the role of terms), with the matrix's
    own `bm25_parameters` unless given. Computed on the CSR arrays (same pattern out, no COO round
    trip): a national program's matrix is copied once."""
    matrix = matrix.tocsr()
    matrix.sum_duplicates()
    n_users = matrix.shape[0]
    idf, avg = bm25_parameters(matrix) if parameters is None else parameters
    row_sums = np.asarray(matrix.sum(axis=1)).ravel()
    length_norm = (1.0 - b) + b * row_sums / max(avg, 1e-12)
    rows = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(matrix.indptr))
    data = matrix.data * (k1 + 1.0) / (k1 * length_norm[rows] + matrix.data) * idf[matrix.indices]
    return sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape)
