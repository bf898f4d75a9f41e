"""Channel and send hour per customer, learnt from the offer log (channel, hour, responded).

A separable empirical-Bayes model: expected response(customer, channel, hour) =
rate(customer, channel) x hour_profile(customer, hour) / rate(customer).

- rate(customer, channel): the customer's response rate on the channel, shrunk towards a prior (a
  Beta prior worth `prior_strength` offers): the channel's population rate, scaled by the customer's
  engagement on the channel when `signals` give it (events of the `engagement` table per channel,
  `engagement_signals`: pushes and emails opened, links clicked, store visits);
- hour_profile(customer, hour): responses smoothed over send hours by a Gaussian kernel
  (`bandwidth` hours), shrunk towards a prior: the customer's overall rate, shaped as a bump around
  their usual shopping hour when `signals` give it; the ratio keeps channel and hour apart, so the best
  hour of a customer is the same on every channel and only the channel follows consent.

A few offers per customer say little alone: the signals carry most of the choice until the log grows.

`choose` picks, per customer, the consented channel and hour with the highest expected response; a
customer with no consented channel gets none (never a channel without consent). Consent per channel
comes from `consent_matrix`: the customers table's `marketing_channels` (comma separated), where a
missing value means the single marketing flag covers every channel (older data and records).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from recsys.data.schema import MARKETING_CHANNELS
from recsys.offers.lifecycle import best_send_time

#: App push, email, in-store display: the offers and engagement tables' channel names.
CHANNELS: tuple[str, ...] = MARKETING_CHANNELS
HOURS: np.ndarray = np.arange(7, 23)


def consented_channels(marketing: bool, channels: str | Iterable[str] | None) -> frozenset[str]:
    """The channels a customer may receive offers on: none without marketing consent; every channel
    when only the marketing flag is on record (`channels` None); else the listed ones. ValueError
    names an unknown channel."""
    if not marketing:
        return frozenset()
    if channels is None:
        return frozenset(CHANNELS)
    names = [c.strip() for c in channels.split(",")] if isinstance(channels, str) else list(channels)
    names = [c for c in names if c]
    unknown = sorted(set(names) - set(CHANNELS))
    if unknown:
        raise ValueError(f"unknown channel(s) {unknown}; expected some of {list(CHANNELS)}")
    return frozenset(names)


def consent_matrix(customers: pd.DataFrame) -> np.ndarray:
    """customers x CHANNELS booleans, in row order (see `consented_channels`). ValueError names the row,
    field and value of an unreadable `marketing_channels`."""
    marketing = customers["consent_marketing"].fillna(False).astype(bool).to_numpy()
    listed = (
        customers["marketing_channels"].to_numpy(dtype=object)
        if "marketing_channels" in customers
        else np.full(len(customers), None, dtype=object)
    )
    out = np.zeros((len(customers), len(CHANNELS)), dtype=bool)
    out[marketing & pd.isna(listed)] = True
    for row in np.flatnonzero(marketing & ~pd.isna(listed)):
        try:
            chosen = consented_channels(True, str(listed[row]))
        except ValueError as exc:
            raise ValueError(
                f"customers row {row}: field 'marketing_channels' value {listed[row]!r}: {exc}"
            ) from None
        out[row] = [c in chosen for c in CHANNELS]
    return out


def offer_log(offers: pd.DataFrame | None) -> pd.DataFrame:
    """The model's log from the offers table: customer_id, channel, hour (of `sent_at`), responded
    (redeemed). Offers on other channels (mail) are not the model's to learn."""
    if offers is None or offers.empty:
        return pd.DataFrame({"customer_id": [], "channel": [], "hour": [], "responded": []})
    log = offers[offers["channel"].isin(CHANNELS) & offers["sent_at"].notna()]
    return pd.DataFrame(
        {
            "customer_id": log["customer_id"].astype(str).to_numpy(),
            "channel": log["channel"].astype(str).to_numpy(),
            "hour": pd.to_datetime(log["sent_at"]).dt.hour.to_numpy(),
            "responded": log["redeemed_at"].notna().to_numpy(),
        }
    )


