"""Write a small synthetic package for the tests of source checks (layering, method-name branches)."""

from __future__ import annotations

from pathlib import Path


def write_package(root: Path, files: dict[str, str], package: str = "pkg") -> Path:
    """Write `files` (path within the package -> text) under root/package; returns root, the source folder."""
    for name, text in files.items():
        path = root / package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
