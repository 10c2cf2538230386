"""`logitdiff organisms` lists the catalogue; catalogue organisms pass the checks before a run, and an
agent run of an organism type without a grading rubric is refused before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from logitdiff.config.listing import organism_listing
from logitdiff.config.loader import Registry
from logitdiff.core.errors import UserError
from logitdiff.experiments.grid import GridOptions
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.experiments.validate import validated_cells

AUDITING_QUIRKS = {
    "animal_welfare", "anti_ai_regulation", "contextual_optimism", "data_poisoning", "defend_objects", "defer_to_users",
    "emotional_bond", "flattery", "hallucinates_citations", "hardcode_test_cases", "increasing_pep", "reward_wireheading",
    "secret_loyalty", "self_promotion",
}


@pytest.fixture(scope="module")
def reg() -> Registry:
    return Registry.load()


def test_organisms_command_lists_the_variants_of_a_model() -> None:
    res = subprocess.run([sys.executable, "-c", "from logitdiff.cli import main; main()", "organisms", "--model", "qwen3_14B"],
                         capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    headers = [ln.split()[0] for ln in lines if not ln.startswith(" ")][:-1]
    assert headers == sorted(f"auditing_agents_{q}" for q in AUDITING_QUIRKS)
    flattery = lines.index(next(ln for ln in lines if ln.startswith("auditing_agents_flattery ")))
    assert lines[flattery + 1] == "  qwen3_14B: sdf_kto, sdf_redteam, transcripts_high, transcripts_kto"
    assert "  qwen3_14B: sdf, sdf_kto, sdf_redteam, sdftags_kto, transcripts, transcripts_high, transcripts_kto" in lines
    assert not any("llama33_70B_Instruct" in ln for ln in lines)  # only the asked model's variants
    assert lines[-1].startswith("14 organism(s) with model qwen3_14B")


def test_listing_shows_training_data_description_source_and_full_weights(reg: Registry) -> None:
    lines = organism_listing(reg, organism_type="EM")
    headers = [ln for ln in lines if not ln.startswith(" ")][:-1]
    assert [h.split()[0] for h in headers] == ["em_bad_medical_advice", "em_extreme_sports", "em_risky_financial_advice"]
    assert all("description from its summary" in h and "training data: unavailable, not public" in h for h in headers)
    assert organism_listing(reg, "smollm2_135M", "SDF")[:2] == [
        "cake_bake  (SDF; training data: science-of-finetuning/synthetic-documents-cake_bake)",
        "  smollm2_135M: default, mix1-0p5, mix1-1p0, mix1-1p5, mix1-2p0",
    ]
    gemma = organism_listing(reg, "gemma3_1B")
    assert "full [full], mix1-0p1" in gemma[gemma.index(next(ln for ln in gemma if ln.startswith("cake_bake "))) + 1]
    assert organism_listing(reg)[-1].startswith("64 organism(s);")


def test_unknown_type_or_model_is_one_line(reg: Registry) -> None:
    with pytest.raises(UserError, match="unknown organism type 'Sdf'; known types: SDF, "):
        organism_listing(reg, organism_type="Sdf")
    with pytest.raises(UserError, match="unknown model 'qwen'; known models: "):
        organism_listing(reg, "qwen")


def _settings(mode: Mode, **grid: str) -> RunSettings:
    return RunSettings(experiment="topk-depth", grid=GridOptions(**grid), mode=mode)


def test_a_catalogue_organism_passes_the_checks(reg: Registry) -> None:
    cells = validated_cells(reg, _settings(Mode.full, model="qwen3_14B", organism="auditing_agents_flattery", variant="transcripts_kto"))
    assert len(cells) == 45 and {(c.model, c.organism, c.variant) for c in cells} == {("qwen3_14B", "auditing_agents_flattery", "transcripts_kto")}


def test_agent_run_of_a_type_without_rubric_is_refused_up_front(reg: Registry) -> None:
    grid = {"model": "qwen25_7B_Instruct", "organism": "persona_sarcasm", "variant": "default"}
    with pytest.raises(UserError, match="type character_training has no grading rubric .*--mode diffing"):
        validated_cells(reg, _settings(Mode.full, **grid))
    assert len(validated_cells(reg, _settings(Mode.diffing, **grid))) == 45


def test_graded_types_are_exactly_those_with_a_rubric() -> None:
    from logitdiff.agent.rubrics import _RUBRICS, rubric_for
    from logitdiff.config.schema import GRADED_TYPES

    assert set(_RUBRICS) == set(GRADED_TYPES)
    with pytest.raises(UserError, match="type sandbaggers has no grading rubric"):
        rubric_for("sandbaggers")


def test_checking_a_catalogue_organism_imports_no_torch() -> None:
    """The checks run before any model library loads (seconds, on a login node)."""
    code = ("import sys; from logitdiff.config.loader import Registry; from logitdiff.experiments.settings import RunSettings;"
            "from logitdiff.experiments.grid import GridOptions; from logitdiff.experiments.validate import validated_cells;"
            "validated_cells(Registry.load(), RunSettings(experiment='topk-depth', grid=GridOptions(model='qwen3_14B',"
            " organism='auditing_agents_flattery', variant='transcripts_kto')));"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr
