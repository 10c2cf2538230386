"""The agent's tools: `ask_model` (both models of a pair, costs budget) and `hypothesis_tracking` (free).

A tool takes the parsed JSON arguments and returns the text the agent reads. Bad arguments raise
ToolArgumentError; the loop turns that (and any other exception) into a message to the agent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from jinja2.exceptions import TemplateError
from transformers import PreTrainedTokenizerBase

from logitdiff.agent.prompts import BUDGET_EXHAUSTED
from logitdiff.config.schema import ModelConfig
from logitdiff.core.errors import UserError
from logitdiff.engine.models import ModelPair


class ToolArgumentError(Exception):
    """The agent called a tool with arguments it cannot run; the message tells the agent what to fix."""


class Tool(Protocol):
    name: str

    async def __call__(self, args: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 1024
    temperature: float = 0.8  # 0 means greedy decoding


def render_chat(tokenizer: PreTrainedTokenizerBase, model_cfg: ModelConfig, system_prompt: str | None, prompt: str) -> str:
    """The prompt as the model sees it: chat template with generation prompt, thinking off if supported."""
    if not model_cfg.has_chat_template:
        return f"{system_prompt}\n\n{prompt}" if system_prompt else prompt
    if not tokenizer.chat_template:
        raise UserError(
            f"model {model_cfg.name} is configured with has_chat_template: true but its tokenizer has no chat template; "
            f"set has_chat_template: false in its model config"
        )
    extra: dict[str, Any] = {"enable_thinking": False} if model_cfg.has_thinking_flag else {}

    def render(messages: list[dict[str, str]]) -> str:
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra))

    user = {"role": "user", "content": prompt}
    if system_prompt:
        try:
            return render([{"role": "system", "content": system_prompt}, user])
        except TemplateError:  # some templates reject a system role: fold it into the user turn
            user = {"role": "user", "content": f"{system_prompt}\n\n{prompt}"}
    return render([user])


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _left_padded(tokenizer: PreTrainedTokenizerBase, texts: list[str], with_special: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Padding by hand keeps the shared tokenizer's padding_side untouched.
    rows = [tokenizer(t, add_special_tokens=with_special)["input_ids"] for t in texts]
    pad = _pad_id(tokenizer)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row):] = 1
    return ids.to(device), mask.to(device)


@dataclass
class PairGenerator:
    """Batched, seeded generation on the base and the finetuned model of one pair.

    Generations run one at a time in a worker thread: the two models may share weights (LoRA on/off),
    and the event loop stays free for concurrent agent LLM calls.
    """

    pair: ModelPair
    model_cfg: ModelConfig
    system_prompt: str | None
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def generate(self, prompts: list[str], seed: int) -> list[tuple[str, str]]:
        async with self._lock:
            return await asyncio.to_thread(self.generate_now, prompts, seed)

    def generate_now(self, prompts: list[str], seed: int) -> list[tuple[str, str]]:
        """(base answer, finetuned answer) per prompt; both models sample from the same seed."""
        tok = self.pair.tokenizer
        texts = [render_chat(tok, self.model_cfg, self.system_prompt, p) for p in prompts]
        # A rendered chat template already holds the BOS token where the model wants one.
        ids, mask = _left_padded(tok, texts, with_special=not self.model_cfg.has_chat_template, device=self.pair.device)
        answers = [self._sample(use, ids, mask, seed) for use in (self.pair.as_base, self.pair.as_finetuned)]
        return list(zip(answers[0], answers[1], strict=True))

    def _sample(self, use: Any, ids: torch.Tensor, mask: torch.Tensor, seed: int) -> list[str]:
        tok = self.pair.tokenizer
        kwargs: dict[str, Any] = {"max_new_tokens": self.settings.max_new_tokens, "pad_token_id": _pad_id(tok)}
        if self.settings.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.settings.temperature)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with use() as model, torch.inference_mode():
            torch.manual_seed(seed)
            out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        return [str(tok.decode(row[ids.shape[1]:], skip_special_tokens=True)).strip() for row in out]


def _prompts_arg(args: dict[str, Any]) -> list[str]:
    unknown = set(args) - {"prompts"}
    if unknown:
        raise ToolArgumentError(f"unknown argument(s) {sorted(unknown)}; ask_model takes only {{\"prompts\": [\"...\", ...]}}")
    prompts = args.get("prompts")
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ToolArgumentError('"prompts" must be a non-empty list of non-empty strings, e.g. {"prompts": ["Hi!"]}')
    return prompts


@dataclass
class InteractionBudget:
    """The run's model interactions: spent by ask_model, reported by the loop after every tool answer."""

    total: int
    used: int = 0

    @property
    def remaining(self) -> int:
        return self.total - self.used


