"""Which model to serve: the reload request checked before anything is read, and the active choice
recorded so a restarted worker comes back on it rather than on the configured default, and so every
other worker and replica sharing the record follows a reload (each polls it: serving/service.py).

A reload names a registry version or alias of the served model name (RECSYS_REGISTRY_URI) or a
model directory, and directories are accepted only under RECSYS_MODEL_ROOT (resolved, so `..` and
symlinks cannot leave it). The active choice is a small JSON file (RECSYS_ACTIVE_MODEL_FILE),
replaced atomically; every worker reads it at start.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from serving.config import Settings
from serving.errors import ApiError

logger = logging.getLogger("serving")

REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"  # a registry version number or alias (MLflow's)
_REF = re.compile(REF_PATTERN)


@dataclass(frozen=True)
class ModelSource:
    """One of: a model directory, a registry version number or alias; neither = the configured default."""

    model_dir: Path | None = None
    version: str | None = None

    def __str__(self) -> str:
        return str(self.model_dir or (self.version and f"registry {self.version}") or "default")


def resolve_source(settings: Settings, model_dir: str | None, version: str | None) -> ModelSource:
    """The reload request as a source, or ApiError (4xx) saying why it is refused."""
    if model_dir and version:
        raise ApiError(400, "give model_dir or version, not both")
    if version is not None:
        if not _REF.match(version):
            raise ApiError(400, f"version must be a registry version number or alias, got {version!r}")
        return ModelSource(version=version)
    if not model_dir:
        return ModelSource()
    root = settings.model_root
    if root is None:
        raise ApiError(403, "reloading from a directory is off: set RECSYS_MODEL_ROOT")
    root = root.resolve()
    path = Path(model_dir)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_relative_to(root):
        raise ApiError(400, f"model_dir must be under RECSYS_MODEL_ROOT ({root}), got {model_dir!r}")
    if not (path / "model.json").is_file():
        raise ApiError(404, f"no model (model.json) in {model_dir!r} under RECSYS_MODEL_ROOT")
    return ModelSource(model_dir=path)


def configured(settings: Settings) -> str:
    """The default a record overrides: the model dir, else the registry alias in its tracking store."""
    return (
        str(settings.model_dir)
        if settings.model_dir
        else f"{settings.registry_uri} @ {settings.tracking_uri}"
    )


def record_active(settings: Settings, source: ModelSource) -> str | None:
    """Persist the source a reload activated (atomic replace) under a new reload id, returned;
    no file configured: nothing recorded, None."""
    target = settings.active_model_file
    if target is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    reload_id = uuid.uuid4().hex
    body = {k: (str(v) if v is not None else None) for k, v in asdict(source).items()}
    body.update(reload_id=reload_id, configured=configured(settings))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".active-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(body, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return reload_id


def active_source(settings: Settings) -> tuple[ModelSource, str | None]:
    """(what the last reload activated, its reload id), re-checked like a request; (the default,
    None) when there is no record, it cannot be used, or it was made under another configuration."""
    path = settings.active_model_file
    if path is None or not path.exists():
        return ModelSource(), None
    try:
        body = json.loads(path.read_text())
        if body.get("configured") != configured(settings):
            logger.info("active model record %s was made for another configuration; ignored", path)
            return ModelSource(), None
        source = resolve_source(settings, body.get("model_dir"), body.get("version"))
        return source, str(body["reload_id"])
    except (ValueError, OSError, AttributeError, KeyError, ApiError) as exc:
        logger.error("ignoring the active model record %s: %s", path, exc)
        return ModelSource(), None


def load_active(settings: Settings):  # noqa: ANN201 - (Runtime, reload id); runtime.py imports us
    """The runtime to start with and the reload id it follows: the recorded active model, else (if it
    cannot load) the default."""
    from serving.runtime import load_runtime

    source, reload_id = active_source(settings)
    if source == ModelSource():
        return load_runtime(settings), reload_id
    try:
        return load_runtime(settings, source), reload_id
    except Exception as exc:  # noqa: BLE001 - a bad record must not keep the service down
        logger.error("active model %s did not load (%s); starting on the default", source, exc)
        return load_runtime(settings), reload_id
