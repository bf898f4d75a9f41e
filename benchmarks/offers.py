"""Discount-policy benchmark: the planner vs the oracle, uniform campaigns and references on synthetic
data with known truth; off-policy estimates and response calibration; Complete Journey checks.

    .venv/bin/python benchmarks/offers.py [--cj data/cj]           # headline: 5,000 customers, seeds 0-4
    .venv/bin/python benchmarks/offers.py --weeks 52 --lookback 52  # a variant: MLflow run, no files

The headline run (about 3 minutes on a quiet 2-core machine, twice that on a busy one) writes
benchmarks/results/offers.md and offers.csv and logs an MLflow run (benchmarks/report.py); any other
setting (history length, lookback, logged offers, customers, seeds, exploration) is a variant, logged
as an MLflow run in the experiment benchmark-offers and printed, never written to results/.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.report import log_run, markdown_table, write_results  # noqa: E402
from lab.evaluation import (  # noqa: E402
    calibration_report,
    off_policy_estimates,
    policy_comparison,
    true_curves,
    true_score,
    truth_rows,
)
from lab.posterior import posterior_curves  # noqa: E402
from lab.synthetic import (  # noqa: E402
    generate,
    observable_response,
    observable_share,
    true_response_probability,
)
from lab.synthetic_catalog import GROUPS  # noqa: E402
from recsys.offers.planner import DiscountPlanner  # noqa: E402

OUT = Path(__file__).parent / "results"
CUSTOMERS = 5000  # the headline run's customer base and seeds; other choices are history runs
SEEDS = [0, 1, 2, 3, 4]


def score_on_curves(planner: DiscountPlanner, data, curves: np.ndarray, budget: float):
    """TRUE score of the plan made, with no cost margin, from `curves` (candidates x levels) instead
    of the model's curves."""
    c = planner.candidates_
    alloc = planner.plan_on_curves(curves, budget, cost_factor=1.0)
    true = true_curves(planner, data.truth["response"])
    return true_score(alloc.choice, true, c["value"].to_numpy(), c["margin"].to_numpy(), planner.levels)


def score_on_parameters(planner: DiscountPlanner, data, rows: pd.DataFrame, budget: float):
    """`score_on_curves` from response-curve parameters `rows` (one per candidate, the truth table's
    columns)."""
    return score_on_curves(planner, data, true_response_probability(rows, np.asarray(planner.levels)), budget)


def hindsight_margin_plan(planner: DiscountPlanner, curves: np.ndarray, data, budget: float, steps: int = 14):
    """(cost factor, TRUE score) of the plan on `curves` whose cost factor is the smallest that keeps
    the TRUE cost within the budget, found by bisection on [0.7, 1.6]. It needs the truth, so it is no
    policy: it shows how far the choices go when the budget margin is exact, apart from how well the
    margin is measured."""
    true = true_curves(planner, data.truth["response"])
    c = planner.candidates_
    value, margin = c["value"].to_numpy(), c["margin"].to_numpy()

    def score(factor: float):
        alloc = planner.plan_on_curves(curves, budget, cost_factor=factor)
        return true_score(alloc.choice, true, value, margin, planner.levels)

    lo, hi = 0.7, 1.6
    best = score(lo)
    if best.cost <= budget:
        return lo, best
    best = score(hi)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        trial = score(mid)
        lo, hi, best = (lo, mid, trial) if trial.cost <= budget else (mid, hi, best)
    return hi, best


HINDSIGHT = "model, hindsight cost margin"
POSTERIOR = "posterior reference"
POSTERIOR_HINDSIGHT = "posterior reference, hindsight cost margin"


def posterior_columns(sub: pd.DataFrame, budget: float) -> dict:
    """Summary columns of the posterior reference from one budget's comparison rows (indexed by policy)."""
    oracle = sub.loc["oracle (true curves)", "true_profit"]
    return {
        "posterior reference / oracle": sub.loc[POSTERIOR, "true_profit"] / oracle,
        "its true cost / budget (posterior)": sub.loc[POSTERIOR, "true_cost"] / budget,
        "posterior, hindsight margin / oracle": sub.loc[POSTERIOR_HINDSIGHT, "true_profit"] / oracle,
    }


