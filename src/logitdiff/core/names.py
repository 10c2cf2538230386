"""File-system-safe names for ids (judges, agents, hub ids) in result paths."""

import hashlib
import re


def slug(text: str) -> str:
    """A file-system-safe, readable, unique name for ids like 'openrouter/openai/gpt-5-mini'."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    if clean == text:
        return clean
    return f"{clean[:80]}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
