"""One fast smoke test on the real Complete Journey data (prepared once per session by tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.mark.realdata
def test_buy_again_beats_popularity_on_complete_journey(completejourney_dir):
    from recsys.data.dataset import Dataset
    from recsys.data.splits import temporal_split
    from recsys.metrics.evaluation import evaluate
    from recsys.models import BuyAgain, Popularity

    data = Dataset.load(completejourney_dir[0])
    # 300 households keep it fast; the split is the benchmark's (weeks < 50 vs 50-53)
    keep = data.interactions["user_idx"] < 300
    split = temporal_split(data.with_interactions(data.interactions[keep]), "2017-12-04 05:00")
    ba = evaluate(BuyAgain().fit(split.train), split.train, split.test, k=10, beyond_accuracy=False)
    pop = evaluate(Popularity().fit(split.train), split.train, split.test, k=10, beyond_accuracy=False)
    assert ba["n_users"] == pop["n_users"] > 100
    assert ba["ndcg"] > 0.3 > pop["ndcg"]
