"""Model registry: register runs as versions, and a promotion gate that moves `@champion`.

The service only ever serves `models:/<name>@champion`. A challenger replaces it only when it
(1) beats the champion on the configured metric measured on the SAME held-out split (same dataset
digest, cutoff and end; otherwise both are refitted and re-evaluated on the challenger's split), and
(2) passes the diet probes: for a probe set of users x diet profiles, the registered pyfunc is asked
for lists and every item is checked against the fail-closed ConstraintEngine; zero violations and
full lists are required. Every decision is logged as an MLflow run with the figures and as tags on
the challenger version. Aliases only: stages are deprecated.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from recsys.defaults import CHALLENGER, CHAMPION, MODEL_NAME
from training.config import ConstraintsConfig, ExperimentConfig, PromotionConfig, load_config
from training.jobs import PYFUNC_NAME, TAG_PYFUNC_ID
from training.tracking import (
    TAG_CUTOFF,
    TAG_DATA_DIR,
    TAG_DIGEST,
    TAG_KIND,
    TAG_PROMOTION_METRIC,
    TAG_UNTIL,
    ensure_experiment,
    setup_tracking,
)

PREVIOUS = "previous-champion"
DEFAULT_METRIC = "ndcg_at_10__all"
METRIC_RE = re.compile(r"^(?P<name>\w+?)_at_(?P<k>\d+)__(?P<track>all|new)$")


class RegistryError(RuntimeError):
    """A registry request that cannot be carried out (unknown run, failed run, missing alias)."""


@dataclass
class Decision:
    promoted: bool
    reason: str
    model_name: str
    metric: str
    challenger_version: str
    champion_version: str | None = None
    challenger_value: float | None = None
    champion_value: float | None = None
    same_split: bool | None = None
    probe_lists: int = 0
    violations: int = 0
    short_lists: int = 0
    examples: list[str] = field(default_factory=list)
    unchanged: bool = False  # the challenger already is the champion: nothing to do, not a refusal

    def summary(self) -> str:
        verdict = "PROMOTED" if self.promoted else "UNCHANGED" if self.unchanged else "REFUSED"
        figures = f"{self.metric}: challenger v{self.challenger_version} = {_fmt(self.challenger_value)}"
        if self.champion_version is not None:
            figures += f", champion v{self.champion_version} = {_fmt(self.champion_value)}"
        probes = (
            f"diet probes: {self.probe_lists} lists, {self.violations} violations, {self.short_lists} short"
        )
        return f"{verdict}: {self.reason}\n  {figures}\n  {probes}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def parse_metric(metric: str) -> tuple[str, int, str]:
    match = METRIC_RE.match(metric)
    if not match:
        raise ValueError(f"metric {metric!r} is not of the form <name>_at_<k>__<all|new>")
    return match["name"], int(match["k"]), match["track"]


# ---- registering ------------------------------------------------------------------------------
def register(run_id: str, alias: str = CHALLENGER, model_name: str = MODEL_NAME) -> ModelVersion:
    """Register the run's pyfunc as a new version of `model_name` and point `@alias` at it."""
    setup_tracking()
    client = MlflowClient()
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise RegistryError(f"run {run_id} not found: {exc.message}") from None
    if run.info.status != "FINISHED":
        raise RegistryError(f"run {run_id} is {run.info.status}; only FINISHED runs can be registered")
    if alias == CHAMPION:
        raise RegistryError("@champion is only set by 'recsys promote' (the gate); register as a challenger")
    tags = {
        k: v
        for k, v in run.data.tags.items()
        if k in (TAG_DIGEST, TAG_CUTOFF, TAG_UNTIL, TAG_PROMOTION_METRIC)
    }
    model_id = run.data.tags.get(TAG_PYFUNC_ID)
    if model_id is None and run.data.tags.get(TAG_KIND) == "tune":
        raise RegistryError(
            f"tuning run {run_id} holds no model: it ran with --no-holdout (the best params are refitted "
            "and logged only with the held-out evaluation); rerun 'recsys tune' without --no-holdout"
        )
    if model_id is None and run.data.tags.get(TAG_KIND) == "trial":
        parent = run.data.tags.get("mlflow.parentRunId", "?")
        raise RegistryError(f"run {run_id} is a tuning trial (no model); register its parent run {parent}")
    uri = f"models:/{model_id}" if model_id else f"runs:/{run_id}/{PYFUNC_NAME}"
    version = mlflow.register_model(uri, model_name, tags={**tags, "run_id": run_id})
    client.set_registered_model_alias(model_name, alias, version.version)
    return client.get_model_version(model_name, version.version)


