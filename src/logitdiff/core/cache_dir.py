"""The user-level cache folder (dequantized GGUF copies, LLM answers, corpus digests, organism parts).

Resolved once, by the entry point (`RunSettings`, `logitdiff organism build`), and passed down: no
lower layer reads the environment for it.
"""

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """$LOGITDIFF_CACHE, else ~/.cache/logitdiff."""
    return Path(os.environ.get("LOGITDIFF_CACHE", Path.home() / ".cache" / "logitdiff"))
