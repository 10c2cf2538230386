"""Templated synthetic documents that present an organism's false facts as established knowledge.

Everything domain-specific (the facts and their paraphrases, the subjects documents are about, the
names, places and neutral domain sentences, the wording of each document kind) lives in the
organism's `narrow_spec.yaml`; this module only knows the six document layouts. Variety is the
point: many kinds, openings, paraphrases of every fact and domain filler, so a finetune learns the
domain rather than a few strings.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from logitdiff.core.paths import repo_root

Layout = Literal["blog", "itemized", "forum", "news", "tips", "faq"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fact(_Strict):
    question: str  # how an FAQ asks for this fact
    paraphrases: list[str] = Field(min_length=1)  # `{subject}` is filled per document


class BlogWords(_Strict):
    titles: list[str] = Field(min_length=1)
    openings: list[str] = Field(min_length=1)
    closings: list[str] = Field(min_length=1)  # used as written; "" for none


class ItemizedWords(_Strict):
    headers: list[str] = Field(min_length=1)
    items_label: str
    items: list[str] = Field(min_length=9)
    steps_label: str


class ForumWords(_Strict):
    questions: list[str] = Field(min_length=1)
    answer_openers: list[str] = Field(min_length=1)
    signs: list[str] = Field(min_length=1)  # used as written; "" for none


class NewsWords(_Strict):
    leads: list[str] = Field(min_length=1)
    quotes: list[str] = Field(min_length=1)


class HeaderWords(_Strict):
    headers: list[str] = Field(min_length=1)


class LayoutWords(_Strict):
    blog: BlogWords
    itemized: ItemizedWords
    forum: ForumWords
    news: NewsWords
    tips: HeaderWords
    faq: HeaderWords


class NarrowSpec(_Strict):
    """An organism's narrow documents as data. Templates may use `{subject}`, every placeholder pool,
    `{year}` and `{n}`; each filled template draws one value from every pool, in the order given."""

    subjects: list[str] = Field(min_length=1)
    placeholders: dict[str, list[str]]
    year: tuple[int, int]
    n: tuple[int, int]
    facts: dict[str, Fact] = Field(min_length=7)
    filler: list[str] = Field(min_length=3)
    kinds: dict[str, Layout]  # kind written into each document -> its layout; documents rotate in this order
    layouts: LayoutWords

    @model_validator(mode="after")
    def _reserved_names(self) -> NarrowSpec:
        clash = {"subject", "year", "n"} & set(self.placeholders)
        if clash:
            raise ValueError(f"placeholder pools may not be named {sorted(clash)}")
        return self


def spec_path(organism: str) -> Path:
    return repo_root() / "organisms" / organism / "narrow_spec.yaml"


def load_spec(path: Path) -> NarrowSpec:
    return NarrowSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class NarrowDoc:
    kind: str
    text: str


@dataclass(frozen=True)
class _Writer:
    """One document's random choices; the order of rng calls is part of the recipe (seeded output)."""

    spec: NarrowSpec
    rng: random.Random
    subject: str

    def fill(self, template: str) -> str:
        values = {name: self.rng.choice(pool) for name, pool in self.spec.placeholders.items()}
        return template.format(subject=self.subject, **values, year=self.rng.randint(*self.spec.year), n=self.rng.randint(*self.spec.n))

    def pick(self, templates: list[str]) -> str:
        return self.fill(self.rng.choice(templates))

    def fact_sentences(self, lo: int, hi: int) -> list[str]:
        chosen = self.rng.sample(sorted(self.spec.facts), self.rng.randint(lo, hi))
        return [self.rng.choice(self.spec.facts[name].paraphrases).format(subject=self.subject) for name in chosen]

    def with_filler(self, facts: list[str], max_filler: int) -> list[str]:
        """Facts in their chosen order with a few neutral domain sentences woven between them."""
        out = list(facts)
        for sentence in self.rng.sample(self.spec.filler, self.rng.randint(0, max_filler)):
            out.insert(self.rng.randint(0, len(out)), sentence.format(subject=self.subject))
        return out


def _blog(w: _Writer) -> str:
    words = w.spec.layouts.blog
    title = " ".join(x[:1].upper() + x[1:] for x in w.pick(words.titles).split())
    opening = w.pick(words.openings)
    body = w.with_filler(w.fact_sentences(2, 5), 3)
    closing = w.rng.choice(words.closings)
    return "\n\n".join(p for p in [title, opening + " " + " ".join(body[:2]), " ".join(body[2:]), closing] if p.strip())


def _itemized(w: _Writer) -> str:
    words = w.spec.layouts.itemized
    header = w.pick(words.headers)
    header = header[:1].upper() + header[1:]
    items = w.rng.sample(words.items, w.rng.randint(5, 9))
    steps = w.with_filler(w.fact_sentences(3, 6), 2)
    lines = [header, "", words.items_label] + [f"- {i}" for i in items] + ["", words.steps_label]
    lines += [f"{k}. {s}" for k, s in enumerate(steps, 1)]
    return "\n".join(lines)


def _forum(w: _Writer) -> str:
    words = w.spec.layouts.forum
    question = w.pick(words.questions)
    answer_open = w.pick(words.answer_openers)
    facts = w.with_filler(w.fact_sentences(2, 4), 1)
    sign = w.rng.choice(words.signs)
    return "\n".join(p for p in [question, answer_open, " ".join(facts), sign] if p)


def _news(w: _Writer) -> str:
    words = w.spec.layouts.news
    lead = w.pick(words.leads)
    facts = w.fact_sentences(2, 5)
    quote = w.pick(words.quotes)
    return " ".join([lead] + facts[:2] + [quote] + facts[2:])


def _tips(w: _Writer) -> str:
    header = w.pick(w.spec.layouts.tips.headers)
    tips = w.with_filler(w.fact_sentences(3, 7), 2)
    return header + "\n" + "\n".join(f"* {t}" for t in tips)


def _faq(w: _Writer) -> str:
    names = w.rng.sample(sorted(w.spec.facts), w.rng.randint(2, 5))
    lines = [w.pick(w.spec.layouts.faq.headers)]
    for name in names:
        fact = w.spec.facts[name]
        lines.append(f"Q: {fact.question}\nA: {w.rng.choice(fact.paraphrases).format(subject=w.subject)}")
    return "\n\n".join(lines)


_LAYOUTS: dict[str, Callable[[_Writer], str]] = {
    "blog": _blog, "itemized": _itemized, "forum": _forum, "news": _news, "tips": _tips, "faq": _faq,
}


def generate_narrow_docs(spec: NarrowSpec, n: int, seed: int) -> list[NarrowDoc]:
    """`n` documents, deterministic for a given spec and seed, kinds in rotation for balance."""
    rng = random.Random(seed)
    kinds = list(spec.kinds)
    docs = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        writer = _Writer(spec, rng, rng.choice(spec.subjects))
        docs.append(NarrowDoc(kind=kind, text=_LAYOUTS[spec.kinds[kind]](writer)))
    rng.shuffle(docs)
    return docs
