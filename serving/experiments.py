"""Experiments in serving: which variant answers, its model next to the champion, exposure logging.

The configs are read once at start-up from RECSYS_EXPERIMENTS_DIR (YAML, recsys.experiments.config);
a variant with its own `model` is loaded beside the champion at the same time, and again by every
`/v1/admin/reload` (a registry alias may name a newer version by then). For every products,
recipes or discounts answer the first running experiment of that surface whose population admits the
customer picks the variant (sticky hash, recsys.experiments.assignment); the answer carries
`{"experiment", "variant"}`, and ONE exposure row is committed before the answer is returned (the
same durability as feedback; concurrent answers share one transaction), with the recommendation id
that outcomes quote.

The table `experiment_exposures` lives on the event store's metadata (serving.events) so it is
created, migrated and backed up with the events.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pydantic_core import from_json, to_json
from sqlalchemy import Column, DateTime, Engine, Float, Integer, String, Table, delete, insert
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from recsys.experiments.assignment import assign, is_running
from recsys.experiments.config import Experiment, Variant, load_experiments
from recsys.ranking.selection import Shopper
from serving.batching import MicroBatcher
from serving.config import Settings
from serving.customers import resolve
from serving.discounts import Answer, DiscountPlan, MissingPlan, load_discount_plan
from serving.events import metadata
from serving.products import ProductJob, recommend_batch
from serving.runtime import Runtime, load_runtime

exposures = Table(
    "experiment_exposures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment", String(64), nullable=False, index=True),
    Column("variant", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False, index=True),
    Column("recommendation_id", String(64), nullable=False, index=True),
    Column("surface", String(16), nullable=False),
    Column("model_version", String(128)),
    Column("items", Integer, nullable=False),  # products, recipes or offers shown
    Column("offer_cost", Float, nullable=False),  # expected discount cost of the offers shown
    Column("diet_violations", Integer, nullable=False),  # shown items the customer's diet forbids
    Column("latency_ms", Float),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Arm:
    """One customer's place in one experiment: the variant and the runtime that answers for it."""

    experiment: Experiment
    variant: Variant
    runtime: Runtime | None  # the variant's own model; None: the champion
    plan: DiscountPlan | None = None  # the variant's own discount plan; None: the served plan

    @property
    def tag(self) -> dict[str, str]:
        return {"experiment": self.experiment.name, "variant": self.variant.name}


@dataclass(frozen=True)
class Exposure:
    customer_id: str
    recommendation_id: str
    model_version: str
    items: int
    offer_cost: float = 0.0
    diet_violations: int = 0
    latency_ms: float | None = None


logger = logging.getLogger("serving")


class Experiments:
    """The running configuration of one server worker (read-only after start-up but `runtimes`,
    which a reload replaces whole)."""

    def __init__(self, settings: Settings, engine: Engine, directory: str | Path | None = None) -> None:
        directory = directory or os.environ.get("RECSYS_EXPERIMENTS_DIR") or None
        self.engine = engine
        self.configs: dict[str, Experiment] = load_experiments(directory) if directory else {}
        self.runtimes: dict[tuple[str, str], Runtime] = {}
        self.plans: dict[tuple[str, str], DiscountPlan] = {}
        for exp in self.configs.values():
            for v in exp.variants:
                if v.model is not None:
                    self.runtimes[exp.name, v.name] = _load_variant(settings, v.model)
                if v.discount_plan is not None:
                    self.plans[exp.name, v.name] = _load_plan(settings, v.discount_plan)
        try:  # normally made by the event store's migration; a store that is down makes it later
            exposures.create(engine, checkfirst=True)
        except SQLAlchemyError as exc:
            logger.warning("exposure table not checked (event store unavailable: %s)", type(exc).__name__)
        # group commit: exposures of concurrent answers share one transaction (in a worker thread)
        self._writer = MicroBatcher(self._commit, max_batch_size=256)

    def reload_models(self, settings: Settings) -> dict[tuple[str, str], Runtime]:
        """Every variant model loaded again from its configured source, each built beside the one it
        replaces (an unchanged data set and catalog are reused, so this is cheap); raises when one
        cannot load, and the caller keeps the current ones."""
        return {
            key: _load_variant(settings, self.configs[key[0]].variant(key[1]).model, previous=rt)
            for key, rt in self.runtimes.items()
        }

    def arm(self, surface: str, shopper: Shopper, now: datetime | None = None) -> Arm | None:
        """The first running experiment on `surface` that admits the customer, or None."""
        if not self.configs or (surface == "discounts" and not shopper.consent_marketing):
            return None
        now = now or datetime.now(UTC)
        for exp in self.configs.values():
            if exp.surface != surface or not is_running(exp, now):
                continue
            name = assign(exp, shopper.customer_id, shopper.personalised, shopper.profile.exclusions)
            if name is not None:
                key = (exp.name, name)
                return Arm(exp, exp.variant(name), self.runtimes.get(key), self.plans.get(key))
        return None

    async def record(self, arm: Arm, exposure: Exposure) -> None:
        """Returns after the COMMIT that holds this exposure (the answer is sent only then)."""
        await self._writer.submit(_row(arm, exposure))

    def log(self, arm: Arm, exposure: Exposure) -> None:
        """`record` without an event loop: one exposure, one transaction."""
        self._commit([_row(arm, exposure)])

    def _commit(self, rows: list[dict]) -> list[None]:
        with self.engine.begin() as conn:
            conn.execute(insert(exposures), rows)
        return [None] * len(rows)

    def forget(self, customer_id: str) -> int:
        """Erasure: the customer's exposures go with their events."""
        with self.engine.begin() as conn:
            return int(
                conn.execute(delete(exposures).where(exposures.c.customer_id == customer_id)).rowcount or 0
            )


