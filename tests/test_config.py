"""Every shipped YAML validates; bad configs and names fail with one line naming file/field."""

from pathlib import Path

import pytest

from logitdiff.config.loader import Registry
from logitdiff.core.errors import UserError
from logitdiff.core.paths import configs_dir


def test_every_shipped_config_validates() -> None:
    reg = Registry.load()
    assert {"gemma3_1B", "qwen3_1_7B", "qwen3_14B", "llama32_1B_Instruct", "smollm2_135M"} <= set(reg.models)
    assert {"cake_bake", "fda_approval", "auditing_agents_secret_loyalty"} <= set(reg.organisms)
    assert set(reg.experiments) == {"mix_ratio", "topk_depth", "token_positions", "n_samples"}
    yamls = {p.stem for sub in ("models", "organisms", "experiments") for p in (configs_dir() / sub).glob("*.yaml")}
    assert yamls == set(reg.models) | set(reg.organisms) | set(reg.experiments)


def test_model_facts_from_spec() -> None:
    reg = Registry.load()
    layers = {name: m.num_layers for name, m in reg.models.items()}
    assert layers == {"gemma3_1B": 26, "qwen3_1_7B": 28, "qwen3_14B": 40, "llama32_1B_Instruct": 16, "smollm2_135M": 30}
    assert reg.model("gemma3_1B").attn_implementation == "eager"
    assert reg.model("qwen3_14B").has_thinking_flag and not reg.model("gemma3_1B").has_thinking_flag
    assert reg.model("smollm2_135M").offline_source is not None


def test_organisms_carry_every_reference_id() -> None:
    import yaml

    # The shared folder sits beside every checkout of this project (and beside CI's clone).
    reference = yaml.safe_load((Path(__file__).parents[2] / "shared" / "reference-organisms.yaml").read_text())
    reg = Registry.load()
    for name, org in reference.items():
        ours = reg.organism(name)
        assert ours.type == org["type"]
        assert ours.agent_interaction_system_prompt == org["agent_interaction_system_prompt"]
        for model, variants in org["finetuned_models"].items():
            for variant, ref in variants.items():
                got = ours.finetuned_models[model][variant]
                assert (got.adapter_id, got.model_id) == (ref.get("adapter_id"), ref.get("model_id"))


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
    with pytest.raises(UserError, match="known organisms: auditing_agents_secret_loyalty, cake_bake"):
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
