"""The README's main command: data -> tracked training -> registered challenger -> promotion gate.

It ends with a `@champion` in the registry: the first run becomes champion after passing the diet
probes; later runs replace it only when they beat it on the same split.
"""

from __future__ import annotations

from pathlib import Path

from training.config import DEFAULT_CONFIG, load_config
from training.jobs import run_training
from training.registry import MODEL_NAME, Decision, promote, register
from training.tracking import setup_tracking


def main_pipeline(
    data_dir: str | Path = "data/cj",
    config_path: str | Path = DEFAULT_CONFIG,
    model_name: str = MODEL_NAME,
    source: str | None = None,
) -> tuple[str, Decision]:
    """Returns (run id, promotion decision); prints a short summary as it goes."""
    config = load_config(config_path)
    data = config.data.model_copy(update={"dir": str(data_dir), **({"source": source} if source else {})})
    config = config.model_copy(update={"data": data})
    uri = setup_tracking()
    print(f"MLflow tracking URI: {uri}")
    print(f"[1/3] training {config.name} ({config.model.name}) on {data.dir} ...", flush=True)
    run_id = run_training(config)
    print(f"      run {run_id}")
    version = register(run_id, model_name=model_name)
    print(f"[2/3] registered {model_name} v{version.version} as @challenger")
    print("[3/3] promotion gate ...", flush=True)
    decision = promote(model_name)
    print(decision.summary())
    return run_id, decision
