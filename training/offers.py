"""The discount planner as a trained, versioned artifact: fit, plan within the budget, log, register.

    tables (minus erased customers, with the consent and diet customers last gave the service)
      -> DiscountPlanner(rules from the config).fit -> plan(budget)
      -> channel and send hour per customer (recsys.offers.channels, fitted here on the offer log and
         the engagement per channel)
      -> PlanArtifact (recsys.offers.artifact: the plan and the channel model together)
      -> MLflow run (params, aggregate metrics, the plan directory) -> registry version @champion

The service loads that plan read-only and answers from it (serving/discounts.py), so what is served is
the plan that was measured here: within its budget, on the rules and the consent of this run. MLflow
receives aggregate figures and the plan directory, whose customer ids are the data's pseudonymous ids.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.offers.artifact import PLAN_COLUMNS, PlanArtifact
from training.offers_config import OffersConfig

PLAN_ARTIFACT = "discount_plan"
CHAMPION = "champion"
PREVIOUS = "previous-champion"


@dataclass(frozen=True)
class OffersResult:
    artifact: PlanArtifact
    planner: Any  # the fitted DiscountPlanner
    erased_customers: int
    overridden_customers: int
    seconds: float
    run_id: str | None = None
    version: str | None = None  # registry version, when registered


def live_tables(data_dir: Path, events: str | None = None) -> tuple[dict[str, pd.DataFrame], int, int]:
    """The data directory's tables minus customers erased through the service, with the consent and
    diet customers last recorded through it and the redemptions settled at checkout in the offer log
    (`with_redemptions`); and how many customers were dropped / overridden."""
    from recsys.data.io import read_tables
    from training.privacy import apply_customer_overrides, events_url, read_privacy

    privacy = read_privacy(events)  # fails closed on a configured store it cannot read
    url = events or events_url()
    tables = read_tables(data_dir, skip=("promotions",))  # the planner does not read the calendar
    tables = {**tables, "offers": with_redemptions(tables.get("offers"), read_redemptions(url))}
    tables, erased = privacy.drop_erased(tables)
    customers, overridden = apply_customer_overrides(tables["customers"], privacy.overrides)
    return {**tables, "customers": customers}, erased, overridden


#: Columns of the event store's checkout redemptions (serving/checkout.py) that training reads.
REDEMPTION_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "product_group",
    "discount_level",
    "plan_version",
    "plan_as_of",
    "redeemed_at",
)


def read_redemptions(url: str) -> pd.DataFrame:
    """Redemptions recorded by POST /v1/checkout; empty when the store or its table does not exist.
    An unreachable store is an error, as for erasures."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url

    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in REDEMPTION_COLUMNS})
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or not Path(database).exists():
            return empty
    engine = create_engine(parsed)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("redemptions"):
                return empty
            rows = conn.execute(text(f"SELECT {', '.join(REDEMPTION_COLUMNS)} FROM redemptions")).all()
    except Exception as exc:  # noqa: BLE001 - a missing database is "no redemptions" like erasures
        if parsed.database and f'database "{parsed.database}" does not exist' in str(exc):
            return empty
        raise RuntimeError(f"cannot read redemptions from the event store: {exc}") from exc
    finally:
        engine.dispose()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(REDEMPTION_COLUMNS)) if rows else empty


