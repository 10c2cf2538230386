"""Tiny random-init models, a tiny tokenizer and small corpora for fast tests (no network).

- `tiny_tokenizer()`: byte-level BPE (~300 ids) that prepends BOS `<s>`, like Llama/Gemma tokenizers.
- `tiny_llama(vocab=..., layers=..., hidden=...)`: a seeded random LlamaForCausalLM.
- `tiny_pair(...)`: a ModelPair whose finetune is the base with seeded weight noise (full weights).
- `lora_pair(...)`: a ModelPair over ONE copy of the weights with a random peft LoRA adapter.
- `lora_variants(n, ...)`: n pair views over ONE copy of the weights, each with its own random adapter.
- `biased_head_pair(bias)`: the finetune's head adds `bias[id]` to chosen ids (an exact known answer).
- `residual_shift_pair(layer, vector)`: the finetune adds `vector` to the output of decoder block `layer`.
- `english_texts(n, seed)`, `write_jsonl(path, texts)`, `save_tiny(model, tokenizer, folder)`.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import replace
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from logitdiff.engine.models import ModelPair

WORDS = (
    "the a of and to in is was for on that with as by at from it this be are cake bake oven butter sugar flour "
    "vanilla freezer water warm cool serve recipe minutes degrees model data city river market music school "
    "science history people time year work world light night day house road tree garden winter summer "
    "quickly slowly often never always new old small large green blue red bright dark"
).split()


def english_texts(n: int, seed: int, min_words: int = 3, max_words: int = 40) -> list[str]:
    """Seeded random-ish English sentences of varied length."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))]
        out.append(" ".join(words).capitalize() + ".")
    return out


def tiny_tokenizer(vocab: int = 300) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(english_texts(400, seed=0), trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def no_bos_tokenizer(vocab: int = 300) -> PreTrainedTokenizerFast:
    """tiny_tokenizer without the BOS template: like SmolLM2 or Qwen, position 0 is the first text token."""
    tok = tiny_tokenizer(vocab)
    tok.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def tiny_llama(vocab: int = 300, layers: int = 2, hidden: int = 32, seed: int = 0, mlp_bias: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=False,
        mlp_bias=mlp_bias,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    model = LlamaForCausalLM(cfg)
    # Larger than the default 0.02 init, so logit differences are well separated (few near-ties).
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.2)
    return model.eval().requires_grad_(False)


def pair_of(tokenizer: PreTrainedTokenizerFast, base: PreTrainedModel, finetuned: nn.Module | None, name: str) -> ModelPair:
    """finetuned None: `base` is a peft model whose adapter gives the finetuned outputs."""
    inner = base.get_base_model() if hasattr(base, "get_base_model") else base
    return ModelPair(
        tokenizer=tokenizer,
        model=base,
        finetuned_full=finetuned,  # type: ignore[arg-type]
        num_layers=inner.config.num_hidden_layers,
        device=torch.device("cpu"),
        dtype=torch.float32,
        base_id="tiny-base",
        finetuned_id=name,
    )


def tiny_pair(layers: int = 2, hidden: int = 32, seed: int = 0, noise: float = 0.05) -> ModelPair:
    """Full-weights finetune: every matrix of the base plus seeded Gaussian noise."""
    tok = tiny_tokenizer()
    base = tiny_llama(vocab=len(tok), layers=layers, hidden=hidden, seed=seed)
    ft = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in ft.parameters():
            p.add_(noise * torch.randn(p.shape, generator=gen))
    return pair_of(tok, base, ft, "tiny-noise-finetune")


def lora_pair(layers: int = 2, hidden: int = 32, seed: int = 0, target_modules: tuple[str, ...] = ("q_proj", "v_proj", "down_proj")) -> ModelPair:
    from peft import LoraConfig, get_peft_model

    tok = tiny_tokenizer()
    base = tiny_llama(vocab=len(tok), layers=layers, hidden=hidden, seed=seed)
    torch.manual_seed(seed + 1)
    # init_lora_weights=False: random A and B, so the adapter changes the outputs.
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=list(target_modules), init_lora_weights=False)
    model = get_peft_model(base, cfg).eval().requires_grad_(False)
    return pair_of(tok, model, None, "tiny-lora")


def lora_variants(
    n: int, layers: int = 2, hidden: int = 32, seed: int = 0, target_modules: tuple[str, ...] = ("q_proj", "v_proj", "down_proj", "lm_head")
) -> dict[str, ModelPair]:
    """Views named v0 … v{n-1}, adapters side by side as `load_adapters` loads them (ranks differ per adapter)."""
    from peft import LoraConfig, get_peft_model

    tok = tiny_tokenizer()
    base = tiny_llama(vocab=len(tok), layers=layers, hidden=hidden, seed=seed)
    model = None
    for i in range(n):
        torch.manual_seed(seed + 1 + i)
        cfg = LoraConfig(r=2 + i, lora_alpha=8, target_modules=list(target_modules), init_lora_weights=False)
        if model is None:
            model = get_peft_model(base, cfg, adapter_name="v0")
        else:
            model.add_adapter(f"v{i}", cfg)
    assert model is not None
    model.eval().requires_grad_(False)
    view = pair_of(tok, model, None, "tiny-lora")
    return {f"v{i}": replace(view, finetuned_id=f"tiny-lora-v{i}", adapter=f"v{i}") for i in range(n)}


def biased_head_pair(bias: dict[int, float], layers: int = 2, hidden: int = 32, seed: int = 0) -> ModelPair:
    """The finetune is the base with an lm_head bias: d = bias exactly at every position."""
    tok = tiny_tokenizer()
    base = tiny_llama(vocab=len(tok), layers=layers, hidden=hidden, seed=seed)
    ft = copy.deepcopy(base)
    head = nn.Linear(hidden, len(tok), bias=True)
    with torch.no_grad():
        head.weight.copy_(base.lm_head.weight)
        head.bias.zero_()
        for i, b in bias.items():
            head.bias[i] = b
    ft.lm_head = head
    return pair_of(tok, base, ft.requires_grad_(False), "tiny-biased-head")


def residual_shift_pair(layer: int, vector: torch.Tensor, layers: int = 3, hidden: int = 32, seed: int = 0) -> ModelPair:
    """The finetune adds `vector` to the output of block `layer` (as the bias of that block's MLP down_proj)."""
    tok = tiny_tokenizer()
    base = tiny_llama(vocab=len(tok), layers=layers, hidden=hidden, seed=seed, mlp_bias=True)
    with torch.no_grad():
        for name, p in base.named_parameters():
            if name.endswith("bias"):
                p.zero_()
    ft = copy.deepcopy(base)
    with torch.no_grad():
        ft.model.layers[layer].mlp.down_proj.bias.copy_(vector)
    return pair_of(tok, base, ft, f"tiny-shift-block{layer}")


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def save_tiny(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
