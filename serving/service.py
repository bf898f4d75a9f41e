"""The BentoML service: one typed class, versioned routes, pydantic request/response models.

Start-up loads the model (RECSYS_MODEL_DIR, else the MLflow alias models:/grocery-recommender@champion)
into an immutable `Runtime`, and the discount plan, a separate trained artifact, read-only
(serving/discounts.py); `/v1/admin/reload` builds new ones and swaps the references, so requests
in flight finish on the old snapshot. Products requests go through a micro-batcher, so concurrent
requests are scored with one matrix product. Customer state (consent, diet, recent purchases, fresh
events, erasure) is read by key from the event store for every batch, through a bounded cache that
every replica invalidates per customer (serving/state_cache.py): a worker holds the model and the
catalog, never the customer tables, and every worker and replica sees the same truth.

Each body is one JSON object (positional-only `req` = root input). Expected failures come back as
`{"error": reason}` with a 4xx status, never as a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any

import bentoml
import numpy as np
import prometheus_client
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import JSONResponse, Response

from serving import logs
from serving.accept import share_accepts
from serving.auth import check_key
from serving.batching import MicroBatcher
from serving.checkout import CheckoutLedger, settle_checkout
from serving.config import Settings, flag
from serving.customers import diet_profile, resolve
from serving.discounts import DiscountPlan, MissingPlan, load_discount_plan, require
from serving.erasure_secret import rekey_at_start
from serving.errors import ApiError, to_response
from serving.events import CustomerRecord, CustomerState, EventStore, NewEvent
from serving.experiments import Experiments, expose, holdout_answer, products_answer, variant_plan
from serving.limits import InputLimits, flatten_detail
from serving.openapi import ApiDocs
from serving.products import ProductJob, check_filters, recommend_batch
from serving.profiles import ProfileRequest, ProfileResponse
from serving.profiles import answer as profile_answer
from serving.publish import publish_if_new
from serving.reload import ModelSource, active_source, load_active, record_active, resolve_source
from serving.runtime import Runtime, load_runtime
from serving.schemas import (
    CheckoutRequest,
    CheckoutResponse,
    ConsentRequest,
    CustomerResponse,
    DiscountItem,
    DiscountsRequest,
    DiscountsResponse,
    EraseRequest,
    EraseResponse,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    ItemScore,
    ItemsResponse,
    MissingProduct,
    ProductsRequest,
    ProductsResponse,
    RecipeItem,
    RecipesRequest,
    RecipesResponse,
    ReloadRequest,
    ReloadResponse,
    SimilarRequest,
    SubstitutesRequest,
)
from serving.state_cache import make_bus
from serving.store_guard import GuardedStore, StoreUnavailable

logger = logging.getLogger("serving")

#: Passed to library calls instead of a customer id when the customer must be treated as unknown
#: (no consent, erased): no IdMap contains it, so the library takes its non-personalised path.
ANONYMOUS = "\x00anonymous"

# prometheus_client directly (bentoml.metrics is deprecated); BentoML's /metrics collects them, next
# to its own per-endpoint latency histograms (bentoml_service_request_duration_seconds).
MODEL_INFO = prometheus_client.Gauge(
    "recsys_model_info",
    "1 for the model version this worker serves (label model_version)",
    labelnames=["model_version", "model"],
    multiprocess_mode="livemax",
)
BATCH_SIZE = prometheus_client.Histogram(
    "recsys_products_batch_size",
    "products requests scored together in one batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

health = FastAPI(title="health")
profile_get = FastAPI(title="profile")  # GET /v1/customers/profile (BentoML APIs are POST only)


@profile_get.exception_handler(RequestValidationError)
async def _bad_query(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A missing or malformed query parameter: 400 with the body every other route gives, not 422."""
    return JSONResponse(flatten_detail({"detail": list(exc.errors())}), status_code=400)


logs.install()


WORKERS = int(os.environ.get("RECSYS_WORKERS") or 1)
if WORKERS > 1 and flag(os.environ.get("RECSYS_SHARE_ACCEPTS"), True):
    share_accepts()