def with_redemptions(offers: pd.DataFrame | None, redemptions: pd.DataFrame) -> pd.DataFrame | None:
    """The offer log with checkout redemptions as outcomes.

    A redemption marks the customer's logged offer of that product group whose window holds it (the
    latest such, not yet redeemed). A redemption of a planned offer the log does not hold is appended
    as an offer sent when its plan was made, with no logging propensity: it counts as an outcome (its
    purchase is not organic habit) but not as a row of the response model, which also needs the
    planned offers that were NOT redeemed; those are in the log only if the send is logged.
    """
    if redemptions.empty:
        return offers
    red = redemptions.assign(
        customer_id=redemptions["customer_id"].astype(str),
        redeemed_at=pd.to_datetime(redemptions["redeemed_at"], utc=True).dt.tz_localize(None),
    ).sort_values("redeemed_at")
    log = (
        offers.copy()
        if offers is not None
        else pd.DataFrame(columns=["offer_id", "customer_id", "product_group"])
    )
    for column, dtype in (
        ("sent_at", "datetime64[ns]"),
        ("expires_at", "datetime64[ns]"),
        ("redeemed_at", "datetime64[ns]"),
    ):
        log[column] = (
            pd.to_datetime(log[column]) if column in log else pd.Series(pd.NaT, index=log.index, dtype=dtype)
        )
    expires = log["expires_at"].fillna(log["sent_at"] + pd.Timedelta(weeks=1))
    extra = []
    for r in red.itertuples(index=False):
        hit = (
            (log["customer_id"].astype(str) == r.customer_id)
            & (log["product_group"].astype(str) == str(r.product_group))
            & log["redeemed_at"].isna()
            & (log["sent_at"] <= r.redeemed_at)
            & (expires >= r.redeemed_at)
        )
        if hit.any():
            log.loc[log.index[hit.to_numpy()][-1], "redeemed_at"] = r.redeemed_at
            continue
        sent = pd.to_datetime(r.plan_as_of, errors="coerce")
        sent = r.redeemed_at if pd.isna(sent) or sent > r.redeemed_at else sent
        extra.append(
            {
                "offer_id": f"checkout:{r.plan_version}:{r.customer_id}:{r.product_group}",
                "customer_id": r.customer_id,
                "product_group": str(r.product_group),
                "discount_level": float(r.discount_level),
                "sent_at": sent,
                "expires_at": r.redeemed_at,
                "channel": "store",
                "redeemed_at": r.redeemed_at,
                "propensity": float("nan"),
                "campaign_id": None,
            }
        )
    if extra:
        log = pd.concat([log, pd.DataFrame(extra)], ignore_index=True)
    return log


def fit_planner(tables: dict[str, pd.DataFrame], config: OffersConfig):
    """A DiscountPlanner with the config's parameters and rules, fitted on `tables`."""
    from recsys.offers.planner import DiscountPlanner

    return DiscountPlanner(**config.planner_params()).fit(tables, config.data.as_of)


def fit_plan(tables: dict[str, pd.DataFrame], config: OffersConfig, data_digest: str = "unknown"):
    """(PlanArtifact, fitted planner): the plan for `config.budget` and everything serving needs."""
    planner = fit_planner(tables, config)
    return plan_artifact(planner, tables, config, data_digest), planner


def plan_artifact(
    planner, tables: dict[str, pd.DataFrame], config: OffersConfig, data_digest: str = "unknown"
) -> PlanArtifact:
    """The plan of a fitted planner for `config.budget`, with everything serving needs."""
    from recsys.offers.channels import plan_channels
    from recsys.offers.eligibility import diet_patterns, group_table

    channels = fit_channels(tables, planner.lifecycle_, planner.as_of_, planner.lookback_weeks)
    plan = planner.plan(config.budget, config.max_per_customer)
    plan = plan_channels(plan, channels, tables["customers"], planner.lifecycle_["preferred_weekday"])
    no_offer = planner.no_offer_reasons(plan).rename_axis("customer_id").reset_index()
    groups = group_table(tables["products"], planner.rules).reset_index()
    ratio = getattr(planner, "cost_ratio_", None) or {}
    meta = {
        "name": config.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "as_of": str(planner.as_of_),
        "budget": float(config.budget),
        "expected_cost": float(plan["expected_cost"].sum()),
        "expected_profit": float(plan["expected_profit"].sum()),
        "offers": len(plan),
        "customers": int(plan["customer_id"].nunique()),
        "candidate_customers": int(planner.candidates_["customer_id"].nunique()),
        "max_per_customer": int(config.max_per_customer),
        "min_compliant_share": float(config.diet.min_compliant_share),
        "adult_age": int(config.age_rule.adult_age),
        "response_model": type(planner.response_).__name__,
        "cost_factor": float(planner.cost_factor_),
        "form_cost_ratio": float((planner.cost_bound_ or {}).get("form_ratio", 1.0)),
        "cost_check_offers": int(ratio.get("offers", 0)),
        "budget_risk": float(planner.budget_risk),
        "budget_promise": str(planner.budget_promise_["statement"]),
        "budget_promise_supported": bool(planner.budget_promise_["supported"]),
        "shadow_price": float(planner.lam_),
        "levels": [float(x) for x in planner.levels],
        "channel_model": channels.get_params(),
        "channel_log_offers": int(channels.log_offers_),
        "config_digest": config.digest(),
        "data_digest": data_digest,
    }
    return PlanArtifact(
        meta=meta,
        plan=plan.loc[:, list(PLAN_COLUMNS)].reset_index(drop=True),
        no_offer=no_offer,
        groups=groups,
        diet_patterns=diet_patterns(tables["products"]),
        channels=channels.to_frame(),
    )


