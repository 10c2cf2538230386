"""A configs folder with a fifth experiment: adding an experiment is adding a YAML file."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRA = "topk-shallow"  # sweeps top_k like topk-depth, so it is listed right after it (then by file name)
EXTRA_YAML = """\
name: topk_shallow
cli_name: topk-shallow
swept: top_k
values: [1, 2, 3]
seeds: [7]
methods: [logitdiff]
fixed: {samples: 100, positions: 30, top_k: 100}
defaults: {model: gemma3_1B, organism: cake_bake, variant: mix1-0p5}
"""


def configs_with_extra_experiment(tmp_path: Path) -> Path:
    """A copy of configs/ plus experiments/topk_shallow.yaml; point LOGITDIFF_CONFIGS at it."""
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    (configs / "experiments" / "topk_shallow.yaml").write_text(EXTRA_YAML)
    return configs
