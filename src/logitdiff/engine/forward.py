"""Run one side of a model pair on a batch: final hidden states, residuals at chosen blocks, and fp32 logits."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from logitdiff.engine.models import ModelPair


def _unwrap(model: nn.Module) -> nn.Module:
    """The *ForCausalLM module under a peft wrapper (LoRA layers inside it follow the adapter switch)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _store(out: dict[int, torch.Tensor], layer: int, _module: nn.Module, _args: object, output: object) -> None:
    out[layer] = output[0] if isinstance(output, tuple) else output  # type: ignore[index,assignment]


@dataclass(frozen=True)
class SideOutput:
    hidden: torch.Tensor  # [B, R, H] after the final norm
    residuals: dict[int, torch.Tensor]  # block index -> [B, R, H] output of that decoder block


def run_body(model: nn.Module, ids: torch.Tensor, layers: frozenset[int]) -> SideOutput:
    """The decoder stack only; the head is applied by `Readout` so logits can be made in fp32."""
    decoder = _unwrap(model).model
    residuals: dict[int, torch.Tensor] = {}
    handles = [decoder.layers[l].register_forward_hook(partial(_store, residuals, l)) for l in sorted(layers)]
    try:
        out = decoder(input_ids=ids, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return SideOutput(hidden=out.last_hidden_state, residuals=residuals)


class Readout:
    """fp32 logits of one model's head, honouring a bias and Gemma-style final logit soft-capping."""

    def __init__(self, model: nn.Module) -> None:
        inner = _unwrap(model)
        self.head: nn.Module = inner.get_output_embeddings()
        self.plain = type(self.head) is nn.Linear  # not wrapped by a LoRA layer
        self.softcap: float | None = getattr(inner.config, "final_logit_softcapping", None)
        if self.plain:
            # For fp32 models .float() returns the same tensor: no copy.
            self.weight = self.head.weight.float()
            self.bias = None if self.head.bias is None else self.head.bias.float()

    @property
    def linear(self) -> bool:
        """logits = W·h exactly (no bias, no cap, no adapter): the head commutes with subtraction."""
        return self.plain and self.bias is None and self.softcap is None

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        # .to: under a device_map the final hidden state may come from another GPU than the head.
        z = F.linear(hidden.to(self.weight.device).float(), self.weight, self.bias) if self.plain else self.head(hidden).float()
        if self.softcap:
            z = z.div_(self.softcap).tanh_().mul_(self.softcap)  # in place: no extra [positions, V] copies
        return z


class PairReadout:
    """Both heads of a pair. Call `base.logits` inside `as_base()` (an adapted head follows the switch).

    With a LoRA pair whose head is not adapted, both sides share one linear head, so
    d = W·(h_ft − h_base): the same number up to fp32 rounding, for one head matmul instead of two.
    """

    def __init__(self, pair: ModelPair, base: Readout | None = None) -> None:
        """base: the base side's Readout of another view of the same weights (its fp32 head copy is shared)."""
        with pair.as_base() as base_model:
            self.base = base if base is not None else Readout(base_model)
        with pair.as_finetuned() as ft:
            same_head = _unwrap(ft).get_output_embeddings() is self.base.head
            # One Readout for one head module: on a bf16 GPU model its fp32 weight copy is ~1 GiB at V=262k.
            self.ft = self.base if same_head else Readout(ft)
        self.shared = pair.finetuned_full is None and self.ft.head is self.base.head and self.ft.linear

    def shared_diff(self, h_base: torch.Tensor, h_ft: torch.Tensor) -> torch.Tensor:
        dev = self.ft.weight.device
        return F.linear(h_ft.to(dev).float() - h_base.to(dev).float(), self.ft.weight)
