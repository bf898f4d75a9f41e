"""The no-discount purchase baseline a discount moves, estimated point in time from the history.

The response model (`recsys.offers.response`) only learns how a discount moves a customer's chance
to buy from a group; the chance without a discount comes from here: the customer's current visit rate
(a changepoint trend model, so a customer whose visits keep falling is not credited with their old
rate) times the chance that a basket holds the group. Everything is computed as of a given time from
the history strictly before it, for logged offers (their send time), organic pseudo-decisions and the
candidates of a plan alike, so equal histories give equal baselines in training and in planning.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.offers.groups import organic_interactions, product_groups


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.005, 0.995)
    return np.log(p) - np.log1p(-p)


def point_in_time_baseline(
    interactions: pd.DataFrame,
    products: pd.DataFrame,
    customer_id: np.ndarray,
    product_group: np.ndarray,
    at: np.ndarray,
    lookback_weeks: int = 26,
    prior_lines: float = 3.0,
    shape_prior: dict[str, np.ndarray] | None = None,
    recent_weeks: int = 4,
) -> pd.DataFrame:
    """The no-discount baseline of each row (customer_id, product_group) as of its OWN time `at`.

    P(buys the group in a window of w weeks) = 1 - exp(-trip rate x in_basket x w):
    - trip rate (`base_trip_rate`): the customer's CURRENT weekly visit rate from `trend_rates`
      (changepoint trend shapes, model-averaged), so a churner's fading rate is what counts, not
      their average; `base_normal_rate` is their rate before any change, `base_visit_drop`
      1 - current / normal rate;
    - in_basket (`base_in_basket`) = 1 - exp(-lines per basket x the customer's share of lines in the
      group), the share shrunk towards the group's population share with `prior_lines` pseudo-lines
      (every purchase line informs it, far more than the baskets that hold the group).

    Every row sees only the history strictly before its own `at`: a logged offer's baseline is what
    was knowable when it was sent, without leaking its outcome. One pass of sorted searches instead of
    one groupby per distinct time. The population shares come from the whole history (they only enter
    through the pseudo-lines).

    Also returns `deal_share` (share of the customer's lines in the lookback bought on discount),
    `observed_weeks`, and the recency of the customer's visits, `visits_recent` (baskets in the last
    `recent_weeks`) and `weeks_since_visit` (baseline calibration terms: a churner's silence says more
    than a smoothed rate). `attrs['shape_prior']` holds the trend-shape prior fitted on these rows;
    pass it back as `shape_prior` to score other rows with the same prior. Pass `organic_interactions`
    so that redemptions of logged offers count neither as habit nor as deal proneness. Rows whose
    customer has no basket in the lookback get NaN.
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
    oldest = np.zeros(n)
    np.maximum.at(oldest, row, ago)
    observed = np.clip(np.ceil(np.maximum(oldest, 1.0)), 1.0, float(lookback_weeks))
    visits_recent = np.bincount(row, weights=(ago < recent_weeks).astype(float), minlength=n)
    visit_ago = np.full(n, float(lookback_weeks))
    np.minimum.at(visit_ago, row, ago)
    trip_rate, normal, drop, fitted_prior = _row_trend_rates(
        qc, at, row, ago, observed, n, lookback_weeks, shape_prior
    )
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


