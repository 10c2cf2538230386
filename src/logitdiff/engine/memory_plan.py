"""How much memory a pass may use per batch, and the position chunks its vocabulary-sized work runs in.

At real vocabularies the readout (fp32 logits, d, top-K, counter updates) dominates memory: one
position of Gemma-3 (V = 262,144) is 1 MiB per fp32 tensor, far above its decoder activations. So the
readout runs in chunks of positions sized to the budget, whatever the batch size or T, and memory
stays bounded independently of S.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

READOUT_COPIES = 3  # fp32 [positions, V] tensors alive at once: d, the other side's logits or a slot's slice, temps
CPU_BUDGET_BYTES = READOUT_COPIES * 4 * 2**25  # host: 2**25 positions×vocab elements per batch (384 MiB)
GPU_FREE_SHARE = 0.5  # of the GPU memory left once the models and fp32 heads are resident
MAX_FORWARD_TEXTS = 256


def available_bytes(device: torch.device) -> int:
    """A share of the free GPU memory (torch's cached blocks count as free), or the fixed host budget."""
    if device.type != "cuda":
        return CPU_BUDGET_BYTES
    free, _total = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(GPU_FREE_SHARE * (free + cached))


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
