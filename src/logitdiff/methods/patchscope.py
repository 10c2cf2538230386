"""ADL auto-patchscope readout of δ (SPEC §4; reference-notes adl.md §4).

The rescaled difference s·δ̂ (δ̂ = δ/‖δ‖·ν_ft) REPLACES the output of block l at the last token of three
identity prompts ("man -> man\\n…\\n?"), in the finetuned model; the next-token distribution then says what
the vector "means" to the model. Per scale, the probabilities are averaged over the prompts and only tokens
in the top 16384 of every prompt are kept (prompt-specific continuations drop out). Which scale is read is
chosen afterwards by the run's judge (judge/scale_choice.py).

Deviation from the reference: its negative scales are computed and then discarded, so they are not run.
Scales and vectors stay in fp32 (the reference casts the scales to bf16: 1.1 -> 1.1015625).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from pydantic import BaseModel
from torch import nn

from logitdiff.engine.forward import Readout, run_body
from logitdiff.engine.models import ModelPair
from logitdiff.engine.stats import AdlStats

SCALES: tuple[float, ...] = (
    *(round(0.5 + 0.1 * i, 1) for i in range(16)),  # 0.5 … 2.0
    3.0, 4.0, 5.0, 10.0,
    *(float(v) for v in range(20, 201, 20)),  # 20, 40 … 200
)
IDENTITY_WORDS: tuple[tuple[str, str, str], ...] = (("man", "1135", "hello"), ("bear", "42", "blue"), ("921", "target", "anna"))
INTERSECTION_TOP_K = 16384
TOKENS_PER_SCALE = 20


def identity_prompt(words: Sequence[str]) -> str:
    return "\n".join(f"{w} -> {w}" for w in words) + "\n?"


IDENTITY_PROMPTS = tuple(identity_prompt(w) for w in IDENTITY_WORDS)


class ScaleTokens(BaseModel):
    scale: float
    token_ids: list[int]
    tokens: list[str]
    probs: list[float]  # mean over the prompts of the patched next-token probability


class PatchscopePosition(BaseModel):
    position: int
    delta_norm: float  # ‖δ_p‖ before rescaling
    scales: list[ScaleTokens]


class AdlPatchscope(BaseModel):
    relative_layer: float
    layer: int
    samples: int
    positions: int
    ft_norm: float  # ν_ft: δ̂ has this norm at scale 1
    prompts: list[str]
    delta: list[PatchscopePosition]


def _replace_last(vectors: torch.Tensor, _module: nn.Module, _args: object, output: object) -> object:
    """Forward hook: row b of the block output at the last token becomes vectors[b]."""
    hidden = output[0] if isinstance(output, tuple) else output
    assert isinstance(hidden, torch.Tensor)
    hidden = hidden.clone()
    hidden[:, -1, :] = vectors.to(hidden.device, hidden.dtype)
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def patched_next_token_probs(pair: ModelPair, layer: int, prompt: str, vectors: torch.Tensor) -> torch.Tensor:
    """[R, V] fp32 next-token probabilities of the finetuned model on `prompt`, row r with block `layer`'s
    output at the last token replaced by vectors[r]."""
    ids = pair.tokenizer(prompt, return_tensors="pt")["input_ids"].to(pair.device)
    batch = ids.expand(vectors.shape[0], -1)
    with torch.inference_mode(), pair.as_finetuned() as model:
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        handle = inner.model.layers[layer].register_forward_hook(partial(_replace_last, vectors))
        try:
            out = run_body(model, batch, frozenset())
        finally:
            handle.remove()
        return torch.softmax(Readout(model).logits(out.hidden[:, -1]), dim=-1).cpu()


def intersected_mean(per_prompt: Sequence[torch.Tensor], top_k: int = INTERSECTION_TOP_K) -> torch.Tensor:
    """[R, V]: the mean over prompts of the probabilities, zero for tokens outside any prompt's top `top_k`."""
    k = min(top_k, per_prompt[0].shape[-1])
    keep = torch.ones_like(per_prompt[0], dtype=torch.bool)
    for probs in per_prompt:
        in_top = torch.zeros_like(keep)
        in_top.scatter_(-1, torch.topk(probs, k, dim=-1).indices, True)
        keep &= in_top
    return torch.stack(list(per_prompt)).mean(0) * keep


def _scale_tokens(scale: float, probs: torch.Tensor, tokenizer: object, n: int) -> ScaleTokens:
    p, ids = torch.topk(probs, min(n, probs.shape[-1]))
    kept = [(int(i), float(v)) for i, v in zip(ids, p, strict=True) if v > 0]
    return ScaleTokens(
        scale=scale,
        token_ids=[i for i, _ in kept],
        tokens=[tokenizer.decode([i]) for i, _ in kept],  # type: ignore[attr-defined]
        probs=[v for _, v in kept],
    )


def patchscope_position(pair: ModelPair, layer: int, delta: torch.Tensor, ft_norm: float, position: int,
                        scales: Sequence[float] = SCALES, prompts: Sequence[str] = IDENTITY_PROMPTS,
                        tokens_per_scale: int = TOKENS_PER_SCALE) -> PatchscopePosition:
    norm = float(delta.norm())
    unit = delta.float() / norm * ft_norm if norm > 0 else delta.float()
    vectors = torch.tensor(list(scales), dtype=torch.float32)[:, None] * unit[None, :]
    mean = intersected_mean([patched_next_token_probs(pair, layer, p, vectors) for p in prompts])
    return PatchscopePosition(
        position=position,
        delta_norm=norm,
        scales=[_scale_tokens(s, mean[i], pair.tokenizer, tokens_per_scale) for i, s in enumerate(scales)],
    )


def patchscope(stats: AdlStats, pair: ModelPair, lists: int, scales: Sequence[float] = SCALES) -> AdlPatchscope:
    """The readout of δ at the first `lists` positions that have a mean (from stats.first_position on)."""
    return AdlPatchscope(
        relative_layer=stats.relative_layer,
        layer=stats.layer,
        samples=stats.samples,
        positions=stats.positions_per_text,
        ft_norm=stats.ft_norm,
        prompts=list(IDENTITY_PROMPTS),
        delta=[
            patchscope_position(pair, stats.layer, row, stats.ft_norm, stats.first_position + i, scales)
            for i, row in enumerate(stats.delta_mean[:lists])
        ],
    )
