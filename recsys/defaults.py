"""Names and default locations shared by training, serving and the CLI, defined once.

Embedded defaults (SQLite files in the project directory) so the two README commands work on a fresh
machine; deployments override them with MLFLOW_TRACKING_URI / RECSYS_EVENTS_URL / RECSYS_REGISTRY_URI.
Plain strings: the library itself never talks to MLflow or the event store.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]

#: MLflow registry: the product recommender and the discount planner, each with these aliases.
MODEL_NAME = "grocery-recommender"
#: The discount plan artifacts (training/offers.py); the service reads @champion.
PLANNER_NAME = "grocery-discount-planner"
CHAMPION = "champion"
CHALLENGER = "challenger"

DEFAULT_TRACKING_URI = f"sqlite:///{PROJECT_DIR / 'mlflow.db'}"
DEFAULT_EVENTS_URL = f"sqlite:///{PROJECT_DIR / 'events.db'}"


def registry_uri(name: str = MODEL_NAME, alias: str = CHAMPION) -> str:
    """'models:/<name>@<alias>', the form serving loads from."""
    return f"models:/{name}@{alias}"