def _comparison_row(comp: pd.DataFrame, budget: float, policy: str, score, factor: float) -> dict:
    """One `policy_comparison` row (plus the cost factor) for a plan scored outside it."""
    at = (comp["budget"] == budget) & (comp["policy"] == "oracle (true curves)")
    oracle = float(comp.loc[at, "true_profit"].iloc[0])
    return {
        "budget": budget,
        "policy": policy,
        "true_profit": score.profit,
        "true_cost": score.cost,
        "planned_cost": np.nan,
        "offers": score.offers,
        "share_of_oracle": score.profit / oracle if oracle > 0 else np.nan,
        "cost_factor": factor,
    }


def hindsight_rows(planner: DiscountPlanner, data, comp: pd.DataFrame, budgets: list[float]) -> pd.DataFrame:
    """`hindsight_margin_plan` at each budget as `policy_comparison` rows (plus its cost factor)."""
    rows = []
    for b in budgets:
        factor, s = hindsight_margin_plan(planner, planner.curves_, data, b)
        rows.append(_comparison_row(comp, b, HINDSIGHT, s, factor))
    return pd.DataFrame(rows)


def posterior_rows(planner: DiscountPlanner, data, comp: pd.DataFrame, budgets: list[float]) -> pd.DataFrame:
    """The posterior reference (`lab.posterior`): a plan on the posterior-expected true curves, with no
    margin (its expected costs are unbiased) and with the hindsight margin, at each budget."""
    reference = posterior_curves(
        data, planner.candidates_, planner.as_of_, np.asarray(planner.levels), seed=data.seed
    )
    rows = []
    for b in budgets:
        rows.append(_comparison_row(comp, b, POSTERIOR, score_on_curves(planner, data, reference, b), 1.0))
        factor, s = hindsight_margin_plan(planner, reference, data, b)
        rows.append(_comparison_row(comp, b, POSTERIOR_HINDSIGHT, s, factor))
    return pd.DataFrame(rows)


def persona_mean_rows(planner: DiscountPlanner, data) -> pd.DataFrame:
    """The true baseline with persona x drift MEAN uplift parameters: what a model could reach if it
    knew every customer's persona but not their individual noise."""
    rows = truth_rows(data.truth["response"], planner.candidates_).merge(
        data.truth["customers"][["customer_id", "persona", "drift"]], on="customer_id", how="left"
    )
    for col in ("uplift_max", "uplift_half"):
        rows[col] = rows.groupby(["persona", "drift"])[col].transform("mean")
    return rows


def _function_rows(
    planner: DiscountPlanner, data, base_logit: np.ndarray, deal: np.ndarray, drop: np.ndarray
) -> pd.DataFrame:
    """Response-curve rows from the generator's response FUNCTION (`observable_response`, times the
    mean hidden-noise factor) at the given inputs, one row per candidate."""
    rows = truth_rows(data.truth["response"], planner.candidates_)
    cust = data.truth["customers"].set_index("customer_id")
    trait = rows["customer_id"].map(cust["deal_proneness"]).to_numpy(float)
    true_drop = rows["customer_id"].map(cust["visit_drop_end"]).to_numpy(float)
    allowed = rows["uplift_max"].to_numpy() > 0
    noise_mean = rows["uplift_max"].sum() / observable_response(trait, true_drop)[0][allowed].sum()
    height, half = observable_response(deal, drop)
    return rows.assign(
        base_logit=base_logit,
        uplift_max=np.where(allowed, height * noise_mean, 0.0),
        uplift_half=np.clip(half, 0.02, 0.4),
    )


