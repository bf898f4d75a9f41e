"""Product recommendations for a BATCH of requests: one matrix product, one mask matrix, one top-k.

Per request: consent and diet are resolved (`serving.customers`), fresh events are folded in (a
customer with new purchases is scored from history + new items through the model's
`score_basket`, e.g. an ALS user vector recalculated on the spot; the new items count as history for
buy-again/discover), and every filter is applied before top-k, so nothing forbidden can reach a
list and k is honoured whenever k allowed items exist.

The common request (a diet, nothing else) of a customer the model knows never builds a catalog-wide
score row: a dot-product model scores only the diet's allowed items, largest factor norms first, and
stops as soon as no unscored item can enter the top-k (`serving.factors`). Reasons and the JSON body
are built for the k returned items only.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import numpy as np
from pydantic_core import to_json

from recsys.diet.profiles import DietProfile
from recsys.ranking.rerank import rerank
from recsys.ranking.topk import top_k
from serving.customers import Customer, resolve
from serving.events import CustomerState
from serving.runtime import Runtime
from serving.schemas import ProductsRequest

#: History items looked at for "because you bought X" (a cap keeps the lookup cheap for heavy buyers).
MAX_REASON_HISTORY = 400
#: Candidate pruning for top-k over large catalogs (see `pruned_top_k`).
PRUNE_STRIDE = 16
PRUNE_MIN_ITEMS = 4096


@dataclass(frozen=True)
class ProductJob:
    request: ProductsRequest
    override: DietProfile | None  # parsed before batching so a bad diet is a 400 for that caller only


def recommend_batch(
    rt: Runtime,
    jobs: list[ProductJob],
    states: dict[str, CustomerState],
    default_consent: bool,
) -> list[bytes | Exception]:
    """One JSON body (bytes, a `ProductsResponse`) or one Exception per job.

    Three paths, all exact, all applying the diet before selection:
    - factor: plain requests (diet only, mixed mode, no CO2e weight or soft preferences) of model
      users of a dot-product model: bounded scoring over the diet's allowed items (`FactorIndex`),
      one gemm per chunk for the whole batch, no catalog-wide score row at all;
    - fallback: plain requests of customers who get the non-personalised list: one cached top list
      per diet;
    - general: everything else (filters, modes, CO2e, preferences, fold-in): full score rows, one
      boolean mask, top-k / re-rank.
    """
    customers = [
        resolve(
            rt,
            j.request.customer_id,
            states.get(j.request.customer_id, CustomerState()),
            j.override,
            default_consent,
        )
        for j in jobs
    ]
    n_jobs = len(jobs)
    out: list[bytes | Exception | None] = [None] * n_jobs
    items = np.full((n_jobs, max(j.request.k for j in jobs)), -1, dtype=np.int64)
    top = np.full(items.shape, -np.inf, dtype=np.float32)
    factor_rows: dict[frozenset[str], list[int]] = {}
    general: list[int] = []
    for i, (job, cust) in enumerate(zip(jobs, customers, strict=True)):
        path = _path(rt, job.request, cust)
        if path == "factor":
            factor_rows.setdefault(cust.profile.exclusions, []).append(i)
        elif path == "fallback":
            k = job.request.k
            items[i, :k], top[i, :k] = rt.fallback_top(cust.profile, k)
        else:
            general.append(i)
    for rows in factor_rows.values():
        index = rt.factor_index(customers[rows[0]].profile)
        kk = max(jobs[i].request.k for i in rows)
        users = rt.model.user_factors_[[customers[i].user_idx for i in rows]]
        items[rows, :kk], top[rows, :kk] = index.top_k(users, kk)
    if general:
        _general(rt, [jobs[i] for i in general], [customers[i] for i in general], general, items, top, out)
    for i, (job, cust) in enumerate(zip(jobs, customers, strict=True)):
        if out[i] is None:
            row = items[i, : job.request.k]
            keep = row >= 0
            out[i] = response_json(rt, job.request, cust, row[keep], top[i, : job.request.k][keep])
    return out  # type: ignore[return-value]


def _path(rt: Runtime, req: ProductsRequest, cust: Customer) -> str:
    if not (_diet_only(req) and req.co2_weight == 0 and not cust.profile.preferences):
        return "general"
    model = rt.model
    if not cust.personalised:
        return "fallback"
    if len(cust.fresh) and model.supports_basket:
        return "general"  # fold-in
    if cust.user_idx < 0 or (model.needs_history and not len(cust.history)):
        return "fallback"  # what `model.score` does for them too
    return "factor" if rt.dot_product_model else "general"


def _general(
    rt: Runtime,
    jobs: list[ProductJob],
    customers: list[Customer],
    rows: list[int],
    items: np.ndarray,
    top: np.ndarray,
    out: list,
) -> None:
    """Full score rows, one mask per row, then top-k (or the re-ranker); fills items/top/out at `rows`."""
    scores = score_rows(rt, customers)  # our own array: masked in place below
    plain: list[int] = []
    failed: set[int] = set()
    for i, (job, cust) in enumerate(zip(jobs, customers, strict=True)):
        try:
            if _diet_only(job.request):  # a cached index list of forbidden items
                scores[i, rt.forbidden(cust.profile)] = -np.inf
            else:
                np.putmask(scores[i], ~request_mask(rt, job.request, cust), -np.inf)
        except ValueError as exc:  # e.g. unknown store: this caller's 400, not the batch's
            out[rows[i]] = exc
            failed.add(i)
            continue
        # from here on scores[i] IS masked: -inf items can never be selected
        if job.request.co2_weight == 0 and not cust.profile.preferences:
            plain.append(i)
    if plain:
        kk = max(jobs[i].request.k for i in plain)
        it, sc = pruned_top_k(scores[plain], kk)
        dst = [rows[i] for i in plain]
        items[dst, :kk], top[dst, :kk] = it, sc
    done = failed | set(plain)
    for i, job in enumerate(jobs):
        if i in done:
            continue
        k = job.request.k
        it, sc = rerank(
            scores[i : i + 1],
            k,
            None,  # already masked: -inf items can never be selected
            co2e=rt.co2e,
            co2_weight=job.request.co2_weight,
            penalty=rt.engine.preference_penalty(customers[i].profile),
        )
        items[rows[i], :k], top[rows[i], :k] = it[0], sc[0]


def pruned_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exactly `top_k(scores, k)`, but selection runs over a small candidate set per row.

    The k-th largest score of a strided sample of a row is <= the k-th largest of the whole row,
    so every item of the true top-k scores >= that threshold. Comparing against it is one cheap
    vectorised pass; the shared `top_k` then only partitions the few hundred survivors instead of
    the whole catalog (argpartition over ~90k items was the largest cost per request).
    """
    n_rows, n_items = scores.shape
    if n_items <= PRUNE_MIN_ITEMS or n_items // PRUNE_STRIDE <= k:
        return top_k(scores, k)
    sample = scores[:, ::PRUNE_STRIDE]
    threshold = np.partition(sample, sample.shape[1] - k, axis=1)[:, sample.shape[1] - k]
    items = np.full((n_rows, k), -1, dtype=np.int64)
    top = np.full((n_rows, k), -np.inf, dtype=np.float32)
    for r in range(n_rows):
        if not np.isfinite(threshold[r]):  # fewer than k allowed items in the sample: no pruning
            cand = np.flatnonzero(np.isfinite(scores[r]))
        else:
            cand = np.flatnonzero(scores[r] >= threshold[r])
        if not len(cand):
            continue
        local, sc = top_k(scores[r, cand][None, :], k)
        ok = local[0] >= 0
        items[r, : ok.sum()] = cand[local[0][ok]]
        top[r, : ok.sum()] = sc[0][ok]
    return items, top


