"""Every shipped YAML validates; bad configs and names fail with one line naming file/field."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from logitdiff.config.loader import Registry
from logitdiff.config.schema import split_hub_id
from logitdiff.core.errors import UserError
from logitdiff.core.paths import configs_dir


CATALOGUE = Path(__file__).parent / "data" / "reference_catalogue.yaml"
# Our name for a catalogue model, where it differs (the bundled offline organism's model).
OUR_MODEL_NAME = {"SmolLM2-135M": "smollm2_135M"}


def _catalogue() -> dict[str, Any]:
    return yaml.safe_load(CATALOGUE.read_text())


def test_every_shipped_config_validates() -> None:
    reg = Registry.load()
    catalogue = _catalogue()
    assert {OUR_MODEL_NAME.get(m, m) for m in catalogue["models"]} < set(reg.models)
    assert set(reg.organisms) == set(catalogue["organisms"])
    assert set(reg.experiments) == {"mix_ratio", "topk_depth", "token_positions", "n_samples"}
    yamls = {p.stem for sub in ("models", "organisms", "experiments") for p in (configs_dir() / sub).glob("*.yaml")}
    assert yamls == set(reg.models) | set(reg.organisms) | set(reg.experiments)


def test_every_organism_model_and_variant_resolves() -> None:
    reg = Registry.load()
    triples = [(o, m, v) for o, org in reg.organisms.items() for m, variants in org.finetuned_models.items() for v in variants]
    assert len(triples) > 400
    for organism, model, variant in triples:
        assert reg.model(model).name == model
        assert reg.finetuned(organism, model, variant).source, (organism, model, variant)


def test_model_facts_from_spec() -> None:
    reg = Registry.load()
    layers = {name: reg.model(name).num_layers for name in ("gemma3_1B", "qwen3_1_7B", "qwen3_14B", "llama32_1B_Instruct", "smollm2_135M")}
    assert layers == {"gemma3_1B": 26, "qwen3_1_7B": 28, "qwen3_14B": 40, "llama32_1B_Instruct": 16, "smollm2_135M": 30}
    assert reg.model("gemma3_1B").attn_implementation == "eager"
    assert reg.model("qwen3_14B").has_thinking_flag and not reg.model("gemma3_1B").has_thinking_flag
    assert reg.model("smollm2_135M").offline_source is not None


def test_models_carry_the_catalogue_facts() -> None:
    reg = Registry.load()
    for name, ref in _catalogue()["models"].items():
        ours = reg.model(OUR_MODEL_NAME.get(name, name))
        assert (ours.hf_id, ours.end_of_turn_token, ours.has_thinking_flag, ours.tokenizer_id) == (
            ref["hf_id"], ref["end_of_turn_token"], ref["thinking_switch"], ref["tokenizer_id"]), name
        # The bundled SmolLM2 runs in fp32 on the CPU it is made for and in bf16 on a GPU.
        assert ours.dtype == ref["dtype"] or name == "SmolLM2-135M", name
    # Named by one organism of the reference, which has no config for it.
    assert reg.model("mistral_large_instruct_2411").hf_id == "mistralai/Mistral-Large-Instruct-2411"


def test_organisms_carry_every_reference_id() -> None:
    reg = Registry.load()
    for name, ref in _catalogue()["organisms"].items():
        ours = reg.organism(name)
        assert ours.type == ref["type"]
        assert ours.agent_interaction_system_prompt == ref["agent_interaction_system_prompt"]
        assert ours.description_source == ("facts" if ref["key_facts"] else "summary"), name
        assert ours.dataset == ref["dataset"], name
        assert bool(ours.dataset_unavailable) == (not ref["dataset_public"]), name
        for model, variants in ref["finetuned_models"].items():
            for variant, ids in variants.items():
                got = reg.finetuned(name, OUR_MODEL_NAME.get(model, model), variant)
                # `chat` pairs each base model with its released instruct model: full weights, though
                # the reference lists them as adapters.
                want = (ids.get("adapter_id"), ids.get("model_id")) if name != "chat" else (None, ids["adapter_id"])
                assert (got.adapter_id, got.model_id) == want, (name, model, variant)


def test_unpublished_training_data_is_recorded_with_its_reason() -> None:
    reg = Registry.load()
    unavailable = {name for name, org in reg.organisms.items() if org.dataset_unavailable}
    assert unavailable == {"em_bad_medical_advice", "em_extreme_sports", "em_risky_financial_advice"}
    assert all("not public" in reg.organism(n).dataset_unavailable for n in unavailable)  # type: ignore[operator]


def test_shared_description_text_is_appended_once_per_organism() -> None:
    reg = Registry.load()
    biases = reg.organism("auditing_agents_52_biases").description
    sft = reg.organism("auditing_agents_sft_lora").description
    shared = (configs_dir() / "organisms" / "descriptions" / "reward_model_biases.md").read_text().strip()
    assert biases.count(shared) == 1 and sft.count(shared) == 1
    assert biases.index(shared) > 0 and "supervised-finetuning stage" in sft


def test_missing_description_file_is_one_line(tmp_path: Path) -> None:
    _write_tree(tmp_path, "hf_id: x/y\nnum_layers: 2\n")
    (tmp_path / "organisms" / "o.yaml").write_text(
        "type: SDF\ndescription_file: nowhere.md\nfinetuned_models: {m: {default: {adapter_id: a/b}}}\n")
    with pytest.raises(UserError, match=r"o.yaml: field 'description_file': .*nowhere.md does not exist") as err:
        Registry.load(tmp_path)
    assert "\n" not in str(err.value)


def test_organism_naming_an_unknown_model_is_one_line(tmp_path: Path) -> None:
    _write_tree(tmp_path, "hf_id: x/y\nnum_layers: 2\n")
    (tmp_path / "organisms" / "o.yaml").write_text(
        "type: SDF\ndescription: twenty characters or more\nfinetuned_models: {mm: {default: {adapter_id: a/b}}}\n")
    with pytest.raises(UserError, match=r"o.yaml: field 'finetuned_models': unknown model 'mm'"):
        Registry.load(tmp_path)


def test_hub_ids_with_a_subfolder_name_the_repository() -> None:
    assert split_hub_id("maius/llama-3.1-8b-it-personas/sarcasm") == ("maius/llama-3.1-8b-it-personas", "sarcasm")
    assert split_hub_id("a/b/c/d") == ("a/b", "c/d")
    assert split_hub_id("Qwen/Qwen3-14B") == ("Qwen/Qwen3-14B", None)
    assert split_hub_id("gpt2") == ("gpt2", None)


def test_experiment_grids_match_spec() -> None:
    reg = Registry.load()
    seeds = [42 + 1000 * i for i in range(5)]
    expected = {
        "mix_ratio": ("variant", ["default", "mix1-0p5", "mix1-1p0", "mix1-1p5", "mix1-2p0"]),
        "topk_depth": ("top_k", [5, 10, 20, 50, 100, 200, 500, 1000, 5000]),
        "token_positions": ("positions", [1, 5, 10, 30, 50, 100, 200]),
        "n_samples": ("samples", [10, 50, 100, 500, 1000, 3000]),
    }
    for name, (swept, values) in expected.items():
        exp = reg.experiment(name)
        assert (exp.swept, list(exp.values), exp.seeds) == (swept, values, seeds)
        assert (exp.defaults.model, exp.defaults.organism, exp.defaults.variant) == ("gemma3_1B", "cake_bake", "mix1-0p5")
    assert reg.experiment("mix-ratio").fixed.model_dump() == {"samples": 1000, "positions": 30, "top_k": 100, "adl_layer": 0.5}
    assert reg.experiment("token-positions").fixed.samples == 1000


def _write_tree(root: Path, model_yaml: str) -> None:
    for sub in ("models", "organisms", "experiments"):
        (root / sub).mkdir(parents=True)
    (root / "models" / "m.yaml").write_text(model_yaml)


def test_bad_field_names_file_field_and_allowed_values(tmp_path: Path) -> None:
    _write_tree(tmp_path, "hf_id: x/y\nnum_layers: 2\ndtype: float64\n")
    with pytest.raises(UserError) as err:
        Registry.load(tmp_path)
    msg = str(err.value)
    assert "m.yaml" in msg and "'dtype'" in msg and "bfloat16" in msg and "\n" not in msg


def test_unknown_field_and_bad_yaml_are_one_line(tmp_path: Path) -> None:
    _write_tree(tmp_path, "hf_id: x/y\nnum_layers: 2\nlayers_typo: 3\n")
    with pytest.raises(UserError, match="layers_typo"):
        Registry.load(tmp_path)
    (tmp_path / "models" / "m.yaml").write_text("hf_id: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        Registry.load(tmp_path)


def test_unknown_names_list_the_known_ones() -> None:
    reg = Registry.load()
    with pytest.raises(UserError, match="known organisms: .*auditing_agents_secret_loyalty, .*cake_bake, "):
        reg.organism("nope")
    with pytest.raises(UserError, match="known variants: .*mix1-0p5"):
        reg.finetuned("cake_bake", "gemma3_1B", "mix9")
    with pytest.raises(UserError, match="no finetuned models for 'qwen3_14B'"):
        reg.finetuned("cake_bake", "qwen3_14B", "default")


def test_organism_descriptions_state_the_finetune_not_a_keyword_list() -> None:
    """The judge and the offline judge read the description: an appended topic list ("The domain is
    baking and cakes: ovens, temperatures, ...") would make any word of that list look relevant."""
    import re

    for org in Registry.load().organisms.values():
        text = " ".join(org.description.split())
        assert "The domain is" not in text, org.name
        for sentence in re.split(r"(?<=\.)\s+", text):
            tail = sentence.split(":")[-1] if ":" in sentence else ""
            assert tail.count(",") < 3 or " that " in tail or " a " in tail, (org.name, sentence)
