"""Everything one `logitdiff <experiment>` invocation was asked to do, validated."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from logitdiff.core.cache_dir import default_cache_dir
from logitdiff.experiments.grid import ArrayUnit, GridOptions
from logitdiff.llm.spec import DEFAULT_AGENT_LLM, DEFAULT_GRADER_LLM, DEFAULT_RETRIES, DEFAULT_TIMEOUT_S


class Mode(str, Enum):
    full = "full"
    diffing = "diffing"
    plotting = "plotting"


class RunSettings(BaseModel):
    """The defaults here are the command line's defaults too (the CLI reads them from this class)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, extra="forbid")

    experiment: str
    grid: GridOptions
    mode: Mode = Mode.full
    array_job: bool = False
    array_unit: ArrayUnit = "cell"
    results_dir: Path = Path("results")
    output_dir: Path = Path("outputs")
    judge: str | None = None
    agent_llm: str = DEFAULT_AGENT_LLM
    grader_llm: str = DEFAULT_GRADER_LLM
    agent_budget: int = Field(default=5, ge=0)
    agent_runs: int = Field(default=2, ge=1)
    grader_runs: int = Field(default=2, ge=1)
    agent_max_new_tokens: int = Field(default=1024, ge=1)
    device: str | None = None
    dtype: str | None = None
    device_map: str | None = None
    batch_size: int | None = Field(default=None, ge=1)
    overwrite: bool = False
    cache_dir: Path = Field(default_factory=default_cache_dir)  # the CLI passes --cache-dir when given
    llm_timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)
    llm_retries: int = Field(default=DEFAULT_RETRIES, ge=0)

    def llm_cache(self) -> Path:
        """Judge, agent and grader answers by request: a rerun sends only the requests never answered."""
        return self.cache_dir / "llm"
