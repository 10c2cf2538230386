"""The user-level cache folder (dequantized GGUF copies, judge responses by default)."""

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("LOGITDIFF_CACHE", Path.home() / ".cache" / "logitdiff"))
