"""Train/test splits that never let the future leak into training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset


@dataclass(frozen=True)
class Split:
    train: Dataset
    test: Dataset
    cutoff: pd.Timestamp | None = None


def temporal_split(
    dataset: Dataset, cutoff: str | pd.Timestamp, until: str | pd.Timestamp | None = None
) -> Split:
    """Train on events strictly before `cutoff`, test on events in [cutoff, until)."""
    cut = pd.Timestamp(cutoff)
    ts = dataset.interactions["timestamp"]
    test_mask = ts >= cut
    if until is not None:
        test_mask &= ts < pd.Timestamp(until)
    return Split(
        train=dataset.with_interactions(dataset.interactions[ts < cut]),
        test=dataset.with_interactions(dataset.interactions[test_mask]),
        cutoff=cut,
    )


def week_cutoff(dataset: Dataset, test_weeks: int) -> pd.Timestamp:
    """The midnight `test_weeks` weeks before the day after the last event."""
    last = dataset.interactions["timestamp"].max().normalize() + pd.Timedelta(days=1)
    return last - pd.Timedelta(weeks=test_weeks)


def last_n_baskets_split(dataset: Dataset, n: int = 1) -> Split:
    """Per user, the last `n` baskets are test and everything earlier is train (leave-last-out)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    inter = dataset.interactions
    baskets = inter.groupby(["user_idx", "basket_id"], sort=False)["timestamp"].max().reset_index()
    baskets = baskets.sort_values(["user_idx", "timestamp", "basket_id"])
    baskets["from_end"] = baskets.groupby("user_idx").cumcount(ascending=False)
    keys = baskets.loc[baskets["from_end"] < n, ["user_idx", "basket_id"]]
    is_test = pd.MultiIndex.from_frame(inter[["user_idx", "basket_id"]]).isin(pd.MultiIndex.from_frame(keys))
    # Anything a user did at or after their first test basket is test too: no leak through ties.
    first_test = inter[is_test].groupby("user_idx")["timestamp"].min()
    start = inter["user_idx"].map(first_test)
    is_test = np.asarray(is_test) | (start.notna() & (inter["timestamp"] >= start)).to_numpy()
    return Split(
        train=dataset.with_interactions(inter[~is_test]), test=dataset.with_interactions(inter[is_test])
    )
