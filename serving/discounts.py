"""The discount plan /v1/discounts answers from: a trained, versioned artifact, loaded read-only at
start-up (and on /v1/admin/reload), never fitted in the service.

Source: the plan directory RECSYS_OFFERS_DIR, else the registry alias RECSYS_OFFERS_URI
(default models:/grocery-discount-planner@champion, written by `recsys offers` / `recsys pipeline`).
Without a plan the endpoint answers 404 with the reason; nothing else in the service depends on it.

The answer for one customer, the first rule that applies deciding:
1. erased through the service: no offers (a plan made before the erasure is never used for them);
2. no marketing consent on any channel (the live record: event store, else the data set, else the
   server default; the single marketing flag alone means every channel);
3. no personalisation consent: the offers are chosen from their purchase history;
4. not in the plan: no offers, with the plan's reason for leaving them out (no discount pays for
   itself, below the campaign's cut-off, ...) or, for customers the plan never considered (no
   purchase history in an eligible group when it was made, or joined since), "not in the current plan";
5. the plan's offers, best expected profit first, at most k, minus every offer whose product group
   does not comply with the customer's LIVE diet profile (`recsys.offers.eligibility`, at the share the
   plan was made with; an unknown attribute counts as forbidden). All removed: no offers, and why.
   Each offer goes out on the customer's best channel among those they consent to NOW, by the plan's
   channel model (recsys.offers.channels), at the plan's send time (its hour does not depend on the
   channel); never on a channel without consent.
Every rule only removes planned offers, so all served offers together cost at most the plan's expected
cost, which is at most its budget (checked when the plan is loaded).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.offers.artifact import META_FILE, PlanArtifact
from recsys.offers.eligibility import compliant_groups
from serving.errors import ApiError

logger = logging.getLogger("serving")

#: Fields of a planned offer that are served (DiscountItem).
OFFER_FIELDS: tuple[str, ...] = (
    "product_group",
    "discount_level",
    "expected_uplift",
    "expected_cost",
    "expected_profit",
    "reason",
    "best_send_time",
    "channel",
)


@dataclass(frozen=True)
class Answer:
    offers: list[dict[str, Any]]
    reason: str | None  # why there are no offers; None when there are some
    eligible: bool  # the customer may receive offers (consent, not erased)


@dataclass
class DiscountPlan:
    """A loaded plan artifact: per-customer offers and reasons, and the live diet check."""

    artifact: PlanArtifact
    version: str
    source: str
    _compliant: dict[frozenset[str], frozenset[str]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        plan = self.artifact.plan.sort_values(["customer_id", "expected_profit"], ascending=[True, False])
        records = plan.loc[:, ["customer_id", *OFFER_FIELDS]].to_dict("records")
        self.offers: dict[str, list[dict[str, Any]]] = {}
        for row in records:
            self.offers.setdefault(str(row.pop("customer_id")), []).append(row)
        no_offer = self.artifact.no_offer
        self.reasons: dict[str, str] = dict(
            zip(no_offer["customer_id"].astype(str), no_offer["reason"].astype(str), strict=True)
        )
        self.min_share = float(self.artifact.meta["min_compliant_share"])
        self.channel_model = self.artifact.channel_model()
        self.as_of = str(self.artifact.meta.get("as_of", "?"))

    def compliant(self, exclusions: frozenset[str]) -> frozenset[str]:
        """Product groups a profile's hard exclusions allow (cached per exclusion set)."""
        with self._lock:
            hit = self._compliant.get(exclusions)
        if hit is None:
            hit = compliant_groups(self.artifact.diet_patterns, exclusions, self.min_share)
            with self._lock:
                self._compliant[exclusions] = hit
        return hit

    def answer(self, customer: Any, erased: bool, k: int) -> Answer:
        """The rules of the module docstring for a resolved customer (serving.customers.Customer)."""
        if erased:
            return Answer([], "erased: offers from data before the erasure are never used", False)
        if not customer.consent_marketing:
            return Answer([], "no marketing consent on record", False)
        if not customer.personalised:
            return Answer([], "no personalisation consent: offers are chosen from purchase history", False)
        planned = self.offers.get(customer.customer_id)
        if not planned:
            why = self.reasons.get(customer.customer_id)
            if why is None:
                why = (
                    f"no purchase history in an eligible product group when it was made (as of "
                    f"{self.as_of}); the next plan considers them"
                )
            return Answer([], f"not in the current plan: {why}", True)
        exclusions = customer.profile.exclusions
        offers = planned
        if exclusions:
            allowed = self.compliant(exclusions)
            offers = [o for o in planned if o["product_group"] in allowed]
        if not offers:
            return Answer(
                [],
                f"the planned offers' product groups do not comply with the current diet "
                f"({', '.join(sorted(exclusions))})",
                True,
            )
        model = self.channel_model
        consent = [[c in customer.consent_channels for c in model.channels]]
        channel = model.choose([customer.customer_id], consent)["channel"].iloc[0]
        if channel is None:  # consent only to channels the model does not send on
            return Answer([], "no marketing consent on a channel offers are sent on", False)
        return Answer([{**o, "channel": channel} for o in offers[:k]], None, True)


