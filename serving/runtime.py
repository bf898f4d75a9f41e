"""The loaded model and everything derived from it, as ONE immutable snapshot.

Reloading builds a complete new `Runtime` next to the old one and then swaps a single reference, so
a request that already picked up the old snapshot finishes on it and no request ever sees a model
from one version with an item table or masks from another.

Sources: a native model directory (RECSYS_MODEL_DIR) or the MLflow registry alias
`models:/grocery-recommender@champion`, whose pyfunc model carries the native directory and the
items table as artifacts. A data directory (RECSYS_DATA_DIR) adds the catalog: the products table and
stock per store. Customer state (consent, diet, recent purchases, lifecycle) is NOT loaded here: it
is read by key from the event store (serving/events.py, published by serving/publish.py), so the
memory of a worker does not grow with the number of customers. The discount plan is a separate
artifact (serving/discounts.py).
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

from recsys.data.io import read_tables
from recsys.data.schema import TABLES
from recsys.models.base import Recommender
from recsys.personalize import Personalizer
from recsys.ranking.basket import BasketCompleter
from recsys.ranking.selection import ProductSelector
from serving.config import Settings
from serving.errors import ApiError
from serving.reload import ModelSource

logger = logging.getLogger("serving")


@dataclass(frozen=True)
class Catalog:
    """What a data directory adds to a model for serving: the item table and which store sells what.

    Catalog-sized only: customer state is read by key from the event store (serving/publish.py puts
    it there), so a worker's memory follows the catalog and the model, not the customers."""

    items_table: pd.DataFrame
    store_items: dict[str, np.ndarray] | None = None  # store id -> rows of items_table sold there
    data_dir: Path | None = None
    key: tuple | None = None  # data_key(data_dir) when read


@dataclass
class Runtime:
    """Model + catalog + the library's selection layer. Treated as read-only after construction."""

    model: Recommender
    version: str
    source: str
    catalog: Catalog
    baskets: BasketCompleter | None = None  # basket co-occurrence saved with the model
    #: the runtime this one replaces; its catalog parts are shared when the catalog is the same
    same_catalog: Runtime | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        # products-table row -> model row (-1: a product the model does not know)
        product_ids = self.catalog.items_table["product_id"].astype(str)
        model_items = pd.Index(np.asarray(self.model.items_.to_list(), dtype=object))
        to_model = model_items.get_indexer(product_ids.to_numpy(dtype=object)).astype(np.int64)
        self.stock = _stock(self.catalog.store_items, to_model)
        # the one selection path (recsys.ranking.selection); serving adds transport and batching only
        # a reload over the same catalog: the catalog's parts of the selection layer are shared
        shared = self.same_catalog
        shared = shared.personalizer if shared is not None and shared.catalog is self.catalog else None
        self.personalizer = Personalizer(
            self.model, self.catalog.items_table, stock=self.stock, same_catalog=shared
        )
        self.selector: ProductSelector = self.personalizer.selector
        if self.baskets is None and self.catalog.data_dir is not None:
            # an older model dir without basket.npz: build it from the data at load (ranking/basket.py)
            self.baskets = _data_baskets(self.catalog.data_dir, product_ids, to_model, self.selector.n_items)
        if self.baskets is not None:
            self.selector.baskets = self.baskets
        self.items_table = self.personalizer.items_table
        self.engine = self.selector.engine
        self.n_items = self.selector.n_items
        self.item_ids: np.ndarray = self.selector.item_ids
        self.names = self.selector.names
        self.categories = self.selector.categories
        self.co2e = self.selector.co2e
        # what the replaced snapshot built on demand is rebuilt by `warm`, before this one serves
        self._replaces = self.same_catalog.selector if self.same_catalog is not None else None
        self.same_catalog = None  # never keep the previous snapshot alive

    def history(self, user_idx: int) -> np.ndarray:
        return self.selector.history(user_idx)

    def user_index(self, customer_id: str) -> int:
        """Model row of a customer, -1 when the model does not know the id."""
        return self.selector.user_index(customer_id)

    def item_index(self, item_ids: list[str]) -> np.ndarray:
        """Model indices of product ids, -1 for unknown ids."""
        return self.selector.item_index(item_ids)

    def warm(self) -> None:
        """Build the lazy parts (recipes, item similarity, the fold-in solver, the basket re-ranker's
        compiled trees, the per-diet selection indexes the replaced snapshot was serving) ahead of
        the first request that needs them."""
        previous, self._replaces = self._replaces, None  # then let the old selector go
        steps = {
            "selection indexes": lambda: self.selector.warm_like(previous),
            "recipes": lambda: self.personalizer.recipe_recommender,
            "item similarity": lambda: self.model.item_similarity(
                np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64)
            ),
            "fold-in": lambda: (
                self.model.supports_basket and self.model.score_basket(np.zeros(1, dtype=np.int64))
            ),
            "basket re-ranker": lambda: (
                self.selector.baskets is not None
                and self.selector.baskets.reranker is not None
                and self.selector.baskets.reranker.warm()
            ),
        }
        for name, step in steps.items():
            try:
                step()
            except Exception:  # noqa: BLE001 - a missing optional part must not stop serving
                logger.exception("warming %s failed", name)


