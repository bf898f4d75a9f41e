"""The products endpoint's batch function: HTTP requests in, JSON bodies out.

Transport only: each request becomes a `ProductQuery` for a resolved `Shopper` (consent, live diet,
fresh events; `serving.customers`), one micro-batch goes through the library's one selection path
(`recsys.ranking.selection.ProductSelector.select`, the same call `recsys recommend`, the pyfunc and
the promotion gate make), and the answer is serialised straight from plain values.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from pydantic_core import to_json

from recsys.diet.profiles import DietProfile
from recsys.ranking.selection import ProductQuery, Selection, Shopper
from serving.customers import resolve
from serving.errors import ApiError
from serving.events import CustomerState
from serving.runtime import Runtime
from serving.schemas import ProductsRequest


@dataclass(frozen=True)
class ProductJob:
    request: ProductsRequest
    override: DietProfile | None  # parsed before batching so a bad diet is a 400 for that caller only


def query(req: ProductsRequest) -> ProductQuery:
    return ProductQuery(
        k=req.k,
        mode=req.mode,
        categories=None if req.categories is None else frozenset(req.categories),
        include=None if req.include is None else tuple(req.include),
        exclude=tuple(req.exclude or ()),
        store=req.store,
        co2_weight=req.co2_weight,
        basket=tuple(req.basket or ()),
    )


def check_filters(rt: Runtime, req: ProductsRequest) -> None:
    """Unknown categories or product ids in a filter are a 404 naming them, not a silent empty list:
    like an unknown store or item, they name something that is not there (Stripe's resource_missing);
    a 400 says the request itself is malformed, which a well-formed unknown id is not."""
    problems = []
    if req.categories:
        known = _known_categories(rt)
        unknown = sorted(set(req.categories) - known)
        if unknown:
            problems.append(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown[:5])}")
    if req.include:
        ids = list(dict.fromkeys(req.include))
        unknown = [i for i, x in zip(ids, rt.item_index(ids), strict=True) if x < 0]
        if unknown:
            problems.append(f"unknown product id(s) in include: {', '.join(unknown[:5])}")
    if problems:
        raise ApiError(404, "; ".join(problems))


_CATEGORIES: list[tuple[Runtime, frozenset[str]]] = []  # (runtime, its categories): the last one


def _known_categories(rt: Runtime) -> frozenset[str]:
    if not _CATEGORIES or _CATEGORIES[0][0] is not rt:
        _CATEGORIES[:] = [(rt, frozenset(str(c) for c in rt.categories if c))]
    return _CATEGORIES[0][1]


def recommend_batch(
    rt: Runtime,
    jobs: list[ProductJob],
    states: dict[str, CustomerState],
    default_consent: bool,
    degraded: dict[str, str] | None = None,
) -> list[bytes | Exception]:
    """One JSON body (bytes, a `ProductsResponse`) or one Exception per job.

    `degraded`: customers whose state could not be read live, and why (put in their answer)."""
    degraded = degraded or {}
    shoppers = [
        resolve(
            rt,
            j.request.customer_id,
            states.get(j.request.customer_id, CustomerState()),
            j.override,
            default_consent,
        )
        for j in jobs
    ]
    selections = rt.selector.select([query(j.request) for j in jobs], shoppers)
    return [
        sel
        if isinstance(sel, Exception)
        else response_json(rt, j.request, s, sel, degraded.get(j.request.customer_id))
        for j, s, sel in zip(jobs, shoppers, selections, strict=True)
    ]


def response_json(
    rt: Runtime, req: ProductsRequest, shopper: Shopper, sel: Selection, degraded: str | None = None
) -> bytes:
    """The `ProductsResponse` body, serialised straight from plain values (no per-item model objects
    on the hot path; tests validate the body against `ProductsResponse`)."""
    item_ids, names, categories, co2e = rt.item_ids, rt.names, rt.categories, rt.co2e
    fallback = shopper.fallback
    body = {
        "recommendation_id": uuid.uuid4().hex,
        "customer_id": req.customer_id,
        "model_version": rt.version,
        "personalised": shopper.personalised and fallback is None,
        "fallback": fallback,
        "diet": shopper.diet,
        "items": [
            {
                "item_id": str(item_ids[it]),
                "rank": r + 1,
                "score": s,
                "name": names[it],
                "category": categories[it],
                "reason": text,
                "reason_item_id": None if h is None else str(item_ids[h]),
                "co2e_per_kg": None if math.isnan(co2e[it]) else float(co2e[it]),
            }
            for r, (it, s, (text, h)) in enumerate(
                zip(sel.items.tolist(), sel.scores.tolist(), sel.reasons, strict=True)
            )
        ],
        "degraded": degraded,
    }
    return to_json(body)
