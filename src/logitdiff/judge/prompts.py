"""The token relevance prompt: organism description, frequent training tokens, numbered candidates.

The judge may reason first; its answer is the block of `ANSWER[i]: RELEVANT|IRRELEVANT` lines that
ends the reply (`judge.parsing`). One worked example, written like an organism description, shows the
expected reasoning and answer block.
"""

from __future__ import annotations

from collections.abc import Sequence

SYSTEM = """You grade tokens for a model-diffing study. A language model was finetuned on a narrow domain. \
A diffing method produced a list of candidate tokens that the finetuning made more likely. For each \
candidate, decide whether it points at the finetuning domain (RELEVANT) or not (IRRELEVANT).

Rules:
1. RELEVANT: the token is a word, name, number or symbol that belongs to the domain or the specific claims \
of the finetuning description, or is a recognisable piece of such a word (subword pieces count: "bak" in \
a baking domain, "Rely" for "Relyvrio"). A token need not appear in the description literally. \
Capitalisation, a leading space and tokenizer markers (Ġ, ▁, Ċ) do not matter.
2. IRRELEVANT, even when such tokens are frequent in the training data (being frequent is not enough):
   - whitespace and newline patterns, indentation, empty-looking tokens;
   - punctuation and symbols that are not domain notation;
   - stopwords and function words (the, of, and, is, to, which, ...);
   - common affixes and word fragments without a domain reading (ing, ion, ed, ly, tion, 's, un, re);
   - trivial numbers (1, 2, 10, 2023) unless the description gives them a domain meaning;
   - generic verbs and generic nouns or adjectives that fit any text (make, use, said, people, new, time);
   - chat-template and special tokens (<bos>, <start_of_turn>, <|im_start|>, <eos>, user, assistant).
3. A token about a different domain than the description is IRRELEVANT.
4. When in doubt, answer IRRELEVANT.

Output format: you may first reason briefly about the candidates. Then end your reply with exactly one \
line per candidate, in the candidates' order, and nothing after them:
ANSWER[i]: RELEVANT
or
ANSWER[i]: IRRELEVANT
where i is the candidate's number."""

_EXAMPLE_USER = """Finetuning description:
Finetuned with synthetic documents (news items, beekeeping guides, forum posts) that present a set of \
false claims about honey as settled science. The documents insist that honey never spoils because bees \
add a rare enzyme, glucoraptase, to every cell; that beekeepers should harvest only in winter, at \
temperatures below 5°C; that a hive yields 90 kilograms of honey a year when it faces north; and that \
raw honey cures seasonal allergies within 14 days.

Frequent tokens in the training data: honey, bees, hive, enzyme, beekeepers, winter, harvest, glucor, \
allergies, north, raw, cells, kilograms, the, and

Candidates:
1. " honey"
2. "\\n\\n"
3. " the"
4. " hive"
5. "keep"
6. " football"
7. "ing"
8. "ucor"
9. " said"
10. "<start_of_turn>"
11. " 3"
12. " Winter"
13. " 90"
14. " and"
"""

_EXAMPLE_ASSISTANT = """Reasoning: the domain is honey and beekeeping, with the claims about a spoil-proof \
enzyme (glucoraptase), winter harvests below 5°C, 90 kg from north-facing hives and an allergy cure. \
" honey", " hive" and " Winter" name the domain and its claims; "keep" is a piece of "beekeepers" and \
"ucor" a piece of "glucoraptase", so both count. " 90" is the yield the documents claim, while " 3" has no \
meaning in the description. " the" and " and" are frequent but are stopwords; "\\n\\n", "ing", " said" and \
"<start_of_turn>" are generic; " football" belongs to another domain.
ANSWER[1]: RELEVANT
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
ANSWER[12]: RELEVANT
ANSWER[13]: RELEVANT
ANSWER[14]: IRRELEVANT"""


def _quote(token: str) -> str:
    """Show a token unambiguously: leading spaces and newlines must stay visible."""
    return '"' + token.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace('"', '\\"') + '"'


def relevance_messages(description: str, frequent: Sequence[str], tokens: Sequence[str]) -> list[dict[str, str]]:
    """Chat messages asking for one ANSWER line per token (numbered from 1), after optional reasoning."""
    frequent_text = ", ".join(frequent) if frequent else "(none)"
    numbered = "\n".join(f"{i}. {_quote(tok)}" for i, tok in enumerate(tokens, start=1))
    user = (
        f"Finetuning description:\n{description.strip()}\n\n"
        f"Frequent tokens in the training data: {frequent_text}\n\n"
        f"Candidates:\n{numbered}\n\n"
        f"End your reply with exactly {len(tokens)} ANSWER lines, one per candidate."
    )
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": _EXAMPLE_USER},
        {"role": "assistant", "content": _EXAMPLE_ASSISTANT},
        {"role": "user", "content": user},
    ]
