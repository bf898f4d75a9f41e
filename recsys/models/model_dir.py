"""A model directory: the native model (model.json + arrays.npz) plus the product table it was
trained with, so batch commands can build diet masks without the original data directory.

`checksums.json` records the SHA-256 of every file at save; loading verifies it first, so a
truncated or bit-flipped file is refused before it is parsed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from recsys.models.validate import ModelCorrupt

if TYPE_CHECKING:
    from recsys.data.dataset import Dataset
    from recsys.models.base import Recommender

ITEMS_FILE = "items.parquet"
CHECKSUMS_FILE = "checksums.json"
#: Every file of a model directory the checksums cover (the basket files are optional).
MODEL_FILES = ("model.json", "arrays.npz", ITEMS_FILE, "basket.npz", "basket_rerank.npz")


def save_model_dir(
    model: Recommender,
    items_table: pd.DataFrame,
    out: Path,
    interactions: pd.DataFrame | None = None,
    rerank_on: Dataset | None = None,
) -> Path:
    """`interactions`: the training lines; their baskets give the basket co-occurrence saved beside
    the model (recsys.ranking.basket), so every door completes baskets from the same matrix.
    `rerank_on`: the training Dataset, to fit the learned basket re-ranker on (optional: it costs a
    second fit of the model; recsys.ranking.basket_rerank)."""
    _clear(Path(out))
    out = model.save(Path(out))
    items_table.to_parquet(out / ITEMS_FILE, index=False)
    if interactions is not None and "basket_id" in interactions:
        basket_completer(model, interactions, rerank_on).save(out)
    write_checksums(out)  # after every file, the basket files included
    return out


def copy_model_dir(src: Path, items_path: Path, out: Path) -> Path:
    """`out` as the model files of `src` plus the items table, checksummed: the directory a training
    job logs and the one it saves for `--out` are the same files, fitted and written once."""
    out = Path(out)
    _clear(out)
    for name in MODEL_FILES:
        if (Path(src) / name).exists():
            shutil.copy(Path(src) / name, out / name)
    shutil.copy(items_path, out / ITEMS_FILE)
    write_checksums(out)
    return out


def _clear(out: Path) -> None:
    """Remove the model files an earlier model left in `out` (other files stay): a basket re-ranker
    of the last model must not be checksummed in with, and served beside, a new one without."""
    out.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        (out / name).unlink(missing_ok=True)


def basket_completer(model: Recommender, interactions: pd.DataFrame, rerank_on: Dataset | None = None):
    """The basket co-occurrence of the training lines, with the learned re-ranker when `rerank_on`."""
    from recsys.ranking.basket import BasketCompleter
    from recsys.ranking.basket_rerank import fit_basket_reranker

    completer = BasketCompleter.from_interactions(interactions, len(model.items_))
    if rerank_on is not None:
        completer.reranker = fit_basket_reranker(model, rerank_on)
    return completer


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_checksums(directory: Path) -> None:
    """Record the digest of every model file now in `directory` (call after the last file is written)."""
    directory = Path(directory)
    names = [n for n in MODEL_FILES if (directory / n).exists()]
    sums = {n: _sha256(directory / n) for n in names}
    (directory / CHECKSUMS_FILE).write_text(json.dumps({"algorithm": "sha256", "files": sums}, indent=1))


def verify_checksums(directory: Path, required: bool = False) -> bool:
    """Raise ModelCorrupt when a recorded file is missing or differs; False when none were recorded
    (a model saved before checksums existed), unless `required`."""
    directory = Path(directory)
    path = directory / CHECKSUMS_FILE
    if not path.exists():
        if required:
            raise ModelCorrupt(f"{directory}: no {CHECKSUMS_FILE}; save the model again")
        return False
    try:
        files = json.loads(path.read_text())["files"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelCorrupt(f"{path}: unreadable ({exc})") from exc
    for name, expected in files.items():
        if "/" in name or "\\" in name or name.startswith("."):
            raise ModelCorrupt(f"{path}: bad file name {name!r}")
        target = directory / name
        if not target.exists():
            raise ModelCorrupt(f"{target}: missing (listed in {CHECKSUMS_FILE})")
        if _sha256(target) != expected:
            raise ModelCorrupt(f"{target}: checksum mismatch (file damaged or changed after save)")
    return True


def load_items_table(model_dir: Path, data_dir: Path | None = None):
    """(items table, Dataset or None): from `data_dir` when given, else the model dir's copy."""
    if data_dir is not None:
        from recsys.data.dataset import Dataset

        dataset = Dataset.load(Path(data_dir))
        return dataset.items_table, dataset
    path = Path(model_dir) / ITEMS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; pass --data DIR (the data the model was trained on)")
    return pd.read_parquet(path), None
