"""The synthetic generator: its ground truth must hold exactly, or nothing scored on it means anything."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lab.synthetic import (
    DISCOUNT_LEVELS,
    SyntheticData,
    generate,
    logging_policy,
    read_truth,
    true_response_probability,
    write_synthetic,
    write_synthetic_parts,
)
from lab.synthetic_catalog import EXCLUSION_ATTRIBUTES
from recsys.data.schema import DIET_ATTRIBUTES, TABLES

N_CUSTOMERS, N_PRODUCTS = 300, 400


@pytest.fixture(scope="module")
def data() -> SyntheticData:
    return generate(N_CUSTOMERS, N_PRODUCTS, seed=7)


def _assert_same(a: SyntheticData, b: SyntheticData) -> None:
    for part in ("tables", "truth"):
        left, right = getattr(a, part), getattr(b, part)
        assert left.keys() == right.keys()
        for name in left:
            pd.testing.assert_frame_equal(left[name], right[name])


def test_same_seed_gives_identical_frames(data):
    _assert_same(data, generate(N_CUSTOMERS, N_PRODUCTS, seed=7))


def test_different_seeds_differ(data):
    other = generate(N_CUSTOMERS, N_PRODUCTS, seed=8)
    for name in ("interactions", "offers"):
        assert not data.tables[name].equals(other.tables[name])
    assert not data.truth["response"].equals(other.truth["response"])


_DTYPE_CHECK = {
    "id": pd.api.types.is_string_dtype,
    "str": pd.api.types.is_string_dtype,
    "tristate": pd.api.types.is_string_dtype,
    "int": lambda s: s.dtype == np.int64,
    "float": lambda s: s.dtype == np.float64,
    "bool": lambda s: s.dtype == bool,
    "timestamp": lambda s: s.dtype == "datetime64[ns]",
}


def test_every_schema_column_with_its_dtype(data):
    assert set(data.tables) == set(TABLES)
    for name, table in TABLES.items():
        df = data.tables[name]
        assert list(df.columns) == table.column_names, name
        for col in table.columns:
            series = df[col.name]
            assert _DTYPE_CHECK[col.kind](series), f"{name}.{col.name}: {series.dtype}"
            if not col.nullable:
                assert series.notna().all(), f"{name}.{col.name} has missing values"
            if col.kind == "tristate":
                assert set(series.unique()) <= {"yes", "no", "unknown"}
            if col.allowed:
                assert set(series.dropna().unique()) <= set(col.allowed)
            if col.min_value is not None:
                assert (series.dropna() >= col.min_value).all(), f"{name}.{col.name}"
    for name, table in TABLES.items():
        if table.primary_key and len(data.tables[name]):
            assert not data.tables[name].duplicated(list(table.primary_key)).any(), name
    assert data.tables["interactions"]["basket_id"].notna().all()
    assert data.tables["interactions"]["timestamp"].is_monotonic_increasing


def _forbidden_by_customer(truth_customers: pd.DataFrame) -> pd.DataFrame:
    """customer x attribute: True where the household's TRUE exclusions forbid the attribute."""
    names = truth_customers["true_exclusions"].fillna("").str.split(",")
    out = pd.DataFrame(False, index=truth_customers["customer_id"], columns=list(DIET_ATTRIBUTES))
    for exclusion, attrs in EXCLUSION_ATTRIBUTES.items():
        has = names.map(lambda parts, e=exclusion: e in parts).to_numpy()
        out.loc[has, list(attrs)] = True
    return out


def test_no_purchase_violates_true_household_exclusions(data):
    inter = data.tables["interactions"]
    forbidden = _forbidden_by_customer(data.truth["customers"]).loc[inter["customer_id"]].to_numpy()
    contains = (
        data.truth["products"].set_index("product_id").loc[inter["product_id"], list(DIET_ATTRIBUTES)]
        == "yes"
    )
    violations = forbidden & contains.to_numpy()
    assert violations.sum() == 0
    # the check has teeth: restricted households shop, and what they avoid is bought by others
    assert forbidden.any(axis=1).sum() > 1000
    assert (contains["contains_gluten"].to_numpy() & ~forbidden[:, 0]).sum() > 100


