"""The loaded model and everything derived from it, as ONE immutable snapshot.

Reloading builds a complete new `Runtime` next to the old one and then swaps a single reference, so
a request that already picked up the old snapshot finishes on it and no request ever sees a model
from one version with an item table or masks from another.

Sources: a native model directory (RECSYS_MODEL_DIR) or the MLflow registry alias
`models:/grocery-recommender@champion`, whose pyfunc model carries the native directory and the
items table as artifacts. A data directory (RECSYS_DATA_DIR) adds customers (consent, diet),
interactions (stock per store) and what recipes need. The discount plan is a separate artifact
(serving/discounts.py).
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.data.io import read_tables
from recsys.diet.constraints import ConstraintEngine, ItemFilters
from recsys.diet.profiles import DietProfile
from recsys.models.base import Recommender
from serving.config import Settings
from serving.factors import FactorIndex

logger = logging.getLogger("serving")


def import_all_models() -> None:
    """Import every module under recsys.models so `Recommender.registry` knows every model name."""
    import recsys.models

    for info in pkgutil.iter_modules(recsys.models.__path__):
        importlib.import_module(f"recsys.models.{info.name}")


@dataclass(frozen=True)
class CustomerRow:
    consent_personalisation: bool
    consent_marketing: bool
    diet_exclusions: str | None
    diet_preferences: str | None


@dataclass
class Runtime:
    """Model + catalog + derived arrays. Treated as read-only after construction."""

    model: Recommender
    version: str
    source: str
    items_table: pd.DataFrame  # row i describes model item i
    dataset: Dataset | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _forbidden: dict[frozenset[str], np.ndarray] = field(default_factory=dict, repr=False)
    _category_masks: OrderedDict[frozenset[str], np.ndarray] = field(default_factory=OrderedDict, repr=False)
    _fallback_tops: OrderedDict[tuple[frozenset[str], int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=OrderedDict, repr=False
    )
    _factor_indexes: OrderedDict[frozenset[str], FactorIndex] = field(default_factory=OrderedDict, repr=False)

    def __post_init__(self) -> None:
        self.items_table = align_items(self.items_table, self.model.items_.to_list())
        self.n_items = len(self.items_table)
        self.item_ids: np.ndarray = self.model.items_.external_ids
        self.names = _text_column(self.items_table, "name")
        self.categories = _text_column(self.items_table, "category")
        self.co2e = (
            self.items_table["co2e_per_kg"].to_numpy(dtype=np.float64)
            if "co2e_per_kg" in self.items_table
            else np.full(self.n_items, np.nan)
        )
        self.stock = self._stock()
        self.engine = ConstraintEngine(self.items_table, stock=self.stock)
        self.customers = self._customers()
        # dict lookups: ~100x cheaper per request than a pandas Index round trip
        self.user_pos: dict[str, int] = {u: i for i, u in enumerate(self.model.users_.to_list())}
        self.item_pos: dict[str, int] = {u: i for i, u in enumerate(self.model.items_.to_list())}
        if not self.model.seen_.has_sorted_indices:  # history rows are searched with searchsorted
            self.model.seen_.sort_indices()
        self.seen_indptr = self.model.seen_.indptr
        self.seen_indices = self.model.seen_.indices

    # ---- derived data ---------------------------------------------------------------------------
    def _stock(self) -> dict[str, np.ndarray] | None:
        """Items sold per store: the in-stock proxy when no stock feed exists."""
        if self.dataset is None or "store_id" not in self.dataset.interactions:
            return None
        inter = self.dataset.interactions[["store_id", "item_idx"]].dropna()
        if inter.empty:
            return None
        inter = inter.drop_duplicates()
        return {str(s): g.to_numpy() for s, g in inter.groupby(inter["store_id"].astype(str))["item_idx"]}

    def _customers(self) -> dict[str, CustomerRow]:
        if self.dataset is None:
            return {}
        users = self.dataset.users_table
        get = lambda c: users[c] if c in users else pd.Series([None] * len(users))  # noqa: E731
        rows = zip(
            users["customer_id"].astype(str),
            get("consent_personalisation"),
            get("consent_marketing"),
            get("diet_exclusions"),
            get("diet_preferences"),
            strict=True,
        )
        return {
            cid: CustomerRow(
                bool(cp) if cp is not None else False,
                bool(cm) if cm is not None else False,
                _str(ex),
                _str(pr),
            )
            for cid, cp, cm, ex, pr in rows
        }

    @cached_property
    def seen_csc(self) -> sp.csc_matrix:
        """Column access for "because you bought X" co-occurrence lookups (built on first use)."""
        return self.model.seen_.tocsc()

    def history(self, user_idx: int) -> np.ndarray:
        if user_idx < 0:
            return np.empty(0, dtype=np.int64)
        return self.seen_indices[self.seen_indptr[user_idx] : self.seen_indptr[user_idx + 1]].astype(np.int64)

    def user_index(self, customer_id: str) -> int:
        """Model row of a customer, -1 when the model does not know the id."""
        return self.user_pos.get(customer_id, -1)

    def item_index(self, item_ids: list[str]) -> np.ndarray:
        """Model indices of product ids, -1 for unknown ids."""
        get = self.item_pos.get
        return np.fromiter((get(str(i), -1) for i in item_ids), dtype=np.int64, count=len(item_ids))

    @cached_property
    def unit_item_factors(self) -> np.ndarray | None:
        """L2-normalised item factors for cheap item-item cosine (None for models without factors)."""
        factors = getattr(self.model, "item_factors_", None)
        if factors is None:
            return None
        factors = np.asarray(factors, dtype=np.float32)
        norms = np.linalg.norm(factors, axis=1, keepdims=True)
        return factors / np.maximum(norms, 1e-12)

    def forbidden(self, profile: DietProfile) -> np.ndarray:
        """Indices of the items a profile's hard exclusions forbid (cached per exclusion set).

        Setting a few ten thousand scores to -inf by index is several times cheaper than a masked
        pass over the whole catalog for every request.
        """
        key = profile.exclusions
        with self._lock:
            idx = self._forbidden.get(key)
        if idx is None:
            idx = np.flatnonzero(~self.engine.allowed(profile))
            idx.setflags(write=False)
            with self._lock:
                self._forbidden[key] = idx
                if len(self._forbidden) > 256:
                    self._forbidden.pop(next(iter(self._forbidden)))
        return idx

    @cached_property
    def dot_product_model(self) -> bool:
        """True when the model's scores are exactly user_factors_ @ item_factors_.T (ALS, BPR): such
        users are scored through a per-diet `FactorIndex` instead of over the whole catalog."""
        from recsys.models.implicit_models import _FactorModel

        return (
            isinstance(self.model, _FactorModel)
            and type(self.model)._score is _FactorModel._score
            and getattr(self.model, "user_factors_", None) is not None
            and getattr(self.model, "item_factors_", None) is not None
        )

    def factor_index(self, profile: DietProfile) -> FactorIndex:
        """The allowed items of a profile's hard exclusions, sorted for bounded scoring (LRU cached;
        ~6 MB per diet for a 91k x 64 catalog, so a few dozen diets stay well under a GB)."""
        key = profile.exclusions
        with self._lock:
            index = self._factor_indexes.get(key)
            if index is not None:
                self._factor_indexes.move_to_end(key)
                return index
        index = FactorIndex.build(self.model.item_factors_, self.engine.allowed(profile))
        with self._lock:
            self._factor_indexes[key] = index
            if len(self._factor_indexes) > 32:
                self._factor_indexes.popitem(last=False)
        return index

    def fallback_top(self, profile: DietProfile, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(items, scores) of the non-personalised list under a profile's exclusions, (k,) each with -1
        / -inf padding; the same for every such customer, so computed once per (diet, k)."""
        from recsys.ranking.topk import top_k

        key = (profile.exclusions, k)
        with self._lock:
            hit = self._fallback_tops.get(key)
            if hit is not None:
                self._fallback_tops.move_to_end(key)
                return hit
        scores = np.array(self.model.fallback_scores(), dtype=np.float32)
        scores[self.forbidden(profile)] = -np.inf
        items, top = top_k(scores[None, :], k)
        hit = (items[0], top[0])
        for a in hit:
            a.setflags(write=False)
        with self._lock:
            self._fallback_tops[key] = hit
            if len(self._fallback_tops) > 256:
                self._fallback_tops.popitem(last=False)
        return hit

    def category_mask(self, categories: frozenset[str]) -> np.ndarray:
        """Mask of items in any of the categories, cached (a catalog-wide string compare is slow)."""
        with self._lock:
            mask = self._category_masks.get(categories)
            if mask is not None:
                self._category_masks.move_to_end(categories)
                return mask
        mask = self.engine.filter_mask(ItemFilters.make(include_categories=categories))
        mask.setflags(write=False)
        with self._lock:
            self._category_masks[categories] = mask
            if len(self._category_masks) > 256:
                self._category_masks.popitem(last=False)
        return mask

    @cached_property
    def personalizer(self) -> Any | None:
        """recsys.personalize.Personalizer over this snapshot, when that module is installed."""
        try:
            from recsys.personalize import Personalizer
        except ImportError:
            return None
        data = self.dataset if self.dataset is not None else self.items_table
        return Personalizer(self.model, data, stock=self.stock)

    def warm(self) -> None:
        """Build the lazy parts (recipes, co-occurrence index) ahead of the first request that needs them."""
        steps = {
            "personalizer": lambda: self.personalizer,
            "recipes": lambda: self.personalizer is not None and self.personalizer.recipe_recommender,
            "co-occurrence index": lambda: self.seen_csc,
        }
        for name, step in steps.items():
            try:
                step()
            except Exception:  # noqa: BLE001 - a missing optional part must not stop serving
                logger.exception("warming %s failed", name)


