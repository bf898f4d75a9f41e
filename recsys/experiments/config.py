"""An experiment as configuration: variants, traffic, population, metrics, window.

YAML files validated by pydantic with unknown keys rejected, so a typo in a share or a metric name
fails loudly at load time instead of silently running a different experiment.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recsys.diet.profiles import parse_profile

Surface = Literal["products", "recipes", "discounts"]
MetricName = Literal["conversion", "spend", "add_to_cart", "clicks", "redemption", "discount_cost", "margin"]


#: Longest experiment: the sequential test plans one look per day.
MAX_DAYS = 180


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServingOptions(_Strict):
    """Request options a variant imposes (None: keep what the caller asked for)."""

    co2_weight: float | None = Field(None, ge=0.0, le=10.0)
    mode: Literal["mixed", "buy_again", "discover"] | None = None


class Variant(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    share: float = Field(gt=0.0, le=1.0, description="fraction of the eligible traffic")
    model: str | None = Field(
        None,
        description="registry URI (models:/name@alias or models:/name/3) or a model dir; "
        "None: the champion the service already serves",
    )
    serving: ServingOptions = ServingOptions()
    discount: Literal["plan", "none"] = Field(
        "plan", description="discounts surface: 'plan' answers from the plan, 'none' is the holdout"
    )
    discount_plan: str | None = Field(
        None,
        description="discounts: a plan directory or registry URI (models:/grocery-discount-planner@"
        "challenger) answering this variant; None: the plan the service serves",
    )

    @model_validator(mode="after")
    def _plan_or_holdout(self) -> Variant:
        if self.discount == "none" and self.discount_plan is not None:
            raise ValueError(f"variant {self.name!r}: a holdout (discount: none) has no discount_plan")
        return self


class Population(_Strict):
    """Who may enter. Every variant is personalised, so customers without personalisation consent
    never enter (they get the default non-personalised answer, outside any experiment)."""

    diets: list[str] | None = Field(
        None,
        description="diet segments, e.g. [vegan, gluten-free]: only customers whose hard exclusions "
        "cover one of them",
    )

    @model_validator(mode="after")
    def _known_diets(self) -> Population:
        for diet in self.diets or ():
            parse_profile([diet])  # ValueError names an unknown diet
        return self


class Guardrails(_Strict):
    diet_violations: int = Field(0, ge=0, le=0, description="served items breaking a diet: always 0")
    latency_p95_ms: float | None = Field(None, gt=0.0)
    metrics: list[MetricName] = Field(
        default_factory=list, description="metrics that must not drop significantly"
    )


class Experiment(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    salt: str | None = Field(None, description="hash salt; default the name. A new salt re-shuffles")
    surface: Surface
    variants: list[Variant] = Field(min_length=2)
    control: str | None = Field(None, description="default: the first variant")
    population: Population = Population()
    primary_metric: MetricName
    secondary_metrics: list[MetricName] = Field(default_factory=list)
    guardrails: Guardrails = Guardrails()
    start: datetime
    stop: datetime
    attribution_window_days: float = Field(7.0, gt=0.0, le=90.0)
    pre_period_days: int = Field(28, ge=0, le=365, description="CUPED covariate: spend before start")
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    gross_margin: float = Field(0.3, gt=0.0, lt=1.0, description="margin rate on spend before discounts")

    @model_validator(mode="after")
    def _check(self) -> Experiment:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        total = sum(v.share for v in self.variants)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"variant shares must sum to 1, got {total:g}")
        if self.control is not None and self.control not in names:
            raise ValueError(f"control {self.control!r} is not a variant ({', '.join(names)})")
        if self.stop <= self.start:
            raise ValueError(f"stop {self.stop} must be after start {self.start}")
        if (self.stop - self.start).days > MAX_DAYS:
            raise ValueError(f"an experiment runs at most {MAX_DAYS} days (one look a day)")
        if self.surface == "discounts" and "none" not in {v.discount for v in self.variants}:
            raise ValueError("a discounts experiment needs a no-discount holdout variant (discount: none)")
        if (self.start.tzinfo is None) != (self.stop.tzinfo is None):
            raise ValueError("start and stop must both carry a timezone or both not")
        return self

    @property
    def hash_salt(self) -> str:
        return self.salt or self.name

    @property
    def control_variant(self) -> str:
        return self.control or self.variants[0].name

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)

    def days(self) -> int:
        """Planned daily looks (the sequential test spends its alpha over them)."""
        return max(1, int(round((self.stop - self.start).total_seconds() / 86400)))


class ExperimentConfigError(ValueError):
    """A bad experiment file; the message names the file and each bad field."""


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ExperimentConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ExperimentConfigError(f"{path}: expected a mapping at the top level")
    try:
        return Experiment.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in e['loc']) or '<root>'}': {e['msg']}" for e in exc.errors()
        )
        raise ExperimentConfigError(f"{path}: {problems}") from exc


def load_experiments(directory: str | Path) -> dict[str, Experiment]:
    """Every `*.yaml` in a directory, by experiment name (names must be unique)."""
    found: dict[str, Experiment] = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        exp = load_experiment(path)
        if exp.name in found:
            raise ExperimentConfigError(f"{path}: experiment name {exp.name!r} is used twice")
        found[exp.name] = exp
    return found
