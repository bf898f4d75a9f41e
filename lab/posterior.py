"""What the data can tell: posterior-expected TRUE response curves on synthetic data.

Why: "share of the oracle" mixes two gaps. The oracle knows every customer's true curve; a policy only
sees a few dozen baskets per customer and never the hidden response noise. This reference infers each
candidate's curve from the same tables with the generator's own priors and likelihoods and averages the
true response function over that posterior. A plan on these curves is the Bayes decision: in
expectation no policy that uses the data does better. It is generous: it is GIVEN each customer's
persona and mean basket size, and it knows how the data were made. It ignores the outcomes of the
logged offers (a handful per customer, which say little about the hidden noise next to the baskets).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gammaln

from lab.synthetic import (
    CHURN_FACTORS,
    CHURN_SHARE,
    DEAL_CONCENTRATION,
    DEAL_LINE_SHARE,
    EXTRA_QUANTITY,
    FORBIDDEN_LOGIT,
    GROW_FACTORS,
    GROW_SHARE,
    TASTE_CONCENTRATION,
    VISIT_SPREAD,
    SyntheticData,
    churn_weeks,
    persona_deal_mean,
    persona_parameter,
    preference_means,
    response_parameters,
    response_probability,
    visit_multiplier,
)
from lab.synthetic_catalog import GROUPS
from recsys.offers.groups import organic_interactions, product_groups


def _draw(weights: np.ndarray, rng: np.random.Generator, samples: int) -> np.ndarray:
    """`samples` grid indices per row from row-normalised weights (rows x grid), by inverse CDF."""
    cum = np.cumsum(weights, axis=1)
    cum /= cum[:, -1:]
    rows = np.arange(len(weights))[:, None]
    flat = (cum + rows).ravel()  # rows stacked on one increasing axis: one searchsorted for all
    idx = np.searchsorted(flat, (rng.random((len(weights), samples)) + rows).ravel())
    return np.minimum(idx.reshape(len(weights), samples) - rows * weights.shape[1], weights.shape[1] - 1)


def drift_grid(
    weeks: int, grow_points: int = 7, churn_points: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The generator's visit drifts on a grid: (configs x weeks visit multipliers, log prior weights,
    churner flags). Stable, growers (factor uniform in GROW_FACTORS), churners (churn week uniform in
    `churn_weeks`, factor uniform in CHURN_FACTORS)."""
    first, last = churn_weeks(weeks)
    cw = np.arange(first, last + 1)
    grow = np.linspace(*GROW_FACTORS, grow_points)
    churn = np.linspace(*CHURN_FACTORS, churn_points)
    drift = np.r_[["stable"], np.repeat("grow", grow_points), np.repeat("churn", len(cw) * churn_points)]
    factor = np.r_[1.0, grow, np.tile(churn, len(cw))]
    week = np.r_[-1, np.full(grow_points, -1), np.repeat(cw, churn_points)]
    prior = np.r_[
        1.0 - CHURN_SHARE - GROW_SHARE,
        np.full(grow_points, GROW_SHARE / grow_points),
        np.full(len(cw) * churn_points, CHURN_SHARE / (len(cw) * churn_points)),
    ]
    return visit_multiplier(drift, factor, week, weeks), np.log(prior), drift == "churn"


