"""Basket completion benchmark: hide one product of a real checkout, rank it from the rest.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/basket.py [--data data/cj] [--baskets 3000]
        [--seed 0] [--models grocery_ranker,buy_again] [--week 50]

Protocol (issue 26): train = Complete Journey weeks < 50 (the quality benchmark's cutoff); cases =
baskets of weeks 50-53 with >= 4 distinct products known before week 50, `--baskets` of them drawn
with `--seed`; in each, one known product is hidden (seeded) and the other known products are the
basket in hand. Every method ranks the catalog minus the basket; HR@10 / NDCG@10 of the hidden
product (recsys.metrics). Anchors, scored here: popularity (train baskets per product), the
household's buy-again counts, basket co-occurrence (the library's `BasketCompleter`, cosine) and
their blend (`recsys.ranking.basket.blend` of co-occurrence and log1p buy-again counts, weight 0.5:
the best of the anchor blends tried). The project's models go through the ONE selection path,
`ProductSelector.select` with mode `complete_basket`, as the service, CLI and pyfunc call it; "alone"
rows are the same model's list with the basket only excluded; "+ re-ranker" rows add the learned
re-ranker (`recsys.ranking.basket_rerank`), fitted as `recsys train --basket-rerank` fits it (its fit
time includes the extra fits of the model it needs). Writes benchmarks/results/basket.{md,csv}.

`--week 46` is the validation split the blend weight and the re-ranker's features, tree settings and
training windows were chosen on (train before week 46, baskets of weeks 46-49), so the test weeks are
not tuned on.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quality import completejourney_cutoff  # noqa: E402
from benchmarks.report import log_run, machine_note, markdown_table, write_results  # noqa: E402
from recsys.data.dataset import Dataset  # noqa: E402
from recsys.data.io import read_tables  # noqa: E402
from recsys.data.splits import temporal_split  # noqa: E402
from recsys.metrics.ranking import hit_rate_at_k, ndcg_at_k  # noqa: E402
from recsys.ranking.basket import BasketCompleter, blend  # noqa: E402
from recsys.ranking.basket_rerank import DEFAULT_WINDOWS, fit_basket_reranker  # noqa: E402
from recsys.ranking.topk import top_k  # noqa: E402

MIN_KNOWN = 4
TEST_DAYS = 28  # four weeks of baskets after the cutoff
TEST_WEEK = 50
ANCHOR_BLEND_WEIGHT = 0.5
#: the re-ranker as `recsys train` fits it (benchmarks may override for validation sweeps)
RERANK_ARGS: dict = {}
LABELS = {"grocery_ranker": "grocery ranker", "buy_again": "buy-again model", "als": "ALS"}


def basket_cases(train: Dataset, test: Dataset, n: int, seed: int) -> pd.DataFrame:
    """user_idx, basket (item indices in hand), hidden (item index): one row per sampled basket."""
    known = np.zeros(train.n_items, dtype=bool)
    known[train.interactions["item_idx"].unique()] = True
    lines = test.interactions[["user_idx", "item_idx", "basket_id"]].drop_duplicates(
        ["basket_id", "item_idx"]
    )
    lines = lines[known[lines["item_idx"].to_numpy()]]
    size = lines.groupby("basket_id").size()
    eligible = np.array(sorted(size[size >= MIN_KNOWN].index))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(eligible, size=min(n, len(eligible)), replace=False)
    groups = lines[lines["basket_id"].isin(chosen)].groupby("basket_id")
    rows = []
    for b in chosen:
        g = groups.get_group(b)
        items = g["item_idx"].to_numpy(np.int64)
        h = int(rng.integers(len(items)))
        rows.append(
            {"user_idx": int(g["user_idx"].iloc[0]), "basket": np.delete(items, h), "hidden": items[h]}
        )
    frame = pd.DataFrame(rows)
    frame.attrs["eligible"] = len(eligible)
    return frame


def anchor_lists(cases: pd.DataFrame, score, k: int) -> np.ndarray:
    """(n, k) lists from a per-case score function, the basket masked before top-k."""
    out = np.full((len(cases), k), -1, dtype=np.int64)
    for r, case in enumerate(cases.itertuples(index=False)):
        s = np.asarray(score(case), dtype=np.float32).copy()
        s[case.basket] = -np.inf
        out[r] = top_k(s[None, :], k)[0][0]
    return out


def selector_lists(selector, dataset: Dataset, cases: pd.DataFrame, k: int, mode: str) -> np.ndarray:
    """(n, k) lists from the one selection path (item rows mapped back to the data's indices)."""
    from recsys.ranking.selection import ProductQuery

    ids = np.asarray(dataset.items.to_list(), dtype=object)
    users = np.asarray(dataset.users.to_list(), dtype=object)
    queries = [ProductQuery(k=k, mode=mode, basket=tuple(str(x) for x in ids[c])) for c in cases["basket"]]
    shoppers = [selector.shopper(users[u]) for u in cases["user_idx"]]
    out = np.full((len(cases), k), -1, dtype=np.int64)
    for lo in range(0, len(cases), 256):
        for r, sel in enumerate(selector.select(queries[lo : lo + 256], shoppers[lo : lo + 256])):
            if isinstance(sel, Exception):
                raise sel
            got = selector.item_ids[sel.items].astype(str)
            out[lo + r, : len(got)] = dataset.items.to_internal(list(got))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "cj"))
    ap.add_argument("--baskets", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--models", default="grocery_ranker,buy_again")
    ap.add_argument("--week", type=int, default=TEST_WEEK, help="first week of the baskets (46: validation)")
    ap.add_argument(
        "--no-rerank", dest="rerank", action="store_false", help="skip the learned re-ranker rows"
    )
    args = ap.parse_args(argv)
    import recsys.models  # noqa: F401
    from recsys.models.base import Recommender
    from recsys.personalize import align_items
    from recsys.ranking.selection import ProductSelector

    data_dir = Path(args.data)
    if not (data_dir / "manifest.json").exists():
        print(f"{data_dir} missing: run `recsys data prepare --source completejourney --out {data_dir}`")
        return 2
    start = time.perf_counter()
    data = Dataset.from_tables(read_tables(data_dir))  # the ranker reads the promotion calendar
    cutoff = completejourney_cutoff(args.week)
    split = temporal_split(data, cutoff)
    train, k = split.train, args.k
    test = split.test.interactions
    test = split.test.with_interactions(test[test["timestamp"] < cutoff + pd.Timedelta(days=TEST_DAYS)])
    cases = basket_cases(train, test, args.baskets, args.seed)
    truth = sp.csr_matrix(
        (np.ones(len(cases)), (np.arange(len(cases)), cases["hidden"].to_numpy())),
        shape=(len(cases), data.n_items),
    )
    t = time.perf_counter()
    completer = BasketCompleter.from_interactions(train.interactions, data.n_items)
    build_s = time.perf_counter() - t
    lines = train.interactions.drop_duplicates(["user_idx", "item_idx", "basket_id"])
    counts = sp.csr_matrix(
        (np.ones(len(lines), np.float32), (lines["user_idx"], lines["item_idx"])),
        shape=(data.n_users, data.n_items),
    )
    counts.sum_duplicates()
    pop = np.asarray(counts.sum(axis=0), dtype=np.float32).ravel()
    tie = 1e-6 * pop / pop.max()  # popularity breaks ties of the personal anchors

    def buy_again(case) -> np.ndarray:
        return counts[case.user_idx].toarray().ravel() + tie

    def cooc(case) -> np.ndarray:
        return completer.cooccurrence(case.basket) + tie

    methods: list[tuple[str, str, np.ndarray]] = [
        ("popularity", "anchor", anchor_lists(cases, lambda c: pop, k)),
        ("buy-again counts", "anchor", anchor_lists(cases, buy_again, k)),
        ("co-occurrence (cosine)", "anchor", anchor_lists(cases, cooc, k)),
        (
            "co-occurrence + buy-again",
            "anchor",
            anchor_lists(cases, lambda c: blend(cooc(c), np.log1p(buy_again(c)), ANCHOR_BLEND_WEIGHT), k),
        ),
    ]
    fit_s: dict[str, float] = {}
    rerank_s: dict[str, float] = {}
    for name in [m for m in args.models.split(",") if m]:
        model = Recommender.registry[name]()
        t = time.perf_counter()
        model.fit(train)
        fit_s[name] = time.perf_counter() - t
        selector = ProductSelector(model, align_items(data.items_table, model.items_), baskets=completer)
        label = LABELS.get(name, name)
        methods.append((f"{label} alone", "model", selector_lists(selector, data, cases, k, "mixed")))
        methods.append(
            (f"{label} + basket", "model", selector_lists(selector, data, cases, k, "complete_basket"))
        )
        if args.rerank:
            t = time.perf_counter()
            reranker = fit_basket_reranker(model, train, **RERANK_ARGS)
            rerank_s[name] = time.perf_counter() - t
            selector.baskets = BasketCompleter(completer.neighbours, completer.weight, reranker)
            methods.append(
                (
                    f"{label} + basket + re-ranker",
                    "model",
                    selector_lists(selector, data, cases, k, "complete_basket"),
                )
            )
        print(f"{label}: fit {fit_s[name]:.0f}s, re-ranker {rerank_s.get(name, 0):.0f}s", flush=True)
    rows = [
        {
            "method": m,
            "kind": kind,
            f"HR@{k}": hit_rate_at_k(recs, truth, k),
            f"NDCG@{k}": ndcg_at_k(recs, truth, k),
        }
        for m, kind, recs in methods
    ]
    table = pd.DataFrame(rows)
    best_anchor = table.loc[table["kind"] == "anchor", f"HR@{k}"].max()
    table["HR vs best anchor"] = table[f"HR@{k}"] / best_anchor
    best_model = table[table["kind"] == "model"].sort_values(f"HR@{k}").iloc[-1] if fit_s else None
    minutes = (time.perf_counter() - start) / 60
    md = [
        "# Basket completion benchmark",
        "",
        f"Generated by `benchmarks/basket.py` in {minutes:.1f} min ({machine_note()}; the machine is shared).",
        "",
        f"- Complete Journey, train before {cutoff} (weeks < {args.week}); {len(cases):,} of "
        f"{cases.attrs['eligible']:,} week {args.week}-{args.week + 3} baskets with >= {MIN_KNOWN} known products, seed {args.seed}; "
        f"one known product hidden per basket, the rest is the basket in hand and never recommended.",
        f"- Basket co-occurrence: top-{completer.neighbours.getnnz(axis=1).max()} cosine partners per product "
        f"from the training baskets ({completer.neighbours.nnz:,} pairs, built in {build_s:.0f}s); project "
        f"models blend it with the customer's own scores at weight {completer.weight} "
        f"(`recsys.ranking.basket`), through `ProductSelector.select(mode='complete_basket')`.",
        "- Re-ranker rows: the blend's top candidates re-scored by boosted trees fitted on the baskets "
        f"of the training data's last {DEFAULT_WINDOWS} four-week windows, each against a copy of the "
        "model fitted before it (`recsys.ranking.basket_rerank`); its fit, the copies' included: "
        + (", ".join(f"{LABELS.get(m, m)} {s:.0f}s" for m, s in rerank_s.items()) or "not run")
        + "; model fits: "
        + ", ".join(f"{LABELS.get(m, m)} {s:.0f}s" for m, s in fit_s.items())
        + ".",
        "",
        markdown_table(table, "{:.4f}"),
        "",
    ]
    if best_model is not None:
        ratio = best_model["HR vs best anchor"]
        md.append(
            f"- Goal HR@{k} >= 1.15x the best anchor ({best_anchor:.4f}): best project model "
            f"{best_model['method']} {best_model[f'HR@{k}']:.4f} = {ratio:.2f}x "
            f"({'met' if ratio >= 1.15 else f'NOT met, short by {1.15 - ratio:.2f}x'})."
        )
    name = "basket" if args.week == TEST_WEEK else "basket_validation"
    write_results(name, "\n".join(md), table, headline=args.week == TEST_WEEK)
    log_run(
        name,
        {"baskets": len(cases), "seed": args.seed, "week": args.week, "models": args.models, "weight": completer.weight},
        {f"{r['method']}_hr".replace(" ", "_").replace("(", "").replace(")", "").replace("+", "plus"): r[f"HR@{k}"]
         for r in rows},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
