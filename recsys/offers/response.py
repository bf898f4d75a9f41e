"""Discount response: P(buy from the product group within the offer window | discount level).

`StructuralResponse` (logged offers with levels and propensities exist): a discount only moves a
KNOWN baseline, along a monotone saturating curve,

    logit P(buy | L, x) = c + B(offset) + sum_j beta_j(x) * g_j(L),   g_j(L) = L^2 / (L^2 + h_j^2)

- offset: logit of the customer's no-discount purchase probability for the group, computed point in
  time from the history strictly before the offer was sent (`recsys.offers.baseline`);
- B: a fitted piecewise-linear calibration of the offset (hinges at quantiles) plus linear terms in
  the visit drop and the recency of visits (BASELINE_TERMS): the offset is a noisy estimate of the
  true baseline, and with its coefficient pinned at 1 the misfit would go into the uplift terms. It is
  fitted on organic no-discount pseudo-decisions when given (many more outcomes than logged offers),
  else jointly with the uplift on the offers;
- g_j: Hill-2 saturation curves at a few half-saturation levels h_j; non-negative mixtures of them
  approximate any Hill-2 curve with a half-saturation inside their range;
- beta_j(x) = exp(a_j + b_j . z): non-negative, so every curve is non-decreasing in L by
  construction, with heights driven by the standardised HEIGHT_FEATURES z.

Fitted by inverse-propensity-weighted maximum likelihood: the logging policy did not pick levels at
random, and the weights (clipped to bound their variance) make the sample look like one where every
level was equally likely for everybody, the situation a plan queries. L2 penalty on the b_j, analytic
gradient, L-BFGS.

`PriorResponse` (no logged levels, e.g. Complete Journey, whose coupons carry none): a documented
prior curve from the recent purchase rate and deal proneness, replaced by the fitted model as soon as
offers with levels and propensities are logged (a randomised pilot).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, clone

#: The discount ladder (fraction off); 0 = no discount.
LEVELS: np.ndarray = np.array([0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30])

#: Drivers of the uplift heights: deal proneness (share of lines bought on discount), its square, and
#: the visit drop (1 - current / normal visit rate).
HEIGHT_FEATURES: tuple[str, ...] = ("deal_proneness", "deal_proneness_sq", "visit_drop")

#: Linear terms of the baseline calibration: a churner's baseline keeps falling, and their silence
#: (weeks since the last visit, few recent visits) says more than a smoothed rate.
BASELINE_TERMS: tuple[str, ...] = ("visit_drop", "weeks_since_visit", "log_visits_recent")

#: Offset for rows without any history: a baseline of about 0.2%.
_NO_HISTORY_OFFSET = -6.2


def hill_basis(level: np.ndarray, halves: tuple[float, ...]) -> np.ndarray:
    """rows x len(halves): L^2 / (L^2 + h^2) for each half-saturation level h."""
    lv = np.asarray(level, dtype=float)[:, None] ** 2
    return lv / (lv + np.asarray(halves, dtype=float)[None, :] ** 2)


def ips_weights(propensity: np.ndarray | None, n_levels: int, max_weight: float = 10.0) -> np.ndarray | None:
    """1 / (n_levels x propensity), clipped to [0, max_weight] and normalised to mean 1; None if unknown."""
    if propensity is None:
        return None
    p = np.asarray(propensity, dtype=float)
    if np.isnan(p).all():
        return None
    w = 1.0 / (n_levels * np.clip(np.nan_to_num(p, nan=1.0 / n_levels), 1e-6, None))
    w = np.clip(w, 0.0, max_weight)
    return w / w.mean()


class OffsetHillGLM:
    """The estimator on arrays: offset (n,), z (n, k) standardised features, level (n,), y (n,), w (n,).

    theta = [c, (gamma, hinge slopes, extra terms when `offset_coef`), a_1, b_1 (k), ..., a_J, b_J (k)].
    With `offset_coef` the baseline is c + gamma x offset + sum_k d_k max(offset - knot_k, 0) + extra
    terms, else c + offset.
    """

    def __init__(
        self,
        halves: tuple[float, ...],
        l2: float = 1.0,
        offset_coef: bool = False,
        knots: tuple[float, ...] = (),
    ):
        self.halves = halves
        self.l2 = l2
        self.offset_coef = offset_coef
        self.knots = knots

    def _split(self, theta: np.ndarray, k: int) -> tuple[float, np.ndarray, np.ndarray]:
        J = len(self.halves)
        ab = theta[self._head : self._head + J * (k + 1)].reshape(J, k + 1)
        return theta[0], ab[:, 0], ab[:, 1:]

    @property
    def _head(self) -> int:
        """Parameters before the basis heights: c, then gamma, one slope change per knot and the extra
        terms when the offset's coefficient is free."""
        return 1 + (1 + len(self.knots_) + self.n_extra_ if self.offset_coef else 0)

    def _base_design(self, offset: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        o = np.asarray(offset, dtype=float)
        cols = [o] + [np.maximum(o - k, 0.0) for k in self.knots_]
        if extra is not None:
            cols += list(np.asarray(extra, dtype=float).reshape(len(o), -1).T)
        return np.column_stack(cols)

    def heights(self, z: np.ndarray, theta: np.ndarray | None = None) -> np.ndarray:
        """beta_j(z): rows x basis functions, all >= 0."""
        theta = self.theta_ if theta is None else theta
        _, a, b = self._split(theta, z.shape[1])
        return np.exp(np.clip(a[None, :] + z @ b.T, -30.0, 8.0))

    def fit(
        self,
        offset: np.ndarray,
        z: np.ndarray,
        level: np.ndarray,
        y: np.ndarray,
        w: np.ndarray | None = None,
        extra: np.ndarray | None = None,
    ) -> OffsetHillGLM:
        from scipy.optimize import minimize

        self.knots_ = tuple(self.knots) if self.offset_coef else ()
        self.n_extra_ = (
            0 if extra is None or not self.offset_coef else np.asarray(extra).reshape(len(y), -1).shape[1]
        )
        n, k = z.shape
        J = len(self.halves)
        w = np.ones(n) if w is None else np.asarray(w, dtype=float)
        y = np.asarray(y, dtype=float)
        h = self._head
        theta0 = np.zeros(h + J * (k + 1))
        theta0[h :: k + 1] = -1.0  # small initial heights
        xb = self._base_design(offset, extra if self.n_extra_ else None) if self.offset_coef else None
        if self.offset_coef:
            theta0[1] = 1.0
        # ridge on the slopes b_j, not on the levels a_j nor the baseline terms
        pen = np.r_[np.zeros(h), np.tile(np.r_[0.0, np.ones(k)], J)]
        g = hill_basis(level, self.halves)

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            c, a, b = self._split(theta, k)
            beta = np.exp(np.clip(a[None, :] + z @ b.T, -30.0, 8.0))
            base = xb @ theta[1:h] if self.offset_coef else offset
            eta = base + c + np.sum(beta * g, axis=1)
            # log-likelihood in a stable form: y*eta - log(1 + e^eta)
            nll = -np.sum(w * (y * eta - np.logaddexp(0.0, eta))) / n
            r = w * (expit(eta) - y) / n
            q = r[:, None] * beta * g  # d nll / d s_j (d beta / d s = beta)
            grad = np.empty_like(theta)
            grad[0] = r.sum()
            if self.offset_coef:
                grad[1:h] = r @ xb
            grad[h : h + J * (k + 1)] = np.column_stack([q.sum(axis=0), q.T @ z]).ravel()
            lam = self.l2 / n
            return nll + 0.5 * lam * np.sum(pen * theta**2), grad + lam * pen * theta

        res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 1000})
        self.theta_ = res.x
        self.converged_ = bool(res.success)
        return self

    def predict(
        self, offset: np.ndarray, z: np.ndarray, level: np.ndarray, extra: np.ndarray | None = None
    ) -> np.ndarray:
        return expit(self.base_logit(offset, extra) + self.uplift_logit(z, level))

    def uplift_logit(self, z: np.ndarray, level: np.ndarray) -> np.ndarray:
        """sum_j beta_j(z) g_j(L): the discount's effect on the logit at each row's own level."""
        return np.sum(self.heights(z) * hill_basis(level, self.halves), axis=1)

    def base_logit(self, offset: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """The model's no-discount logit."""
        c = self.theta_[0]
        if not self.offset_coef:
            return np.asarray(offset, dtype=float) + c
        return self._base_design(offset, extra if self.n_extra_ else None) @ self.theta_[1 : self._head] + c


class StructuralResponse(BaseEstimator):
    """The response model in use (module docstring), on DataFrames with an `offset` column, the
    HEIGHT_FEATURES and (when present) the BASELINE_TERMS.

    levels: the ladder `predict_curve` scores by default; halves: the basis curves' half-saturation
    levels. The first one matters most and the logged offers barely identify it: it decides which small
    discounts a plan buys, so it was chosen for the plan's level mix, not for the likelihood. C:
    inverse strength of the ridge on the height slopes; knots: hinges of the baseline calibration;
    max_weight: clip of the inverse-propensity weights.
    """

    def __init__(
        self,
        levels: tuple[float, ...] = tuple(LEVELS),
        halves: tuple[float, ...] = (0.07, 0.25),
        C: float = 1.0,
        knots: int = 2,
        max_weight: float = 10.0,
    ):
        self.levels = levels
        self.halves = halves
        self.C = C
        self.knots = knots
        self.max_weight = max_weight

    def fit(
        self,
        features: pd.DataFrame,
        level: np.ndarray,
        bought: np.ndarray,
        propensity: np.ndarray | None = None,
        baseline: pd.DataFrame | None = None,
    ) -> StructuralResponse:
        """`features`: one row per logged offer (`recsys.offers.offer_log.logged_offer_frame`);
        `baseline`: no-discount pseudo-decisions (`recsys.offers.baseline.organic_baseline_frame`:
        offset, BASELINE_TERMS, bought) to calibrate the baseline on; without them it is calibrated on
        the offers jointly with the uplift."""
        self._check_params()
        # the baseline terms the training frame carries; the same ones are then required to predict
        self.base_columns_ = tuple(c for c in BASELINE_TERMS if c in features)
        return self._fit_uplift(features, level, bought, propensity, self._fit_calibration(baseline))

    def refit(
        self,
        features: pd.DataFrame,
        level: np.ndarray,
        bought: np.ndarray,
        propensity: np.ndarray | None = None,
    ) -> StructuralResponse:
        """A new model fitted on other logged offers (folds, bootstrap resamples) with THIS model's
        baseline calibration. Why: the calibration depends on the organic pseudo-decisions only, the
        same for every refit, so fitting it again would give the same numbers at a large cost."""
        base_columns = tuple(c for c in BASELINE_TERMS if c in features)
        if base_columns != self.base_columns_:
            raise ValueError(f"refit needs the baseline terms {self.base_columns_}, got {base_columns}")
        model = clone(self)
        model._check_params()
        model.base_columns_ = base_columns
        return model._fit_uplift(features, level, bought, propensity, self.calibration_)

    def _fit_uplift(
        self,
        features: pd.DataFrame,
        level: np.ndarray,
        bought: np.ndarray,
        propensity: np.ndarray | None,
        calibration: OffsetHillGLM | None,
    ) -> StructuralResponse:
        missing = [c for c in ("offset", *HEIGHT_FEATURES) if c not in features]
        if missing:
            raise ValueError(f"features lack column(s) {missing}")
        x = np.nan_to_num(features[list(HEIGHT_FEATURES)].to_numpy(float), nan=0.0)
        y = np.asarray(bought, dtype=float)
        if len(np.unique(y)) < 2:
            raise ValueError("need both bought and not-bought offers to fit a response model")
        self.mean_, self.scale_ = x.mean(axis=0), x.std(axis=0) + 1e-9
        w = ips_weights(propensity, len(self.levels), self.max_weight)
        self.calibration_ = calibration
        offset, extra = self._calibrated(features)
        z, level = self._z(features), np.asarray(level, dtype=float)
        self.knots_ = self._knots(offset) if self.calibration_ is None else ()
        self.model_ = self._glm().fit(offset, z, level, y, w, extra)
        return self

    def _check_params(self) -> None:
        levels = np.asarray(self.levels, dtype=float)
        if levels.ndim != 1 or len(levels) < 2 or np.any(np.diff(levels) <= 0) or levels[0] != 0.0:
            raise ValueError(f"levels must rise strictly from 0, got {self.levels!r}")
        if not self.halves or any(h <= 0 for h in self.halves):
            raise ValueError(f"halves must be positive half-saturation levels, got {self.halves!r}")
        if self.C <= 0:
            raise ValueError(f"C must be > 0, got {self.C!r}")
        if isinstance(self.knots, bool) or not isinstance(self.knots, int | np.integer) or self.knots < 0:
            raise ValueError(f"knots must be a whole number >= 0, got {self.knots!r}")
        if self.max_weight <= 0:
            raise ValueError(f"max_weight must be > 0, got {self.max_weight!r}")

    def _z(self, features: pd.DataFrame) -> np.ndarray:
        x = np.nan_to_num(features[list(HEIGHT_FEATURES)].to_numpy(float), nan=0.0)
        return (x - self.mean_) / self.scale_

    def _knots(self, offset: np.ndarray) -> tuple[float, ...]:
        """Hinge knots of a baseline calibration at quantiles of the offsets it is fitted on."""
        q = np.linspace(0.0, 1.0, self.knots + 2)[1:-1]
        return tuple(float(v) for v in np.quantile(offset, q)) if self.knots else ()

    def _fit_calibration(self, baseline: pd.DataFrame | None) -> OffsetHillGLM | None:
        """The no-discount logit fitted on organic pseudo-decisions, or None (then calibrated on the
        logged offers jointly with the uplift)."""
        if baseline is None or baseline["bought"].nunique() < 2:
            return None
        off = np.nan_to_num(baseline["offset"].to_numpy(float), nan=_NO_HISTORY_OFFSET)
        glm = OffsetHillGLM((), l2=0.0, offset_coef=True, knots=self._knots(off))
        no_z = np.zeros((len(off), 0))
        return glm.fit(off, no_z, np.zeros(len(off)), baseline["bought"], None, self._extra(baseline))

    def _calibrated(self, features: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """The uplift GLM's offset and extra baseline terms: raw, or the organic calibration's
        no-discount logit (then the GLM keeps only a free intercept on top of it)."""
        offset = np.nan_to_num(features["offset"].to_numpy(float), nan=_NO_HISTORY_OFFSET)
        if self.calibration_ is None:
            return offset, self._extra(features)
        return self.calibration_.base_logit(offset, self._extra(features)), None

    def _extra(self, features: pd.DataFrame) -> np.ndarray | None:
        cols = list(self.base_columns_)
        if not cols:
            return None
        return np.nan_to_num(features[cols].to_numpy(float), nan=0.0)

    def _glm(self) -> OffsetHillGLM:
        return OffsetHillGLM(
            self.halves, l2=1.0 / self.C, offset_coef=self.calibration_ is None, knots=self.knots_
        )

    def predict_proba(self, features: pd.DataFrame, level: np.ndarray) -> np.ndarray:
        """P(buy) of each row at its own level."""
        level = np.broadcast_to(np.asarray(level, dtype=float), (len(features),))
        offset, extra = self._calibrated(features)
        base = self.model_.base_logit(offset, extra)
        return expit(base + self.model_.uplift_logit(self._z(features), level))

    def predict_curve(self, features: pd.DataFrame, levels: np.ndarray | None = None) -> np.ndarray:
        """rows x levels P(buy), non-decreasing along (ascending) levels by construction."""
        levels = np.asarray(self.levels if levels is None else levels, dtype=float)
        if np.any(np.diff(levels) < 0):
            raise ValueError("levels must be sorted ascending")
        return np.column_stack([self.predict_proba(features, np.full(len(features), lv)) for lv in levels])


class PriorResponse(BaseEstimator):
    """Response curves from purchase history and an assumed elasticity, for data without logged levels.

    Nothing identifies a level -> response curve without offers at known levels, so this documented
    prior keeps the planner usable: baseline logit from the recent purchase rate (`logit_p_recent`),
    uplift height base_uplift + deal_uplift x deal proneness logits, Hill-2 saturation at `half`.
    Deal-prone customers move several times more than indifferent ones. Needs no fit.
    """

    def __init__(self, base_uplift: float = 0.3, deal_uplift: float = 2.0, half: float = 0.12):
        self.base_uplift = base_uplift
        self.deal_uplift = deal_uplift
        self.half = half

    def predict_curve(self, features: pd.DataFrame, levels: np.ndarray | None = None) -> np.ndarray:
        """rows x levels P(buy) from `recsys.offers.baseline.prior_features` rows."""
        levels = np.asarray(LEVELS if levels is None else levels, dtype=float)
        base = features["logit_p_recent"].to_numpy(float)[:, None]
        umax = (self.base_uplift + self.deal_uplift * features["deal_proneness"].to_numpy(float))[:, None]
        lv = levels[None, :] ** 2
        return expit(base + umax * lv / (lv + self.half**2))
