"""Channel and send hour: the model learns a customer's channel and hour from the log, and never picks
a channel the customer has not consented to."""

import numpy as np
import pandas as pd
import pytest

from lab.channels import channel_world, consent_matrix, offer_log
from recsys.offers.channels import CHANNELS, ChannelTimingModel


def test_a_customer_who_acts_on_morning_app_pushes_gets_one():
    rows = []
    for cust, good_channel, good_hour in (("A", "app", 8), ("B", "email", 20)):
        for ch in CHANNELS:
            for hour in (8, 14, 20):
                for i in range(10):
                    rows.append((cust, ch, hour, ch == good_channel and hour == good_hour and i < 8))
    log = pd.DataFrame(rows, columns=["customer_id", "channel", "hour", "responded"])
    picks = ChannelTimingModel(prior_strength=2.0).fit(log).choose(["A", "B"], np.ones((2, 3), dtype=bool))
    assert list(picks["channel"]) == ["app", "email"]
    assert abs(picks["send_hour"].iloc[0] - 8) <= 1 and abs(picks["send_hour"].iloc[1] - 20) <= 1


def test_no_offer_goes_to_a_channel_without_consent():
    world = channel_world(400, seed=3)
    log = offer_log(world, 6, seed=4)
    consent = consent_matrix(world)
    ids = world.customers["customer_id"]
    picks = ChannelTimingModel().fit(log).choose(ids, consent)
    chosen = pd.Index(CHANNELS).get_indexer(picks["channel"])
    sent = chosen >= 0
    assert consent[np.flatnonzero(sent), chosen[sent]].all()  # zero sends without consent
    none = ~consent.any(axis=1)
    assert none.any() and picks["channel"][none].isna().all() and (picks["send_hour"][none] == -1).all()
    # the log itself only holds consented channels
    logged = pd.Index(CHANNELS).get_indexer(log["channel"])
    assert consent[ids.reset_index().set_index("customer_id").loc[log["customer_id"], "index"], logged].all()


def test_an_unknown_channel_in_the_log_is_named():
    log = pd.DataFrame({"customer_id": ["A"], "channel": ["fax"], "hour": [9], "responded": [True]})
    with pytest.raises(ValueError, match="row 0: unknown channel 'fax'"):
        ChannelTimingModel().fit(log)


def test_consent_per_channel_and_the_old_flag_meaning_every_channel():
    from recsys.offers.channels import consent_matrix

    customers = pd.DataFrame(
        {
            "customer_id": ["flag", "listed", "none-listed", "no-flag", "old"],
            "consent_marketing": [True, True, True, False, True],
            "marketing_channels": [None, "email, store", "", "email", None],
        }
    )
    assert consent_matrix(customers).tolist() == [
        [True, True, True],
        [False, True, True],
        [False, False, False],
        [False, False, False],
        [True, True, True],
    ]
    # data from before channels: the flag alone
    assert consent_matrix(customers.drop(columns="marketing_channels")).all(axis=1).tolist() == [
        True,
        True,
        True,
        False,
        True,
    ]
    bad = customers.assign(marketing_channels=[None, "email,fax", None, None, None])
    with pytest.raises(ValueError, match=r"customers row 1: field 'marketing_channels' value 'email,fax'"):
        consent_matrix(bad)


def test_the_saved_model_chooses_as_the_fitted_one():
    world = channel_world(200, seed=5)
    model = ChannelTimingModel().fit(offer_log(world, 6, seed=6))
    again = ChannelTimingModel.from_frame(model.to_frame(), model.get_params())
    ids, consent = world.customers["customer_id"], consent_matrix(world)
    pd.testing.assert_frame_equal(model.choose(ids, consent), again.choose(ids, consent))


def test_the_plan_gets_consented_channels_and_drops_customers_without_one():
    from recsys.offers.channels import plan_channels

    log = pd.DataFrame(
        [("A", "app", 9, True)] * 5 + [("A", "email", 9, False)] * 5 + [("B", "store", 18, True)] * 5,
        columns=["customer_id", "channel", "hour", "responded"],
    )
    model = ChannelTimingModel(prior_strength=2.0).fit(log)
    plan = pd.DataFrame({"customer_id": ["A", "A", "B", "C"], "product_group": ["x", "y", "x", "x"]})
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C"],
            "consent_marketing": [True, True, False],
            "marketing_channels": ["email", None, None],
        }
    )
    out = plan_channels(plan, model, customers, pd.Series({"A": "Mon", "B": "Sat", "C": "Sun"}))
    assert list(out["customer_id"]) == ["A", "A", "B"]  # C consented to nothing: no offer
    assert list(out["channel"]) == ["email", "email", "store"]  # A's app responses do not matter
    assert out["best_send_time"].iloc[2] == "Sat 18:00"


def _engagement(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """customer, channel, how many events (one a day from 2024-01-01)."""
    out = [
        (c, ch, pd.Timestamp("2024-01-01") + pd.Timedelta(days=i), "visit" if ch == "store" else "open")
        for c, ch, n in rows
        for i in range(n)
    ]
    return pd.DataFrame(out, columns=["customer_id", "channel", "timestamp", "event"])


def test_a_customer_who_only_engages_on_email_gets_email():
    from recsys.offers.channels import engagement_signals

    ids = ["E", "A", "S", "N"]
    engagement = _engagement([("E", "email", 6), ("A", "app", 6), ("S", "store", 6)])
    # a neutral log: one unanswered offer per channel each, so only engagement tells them apart
    log = pd.DataFrame(
        [(c, ch, 12, False) for c in ids for ch in CHANNELS],
        columns=["customer_id", "channel", "hour", "responded"],
    )
    since, until = pd.Timestamp("2023-12-01"), pd.Timestamp("2024-02-01")
    signals = engagement_signals(engagement, ids, since, until)
    assert signals.set_index("customer_id").loc["N"].tolist() == [0.0, 0.0, 0.0]  # no events: 0, not unknown
    picks = ChannelTimingModel().fit(log, signals).choose(ids, np.ones((4, 3), dtype=bool))
    assert list(picks["channel"][:3]) == ["email", "app", "store"]
    # consent still decides: without email consent, E gets another channel, never email
    no_email = ChannelTimingModel().fit(log, signals).choose(["E"], np.array([[True, False, True]]))
    assert no_email["channel"].iloc[0] in {"app", "store"}
    # events outside the window do not count
    late = engagement_signals(engagement, ids, since, pd.Timestamp("2024-01-03"))
    assert late.set_index("customer_id").loc["E", "engagement_email"] == 2
    # no engagement table (Complete Journey): unknown engagement, the model as without signals
    unknown = engagement_signals(None, ids, since, until)
    assert unknown.drop(columns="customer_id").isna().all().all()
    pd.testing.assert_frame_equal(
        ChannelTimingModel().fit(log, unknown).choose(ids, np.ones((4, 3), dtype=bool)),
        ChannelTimingModel().fit(log).choose(ids, np.ones((4, 3), dtype=bool)),
    )
