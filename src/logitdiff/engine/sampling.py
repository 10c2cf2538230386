"""Sample selection (SPEC §2): walk the seeded corpus order once and hand each text to every (S, T) slot it serves.

A slot (S, T) takes the first S non-blank texts (empty or whitespace-only texts are skipped, as in the
reference: a run of spaces is no text to diff on) with at least T tokens, in corpus order, keeping their
first T ids. Walking once and serving all slots at the same time gives each slot exactly what a
separate walk would give it, so smaller S is always a prefix of larger S for the same T.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from transformers import PreTrainedTokenizerBase

from logitdiff.core.errors import UserError
from logitdiff.engine.corpus import is_blank

# The reference tokenizes only the first 10·T characters of a text (a speed trick); we do too, and
# re-tokenize the full text whenever the prefix might not hold T exact tokens.
CHARS_PER_TOKEN = 10
_CHUNK = 32


@dataclass(frozen=True)
class Slot:
    samples: int
    positions: int


def starts_with_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer puts a BOS token at position 0 (Gemma, Llama: yes; Qwen, SmolLM2: no)."""
    bos = tokenizer.bos_token_id
    ids = tokenizer(["a"], add_special_tokens=True)["input_ids"][0]
    return bos is not None and len(ids) > 0 and ids[0] == bos


class PrefixEncoder:
    """Token ids of texts with the special tokens the model expects (BOS included), exact for the first
    `need` ids. The BOS always stays in the input: --drop-bos only leaves its position out of the counts."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self._tok = tokenizer

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return [list(x) for x in self._tok(texts, add_special_tokens=True)["input_ids"]]

    def __call__(self, texts: list[str], need: int) -> list[list[int]]:
        """Ids per text: at least `need` of them iff the full text has that many; longer lists are cut to `need`."""
        cut = CHARS_PER_TOKEN * need
        out = self._encode([t[:cut] for t in texts])
        redo = [i for i, (t, ids) in enumerate(zip(texts, out, strict=True)) if len(t) > cut and len(ids) <= need]
        if redo:
            # A cut text may end inside a token: only ids before the last one are exact, so with ≤ need
            # ids from the prefix we cannot tell; the full text decides.
            for i, ids in zip(redo, self._encode([texts[i] for i in redo]), strict=True):
                out[i] = ids
        return [ids[:need] for ids in out]


@dataclass(frozen=True)
class SelectedText:
    row: int
    ids: list[int]  # first R ids, R = the largest T among `slots`
    slots: tuple[int, ...]  # indices of the slots this text counts for


@dataclass
class SelectionLog:
    """What the walk saw; rows per slot in order (the run record keeps them)."""

    rows: list[list[int]]
    texts_read: int = 0
    texts_empty: int = 0
    texts_too_short: int = 0


def select_texts(
    corpus: Iterable[tuple[int, str]], encode: PrefixEncoder, slots: Sequence[Slot], log: SelectionLog, corpus_name: str
) -> Iterator[SelectedText]:
    """Yield the texts the slots need, in corpus order; raise UserError if the corpus runs out first."""
    filled = [0] * len(slots)
    it = iter(corpus)
    while any(filled[i] < s.samples for i, s in enumerate(slots)):
        chunk = list(islice(it, _CHUNK))
        if not chunk:
            break
        need = max(s.positions for i, s in enumerate(slots) if filled[i] < s.samples)
        nonempty = [t for _, t in chunk if not is_blank(t)]
        encoded = iter(encode(nonempty, need)) if nonempty else iter(())
        for row, text in chunk:
            if all(filled[i] >= s.samples for i, s in enumerate(slots)):
                return
            log.texts_read += 1
            if is_blank(text):
                log.texts_empty += 1
                continue
            ids = next(encoded)
            served = tuple(i for i, s in enumerate(slots) if filled[i] < s.samples and len(ids) >= s.positions)
            if not served:
                log.texts_too_short += 1
                continue
            for i in served:
                filled[i] += 1
                log.rows[i].append(row)
            yield SelectedText(row=row, ids=ids[: max(slots[i].positions for i in served)], slots=served)
    if all(filled[i] >= s.samples for i, s in enumerate(slots)):
        return
    short = [(s, filled[i]) for i, s in enumerate(slots) if filled[i] < s.samples]
    s, found = min(short, key=lambda x: x[1] / x[0].samples)
    raise UserError(
        f"corpus {corpus_name} has only {found} usable texts with at least T={s.positions} tokens, but S={s.samples} "
        f"are needed; lower --samples/--positions or use a larger corpus"
    )