def test_household_members_exclusions_are_respected(data):
    members = data.tables["household_members"]
    assert len(members) > 0 and data.truth["customers"]["member_exclusions"].ne("").sum() >= len(members)
    inter = data.tables["interactions"].merge(members[["customer_id", "diet_exclusions"]], on="customer_id")
    truth_products = data.truth["products"].set_index("product_id")
    for exclusion, attrs in EXCLUSION_ATTRIBUTES.items():
        bought = inter.loc[inter["diet_exclusions"] == exclusion, "product_id"]
        assert not (truth_products.loc[bought, list(attrs)] == "yes").any().any(), exclusion


def test_coeliacs_never_buy_gluten_even_undeclared(data):
    truth_customers = data.truth["customers"]
    coeliac = truth_customers.loc[truth_customers["persona"] == "coeliac", "customer_id"]
    bought = data.tables["interactions"].loc[lambda d: d["customer_id"].isin(coeliac), "product_id"]
    assert len(bought) > 0
    assert (data.truth["products"].set_index("product_id").loc[bought, "contains_gluten"] == "no").all()


def test_declared_exclusions_are_true_and_some_are_hidden(data):
    customers = data.tables["customers"].set_index("customer_id")
    truth = data.truth["customers"].set_index("customer_id")
    declared = customers["diet_exclusions"].dropna()
    assert (
        truth.loc[declared.index, "true_exclusions"].str.split(",").map(set) >= declared.map(lambda s: {s})
    ).all()
    has_diet = truth["true_exclusions"] != ""
    assert (~truth.loc[has_diet, "declared"]).sum() > 0  # undeclared diets exist
    assert truth.loc[~has_diet, "declared"].all()


def test_published_attributes_never_contradict_truth(data):
    published = data.tables["products"].set_index("product_id")[list(DIET_ATTRIBUTES)]
    truth = data.truth["products"].set_index("product_id").loc[published.index, list(DIET_ATTRIBUTES)]
    known = published != "unknown"
    assert (published[known] == truth[known]).sum().sum() == known.sum().sum()
    assert set(np.unique(truth.to_numpy())) == {"yes", "no"}
    assert 0.05 < (~known).to_numpy().mean() < 0.15  # default 10% hidden


