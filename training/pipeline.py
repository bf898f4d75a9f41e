"""The README's main command: data -> tracked training -> registered challenger -> promotion gate,
then the discount planner: fit, plan within the budget, registered as grocery-discount-planner@champion.

It ends with a `@champion` product model in the registry: the first run becomes champion after passing
the diet probes; later runs replace it only when they beat it on the same split. Each run's plan
becomes the planner's champion (a plan is one campaign's decision on the current data).
"""

from __future__ import annotations

from pathlib import Path

from recsys.defaults import MODEL_NAME, PLANNER_NAME
from training.config import DEFAULT_CONFIG, load_config
from training.jobs import run_training
from training.offers import OffersResult, run_offers
from training.offers_config import DEFAULT_OFFERS_CONFIG, load_offers_config, with_overrides
from training.registry import Decision, promote, register
from training.tracking import setup_tracking


def main_pipeline(
    data_dir: str | Path = "data/cj",
    config_path: str | Path = DEFAULT_CONFIG,
    model_name: str = MODEL_NAME,
    source: str | None = None,
    offers_config_path: str | Path = DEFAULT_OFFERS_CONFIG,
    planner_name: str = PLANNER_NAME,
) -> tuple[str, Decision, OffersResult]:
    """Returns (run id, promotion decision, planner result); prints a short summary as it goes."""
    config = load_config(config_path)
    data = config.data.model_copy(update={"dir": str(data_dir), **({"source": source} if source else {})})
    config = config.model_copy(update={"data": data})
    uri = setup_tracking()
    print(f"MLflow tracking URI: {uri}")
    print(f"[1/4] training {config.name} ({config.model.name}) on {data.dir} ...", flush=True)
    run_id = run_training(config)
    print(f"      run {run_id}")
    version = register(run_id, model_name=model_name)
    print(f"[2/4] registered {model_name} v{version.version} as @challenger")
    print("[3/4] promotion gate ...", flush=True)
    decision = promote(model_name)
    print(decision.summary())
    offers = load_offers_config(offers_config_path)
    offers = with_overrides(offers, {"data.dir": str(data.dir), "data.source": data.source})
    print(f"[4/4] discount planner: plan within a budget of {offers.budget:,.2f} ...", flush=True)
    result = run_offers(offers, model_name=planner_name)
    meta = result.artifact.meta
    print(
        f"      {meta['offers']:,} offers for {meta['customers']:,} customers, expected cost "
        f"{meta['expected_cost']:,.2f} of {meta['budget']:,.2f}; registered {planner_name} "
        f"v{result.version} as @champion"
    )
    return run_id, decision, result
