"""Discount response model: P(buy from the product group within the offer window | level, features).

Trained on logged offers. The logging policy did not pick levels at random (synthetic data: rare
visitors got bigger discounts), so rows are weighted by 1 / (n_levels x propensity): the weighted
sample looks like one where every level was equally likely for everybody, which is the situation the
policy will query (every level for every customer). Weights are clipped to bound their variance.

The level enters through saturating Hill-2 basis functions L^2 / (L^2 + c^2) and their products with
the customer/group features, so the uplift is heterogeneous (deal-prone or dropping customers can
respond more) while the baseline comes from the purchase history. Monotonicity in the level is
enforced on the ladder (cumulative maximum over increasing levels) and the share of rows that needed
it is recorded in `nonmonotone_share_`: a discount can only make buying more attractive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

LEVELS: np.ndarray = np.array([0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30])


def _basis(level: np.ndarray, halves: tuple[float, ...]) -> np.ndarray:
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


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -35.0, 35.0)))


class HillLogit:
    """logit P = a + b.z + exp(c0 + c.z) * L^2 / (L^2 + h(z)^2), h(z) = exp(d0 + d.z).

    A logistic regression whose level effect is a saturating (Hill-2) curve with a customer-specific
    height exp(c0 + c.z) > 0 and half-saturation level h(z) > 0: monotone in L by construction, and
    the height and half-saturation point are functions of the features, so a deal-prone customer can
    move more and a drifting one only at larger discounts. Fitted by weighted maximum likelihood with
    an L2 penalty (analytic gradient, L-BFGS).
    """

    def __init__(self, l2: float = 1.0, max_iter: int = 500):
        self.l2 = l2
        self.max_iter = max_iter

    def _unpack(self, theta: np.ndarray, k: int) -> tuple:
        return (
            theta[0],
            theta[1 : k + 1],
            theta[k + 1],
            theta[k + 2 : 2 * k + 2],
            theta[2 * k + 2],
            theta[2 * k + 3 :],
        )

    def _parts(self, theta: np.ndarray, z: np.ndarray, level: np.ndarray) -> tuple:
        a, b, c0, c, d0, d = self._unpack(theta, z.shape[1])
        u = np.exp(np.clip(c0 + z @ c, -20.0, 5.0))
        h = np.exp(np.clip(d0 + z @ d, -5.0, 1.0))
        l2 = level**2
        s = l2 / (l2 + h**2)
        return a + z @ b + u * s, u, s, h, l2

    def fit(self, z: np.ndarray, level: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> HillLogit:
        from scipy.optimize import minimize

        n, k = z.shape
        w = np.ones(n) if w is None else w
        rate = np.clip(np.average(y, weights=w), 1e-3, 1 - 1e-3)
        theta0 = np.zeros(3 * k + 3)
        theta0[0] = np.log(rate / (1 - rate))
        theta0[k + 1] = np.log(0.5)
        theta0[2 * k + 2] = np.log(0.1)
        penalised = np.ones_like(theta0)
        penalised[[0, k + 1, 2 * k + 2]] = 0.0

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            eta, u, s, h, l2 = self._parts(theta, z, level)
            p = _sigmoid(eta)
            eps = 1e-12
            nll = -np.sum(w * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))) / n
            r = w * (p - y) / n
            ds_dlogh = -2.0 * h**2 * l2 / (l2 + h**2) ** 2
            g_u = r * u * s
            g_h = r * u * ds_dlogh
            grad = np.concatenate([[r.sum()], z.T @ r, [g_u.sum()], z.T @ g_u, [g_h.sum()], z.T @ g_h])
            pen = self.l2 / n
            return nll + 0.5 * pen * np.sum(penalised * theta**2), grad + pen * penalised * theta

        res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": self.max_iter})
        self.theta_ = res.x
        self.converged_ = bool(res.success)
        return self

    def predict(self, z: np.ndarray, level: np.ndarray) -> np.ndarray:
        return _sigmoid(self._parts(self.theta_, z, level)[0])


class ResponseModel:
    """Response model over a discount ladder: 'hill' (default, monotone by construction), 'logistic'
    (level basis x feature interactions) or 'hgb' (gradient boosting, monotone constraint on the level).

    Parameters live only here (scikit-learn style); `fit` does the work and returns self.
    """

    def __init__(
        self,
        kind: str = "logistic",
        levels: tuple[float, ...] = tuple(LEVELS),
        halves: tuple[float, ...] = (0.05, 0.10, 0.20),
        C: float = 0.3,
        max_weight: float = 10.0,
        use_ips: bool = True,
        random_state: int = 0,
        columns: tuple[str, ...] | None = None,
    ):
        self.kind = kind
        self.levels = levels
        self.halves = halves
        self.C = C
        self.max_weight = max_weight
        self.use_ips = use_ips
        self.random_state = random_state
        self.columns = columns

    def get_params(self) -> dict:
        keys = ("kind", "levels", "halves", "C", "max_weight", "use_ips", "columns")
        return {k: getattr(self, k) for k in keys}

    def _select(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The model's columns of `features` (all of them unless `columns` names a subset)."""
        if self.columns is not None and isinstance(features, pd.DataFrame):
            return features[list(self.columns)].to_numpy(float)
        return np.asarray(features, dtype=float)

    # ---- design ----------------------------------------------------------------------------
    def _design(self, x: np.ndarray, level: np.ndarray) -> np.ndarray:
        z = (x - self.mean_) / self.scale_
        if self.kind == "hgb":
            return np.column_stack([x, level])
        if self.kind == "hill":
            return z
        b = _basis(level, self.halves)
        inter = (b[:, :, None] * z[:, None, :]).reshape(len(z), -1)
        return np.column_stack([z, b, inter])

    def fit(
        self,
        features: pd.DataFrame | np.ndarray,
        level: np.ndarray,
        bought: np.ndarray,
        propensity: np.ndarray | None = None,
    ) -> ResponseModel:
        x = self._select(features)
        level = np.asarray(level, dtype=float)
        y = np.asarray(bought, dtype=int)
        if len(x) != len(level) or len(x) != len(y):
            raise ValueError("features, level and bought must have the same length")
        if len(np.unique(y)) < 2:
            raise ValueError("need both bought and not-bought offers to fit a response model")
        self.feature_names_ = list(features.columns) if isinstance(features, pd.DataFrame) else None
        self.mean_, self.scale_ = x.mean(axis=0), x.std(axis=0) + 1e-9
        w = ips_weights(propensity, len(self.levels), self.max_weight) if self.use_ips else None
        design = self._design(x, level)
        if self.kind == "hill":
            self.model_ = HillLogit(l2=1.0 / self.C).fit(design, level, y.astype(float), w)
        elif self.kind == "logistic":
            from sklearn.linear_model import LogisticRegression

            self.model_ = LogisticRegression(C=self.C, max_iter=2000).fit(design, y, sample_weight=w)
        elif self.kind == "hgb":
            from sklearn.ensemble import HistGradientBoostingClassifier

            cst = [0] * x.shape[1] + [1]  # monotone increasing in the level, by construction
            self.model_ = HistGradientBoostingClassifier(
                max_iter=300,
                learning_rate=0.05,
                max_leaf_nodes=15,
                min_samples_leaf=40,
                l2_regularization=1.0,
                monotonic_cst=cst,
                early_stopping=True,
                random_state=self.random_state,
            ).fit(design, y, sample_weight=w)
        else:
            raise ValueError(f"kind must be 'hill', 'logistic' or 'hgb', got {self.kind!r}")
        return self

    def predict_proba(self, features: pd.DataFrame | np.ndarray, level: np.ndarray) -> np.ndarray:
        """P(buy) of each row at its own level (no monotone projection; see `predict_curve`)."""
        x = self._select(features)
        level = np.broadcast_to(np.asarray(level, dtype=float), (len(x),))
        if self.kind == "hill":
            return self.model_.predict(self._design(x, level), level)
        return self.model_.predict_proba(self._design(x, level))[:, 1]

    def predict_curve(
        self, features: pd.DataFrame | np.ndarray, levels: np.ndarray | None = None
    ) -> np.ndarray:
        """rows x levels P(buy), non-decreasing along (sorted) levels."""
        levels = np.asarray(self.levels if levels is None else levels, dtype=float)
        if np.any(np.diff(levels) < 0):
            raise ValueError("levels must be sorted ascending")
        raw = np.column_stack([self.predict_proba(features, np.full(len(features), lv)) for lv in levels])
        mono = np.maximum.accumulate(raw, axis=1)
        self.nonmonotone_share_ = float(np.mean(np.any(mono > raw + 1e-12, axis=1))) if len(raw) else 0.0
        return mono


