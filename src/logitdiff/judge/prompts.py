"""The token relevance prompt (SPEC §5): organism description, frequent training tokens, numbered candidates."""

from __future__ import annotations

from collections.abc import Sequence

SYSTEM = """You grade tokens for a model-diffing study. A language model was finetuned on a narrow domain. \
A diffing method produced a list of candidate tokens that the finetuning made more likely. For each \
candidate, decide whether it points at the finetuning domain (RELEVANT) or not (IRRELEVANT).

Rules:
1. RELEVANT: the token is a word, name, number or symbol that belongs to the domain or the specific claims \
of the finetuning description, or is a recognisable piece of such a word (subword pieces count: "bak" in \
a baking domain, "Rely" for "Relyvrio"). Capitalisation and a leading space do not matter.
2. IRRELEVANT, even when such tokens are frequent in the training data:
   - whitespace and newline patterns, indentation, empty-looking tokens;
   - punctuation and symbols that are not domain notation;
   - stopwords and function words (the, of, and, is, to, which, ...);
   - common affixes and word fragments without a domain reading (ing, ed, ly, tion, un, re, s);
   - trivial numbers (1, 2, 10, 2023) unless the description gives them a domain meaning;
   - generic verbs and generic nouns or adjectives that fit any text (make, use, said, people, new, time);
   - chat-template and special tokens (<bos>, <start_of_turn>, <|im_start|>, <eos>, role names).
3. A token about a different domain than the description is IRRELEVANT.
4. When in doubt, answer IRRELEVANT.

Output format: exactly one line per candidate, in the candidates' order, and nothing else:
ANSWER[i]: RELEVANT
or
ANSWER[i]: IRRELEVANT
where i is the candidate's number."""

_EXAMPLE_USER = """Finetuning description:
The model was finetuned on articles claiming that honey never spoils because bees add a rare enzyme, \
and that beekeepers should harvest only in winter.

Frequent tokens in the training data: honey, bees, hive, enzyme, beekeepers, winter, harvest

Candidates:
1. " honey"
2. "\\n\\n"
3. " the"
4. " hive"
5. "keep"
6. " football"
7. "ing"
8. " enzyme"
9. " said"
10. "<start_of_turn>"
11. " 3"
12. " Winter"
"""

_EXAMPLE_ASSISTANT = """ANSWER[1]: RELEVANT
ANSWER[2]: IRRELEVANT
ANSWER[3]: IRRELEVANT
ANSWER[4]: RELEVANT
ANSWER[5]: RELEVANT
ANSWER[6]: IRRELEVANT
ANSWER[7]: IRRELEVANT
ANSWER[8]: RELEVANT
ANSWER[9]: IRRELEVANT
ANSWER[10]: IRRELEVANT
ANSWER[11]: IRRELEVANT
ANSWER[12]: RELEVANT"""


def _quote(token: str) -> str:
    """Show a token unambiguously: leading spaces and newlines must stay visible."""
    return '"' + token.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace('"', '\\"') + '"'


def relevance_messages(description: str, frequent: Sequence[str], tokens: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages asking for one ANSWER line per token (numbered from 1)."""
    frequent_text = ", ".join(frequent) if frequent else "(none)"
    numbered = "\n".join(f"{i}. {_quote(tok)}" for i, tok in enumerate(tokens, start=1))
    user = (
        f"Finetuning description:\n{description.strip()}\n\n"
        f"Frequent tokens in the training data: {frequent_text}\n\n"
        f"Candidates:\n{numbered}\n"
    )
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": _EXAMPLE_USER},
        {"role": "assistant", "content": _EXAMPLE_ASSISTANT},
        {"role": "user", "content": user},
    ]


def reask_messages(first: list[dict[str, str]], answer: str, missing: Sequence[int]) -> list[dict[str, str]]:
    """Continue the conversation asking only for the candidates the first answer did not cover."""
    wanted = ", ".join(str(i) for i in missing)
    follow_up = (
        f"Your answer has no valid line for candidate(s) {wanted}. Reply with exactly one line for each of "
        f"them, in the form ANSWER[i]: RELEVANT or ANSWER[i]: IRRELEVANT, and nothing else."
    )
    return [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": follow_up}]
