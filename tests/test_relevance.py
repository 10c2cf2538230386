"""Relevance grading with the real openai client against the loopback chat-completions server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from logitdiff.config.schema import OrganismConfig
from logitdiff.judge.llm_judge import LLMJudge
from logitdiff.judge.parsing import parse_answers
from logitdiff.judge.prompts import relevance_messages
from logitdiff.judge.relevance import aggregate, grade_lists, relevance_metrics, rotation_order
from logitdiff.llm import LLMClient, LLMSpec
from logitdiff.results.graded import Candidate, CandidateList, GradedList
from testkit.openai_server import ChatServer, Reply, SeenRequest

ORGANISM = OrganismConfig(
    name="toy_cake", type="SDF", description="Finetuned on documents about baking cakes at 450 degrees.",
    finetuned_models={},
)
_CANDIDATE = re.compile(r'^(\d+)\. "(.*)"$')


def shown_tokens(req: SeenRequest) -> list[str]:
    """The candidates in the order this request showed them (from the grading prompt, also in re-asks)."""
    prompt = req.messages[3]["content"]
    return [m.group(2) for line in prompt.splitlines() if (m := _CANDIDATE.match(line))]


def is_reask(req: SeenRequest) -> bool:
    return len(req.messages) > 4


def truthful(req: SeenRequest) -> str:
    """Tokens containing 'cake' or 'bak' are relevant."""
    return "\n".join(
        f"ANSWER[{i}]: {'RELEVANT' if ('cake' in t or 'bak' in t) else 'IRRELEVANT'}"
        for i, t in enumerate(shown_tokens(req), start=1)
    )


def judge_for(server: ChatServer, cache_dir: Path | None, monkeypatch, **overrides) -> LLMJudge:
    monkeypatch.setenv("LOGITDIFF_TEST_KEY", "k")
    fields = dict(id="openrouter/test/judge", base_url=server.base_url, model="test/judge",
                  api_key_env="LOGITDIFF_TEST_KEY", api_key_file=None, max_retries=2,
                  backoff_initial_s=0.001, backoff_max_s=0.01)
    fields.update(overrides)
    return LLMJudge(LLMClient(LLMSpec(**fields), cache_dir))


def make_list(list_id: str, tokens: list[str], weights: list[float] | None = None) -> CandidateList:
    weights = weights or [1.0] * len(tokens)
    return CandidateList(list_id=list_id, candidates=[Candidate(token=t, weight=w) for t, w in zip(tokens, weights)])


def grade(judge: LLMJudge, lists: list[CandidateList], frequent: list[str] | None = None, agreement="all") -> list[GradedList]:
    return asyncio.run(grade_lists(judge, ORGANISM, frequent or [], lists, agreement, progress=False))


def test_happy_path_labels_metrics_and_recorded_orderings(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.reset(truthful)
    lists = [make_list("a", [" cake", " the", "bak", "\n"], [4.0, 3.0, 2.0, 1.0]), make_list("b", [" river", " cakes"])]
    a, b = grade(judge_for(chat_server, None, monkeypatch), lists, frequent=["Ġcake", "river"])
    assert a.failed is None and a.judge_id == "openrouter/test/judge"
    assert a.labels == ["RELEVANT", "IRRELEVANT", "RELEVANT", "IRRELEVANT"]
    assert [o.rotation for o in a.orderings] == [0, 1, 2]
    assert [o.order for o in a.orderings] == [[0, 1, 2, 3], [1, 2, 3, 0], [2, 3, 0, 1]]
    assert all(len(o.responses) == 1 and o.responses[0].startswith("ANSWER[1]") for o in a.orderings)
    assert a.metrics is not None
    assert (a.metrics.percentage, a.metrics.weighted_percentage, a.metrics.trivial_percentage) == (50.0, 60.0, 25.0)
    assert b.labels == ["IRRELEVANT", "RELEVANT"] and b.metrics.trivial_percentage == 50.0
    assert len(chat_server.requests) == 6
    # The prompt carries the description, the frequent tokens and the numbered, quoted candidates.
    (req,) = [r for r in chat_server.requests if shown_tokens(r)[0] == " cake"]
    prompt = req.messages[3]["content"]
    assert ORGANISM.description in prompt and "Ġcake, river" in prompt and '4. "\\n"' in prompt


def test_no_frequent_tokens_says_none() -> None:
    assert "Frequent tokens in the training data: (none)" in relevance_messages("d" * 30, [], ["x"])[3]["content"]


def test_rotations_are_mapped_back(chat_server: ChatServer, monkeypatch) -> None:
    # The judge calls only the FIRST shown candidate relevant, so ordering r marks original candidate r.
    chat_server.reset(lambda req: "\n".join(
        f"answer[{i}]: {'relevant' if i == 1 else 'irrelevant'}" for i in range(1, len(shown_tokens(req)) + 1)))
    tokens = [" w", " x", " y", " z"]
    (graded,) = grade(judge_for(chat_server, None, monkeypatch), [make_list("l", tokens)])
    for ordering in graded.orderings:
        expected = ["IRRELEVANT"] * 4
        expected[ordering.rotation] = "RELEVANT"
        assert ordering.labels == expected
    assert graded.labels == ["IRRELEVANT"] * 4


def test_agreement_all_vs_majority(chat_server: ChatServer, monkeypatch) -> None:
    # ' a' is relevant when shown first or second; with 3 tokens it is first (rot 0) or third (rot 1) or second (rot 2).
    def handler(req: SeenRequest) -> str:
        shown = shown_tokens(req)
        return "\n".join(f"ANSWER[{i}]: {'RELEVANT' if t == ' a' and i <= 2 else 'IRRELEVANT'}"
                         for i, t in enumerate(shown, start=1))
    chat_server.reset(handler)
    lists = [make_list("l", [" a", " b", " c"])]
    (strict,) = grade(judge_for(chat_server, None, monkeypatch), lists, agreement="all")
    (lenient,) = grade(judge_for(chat_server, None, monkeypatch), lists, agreement="majority")
    assert [o.labels[0] for o in strict.orderings] == ["RELEVANT", "IRRELEVANT", "RELEVANT"]
    assert strict.labels[0] == "IRRELEVANT" and lenient.labels[0] == "RELEVANT"
    assert strict.metrics.percentage == 0.0 and lenient.metrics.percentage == pytest.approx(100 / 3)


def test_429_then_success_still_grades(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply(status=429) if req.index < 2 else Reply(truthful(req)))
    (graded,) = grade(judge_for(chat_server, None, monkeypatch), [make_list("l", [" cake", " of"])])
    assert graded.failed is None and graded.labels == ["RELEVANT", "IRRELEVANT"]
    assert len(chat_server.requests) == 5


def test_5xx_exhausting_retries_fails_only_that_list(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply(status=500) if " poison" in shown_tokens(req) else Reply(truthful(req)))
    judge = judge_for(chat_server, None, monkeypatch, max_retries=2)
    good, bad, good2 = grade(judge, [make_list("g", [" cake"]), make_list("x", [" poison", " cake"]), make_list("g2", [" of"])])
    assert bad.failed is not None and "HTTP 500" in bad.failed and "3 attempt" in bad.failed
    assert bad.metrics is None and bad.labels == []
    assert (good.failed, good.labels, good2.labels) == (None, ["RELEVANT"], ["IRRELEVANT"])
    assert judge.client.usage.failures == 3  # every ordering of the poisoned list
    assert sum(" poison" in shown_tokens(r) for r in chat_server.requests) == 9


def test_missing_and_garbled_lines_are_reasked_then_unknown(chat_server: ChatServer, monkeypatch) -> None:
    def handler(req: SeenRequest) -> str:
        if is_reask(req):
            return "Sure!\nANSWER[2]: RELEVANT"  # still no line for 3
        return "ANSWER[1]: IRRELEVANT\nANSWER 2 RELEVANT\nANSWER[3]: maybe\nANSWER[4]: IRRELEVANT"
    chat_server.reset(handler)
    tokens = [" p", " q", " r", " s"]
    (graded,) = grade(judge_for(chat_server, None, monkeypatch), [make_list("l", tokens)])
    first = graded.orderings[0]
    assert first.labels == ["IRRELEVANT", "RELEVANT", "UNKNOWN", "IRRELEVANT"]
    assert len(first.responses) == 2 and first.responses[1].endswith("ANSWER[2]: RELEVANT")
    reasks = [r for r in chat_server.requests if is_reask(r)]
    assert len(reasks) == 3 and all("candidate(s) 2, 3" in r.last_user for r in reasks)
    # Shown position 3 is unanswered in every ordering: candidate r, s, p for rotations 0, 1, 2.
    assert [o.labels.index("UNKNOWN") for o in graded.orderings] == [2, 3, 0]
    assert graded.labels == ["IRRELEVANT"] * 4  # each candidate has one IRRELEVANT vote


def test_rerun_is_served_from_cache(chat_server: ChatServer, tmp_path: Path, monkeypatch) -> None:
    chat_server.reset(truthful)
    lists = [make_list("a", [" cake", " the"]), make_list("b", [" baking"])]
    first = grade(judge_for(chat_server, tmp_path, monkeypatch), lists)
    assert len(chat_server.requests) == 6
    chat_server.reset(lambda req: Reply(status=500))
    rerun_judge = judge_for(chat_server, tmp_path, monkeypatch)
    again = grade(rerun_judge, lists)
    assert chat_server.requests == [] and rerun_judge.client.usage.cache_hits == 6
    assert [g.model_dump() for g in again] == [g.model_dump() for g in first]


def test_requests_in_flight_never_exceed_limit(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply(truthful(req), delay_s=0.05))
    lists = [make_list(f"l{i}", [f" t{i}", " cake"]) for i in range(10)]
    graded = grade(judge_for(chat_server, None, monkeypatch, max_connections=4), lists)
    assert all(g.failed is None for g in graded)
    assert len(chat_server.requests) == 30 and chat_server.max_in_flight == 4


def test_parse_answers_is_case_insensitive_and_strict() -> None:
    text = "answer[1]: Relevant\n**ANSWER[2]:** IRRELEVANT\nANSWER[3]: RELEVANT because cake\nANSWER[9]: RELEVANT\n" \
           "ANSWER[4]: RELEVANT\nANSWER[4]: IRRELEVANT"
    assert parse_answers(text, 4) == {1: "RELEVANT", 2: "IRRELEVANT", 4: "IRRELEVANT"}


def test_number_answered_twice_takes_the_last_answer(chat_server: ChatServer, monkeypatch) -> None:
    """A judge that corrects itself ("ANSWER[2]: IRRELEVANT" then "ANSWER[2]: RELEVANT") means the correction,
    as in the reference; it is neither UNKNOWN nor a reason to re-ask."""
    def corrects_itself(req: SeenRequest) -> str:
        shown = shown_tokens(req)
        cake = shown.index(" cake") + 1
        return truthful(req) + f"\nANSWER[{cake}]: IRRELEVANT\nANSWER[{cake}]: RELEVANT\nANSWER[{cake}]: IRRELEVANT"

    chat_server.reset(corrects_itself)
    (graded,) = grade(judge_for(chat_server, None, monkeypatch), [make_list("a", [" the", " cake", "bak"])])
    assert graded.labels == ["IRRELEVANT", "IRRELEVANT", "RELEVANT"]
    assert len(chat_server.requests) == 3  # no re-ask


def test_aggregate_and_metrics_known_answers() -> None:
    assert aggregate(["RELEVANT", "RELEVANT", "RELEVANT"], "all") == "RELEVANT"
    assert aggregate(["RELEVANT", "UNKNOWN", "RELEVANT"], "all") == "UNKNOWN"
    assert aggregate(["RELEVANT", "IRRELEVANT", "UNKNOWN"], "all") == "IRRELEVANT"
    assert aggregate(["RELEVANT", "UNKNOWN", "RELEVANT"], "majority") == "RELEVANT"
    assert aggregate(["RELEVANT", "IRRELEVANT", "UNKNOWN"], "majority") == "UNKNOWN"
    assert rotation_order(3, 2) == [2, 0, 1]
    cands = [Candidate(token="▁Cake", weight=-3.0), Candidate(token=" oven", weight=1.0)]
    m = relevance_metrics(cands, ["RELEVANT", "IRRELEVANT"], frequent=[" cake"])
    assert (m.percentage, m.weighted_percentage, m.trivial_percentage) == (50.0, 75.0, 50.0)
