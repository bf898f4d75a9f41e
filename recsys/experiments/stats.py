"""Statistics of a two-arm comparison, computed from sufficient statistics so that a thousand
simulated experiments (or one real one, per day) are a handful of array operations.

- `Moments`: per-arm counts and sums of y, y^2, x, x^2, xy (x: the pre-period covariate).
- `difference`/`relative_lift`: absolute and relative effects with normal CIs; the relative lift's
  standard error by the delta method; with `cuped=True` each arm's mean is adjusted by the pooled
  CUPED slope theta = cov(x, y) / var(x) (Deng et al. 2013), which removes the variance the
  pre-period explains without biasing the effect (x is independent of the assignment).
- `gs_boundaries`: group-sequential z boundaries, Lan-DeMets alpha spending with the O'Brien-Fleming
  type function, so looking every day keeps the overall false-positive rate at alpha; the joint
  boundaries by recursive numerical integration (checked against a Monte Carlo in the tests).
- `srm_pvalue`: sample-ratio mismatch, `scipy.stats.chisquare` of arm counts against the shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats


@dataclass(frozen=True)
class Moments:
    """Sufficient statistics of one arm; every field an array of the same shape (or scalars)."""

    n: np.ndarray
    sy: np.ndarray
    syy: np.ndarray
    sx: np.ndarray
    sxx: np.ndarray
    sxy: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, x: np.ndarray | None = None, axis: int = -1) -> Moments:
        y = np.asarray(y, dtype=np.float64)
        x = np.zeros_like(y) if x is None else np.asarray(x, dtype=np.float64)
        return cls(
            np.asarray(y.shape[axis] if y.ndim else 1, dtype=np.float64) * np.ones(np.sum(y, axis).shape),
            y.sum(axis),
            (y * y).sum(axis),
            x.sum(axis),
            (x * x).sum(axis),
            (x * y).sum(axis),
        )

    def __add__(self, other: Moments) -> Moments:
        return Moments(*(getattr(self, f) + getattr(other, f) for f in _FIELDS))

    @property
    def mean(self) -> np.ndarray:
        return self.sy / self.n

    @property
    def mean_x(self) -> np.ndarray:
        return self.sx / self.n

    def _cov(self, sab: np.ndarray, sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
        return (sab - sa * sb / self.n) / np.maximum(self.n - 1, 1)

    @property
    def var(self) -> np.ndarray:
        return self._cov(self.syy, self.sy, self.sy)

    @property
    def var_x(self) -> np.ndarray:
        return self._cov(self.sxx, self.sx, self.sx)

    @property
    def cov_xy(self) -> np.ndarray:
        return self._cov(self.sxy, self.sx, self.sy)


_FIELDS = ("n", "sy", "syy", "sx", "sxx", "sxy")


@dataclass(frozen=True)
class Estimate:
    """An effect with its standard error, two-sided (1 - alpha) CI and p-value (arrays or floats)."""

    estimate: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    p_value: np.ndarray

    @property
    def z(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.estimate / self.se


def _estimate(est: np.ndarray, se: np.ndarray, alpha: float) -> Estimate:
    with np.errstate(divide="ignore", invalid="ignore"):
        z = stats.norm.ppf(1 - alpha / 2)
        p = 2 * stats.norm.sf(np.abs(est / se))
    return Estimate(est, se, est - z * se, est + z * se, p)


def _arm(m: Moments, theta: np.ndarray | float, pooled_mean_x: np.ndarray | float):
    """(mean, per-unit variance) of an arm, CUPED-adjusted when theta != 0."""
    mean = m.mean - theta * (m.mean_x - pooled_mean_x)
    var = m.var + theta * theta * m.var_x - 2 * theta * m.cov_xy
    return mean, np.maximum(var, 0.0)


def cuped_theta(control: Moments, treatment: Moments) -> np.ndarray:
    pooled = control + treatment
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = pooled.cov_xy / pooled.var_x
    return np.nan_to_num(theta)


def _arms(control: Moments, treatment: Moments, cuped: bool):
    theta = cuped_theta(control, treatment) if cuped else 0.0
    pooled_x = (control + treatment).mean_x
    return _arm(control, theta, pooled_x), _arm(treatment, theta, pooled_x)


def difference(control: Moments, treatment: Moments, alpha: float = 0.05, cuped: bool = False) -> Estimate:
    """Treatment mean minus control mean (e.g. incremental margin per customer)."""
    (mc, vc), (mt, vt) = _arms(control, treatment, cuped)
    return _estimate(mt - mc, np.sqrt(vt / treatment.n + vc / control.n), alpha)


def relative_lift(control: Moments, treatment: Moments, alpha: float = 0.05, cuped: bool = False) -> Estimate:
    """mean_t / mean_c - 1; delta-method variance var_t/(n_t mc^2) + mt^2 var_c/(n_c mc^4)."""
    (mc, vc), (mt, vt) = _arms(control, treatment, cuped)
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = mt / mc - 1
        var = vt / (treatment.n * mc**2) + mt**2 * vc / (control.n * mc**4)
    return _estimate(lift, np.sqrt(var), alpha)


def variance_reduction(y: np.ndarray, x: np.ndarray) -> float:
    """Share of the variance of y that CUPED with covariate x removes: corr(x, y)^2."""
    m = Moments.of(np.asarray(y, float), np.asarray(x, float))
    return float(m.cov_xy**2 / (m.var * m.var_x))


def srm_pvalue(counts: np.ndarray, shares: np.ndarray) -> float:
    """Chi-square goodness of fit of the arm counts to the configured shares."""
    counts = np.asarray(counts, dtype=np.float64)
    expected = np.asarray(shares, dtype=np.float64) * counts.sum()
    return float(stats.chisquare(counts, expected).pvalue)


def obf_spending(t: np.ndarray, alpha: float) -> np.ndarray:
    """Lan-DeMets O'Brien-Fleming type spending: alpha spent by information fraction t."""
    t = np.asarray(t, dtype=np.float64)
    return 2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / np.sqrt(t))


