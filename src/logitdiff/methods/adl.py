"""Activation Difference Lens (SPEC §4): the logit lens of the pass's mean vectors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel
from torch import nn

from logitdiff.engine.models import ModelPair
from logitdiff.engine.stats import AdlStats

LENS_TOP_N = 100
LENS_VECTORS = ("delta", "base_mean", "ft_mean")
# Relative layers whose δ lens every ADL cell also stores, with its own layer, for the agent's drill-down.
DRILL_LAYERS = (0.25, 0.5, 0.75)


class LensTokens(BaseModel):
    token_ids: list[int]
    tokens: list[str]
    probs: list[float]


class LensPosition(BaseModel):
    position: int
    positive: LensTokens  # top of softmax(z)
    negative: LensTokens  # top of softmax(−z)


class AdlLens(BaseModel):
    relative_layer: float
    layer: int
    samples: int
    positions: int
    base_norm: float
    ft_norm: float
    delta: list[LensPosition]
    base_mean: list[LensPosition]
    ft_mean: list[LensPosition]


def lens_logits(x: torch.Tensor, pair: ModelPair) -> torch.Tensor:
    """z = lm_head_ft(final_norm_ft(x)) in fp32 for x [T, H] (KEEP: the finetuned model's norm and head)."""
    with torch.inference_mode(), pair.as_finetuned():
        norm, head = pair.finetuned_readout()
        xn = norm(x.to(pair.device, torch.float32)).float()
        if type(head) is nn.Linear:
            bias = None if head.bias is None else head.bias.float()
            return F.linear(xn, head.weight.float(), bias)
        return head(xn.to(pair.dtype)).float()  # an adapted head: run the module itself


def _top(probs: torch.Tensor, n: int, tokenizer: object) -> LensTokens:
    p, ids = torch.topk(probs, n)
    id_list = [int(i) for i in ids]
    return LensTokens(token_ids=id_list, tokens=[tokenizer.decode([i]) for i in id_list], probs=[float(v) for v in p])  # type: ignore[attr-defined]


def lens_positions(x: torch.Tensor, pair: ModelPair, top_n: int, first_position: int = 0) -> list[LensPosition]:
    """Row i of x is token position first_position + i."""
    z = lens_logits(x, pair).cpu()
    n = min(top_n, z.shape[-1])
    pos, neg = torch.softmax(z, dim=-1), torch.softmax(-z, dim=-1)
    return [
        LensPosition(position=first_position + t, positive=_top(pos[t], n, pair.tokenizer), negative=_top(neg[t], n, pair.tokenizer))
        for t in range(z.shape[0])
    ]


def logit_lens(stats: AdlStats, pair: ModelPair, top_n: int = LENS_TOP_N) -> AdlLens:
    return AdlLens(
        relative_layer=stats.relative_layer,
        layer=stats.layer,
        samples=stats.samples,
        positions=stats.positions_per_text,
        base_norm=stats.base_norm,
        ft_norm=stats.ft_norm,
        delta=lens_positions(stats.delta_mean, pair, top_n, stats.first_position),
        base_mean=lens_positions(stats.base_mean, pair, top_n, stats.first_position),
        ft_mean=lens_positions(stats.ft_mean, pair, top_n, stats.first_position),
    )


def drill_layers(cell_layer: float) -> list[float]:
    """The relative layers an ADL pass reads for the drill-down: DRILL_LAYERS and the cell's own layer."""
    return sorted({*DRILL_LAYERS, cell_layer})


class DrillLayer(BaseModel):
    relative_layers: list[float]  # every drill layer that floors to this block
    layer: int
    positions: list[int]
    top: list[LensTokens]  # top[i]: the promoted tokens (softmax(z) of δ) at positions[i]


class DrillLens(BaseModel):
    """δ's logit lens (promoted side, LENS_TOP_N tokens) at every position and at several layers: what
    the agent may look up beyond its overview. One entry per absolute layer, in layer order."""

    samples: int
    positions: int
    layers: list[DrillLayer]


def drill_lens(stats: list[AdlStats], pair: ModelPair, top_n: int = LENS_TOP_N) -> DrillLens:
    """From the pass statistics of one (S, T) slot at several layers; layers that floor to the same block are read once."""
    by_layer: dict[int, list[AdlStats]] = {}
    for s in sorted(stats, key=lambda s: s.relative_layer):
        by_layer.setdefault(s.layer, []).append(s)
    layers = []
    for layer, same in sorted(by_layer.items()):
        lens = lens_positions(same[0].delta_mean, pair, top_n, same[0].first_position)
        layers.append(DrillLayer(relative_layers=[s.relative_layer for s in same], layer=layer,
                                 positions=[p.position for p in lens], top=[p.positive for p in lens]))
    return DrillLens(samples=stats[0].samples, positions=stats[0].positions_per_text, layers=layers)