def engagement_signals(
    engagement: pd.DataFrame | None, customer_ids: Iterable[str], since: pd.Timestamp, until: pd.Timestamp
) -> pd.DataFrame:
    """customer_id and engagement_<channel>: each customer's events per channel in [since, until)
    (every event counts one), for `customer_ids` and everyone with an event. Without an engagement
    table (`None`: the data has none, e.g. Complete Journey) the columns are missing values, so the
    model keeps the population's prior; with one, a customer without events counts 0 everywhere."""
    ids = pd.Index(pd.unique(np.asarray(list(customer_ids), dtype=object).astype(str)))
    columns = [f"engagement_{c}" for c in CHANNELS]
    if engagement is None:
        return pd.DataFrame({"customer_id": ids, **{c: np.nan for c in columns}})
    stamp = pd.to_datetime(engagement["timestamp"])
    rows = engagement[(stamp >= since) & (stamp < until) & engagement["channel"].isin(CHANNELS)]
    counts = pd.crosstab(rows["customer_id"].astype(str), rows["channel"]).reindex(columns=list(CHANNELS))
    ids = ids.append(pd.Index(counts.index).difference(ids))
    counts = counts.reindex(ids).fillna(0.0)
    counts.columns = columns
    return counts.rename_axis("customer_id").reset_index()


class ChannelTimingModel:
    """Fit on a log with customer_id, channel (one of `channels`), hour (0-23) and responded (bool)."""

    def __init__(
        self,
        channels: tuple[str, ...] = CHANNELS,
        hours: np.ndarray = HOURS,
        prior_strength: float = 20.0,
        bandwidth: float = 2.0,
    ):
        self.channels = channels
        self.hours = hours
        self.prior_strength = prior_strength
        self.bandwidth = bandwidth

    def get_params(self) -> dict[str, float]:
        return {"prior_strength": float(self.prior_strength), "bandwidth": float(self.bandwidth)}

    def fit(self, log: pd.DataFrame, signals: pd.DataFrame | None = None) -> ChannelTimingModel:
        """`signals` (optional): customer_id and, when known, usual_hour and engagement_<channel> per
        channel (`engagement_signals`); a missing column or value leaves that prior at the
        population's."""
        bad = ~log["channel"].isin(self.channels)
        if bad.any():
            raise ValueError(
                f"offer log row {int(np.flatnonzero(bad)[0])}: unknown channel {log['channel'][bad].iloc[0]!r}"
            )
        ids = pd.Index(pd.unique(log["customer_id"]))
        if signals is not None:
            ids = ids.append(pd.Index(signals["customer_id"]).difference(ids))
        codes = ids.get_indexer(log["customer_id"])
        self.customers_ = ids
        self.log_offers_ = len(log)
        n, k = len(ids), len(self.channels)
        ch = pd.Index(self.channels).get_indexer(log["channel"])
        y = log["responded"].to_numpy(float)
        sent = np.zeros((n, k))
        hits = np.zeros((n, k))
        np.add.at(sent, (codes, ch), 1.0)
        np.add.at(hits, (codes, ch), y)
        pop = (hits.sum(axis=0) + 1.0) / (sent.sum(axis=0) + 2.0)  # per channel
        a = self.prior_strength
        prior = np.tile(pop, (n, 1))
        hour_prior = np.ones((n, len(self.hours)))
        if signals is not None:
            sig = signals.set_index("customer_id").reindex(ids)
            columns = [f"engagement_{c}" for c in self.channels]
            eng = sig.reindex(columns=columns).to_numpy(float)
            lift = (eng + 1.0) / (np.nanmean(np.where(np.isnan(eng).all(axis=0), 0.0, eng), axis=0) + 1.0)
            prior = np.where(np.isnan(lift), prior, pop * lift)
            usual = sig.reindex(columns=["usual_hour"])["usual_hour"].to_numpy(float)
            has = ~np.isnan(usual)
            bump = np.exp(-0.5 * ((self.hours[None, :] - usual[has, None]) / self.bandwidth) ** 2)
            hour_prior[has] = bump / bump.mean(axis=1, keepdims=True)
        self.channel_rate_ = (hits + a * prior) / (sent + a)
        overall = (hits.sum(axis=1) + a * prior.mean(axis=1)) / (sent.sum(axis=1) + a)
        w = np.exp(
            -0.5 * ((log["hour"].to_numpy(float)[:, None] - self.hours[None, :]) / self.bandwidth) ** 2
        )
        w_sent = np.zeros((n, len(self.hours)))
        w_hits = np.zeros((n, len(self.hours)))
        np.add.at(w_sent, codes, w)
        np.add.at(w_hits, codes, w * y[:, None])
        profile = (w_hits + a * overall[:, None] * hour_prior) / (w_sent + a)
        self.hour_profile_ = profile / overall[:, None]
        return self

    def expected(self, customer_ids: pd.Series | np.ndarray | list) -> np.ndarray:
        """customers x channels x hours expected response; customers unseen in the log get the
        population's channel rates and a flat hour profile."""
        idx = self.customers_.get_indexer(pd.Index(customer_ids))
        known = idx >= 0
        rate = np.where(known[:, None], self.channel_rate_[idx], self.channel_rate_.mean(axis=0))
        profile = np.where(known[:, None], self.hour_profile_[idx], 1.0)
        return rate[:, :, None] * profile[:, None, :]

    def choose(self, customer_ids: pd.Series | np.ndarray | list, consent: np.ndarray) -> pd.DataFrame:
        """Per customer: channel (None without any consented channel), send hour and the expected
        response. `consent`: customers x channels booleans, in `channels` order."""
        consent = np.asarray(consent, dtype=bool).reshape(-1, len(self.channels))
        exp = self.expected(customer_ids)
        exp = np.where(consent[:, :, None], exp, -np.inf)
        flat = exp.reshape(len(exp), len(self.channels) * len(self.hours)).argmax(axis=1)
        ch, hr = np.divmod(flat, len(self.hours))
        any_consent = consent.any(axis=1)
        return pd.DataFrame(
            {
                "customer_id": np.asarray(customer_ids),
                "channel": np.where(any_consent, np.array(self.channels, dtype=object)[ch], None),
                "send_hour": np.where(any_consent, self.hours[hr], -1),
                "expected_response": np.where(any_consent, exp[np.arange(len(exp)), ch, hr], 0.0),
            }
        )

    # ---- persistence: one Parquet table, saved with the discount plan (recsys.offers.artifact) -----
    def to_frame(self) -> pd.DataFrame:
        """customer_id, rate_<channel> per channel and hour_<h> per hour: the fitted state."""
        return pd.DataFrame(
            {
                "customer_id": self.customers_.astype(str),
                **{f"rate_{c}": self.channel_rate_[:, j] for j, c in enumerate(self.channels)},
                **{f"hour_{h}": self.hour_profile_[:, j] for j, h in enumerate(self.hours)},
            }
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, params: dict[str, float] | None = None) -> ChannelTimingModel:
        """The model `to_frame` wrote; channels and hours are read from the column names."""
        channels = tuple(c.removeprefix("rate_") for c in frame.columns if c.startswith("rate_"))
        hours = np.array([int(c.removeprefix("hour_")) for c in frame.columns if c.startswith("hour_")])
        model = cls(channels, hours, **(params or {}))
        model.customers_ = pd.Index(frame["customer_id"].astype(str))
        model.channel_rate_ = frame[[f"rate_{c}" for c in channels]].to_numpy(float)
        model.hour_profile_ = frame[[f"hour_{h}" for h in hours]].to_numpy(float)
        return model


