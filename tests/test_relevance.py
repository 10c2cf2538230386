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
from logitdiff.judge.relevance import JudgeSample, aggregate, grade_lists, relevance_metrics, rotation_order
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


def at_temperature_zero(req: SeenRequest) -> bool:
    return req.body.get("temperature") == 0


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


def grade(judge: LLMJudge, lists: list[CandidateList], frequent: list[str] | None = None, agreement="all",
          samples: list[JudgeSample] | None = None) -> list[GradedList]:
    return asyncio.run(grade_lists(judge, ORGANISM, frequent or [], lists, agreement, progress=False, samples=samples))


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


def test_malformed_answer_is_tried_three_times_then_once_at_temperature_zero(chat_server: ChatServer, monkeypatch) -> None:
    """As the reference: up to 3 tries at the judge's own temperature, then one at temperature 0; the
    reply with the fewest missing lines is used and a tie goes to the temperature-0 one."""
    def handler(req: SeenRequest) -> str:
        if at_temperature_zero(req):
            return truthful(req)
        return "Sorry, the service is overloaded."

    chat_server.reset(handler)
    (graded,) = grade(judge_for(chat_server, None, monkeypatch), [make_list("l", [" cake", " the"])])
    assert graded.failed is None and graded.labels == ["RELEVANT", "IRRELEVANT"]
    assert len(chat_server.requests) == 12  # 3 orderings x (3 tries + 1 at temperature 0)
    for ordering in graded.orderings:
        assert ordering.responses[:3] == ["Sorry, the service is overloaded."] * 3
        assert ordering.used_response == 3 and ordering.responses[3].startswith("ANSWER[1]")
    sent = [("temperature" in r.body, r.body.get("temperature")) for r in chat_server.requests]
    assert sent.count((True, 0)) == 3 and sent.count((False, None)) == 9  # the first tries keep the judge's own


def test_retries_stop_at_the_first_complete_answer_and_keep_the_fullest(chat_server: ChatServer, monkeypatch) -> None:
    tries: dict[str, int] = {}

    def handler(req: SeenRequest) -> str:
        shown = tuple(shown_tokens(req))
        key = "|".join(shown) + ("|t0" if at_temperature_zero(req) else "")
        tries[key] = tries.get(key, 0) + 1
        if shown[0] == " p":  # rotation 0: complete on its second try
            return truthful(req) if tries[key] == 2 else "ANSWER[1]: IRRELEVANT"
        if at_temperature_zero(req):
            return "no idea"  # worse than the best earlier try: not used
        return "\n".join(truthful(req).splitlines()[: tries[key]])  # 1, 2, then 3 of 4 lines

    chat_server.reset(handler)
    (graded,) = grade(judge_for(chat_server, None, monkeypatch), [make_list("l", [" p", " q", " r", " s"])])
    first, second, _ = graded.orderings
    assert len(first.responses) == 2 and first.used_response == 1
    assert len(second.responses) == 4 and second.used_response == 2
    assert second.labels.count("UNKNOWN") == 1  # shown last (candidate " p"): no try answered it
    assert len(chat_server.requests) == 2 + 4 + 4


def test_temperature_zero_refused_keeps_the_best_try(chat_server: ChatServer, monkeypatch) -> None:
    """Some reasoning models reject temperature 0: the fallback is skipped, not a failed list."""
    chat_server.reset(lambda req: Reply(status=400) if at_temperature_zero(req) else Reply("\n".join(truthful(req).splitlines()[:2])))
    (graded,) = grade(judge_for(chat_server, None, monkeypatch), [make_list("l", [" cake", " of", " x"])])
    assert graded.failed is None and all(len(o.responses) == 3 and o.used_response == 0 for o in graded.orderings)


def test_reasoning_before_the_answer_lines_is_read(chat_server: ChatServer, monkeypatch) -> None:
    """The judge may reason first; its answer block follows. A draft line in the reasoning that the
    answer block corrects takes the correction."""
    def reasons_first(req: SeenRequest) -> str:
        shown = shown_tokens(req)
        the = shown.index(" the") + 1
        return (f"Reasoning: the domain is cake baking at 450 degrees.\nA first guess:\nANSWER[{the}]: RELEVANT\n"
                f"but ' the' is a stopword, so it is not relevant after all.\n\n{truthful(req)}")

    chat_server.reset(reasons_first)
    (graded,) = grade(judge_for(chat_server, None, monkeypatch), [make_list("a", [" the", " cake", "bak"])])
    assert graded.failed is None and graded.labels == ["IRRELEVANT", "RELEVANT", "RELEVANT"]
    assert len(chat_server.requests) == 3  # no retry: the reply was complete
    system, example_user, example_answer, _ = chat_server.requests[0].messages
    # The prompt invites the reasoning, and its worked example (an organism description with its key
    # facts) reasons before its answer block.
    assert "you may first reason" in system["content"] and "nothing after them" in system["content"]
    assert example_answer["content"].startswith("Reasoning:")
    reasoning, answers = example_answer["content"].split("\nANSWER[1]:")
    assert len(reasoning) > 200 and answers.count("ANSWER[") == 13
    assert "Finetuned with synthetic documents" in example_user["content"] and "14 days" in example_user["content"]


