"""Atomic file writes: write a temporary file in the same folder, fsync, then rename over the target."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda p: p.write_text(text))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, default=str) + "\n")


def write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda p: p.write_bytes(data))


def save_tensors(path: Path, tensors: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    _atomic(path, lambda p: save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(p)))


def read_json(path: Path) -> Any:
    """Parse a JSON result; a truncated or corrupted file raises ValueError (callers redo that work)."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"corrupted result file {path}: {exc}") from exc