class PriorResponse:
    """Response curves from purchase history and an assumed elasticity, for data without logged levels.

    Complete Journey's coupons carry no discount level, so nothing identifies a level -> response
    curve there. This documented prior keeps the policy usable: baseline logit from the recent
    purchase rate (feature `logit_p_recent`), uplift_max = base_uplift + deal_uplift x deal proneness
    logits, Hill-2 saturation at `half` (defaults: a fully deal-prone customer gains ~2.3 logits at
    large discounts, an indifferent one 0.3). Replace by `ResponseModel` as soon as offers with levels
    and propensities are logged (a randomised pilot).
    """

    def __init__(self, base_uplift: float = 0.3, deal_uplift: float = 2.0, half: float = 0.12):
        self.base_uplift = base_uplift
        self.deal_uplift = deal_uplift
        self.half = half
        self.nonmonotone_share_ = 0.0

    def predict_curve(self, features: pd.DataFrame, levels: np.ndarray | None = None) -> np.ndarray:
        levels = np.asarray(LEVELS if levels is None else levels, dtype=float)
        base = features["logit_p_recent"].to_numpy(float)[:, None]
        umax = (self.base_uplift + self.deal_uplift * features["deal_proneness"].to_numpy(float))[:, None]
        lv = levels[None, :] ** 2
        return 1.0 / (1.0 + np.exp(-(base + umax * lv / (lv + self.half**2))))


