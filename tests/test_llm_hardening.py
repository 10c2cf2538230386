"""Issue 17 items 1, 5, 6, 7 against the real loopback chat-completions server: malformed 200s, the judge
checked before any model loads, the response cache on by default, and bounded timeouts and retries."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from logitdiff.config.loader import Registry
from logitdiff.config.schema import OrganismConfig
from logitdiff.core.errors import UserError
from logitdiff.experiments.grid import GridOptions
from logitdiff.experiments.runner import run_experiment
from logitdiff.experiments.settings import Mode, RunSettings
from logitdiff.judge.llm_judge import LLMJudge
from logitdiff.judge.relevance import grade_list
from logitdiff.llm import LLMCallError, LLMClient, LLMSpec
from logitdiff.results.graded import Candidate, CandidateList
from testkit.openai_server import ChatServer, Reply, SeenRequest, scripted_judge
from testkit.tiny_experiment import TINY_MODEL, TINY_ORGANISM, TinySetup

KEY_ENV = "LOGITDIFF_HARDEN_KEY"
MESSAGES = [{"role": "user", "content": "say hi"}]
HTML_PAGE = Reply(raw_body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
BROKEN_JSON = Reply(raw_body=b'{"choices": [{"message": ', content_type="application/json")


def client_for(server: ChatServer, monkeypatch: pytest.MonkeyPatch, cache_dir: Path | None = None, **overrides: object) -> LLMClient:
    monkeypatch.setenv(KEY_ENV, "k")
    fields: dict[str, object] = dict(id="openrouter/test/model", base_url=server.base_url, model="test/model", api_key_env=KEY_ENV,
                                     api_key_file=None, max_retries=2, backoff_initial_s=0.001, backoff_max_s=0.01, timeout_s=10)
    fields.update(overrides)
    return LLMClient(LLMSpec(**fields), cache_dir)  # type: ignore[arg-type]


# ---- item 1: a 200 that is not a chat completion -----------------------------------------------------

@pytest.mark.parametrize("bad", [HTML_PAGE, BROKEN_JSON, Reply(raw_body=b'{"object": "error"}')], ids=["html", "truncated-json", "no-choices"])
def test_malformed_200_is_retried_like_a_5xx(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch, bad: Reply) -> None:
    chat_server.reset(lambda req: bad if req.index == 0 else Reply("fine"))
    client = client_for(chat_server, monkeypatch)
    assert asyncio.run(client.complete(MESSAGES)).text == "fine"
    assert len(chat_server.requests) == 2 and (client.usage.retries, client.usage.failures) == (1, 0)


def test_persistent_malformed_200_fails_the_list_not_the_run(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    chat_server.reset(lambda req: BROKEN_JSON)
    client = client_for(chat_server, monkeypatch)
    with pytest.raises(LLMCallError, match="3 attempt.*malformed reply: body is not JSON"):
        asyncio.run(client.complete(MESSAGES))
    assert len(chat_server.requests) == 3
    organism = OrganismConfig(name="t", type="SDF", description="Documents about baking cakes in hot ovens.", finetuned_models={})
    candidates = CandidateList(list_id="top", candidates=[Candidate(token=" cake", weight=1.0), Candidate(token=" river", weight=0.5)])
    graded = asyncio.run(grade_list(LLMJudge(client), organism, [], candidates))
    assert graded.metrics is None and graded.failed is not None and "malformed reply" in graded.failed


# ---- the tiny CLI set-up shared by items 5, 6, 7 ----------------------------------------------------------

def cli_args(root: Path, judge: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-c", "from logitdiff.cli import main; main()", "topk-depth", "--model", TINY_MODEL, "--organism", TINY_ORGANISM,
        "--mode", "diffing", "--seeds", "42", "--values", "3,10", "--samples", "4", "--positions", "6", "--batch-size", "2",
        "--judge", judge, "--results-dir", str(root / "results"), "--output-dir", str(root / "outputs"), *extra,
    ]


def dead_url() -> str:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


# ---- item 5: the judge is checked before any model loads --------------------------------------------

def test_diffing_without_judge_key_fails_before_any_model_loads(tiny: TinySetup, tmp_path: Path) -> None:
    env = {**tiny.env, "LOGITDIFF_CACHE": str(tmp_path / "cache")}  # tiny.env carries no *_API_KEY
    out = subprocess.run(cli_args(tmp_path, "openrouter/test/model"), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: no API key for the judge openrouter/test/model") and "OPENROUTER_API_KEY" in line
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.*"))  # no pass ran


def test_unreachable_judge_fails_before_any_model_loads(tiny: TinySetup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import logitdiff.experiments.stages as stages

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("no model may be loaded when the judge is unreachable")

    for key in ("LOGITDIFF_CONFIGS", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(key, tiny.env[key])
    monkeypatch.setattr(stages, "load_pair", forbidden)
    url = dead_url()
    settings = RunSettings(
        experiment="topk-depth", mode=Mode.diffing, judge=f"vllm/judge@{url}", results_dir=tmp_path / "results",
        output_dir=tmp_path / "outputs", cache_dir=tmp_path / "cache",
        grid=GridOptions(model=TINY_MODEL, organism=TINY_ORGANISM, seeds=[42], values=["3"], samples=4, positions=6),
    )
    with pytest.raises(UserError, match=f"cannot reach {url} for the judge vllm/judge"):
        run_experiment(Registry.load(), settings)


# ---- item 6: the response cache is on by default --------------------------------------------------

def _canonical(request: SeenRequest) -> str:
    return json.dumps(request.body, sort_keys=True)


def test_rerun_after_kill_mid_judging_sends_only_the_missing_requests(tiny: TinySetup, tmp_path: Path, chat_server: ChatServer) -> None:
    # The first 4 requests are answered; every later one hangs until the run is killed.
    gate = threading.Event()

    def first_four(request: SeenRequest) -> Reply:
        if request.index >= 4:
            gate.wait(60)
        return scripted_judge(request)

    chat_server.reset(first_four)
    cache = tmp_path / "cache"
    env = {**tiny.env, "LOGITDIFF_CACHE": str(cache)}  # no --cache-dir: the default location
    args = cli_args(tmp_path, f"vllm/scripted-judge@{chat_server.base_url}")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list((cache / "llm").rglob("*.json"))) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gate.set()
    # Multisets: equal lists of two cells are two judge samples, so one text may be sent once per cell.
    answered = Counter(_canonical(r) for r in chat_server.requests[:4])
    assert len(list((cache / "llm").rglob("*.json"))) == 4, "the answered requests were not cached"
    assert not list((tmp_path / "results").rglob("relevance/*.json")), "killed after judging finished"

    chat_server.reset(scripted_judge)
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resent = Counter(_canonical(r) for r in chat_server.requests)

    # Together the two runs sent exactly the requests of one uninterrupted run.
    chat_server.reset(scripted_judge)
    clean_args = [*cli_args(tmp_path / "clean", f"vllm/scripted-judge@{chat_server.base_url}"), "--cache-dir", str(tmp_path / "clean-cache")]
    clean = subprocess.run(clean_args, env=env, capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert resent + answered == Counter(_canonical(r) for r in chat_server.requests), "answered requests were sent again"


# ---- item 7: --llm-timeout / --llm-retries -----------------------------------------------------------

def test_help_states_the_worst_case() -> None:
    out = subprocess.run([sys.executable, "-c", "from logitdiff.cli import main; main()", "topk-depth", "--help"],
                         capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "400"})
    text = " ".join(out.stdout.split())
    assert "--llm-timeout" in text and "--llm-retries" in text
    assert "Worst case for a server that never answers: (retries + 1) x timeout + backoff (367 s = 6.1 min at the defaults)" in text


def test_timeout_gives_up_and_later_requests_fail_at_once(chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    chat_server.reset(lambda req: Reply("late", delay_s=2.0))
    client = client_for(chat_server, monkeypatch, timeout_s=0.2, max_retries=1)
    with pytest.raises(LLMCallError, match="2 attempt.*timed out"):
        asyncio.run(client.complete(MESSAGES))
    assert len(chat_server.requests) == 2
    with pytest.raises(LLMCallError, match="not asked: no answer within 0.2 s on any of 2 attempt"):
        asyncio.run(client.complete([{"role": "user", "content": "another"}]))
    assert len(chat_server.requests) == 2  # the second request never reached the server


def test_llm_timeout_and_retries_options_bound_a_silent_judge(tiny: TinySetup, tmp_path: Path, chat_server: ChatServer) -> None:
    chat_server.reset(lambda req: Reply("late", delay_s=5.0))  # /models answers, chat completions hang
    env = {**tiny.env, "LOGITDIFF_CACHE": str(tmp_path / "cache")}
    args = cli_args(tmp_path, f"vllm/slow-judge@{chat_server.base_url}", "--llm-timeout", "0.5", "--llm-retries", "1")
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-2000:]  # failures are recorded, the run itself completes
    docs = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("relevance/*.json")]
    lists = [lst for doc in docs for lst in doc["lists"]]
    assert len(docs) == 2 and lists and all(lst["failed"] for lst in lists)
    assert all("timed out" in lst["failed"] or "not asked: no answer within 0.5 s on any of 2 attempt" in lst["failed"] for lst in lists)
    # Each list is graded against its own description and, as the negative control, another organism's:
    # 3 orderings each, each tried at most twice (--llm-retries 1); none are re-asks, since none was answered.
    gradings = len(lists) + sum(1 for lst in lists if lst.get("control") is not None)
    assert all(lst["control"]["failed"] for lst in lists if lst.get("control") is not None)
    assert 0 < len(chat_server.requests) <= 2 * 3 * gradings
