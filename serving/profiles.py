"""`/v1/customers/profile` (GET and POST): a customer's lifecycle profile, consent-aware.

The figures come from the library (`recsys.offers.profiles`, the planner's own lifecycle metrics),
computed once per loaded runtime from its data directory's purchase history, on the first request
(seconds on Complete Journey), then answered from memory. A customer without personalisation consent,
or erased, gets `profiled: false` and the reason: profiling is personalisation.
"""

from __future__ import annotations

import threading
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from recsys.ranking.selection import Shopper
from serving.errors import ApiError
from serving.runtime import Runtime


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


class ProfileBook:
    """Profiles of one runtime's customers, computed on first use (one at a time), keyed by model row."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._for: Runtime | None = None
        self._table: pd.DataFrame | None = None
        self._as_of: str | None = None

    def table(self, rt: Runtime) -> tuple[pd.DataFrame, str]:
        from recsys.offers.profiles import customer_profiles

        if rt.dataset is None:
            raise ApiError(404, "no customer data loaded (RECSYS_DATA_DIR): profiles need purchase history")
        with self._lock:
            if self._for is not rt:
                inter = rt.dataset.interactions
                frame = inter[["user_idx", "basket_id", "timestamp", "value", "discount"]].rename(
                    columns={"user_idx": "customer_id"}
                )
                as_of = frame["timestamp"].max().normalize() + pd.Timedelta(days=1)
                self._table, self._as_of, self._for = customer_profiles(frame, as_of), str(as_of.date()), rt
            return self._table, self._as_of  # type: ignore[return-value]


def answer(rt: Runtime, book: ProfileBook, cust: Shopper, erased: bool) -> ProfileResponse:
    if erased:
        return ProfileResponse(customer_id=cust.customer_id, profiled=False, reason="customer erased")
    if not cust.personalised:
        reason = "no personalisation consent on record"
        return ProfileResponse(customer_id=cust.customer_id, profiled=False, reason=reason)
    table, as_of = book.table(rt)
    users = rt.dataset.users  # type: ignore[union-attr]
    if cust.customer_id not in users:
        raise ApiError(404, f"unknown customer id {cust.customer_id!r}: no purchase history")
    idx = int(users.to_internal([cust.customer_id])[0])
    if idx not in table.index:
        return ProfileResponse(
            customer_id=cust.customer_id, profiled=False, reason="no purchases to profile", as_of=as_of
        )
    row: dict[str, Any] = table.loc[idx].to_dict()
    return ProfileResponse(
        customer_id=cust.customer_id,
        profiled=True,
        as_of=as_of,
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