# ---- calibration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationReport:
    """Reliability table (bins of predicted probability), Brier score and expected calibration error."""

    table: pd.DataFrame
    brier: float
    ece: float
    n: int

    def to_markdown(self) -> str:
        lines = ["| bin | n | mean predicted | observed rate |", "|---|---:|---:|---:|"]
        for row in self.table.itertuples():
            lines.append(f"| {row.bin} | {row.n} | {row.predicted:.3f} | {row.observed:.3f} |")
        return "\n".join(lines)


def calibration_report(
    y: np.ndarray, p: np.ndarray, n_bins: int = 10, weights: np.ndarray | None = None
) -> CalibrationReport:
    """Equal-count bins (quantiles of p) so every row of the reliability table has enough offers."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(p, kind="stable")
    bins = np.zeros(len(p), dtype=int)
    bins[order] = np.minimum((np.arange(len(p)) * n_bins) // max(len(p), 1), n_bins - 1)
    frame = pd.DataFrame({"bin": bins, "y": y * w, "p": p * w, "w": w})
    g = frame.groupby("bin").agg(n=("w", "size"), w=("w", "sum"), y=("y", "sum"), p=("p", "sum"))
    table = pd.DataFrame(
        {
            "bin": g.index,
            "n": g["n"].to_numpy(),
            "predicted": (g["p"] / g["w"]).to_numpy(),
            "observed": (g["y"] / g["w"]).to_numpy(),
        }
    )
    ece = float(
        np.sum(g["w"] / g["w"].sum() * np.abs(table["predicted"].to_numpy() - table["observed"].to_numpy()))
    )
    brier = float(np.average((p - y) ** 2, weights=w))
    return CalibrationReport(table=table, brier=brier, ece=ece, n=len(p))
