"""Seeded synthetic loyalty data with KNOWN ground truth.

Real data never tells us who is truly coeliac or how a customer would have answered a 20% coupon, so
models, diet filters and discount policies can only be scored against the truth on data we made.

What a caller can score against (``SyntheticData.truth``):
- ``customers``: persona, true (household) exclusions, whether they were declared, visit rate, drift.
- ``products``: every diet attribute as yes/no (the published table hides a share as 'unknown').
- ``preferences``: the category weights that drove every basket.
- ``response``: per customer x product group, the parameters of the true discount-response curve;
  ``true_response_probability`` turns them into P(buy from the group within a week | level), the
  oracle for any discount policy. Logged offers were drawn from it under ``logging_policy``.
- ``channels``: per customer, the true channel affinity (app push, email, in-store display) and
  active hours (`lab.channels`, the one channel truth). Logged offers go out on a consented channel at
  an hour drawn uniformly, and the channel and hour scale the discount's uplift
  (`lab.channels.uplift_factor`, 1 on average over logged sends, so ``response`` is that of a logged
  send). Baskets are shopped around the customer's active hours; consent per channel is published as
  ``customers.marketing_channels``, engagement per channel (the world's counts) as the
  ``engagement`` table.

The discount response (see ``_response``) is driven mostly by traits that leave traces in behaviour:
- baseline: P(a basket holds the group) x the visit rate of the week -> visible as the customer's
  purchase rate of the group (noisy: a few dozen baskets per customer);
- uplift height = 5 x deal^2 + 1.2 x visit drop; deal proneness ``deal`` in [0, 1] is a latent trait
  (truth ``customers.deal_proneness``) whose trace is the share of spend bought on promotion: each line
  is a deal purchase with probability 0.9 x deal (a promoted alternative when one is on the shelf,
  else a markdown/coupon), on top of the shelf promotions everybody meets; the visit drop of
  churners (truth ``customers.visit_drop_end``) shows as falling visit frequency;
- half-saturation level = 0.04 + 0.08 x (1 - deal) + 0.10 x visit drop (dropping customers need more).
NOT observable: a lognormal factor on the uplift height (sd ``response_noise``, half per customer, half
per customer x group) and on the half-saturation (sd response_noise / 2); ``observable_share`` measures
how much of the uplift height the observable drivers explain. Logged offers (``offers_per_customer``
per consenting customer) target a group the customer buys with probability 0.6 (else any group) and
their outcome follows the response in the week the offer was sent (a churner's baseline falls over
the period); the truth table holds the response at the end of the period, when a policy acts.

Everything is vectorised numpy (loops only over the handful of diet profiles), so the generator scales
to a retailer-sized customer base.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lab.channels import (
    ChannelWorld,
    channel_world,
    consent_matrix,
    engagement_table,
    truth_table,
    uplift_factor,
)
from lab.channels import logging_policy as channel_logging_policy
from lab.synthetic_catalog import (
    AGE_BANDS,
    ATTR_KEYS,
    EXCLUSION_ATTRIBUTES,
    GROUPS,
    INCOME_BANDS,
    MEMBER_EXCLUSIONS,
    PERSONA_DEFAULTS,
    PERSONAS,
)
from recsys.data.schema import CHANNELS, DIET_ATTRIBUTES, TABLES
from recsys.offers.channels import CHANNELS as OFFER_CHANNELS

if TYPE_CHECKING:
    from recsys.data.io import PartWriter

#: The discount ladder a policy chooses from (fraction off).
DISCOUNT_LEVELS: np.ndarray = np.array([0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30])
#: Hill exponent of the uplift curve: S-shaped, so some customers only move at larger levels.
UPLIFT_HILL = 2.0
#: Logit given to groups the customer may not buy (diet): the curve is ~0 whatever the discount.
FORBIDDEN_LOGIT = -30.0
#: Deal-proneness trait: Beta mean = DEAL_PER_UPLIFT x the persona's `uplift` (catalog), concentration below.
DEAL_PER_UPLIFT = 0.26
DEAL_CONCENTRATION = 12.0
#: Share of a deal-prone customer's lines bought on promotion per unit of trait (markdowns, coupons).
DEAL_LINE_SHARE = 0.9
#: Mean units on a purchase line beyond the first (Poisson); a till line sums a basket's repeats.
EXTRA_QUANTITY = 0.3
#: Default share of products on a shelf promotion in a week, which every shopper meets.
PROMO_SHARE = 0.10
#: Default sd of the hidden lognormal noise on the uplift height (half of it on the half-saturation).
RESPONSE_NOISE = 0.2
#: Visit drift: shares of churners and growers; their weekly rate factors are uniform in these ranges.
CHURN_SHARE, GROW_SHARE = 0.15, 0.10
CHURN_FACTORS, GROW_FACTORS = (0.70, 0.90), (1.01, 1.04)
#: Sd of the log normal visit rate around the persona's mean (the lognormal has mean 1).
VISIT_SPREAD = 0.5
#: Dirichlet concentration of a customer's group preferences around the persona's taste.
TASTE_CONCENTRATION = 12.0
#: Observable part of the response: uplift_max = _UPLIFT_DEAL x deal^2 + _UPLIFT_DROP x visit drop,
#: uplift_half = _HALF_BASE + _HALF_DEAL x (1 - deal) + _HALF_DROP x visit drop (see `_response`).
_UPLIFT_DEAL = 5.0
_UPLIFT_DROP = 1.2
_HALF_BASE, _HALF_DEAL, _HALF_DROP = 0.04, 0.08, 0.10
_FAVOURITE_SLOTS = np.array([0.45, 0.30, 0.15, 0.10])  # how often each personal favourite is picked
_STORES = 8
_WEEK_S = 7 * 86400


@dataclass(frozen=True)
class SyntheticData:
    tables: dict[str, pd.DataFrame]
    truth: dict[str, pd.DataFrame]
    seed: int = 0
    weeks: int = 26
    start: pd.Timestamp = pd.Timestamp("2024-01-01")  # week 0 starts here
    promo_share: float = PROMO_SHARE
    response_noise: float = RESPONSE_NOISE


# --------------------------------------------------------------------------------------------- helpers


def _str(values: pa.Array | np.ndarray | list) -> pd.Series:
    """A pandas 'str' column (pyarrow-backed, what `astype(str)` gives under pandas 3) without Python loops."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, type=pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pd.Series(arr.to_pandas(types_mapper={pa.string(): pd.StringDtype(na_value=np.nan)}.get))


