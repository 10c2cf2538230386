"""On-disk cache of chat completions keyed by the full request, so a rerun makes no API calls."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logitdiff.core.atomic import read_json, write_json


def request_key(request: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a request (model, base URL, messages, generation params)."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ResponseCache:
    root: Path

    def _path(self, key: str) -> Path:
        # Two-level fan-out keeps folders small when an experiment caches tens of thousands of calls.
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        if not path.exists():
            return None
        try:
            entry = read_json(path)
        except ValueError:  # a corrupted entry is a miss; the fresh answer overwrites it
            return None
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        write_json(self._path(key), entry)
