"""PNG plots logged with every run: what a reviewer looks at before trusting a metric.

Each function writes one file and returns its path, or None when the data for it is absent (no CO2e
column, no segments), so a run on a catalog without CO2e still succeeds.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: jobs run on servers and in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from training.evaluation import EvaluationResult  # noqa: E402

CURVE_METRICS = ("ndcg", "recall", "hit_rate")


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def metric_curves(result: EvaluationResult, out: Path, title: str) -> Path | None:
    names = [m for m in CURVE_METRICS if any(key[0] == m for key in result.curves)]
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for (metric, track), curve in sorted(result.curves.items()):
            if metric != name:
                continue
            ks = sorted(curve)
            ax.plot(ks, [curve[k] for k in ks], marker="o", label=track)
        ax.set_title(f"{name}@k")
        ax.set_xlabel("k")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, out / "metric_at_k.png")


def popularity_bias(result: EvaluationResult, out: Path, title: str) -> Path | None:
    rec, truth = result.lists.get("rec_popularity"), result.lists.get("truth_popularity")
    if rec is None or truth is None or len(rec) == 0:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bins = np.linspace(0, max(float(rec.max()), float(truth.max()), 1e-6), 30)
    ax.hist(truth, bins=bins, alpha=0.5, density=True, label="bought in test")
    ax.hist(rec, bins=bins, alpha=0.5, density=True, label="recommended")
    ax.set_xlabel("item popularity (share of training customers who bought it)")
    ax.set_ylabel("density")
    ax.set_title(
        f"popularity bias: mean {rec.mean():.3f} recommended vs {truth.mean():.3f} bought", fontsize=9
    )
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, out / "popularity_bias.png")


def co2e_of_lists(result: EvaluationResult, out: Path, title: str) -> Path | None:
    rec, truth = result.lists.get("rec_co2e"), result.lists.get("truth_co2e")
    if rec is None or truth is None:
        return None
    rec, truth = rec[np.isfinite(rec)], truth[np.isfinite(truth)]
    if len(rec) == 0 or len(truth) == 0:
        return None
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bins = np.linspace(0, max(float(rec.max()), float(truth.max()), 1e-6), 30)
    ax.hist(truth, bins=bins, alpha=0.5, density=True, label="bought in test")
    ax.hist(rec, bins=bins, alpha=0.5, density=True, label="recommended")
    ax.set_xlabel("mean kg CO2e per kg over a customer's list")
    ax.set_title(f"CO2e of lists: {rec.mean():.2f} recommended vs {truth.mean():.2f} bought", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, out / "co2e_of_lists.png")


def segment_bars(result: EvaluationResult, out: Path, title: str) -> Path | None:
    if not result.segments:
        return None
    labels = list(result.segments)
    keys = sorted({k for seg in result.segments.values() for k in seg if k.startswith("ndcg")})
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / len(keys)
    x = np.arange(len(labels))
    for i, key in enumerate(keys):
        ax.bar(x + i * width, [result.segments[s].get(key, np.nan) for s in labels], width, label=key)
    ax.set_xticks(x + width * (len(keys) - 1) / 2, labels, fontsize=8)
    ax.set_xlabel("customer activity (training baskets)")
    ax.set_title("per-segment NDCG", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, out / "segments.png")


def all_plots(result: EvaluationResult, out: Path, title: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = [fn(result, out, title) for fn in (metric_curves, popularity_bias, co2e_of_lists, segment_bars)]
    return [p for p in made if p is not None]
