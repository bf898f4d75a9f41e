"""Experiment configs: one YAML file per experiment, validated before any work starts.

Every section forbids unknown keys, so a typo (`factor:` for `factors:`) fails loudly with the key
and the file instead of silently training with a default. The config is also what makes a run
reproducible: it is logged as an artifact next to the flattened params.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_CONFIG = Path("experiments/configs/default.yaml")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyntheticSpec(_Strict):
    """Parameters of the synthetic generator (source: synthetic), for tests and demos."""

    customers: int = Field(200, ge=10)
    products: int = Field(300, ge=10)
    weeks: int = Field(8, ge=2)
    seed: int = 0


class SplitConfig(_Strict):
    """Temporal split: either a fixed cutoff date or the last `test_weeks` weeks are held out."""

    cutoff: str | None = None
    test_weeks: int | None = Field(None, ge=1)
    until: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> SplitConfig:
        if (self.cutoff is None) == (self.test_weeks is None):
            raise ValueError("split needs exactly one of 'cutoff' or 'test_weeks'")
        return self


class DataConfig(_Strict):
    """Where the data comes from. `dir` is the prepared data directory (prepared on first use).
    `engine: spark` prepares Complete Journey and fits ALS with Spark (training/spark, docs/spark.md)."""

    source: str = "completejourney"  # completejourney | synthetic | DIR of canonical tables
    dir: str = "data/cj"
    engine: Literal["local", "spark"] = "local"
    synthetic: SyntheticSpec = SyntheticSpec()
    split: SplitConfig = SplitConfig(test_weeks=4)


class ModelConfig(_Strict):
    name: str
    params: dict[str, Any] = {}
    #: fit the learned basket re-ranker with the model (recsys.ranking.basket_rerank): better basket
    #: completion for a second fit of the model on the older data
    basket_rerank: bool = False


class ConstraintsConfig(_Strict):
    """Diet probes for the promotion gate: every probe user x profile must get compliant lists."""

    probe_profiles: list[str] = ["vegan", "vegetarian", "gluten_free", "nuts"]
    probe_users: int = Field(50, ge=1)
    k: int = Field(10, ge=1)
    seed: int = 0


class IntParam(_Strict):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1


class FloatParam(_Strict):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False


class CategoricalParam(_Strict):
    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


SearchParam = Annotated[IntParam | FloatParam | CategoricalParam, Field(discriminator="type")]


class TuningConfig(_Strict):
    """Optuna search. The objective is measured on a validation split carved from the training
    period (the last `validation_weeks` before the test cutoff), so the held-out test stays unseen."""

    metric: str = "ndcg_at_10__all"
    direction: Literal["maximize", "minimize"] = "maximize"
    space: dict[str, SearchParam] = {}
    validation_weeks: int = Field(4, ge=1)
    prune_user_fraction: float = Field(0.25, gt=0.0, le=1.0)
    pruner_startup_trials: int = Field(3, ge=0)
    sampler_startup_trials: int = Field(5, ge=1)  # random trials before TPE models the space
    seed: int = 0


class PromotionConfig(_Strict):
    metric: str = "ndcg_at_10__all"
    higher_is_better: bool = True
    min_improvement: float = 0.0


class ExperimentConfig(_Strict):
    name: str
    experiment: str = "grocery-recsys"
    data: DataConfig = DataConfig()
    model: ModelConfig
    constraints: ConstraintsConfig = ConstraintsConfig()
    metrics: list[str] = [
        "ndcg",
        "precision",
        "recall",
        "map",
        "mrr",
        "hit_rate",
        "coverage",
        "novelty",
        "diversity",
        "popularity_bias",
    ]
    k: list[int] = Field([5, 10, 20], min_length=1)
    tracks: list[Literal["all", "new"]] = ["all", "new"]
    tuning: TuningConfig | None = None
    promotion: PromotionConfig = PromotionConfig()

    @model_validator(mode="after")
    def _k_sorted(self) -> ExperimentConfig:
        if any(k < 1 for k in self.k):
            raise ValueError("every k must be >= 1")
        if self.data.engine == "spark" and self.model.name != "als":
            raise ValueError(f"engine 'spark' trains the als model (MLlib ALS), not {self.model.name!r}")
        return self

    def with_params(self, params: dict[str, Any]) -> ExperimentConfig:
        """A copy whose model params are updated (tuning trials, flag-form training)."""
        model = self.model.model_copy(update={"params": {**self.model.params, **params}})
        return self.model_copy(update={"model": model})


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{where}'")
        else:
            lines.append(f"{source}: {where or '(top level)'}: {err['msg']}")
    return "\n".join(lines)


def parse_config(raw: dict[str, Any], source: str = "<config>") -> ExperimentConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    if "budget" in raw and "model" not in raw:
        raise ConfigError(
            f"{source}: a discount planner config; run it with 'recsys offers --config {source}'"
        )
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML config file; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return raw or {}


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a YAML experiment config; errors name the file and the key."""
    return parse_config(read_yaml(path), str(path))