def score_rows(rt: Runtime, customers: list[Customer]) -> np.ndarray:
    """(len(customers), n_items) scores; all plain model users in ONE `model.score` call."""
    model = rt.model
    scores = np.empty((len(customers), rt.n_items), dtype=np.float32)
    model_rows: list[int] = []
    fallback_rows: list[int] = []
    for i, c in enumerate(customers):
        if not c.personalised:
            fallback_rows.append(i)
        elif len(c.fresh) and model.supports_basket:
            scores[i] = model.score_basket(c.history)  # fold-in: history + what just happened
        elif c.user_idx >= 0:
            model_rows.append(i)
        else:
            fallback_rows.append(i)
    if len(model_rows) == len(customers):  # the common case: no extra copy of a batch x catalog array
        return model.score(np.array([c.user_idx for c in customers]))
    if model_rows:
        scores[model_rows] = model.score(np.array([customers[i].user_idx for i in model_rows]))
    if fallback_rows:
        scores[fallback_rows] = model.fallback_scores()
    return scores


def _diet_only(req: ProductsRequest) -> bool:
    return (
        req.mode == "mixed"
        and req.store is None
        and req.categories is None
        and req.include is None
        and not req.exclude
    )


def request_mask(rt: Runtime, req: ProductsRequest, cust: Customer) -> np.ndarray:
    """diet & categories & store & include/exclude & mode, as one boolean row."""
    mask = rt.engine.allowed(cust.profile) & rt.engine.in_stock(req.store)
    if req.categories is not None:
        mask &= rt.category_mask(frozenset(req.categories))
    if req.include is not None:
        inc = np.zeros(rt.n_items, dtype=bool)
        idx = rt.item_index(req.include)
        inc[idx[idx >= 0]] = True
        mask &= inc
    if req.exclude:
        idx = rt.item_index(req.exclude)
        mask[idx[idx >= 0]] = False
    if req.mode != "mixed":
        bought = np.zeros(rt.n_items, dtype=bool)
        bought[cust.history] = True
        mask &= bought if req.mode == "buy_again" else ~bought
    return mask


