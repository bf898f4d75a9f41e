"""Customer x product-group history features shared by the response model, the policy and the
Complete Journey redemption benchmark.

Why per group: an offer is on a product group, and the best single predictor of "buys from the group
in the offer window" is how often the customer bought from it lately; the discount only moves that
baseline. Everything is a groupby over the interaction table joined to the product -> group map.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Model features of a customer x group pair (see `pair_features`).
PAIR_FEATURES: tuple[str, ...] = (
    "logit_p_base",
    "logit_p_trip",
    "logit_p_recent",
    "logit_p_hist",
    "grp_share",
    "grp_deal",
    "log_grp_recency",
    "deal_proneness",
    "log_frequency",
    "log_visit_ratio",
    "log_aov",
    "is_dropping",
    "visit_drop",
    "deal_proneness_sq",
)


def product_groups(products: pd.DataFrame) -> pd.Series:
    """product_id -> product group (the category; department where the category is missing)."""
    group = products["category"].astype(object).where(products["category"].notna(), products["department"])
    return pd.Series(group.to_numpy(), index=products["product_id"].to_numpy(), name="product_group")


def organic_interactions(interactions: pd.DataFrame, offers: pd.DataFrame | None) -> pd.DataFrame:
    """The interactions without the lines that redeemed a logged offer (same customer and timestamp as
    an offer's `redeemed_at`): those purchases were caused by the offer, not by the customer's habit,
    so they would inflate the no-discount baseline of exactly the pairs that were offered before."""
    if offers is None or offers.empty or "redeemed_at" not in offers:
        return interactions
    red = offers[offers["redeemed_at"].notna()]
    if red.empty:
        return interactions
    key = pd.MultiIndex.from_arrays([interactions["customer_id"], interactions["timestamp"]])
    drop = key.isin(pd.MultiIndex.from_arrays([red["customer_id"], red["redeemed_at"]]))
    return interactions[~drop]


def purchase_baseline(
    interactions: pd.DataFrame,
    products: pd.DataFrame,
    as_of: pd.Timestamp,
    lookback_weeks: int = 26,
    halflife_weeks: float = 3.0,
    prior_lines: float = 3.0,
) -> pd.DataFrame:
    """No-discount purchase baseline per (customer_id, product_group) bought in the lookback.

    P(buys the group in a window of w weeks) = 1 - exp(-trips x in_basket x w) with
    - trips (`base_trip_rate`): the CURRENT weekly visit rate, a recency-weighted count of baskets
      (weight 0.5 ** (weeks ago / halflife_weeks), normalised over the weeks the customer was
      observed), so a churner's fading and a grower's rising rate are what counts, not the average;
    - in_basket (`base_in_basket`) = 1 - exp(-lines per basket x share of the customer's lines in the
      group): the taste share is estimated from every purchase line (hundreds per customer, far more
      than the few dozen baskets that hold the group), shrunk empirical-Bayes style towards the
      group's population share with `prior_lines` pseudo-lines (a Dirichlet-multinomial posterior mean).
    Pass `organic_interactions` (redemptions removed) for an uncontaminated baseline.
    """
    as_of = pd.Timestamp(as_of)
    ts = interactions["timestamp"]
    inter = interactions[(ts >= as_of - pd.Timedelta(weeks=lookback_weeks)) & (ts < as_of)]
    cols = ["base_trip_rate", "base_in_basket", "base_normal_rate"]
    if inter.empty:
        idx = pd.MultiIndex.from_arrays([[], []], names=["customer_id", "product_group"])
        return pd.DataFrame({c: [] for c in cols}, index=idx)
    groups = product_groups(products)
    frame = pd.DataFrame(
        {
            "customer_id": inter["customer_id"].to_numpy(),
            "product_group": inter["product_id"].map(groups).to_numpy(),
            "basket_id": inter["basket_id"].to_numpy(),
            "weeks_ago": (as_of - inter["timestamp"]).dt.total_seconds().to_numpy() / 604800.0,
        }
    )
    baskets = frame.groupby(["customer_id", "basket_id"], sort=False)["weeks_ago"].min()
    cust = baskets.index.get_level_values("customer_id")
    decay = 0.5 ** (1.0 / halflife_weeks)
    weight = pd.Series(decay ** np.floor(baskets.to_numpy()), index=cust).groupby(level=0).sum()
    observed = np.ceil(pd.Series(baskets.to_numpy(), index=cust).groupby(level=0).max().clip(lower=1.0))
    observed = observed.clip(upper=float(lookback_weeks)).reindex(weight.index)
    trip_rate = weight / ((1.0 - decay**observed) / (1.0 - decay))
    # the customer's normal rate: baskets per week in the older half of their observed window
    ago = pd.Series(baskets.to_numpy(), index=cust)
    half = (observed / 2.0).reindex(cust).to_numpy()
    older = (ago.to_numpy() >= half).astype(float)
    normal = pd.Series(older, index=cust).groupby(level=0).sum() / (observed - np.floor(observed / 2.0)).clip(
        lower=1.0
    )
    lines = frame.groupby("customer_id").size()
    per_basket = lines / baskets.groupby(level="customer_id").size()
    frame = frame.dropna(subset=["product_group"])
    grp_lines = frame.groupby(["customer_id", "product_group"]).size()
    pop = grp_lines.groupby(level="product_group").sum() / max(grp_lines.sum(), 1)
    c = grp_lines.index.get_level_values("customer_id")
    g = grp_lines.index.get_level_values("product_group")
    share = (grp_lines.to_numpy() + prior_lines * pop.reindex(g).to_numpy()) / (
        lines.reindex(c).to_numpy() + prior_lines
    )
    return pd.DataFrame(
        {
            "base_trip_rate": trip_rate.reindex(c).to_numpy(float),
            "base_in_basket": -np.expm1(-per_basket.reindex(c).to_numpy(float) * share),
            "base_normal_rate": normal.reindex(c).to_numpy(float),
        },
        index=grp_lines.index,
    )


def group_history(
    interactions: pd.DataFrame,
    products: pd.DataFrame,
    as_of: pd.Timestamp,
    lookback_weeks: int = 26,
    recent_weeks: int = 8,
    offers: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (customer_id, product_group) bought in the `lookback_weeks` before `as_of`.

    Columns: grp_baskets / grp_recent_baskets (baskets containing the group, whole lookback / last
    `recent_weeks`), grp_spend, grp_share (of the customer's spend), grp_value (average spend on the
    group per basket that has it), grp_deal (share of that spend bought on discount), grp_recency_days,
    weeks_observed (weeks of the lookback the customer was known, at least 1), and the
    `purchase_baseline` columns base_trip_rate / base_in_basket computed without the redemptions of
    `offers` (NaN for pairs bought only through an offer).
    """
    as_of = pd.Timestamp(as_of)
    start = as_of - pd.Timedelta(weeks=lookback_weeks)
    ts = interactions["timestamp"]
    inter = interactions[(ts >= start) & (ts < as_of)]
    groups = product_groups(products)
    frame = pd.DataFrame(
        {
            "customer_id": inter["customer_id"].to_numpy(),
            "product_group": inter["product_id"].map(groups).to_numpy(),
            "basket_id": inter["basket_id"].to_numpy(),
            "timestamp": inter["timestamp"].to_numpy(),
            "value": inter["value"].to_numpy(float),
            "deal": inter["value"].where(inter["discount"] > 0, 0.0).to_numpy(float),
        }
    ).dropna(subset=["product_group"])
    per_basket = (
        frame.groupby(["customer_id", "product_group", "basket_id"], sort=False)
        .agg(timestamp=("timestamp", "min"), value=("value", "sum"), deal=("deal", "sum"))
        .reset_index()
    )
    recent = per_basket["timestamp"] >= as_of - pd.Timedelta(weeks=recent_weeks)
    per_basket["recent"] = recent.astype(int)
    hist = per_basket.groupby(["customer_id", "product_group"]).agg(
        grp_baskets=("basket_id", "size"),
        grp_recent_baskets=("recent", "sum"),
        grp_spend=("value", "sum"),
        grp_deal_spend=("deal", "sum"),
        grp_last=("timestamp", "max"),
    )
    total = hist.groupby(level="customer_id")["grp_spend"].transform("sum")
    hist["grp_share"] = (hist["grp_spend"] / total.where(total > 0)).fillna(0.0)
    hist["grp_value"] = hist["grp_spend"] / hist["grp_baskets"]
    hist["grp_deal"] = (hist["grp_deal_spend"] / hist["grp_spend"].where(hist["grp_spend"] > 0)).fillna(0.0)
    hist["grp_recency_days"] = (as_of - hist["grp_last"]).dt.total_seconds() / 86400.0
    first = frame.groupby("customer_id")["timestamp"].min()
    weeks = ((as_of - first).dt.total_seconds() / 604800.0).clip(lower=1.0, upper=float(lookback_weeks))
    hist["weeks_observed"] = hist.index.get_level_values("customer_id").map(weeks).to_numpy()
    base = purchase_baseline(organic_interactions(interactions, offers), products, as_of, lookback_weeks)
    hist = hist.join(base, how="left")
    return hist.drop(columns=["grp_deal_spend", "grp_last"])


def group_value(history: pd.DataFrame, pairs: pd.DataFrame, prior_weight: float = 3.0) -> np.ndarray:
    """Expected spend on the group when the customer buys from it: their own average per basket,
    shrunk towards the group's average with `prior_weight` pseudo-baskets (few baskets -> noisy mean)."""
    group_mean = (
        history["grp_spend"].groupby(level="product_group").sum()
        / history["grp_baskets"].groupby(level="product_group").sum()
    )
    overall = float(history["grp_spend"].sum() / max(history["grp_baskets"].sum(), 1))
    idx = pd.MultiIndex.from_frame(pairs[["customer_id", "product_group"]])
    own = history.reindex(idx)
    n = own["grp_baskets"].fillna(0.0).to_numpy()
    prior = pairs["product_group"].map(group_mean).fillna(overall).to_numpy(float)
    mean = own["grp_value"].fillna(0.0).to_numpy()
    return (n * mean + prior_weight * prior) / (n + prior_weight)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.005, 0.995)
    return np.log(p) - np.log1p(-p)