def _stock(store_items: dict[str, np.ndarray] | None, to_model: np.ndarray) -> dict[str, np.ndarray] | None:
    """Model items sold per store: the in-stock proxy when no stock feed exists."""
    if not store_items:
        return None
    out = {}
    for store, rows in store_items.items():
        idx = to_model[rows]
        out[store] = np.unique(idx[idx >= 0])
    return out


def _interaction_columns(data_dir: Path, wanted: tuple[str, ...]) -> pd.DataFrame | None:
    """Only these columns of the purchase lines (those that exist), read and dropped by the caller."""
    import pyarrow.dataset as ds

    path = Path(data_dir) / "interactions.parquet"
    if not path.exists():
        return None
    present = [c for c in wanted if c in ds.dataset(path).schema.names]
    return pd.read_parquet(path, columns=present) if "product_id" in present else None


def read_catalog(data_dir: Path) -> Catalog:
    """The products table and which store sold what (the purchase lines are read column-wise and
    not kept)."""
    skip = tuple(t for t in TABLES if t != "products")
    items = read_tables(data_dir, skip=skip)["products"]
    store_items = None
    lines = _interaction_columns(data_dir, ("store_id", "product_id"))
    if lines is not None and "store_id" in lines:
        lines = lines.dropna().drop_duplicates()
        rows = pd.Index(items["product_id"].astype(str)).get_indexer(lines["product_id"].astype(str))
        lines = lines.assign(row=rows)[rows >= 0]
        if not lines.empty:
            store_items = {
                str(s): g.to_numpy(np.int64) for s, g in lines.groupby(lines["store_id"].astype(str))["row"]
            }
    return Catalog(items.reset_index(drop=True), store_items, Path(data_dir), data_key(data_dir))


def _data_baskets(
    data_dir: Path, product_ids: pd.Series, to_model: np.ndarray, n_items: int
) -> BasketCompleter | None:
    lines = _interaction_columns(data_dir, ("basket_id", "product_id"))
    if lines is None or "basket_id" not in lines:
        return None
    rows = pd.Index(product_ids).get_indexer(lines["product_id"].astype(str))
    lines = pd.DataFrame({"basket_id": lines["basket_id"].to_numpy(), "item_idx": rows})[rows >= 0]
    return BasketCompleter.from_interactions(lines, n_items, to_model=to_model)


# ---- loading ------------------------------------------------------------------------------------


def load_runtime(
    settings: Settings, source: ModelSource | Path | None = None, previous: Runtime | None = None
) -> Runtime:
    """A fresh snapshot from `source` (a model dir or registry version/alias), else settings.model_dir,
    else the registry alias. Every file is checksummed and every array validated before the model can
    score (ModelCorrupt, a ValueError, otherwise): a damaged model is refused, never served.

    With `previous` (a reload), the catalog is taken from it when the data directory is unchanged
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
    if previous is not None and key is not None and previous.catalog.key == key:
        catalog = previous.catalog
    elif settings.data_dir is not None:
        catalog = read_catalog(settings.data_dir)
    elif artifact_items is not None:
        catalog = Catalog(pd.read_parquet(artifact_items))
    else:
        raise ValueError(f"no items table: set RECSYS_DATA_DIR or log 'items' with the model ({where})")
    logger.info("loaded model %s (%s) from %s", model.name, version, where)
    return Runtime(
        model=model,
        version=version,
        source=where,
        catalog=catalog,
        baskets=BasketCompleter.load(model_dir),
        same_catalog=previous,
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
    from mlflow.exceptions import MlflowException

    name, alias = parse_registry_uri(settings.registry_uri)
    alias = ref or alias
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    try:
        mv = (
            client.get_model_version(name, alias)
            if alias.isdigit()
            else client.get_model_version_by_alias(name, alias)
        )
    except MlflowException as exc:
        if exc.error_code == "INVALID_PARAMETER_VALUE":  # e.g. a name MLflow reserves
            raise ApiError(400, f"registry version or alias {alias!r}: {exc.message}") from exc
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ApiError(404, f"no version or alias {alias!r} of {name!r} in the model registry") from exc
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
