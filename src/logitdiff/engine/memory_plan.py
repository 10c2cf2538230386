"""How much memory a pass may use per batch, and the position chunks its vocabulary-sized work runs in.

At real vocabularies the readout (fp32 logits, d, top-K, counter updates) dominates memory: one
position of Gemma-3 (V = 262,144) is 1 MiB per fp32 tensor, far above its decoder activations. So the
readout runs in chunks of positions sized to the budget, whatever the batch size or T, and memory
stays bounded independently of S.

It also decides whether a full-weight finetune joins a shared pass as one more model beside the base
(and its LoRA adapters): only while its weights take at most `FULL_MODEL_SHARE` of the memory still
free, so the readout budget (a share of what is left) keeps room.
"""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import torch

READOUT_COPIES = 3  # fp32 [positions, V] tensors alive at once: d, the other side's logits or a slot's slice, temps
CPU_BUDGET_BYTES = READOUT_COPIES * 4 * 2**25  # host: 2**25 positions×vocab elements per batch (384 MiB)
GPU_FREE_SHARE = 0.5  # of the GPU memory left once the models and fp32 heads are resident
MAX_FORWARD_TEXTS = 256
FULL_MODEL_SHARE = 0.5  # of the free memory (GPU, or the host's available memory) one more model may take


def free_bytes(device: torch.device) -> int:
    """Memory still free where models live: the GPU's (torch's cached blocks count as free) or the host's."""
    if device.type != "cuda":
        return int(psutil.virtual_memory().available)
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def fits_beside(model_bytes: int, device: torch.device) -> bool:
    """Whether one more model of `model_bytes` may be loaded next to the resident ones for a shared pass."""
    return model_bytes <= FULL_MODEL_SHARE * free_bytes(device)


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of a model's parameters: a full finetune of it weighs the same (same architecture and dtype)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def available_bytes(device: torch.device) -> int:
    """A share of the free GPU memory (torch's cached blocks count as free), or the fixed host budget."""
    if device.type != "cuda":
        return CPU_BUDGET_BYTES
    return int(GPU_FREE_SHARE * free_bytes(device))


def readout_positions(budget_bytes: int, vocab: int) -> int:
    """Positions whose vocabulary-sized readout fits the budget (at least one)."""
    return max(1, budget_bytes // (READOUT_COPIES * 4 * vocab))


def readout_blocks(texts: int, run_length: int, positions: int) -> Iterator[tuple[slice, slice]]:
    """(text rows, positions) blocks covering a [texts, run_length] batch with ≤ `positions` positions each.

    Whole texts are grouped while they fit; a text longer than a block is split along its positions.
    """
    if positions >= run_length:
        step = positions // run_length
        for lo in range(0, texts, step):
            yield slice(lo, min(texts, lo + step)), slice(0, run_length)
        return
    for row in range(texts):
        for lo in range(0, run_length, positions):
            yield slice(row, row + 1), slice(lo, min(run_length, lo + positions))