def pair_features(
    history: pd.DataFrame,
    lifecycle: pd.DataFrame,
    pairs: pd.DataFrame,
    window_weeks: float | np.ndarray = 1.0,
    recent_weeks: int = 8,
) -> pd.DataFrame:
    """Model features (PAIR_FEATURES) for each (customer_id, product_group) row of `pairs`.

    logit_p_recent / logit_p_hist: logit of P(at least one basket with the group in the offer window)
    if the customer kept buying at their recent / whole-lookback rate (Poisson); pairs never bought
    get the floor. Customer columns come from `lifecycle_metrics`; unknown customers get neutral values.
    """
    idx = pd.MultiIndex.from_frame(pairs[["customer_id", "product_group"]])
    h = history.reindex(idx)
    window = np.broadcast_to(np.asarray(window_weeks, dtype=float), (len(pairs),))
    weeks = h["weeks_observed"].fillna(1.0).to_numpy()
    rate_hist = h["grp_baskets"].fillna(0.0).to_numpy() / weeks
    rate_recent = h["grp_recent_baskets"].fillna(0.0).to_numpy() / np.minimum(weeks, recent_weeks)
    life = lifecycle.reindex(pairs["customer_id"].to_numpy())
    # trips x taste: the current visit rate (whole-lookback rate x smoothed recent/baseline ratio) times
    # the share of the customer's baskets that hold the group (whole lookback: the most data per pair)
    visits = life["visits"].fillna(0.0).to_numpy(float) if "visits" in life else np.zeros(len(pairs))
    in_basket = (h["grp_baskets"].fillna(0.0).to_numpy() + 0.1) / (visits + 1.0)
    trip_rate = life["frequency"].fillna(0.0).to_numpy(float) * life["visit_ratio"].fillna(1.0).to_numpy(
        float
    )
    base_rate = (
        h["base_trip_rate"].to_numpy(float) * h["base_in_basket"].to_numpy(float)
        if "base_trip_rate" in h
        else np.full(len(pairs), np.nan)
    )
    if "base_normal_rate" in h:
        # 1 - current / normal visit rate (smoothed by one pseudo-visit a month on both sides)
        now, normal = h["base_trip_rate"].to_numpy(float), h["base_normal_rate"].to_numpy(float)
        visit_drop = np.nan_to_num(np.clip(1.0 - (now + 0.25) / (normal + 0.25), 0.0, 1.0), nan=0.0)
    else:
        visit_drop = np.zeros(len(pairs))
    out = pd.DataFrame(
        {
            "logit_p_base": _logit(-np.expm1(-np.nan_to_num(base_rate, nan=0.0) * window)),
            "logit_p_trip": _logit(-np.expm1(-trip_rate * np.clip(in_basket, 0.0, 1.0) * window)),
            "logit_p_recent": _logit(-np.expm1(-rate_recent * window)),
            "logit_p_hist": _logit(-np.expm1(-rate_hist * window)),
            "grp_share": h["grp_share"].fillna(0.0).to_numpy(),
            "grp_deal": h["grp_deal"].fillna(0.0).to_numpy(),
            "log_grp_recency": np.log1p(h["grp_recency_days"].fillna(365.0).to_numpy()),
            "deal_proneness": life["deal_proneness"].fillna(0.0).to_numpy(float),
            "log_frequency": np.log1p(life["frequency"].fillna(0.0).to_numpy(float)),
            "log_visit_ratio": np.log(life["visit_ratio"].fillna(1.0).clip(0.05, 20.0).to_numpy(float)),
            "log_aov": np.log1p(life["avg_order_value"].fillna(0.0).to_numpy(float)),
            "is_dropping": life["segment"].isin(["dropping", "dropping sharply", "lapsed"]).to_numpy(float),
            "visit_drop": visit_drop,
            "deal_proneness_sq": life["deal_proneness"].fillna(0.0).to_numpy(float) ** 2,
        },
        index=pairs.index,
    )
    return out[list(PAIR_FEATURES)]


