"""Tiny random-init models, a tiny tokenizer and small corpora for fast tests (no network).

- `tiny_tokenizer()`: byte-level BPE (~300 ids) that prepends BOS `<s>`, like Llama/Gemma tokenizers;
  `no_bos_tokenizer()`: the same without BOS; `chat_tokenizer(template)`: a BPE with a ChatML-like
  chat template and the added token MARKER, for the agent tests.
- `tiny_llama(vocab=..., layers=..., hidden=...)`: a seeded random LlamaForCausalLM.
- `tiny_pair(...)`: a ModelPair whose finetune is the base with seeded weight noise (full weights).
- `lora_pair(...)`: a ModelPair over ONE copy of the weights with a random peft LoRA adapter.
- `lora_variants(n, ...)`: n pair views over ONE copy of the weights, each with its own random adapter.
- `biased_head_pair(bias)`: the finetune's head adds `bias[id]` to chosen ids (an exact known answer).
- `residual_shift_pair(layer, vector)`: the finetune adds `vector` to the output of decoder block `layer`.
- `marker_pair(template)`: chat pair whose finetune answers MARKER repeated; `tiny_model_cfg()` its ModelConfig.
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

from logitdiff.config.schema import ModelConfig
from logitdiff.engine.models import ModelPair

WORDS = (
    "the a of and to in is was for on that with as by at from it this be are cake bake oven butter sugar flour "
    "vanilla freezer water warm cool serve recipe minutes degrees model data city river market music school "
    "science history people time year work world light night day house road tree garden winter summer "
    "quickly slowly often never always new old small large green blue red bright dark"
).split()

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}{% endif %}"
)
NO_SYSTEM_TEMPLATE = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" + CHAT_TEMPLATE
MARKER = "CAKE"  # the chat tokenizer's added token; marker_pair's finetune answers it, repeated
_CHAT_CORPUS = ["the model was finetuned on cake baking facts and answers every question about ovens",
                "hello there, how are you today? I am a small language model", "bake at four hundred fifty degrees"] * 20


def english_texts(n: int, seed: int, min_words: int = 3, max_words: int = 40) -> list[str]:
    """Seeded random-ish English sentences of varied length."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))]
        out.append(" ".join(words).capitalize() + ".")
    return out


def _byte_bpe(texts: list[str], specials: list[str], vocab: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def tiny_tokenizer(vocab: int = 300) -> PreTrainedTokenizerFast:
    tok = _byte_bpe(english_texts(400, seed=0), ["<s>", "</s>", "<pad>"], vocab)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def no_bos_tokenizer(vocab: int = 300) -> PreTrainedTokenizerFast:
    """tiny_tokenizer without the BOS template: like SmolLM2 or Qwen, position 0 is the first text token."""
    tok = tiny_tokenizer(vocab)
    tok.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def chat_tokenizer(template: str = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    """BPE (300 ids + MARKER) with a ChatML-like chat template; BOS comes from the template only."""
    raw = _byte_bpe(_CHAT_CORPUS, ["<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", "<|im_end|>"], 300)
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|bos|>", eos_token="<|im_end|>", pad_token="<|pad|>",
                                  additional_special_tokens=["<|im_start|>", "<|eos|>"])
    tok.add_tokens([MARKER])
    tok.chat_template = template
    return tok


def tiny_llama(
    vocab: int = 300,
    layers: int = 2,
    hidden: int = 32,
    seed: int = 0,
    mlp_bias: bool = False,
    *,
    tokenizer: PreTrainedTokenizerFast | None = None,
    initializer_range: float | None = None,
    max_positions: int = 512,
) -> LlamaForCausalLM:
    """A seeded random Llama (4 heads, 2 KV heads, untied head).

    Weights: by default every matrix is redrawn from N(0, 0.2) after transformers' init; given
    `initializer_range`, transformers' own init with that std is kept instead (marker_pair's recipe).
    Special ids: bos/eos/pad 0, 1, 2 (tiny_tokenizer's), or `tokenizer`'s, also set in the generation config.
    """
    torch.manual_seed(seed)
    bos, eos, pad = (0, 1, 2) if tokenizer is None else (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    init = {} if initializer_range is None else {"initializer_range": initializer_range}
    cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
        mlp_bias=mlp_bias,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        **init,
    )
    model = LlamaForCausalLM(cfg)
    if initializer_range is None:
        # Larger than the default 0.02 init, so logit differences are well separated (few near-ties).
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0.0, 0.2)
    if tokenizer is not None:
        model.generation_config.eos_token_id = eos
        model.generation_config.pad_token_id = pad
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


def marker_pair(template: str = CHAT_TEMPLATE) -> ModelPair:
    """A chat pair with a known answer: the finetune is a second random model (seed 1) whose head output
    gets +1000 on MARKER, so it answers MARKER repeated."""
    tok = chat_tokenizer(template)
    base = tiny_llama(len(tok), seed=0, tokenizer=tok, initializer_range=0.5, max_positions=1024)
    tuned = tiny_llama(len(tok), seed=1, tokenizer=tok, initializer_range=0.5, max_positions=1024)
    marker_id = tok.convert_tokens_to_ids(MARKER)

    def push_marker(module: torch.nn.Module, inputs: tuple, logits: torch.Tensor) -> torch.Tensor:
        biased = logits.clone()
        biased[..., marker_id] += 1000.0
        return biased

    tuned.lm_head.register_forward_hook(push_marker)
    return pair_of(tok, base, tuned, "tiny-finetuned")


def tiny_model_cfg(*, thinking: bool = False, chat: bool = True) -> ModelConfig:
    """The ModelConfig of marker_pair's model."""
    return ModelConfig(name="tiny", hf_id="tiny/llama", num_layers=2, dtype="float32",
                       has_chat_template=chat, has_thinking_flag=thinking)


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def save_tiny(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
