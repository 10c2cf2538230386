"""Atomic file writes: write a temporary file in the same folder, fsync, then rename over the target.

The temporary file is created with mode 0666 minus the user's umask (like any file the user writes),
not `mkstemp`'s 0600, so a lab group can read each other's results.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


# A write takes seconds (a GGUF copy minutes): a temporary older than this was left by a killed process,
# not by a concurrent writer of a shared results folder.
STALE_AFTER_S = 3600.0


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
    except OSError as exc:
        if exc.filename is not None:
            raise
        # A full disk or quota fails inside write(): say which file, so the one-line error can.
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    finally:
        tmp.unlink(missing_ok=True)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(folder: Path) -> None:
    """Give a folder written by a library (which may create 0700 / 0600 entries) the modes the user's
    umask asks for, like every other file we write: a lab group can share a cache."""
    mask = current_umask()
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def is_stale(path: Path, now: float) -> bool:
    try:
        return now - path.lstat().st_mtime > STALE_AFTER_S
    except FileNotFoundError:  # removed by another process meanwhile
        return False


def remove_stale_temporaries(folder: Path) -> int:
    """Delete the temporary files of atomic writes that a killed process left under `folder`; returns how many."""
    now = time.time()
    stale = [p for p in folder.rglob(".*.tmp") if is_stale(p, now)] if folder.is_dir() else []
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(stale)


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
