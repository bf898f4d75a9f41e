"""evaluate(): the protocol (users, tracks) on a tiny split with known answers."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.data.splits import temporal_split
from recsys.metrics.evaluation import evaluate, evaluation_users
from recsys.models import BuyAgain, Popularity
from tests.models.conftest import T0, make_dataset


@pytest.fixture()
def split():
    rows = [
        ("u0", "i0", 1), ("u0", "i1", 2), ("u0", "i0", 3),
        ("u1", "i2", 3), ("u1", "i0", 4), ("u1", "i2", 5), ("u2", "i3", 5),
        # test period (day >= 10): u0 re-buys i0 and discovers i2; u1 re-buys i2; u3 is new (no train)
        ("u0", "i0", 11), ("u0", "i2", 12), ("u1", "i2", 13), ("u3", "i1", 14),
    ]  # fmt: skip
    data = make_dataset([(u, i, float(d)) for u, i, d in rows], 5)
    return temporal_split(data, T0 + pd.Timedelta(days=10))


def test_users_and_truth_per_track(split):
    users, truth = evaluation_users(split.train, split.test, "all")
    assert split.train.users.to_external(users).tolist() == ["u0", "u1"]  # u3 has no train history
    assert truth.nnz == 3
    users, truth = evaluation_users(split.train, split.test, "new")
    assert split.train.users.to_external(users).tolist() == ["u0"]  # u1 only re-bought
    assert split.train.items.to_external(truth.indices).tolist() == ["i2"]


def test_evaluate_buy_again_and_popularity(split):
    ba = evaluate(BuyAgain().fit(split.train), split.train, split.test, k=1, track="all")
    pop = evaluate(Popularity().fit(split.train), split.train, split.test, k=1, track="all")
    assert ba["n_users"] == pop["n_users"] == 2
    assert ba["hit_rate"] == 1.0  # the most frequent re-buys: u0 -> i0, u1 -> i2
    new = evaluate(Popularity().fit(split.train), split.train, split.test, k=2, track="new")
    assert new["n_users"] == 1 and new["hit_rate"] == 1.0  # seen items excluded: i2 or i3 remain
    with pytest.raises(ValueError):
        evaluate(BuyAgain().fit(split.train), split.train, split.test, k=0)