def _ids(prefix: str, n: int) -> pa.Array:
    width = len(str(max(n - 1, 0)))
    digits = pc.utf8_lpad(pa.array(np.arange(n)).cast(pa.string()), width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _take(dictionary: pa.Array | list, codes: np.ndarray) -> pa.Array:
    dictionary = dictionary if isinstance(dictionary, pa.Array) else pa.array(dictionary, type=pa.string())
    return dictionary.take(pa.array(codes))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _hash_uniform(seed: int, *keys: np.ndarray) -> np.ndarray:
    """Deterministic U[0,1) per key tuple (splitmix64): favourites without storing customer x group tables."""
    x = np.full(np.shape(keys[0]), (seed * 0x9E3779B97F4A7C15) % 2**64, dtype=np.uint64)
    for k in keys:
        x = x ^ (np.asarray(k).astype(np.uint64) * np.uint64(0xD1B54A32D192ED03))
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


@dataclass(frozen=True)
class _Segments:
    """Many categorical distributions in one sorted array: draw(segment, u) is one sorted search.

    Segment s owns keys s + cumulative weight (scaled below 1), so a query s + u * total[s] lands
    inside s. Zero-weight entries repeat the previous key and can never be drawn. `guide[b]` counts
    the keys <= b / resolution: a query starts there and steps over the few keys left, which gives
    exactly `np.searchsorted(keys, query, side="right")` several times faster than its binary search
    over random queries (the step count is bounded; queries in crowded buckets fall back to it).
    """

    keys: np.ndarray
    values: np.ndarray
    total: np.ndarray
    guide: np.ndarray
    resolution: int  # guide buckets per segment

    _STEPS = 4  # forward steps from the guide before a query falls back to the binary search
    _KEYS_PER_BUCKET = 0.25

    @classmethod
    def build(cls, segment: np.ndarray, weight: np.ndarray, values: np.ndarray, n_segments: int) -> _Segments:
        order = np.lexsort((values, segment))
        segment, weight, values = segment[order], weight[order], values[order]
        total = np.bincount(segment, weights=weight, minlength=n_segments)
        cum = np.cumsum(weight)
        starts = np.searchsorted(segment, np.arange(n_segments))
        before = np.concatenate([[0.0], cum])[starts]
        cum = cum - before[segment]
        scale = np.where(total > 0, (1.0 - 1e-9) / np.where(total > 0, total, 1.0), 0.0)
        keys = segment + cum * scale[segment]
        resolution = max(1, int(np.ceil(len(keys) / cls._KEYS_PER_BUCKET / max(n_segments, 1))))
        edges = np.arange(n_segments * resolution + 1) / resolution
        guide = np.searchsorted(keys, edges, side="right").astype(np.int32 if len(keys) < 2**31 else np.int64)
        return cls(keys, values, total * scale, guide, resolution)

    def draw(self, segment: np.ndarray, u: np.ndarray) -> np.ndarray:
        if np.any(self.total[segment] <= 0):
            raise RuntimeError("draw from an empty segment (a diet-forbidden group was chosen)")
        return self.values[self._search(segment + u * self.total[segment])]

    def _search(self, q: np.ndarray) -> np.ndarray:
        """np.searchsorted(self.keys, q, side="right"): the number of keys <= each query."""
        keys, last = self.keys, len(self.keys) - 1
        bucket = np.minimum((q * self.resolution).astype(np.int64), len(self.guide) - 1)
        pos = self.guide[bucket].astype(np.int64)
        # rounding of q * resolution may start a query one bucket late: step back over keys > q
        back = np.flatnonzero((pos > 0) & (keys[np.maximum(pos - 1, 0)] > q))
        while back.size:
            pos[back] -= 1
            back = back[(pos[back] > 0) & (keys[np.maximum(pos[back] - 1, 0)] > q[back])]
        ahead = np.flatnonzero((pos <= last) & (keys[np.minimum(pos, last)] <= q))
        for _ in range(self._STEPS):
            if not ahead.size:
                break
            pos[ahead] += 1
            ahead = ahead[(pos[ahead] <= last) & (keys[np.minimum(pos[ahead], last)] <= q[ahead])]
        if ahead.size:
            pos[ahead] = np.searchsorted(keys, q[ahead], side="right")
        return pos


# --------------------------------------------------------------------------------------------- catalog


def _catalog(n_products: int, rng: np.random.Generator, hidden_share: float) -> dict:
    """Products spread over the groups, TRUE attributes per type, published attributes with holes."""
    G = len(GROUPS)
    share = np.array([g.share for g in GROUPS])
    breadth = share**0.6  # assortment is flatter than demand
    group = rng.choice(G, size=n_products, p=breadth / breadth.sum())
    group[:G] = np.arange(G)  # every group has at least one product
    group.sort()
    # type within group
    type_names, type_group, type_weight, type_co2e = [], [], [], []
    type_attr = []
    for gi, g in enumerate(GROUPS):
        for t in g.types:
            type_names.append(t.name)
            type_group.append(gi)
            type_weight.append(t.weight)
            type_co2e.append(np.nan if g.co2e is None else (t.co2e if t.co2e is not None else g.co2e))
            type_attr.append([t.attrs.get(k, 0.0) for k in ATTR_KEYS])
    type_group_a, type_weight_a = np.array(type_group), np.array(type_weight, dtype=float)
    type_seg = _Segments.build(type_group_a, type_weight_a, np.arange(len(type_names)), G)
    ptype = type_seg.draw(group, rng.random(n_products))
    # every type exists at least once (gluten-free bread, vegan cheese...) where the group has room
    for t, gi in enumerate(type_group):  # ~90 types, not products
        counts = np.bincount(ptype, minlength=len(type_names))
        donors = np.flatnonzero((group == gi) & (counts[ptype] > 1))
        if counts[t] == 0 and donors.size:
            ptype[donors[rng.integers(donors.size)]] = t
    p_yes = np.array(type_attr)[ptype]
    true_attr = rng.random(p_yes.shape) < p_yes  # n_products x 8, all known
    hidden = rng.random(true_attr.shape) < hidden_share
    food = np.array([g.is_food for g in GROUPS])[group]
    true_attr &= food[:, None]  # non-food carries no diet attribute
    popularity = (1.0 + rng.permutation(n_products)) ** -1.0  # Zipf over a random global rank
    price = np.array([g.price for g in GROUPS])[group] * rng.lognormal(0.0, 0.35, n_products)
    price = np.maximum(np.round(price, 2), 0.25)
    sizes = [g.sizes for g in GROUPS]
    size_idx = (rng.random(n_products) * np.array([len(s) for s in sizes])[group]).astype(int)
    flat_sizes = [s for ss in sizes for s in ss]
    size_offset = np.cumsum([0] + [len(s) for s in sizes])[:-1]
    size_code = size_offset[group] + size_idx
    co2e = np.array(type_co2e)[ptype] * rng.lognormal(0.0, 0.1, n_products)
    return dict(
        group=group,
        ptype=ptype,
        type_names=type_names,
        true_attr=true_attr,
        hidden=hidden,
        food=food,
        popularity=popularity,
        price=price,
        size_code=size_code,
        flat_sizes=flat_sizes,
        co2e=np.round(co2e, 2),
        brand_private=rng.random(n_products) < 0.3,
    )


def _products_table(cat: dict, product_ids: pa.Array) -> tuple[pd.DataFrame, pd.DataFrame]:
    dept = _take([g.department for g in GROUPS], cat["group"])
    category = _take([g.category for g in GROUPS], cat["group"])
    ptype = _take(cat["type_names"], cat["ptype"])
    brand = _take(["National", "Private"], cat["brand_private"].astype(int))
    size = _take(cat["flat_sizes"], cat["size_code"])
    name = pc.binary_join_element_wise(brand, pc.utf8_title(ptype), size, " ")
    yes_no = np.where(cat["true_attr"], "yes", "no")
    published = np.where(cat["hidden"], "unknown", yes_no)
    base = {
        "product_id": _str(product_ids),
        "name": _str(name),
        "department": _str(dept),
        "category": _str(category),
        "type": _str(ptype),
        "brand": _str(brand),
        "price": cat["price"].astype("float64"),
        "package_size": _str(size),
        "is_food": _str(np.where(cat["food"], "yes", "no")),
    }
    products = pd.DataFrame(
        {
            **base,
            **{a: _str(published[:, i]) for i, a in enumerate(DIET_ATTRIBUTES)},
            "co2e_per_kg": cat["co2e"],
        }
    )
    truth = pd.DataFrame(
        {
            "product_id": base["product_id"],
            "product_group": base["category"],
            "type": base["type"],
            "popularity": cat["popularity"],
            **{a: _str(yes_no[:, i]) for i, a in enumerate(DIET_ATTRIBUTES)},
        }
    )
    return products, truth


# --------------------------------------------------------------------------------------------- customers


def _forbidden_mask(names: np.ndarray) -> np.ndarray:
    """rows x DIET_ATTRIBUTES: which attributes each row's exclusion name forbids."""
    uniq, inv = np.unique(names, return_inverse=True)
    table = np.array([[a in EXCLUSION_ATTRIBUTES.get(nm, ()) for a in DIET_ATTRIBUTES] for nm in uniq])
    return table.reshape(len(uniq), len(DIET_ATTRIBUTES))[inv]


def _customers(n: int, weeks: int, rng: np.random.Generator, undeclared_share: float) -> dict:
    names = list(PERSONAS)
    share = np.array([PERSONAS[p]["share"] for p in names])
    persona = rng.choice(len(names), size=n, p=share / share.sum())
    param = {k: persona_parameter(np.array(names)[persona], k) for k in PERSONA_DEFAULTS}
    own_names = [PERSONAS[p]["exclusion"] for p in names]
    own = np.array([nm or "" for nm in own_names])[persona]
    member_names = list(MEMBER_EXCLUSIONS)
    mp = np.array(list(MEMBER_EXCLUSIONS.values()))
    member = np.where(
        np.array(names)[persona] == "family",
        np.array(member_names)[rng.choice(len(mp), n, p=mp / mp.sum())],
        "",
    )
    has_diet = (own != "") | (member != "")
    declared = ~has_diet | (rng.random(n) >= undeclared_share)
    # visit rate and drift: churners decay from a churn week on, growers rise slowly, the rest are stable
    visit_rate = param["visits"] * rng.lognormal(-(VISIT_SPREAD**2) / 2.0, VISIT_SPREAD, n)
    basket_mean = param["basket"] * rng.lognormal(-0.02, 0.2, n)
    drift_u = rng.random(n)
    drift = np.where(
        drift_u < CHURN_SHARE, "churn", np.where(drift_u < CHURN_SHARE + GROW_SHARE, "grow", "stable")
    )
    first, last = churn_weeks(weeks)
    churn_week = np.where(drift == "churn", rng.integers(first, last + 1, n), -1)
    drift_rate = np.where(
        drift == "churn",
        rng.uniform(*CHURN_FACTORS, n),
        np.where(drift == "grow", rng.uniform(*GROW_FACTORS, n), 1.0),
    )
    # deal proneness: a latent trait in [0, 1] around the persona's mean (deal hunters ~0.65, loyal ~0.01)
    deal_mean = persona_deal_mean(param["uplift"])
    deal = rng.beta(DEAL_CONCENTRATION * deal_mean, DEAL_CONCENTRATION * (1.0 - deal_mean))
    return dict(
        persona_names=names,
        persona=persona,
        persona_name=np.array(names)[persona],
        own=own,
        member=member,
        declared=declared,
        visit_rate=visit_rate,
        basket_mean=basket_mean,
        repeat=param["repeat"],
        uplift=param["uplift"],
        deal=deal,
        drift=drift,
        drift_rate=drift_rate,
        churn_week=churn_week,
        consent_personalisation=rng.random(n) < 0.93,
        consent_marketing=rng.random(n) < 0.80,
        household_size=np.where(member != "", rng.integers(3, 6, n), rng.integers(1, 5, n)),
        age=rng.integers(0, len(AGE_BANDS) + 1, n),  # last code = not given
        income=rng.integers(0, len(INCOME_BANDS) + 1, n),
        home_store=np.minimum(rng.zipf(1.6, n) - 1, _STORES - 1),
        online_share=np.where(rng.random(n) < 0.2, rng.uniform(0.2, 0.8, n), 0.0),
    )


def persona_parameter(persona: np.ndarray, key: str) -> np.ndarray:
    """A persona habit (`visits`, `basket`, `uplift`, `repeat`) per row, by persona name."""
    names = list(PERSONAS)
    values = np.array([PERSONAS[p].get(key, PERSONA_DEFAULTS[key]) for p in names], dtype=float)
    return values[pd.Index(names).get_indexer(np.asarray(persona))]


def churn_weeks(weeks: int) -> tuple[int, int]:
    """First and last week (inclusive) in which a churner's visits start to decline."""
    return weeks // 4, max(weeks // 2, weeks // 4 + 1)


def persona_deal_mean(uplift: np.ndarray) -> np.ndarray:
    """Mean of the deal-proneness trait from the persona's `uplift` parameter."""
    return np.clip(DEAL_PER_UPLIFT * np.asarray(uplift, dtype=float), 0.005, 0.9)


def visit_multiplier(drift: np.ndarray, factor: np.ndarray, churn_week: np.ndarray, weeks: int) -> np.ndarray:
    """rows x weeks factor on the normal visit rate: 1 for stable rows, factor^week for growers, and for
    churners factor^(weeks since the churn week, counting it)."""
    w = np.arange(weeks)[None, :]
    churn = np.asarray(churn_week)[:, None]
    steps = np.where(churn >= 0, np.maximum(0, w - churn + 1), w)
    return np.where(np.asarray(drift)[:, None] == "stable", 1.0, np.asarray(factor)[:, None] ** steps)


def _customer_rows(cust: dict, rows: slice | np.ndarray) -> dict:
    """The traits of some customers (the persona name list is shared)."""
    return {k: v if k == "persona_names" else v[rows] for k, v in cust.items()}


def _weekly_rate(cust: dict, weeks: int) -> np.ndarray:
    """customers x weeks visit rate after drift."""
    mult = visit_multiplier(cust["drift"], cust["drift_rate"], cust["churn_week"], weeks)
    return cust["visit_rate"][:, None] * mult


def _joined(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise 'a,b' skipping empty parts."""
    both = (a != "") & (b != "")
    return np.where(both, np.char.add(np.char.add(a, ","), b), np.char.add(a, b))


def _customer_tables(cust: dict, customer_ids: pa.Array) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    declared = cust["declared"]
    published = np.where(declared & (cust["own"] != ""), cust["own"], None)
    prefs = np.where(cust["persona_name"] == "flexitarian", "meat:0.6", None)
    cid = _str(customer_ids)
    customers = pd.DataFrame(
        {
            "customer_id": cid,
            "consent_personalisation": cust["consent_personalisation"],
            "consent_marketing": cust["consent_marketing"],
            "diet_exclusions": _str(pa.array(published, type=pa.string())),
            "diet_preferences": _str(pa.array(prefs, type=pa.string())),
            "household_size": cust["household_size"].astype("int64"),
            "age_band": _str(_take([*AGE_BANDS, None], cust["age"])),
            "income_band": _str(_take([*INCOME_BANDS, None], cust["income"])),
        }
    )
    has_member = (cust["member"] != "") & declared
    idx = np.flatnonzero(has_member)
    members = pd.DataFrame(
        {
            "customer_id": _str(_take(customer_ids, idx)),
            "member_id": _str(pc.binary_join_element_wise(_take(customer_ids, idx), "child", "-")),
            "diet_exclusions": _str(cust["member"][idx]),
        }
    )
    truth = pd.DataFrame(
        {
            "customer_id": cid,
            "persona": _str(cust["persona_name"]),
            "true_exclusions": _str(_joined(cust["own"], cust["member"])),
            "member_exclusions": _str(cust["member"]),
            "declared": declared,
            "visit_rate": cust["visit_rate"],
            "basket_mean": cust["basket_mean"],
            "drift": _str(cust["drift"]),
            "drift_rate": cust["drift_rate"],
            "churn_week": cust["churn_week"].astype("int64"),
            "deal_proneness": cust["deal"],
        }
    )
    return customers, members, truth


# --------------------------------------------------------------------------------------------- behaviour


def _profiles(cust: dict, true_attr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Customers grouped by the TRUE household exclusion set; allowed[profile, product]."""
    own = _forbidden_mask(cust["own"])
    member = _forbidden_mask(cust["member"])
    bits = (own | member) @ (1 << np.arange(len(DIET_ATTRIBUTES)))
    uniq, profile = np.unique(bits, return_inverse=True)
    forbidden = ((uniq[:, None] >> np.arange(len(DIET_ATTRIBUTES))) & 1).astype(bool)  # profiles x attrs
    allowed = ~(forbidden.astype(np.int8) @ true_attr.T.astype(np.int8)).astype(bool)  # profiles x products
    return profile, allowed


def preference_means(persona: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """rows x groups mean of a customer's group preferences: the groups' base shares times the taste of
    the row's persona (by name), over the groups its diet allows (`allowed`, rows x groups)."""
    names = list(PERSONAS)
    base = np.array([g.share for g in GROUPS])
    taste = np.ones((len(names), len(GROUPS)))
    for pi, p in enumerate(names):
        for gi, g in enumerate(GROUPS):
            for tag in g.tags:
                taste[pi, gi] *= PERSONAS[p]["taste"].get(tag, 1.0)
    mean = base[None, :] * taste[pd.Index(names).get_indexer(np.asarray(persona))] * allowed
    return mean / mean.sum(axis=1, keepdims=True)


def _preferences(
    cust: dict, allowed_group: np.ndarray, profile: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """customers x groups weights: Dirichlet around the persona's taste, zero where nothing is allowed."""
    mean = preference_means(cust["persona_name"], allowed_group[profile])
    w = rng.gamma(TASTE_CONCENTRATION * mean + 1e-12) * (mean > 0)
    w /= w.sum(axis=1, keepdims=True)
    return w


@dataclass(frozen=True)
class _ResponseNoise:
    """The idiosyncratic part of the response, drawn once: log-uplift and log-half-saturation noise
    per customer and per customer x group. Nothing in the tables reveals it."""

    uplift_c: np.ndarray
    uplift_cg: np.ndarray
    half_cg: np.ndarray

    @classmethod
    def draw(cls, n: int, G: int, sd: float, rng: np.random.Generator) -> _ResponseNoise:
        part = sd / np.sqrt(2.0)  # half of the variance per customer, half per customer x group
        return cls(rng.normal(0.0, part, n), rng.normal(0.0, part, (n, G)), rng.normal(0.0, 0.5 * sd, (n, G)))


def _visit_drop(cust: dict, weeks: int) -> np.ndarray:
    """customers x weeks: 1 - (visit rate / the customer's normal rate) while churning, else 0."""
    mult = _weekly_rate(cust, weeks) / cust["visit_rate"][:, None]
    return np.where(cust["drift"][:, None] == "churn", np.clip(1.0 - mult, 0.0, 1.0), 0.0)


def _response(
    w: _World, noise: _ResponseNoise, c: np.ndarray, g: np.ndarray, week: np.ndarray
) -> dict[str, np.ndarray]:
    """True discount-response parameters of customer c for group g in week `week` (arrays, same shape).

    Observable drivers: the baseline is the customer's expected purchase rate from the group in that
    week (visit rate after drift x basket size x taste); the uplift height grows with deal proneness
    (squared: indifferent customers hardly move) and with how far visits have dropped; the half-
    saturation level is low for deal-prone customers and high for dropping ones (they need more).
    Hidden: the lognormal noise in `noise`.
    """
    cust = w.cust
    rows, at = np.unique(c, return_inverse=True)  # the weekly curves of the customers asked about only
    some = _customer_rows(cust, rows)
    base, umax, half = response_parameters(
        _weekly_rate(some, w.weeks)[at, week],
        cust["basket_mean"][c],
        w.prefs[c, g],
        cust["deal"][c],
        _visit_drop(some, w.weeks)[at, week],
        noise.uplift_c[c] + noise.uplift_cg[c, g],
        noise.half_cg[c, g],
    )
    ok = w.allowed_group[w.profile[c], g]
    return dict(
        base_logit=np.where(ok, base, FORBIDDEN_LOGIT),
        uplift_max=np.where(ok, umax, 0.0),
        uplift_half=half,
    )


def response_parameters(
    rate: np.ndarray,
    basket_mean: np.ndarray,
    preference: np.ndarray,
    deal: np.ndarray,
    drop: np.ndarray,
    uplift_noise: np.ndarray,
    half_noise: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base_logit, uplift_max, uplift_half) of the response curve from the customer's week (visit rate,
    basket size, group preference, deal proneness, visit drop) and the hidden log-noise terms, for a
    group the customer's diet allows. Arrays broadcast."""
    # P(a basket holds the group) from the basket size and taste; trips are Poisson at the week's rate
    in_basket = -np.expm1(-basket_mean * preference)
    p0 = np.clip(-np.expm1(-rate * in_basket), 0.002, 0.97)
    umax, half = observable_response(deal, drop)
    return (
        np.log(p0) - np.log1p(-p0),
        umax * np.exp(uplift_noise),
        np.clip(half * np.exp(half_noise), 0.02, 0.4),
    )


def observable_response(deal: np.ndarray, drop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Uplift height and half-saturation level implied by the observable traits (deal proneness, visit
    drop) before the hidden noise: what a perfect response model could know from behaviour."""
    height = _UPLIFT_DEAL * deal**2 + _UPLIFT_DROP * drop
    half = _HALF_BASE + _HALF_DEAL * (1.0 - deal) + _HALF_DROP * drop
    return height, half


def observable_share(data: SyntheticData) -> float:
    """R^2 of uplift_max (allowed customer x group pairs) explained by its observable drivers (deal
    proneness, visit drop) times the mean noise factor; the rest is the idiosyncratic noise."""
    resp, cust = data.truth["response"], data.truth["customers"].set_index("customer_id")
    ok = resp["uplift_max"].to_numpy() > 0
    c = resp.loc[ok, "customer_id"]
    deal = c.map(cust["deal_proneness"]).to_numpy()
    drop = c.map(cust["visit_drop_end"]).to_numpy()
    observable = observable_response(deal, drop)[0]
    total = resp.loc[ok, "uplift_max"].to_numpy()
    fitted = observable * (total.sum() / observable.sum())
    return float(1.0 - np.mean((total - fitted) ** 2) / np.var(total))


def true_response_probability(
    truth_response: pd.DataFrame, levels: np.ndarray = DISCOUNT_LEVELS
) -> np.ndarray:
    """Oracle P(buy from the group within the offer week | discount level): rows x levels.

    sigmoid(base_logit + uplift_max * L^h / (L^h + uplift_half^h)); non-decreasing in L, 0 uplift at L=0.
    """
    return response_probability(
        truth_response["base_logit"].to_numpy(float),
        truth_response["uplift_max"].to_numpy(float),
        truth_response["uplift_half"].to_numpy(float),
        levels,
    )


def response_probability(
    base_logit: np.ndarray,
    uplift_max: np.ndarray,
    uplift_half: np.ndarray,
    levels: np.ndarray = DISCOUNT_LEVELS,
) -> np.ndarray:
    """`true_response_probability` from the parameter arrays (any shape): shape + (levels,)."""
    lv = np.asarray(levels, dtype=float) ** UPLIFT_HILL
    half = np.asarray(uplift_half, dtype=float)[..., None] ** UPLIFT_HILL
    uplift = np.asarray(uplift_max, dtype=float)[..., None] * lv / (lv + half)
    return _sigmoid(np.asarray(base_logit, dtype=float)[..., None] + uplift)


def logging_policy(visit_rate: np.ndarray, levels: np.ndarray = DISCOUNT_LEVELS) -> np.ndarray:
    """P(level | customer) of the policy that produced the logged offers: rows x levels, rows sum to 1.

    Infrequent visitors got bigger discounts (they also respond more), so naive averages are biased;
    a 15% uniform floor keeps every propensity above 2% for inverse-propensity estimates.
    """
    z = np.clip(np.log(np.asarray(visit_rate, dtype=float)), -1.5, 1.5)
    logits = -(1.0 + 3.0 * z)[:, None] * np.asarray(levels, dtype=float)[None, :] * 10.0
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return 0.85 * p + 0.15 / len(levels)


# --------------------------------------------------------------------------------------------- generate


@dataclass(frozen=True)
class _World:
    """Everything behaviour is drawn from: catalog, customers, their diet profile and taste."""

    seed: int
    weeks: int
    cat: dict
    cust: dict
    profile: np.ndarray  # customer -> true household exclusion profile
    allowed_group: np.ndarray  # profile x group: anything the profile may buy there
    prefs: np.ndarray  # customer x group weights
    items: _Segments  # (profile, group) -> allowed products by popularity
    channels: ChannelWorld  # channel affinity, active hours, consent per channel (lab.channels)

    def favourite(self, cust: np.ndarray, group: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """A customer's slot-th favourite product in a group: stable over time, always diet-safe."""
        seg = self.profile[cust] * len(GROUPS) + group
        return self.items.draw(seg, _hash_uniform(self.seed, cust, group, slot))

    def shelf(self) -> _Shelf:
        return _Shelf(self.seed, self.weeks, self.cat["price"], self.items)

    def shoppers(self, block: slice) -> _Shoppers:
        peak = self.channels.customers["peak_hour"].to_numpy()
        return _Shoppers(
            block.start, _customer_rows(self.cust, block), self.prefs[block], self.profile[block], peak[block]
        )


@dataclass(frozen=True)
class _Shelf:
    """What every block's purchase lines are drawn from besides its customers (small: the catalog)."""

    seed: int
    weeks: int
    price: np.ndarray  # per product
    items: _Segments  # (profile, group) -> allowed products by popularity


@dataclass(frozen=True)
class _Shoppers:
    """The traits of one block of customers that their purchase lines are drawn from: rows `lo`.. of
    the world (views, which pickle as the block's rows alone: a block goes to a worker process
    without the world)."""

    lo: int
    cust: dict
    prefs: np.ndarray  # block rows x groups
    profile: np.ndarray
    peak_hour: np.ndarray


def _world(seed: int, weeks: int, cat: dict, cust: dict, rng: np.random.Generator, ids: pa.Array) -> _World:
    G = len(GROUPS)
    profile, allowed = _profiles(cust, cat["true_attr"])
    allowed_group = np.stack([np.bincount(cat["group"], weights=a, minlength=G) > 0 for a in allowed])
    prefs = _preferences(cust, allowed_group, profile, rng)
    pp, prod = np.nonzero(allowed)
    items = _Segments.build(pp * G + cat["group"][prod], cat["popularity"][prod], prod, len(allowed) * G)
    # its own random stream: the channel world leaves every other draw of the generator as it was
    channels = channel_world(len(profile), [seed, 1], cust["consent_marketing"], _str(ids).to_numpy())
    return _World(seed, weeks, cat, cust, profile, allowed_group, prefs, items, channels)


def _visits(cust: dict, weeks: int, rng: np.random.Generator) -> np.ndarray:
    """customers x weeks store visits (baskets): the first draw of a block's random stream."""
    return rng.poisson(_weekly_rate(cust, weeks))


def _lines(
    shelf: _Shelf, shoppers: _Shoppers, rng: np.random.Generator, promo: np.ndarray | float
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Purchase lines of a block of customers, in time order: Poisson visits at the drifting rate,
    groups by taste, items by habit. `promo` is the product x week shelf-promotion calendar, or the
    share of products on promotion to draw it with (first block); returned for the next blocks."""
    G, n_products = len(GROUPS), len(shelf.price)
    cust = shoppers.cust  # local rows; `lc + lo` is the global customer
    lo = shoppers.lo
    # baskets, customer-major (so the per-customer draws below hit memory in order)
    visits = _visits(cust, shelf.weeks, rng)
    b_cust, b_week = np.nonzero(visits)
    reps = visits[b_cust, b_week]
    b_cust, b_week = np.repeat(b_cust, reps), np.repeat(b_week, reps).astype(np.int32)
    nb = len(b_cust)
    peak = shoppers.peak_hour[b_cust]
    hour = np.clip(peak + rng.normal(0.0, 1.0, nb), 7, 22)
    b_sec = b_week * _WEEK_S + rng.integers(0, 7, nb) * 86400 + (hour * 3600).astype(np.int64)
    b_channel = np.where(
        rng.random(nb) < cust["online_share"][b_cust], np.where(rng.random(nb) < 0.6, 1, 2), 0
    )
    b_store = np.where(rng.random(nb) < 0.9, cust["home_store"][b_cust], rng.integers(0, _STORES, nb))
    b_size = 1 + rng.poisson(np.maximum(cust["basket_mean"][b_cust] - 1.0, 0.1))

    basket = np.repeat(np.arange(nb), b_size)
    n = len(basket)
    lc = b_cust[basket]
    prefs = shoppers.prefs
    rows = np.repeat(np.arange(len(prefs)), G)
    taste = _Segments.build(rows, prefs.ravel(), np.tile(np.arange(G, dtype=np.int8), len(prefs)), len(prefs))
    group = taste.draw(lc, rng.random(n)).astype(np.int64)
    # a personal favourite ("buy again") with the persona's repeat rate, else a popularity draw (discovery)
    slot = np.searchsorted(np.cumsum(_FAVOURITE_SLOTS), rng.random(n) * _FAVOURITE_SLOTS.sum(), side="right")
    fav = rng.random(n) < cust["repeat"][lc]
    u = np.where(fav, _hash_uniform(shelf.seed, lc + lo, group, slot), rng.random(n))
    seg = shoppers.profile[lc] * G + group
    product = shelf.items.draw(seg, u)
    del group, slot, fav, u  # a block's line arrays are large: free each as soon as it is used
    week = b_week[basket]
    if not isinstance(promo, np.ndarray):
        promo = np.where(
            rng.random((n_products, shelf.weeks)) < promo,
            rng.choice([0.1, 0.2, 0.3], (n_products, shelf.weeks)),
            0.0,
        )
    # deal seeking, in proportion to the trait: the line goes to a promoted alternative in the group when
    # one is on the shelf this week, else to a personal markdown/coupon on the usual product
    seek = np.flatnonzero(rng.random(n) < DEAL_LINE_SHARE * cust["deal"][lc])
    alt = shelf.items.draw(seg[seek], rng.random(seek.size))
    swap = (promo[product[seek], week[seek]] == 0) & (promo[alt, week[seek]] > 0)
    product[seek[swap]] = alt[swap]
    del seg, alt, swap
    line_promo = promo[product, week]
    coupon = seek[line_promo[seek] == 0]
    line_promo[coupon] = rng.choice([0.1, 0.2, 0.3], coupon.size)
    quantity = 1.0 + rng.poisson(EXTRA_QUANTITY, n)
    gross = shelf.price[product] * quantity
    discount = gross * line_promo
    del week, seek, coupon, line_promo

    # one line per product and basket, as a till prints it: merge repeats of a product in a basket
    key = basket * n_products + product
    order = np.argsort(key, kind="stable")  # baskets are already ascending: only within-basket order moves
    key = key[order]
    head = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    del key
    quantity, gross, discount = (np.add.reduceat(a[order], head) for a in (quantity, gross, discount))
    lc, product, basket = lc[order[head]], product[order[head]], basket[order[head]]
    n, b_size = len(head), np.bincount(basket, minlength=nb)
    del order, head

    # time order: baskets by timestamp, lines follow their basket
    border = np.argsort(b_sec, kind="stable")
    size_sorted = b_size[border]
    starts = np.cumsum(b_size) - b_size
    new_starts = np.cumsum(size_sorted) - size_sorted
    perm = np.repeat(starts[border] - new_starts, size_sorted) + np.arange(n)
    lines = dict(
        customer=(lc[perm] + lo).astype(np.int32),
        product=product[perm].astype(np.int32),
        sec=b_sec[border][np.repeat(np.arange(nb), size_sorted)],
        quantity=quantity[perm],
        gross=gross[perm],
        discount=discount[perm],
        channel=np.repeat(b_channel[border].astype(np.int8), size_sorted),
        basket=np.repeat(np.arange(nb), size_sorted),
        store=np.repeat(b_store[border].astype(np.int8), size_sorted),
    )
    return lines, promo


def _offers(w: _World, noise: _ResponseNoise, rng: np.random.Generator, per_customer: float) -> dict:
    """Logged offers: a consenting customer, a group (past campaigns targeted what the customer buys
    with probability 0.6, else any group), a level from `logging_policy`, and the outcome drawn from
    the true response IN THE WEEK THE OFFER WAS SENT (a churner's baseline falls over the period)."""
    cust, G = w.cust, len(GROUPS)
    reachable = np.flatnonzero(cust["consent_marketing"])
    n = int(round(per_customer * len(reachable))) if reachable.size else 0
    o_cust = rng.choice(reachable, n) if n else np.zeros(0, dtype=np.int64)
    taste = _Segments.build(
        np.repeat(np.arange(len(w.prefs)), G),
        w.prefs.ravel(),
        np.tile(np.arange(G), len(w.prefs)),
        len(w.prefs),
    )
    targeted = rng.random(n) < 0.6
    o_group = np.where(targeted, taste.draw(o_cust, rng.random(n)), rng.integers(0, G, n))
    policy = logging_policy(cust["visit_rate"][o_cust])
    level = (rng.random(n)[:, None] > np.cumsum(policy, axis=1)[:, :-1]).sum(axis=1)
    o_week = rng.integers(0, w.weeks - 1, n)
    o_resp = pd.DataFrame(_response(w, noise, o_cust, o_group, o_week))
    p_buy = true_response_probability(o_resp, DISCOUNT_LEVELS)[np.arange(n), level]
    # the channel and hour of the send scale the discount's uplift (lab.channels.uplift_factor)
    channel, hour = channel_logging_policy(w.channels, o_cust, np.random.default_rng([w.seed, 2]))
    p_none = true_response_probability(o_resp, DISCOUNT_LEVELS[:1])[:, 0]
    p_buy = np.clip(p_none + uplift_factor(w.channels, o_cust, channel, hour) * (p_buy - p_none), 0.0, 1.0)
    redeemed = (rng.random(n) < p_buy) & w.allowed_group[w.profile[o_cust], o_group]
    sent = o_week * _WEEK_S + rng.integers(0, 7, n) * 86400 + hour * 3600
    return dict(
        customer=o_cust,
        group=o_group,
        level=DISCOUNT_LEVELS[level],
        propensity=policy[np.arange(n), level],
        sent=sent,
        redeemed=redeemed,
        redeemed_sec=sent + rng.integers(0, _WEEK_S, n),
        channel=channel,
    )


def _redemption_lines(w: _World, off: dict) -> dict[str, np.ndarray]:
    """A redeemed discount buys the customer's top favourite in the group, in a basket of its own."""
    idx = np.flatnonzero(off["redeemed"] & (off["level"] > 0))
    idx = idx[np.argsort(off["redeemed_sec"][idx], kind="stable")]
    c, g = off["customer"][idx], off["group"][idx]
    product = w.favourite(c, g, np.zeros(idx.size, dtype=np.int64))
    gross = w.cat["price"][product]
    return dict(
        customer=c,
        product=product,
        sec=off["redeemed_sec"][idx],
        quantity=np.ones(idx.size),
        gross=gross,
        discount=gross * off["level"][idx],
        channel=np.zeros(idx.size, dtype=np.int64),
        basket=np.arange(idx.size),
        store=w.cust["home_store"][c],
    )


#: Customers drawn per block: what memory holds at once when synthetic data is written in parts.
BLOCK_CUSTOMERS = 10_000
_BASKET_DIGITS = 10  # fixed width, so basket ids sort like their numbers whatever the block count


def _basket_ids(numbers: np.ndarray) -> pa.Array:
    """'B' + the number zero-padded to _BASKET_DIGITS: written digit by digit into one byte matrix when
    every number fits the width (faster than Arrow's cast, pad and join, which handle the rest)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if numbers.size and (numbers.min() < 0 or numbers.max() >= 10**_BASKET_DIGITS):
        digits = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), _BASKET_DIGITS, "0")
        return pc.binary_join_element_wise("B", digits, "")
    width = _BASKET_DIGITS + 1
    chars = np.empty((numbers.size, width), dtype=np.uint8)
    chars[:, 0] = ord("B")
    rest = numbers.copy()
    for col in range(width - 1, 0, -1):
        rest, digit = np.divmod(rest, 10)
        chars[:, col] = digit + ord("0")
    offsets = np.arange(numbers.size + 1, dtype=np.int32) * width
    return pa.StringArray.from_buffers(numbers.size, pa.py_buffer(offsets), pa.py_buffer(chars))


def _interactions_table(
    part: dict[str, np.ndarray], basket_offset: int, customer_ids: pa.Array, product_ids: pa.Array, t0
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": _str(_take(customer_ids, part["customer"])),
            "product_id": _str(_take(product_ids, part["product"])),
            "timestamp": (t0 + part["sec"].astype("timedelta64[s]")).astype("datetime64[ns]"),
            "quantity": part["quantity"],
            "value": np.round(part["gross"] - part["discount"], 2),
            "discount": np.round(part["discount"], 2),
            "channel": _str(_take(list(CHANNELS), part["channel"])),
            "basket_id": _str(_basket_ids(part["basket"] + basket_offset)),
            "store_id": _str(_take([f"S{i + 1}" for i in range(_STORES)], part["store"])),
        }
    )


@dataclass(frozen=True)
class _Synthesis:
    """Small tables and truth, plus what the large ones are drawn from block by block of customers:
    the first block's lines come from the main random stream (before the offers), every later block
    from its own seeded stream, so a block never needs its neighbours."""

    tables: dict[str, pd.DataFrame]  # every table but interactions
    truth: dict[str, pd.DataFrame]  # customers, products
    w: _World
    noise: _ResponseNoise
    first: dict[str, np.ndarray]
    promo: np.ndarray
    redemptions: dict[str, np.ndarray]
    customer_ids: pa.Array
    product_ids: pa.Array
    t0: np.datetime64
    block: int

    def blocks(self) -> list[slice]:
        n = len(self.w.prefs)
        return [slice(lo, min(lo + self.block, n)) for lo in range(0, n, self.block)]

    def basket_offsets(self) -> list[int]:
        """Where each block's basket ids start, then the redemptions': the baskets drawn before it. A
        block's baskets are its visits, the first draw of its own stream, so no line is drawn here."""
        counts = [int(self.first["basket"].max()) + 1 if len(self.first["basket"]) else 0]
        for i, blk in enumerate(self.blocks()[1:], start=1):
            visits = _visits(
                _customer_rows(self.w.cust, blk), self.w.weeks, np.random.default_rng([self.w.seed, i])
            )
            counts.append(int(visits.sum()))
        return np.cumsum([0, *counts]).tolist()

    def interaction_parts(self) -> Iterator[pd.DataFrame]:
        """Purchase lines block by block (each in time order), then the offer redemptions."""
        offset = 0
        for i, blk in enumerate(self.blocks()):
            rng = np.random.default_rng([self.w.seed, i])
            lines = self.first if i == 0 else _lines(self.w.shelf(), self.w.shoppers(blk), rng, self.promo)[0]
            yield _interactions_table(lines, offset, self.customer_ids, self.product_ids, self.t0)
            offset += int(lines["basket"].max()) + 1 if len(lines["basket"]) else 0
        yield _interactions_table(self.redemptions, offset, self.customer_ids, self.product_ids, self.t0)

    def response_parts(self) -> Iterator[pd.DataFrame]:
        """Truth: the response of every customer x group at the end of the period (when a policy acts)."""
        G, margin = len(GROUPS), np.array([g.margin for g in GROUPS])
        for blk in self.blocks():
            c, g = np.repeat(np.arange(blk.start, blk.stop), G), np.tile(np.arange(G), blk.stop - blk.start)
            resp = _response(self.w, self.noise, c, g, np.full(c.size, self.w.weeks - 1))
            yield pd.DataFrame({**self._keys(c, g), **resp, "margin": margin[g]})

    def preference_parts(self) -> Iterator[pd.DataFrame]:
        G = len(GROUPS)
        for blk in self.blocks():
            c, g = np.repeat(np.arange(blk.start, blk.stop), G), np.tile(np.arange(G), blk.stop - blk.start)
            yield pd.DataFrame({**self._keys(c, g), "weight": self.w.prefs[blk].ravel()})

    def _keys(self, c: np.ndarray, g: np.ndarray) -> dict[str, pd.Series]:
        return {
            "customer_id": _str(_take(self.customer_ids, c)),
            "product_group": _str(_take([x.category for x in GROUPS], g)),
        }


def _synthesise(
    n_customers: int,
    n_products: int,
    weeks: int,
    seed: int,
    start: str = "2024-01-01",
    hidden_share: float = 0.10,
    undeclared_share: float = 0.20,
    offers_per_customer: float = 8.0,
    promo_share: float = PROMO_SHARE,
    response_noise: float = RESPONSE_NOISE,
    block: int = BLOCK_CUSTOMERS,
) -> _Synthesis:
    if n_products < len(GROUPS) or weeks < 2 or n_customers < 1:
        raise ValueError(f"need n_products >= {len(GROUPS)}, weeks >= 2 and n_customers >= 1")
    rng = np.random.default_rng(seed)
    G = len(GROUPS)
    t0 = np.datetime64(pd.Timestamp(start).tz_localize(None).to_datetime64(), "s")

    cat = _catalog(n_products, rng, hidden_share)
    cust = _customers(n_customers, weeks, rng, undeclared_share)
    product_ids, customer_ids = _ids("P", n_products), _ids("C", n_customers)
    products, truth_products = _products_table(cat, product_ids)
    customers, members, truth_customers = _customer_tables(cust, customer_ids)
    w = _world(seed, weeks, cat, cust, rng, customer_ids)
    first, promo = _lines(w.shelf(), w.shoppers(slice(0, min(block, n_customers))), rng, promo_share)
    noise = _ResponseNoise.draw(n_customers, G, response_noise, rng)
    off = _offers(w, noise, rng, offers_per_customer)
    truth_customers["visit_drop_end"] = _visit_drop(cust, weeks)[:, -1]

    group_names = [g.category for g in GROUPS]
    sent = t0 + off["sent"].astype("timedelta64[s]")
    redeemed_at = t0 + off["redeemed_sec"].astype("timedelta64[s]")
    offers = pd.DataFrame(
        {
            "offer_id": _str(_ids("O", len(sent))),
            "customer_id": _str(_take(customer_ids, off["customer"])),
            "product_group": _str(_take(group_names, off["group"])),
            "discount_level": off["level"],
            "sent_at": sent.astype("datetime64[ns]"),
            "expires_at": (sent + np.timedelta64(7, "D")).astype("datetime64[ns]"),
            "channel": _str(_take(list(OFFER_CHANNELS), off["channel"])),
            "redeemed_at": np.where(off["redeemed"], redeemed_at, np.datetime64("NaT")).astype(
                "datetime64[ns]"
            ),
            "propensity": off["propensity"],
            "campaign_id": _str(pa.nulls(len(sent), pa.string())),
        }
    )
    tables = {
        "customers": customers,
        "household_members": members,
        "products": products,
        "offers": offers,
        # engagement per channel from the same truth: what the channel model's prior reads
        "engagement": engagement_table(w.channels, pd.Timestamp(t0), weeks, [seed, 3]),
        "campaign_products": pd.DataFrame({"campaign_id": _str([]), "product_id": _str([])}),
        # the generator's deals are per line, not a store calendar: an empty (valid) calendar
        "promotions": pd.DataFrame(
            {
                "product_id": pd.Series([], dtype=str),
                "store_id": pd.Series([], dtype=str),
                "week_start": pd.Series([], dtype="datetime64[ns]"),
                "display": pd.Series([], dtype=bool),
                "mailer": pd.Series([], dtype=bool),
            }
        ),
    }
    consent = consent_matrix(w.channels)
    listed = [",".join(c for c, ok in zip(OFFER_CHANNELS, row, strict=True) if ok) for row in consent]
    listed = pa.array(np.where(consent.any(axis=1), listed, None), type=pa.string())
    customers.insert(customers.columns.get_loc("consent_marketing") + 1, "marketing_channels", _str(listed))
    truth = {"customers": truth_customers, "products": truth_products, "channels": truth_table(w.channels)}
    return _Synthesis(
        tables, truth, w, noise, first, promo, _redemption_lines(w, off), customer_ids, product_ids, t0, block
    )


def generate(
    n_customers: int = 2000,
    n_products: int = 3000,
    weeks: int = 26,
    seed: int = 0,
    start: str = "2024-01-01",
    hidden_share: float = 0.10,
    undeclared_share: float = 0.20,
    offers_per_customer: float = 8.0,
    promo_share: float = PROMO_SHARE,
    response_noise: float = RESPONSE_NOISE,
    block: int = BLOCK_CUSTOMERS,
) -> SyntheticData:
    """Canonical tables plus the ground truth that produced them, in memory; identical for identical
    arguments (`write_synthetic_parts` writes the same data without holding it)."""
    syn = _synthesise(
        n_customers,
        n_products,
        weeks,
        seed,
        start,
        hidden_share,
        undeclared_share,
        offers_per_customer,
        promo_share,
        response_noise,
        block,
    )
    interactions = pd.concat(list(syn.interaction_parts()), ignore_index=True)
    order = np.argsort(interactions["timestamp"].to_numpy(), kind="stable")  # one time-ordered table
    tables = {
        name: df for name, df in syn.tables.items() if name in ("customers", "household_members", "products")
    }
    tables["interactions"] = interactions.iloc[order].reset_index(drop=True)
    tables.update(syn.tables)
    truth = {
        **syn.truth,
        "response": pd.concat(list(syn.response_parts()), ignore_index=True),
        "preferences": pd.concat(list(syn.preference_parts()), ignore_index=True),
    }
    return SyntheticData(
        tables=tables,
        truth=truth,
        seed=seed,
        weeks=weeks,
        start=pd.Timestamp(start),
        promo_share=promo_share,
        response_noise=response_noise,
    )


# --------------------------------------------------------------------------------------------- writing


def _write(
    out: Path,
    seed: int,
    tables: dict[str, pd.DataFrame],
    truth: dict[str, pd.DataFrame],
    interactions: Iterable[pd.DataFrame] | PartWriter,
    truth_parts: dict[str, Iterable[pd.DataFrame]],
) -> dict:
    from recsys.data.io import write_tables

    manifest = {"source": "synthetic", "seed": seed, "truth": sorted([*truth, *truth_parts])}
    # empty optional tables (campaign_products) are left out: absent and empty mean the same
    tables = {name: df for name, df in tables.items() if len(df) or TABLES[name].required}
    return write_tables(
        tables,
        Path(out),
        manifest,
        extra={f"truth_{name}": df for name, df in truth.items()},
        parts={"interactions": interactions},
        extra_parts={f"truth_{name}": parts for name, parts in truth_parts.items()},
    )


def write_synthetic(data: SyntheticData, out: Path) -> dict:
    """Validated, atomic write of generated data: tables as `<table>.parquet` (purchase lines as
    `interactions/part-*.parquet`), truth as `extra/truth_<name>.parquet`."""
    tables = {name: df for name, df in data.tables.items() if name != "interactions"}
    return _write(out, data.seed, tables, data.truth, [data.tables["interactions"]], {})


def write_synthetic_parts(
    out: Path,
    n_customers: int,
    n_products: int,
    weeks: int,
    seed: int = 0,
    block: int = BLOCK_CUSTOMERS,
    workers: int = 1,
) -> dict:
    """Generate and write block by block of `block` customers (the same data `generate` makes): purchase
    lines and the customer x group truth go to Parquet parts as they are drawn, so memory follows the
    block, the catalog and the per-customer traits, not the number of purchase lines.

    `workers` > 1 draws, validates and writes the purchase-line blocks in that many worker processes
    (`lab.synthetic_workers`); the files written are the same whatever the number."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    syn = _synthesise(n_customers, n_products, weeks, seed, block=block)
    parts = {"response": syn.response_parts(), "preferences": syn.preference_parts()}
    if workers == 1:
        return _write(out, seed, syn.tables, syn.truth, syn.interaction_parts(), parts)
    from lab.synthetic_workers import interaction_writer

    return _write(out, seed, syn.tables, syn.truth, interaction_writer(syn, workers), parts)


def read_truth(data_dir: Path) -> dict[str, pd.DataFrame]:
    """The ground-truth tables written next to a synthetic data directory."""
    from recsys.data.io import read_extra

    extra = Path(data_dir, "extra")
    names = {p.name.removesuffix(".parquet") for p in extra.glob("truth_*")}
    return {name.removeprefix("truth_"): read_extra(data_dir, name) for name in sorted(names)}