def align_items(items_table: pd.DataFrame, item_ids: list[str]) -> pd.DataFrame:
    """Items table reordered so row i is the model's item i; every model item must be described."""
    table = items_table.reset_index(drop=True)
    ids = table["product_id"].astype(str)
    if ids.tolist() == item_ids:
        return table
    pos = pd.Index(ids).get_indexer(item_ids)
    if (pos < 0).any():
        missing = [i for i, p in zip(item_ids, pos, strict=True) if p < 0][:5]
        raise ValueError(f"items table does not describe model items {missing}")
    return table.iloc[pos].reset_index(drop=True)


def _text_column(table: pd.DataFrame, column: str) -> np.ndarray:
    if column not in table:
        return np.full(len(table), None, dtype=object)
    col = table[column].astype(object)
    return col.where(col.notna(), None).to_numpy()


def _str(value: object) -> str | None:
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


# ---- loading ------------------------------------------------------------------------------------


def load_runtime(settings: Settings, model_dir: Path | None = None) -> Runtime:
    """A fresh snapshot from `model_dir`, else settings.model_dir, else the registry alias."""
    import_all_models()
    model_dir = model_dir or settings.model_dir
    if model_dir is not None:
        model_dir = Path(model_dir)
        model = Recommender.load(model_dir)
        version = local_version(model_dir)
        source = str(model_dir)
        artifact_items = _find_items_table(model_dir)
    else:
        model_dir, artifact_items, version, source = download_champion(settings)
        model = Recommender.load(model_dir)
    # serving scores with what the model learnt; the promotion calendar is only read by training
    tables = read_tables(settings.data_dir, skip=("promotions",)) if settings.data_dir is not None else None
    dataset = Dataset.from_tables(tables) if tables is not None else None
    if dataset is not None:
        items = dataset.items_table
    elif artifact_items is not None:
        items = pd.read_parquet(artifact_items)
    else:
        raise ValueError(f"no items table: set RECSYS_DATA_DIR or log 'items' with the model ({source})")
    logger.info("loaded model %s (%s) from %s", model.name, version, source)
    return Runtime(model=model, version=version, source=source, items_table=items, dataset=dataset)


