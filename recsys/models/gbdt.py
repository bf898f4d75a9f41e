"""Gradient-boosted trees (scikit-learn HistGradientBoostingClassifier) exported to plain arrays.

The fitted trees are flattened into numpy arrays and evaluated by a small compiled traversal
(`tree_kernel`), so a saved ranker is numpy + JSON (no pickle), a loaded model scores exactly as the
one just fitted, and scoring never calls scikit-learn's private predictor.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf")


def export_trees(clf) -> dict[str, np.ndarray]:
    """Flatten a fitted binary HistGradientBoostingClassifier (numeric features only)."""
    if getattr(clf, "_preprocessor", None) is not None or clf.n_trees_per_iteration_ != 1:
        raise ValueError("only binary classifiers on numeric features can be exported")
    trees = [pred[0].nodes for pred in clf._predictors]
    offsets = np.cumsum([0] + [len(t) for t in trees])
    out = {f: np.concatenate([t[f] for t in trees]) for f in FIELDS}
    out["left"] = out["left"].astype(np.int64)
    out["right"] = out["right"].astype(np.int64)
    out["roots"] = offsets[:-1].astype(np.int64)
    out["offsets"] = offsets.astype(np.int64)
    out["baseline"] = np.asarray(clf._baseline_prediction, dtype=np.float64).ravel()[:1]
    return out


def _flat(trees: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tree's children in global node indices, in the dtypes the kernel takes; cached on the
    dict (keys starting with _ are not saved)."""
    flat = trees.get("_flat")
    if flat is None:
        offsets = trees["offsets"]
        tree_of_node = np.repeat(np.arange(len(trees["roots"])), np.diff(offsets))
        flat = {
            "feature": trees["feature_idx"].astype(np.int64),
            "threshold": trees["num_threshold"].astype(np.float64),
            "missing_left": trees["missing_go_to_left"].astype(np.bool_),
            "left": (trees["left"] + offsets[tree_of_node]).astype(np.int64),
            "right": (trees["right"] + offsets[tree_of_node]).astype(np.int64),
            "is_leaf": trees["is_leaf"].astype(np.bool_),
            "value": trees["value"].astype(np.float64),
            "roots": trees["roots"].astype(np.int64),
        }
        trees["_flat"] = flat
    return flat


def predict_logit(trees: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """Raw score (log-odds) of every row of X under exported trees, equal to scikit-learn's
    `decision_function`. One compiled pass per row over every tree: the trees of a ranker stay in
    cache, and a request's few rows pay no per-tree call."""
    from recsys.models.tree_kernel import sum_of_trees

    X = np.ascontiguousarray(X, dtype=np.float64)
    out = np.empty(len(X), dtype=np.float64)
    if len(X):
        sum_of_trees(X, **_flat(trees), baseline=float(trees["baseline"][0]), out=out)
    return out


def predict_proba(trees: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    if len(X) == 0:
        return np.zeros(0)
    return expit(predict_logit(trees, X))