def fit_channels(
    tables: dict[str, pd.DataFrame], lifecycle: pd.DataFrame, as_of: pd.Timestamp, lookback_weeks: int
):
    """The channel and send-hour model (recsys.offers.channels) fitted on the offer log's sends on
    its channels, with each customer's usual shopping hour (the lifecycle's) as the hour prior and
    their engagement per channel over the `lookback_weeks` before `as_of` (the `engagement` table,
    when the data has one) as the channel prior."""
    from recsys.offers.channels import ChannelTimingModel, engagement_signals, offer_log

    since = pd.Timestamp(as_of) - pd.Timedelta(weeks=lookback_weeks)
    ids = lifecycle.index.astype(str)
    signals = engagement_signals(tables.get("engagement"), ids, since, pd.Timestamp(as_of))
    hour = pd.Series(lifecycle["preferred_hour"].to_numpy(float), index=ids)
    signals["usual_hour"] = signals["customer_id"].map(hour).to_numpy(float)
    return ChannelTimingModel().fit(offer_log(tables.get("offers")), signals)


def plan_summary(artifact: PlanArtifact) -> dict[str, Any]:
    """Aggregate figures of a plan (no customer appears): totals, offers per tier, level, department."""
    plan, meta = artifact.plan, artifact.meta
    department = plan["product_group"].map(artifact.groups.set_index("product_group")["department"])
    return {
        "offers": int(len(plan)),
        "customers": int(plan["customer_id"].nunique()),
        "expected_cost": float(plan["expected_cost"].sum()),
        "expected_profit": float(plan["expected_profit"].sum()),
        "budget": float(meta["budget"]),
        "per_tier": {str(k): int(v) for k, v in plan["tier"].value_counts().sort_index().items()},
        "per_level": {
            f"{k:.2f}": int(v) for k, v in plan["discount_level"].value_counts().sort_index().items()
        },
        "per_department": {str(k): int(v) for k, v in department.fillna("?").value_counts().items()},
        "per_channel": {
            str(k): int(v) for k, v in plan.drop_duplicates("customer_id")["channel"].value_counts().items()
        },
        "channel_log_offers": int(meta.get("channel_log_offers", 0)),
    }


def _metrics(summary: dict[str, Any], meta: dict[str, Any]) -> dict[str, float]:
    out = {
        k: float(summary[k]) for k in ("offers", "customers", "expected_cost", "expected_profit", "budget")
    }
    out["budget_used"] = summary["expected_cost"] / summary["budget"] if summary["budget"] > 0 else 0.0
    out.update({f"offers_tier_{t.replace(' ', '_')}": float(n) for t, n in summary["per_tier"].items()})
    out.update({f"customers_channel_{c}": float(n) for c, n in summary["per_channel"].items()})
    out["channel_log_offers"] = float(summary["channel_log_offers"])
    out.update(
        {
            "candidate_customers": float(meta["candidate_customers"]),
            "cost_factor": float(meta["cost_factor"]),
            "form_cost_ratio": float(meta.get("form_cost_ratio", 1.0)),
            "shadow_price": float(meta["shadow_price"]),
        }
    )
    return out


