"""Where the project's shipped files live (configs, bundled organisms)."""

import os
from pathlib import Path

# The repository root in a source checkout / editable install: src/logitdiff/core/paths.py is 3 folders below it.
_REPO_ROOT = Path(__file__).resolve().parents[3]


def repo_root() -> Path:
    return Path(os.environ.get("LOGITDIFF_HOME", _REPO_ROOT))


def configs_dir() -> Path:
    return Path(os.environ.get("LOGITDIFF_CONFIGS", repo_root() / "configs"))


def resolve_repo_path(path: str | Path) -> Path:
    """Paths in configs are relative to the repository root unless absolute."""
    p = Path(path)
    return p if p.is_absolute() else repo_root() / p
