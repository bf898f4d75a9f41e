from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from recsys.experiments.assignment import assign, assign_many, buckets, variant_index
from recsys.experiments.config import ExperimentConfigError, load_experiment, load_experiments

ROOT = Path(__file__).resolve().parents[2]
BASE = """
name: t
surface: products
variants:
  - {name: a, share: 0.5}
  - {name: b, share: 0.5}
primary_metric: spend
start: 2026-12-01T00:00:00Z
stop: 2026-12-15T00:00:00Z
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "e.yaml"
    path.write_text(text)
    return path


def test_shipped_configs_load() -> None:
    found = load_experiments(ROOT / "experiments" / "ab")
    assert {"ranker-vs-challenger", "discount-holdout"} <= set(found)
    assert found["discount-holdout"].control_variant == "holdout"
    assert found["ranker-vs-challenger"].days() == 14


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (BASE + "colour: red\n", "colour"),  # unknown key
        (BASE.replace("share: 0.5}\n  - {name: b", "share: 0.6}\n  - {name: b"), "sum to 1"),
        (BASE.replace("primary_metric: spend", "primary_metric: sales"), "primary_metric"),
        (BASE.replace("name: b", "name: a"), "unique"),
        (BASE.replace("surface: products", "surface: discounts"), "holdout"),
        (BASE.replace("2026-12-15", "2026-11-15"), "after start"),
        (BASE.replace("{name: b, share: 0.5}", "{name: b, share: 0.5, serving: {co2: 1}}"), "co2"),
        (
            BASE.replace("{name: b, share: 0.5}", "{name: b, share: 0.5, discount: none, discount_plan: p}"),
            "holdout",
        ),
    ],
)
def test_bad_configs_name_the_problem(tmp_path: Path, change: str, needle: str) -> None:
    with pytest.raises(ExperimentConfigError, match=needle) as err:
        load_experiment(_write(tmp_path, change))
    assert "e.yaml" in str(err.value)


def test_assignment_is_sticky_and_uniform_on_a_million_ids() -> None:
    ids = [str(i) for i in range(1_000_000)]
    u = buckets("salt-1", ids)
    counts = np.bincount(np.minimum((u * 100).astype(int), 99), minlength=100)
    assert stats.chisquare(counts).pvalue > 0.001
    assert np.array_equal(u[:1000], buckets("salt-1", ids[:1000]))  # sticky
    # independent across salts: the 10x10 table of buckets under two salts is uniform
    v = buckets("salt-2", ids)
    table = np.bincount((u * 10).astype(int) * 10 + (v * 10).astype(int), minlength=100)
    assert stats.chisquare(table).pvalue > 0.001
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.005


def test_shares_are_honoured(tmp_path: Path) -> None:
    exp = load_experiment(
        _write(
            tmp_path,
            BASE.replace("share: 0.5}\n  - {name: b, share: 0.5", "share: 0.2}\n  - {name: b, share: 0.8"),
        )
    )
    names = assign_many(exp, [f"c{i}" for i in range(50_000)])
    frac = (names == "a").mean()
    assert abs(frac - 0.2) < 0.01
    assert assign(exp, "c7", consent=True) == names[7]
    assert variant_index([0.3, 0.3, 0.4], np.array([0.0, 0.2999, 0.3, 0.9999999])).tolist() == [0, 0, 1, 2]


def test_without_consent_never_assigned(tmp_path: Path) -> None:
    exp = load_experiment(_write(tmp_path, BASE))
    assert all(assign(exp, f"c{i}", consent=False) is None for i in range(200))
    assert all(assign(exp, f"c{i}", consent=True) in {"a", "b"} for i in range(200))


def test_diet_segment(tmp_path: Path) -> None:
    from recsys.diet.profiles import parse_profile

    exp = load_experiment(_write(tmp_path, BASE + "population: {diets: [gluten-free]}\n"))
    gluten_free = parse_profile(["gluten-free"]).exclusions
    assert assign(exp, "c1", consent=True, exclusions=[]) is None
    assert assign(exp, "c1", consent=True, exclusions=gluten_free | {"contains_meat"}) in {"a", "b"}
    with pytest.raises(ExperimentConfigError, match="population"):
        load_experiment(_write(tmp_path, BASE + "population: {diets: [carnivore]}\n"))
