"""The model as an MLflow pyfunc: a thin wrapper around the native numpy/JSON model directory.

The wrapper holds no learned state of its own: `load_context` reads the directory `model.save()`
wrote (logged as an artifact) plus the product attribute table, so the registry serves exactly the
bytes the evaluation used. Diet profiles are applied as an item mask BEFORE top-k through the
fail-closed ConstraintEngine, so k is honoured and nothing forbidden can slip in.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from pydantic import BaseModel


class RecommendRequest(BaseModel):
    """One request: a pseudonymous user id, list length and an optional diet profile ('vegan,nuts')."""

    user_id: str
    k: int = 10
    diet: str | None = None


class RecommendResponse(BaseModel):
    user_id: str
    items: list[str]
    scores: list[float]


def import_all_models() -> None:
    """Import every module under recsys.models so `Recommender.registry` knows every model name."""
    import recsys.models

    for info in pkgutil.iter_modules(recsys.models.__path__):
        importlib.import_module(f"recsys.models.{info.name}")


def load_native(model_dir: str | Path):
    from recsys.models.base import Recommender

    import_all_models()
    return Recommender.load(Path(model_dir))


def constraint_engine(items_table: pd.DataFrame):
    from recsys.diet.constraints import ConstraintEngine

    return ConstraintEngine(items_table)


def diet_mask(engine: Any, diet: str | None) -> np.ndarray | None:
    """Boolean allowed-mask for a diet profile string (None: no constraint). Fail-closed engine:
    an attribute the catalog does not know counts as present, so unknown items are excluded."""
    if not diet:
        return None
    return np.asarray(engine.allowed(diet), dtype=bool)


class RecommenderPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc flavour of any `Recommender`; artifacts: model_dir (native) and items (parquet)."""

    def load_context(self, context: Any) -> None:
        self._model = load_native(context.artifacts["model_dir"])
        self._engine = constraint_engine(pd.read_parquet(context.artifacts["items"]))
        self._masks: dict[str, np.ndarray | None] = {}

    def _mask(self, diet: str | None) -> np.ndarray | None:
        key = diet or ""
        if key not in self._masks:
            self._masks[key] = diet_mask(self._engine, diet)
        return self._masks[key]

    def predict(
        self, model_input: list[RecommendRequest], params: dict[str, Any] | None = None
    ) -> list[RecommendResponse]:
        requests = [r if isinstance(r, RecommendRequest) else RecommendRequest(**r) for r in model_input]
        out: list[RecommendResponse | None] = [None] * len(requests)
        groups: dict[tuple[int, str | None], list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault((req.k, req.diet or None), []).append(i)
        for (k, diet), positions in groups.items():
            users = [requests[i].user_id for i in positions]
            recs = self._model.recommend(users, k=k, allowed=self._mask(diet))
            by_user = {u: g for u, g in recs.groupby("user_id", sort=False)}
            for i, user in zip(positions, users, strict=True):
                g = by_user.get(user)
                items = [] if g is None else [str(x) for x in g.sort_values("rank")["item_id"]]
                scores = [] if g is None else [float(x) for x in g.sort_values("rank")["score"]]
                out[i] = RecommendResponse(user_id=user, items=items, scores=scores)
        return [r for r in out if r is not None]