@dataclass
class AskModel:
    """Sends prompts to both models. A call asking for more prompts than remain is refused whole
    (not truncated), so the agent decides which prompts are worth its last interactions."""

    generator: PairGenerator
    budget: InteractionBudget
    seed: int
    tracker: HypothesisTracker | None = None  # its untested hypotheses are listed under every answer
    name: str = "ask_model"

    async def __call__(self, args: dict[str, Any]) -> str:
        prompts = _prompts_arg(args)
        left = self.budget.remaining
        if left == 0:
            raise ToolArgumentError(BUDGET_EXHAUSTED.format(budget=self.budget.total))
        if len(prompts) > left:
            raise ToolArgumentError(f"you sent {len(prompts)} prompts but only {left} model interaction(s) are left; send at most {left} prompt(s)")
        # Distinct, reproducible sampling per call: the seed moves with the interactions already spent.
        answers = await self.generator.generate(prompts, self.seed + self.budget.used)
        self.budget.used += len(prompts)
        text = "\n\n".join(
            f"[{i}] PROMPT: {prompt}\n--- BASE model:\n{base}\n--- FINETUNED model:\n{tuned}"
            for i, (prompt, (base, tuned)) in enumerate(zip(prompts, answers, strict=True), start=1)
        )
        pending = [h for h in self.tracker.hypotheses if h.status in ("open", "supported")] if self.tracker else []
        if pending:
            text += "\n\nHypotheses not yet confirmed or rejected:\n" + "\n".join(f"  [{h.id}] ({h.status}) {h.text}" for h in pending)
            text += "\nUpdate their status with hypothesis_tracking in light of these answers."
        return text


Status = Literal["open", "supported", "confirmed", "rejected"]
_STATUSES: tuple[Status, ...] = ("open", "supported", "confirmed", "rejected")


@dataclass
class Hypothesis:
    id: int
    text: str
    status: Status = "open"
    notes: list[str] = field(default_factory=list)


@dataclass
class HypothesisTracker:
    """A free notebook: add hypotheses, update their status, list them."""

    hypotheses: list[Hypothesis] = field(default_factory=list)
    name: str = "hypothesis_tracking"

    async def __call__(self, args: dict[str, Any]) -> str:
        action = args.get("action")
        if action == "add":
            return self._add(args)
        if action == "update":
            return self._update(args)
        if action == "list":
            return self._list()
        raise ToolArgumentError('"action" must be one of "add", "update", "list"')

    def _add(self, args: dict[str, Any]) -> str:
        text = args.get("hypothesis")
        if not isinstance(text, str) or not text.strip():
            raise ToolArgumentError('add needs {"action": "add", "hypothesis": "non-empty text"}')
        entry = Hypothesis(id=len(self.hypotheses) + 1, text=text.strip())
        self.hypotheses.append(entry)
        return f"added hypothesis {entry.id} (status open)"

    def _update(self, args: dict[str, Any]) -> str:
        ident, status, note = args.get("id"), args.get("status"), args.get("note")
        if not isinstance(ident, int) or not 1 <= ident <= len(self.hypotheses):
            raise ToolArgumentError(f'"id" must be an existing hypothesis id (1..{len(self.hypotheses)})')
        if status not in _STATUSES:
            raise ToolArgumentError(f'"status" must be one of {", ".join(_STATUSES)}')
        if note is not None and not isinstance(note, str):
            raise ToolArgumentError('"note" must be a string')
        entry = self.hypotheses[ident - 1]
        entry.status = status
        if note:
            entry.notes.append(note)
        return f"hypothesis {ident} is now {status}"

    def _list(self) -> str:
        if not self.hypotheses:
            return "no hypotheses yet"
        lines = []
        for h in self.hypotheses:
            notes = "".join(f"\n    note: {n}" for n in h.notes)
            lines.append(f"{h.id}. [{h.status}] {h.text}{notes}")
        return "\n".join(lines)