@lru_cache(maxsize=64)
def gs_boundaries(looks: int, alpha: float = 0.05, grid: int = 1201) -> tuple[float, ...]:
    """Two-sided z boundaries for `looks` equally spaced looks; overall type I error = alpha.

    Look k rejects when |z_k| exceeds its boundary. Early boundaries are wide (little alpha spent),
    the last is close to the fixed-horizon 1.96, so peeking daily costs little power. Computed by the
    recursive integration of Armitage, McPherson and Rowe (1969): the density of the score
    S_k = z_k sqrt(t_k) among paths not yet stopped is carried on a grid from look to look, and each
    boundary solves P(first crossing at look k) = alpha spent between looks k-1 and k.
    """
    t = np.arange(1, looks + 1) / looks
    spent = np.diff(np.concatenate([[0.0], obf_spending(t, alpha)]))
    bounds = [float(stats.norm.isf(spent[0] / 2))]
    sd = np.sqrt(t[0])
    s = np.linspace(-bounds[0] * sd, bounds[0] * sd, grid)
    w = np.full(grid, s[1] - s[0])
    w[[0, -1]] /= 2
    dens = stats.norm.pdf(s, scale=sd) * w  # probability mass at each grid point, not yet stopped
    for k in range(1, looks):
        step = np.sqrt(t[k] - t[k - 1])

        b_prev, d_prev, t_k, a_k = s, dens, t[k], spent[k]

        def excess(c: float, s=b_prev, dens=d_prev, t_k=t_k, a_k=a_k, step=step) -> float:  # noqa: ANN001
            b = c * np.sqrt(t_k)
            return float(dens @ (stats.norm.cdf((-b - s) / step) + stats.norm.sf((b - s) / step))) - a_k

        c = float(optimize.brentq(excess, 0.1, 40.0, xtol=1e-7))
        bounds.append(c)
        b = c * np.sqrt(t[k])
        new = np.linspace(-b, b, grid)
        w = np.full(grid, new[1] - new[0])
        w[[0, -1]] /= 2
        dens = (stats.norm.pdf((new[:, None] - s[None, :]) / step) / step) @ dens * w
        s = new
    return tuple(bounds)


@dataclass(frozen=True)
class Sequential:
    """Result of the daily looks so far: the look that crossed its boundary (or -1) and the decision."""

    boundaries: np.ndarray
    first_crossing: np.ndarray
    significant: np.ndarray


def sequential_test(z_by_look: np.ndarray, looks_planned: int, alpha: float = 0.05) -> Sequential:
    """z statistics of the looks taken so far (last axis, in order) against the planned boundaries."""
    z = np.atleast_1d(np.asarray(z_by_look, dtype=np.float64))
    b = np.asarray(gs_boundaries(looks_planned, alpha))[: z.shape[-1]]
    crossed = np.abs(np.nan_to_num(z)) >= b
    first = np.where(crossed.any(-1), crossed.argmax(-1), -1)
    return Sequential(b, first, first >= 0)


def analytical_power(effect: float, sd_c: float, sd_t: float, n_c: float, n_t: float, alpha: float) -> float:
    """Power of the two-sided fixed-horizon z test for an absolute difference `effect` in means."""
    se = np.sqrt(sd_c**2 / n_c + sd_t**2 / n_t)
    z = stats.norm.ppf(1 - alpha / 2)
    return float(stats.norm.sf(z - abs(effect) / se) + stats.norm.cdf(-z - abs(effect) / se))
