"""The discount planner's training job: config, live consent and diet, MLflow run, registry, serving load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from serving.events import CustomerRecord, EventStore
from training.config import ConfigError
from training.offers_config import load_offers_config, parse_offers_config, with_overrides


@pytest.fixture(scope="module")
def syn_dir(tmp_path_factory) -> Path:
    from lab.synthetic import generate, write_synthetic

    out = tmp_path_factory.mktemp("offers-syn") / "data"
    write_synthetic(generate(n_customers=200, n_products=250, weeks=16, seed=1), out)
    return out


def _config(data_dir: Path, **extra):
    base = load_offers_config("experiments/configs/offers.yaml")
    return with_overrides(base, {"data.dir": str(data_dir), "data.source": str(data_dir), **extra})


def test_config_rejects_unknown_keys_naming_key_and_file(tmp_path):
    path = tmp_path / "offers.yaml"
    path.write_text("budget: 10\nexclusions:\n  non_fod: true\n")
    with pytest.raises(ConfigError, match=r"offers.yaml: unknown key 'exclusions.non_fod'"):
        load_offers_config(path)
    with pytest.raises(ConfigError, match=r"<test>: budget: .*greater than or equal to 0"):
        parse_offers_config({"budget": -1}, "<test>")
    with pytest.raises(ConfigError, match=r"age_rule.adult_age"):
        parse_offers_config({"budget": 1, "age_rule": {"adult_age": 16}}, "<test>")
    default = load_offers_config("experiments/configs/offers.yaml")
    assert default.exclusions.age_restricted and default.exclusions.non_food
    assert default.diet.min_compliant_share == 1.0
    assert with_overrides(default, {"budget": 7.0}).budget == 7.0


def test_tracked_job_logs_aggregates_and_registers_the_champion(store, syn_dir, tmp_path, monkeypatch):
    from serving.config import Settings
    from serving.discounts import load_discount_plan
    from training.offers import PLAN_ARTIFACT, run_offers

    monkeypatch.setenv("RECSYS_EVENTS_URL", f"sqlite:///{tmp_path / 'events.db'}")

    EventStore(os.environ["RECSYS_EVENTS_URL"]).connect()  # an empty store: nothing erased yet
    name = "test-planner-job"
    first = run_offers(_config(syn_dir, budget=5.0), model_name=name, plan_dir=tmp_path / "plan")
    meta = first.artifact.meta
    assert 0 < meta["expected_cost"] <= 5.0 and meta["offers"] == len(first.artifact.plan)
    client = MlflowClient()
    run = client.get_run(first.run_id)
    assert run.data.metrics["budget"] == 5.0 and run.data.metrics["offers"] == meta["offers"]
    assert run.data.metrics["expected_cost"] <= 5.0
    assert any(k.startswith("offers_tier_") for k in run.data.metrics)
    assert any(k.startswith("customers_channel_") for k in run.data.metrics)  # the channel model's
    assert run.data.metrics["channel_log_offers"] > 0
    assert run.data.params["budget"] == "5.0" and run.data.params["diet.min_compliant_share"] == "1.0"
    # aggregates only: no customer id in any param, metric or the summary
    ids = set(first.artifact.plan["customer_id"])
    logged = json.dumps({**run.data.params, **run.data.metrics})
    assert not any(f'"{c}"' in logged for c in ids)
    artifacts = {a.path for a in client.list_artifacts(first.run_id, PLAN_ARTIFACT)}
    assert {f"{PLAN_ARTIFACT}/planner.json", f"{PLAN_ARTIFACT}/plan.parquet"} <= artifacts
    champion = client.get_model_version_by_alias(name, "champion")
    assert str(champion.version) == first.version and champion.run_id == first.run_id
    # a second run becomes the champion, the first the previous one
    second = run_offers(_config(syn_dir, budget=3.0), model_name=name)
    assert str(client.get_model_version_by_alias(name, "champion").version) == second.version
    assert str(client.get_model_version_by_alias(name, "previous-champion").version) == first.version
    # the service loads the champion's plan read-only, labelled with the registry version
    plan = load_discount_plan(Settings(offers_uri=f"models:/{name}@champion", tracking_uri=store))
    assert plan.version == f"{name}/{second.version}"
    assert plan.artifact.meta["budget"] == 3.0 and len(plan.artifact.plan) == second.artifact.meta["offers"]


def test_live_consent_diet_and_erasure_reach_the_plan(syn_dir, tmp_path, monkeypatch):
    from recsys.offers.eligibility import compliant_groups
    from training.offers import fit_plan, live_tables

    url = f"sqlite:///{tmp_path / 'events.db'}"
    monkeypatch.setenv("RECSYS_EVENTS_URL", url)
    EventStore(os.environ["RECSYS_EVENTS_URL"]).connect()  # an empty store: nothing erased yet
    config = _config(syn_dir, budget=1e9)
    tables, erased, overridden = live_tables(syn_dir)
    before, _ = fit_plan(tables, config)
    offered = list(before.plan["customer_id"].value_counts().index[:3])
    withdrawn, gone, vegan = offered
    store = EventStore(url)
    try:
        store.upsert_customer(CustomerRecord(withdrawn, True, False))
        store.upsert_customer(CustomerRecord(vegan, True, True, "vegan"))
        store.erase(gone)
    finally:
        store.close()
    tables, erased, overridden = live_tables(syn_dir)
    assert (erased, overridden) == (1, 2)
    after, planner = fit_plan(tables, config)
    in_plan = set(after.plan["customer_id"])
    assert withdrawn not in in_plan and gone not in in_plan
    assert gone not in set(planner.candidates_["customer_id"])
    allowed = compliant_groups(
        after.diet_patterns, {"contains_meat", "contains_fish", "contains_dairy", "contains_egg"}, 1.0
    )
    assert set(after.plan.loc[after.plan["customer_id"] == vegan, "product_group"]) <= allowed
    assert set(before.plan.loc[before.plan["customer_id"] == vegan, "product_group"]) - allowed  # it mattered


def test_consent_per_channel_reaches_the_plan_and_no_offer_goes_without_it(syn_dir, tmp_path, monkeypatch):
    """Batch: per-channel consent recorded through the service (and the data set's own) decides each
    offer's channel; not one planned offer goes out on a channel without consent."""
    import numpy as np

    from recsys.offers.channels import CHANNELS, consent_matrix
    from training.offers import fit_plan, live_tables

    url = f"sqlite:///{tmp_path / 'events.db'}"
    monkeypatch.setenv("RECSYS_EVENTS_URL", url)
    EventStore(url).connect()
    config = _config(syn_dir, budget=1e9)
    before, _ = fit_plan(live_tables(syn_dir)[0], config)
    email_only, nothing, flag_only = before.plan["customer_id"].value_counts().index[:3]
    store = EventStore(url)
    try:
        store.upsert_customer(CustomerRecord(email_only, True, True, marketing_channels="email"))
        store.upsert_customer(CustomerRecord(nothing, True, False, marketing_channels=""))
        store.upsert_customer(CustomerRecord(flag_only, True, True))  # the old flag: every channel
    finally:
        store.close()
    tables, _, overridden = live_tables(syn_dir)
    assert overridden == 3
    after, _ = fit_plan(tables, config)
    plan = after.plan
    assert set(plan.loc[plan["customer_id"] == email_only, "channel"]) == {"email"}
    assert nothing not in set(plan["customer_id"]) and flag_only in set(plan["customer_id"])
    customers = tables["customers"].set_index("customer_id")
    consent = consent_matrix(customers.loc[plan["customer_id"]].reset_index())
    column = [CHANNELS.index(c) for c in plan["channel"]]
    assert len(plan) and consent[np.arange(len(plan)), column].all()  # zero offers without consent
    assert plan["best_send_time"].str.match(r"^[A-Z][a-z]{2} \d{2}:00$").all()


def test_an_override_store_from_before_channels_means_every_channel(syn_dir, tmp_path):
    """A store whose customer_overrides has no marketing_channels column (older service): the flag
    alone, read as every channel, instead of failing or reading nobody."""
    import sqlalchemy as sa

    from training.privacy import read_privacy

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE customer_overrides (customer_id VARCHAR PRIMARY KEY, consent_personalisation "
                "BOOLEAN, consent_marketing BOOLEAN, diet_exclusions VARCHAR, diet_preferences VARCHAR, "
                "updated_at TIMESTAMP)"
            )
        )
        conn.execute(
            sa.text("INSERT INTO customer_overrides VALUES ('C001', 1, 1, NULL, NULL, '2026-01-01')")
        )
    engine.dispose()
    overrides = read_privacy(url).overrides
    assert list(overrides["customer_id"]) == ["C001"] and overrides["marketing_channels"].isna().all()


