"""Choosing the patchscope scale to read (reference-notes adl.md §4, "Grader").

Like the reference's grader, the choice never sees the organism description: it picks the scale whose
token list is most semantically coherent, preferring more coherent tokens between scales of similar
coherence. The LLM chooser runs the reference's tournament (groups of ≤ 10 scales, then a final call over
the group winners). The offline chooser scores coherence with the offline judge's MiniLM embeddings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
from pydantic import BaseModel

from logitdiff.judge.tokens import is_generic_candidate, is_number, normalize_token
from logitdiff.llm.client import LLMCallError
from logitdiff.methods.patchscope import ScaleTokens

if TYPE_CHECKING:
    from logitdiff.judge.offline import OfflineJudge
    from logitdiff.llm.client import LLMClient

GROUP_SIZE = 10
# A token is coherent when its mean MiniLM cosine to the other content tokens of its scale reaches this.
# Measured on 10-word lists: one topic (baking, law, sport, medicine) 0.42–0.49 on average per token
# (lowest token 0.26–0.37); unrelated words 0.21–0.31 on average (highest token 0.25–0.35).
COHERENT_MIN = 0.33


class ScaleChoice(BaseModel):
    position: int
    chooser: str
    best_scale: float
    selected_tokens: list[str]
    responses: list[str]  # the LLM's answers, or the offline scores per scale


class ScaleChooser(Protocol):
    @property
    def id(self) -> str: ...

    async def choose(self, scales: Sequence[ScaleTokens], sample: str = "") -> tuple[float, list[str], list[str]]:
        """(best scale, selected tokens, responses) for one position's per-scale token lists. `sample`
        names the (cell, position) the choice belongs to: each is asked afresh, a rerun reads the cache."""
        ...


def is_prompt_artifact(token: str) -> bool:
    """Pieces of the identity prompt's own pattern (reference: punctuation-only, or containing -> / =>)."""
    stripped = token.strip()
    return not stripped or all(not ch.isalnum() for ch in stripped) or "->" in token or "=>" in token


def content_tokens(tokens: Sequence[str]) -> list[str]:
    """Tokens that can carry meaning: no prompt artifacts, generic pieces or numbers; one per normalized form."""
    seen: dict[str, str] = {}
    for t in tokens:
        norm = normalize_token(t)
        if is_prompt_artifact(t) or is_generic_candidate(t) or is_number(t) or norm in seen:
            continue
        seen[norm] = t
    return list(seen.values())


@dataclass
class OfflineScaleChooser:
    """Coherence = how many content tokens sit close (MiniLM cosine) to the rest of their list."""

    judge: OfflineJudge
    coherent_min: float = COHERENT_MIN
    _cache: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    @property
    def id(self) -> str:
        return self.judge.id

    def _vectors(self, tokens: Sequence[str]) -> np.ndarray:
        todo = [n for n in dict.fromkeys(normalize_token(t) for t in tokens) if n not in self._cache]
        if todo:
            self._cache.update(zip(todo, self.judge.encode(todo), strict=True))
        return np.stack([self._cache[normalize_token(t)] for t in tokens])

    def coherence(self, tokens: Sequence[str]) -> tuple[list[str], float]:
        """(coherent tokens, their mean coherence) of one list."""
        words = content_tokens(tokens)
        if len(words) < 2:
            return [], 0.0
        v = self._vectors(words)
        sims = v @ v.T
        per_token = (sims.sum(1) - np.diag(sims)) / (len(words) - 1)
        keep = [i for i, s in enumerate(per_token) if s >= self.coherent_min]
        return [words[i] for i in keep], float(per_token[keep].mean()) if keep else 0.0

    async def choose(self, scales: Sequence[ScaleTokens], sample: str = "") -> tuple[float, list[str], list[str]]:
        scored = []
        for st in scales:
            coherent, mean = self.coherence(st.tokens)
            # Most coherent tokens, then the most coherent list, then the smaller scale; with no coherent
            # list anywhere, the scale with the most content tokens (a non-trivial token at least).
            scored.append(((len(coherent), round(mean, 3), len(content_tokens(st.tokens)), -st.scale), st.scale, coherent))
        key, best, coherent = max(scored, key=lambda s: s[0])
        lines = [f"SCALE {s}: {k[0]} coherent (mean cosine {k[1]:.3f}), {k[2]} content tokens" for k, s, _ in scored]
        return best, coherent, lines


