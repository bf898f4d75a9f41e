"""Experiment configs: unknown keys are errors naming the key and the file; shipped configs are valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import ConfigError, load_config, parse_config
from training.jobs import build_model
from training.tune import check_space

CONFIG_DIR = Path(__file__).resolve().parents[2] / "experiments" / "configs"
MINIMAL = {"name": "x", "model": {"name": "popularity"}}


def test_unknown_top_level_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmodel: {name: popularity}\nmetrix: [ndcg]\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "metrix" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"data": {"split": {"test_weeks": 4, "cutof": "2017-12-01"}}}, "data.split.cutof"),
        ({"model": {"name": "als", "parms": {}}}, "model.parms"),
        ({"tuning": {"space": {"factors": {"type": "int", "low": 1, "high": 9, "lo": 2}}}}, "lo"),
        ({"promotion": {"metric": "ndcg_at_10__all", "treshold": 1}}, "promotion.treshold"),
    ],
)
def test_unknown_nested_key_is_named(section, key):
    with pytest.raises(ConfigError, match="unknown key") as err:
        parse_config({**MINIMAL, **section}, "cfg.yaml")
    assert key in str(err.value) and "cfg.yaml" in str(err.value)


def test_split_needs_exactly_one_of_cutoff_or_weeks():
    with pytest.raises(ConfigError, match="exactly one"):
        parse_config({**MINIMAL, "data": {"split": {"cutoff": "2017-12-01", "test_weeks": 4}}})


def test_unknown_model_param_is_named():
    config = parse_config({"name": "x", "model": {"name": "als", "params": {"factor": 8}}})
    with pytest.raises(ConfigError, match="factor"):
        build_model(config.model)


def test_the_basket_reranker_is_off_unless_a_config_asks():
    assert parse_config(MINIMAL).model.basket_rerank is False
    config = parse_config({**MINIMAL, "model": {"name": "buy_again", "basket_rerank": True}})
    assert config.model.basket_rerank is True


OFFERS = CONFIG_DIR / "offers.yaml"  # the discount planner's config (training/offers_config.py)


@pytest.mark.parametrize(
    "path", sorted(p for p in CONFIG_DIR.glob("*.yaml") if p != OFFERS), ids=lambda p: p.name
)
def test_shipped_configs_match_registered_models(path):
    config = load_config(path)
    assert build_model(config.model).get_params()
    check_space(config)


def test_the_offers_config_is_valid_and_not_an_experiment():
    from training.offers_config import load_offers_config

    assert load_offers_config(OFFERS).budget > 0
    with pytest.raises(ConfigError, match="discount planner config"):
        load_config(OFFERS)
