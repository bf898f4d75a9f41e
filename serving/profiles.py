"""`/v1/customers/profile` (GET and POST): a customer's lifecycle profile, consent-aware.

The figures come from the library (`recsys.offers.profiles`, the planner's own lifecycle metrics),
computed from a data directory's purchase history when it is published into the event store
(serving/publish.py) and read by key with the rest of the customer's state. A customer without personalisation consent,
or erased, gets `profiled: false` and the reason: profiling is personalisation.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recsys.ranking.selection import Shopper
from serving.errors import ApiError
from serving.events import CustomerState


class ProfileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=128, description="pseudonymous loyalty customer id")


class ProfileResponse(BaseModel):
    customer_id: str
    profiled: bool = Field(description="false without personalisation consent, once erased")
    reason: str | None = Field(None, description="why there is no profile; null when there is one")
    as_of: str | None = Field(None, description="profiles describe the history before this day")
    segment: str | None = Field(
        None,
        description="new, lapsed, dropping sharply, dropping, stable or growing (visits vs own baseline)",
    )
    churn_risk: float | None = Field(None, description="P(no visit in the next weeks)")
    churn_tier: str | None = Field(None, description="loyal, watch, dropping or at risk (sets discount caps)")
    clv: float | None = Field(None, description="discounted expected future spend")
    avg_order_value: float | None = None
    frequency: float | None = Field(None, description="visits per week")
    weekly_spend: float | None = None
    recency_days: float | None = None
    best_send_time: str | None = Field(None, description="weekday and hour to send an offer")


def answer(cust: Shopper, state: CustomerState) -> ProfileResponse:
    """The published lifecycle profile of a resolved customer, or why there is none."""
    if state.erased:
        return ProfileResponse(customer_id=cust.customer_id, profiled=False, reason="customer erased")
    if not cust.personalised:
        reason = "no personalisation consent on record"
        return ProfileResponse(customer_id=cust.customer_id, profiled=False, reason=reason)
    if state.base is None:
        raise ApiError(404, f"unknown customer id {cust.customer_id!r}: no purchase history published")
    if state.lifecycle is None:
        return ProfileResponse(customer_id=cust.customer_id, profiled=False, reason="no purchases to profile")
    row: dict[str, Any] = json.loads(state.lifecycle)
    return ProfileResponse(
        customer_id=cust.customer_id,
        profiled=True,
        as_of=row.get("as_of"),
        segment=str(row["segment"]),
        churn_risk=_num(row["churn_risk"]),
        churn_tier=str(row["churn_tier"]),
        clv=_num(row["clv"]),
        avg_order_value=_num(row["avg_order_value"]),
        frequency=_num(row["frequency"]),
        weekly_spend=_num(row["weekly_spend"]),
        recency_days=_num(row["recency_days"]),
        best_send_time=None if row["best_send_time"] is None else str(row["best_send_time"]),
    )


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 4)
