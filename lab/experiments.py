"""Simulated online experiments with a KNOWN true effect, for proving the analysis (A/A and A/B).

Each of `sims` experiments draws `customers` customers (arrays of shape (sims, customers), so a
thousand experiments are a handful of numpy operations):
- a latent weekly spend level lambda ~ Gamma(2, mean/2): what makes pre- and post-period spend
  correlated (the CUPED covariate is the pre-period spend lambda x Gamma noise);
- assignment by share, an exposure day uniform over the experiment's days (daily looks see the
  customers exposed so far, with their whole attribution window: outcomes are not delayed);
- conversion (any purchase in the window) with probability `conversion`, spend lambda x Gamma noise
  if converted; the treatment multiplies spend by (1 + lift), so the true relative lift of spend per
  customer is exactly `lift` and conversion is unchanged;
- a discount plan (`DiscountTruth`): treated customers redeem with probability `redeem`; a redeemer
  spends `uplift` x g more in the group (g ~ Gamma, mean `group_spend`) and is paid `level` x
  (1 + uplift) x g. The true incremental margin per treated customer is closed-form (`true_margin`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from recsys.experiments.stats import Moments


@dataclass(frozen=True)
class DiscountTruth:
    redeem: float = 0.3
    uplift: float = 1.0
    level: float = 0.10
    group_spend: float = 10.0
    gross_margin: float = 0.3

    def true_margin(self) -> float:
        """E[margin | plan] - E[margin | holdout] per customer: redeemers' extra margin minus discounts."""
        per_redeemer = self.gross_margin * self.uplift - self.level * (1 + self.uplift)
        return self.redeem * per_redeemer * self.group_spend


@dataclass(frozen=True)
class SimSpec:
    customers: int = 4000
    days: int = 14
    treated_share: float = 0.5
    lift: float = 0.0
    conversion: float = 0.8
    mean_spend: float = 40.0
    noise_shape: float = 12.0  # Gamma shape of the spend noise around lambda (larger: more CUPED gain)
    discount: DiscountTruth | None = None


@dataclass(frozen=True)
class SimDraw:
    """Per simulated customer (shape (sims, customers)); `treated` is the arm (0 control, 1 treatment)."""

    treated: np.ndarray
    day: np.ndarray
    pre_spend: np.ndarray
    spend: np.ndarray
    converted: np.ndarray
    redeemed: np.ndarray
    discount_cost: np.ndarray

    def margin(self, gross_margin: float) -> np.ndarray:
        return gross_margin * self.spend - self.discount_cost


def simulate(spec: SimSpec, sims: int, rng: np.random.Generator) -> SimDraw:
    shape = (sims, spec.customers)
    lam = rng.gamma(2.0, spec.mean_spend / 2.0, shape)
    k = spec.noise_shape
    pre = lam * rng.gamma(k, 1.0 / k, shape)
    treated = (rng.random(shape) < spec.treated_share).astype(np.int8)
    day = rng.integers(0, spec.days, shape, dtype=np.int16)
    converted = rng.random(shape) < spec.conversion
    spend = np.where(converted, lam * rng.gamma(k, 1.0 / k, shape), 0.0) * (1 + spec.lift * treated)
    redeemed = np.zeros(shape, dtype=bool)
    cost = np.zeros(shape)
    d = spec.discount
    if d is not None:
        redeemed = (rng.random(shape) < d.redeem) & (treated == 1)
        g = rng.gamma(4.0, d.group_spend / 4.0, shape)
        spend = spend + np.where(redeemed, d.uplift * g, 0.0)
        cost = np.where(redeemed, d.level * (1 + d.uplift) * g, 0.0)
    return SimDraw(treated, day, pre, spend, converted.astype(np.float64), redeemed, cost)


def daily_moments(draw: SimDraw, y: np.ndarray, days: int) -> tuple[Moments, Moments]:
    """Cumulative sufficient statistics per (sim, look): control and treatment, shape (sims, days)."""
    sims = y.shape[0]
    cell = (np.arange(sims)[:, None] * days + draw.day) * 2 + draw.treated
    size = sims * days * 2
    x = draw.pre_spend

    def total(w: np.ndarray) -> np.ndarray:
        per_day = np.bincount(cell.ravel(), weights=w.ravel(), minlength=size).reshape(sims, days, 2)
        return np.cumsum(per_day, axis=1)

    parts = [total(np.ones_like(y)), total(y), total(y * y), total(x), total(x * x), total(x * y)]
    return Moments(*(p[..., 0] for p in parts)), Moments(*(p[..., 1] for p in parts))


def population_sd(spec: SimSpec, rng: np.random.Generator, n: int = 2_000_000) -> tuple[float, float]:
    """(sd of spend in control, in treatment) of the generator from one large draw: the truth a power
    calculation is given."""
    big = simulate(replace(spec, customers=n), 1, rng)
    y, t = big.spend[0], big.treated[0] == 1
    return float(y[~t].std()), float(y[t].std())
