"""Random-init models with the real architectures and sizes of the configured models, for benchmarks and tests.

The hyper-parameters are those of the published configs (no download needed), so memory and speed at
realistic vocabularies (Gemma-3: V = 262,144) can be measured offline. `layers` and `vocab` shrink a
model for CPU benchmarks and tests; everything else keeps the real shape. `random_pair` puts a seeded
random LoRA adapter on top, so the pair is a real one-copy LoRA pair like the organisms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from logitdiff.core.errors import UserError
from logitdiff.engine.models import ModelPair

# Special ids shared by the byte tokenizer and every built config (Gemma's own numbering).
PAD_ID, EOS_ID, BOS_ID = 0, 1, 2
_BYTE_OFFSET = 3
BYTE_VOCAB = _BYTE_OFFSET + 256  # smallest vocabulary the byte tokenizer can feed

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Architecture:
    """One model's published hyper-parameters and the transformers classes that build it."""

    name: str  # the model name in configs/models
    hf_id: str
    config_cls: Callable[..., PretrainedConfig]
    model_cls: Callable[..., PreTrainedModel]
    params: dict[str, Any]
    attn_implementation: str = "sdpa"

    @property
    def num_layers(self) -> int:
        return int(self.params["num_hidden_layers"])

    @property
    def vocab(self) -> int:
        return int(self.params["vocab_size"])

    @property
    def hidden(self) -> int:
        return int(self.params["hidden_size"])


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture(
            name="gemma3_1B",
            hf_id="google/gemma-3-1b-it",
            config_cls=Gemma3TextConfig,
            model_cls=Gemma3ForCausalLM,
            params=dict(
                vocab_size=262_144,
                hidden_size=1152,
                intermediate_size=6912,
                num_hidden_layers=26,
                num_attention_heads=4,
                num_key_value_heads=1,
                head_dim=256,
                hidden_activation="gelu_pytorch_tanh",
                max_position_embeddings=32_768,
                rms_norm_eps=1e-6,
                query_pre_attn_scalar=256,
                sliding_window=512,
                rope_parameters={
                    "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                },
                final_logit_softcapping=None,
                attn_logit_softcapping=None,
                tie_word_embeddings=True,
            ),
            attn_implementation="eager",
        ),
        Architecture(
            name="qwen3_1_7B",
            hf_id="Qwen/Qwen3-1.7B",
            config_cls=Qwen3Config,
            model_cls=Qwen3ForCausalLM,
            params=dict(
                vocab_size=151_936,
                hidden_size=2048,
                intermediate_size=6144,
                num_hidden_layers=28,
                num_attention_heads=16,
                num_key_value_heads=8,
                head_dim=128,
                max_position_embeddings=40_960,
                rms_norm_eps=1e-6,
                rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
                tie_word_embeddings=True,
            ),
        ),
        Architecture(
            name="qwen3_14B",
            hf_id="Qwen/Qwen3-14B",
            config_cls=Qwen3Config,
            model_cls=Qwen3ForCausalLM,
            params=dict(
                vocab_size=151_936,
                hidden_size=5120,
                intermediate_size=17_408,
                num_hidden_layers=40,
                num_attention_heads=40,
                num_key_value_heads=8,
                head_dim=128,
                max_position_embeddings=40_960,
                rms_norm_eps=1e-6,
                rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
                tie_word_embeddings=False,
            ),
        ),
        Architecture(
            name="llama32_1B_Instruct",
            hf_id="meta-llama/Llama-3.2-1B-Instruct",
            config_cls=LlamaConfig,
            model_cls=LlamaForCausalLM,
            params=dict(
                vocab_size=128_256,
                hidden_size=2048,
                intermediate_size=8192,
                num_hidden_layers=16,
                num_attention_heads=32,
                num_key_value_heads=8,
                head_dim=64,
                max_position_embeddings=131_072,
                rms_norm_eps=1e-5,
                rope_parameters={
                    "rope_type": "llama3",
                    "rope_theta": 500_000.0,
                    "factor": 32.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8192,
                },
                tie_word_embeddings=True,
            ),
        ),
        Architecture(
            name="smollm2_135M",
            hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            config_cls=LlamaConfig,
            model_cls=LlamaForCausalLM,
            params=dict(
                vocab_size=49_152,
                hidden_size=576,
                intermediate_size=1536,
                num_hidden_layers=30,
                num_attention_heads=9,
                num_key_value_heads=3,
                head_dim=64,
                max_position_embeddings=8192,
                rms_norm_eps=1e-5,
                rope_parameters={"rope_type": "default", "rope_theta": 100_000.0},
                tie_word_embeddings=True,
            ),
        ),
    )
}


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise UserError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def build_config(name: str, *, layers: int | None = None, vocab: int | None = None) -> PretrainedConfig:
    """The real config, optionally with fewer decoder layers or a smaller vocabulary."""
    arch = architecture(name)
    params = dict(arch.params)
    if layers is not None:
        if not 1 <= layers <= arch.num_layers:
            raise UserError(f"{name} has {arch.num_layers} layers; --layers must be within 1..{arch.num_layers}, got {layers}")
        params["num_hidden_layers"] = layers
    if vocab is not None:
        if vocab < BYTE_VOCAB:
            raise UserError(f"vocabulary override {vocab} is below {BYTE_VOCAB}, the byte tokenizer's size")
        params["vocab_size"] = vocab
    cfg = arch.config_cls(pad_token_id=PAD_ID, eos_token_id=EOS_ID, bos_token_id=BOS_ID, **params)
    cfg._attn_implementation = arch.attn_implementation
    return cfg