def estimated_input_rows(planner: DiscountPlanner, data) -> pd.DataFrame:
    """The generator's response FUNCTION fed, like the model, only inputs estimated from history: the
    model's own no-discount baseline, its deal share (mapped onto the trait by the least-squares line,
    fitted on the truth) and its visit-drop estimate. A plug-in reference, not a bound (a model fitted
    on noisy inputs can beat plugging them into the true function): if a plan on these rows does no
    better than the model, the response FORM is not what limits the plan."""
    cust = data.truth["customers"].set_index("customer_id")
    feats = planner.features_
    observed = feats["deal_proneness"].fillna(feats["deal_proneness"].mean()).to_numpy(float)
    trait = planner.candidates_["customer_id"].map(cust["deal_proneness"]).to_numpy(float)
    slope, intercept = np.polyfit(observed, trait, 1)
    p0 = np.clip(planner.curves_[:, 0], 1e-9, 1 - 1e-9)
    return _function_rows(
        planner,
        data,
        np.log(p0) - np.log1p(-p0),
        np.clip(intercept + slope * observed, 0.0, 1.0),
        feats["visit_drop"].fillna(0.0).to_numpy(float),
    )


def observable_truth_rows(planner: DiscountPlanner, data) -> pd.DataFrame:
    """The same function fed the TRUE observable inputs (baseline, deal-proneness trait, visit drop):
    only the hidden per-customer noise is unknown, so a plan on these rows shows what perfect input
    estimates could reach."""
    cust = data.truth["customers"].set_index("customer_id")
    ids = planner.candidates_["customer_id"]
    truth = truth_rows(data.truth["response"], planner.candidates_)
    return _function_rows(
        planner,
        data,
        truth["base_logit"].to_numpy(float),
        ids.map(cust["deal_proneness"]).to_numpy(float),
        ids.map(cust["visit_drop_end"]).to_numpy(float),
    )


