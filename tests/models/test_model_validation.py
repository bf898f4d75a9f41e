"""A damaged model is refused at load with a reason naming the file; never loaded to crash later."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lab.corrupt import CORRUPTIONS, corrupt_copy
from recsys.models.base import Recommender
from recsys.models.model_dir import CHECKSUMS_FILE, verify_checksums
from recsys.models.validate import ModelCorrupt
from tests.serving.conftest import make_tables


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    from recsys.data.dataset import Dataset
    from recsys.data.io import write_tables
    from recsys.models.implicit_models import ALS
    from recsys.models.model_dir import save_model_dir

    root = tmp_path_factory.mktemp("validate")
    write_tables(make_tables(), root / "data")
    dataset = Dataset.load(root / "data")
    model = ALS(factors=4, iterations=2, weighting="count").fit(dataset)
    return save_model_dir(model, dataset.items_table, root / "model")


def test_a_saved_model_records_and_passes_its_checksums(saved):
    assert (saved / CHECKSUMS_FILE).exists() and verify_checksums(saved, required=True)
    assert Recommender.load(saved).name == "als"


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_every_corruption_is_refused(saved, tmp_path, name):
    bad = corrupt_copy(saved, tmp_path / name, name)
    with pytest.raises(ModelCorrupt, match=str(bad)):
        Recommender.load(bad)


def test_without_checksums_the_array_checks_still_refuse(saved, tmp_path):
    for name in ("truncated_arrays", "seen_index_out_of_range"):
        bad = corrupt_copy(saved, tmp_path / name, name)
        (bad / CHECKSUMS_FILE).unlink()
        with pytest.raises(ModelCorrupt):
            Recommender.load(bad)


def test_a_model_file_an_earlier_model_left_is_not_saved_with_a_new_one(saved, tmp_path):
    """Saving or copying over a directory that held a model with a basket re-ranker removes it (the
    new model has none); files that are not model files stay."""
    from recsys.models.model_dir import MODEL_FILES, copy_model_dir, save_model_dir
    from recsys.ranking.basket import BASKET_FILE
    from recsys.ranking.basket_rerank import RERANK_FILE

    assert {BASKET_FILE, RERANK_FILE} <= set(MODEL_FILES)
    model, items = Recommender.load(saved), saved / "items.parquet"
    writers = {
        "save": lambda out: save_model_dir(model, pd.read_parquet(items), out),
        "copy": lambda out: copy_model_dir(saved, items, out),
    }
    for name, write in writers.items():
        out = tmp_path / name
        out.mkdir()
        (out / RERANK_FILE).write_bytes(b"an earlier model's re-ranker")
        (out / "notes.txt").write_text("mine")
        write(out)
        assert not (out / RERANK_FILE).exists() and (out / "notes.txt").read_text() == "mine"
        assert verify_checksums(out, required=True) and Recommender.load(out).name == "als"