def plan_channels(
    plan: pd.DataFrame, model: ChannelTimingModel, customers: pd.DataFrame, weekday: pd.Series
) -> pd.DataFrame:
    """The plan with each offer's `channel` (the customer's best consented channel) and
    `best_send_time` ('Sat 18:00': the customer's usual weekday, `weekday` by customer id, at the
    model's best hour). Offers of a customer without any consented channel are dropped: no offer
    ever goes out on a channel without consent."""
    ids = pd.Index(pd.unique(plan["customer_id"].astype(str)))
    table = customers.assign(customer_id=customers["customer_id"].astype(str)).drop_duplicates(
        "customer_id", keep="last"
    )
    table = table.set_index("customer_id").reindex(ids).reset_index()
    table["consent_marketing"] = table["consent_marketing"].fillna(False).astype(bool)
    picks = model.choose(ids, consent_matrix(table)).set_index("customer_id")
    day = weekday.rename(index=str).reindex(ids)
    send = best_send_time(day, picks["send_hour"].clip(lower=0), lead_hours=0)
    cid = plan["customer_id"].astype(str)
    out = plan.assign(channel=cid.map(picks["channel"]).to_numpy(), best_send_time=cid.map(send).to_numpy())
    return out[out["channel"].notna()].reset_index(drop=True)
