"""Training jobs: prepare -> split -> fit -> evaluate -> log everything to one MLflow run.

The whole job runs inside `mlflow.start_run()`, so any exception marks the run FAILED and nothing
downstream (registration, aliases) happens. What is logged is enough to reproduce the run: the
validated config, flattened model params from `get_params()`, dataset digest + schema, split cutoff,
git commit, metrics for every track and k, plots, and the native model next to its pyfunc wrapper.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.data.progress import Progress
from recsys.defaults import PROJECT_DIR
from recsys.models.base import Recommender
from recsys.models.model_dir import ITEMS_FILE, basket_completer, copy_model_dir, write_checksums
from training.config import ConfigError, DataConfig, ExperimentConfig, ModelConfig, SplitConfig
from training.data import PreparedData, prepare, schema_summary
from training.evaluation import EvaluationResult, full_evaluation
from training.plots import all_plots
from training.tracking import (
    TAG_CONFIG,
    TAG_CUTOFF,
    TAG_DATA_DIR,
    TAG_DIGEST,
    TAG_GIT,
    TAG_KIND,
    TAG_MODEL,
    TAG_PROMOTION_METRIC,
    TAG_UNTIL,
    ensure_experiment,
    flatten,
    git_commit,
    setup_tracking,
)

PYFUNC_NAME = "model"  # name of the pyfunc: runs:/<run_id>/model
TAG_PYFUNC_ID = "pyfunc_model_id"  # its LoggedModel id: models:/<model_id>
NATIVE_DIR = "native_model"


def model_class(name: str) -> type[Recommender]:
    import recsys.models  # noqa: F401  (registers every model)

    cls = Recommender.registry.get(name)
    if cls is None:
        known = ", ".join(sorted(Recommender.registry)) or "none"
        raise ConfigError(f"unknown model {name!r}; registered models: {known}")
    return cls


def build_model(model: ModelConfig) -> Recommender:
    """Instantiate from the registry; unknown params are a config error naming them."""
    cls = model_class(model.name)
    unknown = sorted(set(model.params) - set(cls.param_names()))
    if unknown:
        raise ConfigError(
            f"model {model.name!r} has no parameter(s) {unknown}; valid: {', '.join(cls.param_names())}"
        )
    return cls(**model.params)


def _mlflow_type(dtype: Any):
    from mlflow.types import DataType

    if pd.api.types.is_bool_dtype(dtype):
        return DataType.boolean
    if pd.api.types.is_integer_dtype(dtype):
        return DataType.long
    if pd.api.types.is_float_dtype(dtype):
        return DataType.double
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return DataType.datetime
    return DataType.string


def log_dataset(data: PreparedData) -> None:
    """Digest, schema and sizes of the data (no rows): the run's record of what it trained on."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    inter = data.dataset.interactions
    schema = Schema([ColSpec(_mlflow_type(t), str(c)) for c, t in inter.dtypes.items()])
    source = CodeDatasetSource({"data_dir": str(data.data_dir), "source": str(data.manifest.get("source"))})
    dataset = MetaDataset(source, name=f"interactions-{data.digest}", digest=data.digest, schema=schema)
    mlflow.log_input(dataset, context="training")
    mlflow.log_dict(
        {"digest": data.digest, "manifest": data.manifest, "schema": schema_summary(data.dataset)},
        "data/dataset.json",
    )
    mlflow.log_params(
        {
            "data.dir": str(data.data_dir),
            "data.digest": data.digest,
            "data.cutoff": data.cutoff,
            "data.train_interactions": len(data.split.train.interactions),
            "data.test_interactions": len(data.split.test.interactions),
            "data.users": data.dataset.n_users,
            "data.items": data.dataset.n_items,
            "data.erased_customers": data.erased_customers,
        }
    )


def log_model_artifacts(
    model: Recommender,
    items: pd.DataFrame,
    out: Path | None,
    interactions: pd.DataFrame | None = None,
    rerank_on: Dataset | None = None,
) -> None:
    """Native numpy/JSON model dir + the pyfunc that wraps it (the pyfunc is what gets registered);
    `interactions` (the training lines) add the basket co-occurrence to the model dir, `rerank_on`
    (the training Dataset) the learned basket re-ranker."""
    with tempfile.TemporaryDirectory() as tmp:
        native = model.save(Path(tmp) / NATIVE_DIR)
        if interactions is not None and "basket_id" in interactions:
            start = time.perf_counter()
            completer = basket_completer(model, interactions, rerank_on)
            completer.save(native)
            write_checksums(native)
            mlflow.log_metric("basket_fit_seconds", time.perf_counter() - start)
        items_path = Path(tmp) / ITEMS_FILE
        items.to_parquet(items_path, index=False)
        mlflow.log_artifacts(str(native), NATIVE_DIR)
        info = mlflow.pyfunc.log_model(
            name=PYFUNC_NAME,
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={"model_dir": str(native), "items": str(items_path)},
            # self-contained: the library and the wrapper travel with the model (a fresh venv that
            # installs only the logged requirements can load it; tests/training/test_pyfunc_portable.py)
            code_paths=[str(PROJECT_DIR / "recsys"), str(Path(__file__).parent)],
            pip_requirements=_requirements(),
            input_example=PYFUNC_EXAMPLE,
        )
        mlflow.set_tag(TAG_PYFUNC_ID, info.model_id)
        if out is not None:
            copy_model_dir(native, items_path, Path(out))


#: what loading and predicting import (recsys' runtime dependencies); training-only packages stay out
PYFUNC_PACKAGES = (
    "mlflow",
    "numpy",
    "pandas",
    "scipy",
    "pyarrow",
    "pydantic",
    "scikit-learn",
    "implicit",
    "rectools-lightfm",
    "threadpoolctl",
    "PyYAML",
)
#: the documented request: a pseudonymous id, list length, diet (fail-closed), mode, CO2e weight
PYFUNC_EXAMPLE = [{"user_id": "1013", "k": 5, "diet": "gluten-free", "mode": "mixed", "co2_weight": 0.0}]


