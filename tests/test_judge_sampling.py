"""Judge samples, cost and failed answers in real tiny runs of the CLI against the loopback judge.

- every (cell, seed, list, ordering) is its own judge sample: equal lists of two seeds are both sent, a
  rerun sends nothing;
- `--check` and the start of a run count the requests the run will send after the cache;
- a list that failed on answers in the wrong format is asked again by the next run, `--overwrite` too;
- an API key quoted by a server's error body never reaches a stored file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from testkit.openai_server import ChatServer, Reply, SeenRequest, scripted_judge
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, TinySetup

# S = every text of the tiny corpus: both seeds count the same texts, so their lists are equal.
GRID = ["--values", "3", "--samples", "24", "--positions", "6"]
LISTS_PER_CELL = 2  # the two LogitDiff orderings
ORDERINGS = 3
DESCRIPTIONS = 2  # each list is graded against its organism and against the negative control's
KEY = "sk-test-0123456789abcdefXYZ"


def run(tiny: TinySetup, root: Path, judge: ChatServer, seeds: str, *extra: str) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable, "-c", "from logitdiff.cli import main; main()", "topk-depth", "--model", TINY_MODEL,
        "--organism", TINY_ORGANISM, "--mode", "diffing", "--seeds", seeds, *GRID,
        "--judge", f"vllm/scripted-judge@{judge.base_url}", "--results-dir", str(root / "results"),
        "--output-dir", str(root / "outputs"), "--cache-dir", str(root / "cache"), *extra,
    ]
    env = {**tiny.env, "COLUMNS": "250", "VLLM_API_KEY": KEY}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


def planned_judge_requests(res: subprocess.CompletedProcess[str]) -> int:
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("LLM requests this run will send after the cache:")]
    return int(line.split("judge ")[1].split(";")[0].split(",")[0])


def relevance_docs(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "results").rglob("relevance/*.json"))]


@pytest.mark.slow
def test_equal_lists_of_two_seeds_are_two_samples_and_the_count_is_what_is_sent(
    tiny: TinySetup, chat_server: ChatServer, tmp_path: Path,
) -> None:
    per_cell = LISTS_PER_CELL * ORDERINGS * DESCRIPTIONS
    chat_server.reset(scripted_judge)
    check = run(tiny, tmp_path, chat_server, "42", "--check")
    assert check.returncode == 0, check.stderr[-3000:]
    assert planned_judge_requests(check) == per_cell and not chat_server.requests
    first = run(tiny, tmp_path, chat_server, "42")
    assert first.returncode == 0, first.stderr[-3000:]
    assert planned_judge_requests(first) == per_cell == len(chat_server.requests)
    seed42 = Counter(json.dumps(r.body, sort_keys=True) for r in chat_server.requests)

    # Seed 1042 has the same lists, hence the same requests: they are its own samples and are sent.
    chat_server.reset(scripted_judge)
    assert planned_judge_requests(run(tiny, tmp_path, chat_server, "42,1042", "--check")) == per_cell
    both = run(tiny, tmp_path, chat_server, "42,1042")
    assert both.returncode == 0, both.stderr[-3000:]
    docs = relevance_docs(tmp_path)
    tokens = [[c["token"] for lst in doc["lists"] for c in lst["candidates"]] for doc in docs]
    assert len(docs) == 2 and tokens[0] == tokens[1], "the seeds' lists differ: the test needs equal lists"
    assert Counter(json.dumps(r.body, sort_keys=True) for r in chat_server.requests) == seed42

    # A rerun sends nothing, and says so.
    chat_server.reset(scripted_judge)
    assert planned_judge_requests(run(tiny, tmp_path, chat_server, "42,1042", "--check")) == 0
    rerun = run(tiny, tmp_path, chat_server, "42,1042")
    assert rerun.returncode == 0 and chat_server.requests == [], rerun.stderr[-3000:]

    # Grades gone, answers cached: the count looks each request up and finds it.
    for path in (tmp_path / "results").rglob("relevance/*.json"):
        path.unlink()
    assert planned_judge_requests(run(tiny, tmp_path, chat_server, "42,1042", "--check")) == 0
    # Answers gone too: every ordering of the stored lists is counted, and sent.
    shutil.rmtree(tmp_path / "cache" / "llm")
    assert planned_judge_requests(run(tiny, tmp_path, chat_server, "42,1042", "--check")) == 2 * per_cell
    regrade = run(tiny, tmp_path, chat_server, "42,1042")
    assert regrade.returncode == 0 and len(chat_server.requests) == 2 * per_cell, regrade.stderr[-3000:]


def overloaded(request: SeenRequest) -> Reply:
    return Reply("Sorry, the service is overloaded. Please try again later.")


@pytest.mark.slow
def test_failed_list_is_asked_again_by_a_rerun_and_by_overwrite(tiny: TinySetup, chat_server: ChatServer, tmp_path: Path) -> None:
    for how in ("rerun", "overwrite"):
        root = tmp_path / how
        chat_server.reset(overloaded)
        bad = run(tiny, root, chat_server, "42")
        assert bad.returncode == 1, bad.stderr[-3000:]
        assert all(lst["failed"] for doc in relevance_docs(root) for lst in doc["lists"])
        chat_server.reset(scripted_judge)
        good = run(tiny, root, chat_server, "42", *(["--overwrite"] if how == "overwrite" else []))
        assert good.returncode == 0, (how, good.stderr[-3000:])
        assert planned_judge_requests(good) == LISTS_PER_CELL * ORDERINGS * DESCRIPTIONS == len(chat_server.requests), how
        assert not any(lst["failed"] for doc in relevance_docs(root) for lst in doc["lists"])


def test_api_key_quoted_in_an_error_never_reaches_stored_files(tiny: TinySetup, chat_server: ChatServer, tmp_path: Path) -> None:
    chat_server.reset(lambda req: Reply(status=400, error_message=f"invalid request (Authorization: {req.headers['authorization']})"))
    res = run(tiny, tmp_path, chat_server, "42")
    assert res.returncode == 1, res.stderr[-3000:]
    assert chat_server.requests and chat_server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    stored = [p for folder in ("results", "outputs") for p in (tmp_path / folder).rglob("*.json")]
    failures = [lst["failed"] for doc in relevance_docs(tmp_path) for lst in doc["lists"]]
    assert failures and all("Authorization: Bearer [redacted]" in f for f in failures)
    assert (tmp_path / "outputs").rglob("missing.json")
    assert not [p for p in stored if KEY in p.read_text()]
    assert KEY not in res.stderr and KEY not in res.stdout