def reasons(rt: Runtime, cust: Customer, items: np.ndarray) -> list[tuple[str, int | None]]:
    """(reason, history item) per recommended item: the bought item that co-occurs with it most."""
    if not cust.personalised or not len(cust.history):
        text = "popular with shoppers" if cust.personalised else "popular with shoppers (not personalised)"
        return [(text, None)] * len(items)
    fresh = set(cust.fresh.tolist())
    if len(cust.fresh):
        hist = np.concatenate([cust.fresh, np.setdiff1d(cust.history, cust.fresh)])[:MAX_REASON_HISTORY]
    else:
        hist = cust.history[:MAX_REASON_HISTORY]
    out: list[tuple[str, int | None]] = [("recommended for you", None)] * len(items)
    bought = _contains_sorted(cust.history, items)
    others = [j for j in range(len(items)) if not bought[j]]
    for j in np.flatnonzero(bought):
        it = int(items[j])
        out[j] = ("you just bought this" if it in fresh else "you bought this before", it)
    if others:
        sim = _similarity(rt, items[others], hist)
        if len(cust.fresh):
            sim[:, : len(cust.fresh)] *= 1.5  # prefer explaining by what just happened
        best = sim.argmax(axis=1)
        for row, j in enumerate(others):
            if sim[row, best[row]] > 0:
                h = int(hist[best[row]])
                out[j] = (f"because you bought {rt.names[h] or rt.item_ids[h]}", h)
    return out


def _contains_sorted(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """`np.isin(queries, sorted_values)` for a sorted array, without np.isin's sort of both sides."""
    if not len(sorted_values):
        return np.zeros(len(queries), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, queries), len(sorted_values) - 1)
    return sorted_values[pos] == queries


def _similarity(rt: Runtime, items: np.ndarray, hist: np.ndarray) -> np.ndarray:
    """(len(items), len(hist)) similarity: factor cosine when the model has factors (a small dense
    product), else purchase co-occurrence cosine."""
    unit = rt.unit_item_factors
    if unit is not None:
        return unit[items] @ unit[hist].T
    csc = rt.seen_csc
    co = (csc[:, items].T @ csc[:, hist]).toarray()
    pop = np.maximum(np.diff(csc.indptr), 1).astype(np.float64)
    return co / np.sqrt(pop[items])[:, None] / np.sqrt(pop[hist])[None, :]


def response_json(
    rt: Runtime, req: ProductsRequest, cust: Customer, items: np.ndarray, scores: np.ndarray
) -> bytes:
    """The `ProductsResponse` body, serialised straight from plain values (no per-item model objects
    on the hot path; tests validate the body against `ProductsResponse`)."""
    why = reasons(rt, cust, items)
    item_ids, names, categories, co2e = rt.item_ids, rt.names, rt.categories, rt.co2e
    body = {
        "recommendation_id": uuid.uuid4().hex,
        "customer_id": req.customer_id,
        "model_version": rt.version,
        "personalised": cust.personalised and cust.fallback is None,
        "fallback": cust.fallback,
        "diet": cust.diet,
        "items": [
            {
                "item_id": str(item_ids[it]),
                "rank": r + 1,
                "score": s,
                "name": names[it],
                "category": categories[it],
                "reason": text,
                "reason_item_id": None if h is None else str(item_ids[h]),
                "co2e_per_kg": None if math.isnan(co2e[it]) else float(co2e[it]),
            }
            for r, (it, s, (text, h)) in enumerate(zip(items.tolist(), scores.tolist(), why, strict=True))
        ],
    }
    return to_json(body)