def version_by_alias(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


# ---- constraint probes ------------------------------------------------------------------------
def _items_table(client: MlflowClient, run_id: str) -> pd.DataFrame:
    """The catalog to check against: the data directory's current products table when the run's data
    dir still exists (ground truth about products), else the items table logged with the model."""
    data_dir = client.get_run(run_id).data.tags.get(TAG_DATA_DIR)
    if data_dir and (Path(data_dir) / "products.parquet").exists():
        return pd.read_parquet(Path(data_dir) / "products.parquet")
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            f"runs:/{run_id}/model/artifacts/items.parquet", dst_path=tmp
        )
        return pd.read_parquet(path)


def probe_constraints(
    model_uri: str, items_table: pd.DataFrame, probes: ConstraintsConfig
) -> tuple[int, int, int, list[str]]:
    """(lists, violations, short lists, examples) for probe users x profiles through the pyfunc."""
    from recsys.diet.constraints import ConstraintEngine

    pyfunc = mlflow.pyfunc.load_model(model_uri)
    native = pyfunc.unwrap_python_model()._model
    users = native.users_.to_list()
    rng = np.random.default_rng(probes.seed)
    chosen = [str(u) for u in rng.choice(users, size=min(probes.probe_users, len(users)), replace=False)]
    chosen.append("__probe_unknown_user__")  # the cold-start fallback path must comply too
    engine = ConstraintEngine(items_table)
    index = {str(p): i for i, p in enumerate(items_table["product_id"])}
    lists = violations = short = 0
    examples: list[str] = []
    for profile in probes.probe_profiles:
        allowed = np.asarray(engine.allowed(profile), dtype=bool)
        expected = min(probes.k, int(allowed.sum()))
        requests = [{"user_id": u, "k": probes.k, "diet": profile} for u in chosen]
        for response in pyfunc.predict(requests):
            lists += 1
            bad = [i for i in response.items if i not in index or not allowed[index[i]]]
            violations += len(bad)
            if bad and len(examples) < 5:
                examples.append(f"{profile}: user {response.user_id} got {bad[:3]}")
            if len(response.items) < expected:
                short += 1
    return lists, violations, short, examples


# ---- comparing on the same split --------------------------------------------------------------
def _split_key(version: ModelVersion, client: MlflowClient) -> tuple[str, str, str, str]:
    """Same data digest, cutoff, end AND the same erasures: a model trained after customers were
    erased saw other data than one trained before, even on the same data directory (erasures only
    accumulate, so the count tells the sets apart)."""
    run = client.get_run(version.run_id).data
    tags = run.tags
    erased = run.params.get("data.erased_customers", "?")
    return (tags.get(TAG_DIGEST, "?"), tags.get(TAG_CUTOFF, "?"), tags.get(TAG_UNTIL, "None"), erased)


def _native_model(run_id: str):
    from training.pyfunc import load_native

    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/native_model", dst_path=tmp)
        return load_native(path)


def reevaluate_on_split(challenger_run: str, champion_run: str, metric: str) -> tuple[float, float]:
    """Refit both models (class + params from their native artifacts) on the challenger's split and
    evaluate both there: the only fair comparison when the champion was trained on other data."""
    from recsys.data.io import read_manifest
    from recsys.data.splits import temporal_split
    from recsys.metrics.evaluation import evaluate
    from training.data import load_without_erased

    client = MlflowClient()
    tags = client.get_run(challenger_run).data.tags
    data_dir = Path(tags.get(TAG_DATA_DIR, ""))
    if not (data_dir / "manifest.json").exists():
        raise RegistryError(f"cannot re-evaluate: the challenger's data dir {data_dir} is gone")
    digest = read_manifest(data_dir).get("digest")
    if digest != tags.get(TAG_DIGEST):
        raise RegistryError(
            f"cannot re-evaluate: {data_dir} now has digest {digest}, the challenger used {tags.get(TAG_DIGEST)}"
        )
    until = tags.get(TAG_UNTIL)
    dataset, _ = load_without_erased(data_dir)  # erased customers never come back through a refit
    split = temporal_split(dataset, tags[TAG_CUTOFF], None if until in (None, "None") else until)
    name, k, track = parse_metric(metric)
    values = []
    for run_id in (challenger_run, champion_run):
        trained = _native_model(run_id)
        model = type(trained)(**trained.get_params()).fit(split.train)
        values.append(float(evaluate(model, split.train, split.test, k=k, track=track)[name]))
    return values[0], values[1]


def _logged_metric(client: MlflowClient, run_id: str, metric: str) -> float | None:
    return client.get_run(run_id).data.metrics.get(metric)


