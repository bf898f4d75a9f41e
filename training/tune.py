"""Hyperparameter search with Optuna, every trial a nested MLflow run under one parent per worker.

- The objective is measured on a validation period carved from the training data (the test weeks
  stay unseen); the default and best params are then refitted on the full training period and
  compared on the held-out test split, which is what the parent run reports as the improvement.
- Pruning: each trial first reports the metric on a random subsample of validation users (step 0);
  the median pruner stops trials that are already worse than the median there, before the full
  evaluation (step 1).
- The study lives in a database so several machines can run workers on one study: by default a
  SQLite file beside the MLflow store; with a PostgreSQL MLflow store, the same database in a
  separate `optuna` schema (both tools keep an `alembic_version` table, so they cannot share one
  schema). `--storage URL` or `OPTUNA_STORAGE` override.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import optuna

from recsys.data.progress import Progress
from training.config import CategoricalParam, ExperimentConfig, FloatParam, IntParam, TuningConfig
from training.data import PreparedData, prepare, subsample_users, validation_split
from training.jobs import build_model, fit_and_log, log_config, model_class
from training.registry import parse_metric
from training.tracking import (
    TAG_CONFIG,
    TAG_CUTOFF,
    TAG_DIGEST,
    TAG_GIT,
    TAG_KIND,
    TAG_MODEL,
    ensure_experiment,
    flatten,
    git_commit,
    setup_tracking,
    sqlite_path,
    tracking_uri,
)

OPTUNA_SCHEMA = "optuna"
DEFAULT_ROLE = "default"
VALIDATION_PREFIX = "val_"  # trial metrics: val_ndcg_at_10__all (training runs' test metric has no prefix)


# ---- storage ----------------------------------------------------------------------------------
def storage_url(explicit: str | None = None) -> str:
    """Optuna storage URL: explicit, OPTUNA_STORAGE, or derived from the MLflow tracking URI."""
    if explicit:
        return explicit
    if os.environ.get("OPTUNA_STORAGE"):
        return os.environ["OPTUNA_STORAGE"]
    uri = tracking_uri()
    db = sqlite_path(uri)
    if db is not None:
        return f"sqlite:///{db.with_name('optuna.db')}"
    if uri.startswith("postgresql"):
        return uri
    raise ValueError(f"cannot derive an Optuna storage from tracking URI {uri!r}; pass --storage URL")


def make_storage(url: str, attempts: int = 6) -> optuna.storages.RDBStorage:
    """RDB storage, retried: workers starting together race to create the schema and tables
    ("already exists" / "database is locked"); the loser simply tries again and finds them."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            return _make_storage(url)
        except (
            sqlalchemy.exc.OperationalError,
            sqlalchemy.exc.IntegrityError,
            sqlalchemy.exc.ProgrammingError,
        ):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 + random.random() * (attempt + 1))
    raise AssertionError("unreachable")


def _make_storage(url: str) -> optuna.storages.RDBStorage:
    """RDB storage; on PostgreSQL inside the `optuna` schema of that database."""
    if url.startswith("postgresql"):
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"CREATE SCHEMA IF NOT EXISTS {OPTUNA_SCHEMA}"))
        engine.dispose()
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs={"connect_args": {"options": f"-csearch_path={OPTUNA_SCHEMA}"}},
        )
    if url.startswith("sqlite"):
        # Several worker processes on one SQLite file: wait for the lock instead of failing.
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.RDBStorage(url)


