"""Food-first lists under a diet: compliant food the customer likely wants before non-food filler.

A diet mask removes much of a customer's food (everything `unknown` goes too), and what moves up in
its place is often non-food (hand cream, candles) that the model ranked just below. Food-first keeps
the list's non-food count at what the SAME request without the diet would show, and fills the freed
places with compliant food, in this order:

1. the model's own compliant food from a wider diet list (its scores order them);
2. substitutes of excluded favourites: compliant food of the same type, then the same category, as the
   food in the customer's history that the diet now forbids (most popular first);
3. diet-popular food: the most popular compliant food.

Every item still comes from the request's allowed mask (diet & stock & filters & mode), so the
fail-closed guarantee is untouched; k is honoured whenever k allowed items exist (non-food beyond the
cap comes back only if food runs out). Lists without a diet are returned exactly as they were.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recsys.diet.profiles import DietProfile

if TYPE_CHECKING:  # pragma: no cover
    from recsys.ranking.selection import ProductQuery, ProductSelector, Selection, Shopper

#: How many more items than k the wider diet list asks for (the model's own food comes first).
WIDEN = 2
REASON_SUBSTITUTE = "instead of {name}, which your diet excludes"
REASON_POPULAR = "popular with shoppers on your diet"


def is_food_column(items_table: pd.DataFrame) -> np.ndarray:
    """True where the labeler says the item is food ('yes'); unknown and non-food count as non-food."""
    if "is_food" not in items_table:
        return np.ones(len(items_table), dtype=bool)
    return items_table["is_food"].astype(object).eq("yes").to_numpy()


def _rank(popularity: np.ndarray) -> np.ndarray:
    """Popularity as a rank in [0, 1): a scale-free tie-breaker below the tier bonuses."""
    pop = np.asarray(popularity, dtype=np.float64)
    order = np.argsort(pop, kind="stable")
    rank = np.empty(len(pop), dtype=np.float64)
    rank[order] = np.arange(len(pop)) / max(len(pop), 1)
    return rank


def item_codes(items_table: pd.DataFrame, column: str) -> np.ndarray:
    """An integer code per product for `column` (product type, category); -1 where unknown."""
    if column not in items_table:
        return np.full(len(items_table), -1, dtype=np.int64)
    col = items_table[column].astype(object).where(items_table[column].notna(), None)
    return pd.factorize(col, use_na_sentinel=True)[0].astype(np.int64)


class FoodFirst:
    """Per-catalog arrays for food-first diet lists (built once per selector)."""

    def __init__(self, items_table: pd.DataFrame, popularity: np.ndarray, names: np.ndarray):
        self.food = is_food_column(items_table)
        self.types = item_codes(items_table, "type")
        self.categories = item_codes(items_table, "category")
        self.pop_rank = _rank(popularity)
        self.names = names

    def for_popularity(self, popularity: np.ndarray) -> FoodFirst:
        """The same catalog arrays with another model's popularity (a model of the same items)."""
        other = copy.copy(self)
        other.pop_rank = _rank(popularity)
        return other

    def fill(
        self, allowed: np.ndarray, history: np.ndarray, diet_allowed: np.ndarray, n: int, taken: set[int]
    ) -> list[tuple[int, str]]:
        """Up to n (item, reason) food fills from `allowed`: substitutes of excluded favourites first."""
        if n <= 0:
            return []
        usable = allowed & self.food
        if taken:
            usable[list(taken)] = False
        excluded = history[self.food[history] & ~diet_allowed[history]] if len(history) else history
        score = self.pop_rank.copy()
        source = np.full(len(score), -1, dtype=np.int64)
        for codes, bonus in ((self.categories, 1.0), (self.types, 2.0)):  # type overrides category
            fav = excluded[codes[excluded] >= 0]
            if not len(fav):
                continue
            first = pd.Series(fav, dtype=np.int64).groupby(codes[fav]).first()  # code -> a favourite
            hit = usable & np.isin(codes, first.index.to_numpy())
            score[hit] = bonus + self.pop_rank[hit]
            source[hit] = first.reindex(codes[hit]).to_numpy()
        cand = np.flatnonzero(usable)
        if not len(cand):
            return []
        top = cand[np.argsort(-score[cand], kind="stable")[:n]]
        out = []
        for i in top:
            src = int(source[i])
            if src >= 0:
                out.append((int(i), REASON_SUBSTITUTE.format(name=self.names[src] or "a product")))
            else:
                out.append((int(i), REASON_POPULAR))
        return out