def test_churners_visit_less_at_the_end(data):
    inter = data.tables["interactions"]
    start = inter["timestamp"].min().normalize()
    week = ((inter["timestamp"] - start).dt.days // 7).to_numpy()
    visits = pd.DataFrame(
        {"customer_id": inter["customer_id"], "basket_id": inter["basket_id"], "week": week}
    )
    visits = visits.drop_duplicates("basket_id")
    truth = data.truth["customers"].set_index("customer_id")
    churners = truth.index[truth["drift"] == "churn"]
    first = visits[visits["week"] < 26 // 3].groupby("customer_id").size().reindex(churners, fill_value=0)
    last = (
        visits[visits["week"] >= 26 - 26 // 3].groupby("customer_id").size().reindex(churners, fill_value=0)
    )
    assert len(churners) > 20
    assert last.mean() < 0.6 * first.mean()


def test_true_response_is_monotone_and_flat_for_loyal(data):
    resp = data.truth["response"]
    p = true_response_probability(resp, DISCOUNT_LEVELS)
    assert p.shape == (len(resp), len(DISCOUNT_LEVELS))
    assert (np.diff(p, axis=1) >= -1e-12).all()
    assert ((p >= 0) & (p <= 1)).all()
    persona = resp["customer_id"].map(data.truth["customers"].set_index("customer_id")["persona"]).to_numpy()
    gain = p[:, -1] - p[:, 0]
    assert gain[persona == "loyal"].mean() < 0.01
    assert gain[persona == "deal_hunter"].mean() > 5 * gain[persona == "plain"].mean() / 2
    assert gain[persona == "deal_hunter"].mean() > 0.1


def test_logging_policy_is_a_distribution_and_matches_logged_propensities(data):
    visit_rate = data.truth["customers"]["visit_rate"].to_numpy()
    policy = logging_policy(visit_rate)
    assert policy.shape == (len(visit_rate), len(DISCOUNT_LEVELS))
    np.testing.assert_allclose(policy.sum(axis=1), 1.0)
    assert policy.min() > 0.02
    assert np.ptp(policy, axis=0).max() > 0.1  # depends on the customer: naive estimates are biased
    offers = data.tables["offers"]
    rate = (
        offers["customer_id"].map(data.truth["customers"].set_index("customer_id")["visit_rate"]).to_numpy()
    )
    level = np.searchsorted(DISCOUNT_LEVELS, offers["discount_level"].to_numpy())
    np.testing.assert_allclose(logging_policy(rate)[np.arange(len(offers)), level], offers["propensity"])


def test_logged_offers_follow_the_true_curve(data):
    offers = data.tables["offers"]
    consent = data.tables["customers"].set_index("customer_id")["consent_marketing"]
    assert consent.loc[offers["customer_id"]].all()
    assert ((offers["expires_at"] - offers["sent_at"]) == pd.Timedelta(days=7)).all()
    red = offers.dropna(subset=["redeemed_at"])
    assert ((red["redeemed_at"] >= red["sent_at"]) & (red["redeemed_at"] < red["expires_at"])).all()
    # the truth table holds the response at the end of the period; a drifting customer's baseline
    # moves over time, so compare on customers whose response is the same in every week
    drift = offers["customer_id"].map(data.truth["customers"].set_index("customer_id")["drift"])
    offers = offers[(drift == "stable").to_numpy()]
    resp = data.truth["response"].set_index(["customer_id", "product_group"])
    rows = resp.loc[list(zip(offers["customer_id"], offers["product_group"], strict=True))].reset_index()
    level = np.searchsorted(DISCOUNT_LEVELS, offers["discount_level"].to_numpy())
    p = true_response_probability(rows, DISCOUNT_LEVELS)[np.arange(len(offers)), level]
    observed = offers["redeemed_at"].notna().mean()
    assert abs(observed - p.mean()) < 4 * np.sqrt(p.mean() * (1 - p.mean()) / len(offers))


def test_offers_go_on_consented_channels_and_their_uplift_follows_channel_and_hour(data):
    """One channel truth (lab.channels): the truth table is the world's, every logged offer went out on
    a channel the customer consented to at an active hour, and sends the truth favours redeem more."""
    from lab.channels import HOURS, channel_world, truth_table, uplift_factor
    from recsys.offers.channels import CHANNELS, consent_matrix

    customers = data.tables["customers"]
    world = channel_world(
        len(customers), [data.seed, 1], customers["consent_marketing"].to_numpy(), customers["customer_id"]
    )
    pd.testing.assert_frame_equal(truth_table(world), data.truth["channels"])
    offers = data.tables["offers"]
    rows = customers.reset_index().set_index("customer_id").loc[offers["customer_id"], "index"].to_numpy()
    channel = pd.Index(CHANNELS).get_indexer(offers["channel"])
    hour = offers["sent_at"].dt.hour.to_numpy()
    assert (channel >= 0).all() and np.isin(hour, HOURS).all()
    assert consent_matrix(customers)[rows, channel].all()  # zero offers without consent
    factor = uplift_factor(world, rows, channel, hour)
    assert abs(factor.mean() - 1.0) < 0.1  # the discount truth is that of a logged send
    paid = offers["discount_level"].to_numpy() > 0
    redeemed = offers["redeemed_at"].notna().to_numpy()
    good, bad = paid & (factor > 1.3), paid & (factor < 0.7)
    assert redeemed[good].mean() > redeemed[bad].mean() + 0.05


def test_deal_proneness_shows_in_history(data):
    inter = data.tables["interactions"]
    on_deal = inter["value"].where(inter["discount"] > 0, 0.0).groupby(inter["customer_id"]).sum()
    share = on_deal / inter.groupby("customer_id")["value"].sum()
    trait = data.truth["customers"].set_index("customer_id")["deal_proneness"].loc[share.index]
    assert np.corrcoef(share, trait)[0, 1] > 0.8


def test_repeat_purchases_dominate_after_the_first_weeks(data):
    inter = data.tables["interactions"]
    first = inter.groupby(["customer_id", "product_id"])["timestamp"].transform("min")
    late = inter["timestamp"] >= inter["timestamp"].min() + pd.Timedelta(weeks=4)
    repeat = (inter["timestamp"] > first)[late]
    assert repeat.mean() > 0.6
    assert repeat.mean() < 0.98  # there is still discovery


def test_catalog_has_safe_alternatives_and_plausible_co2e(data):
    products = data.tables["products"]
    assert 25 <= products["category"].nunique() <= 40
    assert {"GLUTEN FREE BREAD", "VEGAN CHEESE ALTERNATIVE", "TOFU"} <= set(products["type"])
    co2e = products.groupby("category")["co2e_per_kg"].median()
    assert co2e["BEEF"] > 80 and 15 < co2e["CHEESE"] < 35 and co2e["VEGETABLES - ALL OTHERS"] < 1
    assert products.loc[products["is_food"] == "no", "co2e_per_kg"].isna().all()


def test_write_synthetic_round_trip(tmp_path):
    from recsys.data.io import read_manifest, read_tables

    small = generate(60, 120, weeks=6, seed=1)
    out = tmp_path / "synthetic"
    write_synthetic(small, out)
    manifest = read_manifest(out)
    assert manifest["source"] == "synthetic" and manifest["seed"] == 1
    tables = read_tables(out)
    assert {name: len(df) for name, df in tables.items()} == {
        name: len(df) for name, df in small.tables.items() if name in tables
    }
    truth = read_truth(out)
    assert set(truth) == set(small.truth)
    pd.testing.assert_frame_equal(truth["response"], small.truth["response"], check_dtype=False)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left behind


def test_written_in_blocks_is_what_generate_makes(tmp_path):
    from recsys.data.io import read_tables

    out = tmp_path / "blocks"
    write_synthetic_parts(out, n_customers=70, n_products=120, weeks=6, seed=4, block=25)
    assert len(list((out / "interactions").glob("part-*.parquet"))) == 4  # 3 customer blocks + redemptions
    tables, truth = read_tables(out), read_truth(out)
    made = generate(70, 120, weeks=6, seed=4, block=25)
    order = np.argsort(tables["interactions"]["timestamp"].to_numpy(), kind="stable")
    pd.testing.assert_frame_equal(
        tables["interactions"].iloc[order].reset_index(drop=True),
        made.tables["interactions"],
        check_dtype=False,
    )
    pd.testing.assert_frame_equal(truth["response"], made.truth["response"], check_dtype=False)
    one_block = generate(70, 120, weeks=6, seed=4)
    pd.testing.assert_frame_equal(made.tables["customers"], one_block.tables["customers"])
    assert made.tables["interactions"]["basket_id"].is_unique is False  # lines share baskets
    assert made.tables["interactions"].groupby("basket_id")["customer_id"].nunique().max() == 1


def test_worker_processes_write_the_same_files(tmp_path):
    from recsys.data.io import read_manifest, read_tables

    def write(workers: int):
        out = tmp_path / f"w{workers}"
        write_synthetic_parts(
            out, n_customers=600, n_products=150, weeks=6, seed=2, block=200, workers=workers
        )
        return out

    one, two = write(1), write(2)
    assert read_manifest(one) == read_manifest(two)
    files = sorted(p.relative_to(one) for p in one.rglob("*.parquet"))
    assert files == sorted(p.relative_to(two) for p in two.rglob("*.parquet"))
    assert len([f for f in files if f.parts[0] == "interactions"]) == 4  # 3 blocks + redemptions
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
    tables = read_tables(two)
    for name, df in read_tables(one).items():
        pd.testing.assert_frame_equal(df, tables[name])
    per_basket = tables["interactions"].groupby("basket_id")["customer_id"].nunique()
    assert per_basket.max() == 1  # basket ids do not collide across blocks drawn apart


@pytest.mark.parametrize("workers", [0, -2])
def test_workers_must_be_positive(tmp_path, workers):
    with pytest.raises(ValueError, match="workers must be at least 1"):
        write_synthetic_parts(tmp_path / "x", 10, 50, 4, workers=workers)
    assert not (tmp_path / "x").exists()