def _requirements() -> list[str]:
    """Pinned from the running environment: skips MLflow's slow inference subprocess."""
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in PYFUNC_PACKAGES]


def log_evaluation(result: EvaluationResult, fit_seconds: float, title: str) -> None:
    mlflow.log_metrics(result.metrics)
    for segment, figures in result.segments.items():
        mlflow.log_metrics({f"segment.{segment}.{key}": value for key, value in figures.items()})
    mlflow.log_metrics({"fit_seconds": fit_seconds, "eval_seconds": result.seconds})
    with tempfile.TemporaryDirectory() as tmp:
        for path in all_plots(result, Path(tmp), title):
            mlflow.log_artifact(str(path), "plots")
    mlflow.log_dict({"segments": result.segments}, "metrics/segments.json")


def check_metrics(config: ExperimentConfig, result: EvaluationResult) -> None:
    produced = {name for name, _ in result.curves}
    missing = sorted(set(config.metrics) - produced)
    if missing:
        raise ConfigError(
            f"config {config.name!r} asks for metric(s) {missing}; evaluate gives {sorted(produced)}"
        )


def log_config(config: ExperimentConfig) -> None:
    """The validated config (config.yaml, read back by the promotion gate) and its headline params."""
    mlflow.log_dict(config.model_dump(mode="json"), "config.yaml")
    mlflow.log_params(
        flatten(
            "",
            {
                "config": config.name,
                "model": {"name": config.model.name},
                "data.source": config.data.source,
                "k": config.k,
                "tracks": config.tracks,
                "promotion.metric": config.promotion.metric,
            },
        )
    )


def fit_and_log(
    config: ExperimentConfig, data: PreparedData, progress: Progress, out: str | Path | None = None
) -> tuple[Recommender, EvaluationResult]:
    """Inside an active run: split tags, dataset, model params, fit, full evaluation on the test split,
    plots and the model (native + pyfunc). A run that went through this can be registered."""
    mlflow.set_tags(
        {
            TAG_DIGEST: data.digest,
            TAG_CUTOFF: data.cutoff,
            TAG_UNTIL: str(config.data.split.until),
            TAG_DATA_DIR: str(data.data_dir),
            TAG_PROMOTION_METRIC: config.promotion.metric,
        }
    )
    log_dataset(data)
    model = build_model(config.model)
    mlflow.log_params(flatten("model", model.get_params()))
    start = time.perf_counter()
    with progress.step(f"fitting {config.model.name} on {len(data.split.train.interactions):,} events"):
        if config.data.engine == "spark":
            from training.spark.als import fit_with_spark

            fit_with_spark(model, data.split.train)
        else:
            model.fit(data.split.train)
    fit_seconds = time.perf_counter() - start
    with progress.step(f"evaluating on {len(data.split.test.interactions):,} test events"):
        result = full_evaluation(
            model, data.split.train, data.split.test, config.k, list(config.tracks), config.metrics
        )
    check_metrics(config, result)
    with progress.step("logging metrics, plots and the model to MLflow"):
        log_evaluation(result, fit_seconds, f"{config.name} ({config.model.name})")
        log_model_artifacts(
            model,
            data.dataset.items_table,
            Path(out) if out else None,
            data.split.train.basket_lines(),
            rerank_on=data.split.train if config.model.basket_rerank else None,
        )
    return model, result


def run_training(
    config: ExperimentConfig,
    *,
    out: str | Path | None = None,
    experiment: str | None = None,
    tags: dict[str, str] | None = None,
    data: PreparedData | None = None,
) -> str:
    """Train and evaluate `config` in a new MLflow run; returns the run id.

    `data` lets callers that train several configs on one dataset (compare, tuning) prepare it once.
    A crash anywhere leaves the run FAILED (the `with` block) and re-raises.
    """
    setup_tracking()
    experiment_id = ensure_experiment(experiment or config.experiment)
    base_tags = {
        TAG_CONFIG: config.name,
        TAG_MODEL: config.model.name,
        TAG_GIT: git_commit(),
        TAG_KIND: "train",
        TAG_PROMOTION_METRIC: config.promotion.metric,
        **(tags or {}),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=config.name, tags=base_tags) as run:
        log_config(config)
        progress = Progress(4, prefix=f"{config.name}: ")
        with progress.step(f"preparing data {config.data.dir or config.data.source}"):
            data = data or prepare(config.data)
        fit_and_log(config, data, progress, out)
        return run.info.run_id


def train_from_flags(
    data: str | Path,
    until: str | None,
    model: str,
    params: dict[str, Any] | None = None,
    out: str | Path | None = None,
    experiment: str = "grocery-recsys",
    basket_rerank: bool = False,
) -> str:
    """The flag form of `recsys train` (--data DIR --until DATE --model NAME --out DIR), tracked the
    same way as a config run: train before `until`, evaluate on the rest, save the native model to `out`."""
    split = SplitConfig(cutoff=until) if until else SplitConfig(test_weeks=4)
    data_str = str(data)
    named = data_str in ("completejourney", "synthetic")
    data_cfg = (
        DataConfig(source=data_str, split=split)
        if named
        else DataConfig(source=data_str, dir=data_str, split=split)
    )
    config = ExperimentConfig(
        name=f"{model}-flags",
        experiment=experiment,
        data=data_cfg,
        model=ModelConfig(name=model, params=dict(params or {}), basket_rerank=basket_rerank),
    )
    return run_training(config, out=out, tags={"entry_point": "flags"})
