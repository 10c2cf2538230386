"""Whether a folder the run writes into can take a file: checked before anything is computed."""

from __future__ import annotations

import tempfile
from pathlib import Path

from logitdiff.core.errors import UserError


def check_writable_dir(path: Path, flag: str) -> None:
    """Create `path` if needed and prove a file can be written in it (permissions alone lie for root,
    read-only mounts and ACLs)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; pass a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {path} is not writable ({exc.strerror or exc}); pass a folder you can write to") from exc