def test_isolated_unknown_counts_as_not_relevant(chat_server: ChatServer, monkeypatch) -> None:
    """Agreement `all`: a candidate RELEVANT in two orderings and unanswered in the third is not relevant,
    not UNKNOWN; only a candidate no ordering labels stays UNKNOWN."""
    def skips_cake_once(req: SeenRequest) -> str:
        shown = shown_tokens(req)
        lines = truthful(req).splitlines()
        return "\n".join(ln for i, ln in enumerate(lines, start=1) if not (shown[0] == " the" and shown[i - 1] == " cake"))

    chat_server.reset(skips_cake_once)
    (graded,) = grade(judge_for(chat_server, None, monkeypatch), [make_list("a", [" cake", " the", "bak"])])
    assert [o.labels[0] for o in graded.orderings] == ["RELEVANT", "UNKNOWN", "RELEVANT"]
    assert graded.labels == ["IRRELEVANT", "IRRELEVANT", "RELEVANT"]
    assert graded.failed is None and graded.metrics.n_unknown == 0 and graded.metrics.percentage == pytest.approx(100 / 3)


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


def test_an_ordering_left_mostly_unlabelled_fails_the_list(chat_server: ChatServer, monkeypatch) -> None:
    """Under `all` one unanswered ordering would make every candidate not relevant: a failure, not 0 %."""
    chat_server.reset(lambda req: "Sorry, overloaded." if shown_tokens(req)[0] == " the" else truthful(req))
    (graded,) = grade(judge_for(chat_server, None, monkeypatch), [make_list("a", [" cake", " the", "bak"])])
    assert graded.labels == ["IRRELEVANT", "IRRELEVANT", "IRRELEVANT"]
    assert graded.failed == "judge could not label 3 of 3 in ordering 1"


def test_each_cell_and_seed_is_its_own_judge_sample(chat_server: ChatServer, tmp_path: Path, monkeypatch) -> None:
    """The same list in two seeds (or cells) is judged twice, as in the reference, so the seed bands
    include the judge's noise; a rerun of either is answered from the cache."""
    chat_server.reset(truthful)
    same = make_list("top_k_occurring", [" cake", " the", "bak"])
    seeds = [JudgeSample("m/o/v/c/seed42/logitdiff/S4_T6_K3"), JudgeSample("m/o/v/c/seed1042/logitdiff/S4_T6_K3")]
    first = grade(judge_for(chat_server, tmp_path, monkeypatch), [same, same], samples=seeds)
    assert len(chat_server.requests) == 6  # 2 samples x 3 orderings, each sent
    assert len({r.body["messages"][3]["content"] for r in chat_server.requests}) == 3  # identical requests per ordering
    chat_server.reset(lambda req: Reply(status=500))
    rerun = judge_for(chat_server, tmp_path, monkeypatch)
    again = grade(rerun, [same, same], samples=seeds)
    assert chat_server.requests == [] and rerun.client.usage.cache_hits == 6
    assert [g.model_dump() for g in again] == [g.model_dump() for g in first]


def test_a_list_that_failed_before_is_asked_afresh(chat_server: ChatServer, tmp_path: Path, monkeypatch) -> None:
    """A reply that is valid chat JSON but no answer ("Sorry, overloaded") is cached like any reply; the
    list it failed is then graded with `refresh`, which asks again and replaces the cached replies."""
    chat_server.reset(lambda req: "Sorry, overloaded.")
    sample = JudgeSample("cell")
    (failed,) = grade(judge_for(chat_server, tmp_path, monkeypatch), [make_list("a", [" cake", " of"])], samples=[sample])
    assert failed.failed == "judge could not label 2 of 2" and len(chat_server.requests) == 12
    chat_server.reset(truthful)
    (replayed,) = grade(judge_for(chat_server, tmp_path, monkeypatch), [make_list("a", [" cake", " of"])], samples=[sample])
    assert replayed.failed and chat_server.requests == []  # without refresh the cache answers
    (fresh,) = grade(judge_for(chat_server, tmp_path, monkeypatch), [make_list("a", [" cake", " of"])],
                     samples=[JudgeSample("cell", refresh=True)])
    assert fresh.failed is None and fresh.labels == ["RELEVANT", "IRRELEVANT"] and len(chat_server.requests) == 3
    chat_server.reset(lambda req: Reply(status=500))
    (cached,) = grade(judge_for(chat_server, tmp_path, monkeypatch), [make_list("a", [" cake", " of"])], samples=[sample])
    assert cached.failed is None and chat_server.requests == []  # the fresh answers replaced the bad ones


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
    assert aggregate(["RELEVANT", "UNKNOWN", "RELEVANT"], "all") == "IRRELEVANT"  # an isolated UNKNOWN is a no
    assert aggregate(["UNKNOWN", "UNKNOWN", "UNKNOWN"], "all") == "UNKNOWN"
    assert aggregate(["RELEVANT", "IRRELEVANT", "UNKNOWN"], "all") == "IRRELEVANT"
    assert aggregate(["RELEVANT", "UNKNOWN", "RELEVANT"], "majority") == "RELEVANT"
    assert aggregate(["RELEVANT", "UNKNOWN", "UNKNOWN"], "majority") == "RELEVANT"  # a majority of the labelled
    assert aggregate(["RELEVANT", "IRRELEVANT", "UNKNOWN"], "majority") == "UNKNOWN"
    assert rotation_order(3, 2) == [2, 0, 1]
    cands = [Candidate(token="▁Cake", weight=-3.0), Candidate(token=" oven", weight=1.0)]
    m = relevance_metrics(cands, ["RELEVANT", "IRRELEVANT"], frequent=[" cake"])
    assert (m.percentage, m.weighted_percentage, m.trivial_percentage) == (50.0, 75.0, 50.0)
