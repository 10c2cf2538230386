"""On-disk cache of chat completions keyed by the full request and its sample identity, so a rerun makes
no API calls while independent samples (other seeds, cells, runs) are each asked."""

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
        """The stored entry, or None for a miss. A corrupted entry or one of another shape (`{}`, a
        list) is a miss too: the fresh answer overwrites it."""
        path = self._path(key)
        if not path.exists():
            return None
        try:
            entry = read_json(path)
        except ValueError:
            return None
        return entry if _well_formed(entry) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        write_json(self._path(key), entry)


def _well_formed(entry: object) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("text"), str)
        and all(isinstance(entry.get(n), int) and not isinstance(entry.get(n), bool) for n in ("prompt_tokens", "completion_tokens"))
    )
