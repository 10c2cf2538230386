"""Parse an agent turn: it must end with `CALL(tool_name: {json})` or `FINAL(description: "...")`,
and split a FINAL description into the parts of its format (`final_report`).

The last directive in the message counts, so an agent may think aloud (and even quote the grammar)
before it. FINAL descriptions are read as a JSON string when possible; LLMs often put raw newlines or
unescaped quotes in them, so the fallback takes everything up to the last `")`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from logitdiff.agent.records import FinalReport

_DIRECTIVE = re.compile(r"\b(CALL|FINAL)\s*\(")
_CALL_HEAD = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*:\s*")
_FINAL_HEAD = re.compile(r"\s*[\"']?description[\"']?\s*:\s*")


@dataclass(frozen=True)
class ToolCall:
    tool: str
    args: dict[str, Any]


@dataclass(frozen=True)
class Final:
    description: str


@dataclass(frozen=True)
class FormatError:
    reason: str


Parsed = ToolCall | Final | FormatError


def parse_turn(text: str) -> Parsed:
    matches = list(_DIRECTIVE.finditer(text))
    if not matches:
        return FormatError("no CALL(...) or FINAL(...) found; end your message with exactly one of them")
    last_start = matches[-1].start()
    first_error: FormatError | None = None
    # A later "directive" may sit inside an earlier one's arguments (a prompt quoting FINAL(...)):
    # the directive that counts is the last one whose parsed span reaches the last match.
    for match in reversed(matches):
        parsed, end = _parse_call(text, match.end()) if match.group(1) == "CALL" else _parse_final(text, match.end())
        if isinstance(parsed, FormatError):
            first_error = first_error or parsed
        elif match.start() == last_start or end > last_start:
            return parsed
    assert first_error is not None
    return first_error


def _parse_call(text: str, start: int) -> tuple[Parsed, int]:
    head = _CALL_HEAD.match(text, start)
    if head is None:
        return FormatError('CALL needs the form CALL(tool_name: {"arg": ...}) with a tool name and a colon'), start
    tool = head.group(1)
    try:
        args, end = json.JSONDecoder().raw_decode(text, head.end())
    except json.JSONDecodeError as exc:
        return FormatError(f"the arguments of CALL({tool}: ...) are not valid JSON ({exc.msg} at char {exc.pos - head.end()})"), start
    if not isinstance(args, dict):
        return FormatError(f"the arguments of CALL({tool}: ...) must be a JSON object {{...}}, got {type(args).__name__}"), start
    if not re.match(r"\s*\)", text[end:]):
        return FormatError(f"CALL({tool}: {{...}}) is missing its closing parenthesis right after the JSON object"), start
    return ToolCall(tool=tool, args=args), end


def _parse_final(text: str, start: int) -> tuple[Parsed, int]:
    head = _FINAL_HEAD.match(text, start)
    if head is None:
        return FormatError('FINAL needs the form FINAL(description: "your description")'), start
    rest = text[head.end():]
    if not rest.startswith('"'):
        return FormatError('the description in FINAL(description: "...") must be in double quotes'), start
    try:
        value, end = json.JSONDecoder().raw_decode(rest)
        if isinstance(value, str) and re.match(r"\s*\)", rest[end:]):
            return _nonempty(value), head.end() + end
    except json.JSONDecodeError:
        pass
    close = rest.rfind('")')
    if close <= 0:
        return FormatError('FINAL(description: "...") is not closed with ")'), start
    return _nonempty(rest[1:close]), head.end() + close


def _nonempty(description: str) -> Parsed:
    description = description.strip()
    if not description:
        return FormatError("the FINAL description is empty")
    return Final(description=description)


# A trailing "[...]" block: the evidence list (items on their own lines or separated by ";").
_EVIDENCE = re.compile(r"\[([^\[\]]*)\]\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def final_report(description: str) -> FinalReport:
    """Headline = the first sentence (or line), summary = the rest before the evidence block."""
    text = description.strip()
    evidence: list[str] = []
    block = _EVIDENCE.search(text)
    if block is not None and block.start() > 0:
        items = re.split(r"\n|;", block.group(1))
        evidence = [item for item in (_BULLET.sub("", i).strip() for i in items) if item]
        text = text[: block.start()].rstrip()
    # The format puts the summary on its own line; a one-paragraph FINAL splits after its first sentence.
    split = re.search(r"\n", text) or _SENTENCE_END.search(text)
    headline, summary = (text[: split.start()], text[split.end():]) if split else (text, "")
    headline, summary = headline.strip(), summary.strip()
    return FinalReport(headline=headline, summary=summary, evidence=evidence,
                       inconclusive=headline.lower().startswith("inconclusive"), follows_format=bool(headline and summary))
