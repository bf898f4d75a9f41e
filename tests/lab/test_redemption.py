"""Coupon-redemption protocol on a hand-made raw Complete Journey: features and labels never look past
a campaign's start."""

import numpy as np
import pandas as pd
import pytest

from lab.redemption import offer_features, rolling_scores


@pytest.fixture
def raw():
    ts = pd.to_datetime
    tx = pd.DataFrame(
        {
            "household_id": [1, 1, 2, 1],
            "basket_id": [10, 11, 20, 12],
            "product_id": [100, 101, 100, 100],
            "sales_value": [2.0, 3.0, 4.0, 5.0],
            "retail_disc": [0.0, 0.5, 0.0, 0.0],
            "coupon_disc": [1.0, 0.0, 0.0, 9.0],  # the 9.0 coupon is used after campaign 2 starts
            "coupon_match_disc": [0.0, 0.0, 0.0, 0.0],
            "transaction_timestamp": ts(["2017-01-02", "2017-01-20", "2017-01-03", "2017-03-10"]),
        }
    )
    return {
        "transactions": tx,
        "campaigns": pd.DataFrame({"campaign_id": [1, 1, 2, 2], "household_id": [1, 2, 1, 2]}),
        "campaign_descriptions": pd.DataFrame(
            {
                "campaign_id": [1, 2],
                "campaign_type": ["Type A", "Type B"],
                "start_date": ts(["2017-02-01", "2017-03-01"]),
                "end_date": ts(["2017-03-15", "2017-04-01"]),
            }
        ),
        "coupons": pd.DataFrame({"coupon_upc": [7, 8], "product_id": [100, 100], "campaign_id": [1, 2]}),
        "coupon_redemptions": pd.DataFrame(
            {
                "household_id": [1],
                "coupon_upc": [7],
                "campaign_id": [1],
                "redemption_date": ts(["2017-03-05"]),  # campaign 1, after campaign 2 started
            }
        ),
    }


def test_features_use_only_what_happened_before_the_campaign_start(raw):
    f = offer_features(raw).set_index(["campaign_id", "household_id"])
    assert f.loc[(1, 1), "log_coupon_disc"] == pytest.approx(np.log1p(1.0))
    assert f.loc[(2, 1), "log_coupon_disc"] == f.loc[(1, 1), "log_coupon_disc"]  # the 9.0 came later
    assert f.loc[(2, 1), "past_redemptions"] == 0  # redeemed on 03-05, after campaign 2's start
    assert f.loc[(2, 1), "past_campaigns"] == 1 and f.loc[(1, 1), "past_campaigns"] == 0
    assert f.loc[(1, 2), "log_coupon_disc"] == 0.0


def test_a_running_campaign_trains_with_the_redemptions_known_at_the_test_start(raw):
    frame = offer_features(raw)
    # campaign 1's only redemption comes after campaign 2 starts: no positive label to train on yet
    with pytest.raises(ValueError):
        rolling_scores(frame, "2017-03-01")
