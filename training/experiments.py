"""The experiment report: Markdown, one plot per metric, and an MLflow run of aggregates only.

The run goes to the MLflow experiment `ab-<name>` (one run per report, so successive daily reports
are comparable runs); it holds counts, means, lifts, CIs and p-values per variant and metric, never a
customer id.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from recsys.experiments.analysis import Analysis  # noqa: E402
from training.markdown import markdown_table  # noqa: E402


def markdown(a: Analysis) -> str:
    exp = a.experiment
    eff = a.effects
    cols = ["variant", "metric", "control", "treatment", "lift", "lift_lower", "lift_upper"]
    cols += ["lift_cuped", "lift_cuped_lower", "lift_cuped_upper", "p_value_cuped", "difference"]
    parts = [
        f"# Experiment {exp.name}\n",
        f"{exp.description}\n" if exp.description else "",
        f"Surface `{exp.surface}`, {exp.start:%Y-%m-%d} to {exp.stop:%Y-%m-%d}, primary metric "
        f"`{exp.primary_metric}`, control `{exp.control_variant}`, alpha {exp.alpha}.\n",
        f"**Decision: {a.decision}**\n",
        "## Variants\n",
        markdown_table(a.variants, "{:.4g}"),
        f"\nSample ratio mismatch check (chi-square against the shares): p = {a.srm_pvalue:.3g}.\n",
        "## Effects against the control\n",
        "Lift = treatment / control - 1 with a delta-method CI; `_cuped` adjusts by the pre-period "
        "spend; `difference` is the CUPED-adjusted difference per customer (for `margin`: the "
        "incremental margin).\n",
        markdown_table(eff[cols], "{:.4g}") if len(eff) else "(not enough customers yet)",
        f"\n## Sequential test ({exp.primary_metric}, daily looks)\n",
        "Group-sequential test with O'Brien-Fleming alpha spending over the planned daily looks: "
        "looking every day does not inflate the false-positive rate.\n",
        markdown_table(a.sequential, "{:.4g}") if len(a.sequential) else "(no treatment variant)",
        "\n## Guardrails\n",
        markdown_table(a.guardrails, "{:.4g}"),
    ]
    return "\n".join(p for p in parts if p) + "\n"


def plots(a: Analysis, out: Path) -> list[Path]:
    """One PNG per metric: the CUPED lift of each variant with its CI, and the plain one beside it."""
    paths = []
    for metric, part in a.effects.groupby("metric", sort=False) if len(a.effects) else ():
        fig, ax = plt.subplots(figsize=(5, 0.6 + 0.5 * len(part)))
        y = range(len(part))
        for offset, (kind, label) in enumerate((("lift", "plain"), ("lift_cuped", "CUPED"))):
            est = part[kind].to_numpy()
            err = [est - part[f"{kind}_lower"].to_numpy(), part[f"{kind}_upper"].to_numpy() - est]
            ax.errorbar(est, [i + 0.15 * offset for i in y], xerr=err, fmt="o", capsize=3, label=label)
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(list(y), part["variant"])
        ax.set_xlabel(f"relative lift of {metric} vs {a.experiment.control_variant}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / f"lift_{metric}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(a: Analysis, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    md = out / "report.md"
    md.write_text(markdown(a))
    a.variants.to_csv(out / "variants.csv", index=False)
    a.effects.to_csv(out / "effects.csv", index=False)
    return [md, out / "variants.csv", out / "effects.csv", *plots(a, out)]


def log_report(a: Analysis, files: list[Path]) -> str:
    """One MLflow run in experiment `ab-<name>`; returns the run id."""
    import mlflow

    from training.tracking import ensure_experiment, setup_tracking

    setup_tracking()
    exp = a.experiment
    with mlflow.start_run(
        experiment_id=ensure_experiment(f"ab-{exp.name}"), run_name=f"look-{a.looks}"
    ) as run:
        mlflow.log_params(
            {
                "surface": exp.surface,
                "primary_metric": exp.primary_metric,
                "control": exp.control_variant,
                "variants": ",".join(f"{v.name}:{v.share:g}" for v in exp.variants),
                "start": exp.start.isoformat(),
                "stop": exp.stop.isoformat(),
                "look": a.looks,
            }
        )
        mlflow.set_tag("decision", a.decision[:250])
        metrics = {"srm_pvalue": a.srm_pvalue}
        for row in a.variants.itertuples(index=False):
            metrics[f"customers.{row.variant}"] = row.customers
            for m in (exp.primary_metric, *exp.secondary_metrics):
                metrics[f"{m}.{row.variant}"] = getattr(row, m)
        for row in a.effects.itertuples(index=False):
            for k in (
                "lift",
                "lift_lower",
                "lift_upper",
                "lift_cuped",
                "lift_cuped_lower",
                "lift_cuped_upper",
            ):
                metrics[f"{k}.{row.metric}.{row.variant}"] = getattr(row, k)
            metrics[f"p_cuped.{row.metric}.{row.variant}"] = row.p_value_cuped
        mlflow.log_metrics(
            {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        )
        for path in files:
            mlflow.log_artifact(str(path))
        return run.info.run_id
