"""LoRA finetuning of a causal LM on narrow documents, optionally mixed with generic text (CPU-friendly).

Batches hold whole documents, right-padded per sub-batch; padding is masked and labelled -100. An EOS
follows a document only where it really ends inside the length cap (documents cut by the cap, and
generic samples that stop mid-sentence, get none), so the adapter never learns that EOS can come
anywhere. A mix step runs the narrow and the generic sub-batch separately (no padding of short
generic texts to the narrow length) and weights their mean token losses by document count.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass(frozen=True)
class LoraRecipe:
    """Everything that decides an adapter besides the data."""

    steps: int = 30
    narrow_batch: int = 4
    mix_ratio: float = 0.0  # generic documents per narrow document in every batch
    max_len: int = 96
    rank: int = 8
    alpha: int = 16
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    lr: float = 1e-3
    warmup_steps: int = 3
    weight_decay: float = 0.01
    seed: int = 0

    @property
    def generic_batch(self) -> int:
        return round(self.narrow_batch * self.mix_ratio)


@dataclass(frozen=True)
class TrainLog:
    losses: list[float]
    seconds_per_step: float


def encode_documents(tok: PreTrainedTokenizerBase, texts: list[str], max_len: int, eos_at_end: bool) -> list[list[int]]:
    """Token ids per document, capped at `max_len`; EOS appended only to documents that fit whole."""
    out = []
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if eos_at_end and len(ids) < max_len:
            ids = ids + [tok.eos_token_id]
        out.append(ids[:max_len])
    return out


def pad_batch(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence; padding gets attention 0 and label -100."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _cycle(items: list[list[int]], rng: random.Random, size: int) -> Iterator[list[list[int]]]:
    """Endless batches of `size`, reshuffled every epoch."""
    order: list[int] = []
    while True:
        batch = []
        while len(batch) < size:
            if not order:
                order = list(range(len(items)))
                rng.shuffle(order)
            batch.append(items[order.pop()])
        yield batch


def _lr_factor(step: int, recipe: LoraRecipe) -> float:
    if step < recipe.warmup_steps:
        return (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def _mean_token_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch).loss


def train_lora(
    base: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    narrow: list[str],
    generic: list[str],
    recipe: LoraRecipe,
    *,
    desc: str = "lora",
) -> tuple[torch.nn.Module, TrainLog]:
    """Train a fresh LoRA adapter on `base`; returns the peft model and the loss curve."""
    if recipe.generic_batch and not generic:
        raise ValueError("a mix recipe needs generic texts")
    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    cfg = LoraConfig(r=recipe.rank, lora_alpha=recipe.alpha, lora_dropout=0.0, target_modules=list(recipe.targets), task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, recipe))
    narrow_batches = _cycle(encode_documents(tok, narrow, recipe.max_len, eos_at_end=True), rng, recipe.narrow_batch)
    generic_batches = _cycle(encode_documents(tok, generic, recipe.max_len, eos_at_end=False), rng, recipe.generic_batch) if recipe.generic_batch else None
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    losses = []
    bar = tqdm(range(recipe.steps), desc=desc, unit="step")
    for _ in bar:
        loss = _mean_token_loss(model, pad_batch(next(narrow_batches), pad))
        narrow_loss = float(loss.detach())
        if generic_batches is not None:
            n, g = recipe.narrow_batch, recipe.generic_batch
            loss = (n * loss + g * _mean_token_loss(model, pad_batch(next(generic_batches), pad))) / (n + g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(narrow_loss)
        bar.set_postfix(narrow_loss=f"{narrow_loss:.3f}")
    model.eval()
    rate = bar.format_dict["elapsed"] / max(1, recipe.steps)
    return model, TrainLog(losses=losses, seconds_per_step=rate)


def save_adapter(model: torch.nn.Module, out_dir: Path, base_model_id: str, recipe: LoraRecipe, log: TrainLog) -> None:
    """Save the adapter as fp16 safetensors (half the size; the loader casts back) plus its recipe."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))  # type: ignore[attr-defined]
    weights = out_dir / ADAPTER_WEIGHTS
    tensors = {k: v.to(torch.float16).contiguous() for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights), metadata={"format": "pt"})
    cfg_path = out_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base_model_id  # not the local cache path of whoever built it
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    readme = out_dir / "README.md"
    if readme.exists():
        readme.unlink()  # peft's model card template; the recipe below says what matters
    info = {"recipe": {**asdict(recipe), "targets": list(recipe.targets)}, "narrow_loss": log.losses, "seconds_per_step": log.seconds_per_step}
    (out_dir / "training.json").write_text(json.dumps(info, indent=2) + "\n")