def arrange(
    items: np.ndarray, scores: np.ndarray, food: np.ndarray, cap: int, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the list's order, all its food and at most `cap` non-food items, up to k.

    Returns (kept items, their scores, the positions in `items` of the non-food set aside, in order)
    so a caller can fill with food and fall back to the set-aside items only when food runs out.
    """
    keep, aside, n_nonfood = [], [], 0
    for pos, item in enumerate(items):
        if food[item]:
            keep.append(pos)
        elif n_nonfood < cap:
            keep.append(pos)
            n_nonfood += 1
        else:
            aside.append(pos)
    keep = keep[:k]
    return items[keep], scores[keep], np.asarray(aside, dtype=np.int64)


def select_food_first(
    selector: ProductSelector, queries: Sequence[ProductQuery], shoppers: Sequence[Shopper]
) -> list[Selection | Exception]:
    """`selector.select` with food-first applied to the requests that carry a diet."""
    from recsys.ranking.selection import Selection

    ff: FoodFirst = selector.food_first
    diet_rows = [i for i, s in enumerate(shoppers) if s.profile.exclusions]
    with_diet = set(diet_rows)
    wide = [replace(q, k=q.k * WIDEN) if i in with_diet else q for i, q in enumerate(queries)]
    out = selector.select(wide, shoppers, food_first=False)
    if not diet_rows:
        return out
    # only lists with non-food in their first k can change: the rest need no list without the diet
    rows = [
        i
        for i in diet_rows
        if not isinstance(out[i], Exception) and (~ff.food[out[i].items[: queries[i].k]]).any()
    ]
    plain_shoppers = [
        replace(shoppers[i], profile=DietProfile(preferences=shoppers[i].profile.preferences)) for i in rows
    ]
    base = selector.select([queries[i] for i in rows], plain_shoppers, food_first=False) if rows else []
    without_diet = dict(zip(rows, base, strict=True))
    for i in diet_rows:
        sel, without = out[i], without_diet.get(i)
        q, s = queries[i], shoppers[i]
        if isinstance(sel, Exception) or isinstance(without, Exception):
            continue
        if without is None:  # all food already: the first k of the wider list
            out[i] = Selection(sel.items[: q.k], sel.scores[: q.k], sel.reasons[: q.k])
            continue
        cap = int((~ff.food[without.items]).sum())
        items, scores, aside = arrange(sel.items, sel.scores, ff.food, cap, q.k)
        by_item = dict(zip(sel.items.tolist(), sel.reasons, strict=True))
        reasons = [by_item[int(it)] for it in items]
        missing = q.k - len(items)
        if missing > 0:
            mask = selector.mask(q, s)
            diet_ok = selector.engine.allowed(s.profile)
            fills = ff.fill(mask, s.history, diet_ok, missing, set(sel.items.tolist()))
            floor = float(scores[-1]) if len(scores) else 0.0
            fill_items = np.array([f for f, _ in fills], dtype=np.int64)
            fill_scores = floor - np.arange(1, len(fills) + 1, dtype=np.float32) * 1e-6
            items = np.concatenate([items, fill_items])
            scores = np.concatenate([scores, fill_scores.astype(scores.dtype)])
            reasons += [(text, None) for _, text in fills]
            still = q.k - len(items)
            if still > 0 and len(aside):
                back = aside[:still]
                items = np.concatenate([items, sel.items[back]])
                scores = np.concatenate([scores, sel.scores[back]])
                reasons += [sel.reasons[j] for j in back]
        out[i] = Selection(items[: q.k], scores[: q.k], reasons[: q.k])
    return out