# ---- search space -----------------------------------------------------------------------------
def suggest(trial: optuna.Trial, tuning: TuningConfig) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in tuning.space.items():
        if isinstance(spec, IntParam):
            params[name] = trial.suggest_int(name, spec.low, spec.high, step=spec.step, log=spec.log)
        elif isinstance(spec, FloatParam):
            params[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
        elif isinstance(spec, CategoricalParam):
            params[name] = trial.suggest_categorical(name, spec.choices)
    return params


def default_params(config: ExperimentConfig) -> dict[str, Any]:
    """The config's own values (or the model's defaults) for every searched parameter."""
    resolved = build_model(config.model).get_params()
    return {name: resolved[name] for name in config.tuning.space} if config.tuning else {}


def check_space(config: ExperimentConfig) -> TuningConfig:
    from training.config import ConfigError

    if config.tuning is None or not config.tuning.space:
        raise ConfigError(f"config {config.name!r} has no tuning.space to search")
    valid = set(model_class(config.model.name).param_names())
    unknown = sorted(set(config.tuning.space) - valid)
    if unknown:
        raise ConfigError(f"tuning.space names unknown parameter(s) {unknown} of model {config.model.name!r}")
    parse_metric(config.tuning.metric)
    return config.tuning


# ---- objective --------------------------------------------------------------------------------
def _score(model, train, test, metric: str) -> float:
    from recsys.metrics.evaluation import evaluate

    name, k, track = parse_metric(metric)
    return float(evaluate(model, train, test, k=k, track=track, beyond_accuracy=False)[name])


class Objective:
    """Fit on the validation split's train part, prune on a user subsample, score on all users."""

    def __init__(self, config: ExperimentConfig, data: PreparedData, experiment_id: str):
        self.config = config
        self.tuning = check_space(config)
        self.val = validation_split(data.split.train, self.tuning.validation_weeks)
        self.sub = subsample_users(self.val.test, self.tuning.prune_user_fraction, self.tuning.seed)
        self.experiment_id = experiment_id

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.tuning)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        run = mlflow.start_run(
            experiment_id=self.experiment_id,
            run_name=f"trial-{trial.number}",
            nested=True,
            tags={"run_kind": "trial", "study": trial.study.study_name, "trial": str(trial.number)},
        )
        status = "FAILED"
        try:
            mlflow.log_params(flatten("model", {**self.config.model.params, **params}))
            model = build_model(self.config.with_params(params).model)
            start = time.perf_counter()
            model.fit(self.val.train)
            mlflow.log_metric("fit_seconds", time.perf_counter() - start)
            metric = self.tuning.metric
            quick = _score(model, self.val.train, self.sub, metric)
            mlflow.log_metric(f"{VALIDATION_PREFIX}{metric}__subsample", quick, step=0)
            trial.report(quick, 0)
            if trial.should_prune():
                # a pruned trial ended as planned: FINISHED, marked by its tag (KILLED means "crashed")
                status = "FINISHED"
                mlflow.set_tag("pruned", "true")
                raise optuna.TrialPruned(f"{metric} {quick:.4f} on a user subsample is below the median")
            mlflow.set_tag("pruned", "false")
            value = _score(model, self.val.train, self.val.test, metric)
            trial.report(value, 1)
            # validation scores are named apart from the test scores training runs log
            mlflow.log_metric(f"{VALIDATION_PREFIX}{metric}", value, step=1)
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            status = "FINISHED"
            return value
        finally:
            mlflow.end_run(status=status)


# ---- the study --------------------------------------------------------------------------------
@dataclass
class TuneResult:
    study_name: str
    storage: str
    parent_run_id: str
    n_trials: int
    n_pruned: int
    metric: str
    default_params: dict[str, Any]
    best_params: dict[str, Any]
    default_validation: float | None
    best_validation: float
    default_test: float | None = None
    best_test: float | None = None

    def table(self) -> str:
        def f(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.4f}"

        def gain(a: float | None, b: float | None) -> str:
            return (
                "n/a"
                if a is None or b is None
                else f"{b - a:+.4f} ({(b - a) / a:+.1%})"
                if a
                else f"{b - a:+.4f}"
            )

        return "\n".join(
            [
                f"| {self.metric} | default params | best params | improvement |",
                "|---|---|---|---|",
                f"| validation (tuning objective) | {f(self.default_validation)} | {f(self.best_validation)} | "
                f"{gain(self.default_validation, self.best_validation)} |",
                f"| held-out test | {f(self.default_test)} | {f(self.best_test)} | {gain(self.default_test, self.best_test)} |",
            ]
        )


def open_study(
    name: str, storage: optuna.storages.BaseStorage, tuning: TuningConfig, seed: int | None
) -> tuple[optuna.Study, bool]:
    """(study, created): create it, or join it when another worker already did."""
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=tuning.sampler_startup_trials)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=tuning.pruner_startup_trials, n_warmup_steps=0)
    import sqlalchemy.exc

    for attempt in range(5):
        try:
            study = optuna.create_study(
                storage=storage, study_name=name, direction=tuning.direction, sampler=sampler, pruner=pruner
            )
            return study, True
        except optuna.exceptions.DuplicatedStudyError:
            return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner), False
        except sqlalchemy.exc.OperationalError:  # SQLite busy while another worker creates it
            if attempt == 4:
                raise
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")


def _default_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.user_attrs.get("role") == DEFAULT_ROLE
    ]
    return done[0] if done else None


def holdout_scores(
    config: ExperimentConfig, data: PreparedData, defaults: dict[str, Any], best: dict[str, Any], metric: str
) -> tuple[float, float]:
    """Refit default and best params on the full training period; score on the held-out test.

    The best model is fitted, evaluated and logged into the active (parent) run the way a training
    run is, so `recsys register --run <parent>` registers the tuned model.
    """
    progress = Progress(4, prefix="held-out test: ")
    with progress.step("refitting the default params"):
        default_model = build_model(config.with_params(defaults).model).fit(data.split.train)
        default_test = _score(default_model, data.split.train, data.split.test, metric)
    model, result = fit_and_log(config.with_params(best), data, progress)
    best_test = result.metrics.get(metric)
    if best_test is None:  # a tuning metric outside the config's k/tracks
        best_test = _score(model, data.split.train, data.split.test, metric)
    return default_test, float(best_test)


