"""Learned re-ranking of basket completion: which of the blend's top candidates completes THIS basket.

The blend (`recsys.ranking.basket.blend`) adds two scaled signals with one weight for everybody. A
small boosted-tree classifier does better by looking at each candidate's evidence separately: how
strongly and how many of the basket's products it goes with (cosine, but also how likely it is given
each basket product and the pair's lift, which cosine blurs for products of very different
popularity), whether the customer buys it and how lately, how much of its product type and category
the customer buys, whether the basket already holds its product type (a substitute, rarely bought
twice) and the basket size. It re-scores the blend's top `candidates` (after the request's mask, so
diet and basket exclusions hold exactly as before); every other allowed item keeps the blend's order
below them, so k is honoured.

Training, without leakage (`fit_basket_reranker`): windows of `holdout_days` at the end of the
training data are held out, one after the other (`windows`); for each, a copy of the model (same
parameters), the co-occurrence and the purchase statistics are fitted on the data BEFORE it; baskets
of the window each hide one product, and the rows are (customer, candidate, basket) features
labelled 1 for the hidden product. So no feature of a basket has seen that basket. At serving the
same features come from the full model, co-occurrence and statistics. The trees are saved as arrays
(`recsys.models.gbdt`), with the statistics, in `basket_rerank.npz` next to `basket.npz`; the model
directory's checksums cover it.

Optional per model config (`model.basket_rerank`): its fit costs one more fit of the model per
window on the older data, which training jobs that do not serve baskets need not pay.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.models.gbdt import FIELDS, export_trees, predict_logit
from recsys.models.validate import ModelCorrupt, check_csr
from recsys.ranking.food_first import item_codes
from recsys.ranking.topk import top_k

FEATURES = (
    "blend",  # the blend's score (what is served without the re-ranker)
    "blend_rank",  # position among the candidates (0 = the blend's first)
    "personal",  # the model's score scaled to [0, 1] over the catalog
    "cooc_sum",  # summed cosine with the basket's products
    "cooc_max",  # strongest cosine with one basket product
    "cooc_hits",  # basket products that have it among their partners
    "cooc_rel",  # cooc_sum over the largest cooc_sum of the candidates
    "n",  # the customer's baskets with it
    "since",  # days from its last purchase by the customer to the statistics' end (NaN: never)
    "share",  # n over the customer's baskets
    "user_baskets",
    "log_pop",  # log1p(baskets with it)
    "same_type",  # basket products of its product type (a substitute is rarely bought twice)
    "same_category",
    "basket_size",
    "cond_max",  # strongest P(it | a basket product), from the cosine and both products' baskets
    "cond_sum",  # summed P(it | basket product): what the basket's products predict together
    "lift_max",  # strongest lift with a basket product (rare pairs that cosine underrates)
    "type_share",  # the customer's purchases of its product type per basket (a need, not a brand)
    "category_share",
    "personal_rank",  # position of the model's score among the candidates
)
RERANK_FILE = "basket_rerank.npz"
#: Candidates re-scored per request: the blend's top; the hidden product is among its top 100 in
#: most validation baskets that any candidate list of this size can reach.
DEFAULT_CANDIDATES = 100
DAY_NS = 86400e9
#: Held-out windows stacked for training, each with its own copy of the model: twice the baskets of
#: one window, and both as far from their copy's data as served baskets are from the model's.
DEFAULT_WINDOWS = 2


class PurchaseStats:
    """Per customer x product: baskets with it (`n`) and the last one (days since epoch); per product:
    baskets with it. `end`: the day the statistics stop (the reference of `since`)."""

    def __init__(
        self, n: sp.csr_matrix, last: sp.csr_matrix, user_baskets: np.ndarray, pop: np.ndarray, end: float
    ):
        self.n, self.last = n, last
        self.user_baskets, self.pop, self.end = user_baskets, pop, float(end)

    @classmethod
    def from_interactions(
        cls, interactions: pd.DataFrame, n_users: int, n_items: int, end: pd.Timestamp | None = None
    ) -> PurchaseStats:
        lines = interactions[["user_idx", "item_idx", "basket_id", "timestamp"]]
        lines = lines.drop_duplicates(["user_idx", "item_idx", "basket_id"])
        t = np.asarray(lines["timestamp"], dtype="datetime64[ns]").astype(np.int64) / DAY_NS
        u, i = lines["user_idx"].to_numpy(np.int64), lines["item_idx"].to_numpy(np.int64)
        n = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(n_users, n_items))
        n.sum_duplicates()
        n.sort_indices()
        # the last purchase of each pair: sort by time, the last row of a pair wins
        order = np.argsort(t, kind="stable")
        last = pd.Series(t[order]).groupby([u[order], i[order]]).last()
        lu, li = (last.index.get_level_values(k).to_numpy(np.int64) for k in (0, 1))
        last = sp.csr_matrix((last.to_numpy(np.float64), (lu, li)), shape=(n_users, n_items))
        last.sort_indices()
        baskets = interactions.drop_duplicates(["user_idx", "basket_id"])["user_idx"].to_numpy(np.int64)
        user_baskets = np.bincount(baskets, minlength=n_users).astype(np.float32)
        pop = np.bincount(i, minlength=n_items).astype(np.float32)  # baskets with the product
        stop = t.max() if end is None else np.datetime64(end, "ns").astype(np.int64) / DAY_NS
        return cls(n, last, user_baskets, pop, float(stop) if len(t) else 0.0)

    def lookup(self, user: int, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, since) of `items` for one customer (0 and NaN when never bought or user -1)."""
        n = np.zeros(len(items), dtype=np.float32)
        since = np.full(len(items), np.nan, dtype=np.float32)
        if user < 0 or user >= self.n.shape[0]:
            return n, since
        lo, hi = self.n.indptr[user], self.n.indptr[user + 1]
        cols = self.n.indices[lo:hi]
        if not len(cols):
            return n, since
        pos = np.minimum(np.searchsorted(cols, items), len(cols) - 1)
        hit = cols[pos] == items
        n[hit] = self.n.data[lo:hi][pos[hit]]
        since[hit] = self.end - self.last.data[lo:hi][pos[hit]]  # same sparsity pattern as n
        return n, since

    def code_share(self, user: int, items: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Per item: the customer's purchases (basket lines) of products with the item's code, per
        basket of the customer (0: unknown customer or code -1)."""
        out = np.zeros(len(items), dtype=np.float64)
        if user < 0 or user >= self.n.shape[0]:
            return out
        lo, hi = self.n.indptr[user], self.n.indptr[user + 1]
        own = codes[self.n.indices[lo:hi]]
        mine = own >= 0
        if not mine.any():
            return out
        per_code = np.bincount(own[mine], weights=self.n.data[lo:hi][mine])
        c = codes[items]
        hit = (c >= 0) & (c < len(per_code))
        out[hit] = per_code[c[hit]] / max(float(self.user_baskets[user]), 1.0)
        return out


class BasketReranker:
    """Exported trees + the statistics and product codes its features read."""

    def __init__(
        self,
        trees: dict[str, np.ndarray],
        stats: PurchaseStats,
        type_codes: np.ndarray,
        category_codes: np.ndarray,
        candidates: int = DEFAULT_CANDIDATES,
    ):
        self.trees, self.stats = trees, stats
        self.type_codes = np.asarray(type_codes, dtype=np.int64)
        self.category_codes = np.asarray(category_codes, dtype=np.int64)
        self.candidates = int(candidates)

    def warm(self) -> None:
        """Load the compiled tree kernel now (from numba's disk cache, or compile it): the first
        prediction in a process otherwise pays it inside a request."""
        predict_logit(self.trees, np.zeros((1, len(FEATURES))))

    # ---- features -----------------------------------------------------------------------------
    def features(
        self,
        completer,
        user: int,
        basket: np.ndarray,
        blended: np.ndarray,
        personal: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(candidates, X): the blend's top finite items of a MASKED row and their feature rows.
        `basket`: unique known item indices; `personal`: the model's raw scores (same row)."""
        k = min(self.candidates, len(blended))
        cands, top = top_k(blended[None, :], k)
        cands, top = cands[0], top[0]
        keep = np.isfinite(top)
        cands, top = cands[keep], top[keep]
        X = np.zeros((len(cands), len(FEATURES)), dtype=np.float64)
        if not len(cands):
            return cands, X
        X[:, 0] = top
        X[:, 1] = np.arange(len(cands))
        lo, hi = personal.min(), personal.max()
        if not (np.isfinite(lo) and np.isfinite(hi)):  # the slow path only for rows that hold -inf
            finite = personal[np.isfinite(personal)]
            lo, hi = (finite.min(), finite.max()) if len(finite) else (0.0, 0.0)
        X[:, 2] = (personal[cands] - lo) / (hi - lo) if hi > lo else 0.0
        s, m, h = completer.candidate_cooccurrence(basket, cands)
        X[:, 3], X[:, 4], X[:, 5] = s, m, h
        X[:, 6] = s / s.max() if s.max() > 0 else 0.0
        n, since = self.stats.lookup(user, cands)
        ub = self.stats.user_baskets[user] if 0 <= user < len(self.stats.user_baskets) else 0.0
        X[:, 7], X[:, 8], X[:, 9], X[:, 10] = n, since, n / max(ub, 1.0), ub
        X[:, 11] = np.log1p(self.stats.pop[cands])
        X[:, 12] = _same(self.type_codes, basket, cands)
        X[:, 13] = _same(self.category_codes, basket, cands)
        X[:, 14] = len(basket)
        X[:, 15], X[:, 16], X[:, 17] = _conditional(completer, self.stats, basket, cands)
        X[:, 18] = self.stats.code_share(user, cands, self.type_codes)
        X[:, 19] = self.stats.code_share(user, cands, self.category_codes)
        X[:, 20] = _rank(personal[cands])
        return cands, X

    def rescore(
        self,
        completer,
        blended: np.ndarray,
        personal: np.ndarray,
        users: list[int],
        baskets: list[np.ndarray],
    ) -> None:
        """Re-score MASKED blend rows in place: the candidates get the classifier's probability, every
        other allowed item its blend score minus 2 (below every candidate, same order), -inf stays."""
        parts = [
            self.features(completer, u, b, blended[r], personal[r])
            for r, (u, b) in enumerate(zip(users, baskets, strict=True))
        ]
        X = np.concatenate([x for _, x in parts]) if parts else np.zeros((0, len(FEATURES)))
        p = 1.0 / (1.0 + np.exp(-predict_logit(self.trees, X))) if len(X) else np.zeros(0)
        lo = 0
        for r, (cands, x) in enumerate(parts):
            row = blended[r]
            np.subtract(row, np.float32(2.0), out=row)  # -inf - 2 stays -inf
            row[cands] = p[lo : lo + len(x)]
            lo += len(x)

    # ---- persistence --------------------------------------------------------------------------
    def save(self, directory: Path) -> Path:
        path = Path(directory) / RERANK_FILE
        st = self.stats
        arrays = {f"tree_{k}": v for k, v in self.trees.items() if not k.startswith("_")}
        np.savez(
            path,
            **arrays,
            n_data=st.n.data,
            n_indices=st.n.indices,
            n_indptr=st.n.indptr,
            last_data=st.last.data,
            shape=np.array(st.n.shape),
            user_baskets=st.user_baskets,
            pop=st.pop,
            end=np.array(st.end),
            type_codes=self.type_codes,
            category_codes=self.category_codes,
            candidates=np.array(self.candidates),
            n_features=np.array(len(FEATURES)),
        )
        return path

    @classmethod
    def load(cls, directory: Path, n_items: int) -> BasketReranker | None:
        """The re-ranker saved in a model directory (None: none saved); ModelCorrupt when its arrays
        cannot be what a re-ranker of `n_items` products holds."""
        path = Path(directory) / RERANK_FILE
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
        except (ValueError, OSError, KeyError) as exc:
            raise ModelCorrupt(f"{path}: unreadable ({exc})") from exc
        validate(a, n_items, str(path))
        n_users = int(a["shape"][0])
        n = sp.csr_matrix((a["n_data"], a["n_indices"], a["n_indptr"]), shape=(n_users, n_items))
        last = sp.csr_matrix((a["last_data"], a["n_indices"], a["n_indptr"]), shape=(n_users, n_items))
        stats = PurchaseStats(n, last, a["user_baskets"], a["pop"], float(a["end"]))
        trees = {k[len("tree_") :]: v for k, v in a.items() if k.startswith("tree_")}
        return cls(trees, stats, a["type_codes"], a["category_codes"], int(a["candidates"]))


def validate(a: dict[str, np.ndarray], n_items: int, where: str) -> None:
    """Raise ModelCorrupt naming the first array a re-ranker of `n_items` products cannot hold."""
    needed = [f"tree_{f}" for f in FIELDS] + ["tree_roots", "tree_offsets", "tree_baseline"]
    needed += ["n_data", "n_indices", "n_indptr", "last_data", "shape", "user_baskets", "pop", "end"]
    needed += ["type_codes", "category_codes", "candidates", "n_features"]
    for key in needed:
        if key not in a:
            raise ModelCorrupt(f"{where}: array {key!r} is missing")
        if a[key].dtype.kind not in "biuf":
            raise ModelCorrupt(f"{where}:{key}: numbers expected, got dtype {a[key].dtype}")
    if int(a["n_features"]) != len(FEATURES):
        raise ModelCorrupt(f"{where}: {int(a['n_features'])} features, this code reads {len(FEATURES)}")
    shape = a["shape"]
    if shape.shape != (2,) or int(shape[1]) != n_items:
        raise ModelCorrupt(f"{where}: statistics shape {tuple(shape)} does not fit {n_items} products")
    n_users = int(shape[0])
    check_csr(f"{where}:n", a["n_indptr"], a["n_indices"], n_users, n_items)
    if not len(a["n_data"]) == len(a["last_data"]) == len(a["n_indices"]):
        raise ModelCorrupt(f"{where}: statistics values and indices differ in length")
    for key, size in (("user_baskets", n_users), ("pop", n_items), ("type_codes", n_items)):
        if a[key].shape != (size,):
            raise ModelCorrupt(f"{where}:{key}: expected shape ({size},), got {a[key].shape}")
    if a["category_codes"].shape != (n_items,):
        raise ModelCorrupt(f"{where}:category_codes: expected shape ({n_items},)")
    if int(a["candidates"]) < 1:
        raise ModelCorrupt(f"{where}: candidates must be >= 1")
    offsets, roots = a["tree_offsets"], a["tree_roots"]
    n_nodes = len(a["tree_value"])
    if any(len(a[f"tree_{f}"]) != n_nodes for f in FIELDS):
        raise ModelCorrupt(f"{where}: tree node arrays differ in length")
    if (
        offsets.ndim != 1
        or len(offsets) < 1
        or offsets[0] != 0
        or offsets[-1] != n_nodes
        or np.any(np.diff(offsets) < 1)
        or not np.array_equal(roots, offsets[:-1])
    ):
        raise ModelCorrupt(f"{where}: tree offsets are not a valid partition of the nodes")
    size = np.repeat(np.diff(offsets), np.diff(offsets))  # each node's tree size
    inner = a["tree_is_leaf"] == 0
    for side in ("left", "right"):
        child = a[f"tree_{side}"]
        if np.any(inner & ((child < 1) | (child >= size))):
            raise ModelCorrupt(f"{where}: a tree's {side} child points outside its tree")
    feat = a["tree_feature_idx"]
    if np.any(inner & ((feat < 0) | (feat >= len(FEATURES)))):
        raise ModelCorrupt(f"{where}: a tree splits on a feature index outside [0, {len(FEATURES)})")


def _conditional(
    completer, stats: PurchaseStats, basket: np.ndarray, cands: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per candidate c, over the basket products b that count it among their partners: the largest
    and the summed P(c | b) and the largest lift. The cosine is co(b, c) / sqrt(n_b n_c) with n the
    baskets of a product, so P(c | b) = cosine * sqrt(n_c / n_b) and lift = cosine * N / sqrt(n_b n_c)
    (N: baskets), with no pair counts stored beside the cosine."""
    nb = completer.neighbours
    best, total, lift = (np.zeros(len(cands)) for _ in range(3))
    starts, ends = nb.indptr[basket], nb.indptr[basket + 1]
    if not len(basket) or not len(cands) or not (ends > starts).any():
        return best, total, lift
    pos = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
    owner = np.repeat(basket, ends - starts)  # the basket product of each partner entry
    order = np.argsort(cands)
    ranked = cands[order]
    at = np.minimum(np.searchsorted(ranked, nb.indices[pos]), len(cands) - 1)
    found = ranked[at] == nb.indices[pos]
    which, cos = order[at[found]], nb.data[pos][found].astype(np.float64)
    n_b = np.maximum(stats.pop[owner[found]], 1.0).astype(np.float64)
    n_c = np.maximum(stats.pop[cands[which]], 1.0).astype(np.float64)
    cond = cos * np.sqrt(n_c / n_b)
    np.maximum.at(best, which, cond)
    total += np.bincount(which, weights=cond, minlength=len(cands))
    np.maximum.at(lift, which, cos * max(float(stats.user_baskets.sum()), 1.0) / np.sqrt(n_b * n_c))
    return best, total, lift


def _rank(values: np.ndarray) -> np.ndarray:
    """0 for the largest value, 1 for the next... (ties in input order)."""
    out = np.empty(len(values), dtype=np.float64)
    out[np.argsort(-values, kind="stable")] = np.arange(len(values))
    return out


def _same(codes: np.ndarray, basket: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """How many basket products share each candidate's code (-1: no code, never counted)."""
    b = codes[basket]
    b = b[b >= 0]
    if not len(b):
        return np.zeros(len(cands))
    values, counts = np.unique(b, return_counts=True)
    c = codes[cands]
    pos = np.minimum(np.searchsorted(values, c), len(values) - 1)
    return np.where(values[pos] == c, counts[pos], 0).astype(np.float64)


#: Tree settings, chosen on the basket benchmark's validation split (`--week 46`).
TREE_PARAMS = {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 7, "min_samples_leaf": 40}


def holdout_cases(
    lines: pd.DataFrame, known: np.ndarray, n: int, rng: np.random.Generator, min_known: int = 4
) -> list[tuple[int, np.ndarray, int]]:
    """(user, basket in hand, hidden product) for up to `n` baskets of `lines` with >= `min_known`
    distinct `known` products: one known product hidden at random, the other known ones in hand."""
    lines = lines[["user_idx", "item_idx", "basket_id"]].drop_duplicates(["basket_id", "item_idx"])
    lines = lines[known[lines["item_idx"].to_numpy(np.int64)]]
    size = lines.groupby("basket_id").size()
    eligible = size.index[size >= min_known].to_numpy()
    if not len(eligible):
        return []
    chosen = set(rng.choice(eligible, size=min(n, len(eligible)), replace=False).tolist())
    out = []
    for _, g in lines[lines["basket_id"].isin(chosen)].groupby("basket_id", sort=True):
        items = g["item_idx"].to_numpy(np.int64)
        h = int(rng.integers(len(items)))
        out.append((int(g["user_idx"].iloc[0]), np.unique(np.delete(items, h)), int(items[h])))
    return out


def fit_basket_reranker(
    model,
    dataset,
    holdout_days: float = 28.0,
    baskets: int = 6000,
    candidates: int = DEFAULT_CANDIDATES,
    random_state: int = 0,
    tree_params: dict | None = None,
    min_known: int = 4,
    min_cases: int = 20,
    windows: int = DEFAULT_WINDOWS,
) -> BasketReranker | None:
    """Fit the re-ranker for a fitted `model` trained on `dataset` (see the module doc: per window of
    `holdout_days`, the newest ending with the data and each older one just before the next, a copy
    of the model, the co-occurrence and the statistics see only the data before the window; `baskets`
    of its days, with >= `min_known` products that older data knows, are training cases). Windows
    with no older data are skipped. None when the data has no baskets to learn from (too short, or
    fewer than `min_cases` baskets with the hidden product among the candidates)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    parts = [
        training_rows(model, dataset, holdout_days, baskets, candidates, random_state + w, min_known, w)
        for w in range(windows)
    ]
    parts = [p for p in parts if p is not None]
    reached = sum(p[3] for p in parts)
    if not parts or reached < min_cases:
        return None
    X, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    clf = HistGradientBoostingClassifier(
        **{**TREE_PARAMS, **(tree_params or {})}, early_stopping=False, random_state=random_state
    )
    with threadpool_limits(1, "openmp"):
        clf.fit(X, y)
    inter = dataset.interactions
    full = PurchaseStats.from_interactions(
        inter, dataset.n_users, dataset.n_items, end=inter["timestamp"].max()
    )
    types, cats = _type_codes(dataset)
    out = BasketReranker(export_trees(clf), full, types, cats, candidates)
    out.fit_info = {  # what the fit saw, for logs and benchmarks (not saved)
        "windows": len(parts),
        "cases": sum(p[2] for p in parts),
        "cases_reached": reached,
        "rows": len(y),
        "seconds": time.perf_counter() - start,
    }
    return out


def _type_codes(dataset) -> tuple[np.ndarray, np.ndarray]:
    from recsys.personalize import align_items

    items = align_items(dataset.items_table, dataset.items)
    return item_codes(items, "type"), item_codes(items, "category")


def training_rows(
    model,
    dataset,
    holdout_days: float = 28.0,
    baskets: int = 6000,
    candidates: int = DEFAULT_CANDIDATES,
    random_state: int = 0,
    min_known: int = 4,
    window: int = 0,
) -> tuple[np.ndarray, np.ndarray, int, int] | None:
    """(X, y, cases, cases reached): the re-ranker's training rows of one window (see
    `fit_basket_reranker`; `window` 0 = the last `holdout_days`, 1 = the days before them, ...);
    only cases whose hidden product is among the candidates give rows (the others teach no order).
    None when the data cannot be split into older data and held-out baskets."""
    from recsys.ranking.basket import BasketCompleter, blend

    inter = dataset.interactions
    if "basket_id" not in inter or not len(inter):
        return None
    ts = inter["timestamp"]
    end = ts.max() - pd.Timedelta(days=float(holdout_days) * window)
    split = end - pd.Timedelta(days=float(holdout_days))
    past = (ts < split).to_numpy()
    held = past if window == 0 else past | (ts >= end).to_numpy()  # the newest window keeps ts.max()
    if past.sum() == 0 or held.all():
        return None
    n_users, n_items = dataset.n_users, dataset.n_items
    early = dataset.with_interactions(inter[past])
    twin = type(model)(**model.get_params()).fit(early)
    completer = BasketCompleter.from_interactions(early.interactions, n_items)
    stats = PurchaseStats.from_interactions(early.interactions, n_users, n_items, end=split)
    rng = np.random.default_rng(random_state)
    cases = holdout_cases(inter[~held], stats.pop > 0, baskets, rng, min_known)
    cases = [c for c in cases if stats.user_baskets[c[0]] > 0]  # customers the twin knows
    probe = BasketReranker({}, stats, *_type_codes(dataset), candidates)
    X_parts, y_parts = [], []
    for lo in range(0, len(cases), 256):
        block = cases[lo : lo + 256]
        scores = twin.score(np.array([u for u, _, _ in block]))
        for (u, basket, hidden), personal in zip(block, scores, strict=True):
            row = blend(completer.cooccurrence(basket), personal, completer.weight)
            row[basket] = -np.inf
            cands, X = probe.features(completer, u, basket, row, personal)
            y = cands == hidden
            if y.any():
                X_parts.append(X)
                y_parts.append(y)
    if not y_parts:
        return np.zeros((0, len(FEATURES))), np.zeros(0, dtype=bool), len(cases), 0
    return np.concatenate(X_parts), np.concatenate(y_parts), len(cases), len(y_parts)
