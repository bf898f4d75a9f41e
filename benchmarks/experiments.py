"""Experiment-analysis benchmark: 1,000 seeded simulated experiments per scenario with a known truth
(lab/experiments.py), and Complete Journey for CUPED on real spend.

    .venv/bin/python benchmarks/experiments.py [--sims 1000] [--cj data/cj]

Checks (targets from issue 20): A/A false-positive rate with daily peeking 5% +- 1.5 points (the
group-sequential test; naive peeking at 1.96 is printed as the baseline it fixes); coverage of the
true lift by the 95% CI; CUPED variance reduction >= 30% on synthetic and on Complete Journey
(pre-period spend); empirical power vs the analytical value; a discount holdout recovers the true
incremental margin within its CI. Writes benchmarks/results/experiments.md/.csv and an MLflow run.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.report import log_run, machine_note, markdown_table, write_results  # noqa: E402
from lab.experiments import DiscountTruth, SimSpec, daily_moments, population_sd, simulate  # noqa: E402
from recsys.experiments.stats import (  # noqa: E402
    Moments,
    analytical_power,
    difference,
    relative_lift,
    sequential_test,
)

ALPHA = 0.05
CHUNK = 200  # simulated experiments per vectorised batch (memory ~ 100 MB)


def run_lift(spec: SimSpec, sims: int, seed: int) -> dict[str, np.ndarray]:
    """Per simulated experiment: final-look lift estimates (plain, CUPED), CI hits and decisions."""
    out: dict[str, list[np.ndarray]] = {}
    rng = np.random.default_rng(seed)
    for start in range(0, sims, CHUNK):
        draw = simulate(spec, min(CHUNK, sims - start), rng)
        c, t = daily_moments(draw, draw.spend, spec.days)
        for name, cuped in (("plain", False), ("cuped", True)):
            daily = relative_lift(c, t, ALPHA, cuped=cuped)
            final = relative_lift(_last(c), _last(t), ALPHA, cuped=cuped)
            seq = sequential_test(daily.z, spec.days, ALPHA)
            parts = {
                f"{name}_lift": final.estimate,
                f"{name}_covered": (final.lower <= spec.lift) & (spec.lift <= final.upper),
                f"{name}_fixed": final.p_value < ALPHA,
                f"{name}_naive_peek": (np.abs(daily.z) >= 1.959964).any(-1),
                f"{name}_sequential": seq.significant,
                f"{name}_se": final.se,
            }
            for k, v in parts.items():
                out.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v) for k, v in out.items()}


def _last(m: Moments) -> Moments:
    return Moments(*(getattr(m, f)[..., -1] for f in ("n", "sy", "syy", "sx", "sxx", "sxy")))


def run_discount(spec: SimSpec, sims: int, seed: int) -> dict[str, np.ndarray]:
    """Holdout vs plan: CI of the incremental margin per customer (CUPED) against the closed-form truth."""
    truth = spec.discount.true_margin()
    rng = np.random.default_rng(seed)
    est, covered, lower, upper = [], [], [], []
    for start in range(0, sims, CHUNK):
        draw = simulate(spec, min(CHUNK, sims - start), rng)
        c, t = daily_moments(draw, draw.margin(spec.discount.gross_margin), spec.days)
        d = difference(_last(c), _last(t), ALPHA, cuped=True)
        est.append(d.estimate)
        lower.append(d.lower)
        upper.append(d.upper)
        covered.append((d.lower <= truth) & (truth <= d.upper))
    return {
        "estimate": np.concatenate(est),
        "covered": np.concatenate(covered),
        "lower": np.concatenate(lower),
        "upper": np.concatenate(upper),
    }


def cj_cuped(cj: Path, sims: int, seed: int) -> dict[str, float]:
    """Complete Journey: spend per household in 14 days after a start date, CUPED with the 28 days
    before; variance reduction corr^2 and, over random A/A splits, of the lift estimator."""
    frame = pd.read_parquet(cj / "interactions.parquet", columns=["customer_id", "timestamp", "value"])
    start = pd.Timestamp("2017-07-01")
    pre_mask = (frame.timestamp >= start - pd.Timedelta(days=28)) & (frame.timestamp < start)
    post_mask = (frame.timestamp >= start) & (frame.timestamp < start + pd.Timedelta(days=14))
    customers = pd.Index(frame.customer_id.unique())
    x = frame[pre_mask].groupby("customer_id").value.sum().reindex(customers, fill_value=0.0).to_numpy()
    y = frame[post_mask].groupby("customer_id").value.sum().reindex(customers, fill_value=0.0).to_numpy()
    rng = np.random.default_rng(seed)
    arm = rng.random((sims, len(y))) < 0.5
    yy, xx = np.broadcast_to(y, arm.shape), np.broadcast_to(x, arm.shape)
    c = Moments.of(np.where(~arm, yy, 0.0), np.where(~arm, xx, 0.0))
    t = Moments.of(np.where(arm, yy, 0.0), np.where(arm, xx, 0.0))
    c = replace(c, n=(~arm).sum(-1).astype(float))
    t = replace(t, n=arm.sum(-1).astype(float))
    plain, cuped = relative_lift(c, t, ALPHA), relative_lift(c, t, ALPHA, cuped=True)
    return {
        "households": float(len(y)),
        "corr2": float(np.corrcoef(x, y)[0, 1] ** 2),
        "lift_var_reduction": float(1 - cuped.estimate.var() / plain.estimate.var()),
        "aa_fpr_cuped": float((cuped.p_value < ALPHA).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--customers", type=int, default=4000)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--cj", type=Path, default=Path("data/cj"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    base = SimSpec(customers=args.customers, days=args.days)
    rows: list[dict[str, object]] = []

    def row(check: str, measured: float, target: str, ok: bool, note: str = "") -> None:
        rows.append(
            {
                "check": check,
                "measured": measured,
                "target": target,
                "met": "yes" if ok else "NO",
                "note": note,
            }
        )

    aa = run_lift(base, args.sims, seed=1)
    for name in ("plain", "cuped"):
        fpr = aa[f"{name}_sequential"].mean()
        row(f"A/A FPR, sequential daily looks ({name})", fpr, "0.05 +- 0.015", abs(fpr - 0.05) <= 0.015)
    row("A/A FPR, naive daily peeking at 1.96 (baseline)", aa["plain_naive_peek"].mean(), "(inflated)", True)
    row(
        "A/A FPR, fixed horizon (plain)",
        aa["plain_fixed"].mean(),
        "0.05 +- 0.015",
        abs(aa["plain_fixed"].mean() - 0.05) <= 0.015,
    )

    lift = 0.08
    ab = run_lift(replace(base, lift=lift), args.sims, seed=2)
    for name in ("plain", "cuped"):
        cov = ab[f"{name}_covered"].mean()
        row(
            f"95% CI covers the true lift {lift:.0%} ({name})", cov, "0.95 +- 0.015", abs(cov - 0.95) <= 0.015
        )
    vr = 1 - ab["cuped_lift"].var() / ab["plain_lift"].var()
    row("CUPED variance reduction of the lift, synthetic", vr, ">= 0.30", vr >= 0.30)

    # power: a lift sized for ~80% fixed-horizon power of the plain test
    sd_c, sd_t = population_sd(replace(base, lift=lift), np.random.default_rng(3))
    mean_c = base.conversion * base.mean_spend
    n = base.customers / 2
    analytical = analytical_power(lift * mean_c, sd_c, sd_t, n, n, ALPHA)
    measured = ab["plain_fixed"].mean()
    row(
        "power, fixed horizon (plain) vs analytical",
        measured,
        f"{analytical:.3f} +- 0.03",
        abs(measured - analytical) <= 0.03,
    )
    row("power, sequential daily looks (plain)", ab["plain_sequential"].mean(), "(reported)", True)
    row("power, sequential daily looks (CUPED)", ab["cuped_sequential"].mean(), "(reported)", True)

    truth = DiscountTruth()
    disc_spec = replace(base, customers=20_000, treated_share=0.8, discount=truth)
    disc = run_discount(disc_spec, args.sims, seed=4)
    row(
        "discount holdout: CI covers the true incremental margin",
        disc["covered"].mean(),
        "0.95 +- 0.015",
        abs(disc["covered"].mean() - 0.95) <= 0.015,
        f"truth {truth.true_margin():.3f}/customer; first sim {disc['estimate'][0]:.3f} "
        f"[{disc['lower'][0]:.3f}, {disc['upper'][0]:.3f}]; mean {disc['estimate'].mean():.3f}",
    )
    first_ok = disc["lower"][0] <= truth.true_margin() <= disc["upper"][0]
    row("discount holdout: first experiment's CI holds the truth", float(first_ok), "1", bool(first_ok))

    if (args.cj / "interactions.parquet").exists():
        cj = cj_cuped(args.cj, args.sims, seed=5)
        row(
            "CUPED variance reduction, Complete Journey (corr^2)",
            cj["corr2"],
            ">= 0.30",
            cj["corr2"] >= 0.30,
            f"{cj['households']:.0f} households, 28 days pre, 14 days post 2017-07-01",
        )
        row(
            "CUPED variance reduction of the lift, CJ A/A splits",
            cj["lift_var_reduction"],
            ">= 0.30",
            cj["lift_var_reduction"] >= 0.30,
        )
        row(
            "A/A FPR on CJ splits (CUPED, fixed horizon)",
            cj["aa_fpr_cuped"],
            "0.05 +- 0.015",
            abs(cj["aa_fpr_cuped"] - 0.05) <= 0.015,
        )

    seconds = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    md = (
        f"# Experiment analysis benchmark\n\n{args.sims} seeded simulated experiments per scenario, "
        f"{args.customers} customers, {args.days} daily looks (lab/experiments.py); {seconds:.0f} s on "
        f"{machine_note()}.\n\n" + markdown_table(table, "{:.4f}") + "\n"
    )
    write_results(
        "experiments", md, table, headline=args.sims == 1000 and args.customers == 4000 and args.days == 14
    )
    metrics = {f"check_{i}": float(r["measured"]) for i, r in enumerate(rows)}
    log_run("experiments", vars(args), metrics)
    return 0 if all(r["met"] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