# ---- the gate ---------------------------------------------------------------------------------
def run_config(run_id: str) -> ExperimentConfig | None:
    """The validated config a run logged (config.yaml), or None for runs without one."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/config.yaml", dst_path=tmp)
            return load_config(path)
    except (MlflowException, OSError, ValueError):
        return None


def promote(
    model_name: str = MODEL_NAME,
    metric: str | None = None,
    min_improvement: float | None = None,
    probes: ConstraintsConfig | None = None,
    higher_is_better: bool | None = None,
) -> Decision:
    """Move @champion to @challenger if it is better on the same split and passes the diet probes.

    Settings not given here come from the challenger run's logged config (promotion + constraints).
    """
    setup_tracking()
    client = MlflowClient()
    challenger = version_by_alias(client, model_name, CHALLENGER)
    if challenger is None:
        raise RegistryError(f"model {model_name!r} has no @{CHALLENGER}; run 'recsys register' first")
    champion = version_by_alias(client, model_name, CHAMPION)
    config = run_config(challenger.run_id)
    rules = config.promotion if config else PromotionConfig()
    metric = metric or rules.metric or DEFAULT_METRIC
    min_improvement = rules.min_improvement if min_improvement is None else min_improvement
    higher_is_better = rules.higher_is_better if higher_is_better is None else higher_is_better
    probes = probes or (config.constraints if config else ConstraintsConfig())
    parse_metric(metric)
    decision = Decision(False, "", model_name, metric, str(challenger.version))
    decision.challenger_value = _logged_metric(client, challenger.run_id, metric)

    lists, violations, short, examples = probe_constraints(
        f"models:/{model_name}/{challenger.version}",
        _items_table(client, challenger.run_id),
        probes,
    )
    decision.probe_lists, decision.violations, decision.short_lists = lists, violations, short
    decision.examples = examples

    if champion is not None:
        decision.champion_version = str(champion.version)
        decision.same_split = _split_key(challenger, client) == _split_key(champion, client)
        decision.champion_value = _logged_metric(client, champion.run_id, metric)
        if champion.version == challenger.version:
            decision.reason = f"v{challenger.version} is already @{CHAMPION}"
            decision.unchanged = True
            return _log_decision(client, decision)
        if not decision.same_split or decision.challenger_value is None or decision.champion_value is None:
            decision.challenger_value, decision.champion_value = reevaluate_on_split(
                challenger.run_id, champion.run_id, metric
            )

    if violations or short:
        decision.reason = (
            f"constraint checks failed: {violations} diet violation(s) and {short} short list(s) "
            f"in {lists} probe lists"
        )
    elif decision.challenger_value is None:
        decision.reason = f"challenger run has no metric {metric!r}"
    elif champion is None:
        decision.promoted = True
        decision.reason = f"no @{CHAMPION} yet; challenger passes the diet probes"
    else:
        sign = 1.0 if higher_is_better else -1.0
        gain = sign * (decision.challenger_value - decision.champion_value)
        where = "on the same split" if decision.same_split else "re-evaluated on the challenger's split"
        if gain > min_improvement:
            decision.promoted = True
            decision.reason = f"challenger beats champion by {gain:+.4f} {where}"
        else:
            decision.reason = (
                f"challenger does not beat champion {where}: {gain:+.4f} (needs > {min_improvement:+.4f})"
            )
    if decision.promoted:
        if champion is not None:
            client.set_registered_model_alias(model_name, PREVIOUS, champion.version)
        client.set_registered_model_alias(model_name, CHAMPION, challenger.version)
    return _log_decision(client, decision)


def _log_decision(client: MlflowClient, decision: Decision) -> Decision:
    """One run per decision in '<model>-promotions' plus tags on the challenger version."""
    experiment_id = ensure_experiment(f"{decision.model_name}-promotions")
    verdict = "promoted" if decision.promoted else "refused"
    with mlflow.start_run(
        experiment_id=experiment_id,
        run_name=f"{verdict}-v{decision.challenger_version}",
        tags={"run_kind": "promotion", "decision": verdict, "reason": decision.reason[:5000]},
    ):
        mlflow.log_params(
            {
                "model_name": decision.model_name,
                "metric": decision.metric,
                "challenger_version": decision.challenger_version,
                "champion_version": str(decision.champion_version),
                "same_split": str(decision.same_split),
            }
        )
        figures: dict[str, Any] = {
            "challenger_value": decision.challenger_value,
            "champion_value": decision.champion_value,
            "probe_lists": decision.probe_lists,
            "diet_violations": decision.violations,
            "short_lists": decision.short_lists,
        }
        mlflow.log_metrics({k: float(v) for k, v in figures.items() if v is not None})
        mlflow.log_dict(asdict(decision), "decision.json")
    tags = {
        "promotion.decision": verdict,
        "promotion.reason": decision.reason[:5000],
        "promotion.metric": decision.metric,
        "promotion.challenger_value": _fmt(decision.challenger_value),
        "promotion.champion_value": _fmt(decision.champion_value),
        "promotion.diet_violations": str(decision.violations),
    }
    for key, value in tags.items():
        client.set_model_version_tag(decision.model_name, decision.challenger_version, key, value)
    return decision