def relevance_uniform(planner: DiscountPlanner, data, budgets: list[float]) -> pd.DataFrame:
    """Uniform level for everyone, candidates taken in relevance order (largest share of the customer's
    spend first, at most max_per_customer per customer) until the TRUE expected cost reaches the budget."""
    curves, c = true_curves(planner, data.truth["response"]), planner.candidates_
    value, margin = c["value"].to_numpy(), c["margin"].to_numpy()
    top = c.groupby("customer_id", sort=False).cumcount().to_numpy() < planner.max_per_customer
    order = np.flatnonzero(top)[np.argsort(-c["grp_share"].to_numpy()[top], kind="stable")]
    rows = []
    for b in budgets:
        o = true_score(planner.plan_on_curves(curves, b).choice, curves, value, margin, planner.levels)
        for col in range(1, len(planner.levels)):
            lv = float(planner.levels[col])
            cost = lv * value[order] * curves[order, col]
            take = order[np.cumsum(cost) <= b * (1 - 1e-12)]
            choice = np.full(len(c), -1)
            choice[take] = col
            s = true_score(choice, curves, value, margin, planner.levels)
            rows.append(
                {
                    "budget": b,
                    "policy": f"uniform {lv:.0%} (relevance order)",
                    "true_profit": s.profit,
                    "true_cost": s.cost,
                    "planned_cost": s.cost,
                    "offers": s.offers,
                    "share_of_oracle": s.profit / o.profit if o.profit > 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _ratio(planner: DiscountPlanner) -> str:
    r = getattr(planner, "cost_ratio_", None)
    if not r:
        return "n/a"
    return f"{r['ratio']:.3f} +- {r['se']:.3f}, 90% upper bound {r['upper']:.3f}, {r['offers']:,} offers"


def compare_policies(
    n_customers: int,
    seed: int,
    weeks: int = 26,
    lookback: int | None = None,
    offers_per_customer: float = 8.0,
    explore: float = 0.0,
):
    """Synthetic data, a fitted planner and every policy's TRUE profit and cost at 25/50/100% of the
    oracle's unconstrained spend: (data, planner, comparison table, budgets)."""
    data = generate(
        n_customers=n_customers,
        n_products=3000,
        weeks=weeks,
        seed=seed,
        offers_per_customer=offers_per_customer,
    )
    margins = {g.category: g.margin for g in GROUPS}
    options = {} if lookback is None else {"lookback_weeks": lookback}
    planner = DiscountPlanner(margin=margins, explore=explore, **options).fit(data.tables)
    full = planner.plan_on_curves(true_curves(planner, data.truth["response"]), 1e12).cost
    budgets = [round(f * full, 2) for f in (0.25, 0.5, 1.0)]
    comp = policy_comparison(planner, data.truth["response"], budgets, seed=seed)
    comp.loc[comp["policy"] == "model policy", "cost_factor"] = planner.cost_factor_
    comp = pd.concat(
        [
            comp,
            relevance_uniform(planner, data, budgets),
            hindsight_rows(planner, data, comp, budgets),
            posterior_rows(planner, data, comp, budgets),
        ],
        ignore_index=True,
    )
    comp = comp.sort_values(["budget"], kind="stable").reset_index(drop=True)
    return data, planner, comp, budgets


def synthetic(n_customers: int, seed: int) -> tuple[list[str], list[pd.DataFrame]]:
    md, frames = [], []
    start = time.perf_counter()
    data, planner, comp, budgets = compare_policies(n_customers, seed)
    full = budgets[-1]
    persona_rows, input_rows = persona_mean_rows(planner, data), estimated_input_rows(planner, data)
    observed_rows = observable_truth_rows(planner, data)
    ceiling = {b: score_on_parameters(planner, data, persona_rows, b).profit for b in budgets}
    limit = {b: score_on_parameters(planner, data, input_rows, b) for b in budgets}
    perfect = {b: score_on_parameters(planner, data, observed_rows, b) for b in budgets}
    fit_s = time.perf_counter() - start

    md.append(
        f"## Synthetic: {n_customers:,} customers, 26 weeks of history (planner lookback "
        f"{planner.lookback_weeks} weeks), seed {seed} ({fit_s:.0f}s)\n"
    )
    md.append(
        f"Logged offers used for training: {len(planner.training_frame_):,}; candidates "
        f"{len(planner.candidates_):,} (top {planner.n_groups} diet-allowed groups per consenting customer); "
        f"max {planner.max_per_customer} offers per customer; tier rules on; response model "
        f"{type(planner.response_).__name__}; planned cost = expected cost x {planner.cost_factor_:.3f} "
        f"(measured on held-out logged offers, the best half by predicted return on cost: realised/predicted "
        f"discount cost {_ratio(planner)}; "
        "floored at 1), then a second pass spends what the plan left of the budget. Observable drivers explain "
        f"{observable_share(data):.0%} of the variance of the true uplift height. Budgets = 25/50/100% of the "
        f"oracle's unconstrained expected discount cost ({full:.0f}). Profit and cost are TRUE expected "
        "values from the generator's response curves; 'planned cost' is what the plan expected. 'Known "
        "function, estimated inputs': a plan (no cost margin) made with the generator's TRUE response "
        "function fed the model's estimated inputs (its baseline, deal share and visit drop), with its true "
        "cost: a plug-in reference for how far a better response FORM alone could go. 'Known function, true "
        "inputs': the same function fed the TRUE baseline, deal-proneness trait and visit drop (only the hidden "
        "noise unknown): what perfect input estimates could reach. 'Hindsight margin': the model's own "
        "curves planned with the cost factor that, known only from the truth, makes the plan's true cost "
        "meet the budget (`hindsight_margin_plan`): the model's choices apart from how well its budget "
        "margin is measured. 'Posterior reference' (`lab.posterior`): a plan on the TRUE response "
        "function averaged over each candidate's posterior given the same tables and the generator's own "
        "priors, and also GIVEN each customer's persona and basket size: the Bayes plan, which no policy "
        "using the data beats in expectation. It plans with no margin (its expected costs are unbiased) and "
        "again with the hindsight margin.\n"
    )
    summary = []
    for b in budgets:
        sub = comp[comp["budget"] == b].set_index("policy")
        uni = sub[sub.index.str.startswith("uniform")]
        best_uni = uni["true_profit"].idxmax()
        m, o = sub.loc["model policy"], sub.loc["oracle (true curves)"]
        summary.append(
            {
                "budget": b,
                "model profit": m["true_profit"],
                "oracle profit": o["true_profit"],
                "model / oracle": m["true_profit"] / o["true_profit"],
                "hindsight margin: model / oracle": sub.loc[HINDSIGHT, "true_profit"] / o["true_profit"],
                "hindsight cost factor": sub.loc[HINDSIGHT, "cost_factor"],
                **posterior_columns(sub, b),
                "persona-mean ceiling / oracle": ceiling[b] / o["true_profit"],
                "known function, estimated inputs / oracle": limit[b].profit / o["true_profit"],
                "its true cost / budget": limit[b].cost / b,
                "known function, true inputs / oracle": perfect[b].profit / o["true_profit"],
                "its true cost / budget (true inputs)": perfect[b].cost / b,
                "best uniform": best_uni,
                "best uniform profit": uni.loc[best_uni, "true_profit"],
                "model planned cost": m["planned_cost"],
                "model true cost": m["true_cost"],
                "model / best uniform": m["true_profit"] / uni.loc[best_uni, "true_profit"]
                if uni.loc[best_uni, "true_profit"] > 0
                else float("inf"),
                "budget kept (planned)": bool(m["planned_cost"] <= b),
                "budget kept (true)": bool(m["true_cost"] <= b),
            }
        )
    summary_df = pd.DataFrame(summary)
    md.append(markdown_table(summary_df, "{:.2f}") + "\n")
    md.append("### Every policy\n")
    md.append(markdown_table(comp, "{:.2f}") + "\n")
    frames.append(comp.assign(section="synthetic_policy"))

    # response calibration on held-out customers' offers
    frame = planner.training_frame_.reset_index(drop=True)
    cust = frame["customer_id"].unique()
    rng = np.random.default_rng(seed)
    held = set(rng.choice(cust, size=len(cust) // 5, replace=False))
    te = frame["customer_id"].isin(held).to_numpy()
    model = clone(planner.response_).fit(
        frame.loc[~te], frame.loc[~te, "level"], frame.loc[~te, "bought"], frame.loc[~te, "propensity"]
    )
    p = model.predict_proba(frame.loc[te], frame.loc[te, "level"])
    cal = calibration_report(frame.loc[te, "bought"].to_numpy(), p)
    curves = model.predict_curve(frame.loc[te])
    truth = true_response_probability(truth_rows(data.truth["response"], frame[te]))
    up_m, up_t = curves[:, -1] - curves[:, 0], truth[:, -1] - truth[:, 0]
    decreasing = float(np.mean(np.any(np.diff(curves, axis=1) < 0, axis=1)))
    md.append(
        f"### Response model calibration ({type(model).__name__}, held-out customers, {cal.n:,} offers)\n\n"
        f"Brier {cal.brier:.4f}, ECE {cal.ece:.4f}; curves decreasing anywhere on "
        f"{decreasing:.0%} of rows (monotone by construction). Uplift at 30% vs truth: mean {up_m.mean():.3f} vs "
        f"{up_t.mean():.3f}, correlation {np.corrcoef(up_m, up_t)[0, 1]:.2f}.\n\n{cal.to_markdown()}\n"
    )
    frames.append(
        pd.DataFrame(
            [{"section": "calibration", "policy": "response model", "brier": cal.brier, "ece": cal.ece}]
        )
    )

    ope = off_policy_estimates(planner, data.truth["response"])
    md.append("### Off-policy estimates on the logged offers vs truth (mean profit per offer)\n")
    md.append(markdown_table(ope, "{:.4f}") + "\n")
    frames.append(ope.assign(section="off_policy"))
    return md, frames


def complete_journey(cj: Path) -> tuple[list[str], list[pd.DataFrame]]:
    from lab.redemption import redemption_benchmark
    from recsys.data.io import read_tables
    from recsys.offers.lifecycle import validate_churn

    if not (cj / "manifest.json").exists():
        return [
            f"## Complete Journey\n\nSkipped: {cj} missing (run `recsys data prepare --source completejourney --out {cj}`).\n"
        ], []
    start = time.perf_counter()
    tables = read_tables(cj)
    red = redemption_benchmark(tables)
    as_of = tables["interactions"]["timestamp"].max().normalize() + pd.Timedelta(days=1)
    churn = validate_churn(tables["interactions"], as_of)
    secs = time.perf_counter() - start
    md = [
        f"## Complete Journey ({secs:.0f}s)\n",
        f"Coupon redemption, time split at {red['split_date']}: train {red['train_campaigns']} campaigns "
        f"({red['train_offers']:,} household offers), test the {red['test_campaigns']} later campaigns "
        f"({red['test_offers']:,} offers, redemption rate {red['test_redemption_rate']:.1%}).\n",
        markdown_table(
            pd.DataFrame(
                [
                    {
                        "predictor": "gradient boosting on lifecycle + campaign-product history",
                        "test AUC": red["auc_model"],
                    },
                    {"predictor": "deal proneness only (baseline)", "test AUC": red["auc_deal_proneness"]},
                    {
                        "predictor": "spend on the campaign's products only",
                        "test AUC": red["auc_campaign_history"],
                    },
                ]
            )
        )
        + "\n",
        f"Churn risk (no visit in the next 4 weeks), out of time on the last 4 weeks: model AUC "
        f"{churn.get('model_auc', float('nan')):.3f} / Brier {churn.get('model_brier', float('nan')):.4f}, "
        f"heuristic AUC {churn['heuristic_auc']:.3f} / Brier {churn['heuristic_brier']:.4f}; churn rate "
        f"{churn['churn_rate']:.1%}, mean predicted {churn.get('model_mean_risk', float('nan')):.1%}.\n",
    ]
    frames = [
        pd.DataFrame([{"section": "cj_redemption", **red}]),
        pd.DataFrame([{"section": "cj_churn", **churn}]),
    ]
    return md, frames


def summary_metrics(table: pd.DataFrame) -> dict[str, float]:
    """Aggregate figures of `history_rows` for MLflow: per seed and budget share, and min / mean / max."""
    out: dict[str, float] = {}
    for row in table.itertuples(index=False):
        key = f"seed{row.seed}_budget{row.share:.2f}"
        out[f"{key}.model_over_oracle"] = row.model_over_oracle
        out[f"{key}.true_cost_over_budget"] = row.true_cost_over_budget
        out[f"{key}.posterior_over_oracle"] = row.posterior_over_oracle
    for col in (
        "model_over_oracle",
        "true_cost_over_budget",
        "hindsight_over_oracle",
        "posterior_over_oracle",
    ):
        out[f"{col}.min"], out[f"{col}.mean"] = float(table[col].min()), float(table[col].mean())
        out[f"{col}.max"] = float(table[col].max())
    out["budget_overruns"] = float((table["true_cost_over_budget"] > 1.0).sum())
    return out


def history_rows(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Per seed and budget: the model's share of the oracle, its true cost over the budget, the cost
    factors and the references, from `compare_policies` tables (with a seed column)."""
    rows = []
    for comp in frames:
        budgets = sorted(comp["budget"].unique())
        for b, sub in comp.groupby("budget", sort=True):
            sub = sub.set_index("policy")
            m, o = sub.loc["model policy"], sub.loc["oracle (true curves)"]
            post = posterior_columns(sub, b)
            rows.append(
                {
                    "seed": int(sub["seed"].iloc[0]),
                    "budget": b,
                    "share": b / budgets[-1],
                    "model_over_oracle": m["true_profit"] / o["true_profit"],
                    "true_cost_over_budget": m["true_cost"] / b,
                    "cost_factor": m["cost_factor"],
                    "hindsight_cost_factor": sub.loc[HINDSIGHT, "cost_factor"],
                    "hindsight_over_oracle": sub.loc[HINDSIGHT, "true_profit"] / o["true_profit"],
                    "posterior_over_oracle": post["posterior reference / oracle"],
                    "posterior_true_cost_over_budget": post["its true cost / budget (posterior)"],
                    "posterior_hindsight_over_oracle": post["posterior, hindsight margin / oracle"],
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=CUSTOMERS)
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    ap.add_argument("--cj", default="data/cj", help="Complete Journey directory; '' skips that section")
    ap.add_argument("--weeks", type=int, default=26, help="weeks of synthetic history")
    ap.add_argument("--lookback", type=int, default=None, help="planner lookback_weeks (default: its own)")
    ap.add_argument(
        "--offers-per-customer", type=float, default=None, help="logged offers (default: 8 per 26 weeks)"
    )
    ap.add_argument("--explore", type=float, default=0.0, help="DiscountPlanner(explore=...): share explored")
    ap.add_argument("--jobs", type=int, default=1, help="seeds fitted at a time (variants)")
    args = ap.parse_args()
    if (
        args.weeks != 26
        or args.customers != CUSTOMERS
        or args.seeds != SEEDS
        or args.lookback is not None
        or args.offers_per_customer
        or args.explore
    ):
        return variant_run(args)
    md = [
        "# Offers benchmark\n",
        (
            "Generated by `benchmarks/offers.py`; numbers are from one run. The planner "
            "(`recsys/offers/planner.py`: structural response model on a point-in-time purchase baseline "
            "calibrated on organic no-discount pseudo-decisions, budget margin measured on held-out logged "
            "offers) against the oracle (the same optimiser on the TRUE curves, no cost margin), uniform "
            "campaigns, and references that know more than the data say (`lab/`). Target: at least 90% of "
            "the oracle at every budget, with the budget kept under the TRUE curves. Decisions, variants "
            "and what limits the planner: `docs/offers.md`; variants are MLflow runs in the experiment "
            "`benchmark-offers`.\n"
        ),
    ]
    s_md, s_frames, comps = [], [], []
    for seed in args.seeds:
        m, f = synthetic(args.customers, seed)
        s_md += m
        s_frames += [x.assign(seed=seed) for x in f]
        comps.append(f[0].assign(seed=seed))
    c_md, c_frames = complete_journey(Path(args.cj)) if args.cj else ([], [])
    table = pd.concat(s_frames + c_frames, ignore_index=True)
    write_results("offers", "\n".join(md + s_md + c_md), table)
    log_run(
        "offers",
        {"run": "headline", "customers": args.customers, "seeds": args.seeds, "weeks": args.weeks},
        summary_metrics(history_rows(comps)),
        artifacts=[OUT / "offers.md", OUT / "offers.csv"],
    )


def offers_at_default_rate(weeks: int) -> float:
    """Logged offers per consenting customer at the 26-week default's rate (8 per 26 weeks)."""
    return 8.0 * weeks / 26.0


def seed_frames(run, args: argparse.Namespace) -> list[pd.DataFrame]:
    """`run(args, seed)` for every seed in `args.seeds`, `args.jobs` at a time (one process each)."""
    if args.jobs <= 1:
        return [run(args, seed) for seed in args.seeds]
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    with ProcessPoolExecutor(args.jobs) as pool:
        return list(pool.map(partial(run, args), args.seeds))


def _variant_seed(args: argparse.Namespace, seed: int) -> pd.DataFrame:
    _, _, comp, _ = compare_policies(
        args.customers, seed, args.weeks, args.lookback, args.offers_per_customer, args.explore
    )
    return comp.assign(seed=seed)


def variant_run(args: argparse.Namespace) -> None:
    """The policy-vs-oracle comparison with another history length, lookback, logged-offer count,
    customer base, seeds or exploration: printed and logged as an MLflow run (no results files)."""
    if args.offers_per_customer is None:
        args.offers_per_customer = offers_at_default_rate(args.weeks)
    frames = seed_frames(_variant_seed, args)
    table = history_rows(frames)
    lookback = args.lookback if args.lookback is not None else DiscountPlanner().lookback_weeks
    params = {
        "run": "variant",
        "weeks": args.weeks,
        "lookback": lookback,
        "offers_per_customer": args.offers_per_customer,
        "customers": args.customers,
        "seeds": args.seeds,
        "explore": args.explore,
    }
    md = (
        f"# Offers benchmark variant: {', '.join(f'{k} {v}' for k, v in params.items() if k != 'run')}\n\n"
        "Budgets = 25/50/100% of the oracle's unconstrained expected discount cost; profit and cost are "
        "TRUE expected values. 'cost_factor': planned cost = expected cost x this factor; 'hindsight': the "
        "factor that, known only from the truth, makes the plan's true cost meet the budget; 'posterior': "
        "the Bayes plan given the data (`lab.posterior`).\n\n" + markdown_table(table, "{:.3f}") + "\n"
    )
    print(md)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "offers_variant.csv"
        pd.concat(frames, ignore_index=True).to_csv(path, index=False)
        (Path(tmp) / "offers_variant.md").write_text(md)
        log_run("offers", params, summary_metrics(table), artifacts=[path, Path(tmp) / "offers_variant.md"])


if __name__ == "__main__":
    main()
