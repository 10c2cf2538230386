"""Hub access without the hub library's retry loops: a short reachability probe, a look into the local
HF cache, and telling local folders apart from hub ids."""

import os
import socket
from functools import cache
from pathlib import Path
from typing import Literal

from logitdiff.core.paths import resolve_repo_path


@cache
def hub_reachable(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def in_hf_cache(repo_id: str, repo_type: Literal["model", "dataset"]) -> bool:
    """Whether the local HF cache (HF_HOME / HF_HUB_CACHE) holds at least one snapshot of the repo."""
    from huggingface_hub.constants import HF_HUB_CACHE

    snapshots = Path(HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def local_folder(ref: str) -> Path | None:
    """The folder a model/adapter reference names, or None for a hub id.

    Absolute paths, `./`, `../` and `~` always mean a folder; a relative path counts as one when it
    exists under the repository root (where configs' paths are relative to), so `org/name` stays a hub id.
    """
    if ref.startswith(("/", "./", "../", "~")):
        return Path(ref).expanduser()
    in_repo = resolve_repo_path(ref)
    return in_repo if in_repo.is_dir() else None