def _row(arm: Arm, exposure: Exposure) -> dict:
    return {
        **exposure.__dict__,
        "experiment": arm.experiment.name,
        "variant": arm.variant.name,
        "surface": arm.experiment.surface,
        "created_at": datetime.now(UTC),
    }


def _load_variant(settings: Settings, model: str, previous: Runtime | None = None) -> Runtime:
    if model.startswith("models:/"):
        return load_runtime(replace(settings, model_dir=None, registry_uri=model), previous=previous)
    return load_runtime(settings, Path(model), previous=previous)


def _load_plan(settings: Settings, where: str) -> DiscountPlan:
    """A variant's plan; one that cannot be loaded stops start-up (a configuration error)."""
    if where.startswith("models:/"):
        plan = load_discount_plan(replace(settings, offers_dir=None, offers_uri=where))
    else:
        plan = load_discount_plan(replace(settings, offers_dir=Path(where)))
    if isinstance(plan, MissingPlan):
        raise ValueError(f"discount plan {where}: {plan.reason}")
    return plan


def apply_options(arm: Arm, request):  # noqa: ANN001, ANN201 - a ProductsRequest in, a copy out
    """The variant's serving options (CO2e weight, mode) override what the caller asked for."""
    opts = {k: v for k, v in arm.variant.serving.model_dump().items() if v is not None}
    return request.model_copy(update=opts) if opts else request


def diet_violations(rt: Runtime, shopper: Shopper, item_ids: list[str]) -> int:
    """Shown items the customer's hard exclusions forbid (the guardrail; must stay 0)."""
    if not item_ids or not shopper.profile.exclusions:
        return 0
    idx = rt.item_index(item_ids)
    allowed = rt.engine.allowed(shopper.profile)
    return int(sum(1 for x in idx if x < 0 or not allowed[x]))


def tag_products(
    arm: Arm, rt: Runtime, shopper: Shopper, body: bytes, started: float
) -> tuple[Response, Exposure]:
    """Add the experiment tag to a serialised products answer; the exposure to log for it."""
    answer = from_json(body)
    answer["experiment"] = arm.tag
    items = [i["item_id"] for i in answer["items"]]
    exposure = Exposure(
        customer_id=answer["customer_id"],
        recommendation_id=answer["recommendation_id"],
        model_version=answer["model_version"],
        items=len(items),
        diet_violations=diet_violations(rt, shopper, items),
        latency_ms=(time.perf_counter() - started) * 1000,
    )
    return Response(to_json(answer), media_type="application/json"), exposure


async def products_answer(service, arm: Arm, shopper: Shopper, job: ProductJob) -> Response:  # noqa: ANN001
    """A products answer under `arm`: the variant's options, its model (or the champion's batcher),
    tagged, and its exposure committed before it is returned."""
    started = time.perf_counter()
    job = ProductJob(apply_options(arm, job.request), job.override)
    if arm.runtime is None:
        rt, body = service.runtime, (await service.batcher.submit(job)).body
    else:
        rt = arm.runtime
        states = await service._states([job.request.customer_id])
        shopper = resolve(rt, shopper.customer_id, states[shopper.customer_id], job.override,
                          service.settings.default_consent)  # fmt: skip
        out = (await asyncio.to_thread(recommend_batch, rt, [job], states, service.settings.default_consent))[
            0
        ]
        if isinstance(out, Exception):
            raise out
        body = out
    response, exposure = tag_products(arm, rt, shopper, body, started)
    await service.experiments.record(arm, exposure)
    return response


async def expose(service, arm: Arm | None, answer, started: float, offer_cost: float = 0.0) -> None:  # noqa: ANN001
    """Commit the exposure of a recipes or discounts answer (pydantic model) served under `arm`."""
    if arm is None:
        return
    shown = getattr(answer, "recipes", None)
    if shown is None:
        shown = answer.discounts
    exposure = Exposure(
        customer_id=answer.customer_id,
        recommendation_id=answer.recommendation_id,
        model_version=answer.model_version,
        items=len(shown),
        offer_cost=offer_cost,
        latency_ms=(time.perf_counter() - started) * 1000,
    )
    await service.experiments.record(arm, exposure)


def variant_plan(arm: Arm | None, served: DiscountPlan) -> DiscountPlan:
    """The plan that answers under `arm`: the variant's own, else the one the service serves."""
    return arm.plan if arm is not None and arm.plan is not None else served


def holdout_answer(arm: Arm | None) -> Answer | None:
    """The no-discount holdout's answer, or None when the plan answers."""
    if arm is None or arm.variant.discount != "none":
        return None
    return Answer([], f"no offers this time (holdout of experiment {arm.experiment.name})", True)


def observations(events_url: str, experiment: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(exposures of `experiment`, feedback events of its exposed customers or quoting its ids),
    read from the event store for the report (`recsys experiment report`)."""
    from sqlalchemy import create_engine, or_, select

    from serving.events import events

    engine = create_engine(events_url)
    try:
        try:  # normally made by the event store's migration; a store that is down makes it later
            exposures.create(engine, checkfirst=True)
        except SQLAlchemyError as exc:
            logger.warning("exposure table not checked (event store unavailable: %s)", type(exc).__name__)
        with engine.connect() as conn:
            exp_rows = pd.read_sql(select(exposures).where(exposures.c.experiment == experiment), conn)
            ids = exposures.c.experiment == experiment
            who = select(exposures.c.customer_id).where(ids)
            recs = select(exposures.c.recommendation_id).where(ids)
            query = select(events).where(
                or_(events.c.customer_id.in_(who), events.c.recommendation_id.in_(recs))
            )
            ev_rows = pd.read_sql(query, conn)
    finally:
        engine.dispose()
    return exp_rows, ev_rows