def test_cli_runs_the_job_from_the_config(store, syn_dir, tmp_path, monkeypatch, capsys):
    from cli.main import main

    monkeypatch.setenv("RECSYS_EVENTS_URL", f"sqlite:///{tmp_path / 'events.db'}")

    EventStore(os.environ["RECSYS_EVENTS_URL"]).connect()  # an empty store: nothing erased yet
    config = tmp_path / "offers.yaml"
    config.write_text(f"budget: 4\ndata:\n  source: {syn_dir}\n  dir: {syn_dir}\n")
    args = [
        "offers",
        "--config",
        str(config),
        "--model",
        "test-planner-cli",
        "--plan-dir",
        str(tmp_path / "p"),
    ]
    assert main([*args, "--budget", "2"]) == 0  # the flag overrides the config
    out = capsys.readouterr().out
    assert "of budget 2.00" in out and "registered version 1 @champion" in out
    assert "offers per department:" in out
    assert json.loads((tmp_path / "p" / "planner.json").read_text())["budget"] == 2.0
    config.write_text("budget: 4\nplanner:\n  margn: 0.2\n")
    assert main(["offers", "--config", str(config), "--no-track", "--out", str(tmp_path / "x.csv")]) == 2
    assert "unknown key 'planner.margn'" in capsys.readouterr().err


