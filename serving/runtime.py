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

import json
import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.data.io import read_tables
from recsys.models.base import Recommender
from recsys.personalize import Personalizer
from recsys.ranking.basket import BasketCompleter
from recsys.ranking.selection import ProductSelector
from serving.config import Settings
from serving.reload import ModelSource

logger = logging.getLogger("serving")


@dataclass(frozen=True)
class CustomerRow:
    consent_personalisation: bool
    consent_marketing: bool
    diet_exclusions: str | None
    diet_preferences: str | None
    marketing_channels: str | None = None  # None: the marketing flag covers every channel


@dataclass
class Runtime:
    """Model + catalog + the library's selection layer. Treated as read-only after construction."""

    model: Recommender
    version: str
    source: str
    items_table: pd.DataFrame  # row i describes model item i
    dataset: Dataset | None = None
    baskets: BasketCompleter | None = None  # basket co-occurrence saved with the model
    data_key: object = None  # identifies the data directory's contents the dataset was read from
    #: a runtime on the same dataset: its dataset-only parts (stock, customers) are taken, not rebuilt
    reuse: Runtime | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        same = self.reuse is not None and self.dataset is not None and self.reuse.dataset is self.dataset
        self.stock = self.reuse.stock if same else self._stock()
        data = self.dataset if self.dataset is not None else self.items_table
        # the one selection path (recsys.ranking.selection); serving adds transport and batching only
        self.personalizer = Personalizer(self.model, data, stock=self.stock)
        self.selector: ProductSelector = self.personalizer.selector
        if self.baskets is not None:
            self.selector.baskets = self.baskets
        elif self.dataset is not None and "basket_id" in self.dataset.interactions:
            # an older model dir without basket.npz: build it from the data at load (ranking/basket.py)
            to_model = self.selector.item_index(self.dataset.items.to_list())  # data -> model rows
            self.selector.baskets = BasketCompleter.from_interactions(
                self.dataset.interactions, self.selector.n_items, to_model=to_model
            )
        self.items_table = self.personalizer.items_table
        self.engine = self.selector.engine
        self.n_items = self.selector.n_items
        self.item_ids: np.ndarray = self.selector.item_ids
        self.names = self.selector.names
        self.categories = self.selector.categories
        self.co2e = self.selector.co2e
        self.customers = self.reuse.customers if same else self._customers()
        self.reuse = None  # never keep the previous snapshot alive

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
            get("marketing_channels"),
            strict=True,
        )
        return {
            cid: CustomerRow(
                bool(cp) if cp is not None else False,
                bool(cm) if cm is not None else False,
                _str(ex),
                _str(pr),
                _str(mc),
            )
            for cid, cp, cm, ex, pr, mc in rows
        }

    def history(self, user_idx: int) -> np.ndarray:
        return self.selector.history(user_idx)

    def user_index(self, customer_id: str) -> int:
        """Model row of a customer, -1 when the model does not know the id."""
        return self.selector.user_index(customer_id)

    def item_index(self, item_ids: list[str]) -> np.ndarray:
        """Model indices of product ids, -1 for unknown ids."""
        return self.selector.item_index(item_ids)

    def warm(self) -> None:
        """Build the lazy parts (recipes, item similarity) ahead of the first request that needs them."""
        steps = {
            "recipes": lambda: self.personalizer.recipe_recommender,
            "item similarity": lambda: self.model.item_similarity(
                np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
            ),
        }
        for name, step in steps.items():
            try:
                step()
            except Exception:  # noqa: BLE001 - a missing optional part must not stop serving
                logger.exception("warming %s failed", name)


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


def load_runtime(
    settings: Settings, source: ModelSource | Path | None = None, previous: Runtime | None = None
) -> Runtime:
    """A fresh snapshot from `source` (a model dir or registry version/alias), else settings.model_dir,
    else the registry alias. Every file is checksummed and every array validated before the model can
    score (ModelCorrupt, a ValueError, otherwise): a damaged model is refused, never served.

    With `previous` (a reload), the data set is taken from it when the data directory is unchanged
    (same `data_key`): re-reading it is most of a reload's time and CPU, which requests share."""
    import recsys.models  # noqa: F401  (registers every model)

    if not isinstance(source, ModelSource):
        source = ModelSource(model_dir=None if source is None else Path(source))
    model_dir = source.model_dir or (None if source.version else settings.model_dir)
    if model_dir is not None:
        model_dir = Path(model_dir)
        model = Recommender.load(model_dir)
        version = local_version(model_dir)
        where = str(model_dir)
        artifact_items = _find_items_table(model_dir)
    else:
        model_dir, artifact_items, version, where = download_champion(settings, source.version)
        model = Recommender.load(model_dir)
    # serving scores with what the model learnt; the promotion calendar is only read by training
    key = data_key(settings.data_dir)
    if previous is not None and previous.dataset is not None and key is not None and previous.data_key == key:
        dataset = previous.dataset
    elif settings.data_dir is not None:
        dataset = Dataset.from_tables(read_tables(settings.data_dir, skip=("promotions",)))
    else:
        dataset = None
    if dataset is not None:
        items = dataset.items_table
    elif artifact_items is not None:
        items = pd.read_parquet(artifact_items)
    else:
        raise ValueError(f"no items table: set RECSYS_DATA_DIR or log 'items' with the model ({where})")
    logger.info("loaded model %s (%s) from %s", model.name, version, where)
    return Runtime(
        model=model,
        version=version,
        source=where,
        items_table=items,
        dataset=dataset,
        baskets=BasketCompleter.load(model_dir),
        data_key=key,
        reuse=previous,
    )


def data_key(data_dir: Path | None) -> tuple | None:
    """Names, sizes and modification times of the data files: changes whenever the data is rewritten."""
    if data_dir is None or not Path(data_dir).is_dir():
        return None
    files = sorted(p for p in Path(data_dir).rglob("*") if p.is_file())
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


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


def download_champion(settings: Settings, ref: str | None = None) -> tuple[Path, Path | None, str, str]:
    """Resolve the alias (or `ref`: a version number or another alias) ONCE to a version number,
    then download that exact version.

    Resolving first means a concurrent re-alias cannot hand us files of one version labelled with
    another.
    """
    import mlflow
    from mlflow import MlflowClient

    name, alias = parse_registry_uri(settings.registry_uri)
    alias = ref or alias
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    if alias.isdigit():
        mv = client.get_model_version(name, alias)
    else:
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
