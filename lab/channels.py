"""Synthetic truth for the channel and hour of an offer: each customer's true channel affinity and
active hours, per-channel consent, and an offer log whose responses depend on both.

One truth for every use: the discount generator (`lab.synthetic`) draws its customers' channel world
here and logs its offers on their channels and hours, with the discount's uplift scaled by
`uplift_factor`; the channel benchmark draws the same world and scores policies by `true_response`.

Truth per customer: a type (app-first, email-first, in-store-first, or unresponsive to every channel)
setting the affinity a_c of each channel c in CHANNELS, and a peak active hour with a spread. The
chance an offer sent on channel c at hour h is acted on is base x a_c x hour_factor(h), with
hour_factor a Gaussian bump around the peak (an in-store display is seen while shopping, so it follows
the same active hours).

What the retailer observes besides the offer log: the usual shopping hour (the till's) and engagement
per channel, written as the canonical `engagement` table by `engagement_table` (one row per event).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.offers.channels import CHANNELS, HOURS  # one ladder of channels and hours

#: Customer types: (share, affinity per channel in CHANNELS order).
TYPES: dict[str, tuple[float, tuple[float, float, float]]] = {
    "app-first": (0.30, (1.0, 0.35, 0.30)),
    "email-first": (0.30, (0.30, 1.0, 0.35)),
    "in-store-first": (0.25, (0.25, 0.30, 1.0)),
    "none": (0.15, (0.05, 0.05, 0.05)),
}

#: Consent rate per channel (each drawn independently).
CONSENT_RATE: tuple[float, ...] = (0.55, 0.80, 0.90)

BASE_RESPONSE = 0.30

#: Mean engagement events per unit of affinity over the history.
ENGAGEMENT = 4.0

#: The event an engagement on each channel in CHANNELS is logged as: a push opened, an email opened,
#: a store visited.
ENGAGEMENT_EVENT: tuple[str, ...] = ("open", "open", "visit")


@dataclass(frozen=True)
class ChannelWorld:
    customers: (
        pd.DataFrame
    )  # customer_id, type, peak_hour, spread, usual_hour, consent_ and engagement_<channel>
    affinity: np.ndarray  # customers x channels, the true affinity (with per-customer noise)


def channel_world(
    n_customers: int,
    seed: int | list[int],
    marketing: np.ndarray | None = None,
    customer_ids: np.ndarray | None = None,
) -> ChannelWorld:
    """Every customer's true type, affinities, active hours and per-channel consent.

    `marketing` (the generator's marketing flag): consent only where it is on, and a customer with it
    on but no channel drawn consents to email, so the flag and the channels agree."""
    rng = np.random.default_rng(seed)
    names = list(TYPES)
    share = np.array([TYPES[t][0] for t in names])
    kind = rng.choice(len(names), n_customers, p=share / share.sum())
    base = np.array([TYPES[t][1] for t in names])[kind]
    affinity = np.clip(base * rng.lognormal(0.0, 0.25, base.shape), 0.0, 1.5)
    peak = np.clip(rng.normal(15.0, 4.0, n_customers), 7.0, 22.0)
    spread = rng.uniform(1.5, 4.0, n_customers)
    consent = rng.random((n_customers, len(CHANNELS))) < np.array(CONSENT_RATE)
    if marketing is not None:
        consent &= np.asarray(marketing, dtype=bool)[:, None]
        consent[np.asarray(marketing, dtype=bool) & ~consent.any(axis=1), CHANNELS.index("email")] = True
    # what the retailer observes besides the offer log: the usual shopping hour (from the till) and
    # engagement per channel over the history (app sessions, email opens, store visits)
    usual = np.clip(np.rint(peak + rng.normal(0.0, 1.0, n_customers)), 7, 22).astype(int)
    engagement = rng.poisson(ENGAGEMENT * affinity)
    customers = pd.DataFrame(
        {
            "customer_id": [f"K{i:05d}" for i in range(n_customers)]
            if customer_ids is None
            else customer_ids,
            "type": np.array(names)[kind],
            "peak_hour": peak,
            "spread": spread,
            "usual_hour": usual,
            **{f"consent_{c}": consent[:, j] for j, c in enumerate(CHANNELS)},
            **{f"engagement_{c}": engagement[:, j] for j, c in enumerate(CHANNELS)},
        }
    )
    return ChannelWorld(customers, affinity)


def true_response(world: ChannelWorld, rows: np.ndarray, channel: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """P(act on the offer) for customer rows sent on channel index `channel` at `hour`."""
    c = world.customers
    peak, spread = c["peak_hour"].to_numpy()[rows], c["spread"].to_numpy()[rows]
    bump = np.exp(-0.5 * ((hour - peak) / spread) ** 2)
    return BASE_RESPONSE * world.affinity[rows, channel] * (0.25 + 0.75 * bump)


def uplift_factor(world: ChannelWorld, rows: np.ndarray, channel: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """How much of a discount's uplift an offer on `channel` at `hour` realises: the true response
    over its mean under the logging policy (a consented channel and an hour, uniformly). 1 on average
    over logged offers, so the discount truth (`lab.synthetic`'s response) stays that of a logged send;
    the right channel and hour multiply it, the wrong ones shrink it."""
    consent = consent_matrix(world)[rows]
    n = len(rows)
    mean = np.zeros(n)
    for j in range(len(CHANNELS)):
        per_hour = [true_response(world, rows, np.full(n, j), np.full(n, h)) for h in HOURS]
        mean += np.where(consent[:, j], np.mean(per_hour, axis=0), 0.0)
    mean /= np.maximum(consent.sum(axis=1), 1)
    return true_response(world, rows, channel, hour) / np.maximum(mean, 1e-12)


def truth_table(world: ChannelWorld) -> pd.DataFrame:
    """Per customer: type, peak hour, spread and the true affinity per channel (synthetic truth)."""
    c = world.customers
    return pd.DataFrame(
        {
            "customer_id": c["customer_id"],
            "channel_type": c["type"],
            "peak_hour": c["peak_hour"],
            "hour_spread": c["spread"],
            **{f"affinity_{ch}": world.affinity[:, j] for j, ch in enumerate(CHANNELS)},
        }
    )


def consent_matrix(world: ChannelWorld) -> np.ndarray:
    """customers x channels: consent on record."""
    return world.customers[[f"consent_{c}" for c in CHANNELS]].to_numpy(bool)


def logging_policy(
    world: ChannelWorld, rows: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(channel index, hour) of logged sends to customer `rows`: a consented channel and a send hour,
    uniformly. Every row must have a consented channel."""
    consent = consent_matrix(world)[rows]
    weights = consent / consent.sum(axis=1, keepdims=True)
    channel = (rng.random(len(rows))[:, None] > np.cumsum(weights, axis=1)[:, :-1]).sum(axis=1)
    return channel, rng.choice(HOURS, len(rows))


def offer_log(world: ChannelWorld, per_customer: int, seed: int) -> pd.DataFrame:
    """A logged history: `per_customer` offers each under `logging_policy`, with the response drawn
    from the truth. Customers without any consent get none."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.flatnonzero(consent_matrix(world).any(axis=1)), per_customer)
    channel, hour = logging_policy(world, rows, rng)
    p = true_response(world, rows, channel, hour)
    return pd.DataFrame(
        {
            "customer_id": world.customers["customer_id"].to_numpy()[rows],
            "channel": np.array(CHANNELS)[channel],
            "hour": hour,
            "responded": rng.random(len(rows)) < p,
        }
    )


def oracle_choice(world: ChannelWorld) -> tuple[np.ndarray, np.ndarray]:
    """(channel index, hour) with the highest TRUE response among consented channels; -1 without any."""
    consent = consent_matrix(world)
    n = len(consent)
    best = np.full(n, -1.0)
    channel, hour = np.full(n, -1), np.full(n, HOURS[0])
    rows = np.arange(n)
    for j in range(len(CHANNELS)):
        for h in HOURS:
            p = np.where(consent[:, j], true_response(world, rows, np.full(n, j), np.full(n, h)), -1.0)
            better = p > best
            best, channel, hour = (
                np.where(better, p, best),
                np.where(better, j, channel),
                np.where(better, h, hour),
            )
    return channel, hour


def posterior_choice(world: ChannelWorld, log: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(channel index, hour) a model knowing the world's type mixture would pick from what the
    retailer observes (engagement, usual hour, the log): the consented channel of highest posterior
    mean affinity over the types (each type's affinities without the per-customer noise), sent at the
    usual hour. A reference for how much of the oracle's lift the observations allow."""
    from scipy.stats import poisson

    c = world.customers
    share = np.array([TYPES[t][0] for t in TYPES])
    affinity = np.array([TYPES[t][1] for t in TYPES])  # types x channels
    engagement = c[[f"engagement_{ch}" for ch in CHANNELS]].to_numpy()
    loglik = np.log(share)[None, :] + poisson.logpmf(
        engagement[:, None, :], ENGAGEMENT * affinity[None, :, :]
    ).sum(axis=2)
    rows = pd.Index(c["customer_id"]).get_indexer(log["customer_id"])
    channel = pd.Index(CHANNELS).get_indexer(log["channel"])
    usual = c["usual_hour"].to_numpy(float)
    mean_spread = 2.75  # the middle of the spreads drawn
    bump = np.exp(-0.5 * ((log["hour"].to_numpy(float) - usual[rows]) / mean_spread) ** 2)
    p = BASE_RESPONSE * affinity[:, channel].T * (0.25 + 0.75 * bump)[:, None]  # offers x types
    np.add.at(loglik, rows, np.where(log["responded"].to_numpy()[:, None], np.log(p), np.log1p(-p)))
    post = np.exp(loglik - loglik.max(axis=1, keepdims=True))
    expected = (post / post.sum(axis=1, keepdims=True)) @ affinity
    consent = consent_matrix(world)
    chosen = np.where(consent, expected, -1.0).argmax(axis=1)
    return np.where(consent.any(axis=1), chosen, -1), c["usual_hour"].to_numpy()


def engagement_table(
    world: ChannelWorld, start: pd.Timestamp, weeks: int, seed: int | list[int]
) -> pd.DataFrame:
    """The canonical `engagement` table of the world: each customer's `engagement_<channel>` events as
    rows (customer_id, channel, timestamp, event) at a random time of the `weeks` from `start`, so the
    counts per channel over that history are exactly the world's."""
    rng = np.random.default_rng(seed)
    c = world.customers
    counts = c[[f"engagement_{ch}" for ch in CHANNELS]].to_numpy(int)
    rows, channel = np.nonzero(counts)
    reps = counts[rows, channel]
    rows, channel = np.repeat(rows, reps), np.repeat(channel, reps)
    offset = rng.integers(0, weeks * 7 * 86400, len(rows)).astype("timedelta64[s]")
    frame = pd.DataFrame(
        {
            "customer_id": c["customer_id"].to_numpy()[rows].astype(str),
            "channel": np.array(CHANNELS, dtype=object)[channel],
            "timestamp": (np.datetime64(pd.Timestamp(start), "s") + offset).astype("datetime64[ns]"),
            "event": np.array(ENGAGEMENT_EVENT, dtype=object)[channel],
        }
    )
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