def test_checkout_redemptions_reach_the_offer_log(tmp_path):
    from datetime import UTC, datetime

    import pandas as pd
    from sqlalchemy import insert

    from serving.checkout import CheckoutLedger, redemptions
    from training.offers import read_redemptions, with_redemptions

    url = f"sqlite:///{tmp_path / 'events.db'}"
    ledger = CheckoutLedger(url)
    row = {"idempotency_key": "k1", "plan_version": "plan/3", "plan_as_of": "2024-03-01 00:00:00",
           "customer_id": "c1", "discount_level": 0.2, "amount": 1.0, "store": "s1"}  # fmt: skip
    with ledger.engine.begin() as conn:
        conn.execute(insert(redemptions), [
            {**row, "product_group": "MILK", "redeemed_at": datetime(2024, 3, 3, tzinfo=UTC)},
            {**row, "product_group": "BREAD", "redeemed_at": datetime(2024, 3, 4, tzinfo=UTC)},
        ])  # fmt: skip
    ledger.close()
    red = read_redemptions(url)
    assert sorted(red["product_group"]) == ["BREAD", "MILK"]
    log = pd.DataFrame(
        {
            "offer_id": ["o1", "o2"],
            "customer_id": ["c1", "c1"],
            "product_group": ["MILK", "MILK"],
            "discount_level": [0.2, 0.2],
            "sent_at": pd.to_datetime(["2024-01-01", "2024-03-01"]),
            "expires_at": pd.to_datetime(["2024-01-08", "2024-03-08"]),
            "channel": ["app", "app"],
            "redeemed_at": pd.to_datetime([None, None]),
            "propensity": [0.5, 0.5],
            "campaign_id": ["1", "1"],
        }
    )
    out = with_redemptions(log, red)
    assert out.loc[out.offer_id == "o2", "redeemed_at"].iloc[0] == pd.Timestamp("2024-03-03")
    assert out.loc[out.offer_id == "o1", "redeemed_at"].isna().all()  # window closed before
    added = out[out.offer_id.str.startswith("checkout:")]
    assert added["product_group"].tolist() == ["BREAD"] and added["propensity"].isna().all()
    assert read_redemptions(f"sqlite:///{tmp_path / 'none.db'}").empty


def test_the_planned_channel_follows_the_engagement_table():
    """`recsys offers` feeds the canonical engagement table to the channel model: a customer who only
    engages by email gets email; engagement after the plan's as-of date is not read."""
    import numpy as np
    import pandas as pd

    from training.offers import fit_channels

    day = pd.Timestamp("2024-03-01")
    engagement = pd.DataFrame(
        {
            "customer_id": ["E"] * 5 + ["A"] * 5 + ["L"] * 5,
            "channel": ["email"] * 5 + ["app"] * 5 + ["email"] * 5,
            "timestamp": [day] * 10 + [day + pd.Timedelta(days=60)] * 5,  # L's come after as_of
            "event": ["open"] * 15,
        }
    )
    offers = pd.DataFrame(
        {
            "customer_id": ["E", "A"],
            "channel": ["app", "email"],
            "sent_at": [day] * 2,
            "redeemed_at": [pd.NaT] * 2,
        }
    )
    lifecycle = pd.DataFrame({"preferred_hour": [9, 18, 12]}, index=["E", "A", "L"])
    as_of = day + pd.Timedelta(days=7)
    model = fit_channels({"offers": offers, "engagement": engagement}, lifecycle, as_of, 26)
    picks = model.choose(["E", "A", "L"], np.ones((3, 3), dtype=bool)).set_index("customer_id")
    assert picks.loc["E", "channel"] == "email" and picks.loc["A", "channel"] == "app"
    assert picks.loc["L", "channel"] != "email"  # its email opens come after as_of: not read
    assert picks.loc["E", "send_hour"] == 9  # the usual hour, as before