@bentoml.asgi_app(health, path="/v1/health")
@bentoml.asgi_app(profile_get, path="/v1/customers")
@bentoml.service(
    name="recsys",
    traffic={"timeout": 30},
    # One worker by default: every worker holds its own copy of the model (a reload recorded in
    # RECSYS_ACTIVE_MODEL_FILE is followed by the others); customer state is in the event store.
    workers=WORKERS,
    logging={"access": {"enabled": flag(os.environ.get("RECSYS_ACCESS_LOG"), True)}},
    # URL patterns OpenTelemetry skips, comma separated. The products hot path is untraced by default:
    # a span per request costs more CPU than the recommendation itself (and is dropped unless an
    # exporter is configured). RECSYS_TRACING_EXCLUDED_URLS="" traces everything.
    tracing={"excluded_urls": os.environ.get("RECSYS_TRACING_EXCLUDED_URLS", "/v1/products")},
)
class RecsysService:
    """Grocery personalisation over HTTP: products, items, recipes, discounts, feedback, customers."""

    def __init__(self) -> None:
        self.settings = Settings.from_env()
        # The store is connected lazily and guarded: the service starts and reads without it.
        # Customer state is read from it by key through a bounded cache, invalidated across
        # replicas by the cache bus (serving/state_cache.py).
        self.store = EventStore(
            self.settings.events_url,
            timeout=max(self.settings.store_timeout, 1.0),
            cache_size=self.settings.state_cache_size,
            bus=make_bus(self.settings.cache_bus_url, self.settings.cache_channel),
        )
        self.guard = GuardedStore(
            self.store,
            self.settings.store_timeout,
            self.settings.store_retry_after,
            last_known=self.settings.state_cache_size,
        )
        # connect, migrate and publish a data dir not published yet, waiting a little for it:
        # start-up never fails on the store
        self.published: str | None = None  # digest of the data set whose customers the store holds
        self._publish_lock = threading.Lock()
        self.store.on_connect(self._publish)
        connecting = threading.Thread(target=self.guard.connect, name="recsys-store-connect", daemon=True)
        connecting.start()
        connecting.join(timeout=5.0)
        if self._publish_lock.locked():  # the store answered and the data dir is being published:
            connecting.join(timeout=300.0)  # serve once customers are known (ready says so meanwhile)
        self.ledger = CheckoutLedger(self.settings.events_url)  # checkouts + redemptions (checkout.py)
        self.runtime: Runtime
        self.runtime, self._active_id = load_active(self.settings)
        rekey_at_start(self.store, self.runtime)  # erasures from before keyed hashes (erasure_secret.py)
        # the discount plan: a trained artifact, loaded read-only (serving/discounts.py)
        self.discount_plan: DiscountPlan | MissingPlan = load_discount_plan(self.settings)
        self.experiments = Experiments(self.settings, self.store.engine)  # RECSYS_EXPERIMENTS_DIR
        self._switch_lock = threading.Lock()  # one reload at a time, from a request or a follower
        self._publish_version(None, self.runtime)
        # Not ready (503 on /v1/health/ready and /readyz) until the lazy parts are built: a load
        # balancer then never sends traffic that would wait behind seconds of warm-up.
        self._warm = threading.Event()
        if self.settings.warm_up:
            threading.Thread(target=self._warm_up, name="recsys-warm", daemon=True).start()
        else:
            freeze_heap()
            self._warm.set()
        self._stopping = threading.Event()
        if self.settings.active_model_file is not None and self.settings.active_model_poll > 0:
            threading.Thread(target=self._follow_reloads, name="recsys-follow", daemon=True).start()
        self.batcher = MicroBatcher(
            self._products_batch,
            self.settings.max_batch_size,
            on_batch=BATCH_SIZE.observe,
            inline_max_size=self.settings.inline_batch_size,
            prepare=self._batch_states,
        )

    # ---- plumbing -------------------------------------------------------------------------------
    def _publish(self) -> None:
        """On every (re)connect: the data dir's customer state into the store unless it holds it."""
        with self._publish_lock:
            try:
                publish_if_new(self.store, self.settings.data_dir)
            except SQLAlchemyError:
                raise  # the store failed: connecting again will publish again
            except Exception:  # noqa: BLE001 - a data dir that cannot be read must not stop serving
                logger.exception("customer data in %s not published", self.settings.data_dir)
            self.published = self.store.published()
        if self.published is None:
            logger.warning("starting without customer data: %s", NO_CUSTOMER_DATA)

    def _warm_up(self) -> None:
        try:
            self.runtime.warm()
            freeze_heap()
        finally:
            self._warm.set()

    def _auth(self, ctx: bentoml.Context, kind: str) -> None:
        self._auth_headers(ctx.request.headers, kind)

    def _auth_headers(self, headers: Any, kind: str) -> None:
        if kind != "read" or self.settings.read_requires_key:
            check_key(headers, self.settings.api_keys, kind)  # kind = the scope needed

    async def _guard(self, ctx: bentoml.Context, kind: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Auth, then the handler; expected failures become a JSON 4xx with a reason."""
        try:
            self._auth(ctx, kind)
            return await call()
        except Exception as exc:  # noqa: BLE001 - mapped to a status by to_response
            response = to_response(exc)
            ctx.response.status_code = response.status_code  # BentoML copies it onto the response
            return response

    def _publish_version(self, old: Runtime | None, new: Runtime) -> None:
        if old is not None:
            MODEL_INFO.labels(model_version=old.version, model=old.model.name).set(0)
        MODEL_INFO.labels(model_version=new.version, model=new.model.name).set(1)

    async def _states(self, customer_ids: list[str]) -> dict[str, CustomerState]:
        """Live state for a write (StoreUnavailable -> 503 when the store cannot be read)."""
        return await self.guard.acall(self.store.states, customer_ids)

    async def _read_state(self, customer_id: str) -> tuple[CustomerState, str | None]:
        """State for a read: live, else last known / fail-closed, with why (serving/store_guard.py)."""
        states, why = await self.guard.astates([customer_id])
        return states[customer_id], why.get(customer_id)

    async def _batch_states(self, jobs: list[ProductJob]) -> tuple[dict[str, CustomerState], dict[str, str]]:
        """The batch's customer states, awaited on the loop before the batch runs (store_guard)."""
        return await self.guard.astates([j.request.customer_id for j in jobs])

    def _products_batch(
        self, jobs: list[ProductJob], prepared: tuple[dict[str, CustomerState], dict[str, str]]
    ) -> list[Response | Exception]:
        """Runs in a worker thread; serialises too, so the event loop only moves bytes."""
        rt = self.runtime  # one snapshot for the whole batch, even if a reload lands meanwhile
        states, degraded = prepared
        results = recommend_batch(rt, jobs, states, self.settings.default_consent, degraded)
        return [
            r if isinstance(r, Exception) else Response(r, media_type="application/json") for r in results
        ]

    def _customer(self, rt: Runtime, customer_id: str, state: CustomerState, diet: list[str] | None):
        return resolve(rt, customer_id, state, diet_profile(diet), self.settings.default_consent)

    # ---- products and items ---------------------------------------------------------------------
    @bentoml.api(route="/v1/products")
    async def products(self, req: ProductsRequest, /, ctx: bentoml.Context) -> ProductsResponse:
        """Products for a customer: buy-again/discover/mixed, diet-safe, filtered, CO2e-aware, explained."""

        async def call() -> ProductsResponse:
            job = ProductJob(req, diet_profile(req.diet))  # unknown diet -> 400 before batching
            check_filters(self.runtime, req)  # unknown categories / include ids -> 404 naming them
            if self.experiments.configs:
                state, degraded = await self._read_state(req.customer_id)
                shopper = self._customer(self.runtime, req.customer_id, state, req.diet)
                # no experiment traffic while the store is out: its exposures could not be committed
                arm = None if degraded else self.experiments.arm("products", shopper)
                if arm is not None:
                    return await products_answer(self, arm, shopper, job)
            return await self.batcher.submit(job)

        return await self._guard(ctx, "read", call)

    @bentoml.api(route="/v1/items/similar")
    async def similar(self, req: SimilarRequest, /, ctx: bentoml.Context) -> ItemsResponse:
        """Items bought by the same customers (or close in the model's item space); 404 for an unknown item."""

        async def call() -> ItemsResponse:
            rt = self.runtime
            profile = diet_profile(req.diet)
            allowed = None if profile is None else rt.engine.allowed(profile)
            frame = await asyncio.to_thread(rt.model.similar_items, [req.item_id], req.k, allowed)
            return ItemsResponse(
                item_id=req.item_id,
                model_version=rt.version,
                diet=[] if profile is None else sorted(profile.exclusions),
                items=_item_scores(rt, frame["similar_item_id"], frame["score"], None),
            )

        return await self._guard(ctx, "read", call)

    @bentoml.api(route="/v1/items/substitutes")
    async def substitutes(self, req: SubstitutesRequest, /, ctx: bentoml.Context) -> ItemsResponse:
        """Compliant swaps for an item (same type first, then same category) under a diet."""

        async def call() -> ItemsResponse:
            rt = self.runtime
            if rt.item_index([req.item_id])[0] < 0:
                raise ApiError(404, f"unknown product id {req.item_id!r}")
            profile = diet_profile(req.diet)
            if profile is None and req.customer_id is not None:
                state, _ = await self._read_state(req.customer_id)
                profile = self._customer(rt, req.customer_id, state, None).profile
            personalizer = _need(rt.personalizer, "substitutes")
            frame = await asyncio.to_thread(personalizer.substitutes, req.item_id, profile, req.k)
            return ItemsResponse(
                item_id=req.item_id,
                model_version=rt.version,
                diet=[] if profile is None else sorted(profile.exclusions),
                items=_item_scores(rt, frame["item_id"], frame["score"], frame.get("reason")),
            )

        return await self._guard(ctx, "read", call)

    # ---- recipes and discounts ------------------------------------------------------------------
    @bentoml.api(route="/v1/recipes")
    async def recipes(self, req: RecipesRequest, /, ctx: bentoml.Context) -> RecipesResponse:
        """Diet-safe recipes, few steps first, with the products the customer still has to buy."""

        async def call() -> RecipesResponse:
            started, rt = time.perf_counter(), self.runtime
            state, degraded = await self._read_state(req.customer_id)
            cust = self._customer(rt, req.customer_id, state, req.diet)
            arm = None if degraded else self.experiments.arm("recipes", cust)
            if arm is not None and arm.runtime is not None:  # the variant's model answers
                rt = arm.runtime
                cust = self._customer(rt, req.customer_id, state, req.diet)
            personalizer = _need(rt.personalizer, "recipes")
            # at home: the basket, what was bought since (events) and in the data's last weeks
            recent = list(state.recent_items) if cust.personalised else []
            basket = list(req.basket or []) + [str(rt.item_ids[i]) for i in cust.fresh] + recent
            frame = await asyncio.to_thread(
                personalizer.recommend_recipes,
                req.customer_id if cust.personalised and cust.user_idx >= 0 else ANONYMOUS,
                req.k,
                cust.profile,
                req.max_steps,
                req.max_minutes,
                basket,
                req.store,
                req.pantry_at_home,
            )
            answer = RecipesResponse(
                recommendation_id=_rec_id(),
                customer_id=req.customer_id,
                model_version=rt.version,
                personalised=cust.personalised and cust.fallback is None,
                diet=cust.diet,
                recipes=[_recipe_item(rt, row) for row in frame.to_dict("records")],
                experiment=None if arm is None else arm.tag,
                degraded=degraded,
            )
            await expose(self, arm, answer, started)
            return answer

        return await self._guard(ctx, "read", call)

    @bentoml.api(route="/v1/discounts")
    async def discounts(self, req: DiscountsRequest, /, ctx: bentoml.Context) -> DiscountsResponse:
        """The current plan's offers for a customer: product groups, discount levels, when to send;
        within the plan's budget and the customer's live consent and diet (serving/discounts.py)."""

        async def call() -> DiscountsResponse:
            started, plan = time.perf_counter(), require(self.discount_plan)  # 404 without a plan
            rt = self.runtime
            state, degraded = await self._read_state(req.customer_id)
            cust = self._customer(rt, req.customer_id, state, None)
            arm = None if state.erased or degraded else self.experiments.arm("discounts", cust)
            plan = variant_plan(arm, plan)
            answer = holdout_answer(arm) or plan.answer(cust, state.erased, req.k)
            response = DiscountsResponse(
                recommendation_id=_rec_id(),
                customer_id=req.customer_id,
                model_version=plan.version,
                eligible=answer.eligible,
                discounts=[_discount_item(row) for row in answer.offers],
                reason=answer.reason,
                experiment=None if arm is None else arm.tag,
                degraded=degraded,
            )
            await expose(self, arm, response, started, sum(d.expected_cost for d in response.discounts))
            return response

        return await self._guard(ctx, "read", call)

    @bentoml.api(route="/v1/checkout")
    async def checkout(self, req: CheckoutRequest, /, ctx: bentoml.Context) -> CheckoutResponse:
        """The planned discounts that apply to a finished basket, recorded once per idempotency key
        (a replay answers the same; another basket under a used key is a 409; serving/checkout.py)."""

        async def call() -> Response:
            plan = require(self.discount_plan)
            rt = self.runtime
            state = (await self._states([req.customer_id]))[req.customer_id]
            cust = self._customer(rt, req.customer_id, state, None)
            try:
                body = await asyncio.to_thread(
                    settle_checkout, self.ledger, plan, rt, cust, state.erased, req
                )
            except SQLAlchemyError as exc:  # nothing was recorded: the till retries with the same key
                raise StoreUnavailable(
                    f"event store: {type(exc).__name__}", self.settings.store_retry_after
                ) from exc
            return Response(body, media_type="application/json")

        return await self._guard(ctx, "write", call)

    # ---- feedback and customers -----------------------------------------------------------------
    @bentoml.api(route="/v1/feedback")
    async def feedback(self, req: FeedbackRequest, /, ctx: bentoml.Context) -> FeedbackResponse:
        """Store events (acknowledged after COMMIT); purchases and add-to-cart change the next answer."""

        async def call() -> FeedbackResponse:
            rt = self.runtime
            for e in req.events:
                if e.item_id is None and e.event_type != "offer_redeemed":
                    raise ApiError(400, f"{e.event_type} event needs an item_id")
                if e.item_id is None and not (e.offer_id or e.product_group):
                    raise ApiError(400, "offer_redeemed event needs an offer_id or product_group")
            unknown = sorted({e.item_id for e in req.events if e.item_id is not None} - _known(rt, req))
            if unknown:
                raise ApiError(404, f"unknown product id(s): {', '.join(unknown[:5])}")
            ids = sorted({e.customer_id for e in req.events})
            states = await self._states(ids)
            consent = {
                c: self._customer(rt, c, states[c], None).personalised for c in ids
            }  # no consent: not stored
            keep = [
                NewEvent(**e.model_dump(exclude_none=False)) for e in req.events if consent[e.customer_id]
            ]
            stored = await self.guard.acall(self.store.add_events, keep)
            return FeedbackResponse(stored=stored, skipped_no_consent=len(req.events) - stored)

        return await self._guard(ctx, "write", call)

    @bentoml.api(route="/v1/customers/consent")
    async def consent(self, req: ConsentRequest, /, ctx: bentoml.Context) -> CustomerResponse:
        """Record consent and diet; withdrawing personalisation consent deletes the stored events."""

        async def call() -> CustomerResponse:
            from recsys.diet.profiles import parse_exclusions, parse_preferences
            from recsys.offers.channels import consented_channels

            diet_profile(req.diet)  # validates names before anything is stored
            if req.diet_preferences:
                parse_preferences(req.diet_preferences)
            if req.consent_marketing is False and req.marketing_channels:
                raise ApiError(400, "consent_marketing is false but marketing_channels lists channels")
            # channels listed: consent on exactly those; none listed: the flag means every channel
            listed = None if req.marketing_channels is None else ",".join(sorted(set(req.marketing_channels)))
            marketing = bool(req.consent_marketing) if listed is None else bool(listed)
            state = (await self._states([req.customer_id]))[req.customer_id]
            # No diet in the request keeps the current one: a consent update must never silently
            # drop a vegan's or a coeliac's exclusions. An explicit [] clears it.
            old = state.record or (None if state.erased else state.base)
            exclusions = (
                ",".join(req.diet) if req.diet is not None else (old.diet_exclusions if old else None)
            )
            preferences = (
                req.diet_preferences
                if req.diet_preferences is not None
                else (old.diet_preferences if old else None)
            )
            record = CustomerRecord(
                req.customer_id,
                req.consent_personalisation,
                marketing,
                exclusions or None,
                preferences or None,
                listed,
            )
            await self.guard.acall(self.store.upsert_customer, record)
            if not req.consent_personalisation:
                await self.guard.acall(self.store.delete_events, req.customer_id)
            return CustomerResponse(
                customer_id=req.customer_id,
                consent_personalisation=req.consent_personalisation,
                consent_marketing=marketing,
                marketing_channels=sorted(consented_channels(marketing, listed)),
                diet=sorted(parse_exclusions(exclusions)),
            )

        return await self._guard(ctx, "write", call)

    @bentoml.api(route="/v1/customers/erase")
    async def erase(self, req: EraseRequest, /, ctx: bentoml.Context) -> EraseResponse:
        """Right to erasure: delete events and profile; the id is unknown from now on (model rows hidden)."""

        async def call() -> EraseResponse:
            await self.guard.acall(self.ledger.erase, req.customer_id)  # checkouts, redemptions
            n_events, had_profile = await self.guard.acall(self.store.erase, req.customer_id)
            await self.guard.acall(self.experiments.forget, req.customer_id)
            return EraseResponse(
                customer_id=req.customer_id, events_deleted=n_events, profile_deleted=had_profile
            )

        return await self._guard(ctx, "write", call)

    @bentoml.api(route="/v1/customers/profile")
    async def profile(self, req: ProfileRequest, /, ctx: bentoml.Context) -> ProfileResponse:
        """Lifecycle profile: segment, churn risk and tier, CLV, AOV, visit frequency, best send time."""
        return await self._guard(ctx, "read", lambda: self._profile(req.customer_id))

    @profile_get.get("/profile", response_model=ProfileResponse)
    async def profile_by_get(
        self, customer_id: Annotated[str, Query(min_length=1, max_length=128)], request: Request
    ) -> ProfileResponse | JSONResponse:
        """GET form of /v1/customers/profile (?customer_id=...)."""
        try:
            self._auth_headers(request.headers, "read")
            return await self._profile(ProfileRequest(customer_id=customer_id).customer_id)
        except Exception as exc:  # noqa: BLE001 - mapped to a status by to_response
            return to_response(exc)

    async def _profile(self, customer_id: str) -> ProfileResponse:
        state, _ = await self._read_state(customer_id)  # store out: the fail-closed stand-in
        return profile_answer(self._customer(self.runtime, customer_id, state, None), state)

    # ---- admin ----------------------------------------------------------------------------------
    @bentoml.api(route="/v1/admin/reload")
    async def reload(self, req: ReloadRequest, /, ctx: bentoml.Context) -> ReloadResponse:
        """Load the champion, a registry version/alias or a model dir under RECSYS_MODEL_ROOT, validate
        it (422 when corrupt: the old model keeps serving) and swap it in atomically, with the
        experiment variants' models loaded again from their configured sources."""

        async def call() -> ReloadResponse:
            source: ModelSource = resolve_source(self.settings, req.model_dir, req.version)  # 4xx first
            old, new = await asyncio.to_thread(self._switch, source)
            return ReloadResponse(previous_version=old.version, model_version=new.version, source=new.source)

        return await self._guard(ctx, "admin", call)

    def _switch(self, source: ModelSource, follow: str | None = None) -> tuple[Runtime, Runtime] | None:
        """Build the runtime of `source` beside the serving one and swap it in (one reference
        assignment); record it, unless following the record `follow` (a reload id) another worker
        made. Returns (old, new); None when `follow` is what this worker already serves."""
        with self._switch_lock:
            if follow is not None and follow == self._active_id:
                return None
            with short_gil_slices(), collector_paused():
                old = self.runtime
                new, variants = _load_candidate(self.settings, source, old, self.experiments)
                plan = load_discount_plan(self.settings)
                if self.settings.warm_up:
                    new.warm()  # ready before it takes traffic
                reload_id = follow or record_active(self.settings, source)
                self.runtime = new  # the swap: one reference assignment
                self.experiments.runtimes = variants
                self.discount_plan = plan
                self._active_id = reload_id
                self._publish_version(old, new)
            return old, new

    @bentoml.on_shutdown
    def _stop_following(self) -> None:
        self._stopping.set()

    def _follow_reloads(self) -> None:
        """Every RECSYS_ACTIVE_MODEL_POLL seconds: if another worker or replica recorded a reload
        (RECSYS_ACTIVE_MODEL_FILE, shared), make the same one here, so no worker keeps serving the
        old model until its restart. A record that does not load is logged once and not retried."""
        while not self._stopping.wait(self.settings.active_model_poll):
            try:
                source, reload_id = active_source(self.settings)
                if reload_id is None or reload_id == self._active_id:
                    continue
                done = self._switch(source, follow=reload_id)
                if done is not None:
                    logger.info("followed reload %s: now serving %s", reload_id, done[1].version)
            except ApiError as exc:
                logger.error("reload %s recorded by another worker not followed: %s", reload_id, exc.args[0])
                self._active_id = reload_id
            except Exception:  # noqa: BLE001 - the follower must outlive any one bad record
                logger.exception("following the active model record failed")

    # ---- health ---------------------------------------------------------------------------------
    @health.get("/live", response_model=HealthResponse)
    def live(self) -> HealthResponse:
        return HealthResponse(status="ok", model_version=self.runtime.version)

    @health.get("/ready", response_model=HealthResponse)
    def ready(self) -> HealthResponse | JSONResponse:
        """503 while warming up or publishing the data dir's customers; 200 'degraded' without the
        event store: reads still answer (marked degraded) and every replica shares the store, so
        taking them all out would only add an outage."""
        version = self.runtime.version
        if not self._warm.is_set() or self._publish_lock.locked():
            why = "warming up" if not self._warm.is_set() else "publishing customer data"
            body = HealthResponse(status="unavailable", model_version=version, detail=why)
            return JSONResponse(body.model_dump(), status_code=503)
        problem = self.guard.status()
        if problem:
            return HealthResponse(
                status="degraded", model_version=version, detail=problem, event_store=problem
            )
        detail = None if self.published is not None else NO_CUSTOMER_DATA
        return HealthResponse(status="ok", model_version=version, event_store="ok", detail=detail)

    def __is_ready__(self) -> bool:
        return self._warm.is_set()


# 415 / 413 / duplicate keys / documented 400 bodies, before BentoML parses anything
RecsysService.add_asgi_middleware(InputLimits)

RecsysService.add_asgi_middleware(ApiDocs, service=RecsysService)  # /docs, /docs.json, / (openapi.py)

NO_CUSTOMER_DATA = (
    "no customer data published in the event store (RECSYS_DATA_DIR unset, no 'recsys publish'): "
    "consent and diets come only from consent records, so customers without one get "
    "non-personalised lists"
)

# ---- small helpers ------------------------------------------------------------------------------


@contextlib.contextmanager
def short_gil_slices(seconds: float = 0.0005) -> Iterator[None]:
    """While a reload computes in a thread, make it hand the GIL over 10x sooner (default 5 ms).

    Each time the event loop wakes on a socket it must wait for the GIL; a busy thread keeps it for
    the whole switch interval, and a request needs several wake-ups, so a reload in progress
    otherwise multiplies request latency (the convoy effect). Reloads are serialised by their lock.
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic garbage collection while a reload builds its runtime; what it built is frozen after.

    A collection is one pass over the tracked objects that never lets go of the GIL; one that starts
    while a reload allocates (or `freeze_heap`'s full collection) stalls every request for its
    whole length. Afterwards only the young generations are collected (what was allocated meanwhile:
    a failed candidate's cycles, requests' garbage), then the survivors, the new runtime among them,
    are frozen like the start-up heap. The replaced runtime is freed by reference counting once its
    last request finishes; reference cycles inside it, if any, stay frozen: the price of never
    stalling requests on a full collection.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.collect(1)
        gc.freeze()
        if enabled:
            gc.enable()


def freeze_heap() -> None:
    """Move the loaded model, catalog and caches out of the garbage collector's sight.

    A full collection walks every container object; with the runtime loaded that took ~115 ms on
    the benchmark data, an occasional stop-the-world pause in the middle of serving (p99). Frozen
    objects are never traversed; they are still freed by reference counting. Run at start-up, before
    traffic (a reload uses `collector_paused` instead: this full collection is itself such a pause).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _load_candidate(
    settings: Settings, source: ModelSource, old: Runtime, experiments: Experiments
) -> tuple[Runtime, dict[tuple[str, str], Runtime]]:
    """The reload candidate and the experiment variants' models, or ApiError 422 if one cannot load
    (the current models all keep serving)."""
    try:
        return load_runtime(settings, source, previous=old), experiments.reload_models(settings)
    except ApiError:  # e.g. 404: no such registry version
        raise
    except Exception as exc:  # noqa: BLE001 - whatever is wrong with the candidate, refuse it
        logger.warning("reload of %s refused: %s", source, exc)
        raise ApiError(422, f"model not loaded ({exc}); still serving {old.version}") from exc


def _rec_id() -> str:
    return uuid.uuid4().hex


def _need(component: Any, what: str) -> Any:
    if component is None:
        raise ApiError(501, f"{what} are not available in this build")
    return component


def _known(rt: Runtime, req: FeedbackRequest) -> set[str]:
    ids = sorted({e.item_id for e in req.events if e.item_id is not None})
    idx = rt.item_index(ids)
    return {i for i, x in zip(ids, idx, strict=True) if x >= 0}


def _item_scores(rt: Runtime, item_ids: Any, scores: Any, reasons: Any) -> list[ItemScore]:
    ids = [str(i) for i in item_ids]
    idx = rt.item_index(ids)
    why = list(reasons) if reasons is not None else [None] * len(ids)
    return [
        ItemScore(
            item_id=i,
            rank=r + 1,
            score=float(s),
            name=rt.names[x] if x >= 0 else None,
            category=rt.categories[x] if x >= 0 else None,
            reason=None if w is None else str(w),
        )
        for r, (i, x, s, w) in enumerate(zip(ids, idx, list(scores), why, strict=True))
    ]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(",") if v]
    return list(np.asarray(value, dtype=object).ravel()) if not isinstance(value, list) else value


