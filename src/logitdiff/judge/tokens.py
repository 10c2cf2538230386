"""Normalizing token strings and recognising generic tokens (shared by frequent tokens and the offline judge)."""

from __future__ import annotations

import re
import string
import unicodedata

# Byte-level BPE (Ġ space, Ċ newline, ĉ tab) and SentencePiece (▁ space) markers.
_MARKERS = "ĠĊĉ▁"
_CONTRACTION = re.compile(r"^(?:'|’)(?:s|t|re|ve|ll|d|m)$")
_SPECIAL = re.compile(r"^<[^<>]*>$|<\||\|>")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)?$")

STOPWORDS = frozenset(
    """a an the and or but if then so than that this these those there here of to in on at by for with from
    as into about over under up down out off is are was were be been being am have has had do does did not no
    it its it's he she they them their his her we our you your i me my him who whom which what when where why
    how all any some each very can will would should could may might must just also more most such only own
    same too other""".split()
)

# Word pieces and words that fit any text (SPEC §5: common affixes, generic verbs, role names).
GENERIC_WORDS = frozenset(
    """ing ed ly tion tions ation er ers es est ment ments ness ity able ible al ous ive ize ise un re pre dis
    non de im en
    make made makes use used uses using get got go going goes went said say says know think take took give
    given come came see seen want like one two three new time times people year years way day days thing
    things good well many much first last however therefore thus even still back now often every something
    user assistant system model""".split()
)


def normalize_token(token: str) -> str:
    """The comparable form of a token: tokenizer markers and surrounding whitespace removed, case-folded.

    ' cake', 'Ġcake', '▁Cake' and 'cake' all become 'cake'.
    """
    for marker in _MARKERS:
        token = token.replace(marker, " ")
    return unicodedata.normalize("NFKC", token).strip().casefold()


def _is_symbolic(text: str) -> bool:
    """Only punctuation, symbols or whitespace."""
    return all(ch in string.punctuation or unicodedata.category(ch)[0] in "PSZ" or ch.isspace() for ch in text)


def is_generic_piece(token: str) -> bool:
    """The frequent-token filter of SPEC §5: short pieces, punctuation, whitespace, contraction suffixes
    and stopwords carry no domain signal however often they occur."""
    norm = normalize_token(token)
    return len(norm) <= 1 or _is_symbolic(norm) or bool(_CONTRACTION.match(norm)) or norm in STOPWORDS


def is_number(token: str) -> bool:
    return bool(_NUMBER.match(normalize_token(token)))


def is_generic_candidate(token: str) -> bool:
    """The judge's generic-token rules: generic pieces plus affixes, generic words and chat/special tokens.
    Numbers are left to the caller, which knows whether the description gives them a meaning."""
    norm = normalize_token(token)
    return is_generic_piece(token) or norm in GENERIC_WORDS or bool(_SPECIAL.search(token.strip()))
