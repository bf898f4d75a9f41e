"""Which model to serve: the reload request checked before anything is read, and the active choice
recorded so a restarted worker comes back on it rather than on the configured default.

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


def record_active(settings: Settings, source: ModelSource) -> None:
    """Persist the source a reload activated (atomic replace); no file configured: nothing to do."""
    target = settings.active_model_file
    if target is None:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    body = {k: (str(v) if v is not None else None) for k, v in asdict(source).items()}
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".active-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(body, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def active_source(settings: Settings) -> ModelSource:
    """What the last reload activated, re-checked like a request; the default when none or unusable."""
    path = settings.active_model_file
    if path is None or not path.exists():
        return ModelSource()
    try:
        body = json.loads(path.read_text())
        return resolve_source(settings, body.get("model_dir"), body.get("version"))
    except (ValueError, OSError, AttributeError, ApiError) as exc:
        logger.error("ignoring the active model record %s: %s", path, exc)
        return ModelSource()


def load_active(settings: Settings):  # noqa: ANN201 - a Runtime (serving.runtime imports this module)
    """The runtime to start with: the recorded active model, else (if it cannot load) the default."""
    from serving.runtime import load_runtime

    source = active_source(settings)
    if source == ModelSource():
        return load_runtime(settings)
    try:
        return load_runtime(settings, source)
    except Exception as exc:  # noqa: BLE001 - a bad record must not keep the service down
        logger.error("active model %s did not load (%s); starting on the default", source, exc)
        return load_runtime(settings)