def visit_posterior(
    counts: np.ndarray,
    persona_visits: np.ndarray,
    rng: np.random.Generator,
    samples: int,
    rate_points: int = 61,
    chunk: int = 500,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior draws (rows x samples) of the visit rate in the last week and of the visit drop, from
    weekly visit counts (rows x weeks, week 0 first): Poisson visits at normal rate x drift multiplier,
    the normal rate lognormal around the persona's mean, the drift from `drift_grid`."""
    weeks = counts.shape[1]
    mult, log_prior, churner = drift_grid(weeks)
    z = np.linspace(-4.0, 4.0, rate_points)
    scale = np.exp(-(VISIT_SPREAD**2) / 2.0 + VISIT_SPREAD * z)
    now = mult[:, -1]
    drop = np.where(churner, np.clip(1.0 - now, 0.0, 1.0), 0.0)
    rate_now, drop_now = np.empty((len(counts), samples)), np.empty((len(counts), samples))
    for lo in range(0, len(counts), chunk):
        k = counts[lo : lo + chunk]
        r = persona_visits[lo : lo + chunk, None] * scale[None, :]  # rows x rates
        loglik = (
            k.sum(axis=1)[:, None, None] * np.log(r)[:, None, :]
            + (k @ np.log(mult).T)[:, :, None]
            - r[:, None, :] * mult.sum(axis=1)[None, :, None]
            + log_prior[None, :, None]
            - 0.5 * z[None, None, :] ** 2
        ).reshape(len(k), -1)
        weights = np.exp(loglik - loglik.max(axis=1, keepdims=True))
        idx = _draw(weights, rng, samples)
        config, rate = np.divmod(idx, rate_points)
        rate_now[lo : lo + chunk] = np.take_along_axis(r, rate, axis=1) * now[config]
        drop_now[lo : lo + chunk] = drop[config]
    return rate_now, drop_now


def line_parts(
    quantity: np.ndarray, max_parts: int = 4, max_quantity: int = 8, iters: int = 100
) -> np.ndarray:
    """P(a till line merges m purchases | its quantity q), q = 1..max_quantity (the last bucket holds the
    rest), m = 1..max_parts: each purchase adds 1 + Poisson(EXTRA_QUANTITY) units, and the mixture over
    m is fitted to all lines' quantities by EM. Why: a line that merges two purchases is on discount if
    either was, so counting lines as single draws over-states deal proneness."""
    q = np.clip(np.rint(quantity).astype(int), 1, max_quantity)
    seen = np.bincount(q, minlength=max_quantity + 1)[1:].astype(float)
    m = np.arange(1, max_parts + 1)
    extra = np.arange(1, max_quantity + 1)[:, None] - m[None, :]
    lam = EXTRA_QUANTITY * m[None, :]
    like = np.where(
        extra >= 0, np.exp(-lam + np.maximum(extra, 0) * np.log(lam) - gammaln(np.maximum(extra, 0) + 1)), 0.0
    )
    share = np.full(max_parts, 1.0 / max_parts)
    for _ in range(iters):
        post = like * share
        post /= np.maximum(post.sum(axis=1, keepdims=True), 1e-300)
        share = (seen[:, None] * post).sum(axis=0) / seen.sum()
    post = like * share
    return post / np.maximum(post.sum(axis=1, keepdims=True), 1e-300)


def deal_posterior(
    lines: np.ndarray,
    discounted: np.ndarray,
    parts: np.ndarray,
    deal_mean: np.ndarray,
    rng: np.random.Generator,
    samples: int,
    promo_share: float,
    points: int = 400,
) -> np.ndarray:
    """Posterior draws (rows x samples) of deal proneness d from a customer's lines and discounted lines
    per quantity bucket (rows x buckets) and `line_parts` (buckets x parts): Beta prior around the
    persona's mean; each purchase seeks a deal with probability s = DEAL_LINE_SHARE x d (and then is
    on discount), else meets a shelf promotion with probability `promo_share`, shared by the line."""
    d = (np.arange(points) + 0.5) / points
    m = np.arange(1, parts.shape[1] + 1)
    none = (1.0 - promo_share) * (1.0 - DEAL_LINE_SHARE * d[:, None]) ** m[None, :]  # grid x parts
    p = np.clip(1.0 - none @ parts.T, 1e-12, 1.0 - 1e-12)  # grid x buckets
    a, b = DEAL_CONCENTRATION * deal_mean, DEAL_CONCENTRATION * (1.0 - deal_mean)
    loglik = (
        discounted @ np.log(p).T
        + (lines - discounted) @ np.log1p(-p).T
        + (a - 1.0)[:, None] * np.log(d)
        + (b - 1.0)[:, None] * np.log1p(-d)
    )
    return d[_draw(np.exp(loglik - loglik.max(axis=1, keepdims=True)), rng, samples)]


def _weekly_visits(inter: pd.DataFrame, customers: pd.Index, start: pd.Timestamp, weeks: int) -> np.ndarray:
    baskets = inter.groupby("basket_id", sort=False).agg(c=("customer_id", "first"), t=("timestamp", "max"))
    week = ((baskets["t"] - start) // pd.Timedelta(weeks=1)).to_numpy().clip(0, weeks - 1)
    counts = np.zeros((len(customers), weeks))
    np.add.at(counts, (customers.get_indexer(baskets["c"]), week), 1.0)
    return counts


def _quantity_buckets(quantity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(`line_parts` of the lines, each line's quantity bucket)."""
    parts = line_parts(quantity)
    return parts, np.clip(np.rint(quantity).astype(int), 1, len(parts)) - 1


def _deal_draws(
    inter: pd.DataFrame,
    buckets: tuple[np.ndarray, np.ndarray],
    customers: pd.Index,
    persona: pd.Series,
    rng: np.random.Generator,
    samples: int,
    promo_share: float,
) -> np.ndarray:
    customer = customers.get_indexer(inter["customer_id"])
    parts, bucket = buckets
    lines, on_deal = np.zeros((len(customers), len(parts))), np.zeros((len(customers), len(parts)))
    np.add.at(lines, (customer, bucket), 1.0)
    np.add.at(on_deal, (customer, bucket), (inter["discount"].to_numpy() > 0).astype(float))
    mean = persona_deal_mean(persona_parameter(persona, "uplift"))
    return deal_posterior(lines, on_deal, parts, mean, rng, samples, promo_share)


def _preference_beta(
    inter: pd.DataFrame,
    buckets: tuple[np.ndarray, np.ndarray],
    products: pd.DataFrame,
    customers: pd.Index,
    persona: pd.Series,
    allowed: np.ndarray,
    c: np.ndarray,
    g: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Beta parameters of the preference of customer c for group g: the marginal of the Dirichlet(
    TASTE_CONCENTRATION x persona mean) prior updated with the customer's purchases per group (a till
    line counts its expected purchases)."""
    mean = preference_means(persona.to_numpy(), allowed)
    group = pd.Index([gr.category for gr in GROUPS]).get_indexer(
        inter["product_id"].map(product_groups(products))
    )
    parts, bucket = buckets
    purchases = (parts @ np.arange(1.0, parts.shape[1] + 1))[bucket]
    known = group >= 0
    per_group = np.zeros_like(mean)
    np.add.at(per_group, (customers.get_indexer(inter["customer_id"])[known], group[known]), purchases[known])
    a = TASTE_CONCENTRATION * mean[c, g] + per_group[c, g]
    b = TASTE_CONCENTRATION * (1.0 - mean[c, g]) + per_group[c].sum(axis=1) - per_group[c, g]
    return np.maximum(a, 1e-9), np.maximum(b, 1e-9)


def posterior_curves(
    data: SyntheticData,
    candidates: pd.DataFrame,
    as_of: pd.Timestamp,
    levels: np.ndarray,
    samples: int = 256,
    seed: int = 0,
    chunk: int = 4000,
) -> np.ndarray:
    """candidates x levels: E[true P(buy | level) | the tables before `as_of`] for each (customer_id,
    product_group) candidate, at the end of the period (the week the truth table holds)."""
    rng = np.random.default_rng(seed)
    cust = data.truth["customers"].set_index("customer_id")
    ids = pd.Index(cust.index)
    inter = organic_interactions(data.tables["interactions"], data.tables.get("offers"))
    inter = inter[inter["timestamp"] < as_of]
    visits = _weekly_visits(inter, ids, data.start, data.weeks)
    rate, drop = visit_posterior(visits, persona_parameter(cust["persona"], "visits"), rng, samples)
    buckets = _quantity_buckets(inter["quantity"].to_numpy(float))
    deal = _deal_draws(inter, buckets, ids, cust["persona"], rng, samples, data.promo_share)

    names = pd.Index([gr.category for gr in GROUPS])
    resp = data.truth["response"]
    allowed = np.zeros((len(ids), len(names)), dtype=bool)
    ok = resp["base_logit"].to_numpy() > FORBIDDEN_LOGIT / 2
    allowed[ids.get_indexer(resp["customer_id"][ok]), names.get_indexer(resp["product_group"][ok])] = True
    c = ids.get_indexer(candidates["customer_id"])
    g = names.get_indexer(candidates["product_group"])
    a, b = _preference_beta(inter, buckets, data.tables["products"], ids, cust["persona"], allowed, c, g)
    basket = cust["basket_mean"].to_numpy(float)[c]

    curves = np.zeros((len(candidates), len(levels)))
    for lo in range(0, len(candidates), chunk):
        rows = slice(lo, lo + chunk)
        shape = (len(c[rows]), samples)
        # the hidden noise: half per customer, half per customer x group (independent per pair here:
        # each curve is a marginal expectation)
        params = response_parameters(
            rate[c[rows]],
            basket[rows, None],
            rng.beta(a[rows, None], b[rows, None], shape),
            deal[c[rows]],
            drop[c[rows]],
            rng.normal(0.0, data.response_noise, shape),
            rng.normal(0.0, data.response_noise / 2.0, shape),
        )
        curves[rows] = response_probability(*params, levels).mean(axis=1)
    curves[~allowed[c, g]] = 0.0
    return curves