def point_in_time_baseline(
    interactions: pd.DataFrame,
    products: pd.DataFrame,
    customer_id: np.ndarray,
    product_group: np.ndarray,
    at: np.ndarray,
    lookback_weeks: int = 26,
    halflife_weeks: float = 3.0,
    prior_lines: float = 3.0,
    trend: str = "changepoint",
    shape_prior: dict[str, np.ndarray] | None = None,
    recent_weeks: int = 4,
) -> pd.DataFrame:
    """`purchase_baseline` of each row (customer_id, product_group) as of its OWN time `at`, vectorised.

    Same estimator (recency-weighted trip rate, older-half normal rate, line-share in-basket
    probability shrunk towards the group's population share) but every row only sees the history
    strictly before its own `at`: a logged offer's baseline is what was knowable when it was sent,
    with no snapshot lag and no leakage of its outcome. One pass of sorted searches instead of one
    groupby per distinct time. The population share of each group is taken over the whole history
    (it barely moves and only enters through the `prior_lines` pseudo-lines).

    Also returns `deal_share` (share of the customer's lines in the lookback bought on discount),
    `base_visit_drop` (1 - current / normal visit rate), `observed_weeks`, and the recency of the
    customer's visits, `visits_recent` (baskets in the last `recent_weeks`) and `weeks_since_visit`
    (baseline calibration terms: a churner's silence says more than a smoothed rate); `attrs['shape_prior']`
    holds the fitted trend-shape prior (None for 'recency'), to pass back as `shape_prior`. `trend='changepoint'` (default) replaces the recency-weighted trip rate and
    the older-half normal rate by `trend_rates` (changepoint trend shapes, model-averaged; on the
    synthetic benchmark it halves the error of a steady customer's rate and follows a churner's
    decline), `trend='recency'` keeps `purchase_baseline`'s estimators. Pass `organic_interactions` so that redemptions of logged offers count
    neither as habit nor as deal proneness. Rows whose customer has no basket in the lookback get NaN.
    """
    n = len(customer_id)
    # whole seconds: (code x span + seconds) keys stay far inside int64 for millions of customers
    at = pd.to_datetime(pd.Series(np.asarray(at))).to_numpy("datetime64[s]").astype(np.int64)
    week_s = np.int64(604800)
    groups = product_groups(products)
    ts = interactions["timestamp"].to_numpy("datetime64[s]").astype(np.int64)
    cust_codes, cust_uni = pd.factorize(interactions["customer_id"], sort=True)
    qc = pd.Index(cust_uni).get_indexer(pd.Index(np.asarray(customer_id, dtype=object)))
    known = qc >= 0
    qc = np.where(known, qc, 0)
    lo_t, hi_t = at - lookback_weeks * week_s, at

    def ranges(key_code: np.ndarray, key_ts: np.ndarray, q_code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # rows sorted by (code, ts): the [lo, hi) slice of code q_code with ts in [at - lookback, at)
        order = np.lexsort((key_ts, key_code))
        c, t = key_code[order], key_ts[order]
        span = np.int64(t.max() - t.min() + 4 * lookback_weeks * week_s) if len(t) else np.int64(1)
        base = t.min() - 2 * lookback_weeks * week_s if len(t) else 0
        key = c.astype(np.int64) * span + (t - base)
        q_lo = q_code.astype(np.int64) * span + (lo_t - base)
        q_hi = q_code.astype(np.int64) * span + (hi_t - base)
        return order, np.searchsorted(key, q_lo, "left"), np.searchsorted(key, q_hi, "left")

    # lines (all, and of the pair's group) and lines bought on discount, via prefix sums
    order, lo, hi = ranges(cust_codes, ts, qc)
    lines = (hi - lo).astype(float)
    # deal proneness as the share of LINES on discount: each line is an equal draw of the habit, while
    # a spend share also carries the price noise of the few expensive lines (a noisier trait estimate)
    on_deal = np.r_[0.0, np.cumsum(interactions["discount"].to_numpy(float)[order] > 0)]
    deal_share = np.where(lines > 0, (on_deal[hi] - on_deal[lo]) / np.maximum(lines, 1.0), 0.0)

    line_group = interactions["product_id"].map(groups).to_numpy(dtype=object)
    has_group = pd.notna(line_group)
    g_codes, g_uni = pd.factorize(pd.Series(line_group[has_group]), sort=True)
    pop = np.bincount(g_codes, minlength=len(g_uni)) / max(has_group.sum(), 1)
    qg = pd.Index(g_uni).get_indexer(pd.Index(np.asarray(product_group, dtype=object)))
    pair_code = cust_codes[has_group].astype(np.int64) * (len(g_uni) + 1) + g_codes
    q_pair = qc.astype(np.int64) * (len(g_uni) + 1) + np.where(qg >= 0, qg, len(g_uni))
    _, glo, ghi = ranges(pair_code, ts[has_group], q_pair)
    grp_lines = np.where(qg >= 0, ghi - glo, 0).astype(float)
    prior = np.where(qg >= 0, pop[np.where(qg >= 0, qg, 0)], 0.0)

    # baskets: one timestamp each (the latest line), then a per-row weighted count over the slice
    bk = pd.DataFrame({"c": cust_codes, "b": interactions["basket_id"].to_numpy(), "t": ts})
    bk = bk.groupby(["c", "b"], sort=False)["t"].max().reset_index()
    b_order, blo, bhi = ranges(bk["c"].to_numpy(), bk["t"].to_numpy(), qc)
    b_t = bk["t"].to_numpy()[b_order]
    counts = bhi - blo
    row = np.repeat(np.arange(n), counts)
    idx = np.repeat(blo - np.r_[0, np.cumsum(counts)[:-1]], counts) + np.arange(counts.sum())
    ago = (at[row] - b_t[idx]) / float(week_s)
    decay = 0.5 ** (1.0 / halflife_weeks)
    weight = np.bincount(row, weights=decay ** np.floor(ago), minlength=n)
    oldest = np.zeros(n)
    np.maximum.at(oldest, row, ago)
    observed = np.clip(np.ceil(np.maximum(oldest, 1.0)), 1.0, float(lookback_weeks))
    trip_rate = weight / ((1.0 - decay**observed) / (1.0 - decay))
    older = np.bincount(row, weights=(ago >= (observed / 2.0)[row]).astype(float), minlength=n)
    visits_recent = np.bincount(row, weights=(ago < recent_weeks).astype(float), minlength=n)
    visit_ago = np.full(n, float(lookback_weeks))
    np.minimum.at(visit_ago, row, ago)
    normal = older / np.maximum(observed - np.floor(observed / 2.0), 1.0)
    drop = np.clip(1.0 - (trip_rate + 0.25) / (normal + 0.25), 0.0, 1.0)  # smoothed by a visit a month
    if trend == "changepoint":
        trip_rate, normal, drop, fitted_prior = _row_trend_rates(
            qc, at, row, ago, observed, n, lookback_weeks, shape_prior
        )
    elif trend != "recency":
        raise ValueError(f"trend must be 'changepoint' or 'recency', got {trend!r}")
    else:
        fitted_prior = None
    per_basket = lines / np.maximum(counts, 1)
    share = (grp_lines + prior_lines * prior) / (lines + prior_lines)
    ok = known & (counts > 0)
    nan = np.full(n, np.nan)
    out = pd.DataFrame(
        {
            "base_trip_rate": np.where(ok, trip_rate, nan),
            "base_in_basket": np.where(ok, -np.expm1(-per_basket * share), nan),
            "base_normal_rate": np.where(ok, normal, nan),
            "base_visit_drop": np.where(ok, drop, nan),
            "deal_share": np.where(ok, deal_share, nan),
            "observed_weeks": np.where(ok, observed, 0.0),
            "visits_recent": np.where(ok, visits_recent, nan),
            "weeks_since_visit": np.where(ok, visit_ago, nan),
        }
    )
    out.attrs["shape_prior"] = fitted_prior
    return out


def _row_trend_rates(
    qc: np.ndarray,
    at: np.ndarray,
    row: np.ndarray,
    ago: np.ndarray,
    observed: np.ndarray,
    n: int,
    lookback_weeks: int,
    shape_prior: dict[str, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """`trend_rates` of each row from its baskets (row, weeks ago), computed once per distinct
    (customer, time) so that the empirical-Bayes prior weighs customers, not their product groups."""
    codes, uniq = pd.factorize(pd.MultiIndex.from_arrays([qc, at]))
    first = np.zeros(len(uniq), dtype=np.int64)
    first[codes] = np.arange(n)  # one representative row per distinct key
    mine = first[codes][row] == row  # baskets of the representative rows
    bins = np.minimum(np.floor(ago[mine]).astype(np.int64), lookback_weeks - 1)
    counts = np.zeros((len(uniq), lookback_weeks))
    np.add.at(counts, (codes[row[mine]], bins), 1.0)
    exposed = np.arange(lookback_weeks)[None, :] < observed[first][:, None]
    now, normal, drop, prior = trend_rates(counts, exposed, prior=shape_prior)
    return now[codes], normal[codes], drop[codes], prior


#: Week-on-week visit-rate factors of the trend shapes (`trend_shapes`): decays down to 0.6 a week
#: (a customer leaving), slight growth up to 1.06 a week.
TREND_FACTORS: tuple[float, ...] = (
    *np.round(np.exp(np.linspace(np.log(0.6), np.log(0.97), 12)), 4),
    1.02,
    1.04,
    1.06,
)


def trend_shapes(n_bins: int, factors: tuple[float, ...] = TREND_FACTORS) -> tuple[np.ndarray, np.ndarray]:
    """Visit-rate shapes over weekly bins (bin j = j to j + 1 weeks before the decision): shape 0 is
    flat; the others are flat until a change `tau` weeks ago and then move by a factor k a week
    (rate(a) = r x k^(tau - a) for a < tau). Returns shapes (S x bins) and each shape's rate now
    relative to the customer's normal rate r (k^tau)."""
    ago = np.arange(n_bins) + 0.5
    shapes, now = [np.ones(n_bins)], [1.0]
    for k in factors:
        for tau in range(1, n_bins):
            shapes.append(np.where(ago < tau, k ** (tau - ago), 1.0))
            now.append(k**tau)
    return np.array(shapes), np.array(now)


def trend_rates(
    counts: np.ndarray,
    exposed: np.ndarray,
    prior_visits: float = 1.0,
    em_iters: int = 100,
    prior: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Current and normal weekly visit rate of each row from its weekly visit counts (rows x bins,
    bin 0 = the last week; `exposed` marks the weeks the customer was known).

    Why: a recency-weighted average lags a customer whose visits keep falling (the baseline of a
    churner is over-estimated) and is noisy for a steady one (only the last few weeks count). Here
    visits are Poisson with rate r x shape, the shape one of `trend_shapes` (flat, or a change some
    weeks ago followed by a steady decline or growth); r has a Gamma prior worth `prior_visits`
    visits at the population's mean rate, so every shape's evidence and r's posterior are closed
    form. The prior over shapes (log weights) is fitted to the rows by empirical Bayes (EM on the
    mixture weights) unless `prior` (shapes' log weights and the Gamma rate) is given: pass the one fitted on the logged offers when scoring
    the candidates, so that a training offer and a candidate with the same history get the same
    estimate (a prior fitted on each set separately shifted steady customers' rates by 0.1 log
    between the two, and the fitted baseline calibration carried that shift into every plan).

    Returns the posterior means of the rate now (r x shape at the decision time), of the normal
    rate r and of the visit drop 1 - rate now / normal rate (0 for flat or growing shapes), all
    model-averaged over shapes, and the prior ({'log_weights', 'beta'}).
    """
    shapes, now = trend_shapes(counts.shape[1])
    visits = counts.sum(axis=1)
    exposure = exposed.astype(float) @ shapes.T  # rows x shapes
    alpha = prior_visits
    beta = prior["beta"] if prior else alpha * exposed.sum() / max(visits.sum(), 1.0)
    loglik = counts @ np.log(shapes).T - (alpha + visits)[:, None] * np.log(beta + exposure)
    if prior:
        log_weights = prior["log_weights"]
    else:
        log_weights = np.full(len(shapes), -np.log(len(shapes)))
        for _ in range(em_iters):
            log_weights = np.log(_softmax_rows(loglik + log_weights).mean(axis=0) + 1e-12)
    post = _softmax_rows(loglik + log_weights)
    rate = (alpha + visits)[:, None] / (beta + exposure)
    drop = post @ np.clip(1.0 - now, 0.0, 1.0)
    prior = {"log_weights": log_weights, "beta": beta}
    return np.sum(post * rate * now, axis=1), np.sum(post * rate, axis=1), drop, prior


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


#: Features of the structural uplift model's height functions (see `structural_features`).
STRUCTURAL_FEATURES: tuple[str, ...] = (
    "deal_proneness",
    "deal_proneness_sq",
    "visit_drop",
    "log_trip_rate",
    "grp_affinity",
)


def structural_features(base: pd.DataFrame, window_weeks: float | np.ndarray = 1.0) -> pd.DataFrame:
    """From `point_in_time_baseline` rows: `offset` = logit P(buys the group in the window without a
    discount) = logit(1 - exp(-trips x in_basket x window)), and STRUCTURAL_FEATURES (deal proneness
    and its square, visit drop (`base_visit_drop`: 1 - current / normal visit rate), log trip rate, group affinity = log of the in-basket probability)."""
    window = np.broadcast_to(np.asarray(window_weeks, dtype=float), (len(base),))
    trip = base["base_trip_rate"].to_numpy(float)
    in_basket = base["base_in_basket"].to_numpy(float)
    p0 = -np.expm1(-trip * in_basket * window)
    deal = base["deal_share"].to_numpy(float)
    out = pd.DataFrame(
        {
            "offset": _logit(np.clip(p0, 0.002, 0.97)),
            "deal_proneness": deal,
            "deal_proneness_sq": deal**2,
            "visit_drop": base["base_visit_drop"].to_numpy(float),
            "log_trip_rate": np.log(trip + 0.1),
            "grp_affinity": np.log(np.clip(in_basket, 1e-3, 1.0)),
        },
        index=base.index,
    )
    if "visits_recent" in base:  # recency of the customer's visits (baseline calibration terms)
        out["log_visits_recent"] = np.log1p(base["visits_recent"].to_numpy(float))
        out["weeks_since_visit"] = base["weeks_since_visit"].to_numpy(float)
    return out


def organic_baseline_frame(
    interactions: pd.DataFrame,
    products: pd.DataFrame,
    offers: pd.DataFrame | None,
    as_of: pd.Timestamp,
    weeks_back: tuple[int, ...] = (1, 2, 3, 4),
    lookback_weeks: int = 26,
    min_history_weeks: float = 2.0,
    shape_prior: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame | None:
    """Pseudo-decisions without any discount, from the organic history: at each time t = as_of - k
    weeks, every (customer, group) bought in the lookback before t, with the structural inputs as of t
    (`point_in_time_baseline`) and `bought` = an organic line of the group in [t, t + 1 week).

    Why: the logged offers are few (and only a quarter at level 0), so a baseline calibration fitted
    on them alone is weak exactly where it matters, at low baselines (churners: their fitted baseline
    was 1.5-2 logits too high). The history holds tens of times more no-discount outcomes. Pairs with
    an offer sent in (t - 1 week, t + 1 week) are left out: the offer, not the habit, drove them.
    """
    inter = organic_interactions(interactions, offers)
    groups = product_groups(products)
    grp = inter["product_id"].map(groups)
    ok = grp.notna().to_numpy()
    lines = pd.DataFrame(
        {"customer_id": inter["customer_id"].to_numpy()[ok], "product_group": grp.to_numpy()[ok]}
    ).assign(ts=inter["timestamp"].to_numpy()[ok])
    parts = []
    for k in weeks_back:
        t = as_of - pd.Timedelta(weeks=k)
        past = lines[(lines["ts"] < t) & (lines["ts"] >= t - pd.Timedelta(weeks=lookback_weeks))]
        pairs = past[["customer_id", "product_group"]].drop_duplicates()
        nxt = lines[(lines["ts"] >= t) & (lines["ts"] < t + pd.Timedelta(weeks=1))]
        key = pd.MultiIndex.from_frame(pairs)
        pairs = pairs.assign(bought=key.isin(pd.MultiIndex.from_frame(nxt[["customer_id", "product_group"]])))
        if offers is not None and not offers.empty:
            near = offers[
                (offers["sent_at"] > t - pd.Timedelta(weeks=1))
                & (offers["sent_at"] < t + pd.Timedelta(weeks=1))
            ]
            pairs = pairs[~key.isin(pd.MultiIndex.from_frame(near[["customer_id", "product_group"]]))]
        parts.append(pairs.assign(at=t))
    pairs = pd.concat(parts, ignore_index=True)
    if pairs.empty:
        return None
    base = point_in_time_baseline(
        inter,
        products,
        pairs["customer_id"].to_numpy(),
        pairs["product_group"].to_numpy(),
        pairs["at"].to_numpy(),
        lookback_weeks=lookback_weeks,
        shape_prior=shape_prior,
    )
    frame = structural_features(base, 1.0).assign(bought=pairs["bought"].to_numpy().astype(int))
    keep = (base["observed_weeks"].to_numpy() >= min_history_weeks) & base[
        "base_trip_rate"
    ].notna().to_numpy()
    frame = frame[keep].reset_index(drop=True)
    return frame if len(frame) and frame["bought"].nunique() == 2 else None
