"""Service settings, read once from the environment at start-up (12-factor style).

Everything a deployment changes is an environment variable, so `bentoml serve`, `recsys serve`, a
container and the tests configure the same code the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from recsys.defaults import (
    DEFAULT_EVENTS_URL,
    DEFAULT_TRACKING_URI,
    PLANNER_NAME,
    PROJECT_DIR,
    registry_uri,
)
from serving.auth import ApiKey, keys_from_env

DEFAULT_REGISTRY_URI = registry_uri()
DEFAULT_OFFERS_URI = registry_uri(PLANNER_NAME)

#: `recsys bento` bakes the champions here; a bento serves them without any MLflow store.
BUNDLE_DIR = PROJECT_DIR / "bundle"


def in_bento(project_dir: Path = PROJECT_DIR) -> bool:
    """Running from a built bento (its source tree sits in <bento>/src beside bento.yaml)."""
    return (project_dir.parent / "bento.yaml").exists()


def state_dir(env: dict[str, str]) -> Path:
    """Where a bento keeps its default SQLite files: never inside its own source tree."""
    return Path(env.get("RECSYS_STATE_DIR") or Path.home() / ".local" / "state" / "grocery-recsys")


def flag(value: str | None, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    model_dir: Path | None = None
    registry_uri: str = DEFAULT_REGISTRY_URI
    tracking_uri: str = DEFAULT_TRACKING_URI
    data_dir: Path | None = None
    #: the discount plan: a plan directory (RECSYS_OFFERS_DIR), else this registry alias
    #: (RECSYS_OFFERS_URI; 'none' or empty: no plan, /v1/discounts answers 404 with the reason)
    offers_dir: Path | None = None
    offers_uri: str | None = DEFAULT_OFFERS_URI
    events_url: str = DEFAULT_EVENTS_URL
    api_keys: tuple[ApiKey, ...] = field(default=(), repr=False)  # serving/auth.py
    read_requires_key: bool = True
    default_consent: bool = False
    max_batch_size: int = 64
    inline_batch_size: int = 16
    warm_up: bool = True
    #: event-store deadline per call and how long to leave a failed store alone (seconds)
    store_timeout: float = 1.0
    store_retry_after: float = 1.0
    #: model dirs a reload may load (under this root only; unset: reload takes registry versions only)
    model_root: Path | None = None
    #: where the model a reload activated is recorded, read at start so a restarted worker keeps it
    active_model_file: Path | None = None
    #: customers whose state a worker keeps (LRU); bounds its memory whatever the number of customers
    #: seconds between looks at active_model_file for a reload made by another worker (0: never)
    active_model_poll: float = 2.0
    state_cache_size: int = 20_000
    #: redis:// URL of the cache bus that drops a changed customer's state on every replica (unset:
    #: this process only; with PostgreSQL and no bus nothing is cached), and its channel
    cache_bus_url: str | None = None
    cache_channel: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        model_dir = env.get("RECSYS_MODEL_DIR") or None
        data_dir = env.get("RECSYS_DATA_DIR") or None
        offers_dir = env.get("RECSYS_OFFERS_DIR") or None
        tracking_uri, events_url = DEFAULT_TRACKING_URI, DEFAULT_EVENTS_URL
        if in_bento():
            # the baked champions (recsys bento); SQLite defaults outside the bento's source tree
            if model_dir is None and (BUNDLE_DIR / "model" / "model.json").exists():
                model_dir = str(BUNDLE_DIR / "model")
            if offers_dir is None and env.get("RECSYS_OFFERS_URI") is None and (BUNDLE_DIR / "plan").is_dir():
                offers_dir = str(BUNDLE_DIR / "plan")
            state = state_dir(env)
            state.mkdir(parents=True, exist_ok=True)
            tracking_uri, events_url = f"sqlite:///{state / 'mlflow.db'}", f"sqlite:///{state / 'events.db'}"
        offers_uri = env.get("RECSYS_OFFERS_URI", DEFAULT_OFFERS_URI).strip()
        return cls(
            model_dir=Path(model_dir) if model_dir else None,
            registry_uri=env.get("RECSYS_REGISTRY_URI") or DEFAULT_REGISTRY_URI,
            tracking_uri=env.get("MLFLOW_TRACKING_URI") or tracking_uri,
            data_dir=Path(data_dir) if data_dir else None,
            offers_dir=Path(offers_dir) if offers_dir else None,
            offers_uri=None if offers_uri.lower() in ("", "none") else offers_uri,
            events_url=env.get("RECSYS_EVENTS_URL") or events_url,
            api_keys=keys_from_env(env),
            # reads (purchase history, diet, churn profile) need a 'read' key unless turned off
            read_requires_key=flag(env.get("RECSYS_READ_REQUIRES_KEY"), True),
            # Customers we hold no consent record for: privacy by default, no personalisation and
            # no stored events until the app records consent.
            default_consent=flag(env.get("RECSYS_DEFAULT_CONSENT"), False),
            max_batch_size=int(env.get("RECSYS_MAX_BATCH_SIZE") or 64),
            # products batches up to this size are computed on the event loop (no thread hand-off)
            inline_batch_size=int(env.get("RECSYS_INLINE_BATCH_SIZE") or 16),
            # Build the recipe index and other lazy parts before reporting ready (off: on first use).
            warm_up=flag(env.get("RECSYS_WARM_UP"), True),
            store_timeout=float(env.get("RECSYS_STORE_TIMEOUT") or 1.0),
            store_retry_after=float(env.get("RECSYS_STORE_RETRY_AFTER") or 1.0),
            model_root=Path(env["RECSYS_MODEL_ROOT"]) if env.get("RECSYS_MODEL_ROOT") else None,
            active_model_file=(
                Path(env["RECSYS_ACTIVE_MODEL_FILE"]) if env.get("RECSYS_ACTIVE_MODEL_FILE") else None
            ),
            active_model_poll=float(env.get("RECSYS_ACTIVE_MODEL_POLL") or 2.0),
            state_cache_size=int(env.get("RECSYS_STATE_CACHE_SIZE") or 20_000),
            cache_bus_url=env.get("RECSYS_CACHE_BUS_URL") or None,
            cache_channel=env.get("RECSYS_CACHE_CHANNEL") or None,
        )
