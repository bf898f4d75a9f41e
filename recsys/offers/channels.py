"""Channel and send hour per customer, learnt from the offer log (channel, hour, responded).

A separable empirical-Bayes model: expected response(customer, channel, hour) =
rate(customer, channel) x hour_profile(customer, hour) / rate(customer).

- rate(customer, channel): the customer's response rate on the channel, shrunk towards a prior (a
  Beta prior worth `prior_strength` offers): the channel's population rate, scaled by the customer's
  engagement on the channel when `signals` give it (app sessions, email opens, store visits);
- hour_profile(customer, hour): responses smoothed over send hours by a Gaussian kernel
  (`bandwidth` hours), shrunk towards a prior: the customer's overall rate, shaped as a bump around
  their usual shopping hour when `signals` give it; the ratio keeps channel and hour apart.

A few offers per customer say little alone: the signals carry most of the choice until the log grows.

`choose` picks, per customer, the consented channel and hour with the highest expected response; a
customer with no consented channel gets none (never a channel without consent).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CHANNELS: tuple[str, ...] = ("app_push", "email", "in_store")
HOURS: np.ndarray = np.arange(7, 23)


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

    def fit(self, log: pd.DataFrame, signals: pd.DataFrame | None = None) -> ChannelTimingModel:
        """`signals` (optional): customer_id, usual_hour and engagement_<channel> per channel."""
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
            eng = sig[[f"engagement_{c}" for c in self.channels]].to_numpy(float)
            known = ~np.isnan(eng).any(axis=1)
            lift = (eng + 1.0) / (np.nanmean(eng, axis=0) + 1.0)
            prior[known] = pop * lift[known]
            usual = sig["usual_hour"].to_numpy(float)
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
        self.hour_profile_ = (w_hits + a * overall[:, None] * hour_prior) / (w_sent + a)
        self.overall_ = overall
        return self

    def expected(self, customer_ids: pd.Series | np.ndarray) -> np.ndarray:
        """customers x channels x hours expected response; customers unseen in the log get the
        population's channel rates and a flat hour profile."""
        idx = self.customers_.get_indexer(pd.Index(customer_ids))
        known = idx >= 0
        rate = np.where(known[:, None], self.channel_rate_[idx], self.channel_rate_.mean(axis=0))
        profile = np.where(known[:, None], self.hour_profile_[idx] / self.overall_[idx, None], 1.0)
        return rate[:, :, None] * profile[:, None, :]

    def choose(self, customer_ids: pd.Series | np.ndarray, consent: np.ndarray) -> pd.DataFrame:
        """Per customer: channel (None without any consented channel), send hour and the expected
        response. `consent`: customers x channels booleans, in `channels` order."""
        consent = np.asarray(consent, dtype=bool)
        exp = self.expected(customer_ids)
        exp = np.where(consent[:, :, None], exp, -np.inf)
        flat = exp.reshape(len(exp), -1).argmax(axis=1)
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