def register_plan(run_id: str, artifact_uri: str, model_name: str, tags: dict[str, str]) -> str:
    """A new registry version of `model_name` pointing at the run's plan directory, set as @champion
    (the old champion becomes @previous-champion); returns the version number."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from training.registry import version_by_alias

    client = MlflowClient()
    try:
        client.get_registered_model(model_name)
    except MlflowException:
        client.create_registered_model(model_name, description="Discount plans: recsys.offers.artifact")
    old = version_by_alias(client, model_name, CHAMPION)
    version = client.create_model_version(
        model_name, source=f"{artifact_uri}/{PLAN_ARTIFACT}", run_id=run_id, tags={**tags, "run_id": run_id}
    )
    if old is not None:
        client.set_registered_model_alias(model_name, PREVIOUS, old.version)
    client.set_registered_model_alias(model_name, CHAMPION, version.version)
    return str(version.version)


def run_offers(
    config: OffersConfig,
    *,
    plan_dir: str | Path | None = None,
    track: bool = True,
    register: bool = True,
    model_name: str | None = None,
) -> OffersResult:
    """Fit and plan `config`; save the plan to `plan_dir`; with `track`, log one MLflow run and (with
    `register`) register the plan as `model_name`@champion. A crash leaves the run FAILED and moves no
    alias."""
    from recsys.data.io import read_manifest
    from training.config import DataConfig
    from training.data import ensure_data_dir

    start = time.perf_counter()
    data_dir = ensure_data_dir(DataConfig(source=config.data.source, dir=config.data.dir))
    digest = str(read_manifest(data_dir).get("digest", "unknown"))
    if not track:
        tables, erased, overridden = live_tables(data_dir)
        artifact, planner = fit_plan(tables, config, digest)
        if plan_dir is not None:
            artifact.save(plan_dir)
        return OffersResult(artifact, planner, erased, overridden, time.perf_counter() - start)
    return _tracked(config, data_dir, digest, plan_dir, register, model_name, start)


def _tracked(config, data_dir, digest, plan_dir, register, model_name, start) -> OffersResult:
    import mlflow

    from recsys.defaults import PLANNER_NAME
    from training.tracking import (
        TAG_CONFIG,
        TAG_DATA_DIR,
        TAG_DIGEST,
        TAG_GIT,
        TAG_KIND,
        ensure_experiment,
        flatten,
        git_commit,
        setup_tracking,
    )

    setup_tracking()
    experiment_id = ensure_experiment(config.experiment)
    tags = {TAG_CONFIG: config.name, TAG_KIND: "offers", TAG_GIT: git_commit(), TAG_DIGEST: digest}
    with mlflow.start_run(experiment_id=experiment_id, run_name=config.name, tags=tags) as run:
        mlflow.set_tag(TAG_DATA_DIR, str(data_dir))
        mlflow.log_dict(config.model_dump(mode="json"), "config.yaml")
        mlflow.log_params(flatten("", {**config.model_dump(mode="json"), "data": {"digest": digest}}))
        tables, erased, overridden = live_tables(data_dir)
        mlflow.log_params({"data.erased_customers": erased, "data.overridden_customers": overridden})
        artifact, planner = fit_plan(tables, config, digest)
        summary = plan_summary(artifact)
        mlflow.log_metrics({**_metrics(summary, artifact.meta), "fit_seconds": time.perf_counter() - start})
        mlflow.log_dict(summary, "plan_summary.json")
        with tempfile.TemporaryDirectory() as tmp:
            local = artifact.save(Path(plan_dir) if plan_dir is not None else Path(tmp) / PLAN_ARTIFACT)
            mlflow.log_artifacts(str(local), PLAN_ARTIFACT)
        version = None
        if register:
            version = register_plan(
                run.info.run_id,
                run.info.artifact_uri,
                model_name or PLANNER_NAME,
                {TAG_DIGEST: digest, "budget": f"{config.budget:g}", "config_digest": config.digest()},
            )
        return OffersResult(
            artifact, planner, erased, overridden, time.perf_counter() - start, run.info.run_id, version
        )