def trial_line(n_trials: int) -> Any:
    """Optuna callback: one line per finished trial of this worker, on stderr."""
    done = [0]

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done[0] += 1
        state = trial.state.name.lower()
        value = "" if trial.value is None else f" {trial.value:.4f}"
        try:
            best = f", best {study.best_value:.4f} (trial {study.best_trial.number})"
        except ValueError:  # no completed trial yet
            best = ""
        seconds = (trial.duration.total_seconds() if trial.duration else 0.0) or 0.0
        print(
            f"trial {done[0]}/{n_trials} (#{trial.number}) {state}{value}{best} in {seconds:.1f}s "
            f"{trial.params}",
            file=sys.stderr,
            flush=True,
        )

    return report


def tune(
    config: ExperimentConfig,
    n_trials: int,
    *,
    study_name: str | None = None,
    storage: str | None = None,
    seed: int | None = None,
    holdout: bool = True,
    timeout: float | None = None,
) -> TuneResult:
    """Run `n_trials` trials of this worker on the (possibly shared) study; returns the summary."""
    tuning = check_space(config)
    if n_trials < 1:
        raise ValueError(f"--trials must be at least 1, got {n_trials}")
    setup_tracking()
    url = storage_url(storage)
    study_name = study_name or f"{config.name}-tuning"
    experiment_id = ensure_experiment(config.experiment)
    study, created = open_study(study_name, make_storage(url), tuning, tuning.seed if seed is None else seed)
    defaults = default_params(config)
    if created:
        # Trial 0 is the config's defaults, so "improvement over the defaults" is measured, not guessed.
        study.enqueue_trial(defaults, user_attrs={"role": DEFAULT_ROLE}, skip_if_exists=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with Progress(1, prefix=f"{config.name}: ").step(
        f"preparing data {config.data.dir or config.data.source}"
    ):
        data = prepare(config.data)
    tags = {
        TAG_KIND: "tune",
        TAG_CONFIG: config.name,
        TAG_MODEL: config.model.name,
        TAG_GIT: git_commit(),
        TAG_DIGEST: data.digest,
        TAG_CUTOFF: data.cutoff,
        "study": study_name,
        "optuna_storage": _redact(url),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"tune-{study_name}", tags=tags) as parent:
        log_config(config)
        mlflow.log_params(
            {
                "n_trials": n_trials,
                "metric": tuning.metric,
                "validation_weeks": tuning.validation_weeks,
                "prune_user_fraction": tuning.prune_user_fraction,
                **flatten("space", {k: v.model_dump() for k, v in tuning.space.items()}),
            }
        )
        objective = Objective(config, data, experiment_id)
        study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[trial_line(n_trials)])
        result = _summarise(study, url, parent.info.run_id, tuning.metric, defaults)
        if holdout:
            result.default_test, result.best_test = holdout_scores(
                config, data, defaults, result.best_params, tuning.metric
            )
        _log_result(result)
    return result


def _summarise(study: optuna.Study, url: str, run_id: str, metric: str, defaults: dict) -> TuneResult:
    trials = study.get_trials(deepcopy=False)
    default = _default_trial(study)
    best = study.best_trial
    return TuneResult(
        study_name=study.study_name,
        storage=_redact(url),
        parent_run_id=run_id,
        n_trials=len(trials),
        n_pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        metric=metric,
        default_params=defaults,
        best_params=dict(best.params),
        default_validation=default.value if default else None,
        best_validation=float(best.value),
    )


def _log_result(result: TuneResult) -> None:
    mlflow.log_params(flatten("best", result.best_params))
    figures = {
        "best_validation": result.best_validation,
        "default_validation": result.default_validation,
        "best_test": result.best_test,
        "default_test": result.default_test,
        "n_trials_in_study": result.n_trials,
        "n_pruned_in_study": result.n_pruned,
    }
    if result.default_validation is not None:
        figures["improvement_validation"] = result.best_validation - result.default_validation
    if result.default_test is not None and result.best_test is not None:
        figures["improvement_test"] = result.best_test - result.default_test
    mlflow.log_metrics({k: float(v) for k, v in figures.items() if v is not None})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tuning.md"
        path.write_text(result.table() + "\n")
        mlflow.log_artifact(str(path))
    mlflow.log_dict({"default": result.default_params, "best": result.best_params}, "params.json")


def _redact(url: str) -> str:
    """Storage URL without a password, safe for tags and output."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url