#: Week-on-week visit-rate factors of the trend shapes (`trend_shapes`): steep to slow decays (a
#: customer leaving) and slight growth.
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
    mixture weights) unless `prior` (shapes' log weights and the Gamma rate) is given: pass the one
    fitted on the logged offers when scoring the candidates, so that a training offer and a candidate
    with the same history get the same estimate (priors fitted on each set separately shift the
    rates between the two, and the fitted baseline calibration would carry that shift into a plan).

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
    log_weights = prior["log_weights"] if prior else _mixture_log_weights(loglik, em_iters)
    post = _softmax_rows(loglik + log_weights)
    rate = (alpha + visits)[:, None] / (beta + exposure)
    drop = post @ np.clip(1.0 - now, 0.0, 1.0)
    prior = {"log_weights": log_weights, "beta": beta}
    return np.sum(post * rate * now, axis=1), np.sum(post * rate, axis=1), drop, prior


def _mixture_log_weights(loglik: np.ndarray, iters: int) -> np.ndarray:
    """Empirical-Bayes log weights of the mixture components (columns of the rows x components
    log-likelihoods) by EM from equal weights: w <- mean over rows of each row's posterior, plus 1e-12.
    The likelihoods are exponentiated once (each row scaled by its maximum, which the posterior
    ignores), so an iteration is two matrix-vector products instead of a softmax over the matrix."""
    like = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    w = np.full(loglik.shape[1], 1.0 / loglik.shape[1])
    for _ in range(iters):
        w = w * (like.T @ (1.0 / (like @ w))) / len(like) + 1e-12
    return np.log(w)


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def structural_features(base: pd.DataFrame, window_weeks: float | np.ndarray = 1.0) -> pd.DataFrame:
    """The response model's inputs from `point_in_time_baseline` rows: `offset` = logit P(buys the
    group in the window without a discount) = logit(1 - exp(-trip rate x in_basket x window)); the
    uplift's drivers `deal_proneness` (share of lines bought on discount), its square and
    `visit_drop`; and the baseline calibration terms `log_visits_recent` and `weeks_since_visit`."""
    window = np.broadcast_to(np.asarray(window_weeks, dtype=float), (len(base),))
    trip = base["base_trip_rate"].to_numpy(float)
    in_basket = base["base_in_basket"].to_numpy(float)
    p0 = -np.expm1(-trip * in_basket * window)
    deal = base["deal_share"].to_numpy(float)
    return pd.DataFrame(
        {
            "offset": _logit(np.clip(p0, 0.002, 0.97)),
            "deal_proneness": deal,
            "deal_proneness_sq": deal**2,
            "visit_drop": base["base_visit_drop"].to_numpy(float),
            "log_visits_recent": np.log1p(base["visits_recent"].to_numpy(float)),
            "weeks_since_visit": base["weeks_since_visit"].to_numpy(float),
        },
        index=base.index,
    )


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

    Why: the logged offers are few (and only some at level 0), so a baseline calibration fitted on
    them alone is weak exactly where it matters, at low baselines (churners'). The history holds many
    times more no-discount outcomes. Pairs with an offer sent in (t - 1 week, t + 1 week) are left
    out: the offer, not the habit, drove them.
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


def prior_features(
    history: pd.DataFrame,
    lifecycle: pd.DataFrame,
    pairs: pd.DataFrame,
    window_weeks: float | np.ndarray = 1.0,
    recent_weeks: int = 8,
) -> pd.DataFrame:
    """The inputs of `PriorResponse` for each (customer_id, product_group) row of `pairs`:
    `logit_p_recent`, the logit of P(at least one basket with the group in the offer window) if the
    customer kept buying it at their rate of the last `recent_weeks` (Poisson; pairs never bought get
    the floor), and `deal_proneness` from `lifecycle_metrics` (0 for unknown customers)."""
    idx = pd.MultiIndex.from_frame(pairs[["customer_id", "product_group"]])
    h = history.reindex(idx)
    window = np.broadcast_to(np.asarray(window_weeks, dtype=float), (len(pairs),))
    weeks = h["weeks_observed"].fillna(1.0).to_numpy()
    rate_recent = h["grp_recent_baskets"].fillna(0.0).to_numpy() / np.minimum(weeks, recent_weeks)
    life = lifecycle.reindex(pairs["customer_id"].to_numpy())
    return pd.DataFrame(
        {
            "logit_p_recent": _logit(-np.expm1(-rate_recent * window)),
            "deal_proneness": life["deal_proneness"].fillna(0.0).to_numpy(float),
        },
        index=pairs.index,
    )
