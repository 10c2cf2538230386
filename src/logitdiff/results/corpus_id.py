"""A local diffing corpus is identified by its content, never by where it lies, so a results folder
copied to another machine or read from another clone finds its cells as long as the corpus file holds
the same bytes.

The folder name is `<file name>-<first 16 hex digits of the SHA-256 of its bytes>`. Hashing a large
corpus takes seconds, so each digest is cached under the user cache folder the caller passes (none: hashed
once per process), keyed by absolute path and checked against size and modification time. Results written before this scheme used
`<file name>-<8 hex digits of the SHA-256 of the absolute path>` (`legacy_folder_name`).
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from logitdiff.core.atomic import read_json, write_json
from logitdiff.core.names import slug

DIGEST_CHARS = 16
_CHUNK = 1 << 20


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@cache
def _digest(resolved: Path, size: int, mtime_ns: int, cache_dir: Path | None) -> str:
    if cache_dir is None:
        return _hash_file(resolved)
    entry = cache_dir / "corpus_digests" / f"{hashlib.sha256(str(resolved).encode()).hexdigest()[:16]}.json"
    try:
        doc = read_json(entry)
        if (doc["path"], doc["size"], doc["mtime_ns"]) == (str(resolved), size, mtime_ns):
            return str(doc["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no entry, or a stale / damaged one: hash again
    digest = _hash_file(resolved)
    write_json(entry, {"path": str(resolved), "size": size, "mtime_ns": mtime_ns, "sha256": digest})
    return digest


def content_digest(path: Path, cache_dir: Path | None) -> str:
    """SHA-256 (hex) of the file's bytes."""
    resolved = path.resolve()
    st = resolved.stat()
    return _digest(resolved, st.st_size, st.st_mtime_ns, cache_dir)


def corpus_folder_name(path: Path, cache_dir: Path | None = None) -> str:
    return f"{slug(path.name)}-{content_digest(path, cache_dir)[:DIGEST_CHARS]}"


def legacy_folder_name(path: Path) -> str:
    """The name results of this file got before corpora were identified by content."""
    return f"{slug(path.name)}-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"


def folders_named_for(name: str, parent: Path) -> list[Path]:
    """Stored corpus folders (either scheme) under `parent` for a corpus file called `name`."""
    if not parent.is_dir():
        return []
    prefix = f"{slug(name)}-"
    return sorted(p for p in parent.iterdir() if p.is_dir() and p.name.startswith(prefix)
                  and len(p.name) - len(prefix) in (8, DIGEST_CHARS) and all(ch in "0123456789abcdef" for ch in p.name[len(prefix):]))