_SYSTEM = """You inspect what a direction in a language model's activations encodes. The direction was \
patched, at several scales, into prompts that make the model repeat a word; for each scale you get the \
tokens the model then predicts. Pick the single scale whose tokens are most semantically coherent (one \
topic, theme or sentence). Between scales of similar coherence prefer the one with more coherent tokens. \
Ignore tokenizer markers, casing and language. Generic tokens (spaces, punctuation, stopwords, affixes \
such as "ing" or "'s") do not count. Never invent tokens. If no scale is coherent, pick one that has a \
non-trivial, interesting token. Think briefly, then end with exactly these two lines:
BEST_SCALER: <one of the offered scales>
TOP_TOKENS: <token> | <token> | ...   (the coherent tokens of that scale)"""

_SCALE_LINE = re.compile(r"^\W*BEST_SCALER\W*:?\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE | re.MULTILINE)
_TOKENS_LINE = re.compile(r"^\W*TOP_TOKENS\W*:?(.*)$", re.IGNORECASE | re.MULTILINE)


def scale_messages(scales: Sequence[ScaleTokens]) -> list[dict[str, str]]:
    lines = ["[TOKENS PER SCALE]"]
    for st in scales:
        kept = [t for t in st.tokens if not is_prompt_artifact(t)]
        if kept:
            lines.append(f"SCALE: {st.scale:.1f}")
            lines.append(", ".join(f'"{t}"' for t in kept))
    lines.append("[SCALES] " + ", ".join(f"{st.scale:.1f}" for st in scales))
    lines.append("[OUTPUT FORMAT] end with the lines BEST_SCALER: <scale> and TOP_TOKENS: t1 | t2 | ...")
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def parse_scale_answer(text: str, offered: Sequence[float]) -> tuple[float, list[str]] | None:
    """(scale, tokens), or None when no offered scale is named (scales compared at one decimal)."""
    matches = _SCALE_LINE.findall(text)
    if not matches:
        return None
    by_label = {round(s, 1): s for s in offered}
    scale = by_label.get(round(float(matches[-1]), 1))
    if scale is None:
        return None
    tokens_line = _TOKENS_LINE.findall(text)
    tokens = [t.strip() for t in tokens_line[-1].split("|") if t.strip()] if tokens_line else []
    return scale, tokens


@dataclass
class LLMScaleChooser:
    client: LLMClient

    @property
    def id(self) -> str:
        return self.client.spec.id

    async def _pick(self, scales: Sequence[ScaleTokens], responses: list[str], sample: str) -> tuple[float, list[str]]:
        messages = scale_messages(scales)
        offered = [st.scale for st in scales]
        for attempt in range(2):  # one re-ask: the reference crashes on an unoffered scale
            answer = await self.client.complete(messages, cache_tag=f"{sample}|scale-choice-{attempt}")
            responses.append(answer.text)
            parsed = parse_scale_answer(answer.text, offered)
            if parsed is not None:
                return parsed
        raise LLMCallError(f"{self.id} named none of the offered scales {offered} twice")

    async def choose(self, scales: Sequence[ScaleTokens], sample: str = "") -> tuple[float, list[str], list[str]]:
        import asyncio

        responses: list[str] = []
        ordered = sorted(scales, key=lambda st: st.scale)
        groups = [ordered[i : i + GROUP_SIZE] for i in range(0, len(ordered), GROUP_SIZE)]
        winners = await asyncio.gather(*(self._pick(g, responses, sample) for g in groups))
        if len(groups) == 1:
            best, tokens = winners[0]
            return best, tokens, responses
        finalists = [st for st in ordered if st.scale in {w for w, _ in winners}]
        best, tokens = await self._pick(finalists, responses, sample)
        return best, tokens, responses


def make_scale_chooser(judge: object) -> ScaleChooser:
    """The chooser that goes with the run's relevance judge (same LLM, or the offline embeddings)."""
    from logitdiff.judge.llm_judge import LLMJudge
    from logitdiff.judge.offline import OfflineJudge

    if isinstance(judge, OfflineJudge):
        return OfflineScaleChooser(judge)
    if isinstance(judge, LLMJudge):
        return LLMScaleChooser(judge.client)
    raise TypeError(f"no patchscope scale chooser for judge {type(judge).__name__}")