def local_version(model_dir: Path) -> str:
    """Version label of a native directory: its name plus a digest of model.json (changes on refit)."""
    import hashlib

    meta = (model_dir / "model.json").read_bytes()
    return f"{model_dir.name}-{hashlib.sha256(meta).hexdigest()[:8]}"


def _find_items_table(root: Path) -> Path | None:
    for pattern in ("items.parquet", "items*.parquet", "**/items*.parquet"):
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
    return None


def _find_model_dir(root: Path) -> Path:
    for meta in sorted(root.rglob("model.json")):
        if (meta.parent / "arrays.npz").exists():
            json.loads(meta.read_text())  # a readable native model, not some other model.json
            return meta.parent
    raise ValueError(f"no native model directory (model.json + arrays.npz) under {root}")


def parse_registry_uri(uri: str) -> tuple[str, str]:
    """'models:/name@alias' -> (name, alias)."""
    if not uri.startswith("models:/") or "@" not in uri:
        raise ValueError(f"registry URI must look like models:/<name>@<alias>, got {uri!r}")
    name, alias = uri[len("models:/") :].rsplit("@", 1)
    return name, alias


def download_champion(settings: Settings) -> tuple[Path, Path | None, str, str]:
    """Resolve the alias ONCE to a version number, then download that exact version.

    Resolving first means a concurrent re-alias cannot hand us files of one version labelled with
    another.
    """
    import mlflow
    from mlflow import MlflowClient

    name, alias = parse_registry_uri(settings.registry_uri)
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    mv = client.get_model_version_by_alias(name, alias)
    mlflow.set_tracking_uri(settings.tracking_uri)
    dst = Path(tempfile.mkdtemp(prefix=f"recsys-{name}-v{mv.version}-"))
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(dst), tracking_uri=settings.tracking_uri
        )
    )
    model_dir = _find_model_dir(local)
    return (
        model_dir,
        _find_items_table(local),
        f"{name}/{mv.version}",
        f"models:/{name}@{alias} (v{mv.version})",
    )