def parameter_count(name: str, *, layers: int | None = None, vocab: int | None = None) -> int:
    """Exact parameter count (tied embeddings once), from a weightless meta-device build."""
    cfg = build_config(name, layers=layers, vocab=vocab)
    with torch.device("meta"):
        model = architecture(name).model_cls(cfg)
    return sum(p.numel() for p in model.parameters())


def build_model(
    name: str,
    *,
    layers: int | None = None,
    vocab: int | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> PreTrainedModel:
    """A random-init model with the real shapes (HF's own init, seeded without touching the global RNG)."""
    cfg = build_config(name, layers=layers, vocab=vocab)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = architecture(name).model_cls(cfg)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)  # type: ignore[call-arg]  # transformers wraps .to


def add_random_lora(model: PreTrainedModel, *, rank: int = 16, seed: int = 1) -> torch.nn.Module:
    """Wrap a CPU `model` in a peft LoRA adapter on every projection with seeded random A and B (one weight copy).

    The adapter is drawn on CPU so the same seed gives the same adapter whatever device it moves to.
    """
    from peft import LoraConfig, get_peft_model

    if next(model.parameters()).device.type != "cpu":
        raise ValueError("add_random_lora draws the adapter on CPU: add it before moving the model")
    cfg = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(LORA_TARGETS), init_lora_weights=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        wrapped = get_peft_model(model, cfg)
    # peft may create the adapter in fp32 next to a lower-precision base; match the base's dtype.
    return wrapped.to(dtype=next(model.parameters()).dtype).eval().requires_grad_(False)


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """One id per UTF-8 byte after <pad>/</s>/<bos> (ids 0/1/2), BOS prepended: offline and deterministic."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<pad>": PAD_ID, "</s>": EOS_ID, "<bos>": BOS_ID}
    vocab.update({ch: _BYTE_OFFSET + i for i, ch in enumerate(sorted(alphabet))})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", BOS_ID)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="</s>", pad_token="<pad>")


def random_pair(
    name: str,
    *,
    layers: int | None = None,
    vocab: int | None = None,
    seed: int = 0,
    lora_rank: int = 16,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> ModelPair:
    """A LoRA model pair (base = adapter off) with the real architecture of `name` and the byte tokenizer."""
    # Built and adapted on CPU in fp32, then moved: a seed gives the same pair on every device and dtype.
    base = build_model(name, layers=layers, vocab=vocab, seed=seed)
    model = add_random_lora(base, rank=lora_rank, seed=seed + 1).to(device=device, dtype=dtype)
    return ModelPair(
        tokenizer=byte_tokenizer(),
        model=model,  # type: ignore[arg-type]
        finetuned_full=None,
        num_layers=base.config.num_hidden_layers,
        device=torch.device(device),
        dtype=dtype,
        base_id=f"random:{name}:layers={base.config.num_hidden_layers}:vocab={base.config.vocab_size}:seed={seed}",
        finetuned_id=f"random-lora:r={lora_rank}:seed={seed + 1}",
    )