def _recipe_item(rt: Runtime, row: dict[str, Any]) -> RecipeItem:
    ingredients = [str(x) for x in _as_list(row.get("missing_ingredients"))]
    products = [None if x is None else str(x) for x in _as_list(row.get("missing_product_ids"))]
    products += [None] * (len(ingredients) - len(products))
    missing = []
    for ingredient, pid in zip(ingredients, products, strict=False):
        x = rt.item_index([pid])[0] if pid else -1
        missing.append(
            MissingProduct(ingredient=ingredient, item_id=pid, name=rt.names[x] if x >= 0 else None)
        )
    return RecipeItem(
        recipe_id=str(row["recipe_id"]),
        title=str(row.get("name") or row.get("title") or row["recipe_id"]),
        rank=int(row["rank"]),
        score=float(row["score"]),
        steps=_int_or_none(row.get("steps")),
        minutes=_int_or_none(row.get("minutes")),
        missing=missing,
        ingredients=list(row.get("ingredients") or []),
        instructions=[str(x) for x in row.get("instructions") or []],
    )


def _discount_item(row: dict[str, Any]) -> DiscountItem:
    send = row.get("best_send_time")
    return DiscountItem(
        product_group=str(row["product_group"]),
        discount_level=float(row["discount_level"]),
        expected_uplift=float(row["expected_uplift"]),
        expected_cost=float(row["expected_cost"]),
        expected_profit=float(row["expected_profit"]),
        reason=str(row.get("reason") or ""),
        best_send_time=None if send is None else str(send),
        channel=row.get("channel"),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None or np.isnan(float(value)) else int(value)
    except (TypeError, ValueError):
        return None