@dataclass(frozen=True)
class MissingPlan:
    """No plan loaded: every discounts request answers 404 with this reason."""

    reason: str
    version: str = "none"


def require(plan: DiscountPlan | MissingPlan) -> DiscountPlan:
    if isinstance(plan, MissingPlan):
        raise ApiError(404, plan.reason)
    return plan


def read_plan_dir(path: Path, version: str | None = None, source: str | None = None) -> DiscountPlan:
    """A plan directory; its version is its name plus a digest of planner.json unless given."""
    artifact = PlanArtifact.load(path)
    if version is None:
        digest = hashlib.sha256((Path(path) / META_FILE).read_bytes()).hexdigest()[:8]
        version = f"{Path(path).name}-{digest}"
    return DiscountPlan(artifact, version, source or str(path))


def load_discount_plan(settings: Any) -> DiscountPlan | MissingPlan:
    """The configured plan. An explicit RECSYS_OFFERS_DIR that cannot be read stops start-up (a
    deployment error); a registry without a plan leaves the endpoint answering 404 with the reason."""
    if settings.offers_dir is not None:
        plan = read_plan_dir(Path(settings.offers_dir))
        logger.info("loaded discount plan %s from %s", plan.version, plan.source)
        return plan
    if settings.offers_uri is None:
        return MissingPlan("no discount plan configured: set RECSYS_OFFERS_DIR or RECSYS_OFFERS_URI")
    try:
        plan = _download(settings)
    except LookupError as exc:
        return MissingPlan(str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken plan must not stop product recommendations
        logger.exception("loading the discount plan from %s failed", settings.offers_uri)
        return MissingPlan(f"the discount plan at {settings.offers_uri} could not be loaded: {exc}")
    logger.info("loaded discount plan %s from %s", plan.version, plan.source)
    return plan


def _download(settings: Any) -> DiscountPlan:
    """Resolve the alias once to a version, then download exactly that version's plan directory."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from serving.runtime import parse_registry_uri

    name, alias = parse_registry_uri(settings.offers_uri)
    db = (
        settings.tracking_uri[len("sqlite:///") :] if settings.tracking_uri.startswith("sqlite:///") else None
    )
    if db is not None and not Path(db.split("?", 1)[0]).exists():
        raise LookupError(f"no discount plan: the MLflow store {db} does not exist (run 'recsys offers')")
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        raise LookupError(
            f"no discount plan registered as {settings.offers_uri}: run 'recsys offers' to make one"
        ) from None
    dst = Path(tempfile.mkdtemp(prefix=f"recsys-{name}-v{mv.version}-"))
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{mv.version}", dst_path=str(dst), tracking_uri=settings.tracking_uri
        )
    )
    found = sorted(local.rglob(META_FILE))
    if not found:
        raise ValueError(f"{settings.offers_uri} (v{mv.version}) holds no {META_FILE}")
    return read_plan_dir(found[0].parent, f"{name}/{mv.version}", f"{settings.offers_uri} (v{mv.version})")
