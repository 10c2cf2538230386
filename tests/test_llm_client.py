"""The LLM client against a real local chat-completions server (real openai client, real sockets)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest

from logitdiff.core.errors import UserError
from logitdiff.llm import LLMCallError, LLMClient, LLMSpec, parse_llm_id
from testkit.openai_server import ChatServer, Reply

KEY = "sk-test-secret-key-123"
MESSAGES = [{"role": "user", "content": "say hi"}]


def make_client(server: ChatServer, cache_dir: Path | None, monkeypatch: pytest.MonkeyPatch, **overrides) -> LLMClient:
    monkeypatch.setenv("LOGITDIFF_TEST_KEY", KEY)
    fields = dict(
        id="openrouter/test/model", base_url=server.base_url, model="test/model", api_key_env="LOGITDIFF_TEST_KEY",
        api_key_file=None, max_retries=3, backoff_initial_s=0.001, backoff_max_s=0.01, timeout_s=10,
    )
    fields.update(overrides)
    return LLMClient(LLMSpec(**fields), cache_dir)


def test_happy_path_sends_model_messages_and_key(chat_server: ChatServer, tmp_path: Path, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply("hello there"))
    client = make_client(chat_server, tmp_path, monkeypatch)
    out = asyncio.run(client.complete(MESSAGES, temperature=0.5, max_tokens=7))
    assert (out.text, out.cached) == ("hello there", False)
    assert out.completion_tokens == 2 and out.prompt_tokens == 2
    (req,) = chat_server.requests
    assert req.body == {"model": "test/model", "messages": MESSAGES, "temperature": 0.5, "max_tokens": 7}
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert (client.usage.calls, client.usage.cache_hits, client.usage.prompt_tokens, client.usage.completion_tokens) == (1, 0, 2, 2)


def test_unset_generation_params_are_not_sent(chat_server: ChatServer, monkeypatch) -> None:
    client = make_client(chat_server, None, monkeypatch)
    asyncio.run(client.complete(MESSAGES))
    assert set(chat_server.requests[0].body) == {"model", "messages"}


def test_429_then_success_is_retried(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply(status=429) if req.index == 0 else Reply("fine"))
    client = make_client(chat_server, None, monkeypatch)
    assert asyncio.run(client.complete(MESSAGES)).text == "fine"
    assert len(chat_server.requests) == 2
    assert (client.usage.calls, client.usage.retries, client.usage.failures) == (1, 1, 0)


def test_retry_after_hint_is_respected_up_to_the_cap(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply(status=429, headers={"Retry-After": "0.4"}) if req.index == 0 else Reply("ok"))
    client = make_client(chat_server, None, monkeypatch, backoff_max_s=1.0)
    start = time.perf_counter()
    assert asyncio.run(client.complete(MESSAGES)).text == "ok"
    assert time.perf_counter() - start >= 0.4
    chat_server.reset(lambda req: Reply(status=429, headers={"Retry-After": "30"}) if req.index == 0 else Reply("ok"))
    capped = make_client(chat_server, None, monkeypatch, backoff_max_s=0.05)
    start = time.perf_counter()
    assert asyncio.run(capped.complete(MESSAGES)).text == "ok"
    assert time.perf_counter() - start < 5


def test_5xx_until_retries_exhausted_raises_with_reason(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply(status=503))
    client = make_client(chat_server, None, monkeypatch, max_retries=2)
    with pytest.raises(LLMCallError, match="3 attempt.*HTTP 503"):
        asyncio.run(client.complete(MESSAGES))
    assert len(chat_server.requests) == 3
    assert (client.usage.calls, client.usage.retries, client.usage.failures) == (0, 2, 1)


def test_client_error_is_not_retried(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply(status=400))
    client = make_client(chat_server, None, monkeypatch)
    with pytest.raises(LLMCallError, match="HTTP 400"):
        asyncio.run(client.complete(MESSAGES))
    assert len(chat_server.requests) == 1


def test_rejected_key_is_a_user_error(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply(status=401))
    client = make_client(chat_server, None, monkeypatch)
    with pytest.raises(UserError, match="rejected the API key"):
        asyncio.run(client.complete(MESSAGES))
    assert len(chat_server.requests) == 1


def test_timeout_is_retried_then_fails(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply("late", delay_s=1.0))
    client = make_client(chat_server, None, monkeypatch, timeout_s=0.2, max_retries=1)
    with pytest.raises(LLMCallError, match="timed out"):
        asyncio.run(client.complete(MESSAGES))
    assert len(chat_server.requests) == 2


def test_cache_hit_on_rerun_makes_no_request_and_hides_key(chat_server: ChatServer, tmp_path: Path, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply(f"answer {req.index}"))
    first = make_client(chat_server, tmp_path, monkeypatch)
    assert asyncio.run(first.complete(MESSAGES)).text == "answer 0"
    rerun = make_client(chat_server, tmp_path, monkeypatch)
    again = asyncio.run(rerun.complete(MESSAGES))
    assert (again.text, again.cached) == ("answer 0", True)
    assert len(chat_server.requests) == 1 and (rerun.usage.calls, rerun.usage.cache_hits) == (0, 1)
    # Different generation params or a cache tag are different requests.
    asyncio.run(rerun.complete(MESSAGES, temperature=0.7))
    asyncio.run(rerun.complete(MESSAGES, cache_tag="run1"))
    assert len(chat_server.requests) == 3
    assert "cache_tag" not in chat_server.requests[2].body and "tag" not in chat_server.requests[2].body
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text()


def test_never_more_in_flight_than_max_connections(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply("x", delay_s=0.1))
    client = make_client(chat_server, None, monkeypatch, max_connections=3)

    async def many() -> list[str]:
        outs = await asyncio.gather(*(client.complete([{"role": "user", "content": str(i)}]) for i in range(12)))
        return [o.text for o in outs]

    assert asyncio.run(many()) == ["x"] * 12
    assert chat_server.max_in_flight == 3


def test_client_survives_separate_event_loops(chat_server: ChatServer, monkeypatch) -> None:
    client = make_client(chat_server, None, monkeypatch)
    asyncio.run(client.complete(MESSAGES))
    asyncio.run(client.complete(MESSAGES))
    assert client.usage.calls == 2


def test_missing_key_fails_only_when_a_call_is_needed(chat_server: ChatServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LOGITDIFF_ABSENT_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    spec = LLMSpec(id="openrouter/a/b", base_url=chat_server.base_url, model="a/b",
                   api_key_env="LOGITDIFF_ABSENT_KEY", api_key_file="no_such_key_file.txt")
    client = LLMClient(spec, None)  # constructing is fine
    assert not client.has_key()
    with pytest.raises(UserError, match="LOGITDIFF_ABSENT_KEY.*no_such_key_file.txt"):
        asyncio.run(client.complete(MESSAGES))
    with pytest.raises(UserError, match="no API key"):
        client.check_reachable()
    assert chat_server.requests == []


def test_key_file_is_read(chat_server: ChatServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LOGITDIFF_ABSENT_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "key.txt").write_text(KEY + "\n")
    spec = LLMSpec(id="openrouter/a/b", base_url=chat_server.base_url, model="a/b",
                   api_key_env="LOGITDIFF_ABSENT_KEY", api_key_file="key.txt")
    client = LLMClient(spec, None)
    asyncio.run(client.complete(MESSAGES))
    assert chat_server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_check_reachable(chat_server: ChatServer, monkeypatch) -> None:
    make_client(chat_server, None, monkeypatch).check_reachable()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = make_client(chat_server, None, monkeypatch, base_url=f"http://127.0.0.1:{dead_port}/v1")
    with pytest.raises(UserError, match="cannot reach"):
        dead.check_reachable()
    with pytest.raises(LLMCallError, match="4 attempt.*connection error"):
        asyncio.run(dead.complete(MESSAGES))
    assert dead.usage.retries == 3
    LLMClient(parse_llm_id("offline"), None).check_reachable()  # nothing to reach


@pytest.mark.parametrize(
    ("text", "llm_id", "model", "base_url"),
    [
        ("openrouter/openai/gpt-5-mini", "openrouter/openai/gpt-5-mini", "openai/gpt-5-mini", "https://openrouter.ai/api/v1"),
        ("openai/gpt-5-mini", "openrouter/openai/gpt-5-mini", "openai/gpt-5-mini", "https://openrouter.ai/api/v1"),
        ("vllm/Qwen/Qwen3-8B@http://host:8000/v1", "vllm/Qwen/Qwen3-8B", "Qwen/Qwen3-8B", "http://host:8000/v1"),
    ],
)
def test_parse_llm_id(text: str, llm_id: str, model: str, base_url: str) -> None:
    spec = parse_llm_id(text)
    assert (spec.id, spec.model, spec.base_url) == (llm_id, model, base_url)
    assert not spec.is_offline


def test_parse_llm_id_special_cases() -> None:
    assert parse_llm_id("offline").is_offline
    assert parse_llm_id("openai/gpt-5-mini", base_url="http://127.0.0.1:9/v1").base_url == "http://127.0.0.1:9/v1"
    assert not parse_llm_id("vllm/m@http://h/v1").api_key_required
    for bad in ("", "gpt-5-mini", "vllm/model-without-url", "openrouter/"):
        with pytest.raises(UserError):
            parse_llm_id(bad)


def test_cache_entry_of_the_wrong_shape_is_a_miss(chat_server: ChatServer, tmp_path: Path, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply("fresh"))
    asyncio.run(make_client(chat_server, tmp_path, monkeypatch).complete(MESSAGES))
    (entry,) = tmp_path.rglob("*.json")
    for damaged in ("{}", "[]", '{"text": 3, "prompt_tokens": 1, "completion_tokens": 1}'):
        entry.write_text(damaged)
        chat_server.reset(lambda req: Reply("fresh"))
        out = asyncio.run(make_client(chat_server, tmp_path, monkeypatch).complete(MESSAGES))
        assert (out.text, out.cached, len(chat_server.requests)) == ("fresh", False, 1)
        assert json.loads(entry.read_text())["text"] == "fresh"  # replaced by the fresh answer


def test_refresh_skips_and_replaces_the_cached_answer(chat_server: ChatServer, tmp_path: Path, monkeypatch) -> None:
    chat_server.reset(lambda req: Reply("Sorry, overloaded."))
    asyncio.run(make_client(chat_server, tmp_path, monkeypatch).complete(MESSAGES, cache_tag="s"))
    chat_server.reset(lambda req: Reply("ANSWER[1]: RELEVANT"))
    fresh = asyncio.run(make_client(chat_server, tmp_path, monkeypatch).complete(MESSAGES, cache_tag="s", refresh=True))
    assert (fresh.text, fresh.cached, len(chat_server.requests)) == ("ANSWER[1]: RELEVANT", False, 1)
    chat_server.reset(lambda req: Reply(status=500))
    again = asyncio.run(make_client(chat_server, tmp_path, monkeypatch).complete(MESSAGES, cache_tag="s"))
    assert (again.text, again.cached, chat_server.requests) == ("ANSWER[1]: RELEVANT", True, [])


def test_api_key_quoted_by_the_server_is_redacted(chat_server: ChatServer, monkeypatch) -> None:
    """An error body that echoes the request's headers must not carry the key into stored results."""
    chat_server.reset(lambda req: Reply(status=400, error_message=(
        f"bad request; headers: Authorization: {req.headers['authorization']}, x-key={KEY}, other sk-or-v1-abcdef0123456789")))
    client = make_client(chat_server, None, monkeypatch)
    with pytest.raises(LLMCallError) as err:
        asyncio.run(client.complete(MESSAGES))
    text = str(err.value)
    assert "HTTP 400" in text and "Bearer [redacted]" in text and "x-key=[redacted]" in text
    assert KEY not in text and "sk-" not in text and "abcdef0123456789" not in text


def test_only_true_duplicates_in_flight_are_merged(chat_server: ChatServer, monkeypatch) -> None:
    """The same request of the same sample asked twice at once is sent once; the same request of two
    samples (two seeds, two cells) is sent twice."""
    chat_server.reset(lambda req: Reply("ok", delay_s=0.2))
    client = make_client(chat_server, None, monkeypatch)

    async def ask() -> list[str]:
        outs = await asyncio.gather(
            client.complete(MESSAGES, cache_tag="seed42"), client.complete(MESSAGES, cache_tag="seed42"),
            client.complete(MESSAGES, cache_tag="seed1042"),
        )
        return [o.text for o in outs]

    assert asyncio.run(ask()) == ["ok"] * 3
    assert len(chat_server.requests) == 2 and client.usage.merged == 1 and client.usage.calls == 2
