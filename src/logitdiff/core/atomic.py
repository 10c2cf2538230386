"""Atomic file writes: write a temporary file in the same folder, fsync, then rename over the target.

The temporary file is created with mode 0666 minus the user's umask (like any file the user writes),
not `mkstemp`'s 0600, so a lab group can read each other's results.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # O_EXCL: never write into another writer's temporary file; 0o666 lets the umask decide.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, default=str) + "\n")


def write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda p: p.write_bytes(data))


def save_tensors(path: Path, tensors: dict[str, Any]) -> None:
    from safetensors.torch import save

    # Serialized in memory (a few MB): safetensors' own save_file creates its file with mode 0600.
    write_bytes(path, save({k: v.contiguous().cpu() for k, v in tensors.items()}))


def read_json(path: Path) -> Any:
    """Parse a JSON result; a missing, truncated or corrupted file raises ValueError (callers redo that work)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ValueError(f"{path} is missing") from exc
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"corrupted result file {path}: {exc}") from exc
