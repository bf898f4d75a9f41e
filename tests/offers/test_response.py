"""Known answers for the response model: the offset GLM, the organic calibration, scikit-learn
conventions, and the prior."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from recsys.offers.response import LEVELS, OffsetHillGLM, PriorResponse, StructuralResponse, hill_basis

LADDER = np.array([0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30])


def _truth(halves, theta, offset_coef=False, knots=()):
    """A GLM with known parameters (what `fit` would have learnt)."""
    glm = OffsetHillGLM(halves, offset_coef=offset_coef, knots=knots)
    glm.knots_, glm.n_extra_, glm.theta_ = tuple(knots) if offset_coef else (), 0, np.asarray(theta)
    return glm


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_offset_glm_recovers_known_parameters_and_is_monotone():
    rng = np.random.default_rng(0)
    n = 30000
    z = rng.normal(size=(n, 2))
    offset = rng.normal(-1.5, 1.0, n)
    level = rng.choice(LADDER, n)
    halves = (0.05, 0.2)
    truth = _truth(halves, [0.2, 0.5, 1.0, -0.5, 0.0, -0.5, 0.8])  # c, (a_1, b_1), (a_2, b_2)
    y = (rng.random(n) < truth.predict(offset, z, level)).astype(float)
    fit = OffsetHillGLM(halves, l2=1e-3).fit(offset, z, level, y, rng.uniform(0.5, 1.5, n))
    assert fit.converged_
    assert np.max(np.abs(fit.theta_ - truth.theta_)) < 0.45
    assert abs(fit.theta_[0] - 0.2) < 0.1  # the calibration intercept
    grid = np.repeat(LADDER[None, :], 500, axis=0).ravel()
    zz, oo = np.repeat(z[:500], len(LADDER), axis=0), np.repeat(offset[:500], len(LADDER))
    got = fit.predict(oo, zz, grid).reshape(500, -1)
    want = truth.predict(oo, zz, grid).reshape(500, -1)
    assert np.max(np.abs(got - want)) < 0.07 and np.mean(np.abs(got - want)) < 0.015
    assert np.all(np.diff(got, axis=1) >= 0)  # monotone in the level by construction
    assert np.all(fit.heights(z) >= 0)
    assert np.allclose(hill_basis(np.array([0.0]), halves), 0.0)  # no uplift without a discount


def test_free_offset_coefficient_and_hinge_are_recovered():
    # true baseline logit = -0.3 + 0.7 x offset + 0.4 x max(offset + 1, 0): a diluted, bent offset
    rng = np.random.default_rng(2)
    n = 40000
    z = rng.normal(size=(n, 1))
    offset = rng.normal(-1.5, 1.2, n)
    level = rng.choice(LADDER, n)
    truth = _truth((0.1,), [-0.3, 0.7, 0.4, 0.0, 0.5], offset_coef=True, knots=(-1.0,))  # c, gamma, d, a, b
    y = (rng.random(n) < truth.predict(offset, z, level)).astype(float)
    fit = OffsetHillGLM((0.1,), l2=1e-3, offset_coef=True, knots=(-1.0,)).fit(offset, z, level, y)
    assert np.max(np.abs(fit.theta_ - truth.theta_)) < 0.1
    # pinned at 1, the same data give a different (biased) baseline and uplift
    fixed = OffsetHillGLM((0.1,), l2=1e-3).fit(offset, z, level, y)
    assert np.max(np.abs(fixed.base_logit(offset) - truth.base_logit(offset))) > 0.5
    # extra linear baseline terms: coefficient recovered
    x = rng.normal(size=n)
    y2 = (rng.random(n) < _sig(truth.base_logit(offset) - 0.5 * x + truth.uplift_logit(z, level))).astype(
        float
    )
    fit2 = OffsetHillGLM((0.1,), l2=1e-3, offset_coef=True, knots=(-1.0,)).fit(offset, z, level, y2, extra=x)
    assert fit2.n_extra_ == 1 and abs(fit2.theta_[3] + 0.5) < 0.08


def _frame(rng, n: int) -> pd.DataFrame:
    f = pd.DataFrame(
        {
            "offset": rng.normal(-2.0, 1.0, n),
            "deal_proneness": rng.uniform(0, 1, n),
            "visit_drop": rng.uniform(0, 1, n),
        }
    )
    return f.assign(deal_proneness_sq=f["deal_proneness"] ** 2)


def test_organic_calibration_recovers_a_diluted_baseline_the_offers_alone_cannot():
    # true no-discount logit = -0.5 + 0.9 x offset - 1.0 x visit_drop; uplift 2 x deal x a saturating
    # Hill curve in the level (half-saturation 0.07, the model's first basis curve)
    rng = np.random.default_rng(5)

    def base(f: pd.DataFrame) -> np.ndarray:
        return (-0.5 + 0.9 * f["offset"] - 1.0 * f["visit_drop"]).to_numpy()

    organic = _frame(rng, 100000)
    organic["bought"] = (rng.random(len(organic)) < _sig(base(organic))).astype(int)
    offers = _frame(rng, 4000)
    level = rng.choice(LADDER, len(offers))
    hill = level**2 / (level**2 + 0.07**2)
    y = (rng.random(len(offers)) < _sig(base(offers) + 2.0 * offers["deal_proneness"] * hill)).astype(int)
    model = StructuralResponse().fit(offers, level, y, baseline=organic)
    cal = model.calibration_
    assert model.base_columns_ == ("visit_drop",)  # the baseline terms this frame carries
    assert abs(cal.theta_[-1] + 1.0) < 0.1  # the visit drop's coefficient
    drop = offers[["visit_drop"]].to_numpy()
    assert np.mean(np.abs(cal.base_logit(offers["offset"].to_numpy(), drop) - base(offers))) < 0.05
    p0 = model.predict_curve(offers)[:, 0]  # the offers' free intercept moves it a little
    assert np.mean(np.abs(np.log(p0 / (1 - p0)) - base(offers))) < 0.25
    assert np.all(np.diff(model.predict_curve(offers), axis=1) >= 0)  # monotone by construction
    # without pseudo-decisions the baseline is calibrated on the logged offers jointly
    assert StructuralResponse().fit(offers, level, y).calibration_ is None
    # a refit on other offers keeps the calibration and equals a fit from scratch on them
    half = np.arange(len(offers)) % 2 == 0
    again = model.refit(offers[half], level[half], y[half])
    fresh = StructuralResponse().fit(offers[half], level[half], y[half], baseline=organic)
    assert again.calibration_ is cal
    np.testing.assert_allclose(again.model_.theta_, fresh.model_.theta_)


def test_structural_response_follows_scikit_learn_conventions():
    model = StructuralResponse(halves=(0.05,), C=2.0)
    assert model.get_params() == {
        "levels": tuple(LEVELS),
        "halves": (0.05,),
        "C": 2.0,
        "knots": 2,
        "max_weight": 10.0,
    }
    assert not [k for k in vars(model) if k.endswith("_")]  # __init__ stores parameters only
    rng = np.random.default_rng(1)
    offers = _frame(rng, 2000)
    level = rng.choice(LADDER, len(offers))
    y = (rng.random(len(offers)) < _sig(offers["offset"] + offers["deal_proneness"] * level * 10)).astype(int)
    fitted = model.fit(offers, level, y)
    assert fitted is model
    learnt = {k for k in vars(model) if k.endswith("_")}
    assert {"mean_", "scale_", "base_columns_", "calibration_", "knots_", "model_"} <= learnt
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "model_")
    # validation happens in fit, naming the parameter
    with pytest.raises(ValueError, match="C must be > 0"):
        StructuralResponse(C=0).fit(offers, level, y)
    with pytest.raises(ValueError, match="levels must rise strictly from 0"):
        StructuralResponse(levels=(0.1, 0.2)).fit(offers, level, y)
    with pytest.raises(ValueError, match=r"features lack column\(s\) \['visit_drop'\]"):
        StructuralResponse().fit(offers.drop(columns="visit_drop"), level, y)
    with pytest.raises(ValueError, match="both bought and not-bought"):
        StructuralResponse().fit(offers, level, np.zeros(len(offers)))


def test_prior_response_is_monotone_and_moves_deal_prone_customers_more():
    features = pd.DataFrame({"logit_p_recent": [-2.0, -2.0], "deal_proneness": [0.0, 1.0]})
    curves = PriorResponse().predict_curve(features)
    assert curves.shape == (2, len(LEVELS)) and np.all(np.diff(curves, axis=1) > 0)
    assert np.allclose(curves[:, 0], _sig(-2.0))  # no uplift without a discount
    assert curves[1, -1] - curves[1, 0] > 3 * (curves[0, -1] - curves[0, 0])
