"""Async OpenAI-compatible chat client: bounded concurrency, retries with jittered backoff, on-disk cache."""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential
from tenacity.wait import wait_base

from logitdiff.core.errors import UserError
from logitdiff.core.paths import repo_root
from logitdiff.llm.cache import ResponseCache, request_key
from logitdiff.llm.spec import LLMSpec

# The reachability check lists models, which any live server answers at once; it does not use
# --llm-timeout, which may be set tight for slow chat completions, not for a busy machine.
PREFLIGHT_TIMEOUT_S = 15.0


class LLMCallError(Exception):
    """A request failed for good (retries exhausted or a non-retryable error); the message says why."""


class _MalformedReply(Exception):
    """A 200 answer that is not a chat completion (body not JSON, or JSON without a message).

    Proxies and overloaded servers send these (an HTML error page, a truncated body); like a 5xx they
    are usually gone on the next try, so they are retried and, if they persist, fail only that request."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool


@dataclass
class LLMUsage:
    """Counters summed over one client's lifetime (one run)."""

    calls: int = 0  # API requests that returned an answer
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0  # complete() calls that raised LLMCallError
    prompt_tokens: int = 0
    completion_tokens: int = 0
    merged: int = 0  # complete() calls that joined an identical request of the same sample already in flight

    def summary(self, llm_id: str) -> str:
        return (
            f"{llm_id}: {self.calls} API calls, {self.cache_hits} from cache, {self.retries} retries, "
            f"{self.failures} failed; tokens {self.prompt_tokens} prompt + {self.completion_tokens} completion"
        )


def _is_transient(exc: BaseException) -> bool:
    """429, 5xx, malformed 200s, timeouts and connection errors are worth retrying; other errors are not."""
    if isinstance(exc, (openai.APIConnectionError, _MalformedReply)):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def _retry_after_s(exc: BaseException | None) -> float:
    """The server's Retry-After hint in seconds (0 when absent or not a number)."""
    if not isinstance(exc, openai.APIStatusError):
        return 0.0
    headers = exc.response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        return float(headers.get("retry-after", 0))
    except ValueError:  # an HTTP date: fall back to our own backoff
        return 0.0


class _JitteredBackoff(wait_base):
    """Exponential backoff with full jitter, never shorter than the server's Retry-After, capped."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self._jitter = wait_random_exponential(multiplier=initial_s, max=max_s)
        self._max_s = max_s

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return min(max(self._jitter(retry_state), _retry_after_s(exc)), self._max_s)


_BEARER = re.compile(r"(bearer\s+)[^\s\"',;}]+", re.IGNORECASE)
_KEY_LIKE = re.compile(r"\bsk-[A-Za-z0-9_-]{8,}")
_MIN_SECRET_LEN = 8  # shorter "keys" (placeholders such as EMPTY) would blank out ordinary words


def redact(text: str, secret: str | None) -> str:
    """`text` without the API key, `Bearer …` credentials or `sk-…` keys: error bodies that quote the
    request's headers end up in stored results, which other users of a shared folder can read."""
    if secret and len(secret) >= _MIN_SECRET_LEN:
        text = text.replace(secret, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", _BEARER.sub(r"\1[redacted]", text))


def _describe(exc: BaseException, secret: str | None) -> str:
    if isinstance(exc, openai.APIStatusError):
        text = f"HTTP {exc.status_code}: {exc.message}"
    elif isinstance(exc, openai.APITimeoutError):
        text = "request timed out"
    elif isinstance(exc, openai.APIConnectionError):
        text = f"connection error: {exc.__cause__ or exc}"
    elif isinstance(exc, _MalformedReply):
        text = f"malformed reply: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return redact(text, secret)


def _reply_text(response: object) -> str:
    """The answer text of a parsed completion. The openai client builds its objects without validating
    them and returns the raw text for a non-JSON content type, so the shape is checked here."""
    try:
        text = response.choices[0].message.content  # type: ignore[attr-defined]
    except (AttributeError, IndexError, KeyError, TypeError) as exc:
        raise _MalformedReply(f"not a chat completion: {str(response)[:80]!r}") from exc
    if text is not None and not isinstance(text, str):
        raise _MalformedReply(f"message content is {type(text).__name__}, not text")
    return text or ""


def _token_count(usage: object, name: str) -> int:
    value = getattr(usage, name, 0)
    return value if isinstance(value, int) else 0  # token counts are bookkeeping: a bad one counts 0


@dataclass
class _LoopSession:
    """The HTTP client and semaphore belong to one event loop; a new asyncio.run gets fresh ones."""

    loop: asyncio.AbstractEventLoop
    client: openai.AsyncOpenAI
    slots: asyncio.Semaphore
    in_flight: dict[str, asyncio.Future[Completion]] = field(default_factory=dict)  # by cache key


@dataclass
class LLMClient:
    """`role` ('judge', 'agent', 'grader') names the client in error lines, so a user knows which id to fix."""

    spec: LLMSpec
    cache_dir: Path | None
    role: str = "LLM"
    usage: LLMUsage = field(default_factory=LLMUsage, init=False)
    _key: str | None = field(default=None, init=False, repr=False)
    _session: _LoopSession | None = field(default=None, init=False, repr=False)
    _unresponsive: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._cache = ResponseCache(self.cache_dir) if self.cache_dir is not None else None

    # -- key -----------------------------------------------------------------------------------
    def _find_key(self) -> str | None:
        value = os.environ.get(self.spec.api_key_env, "").strip()
        if value:
            return value
        if self.spec.api_key_file:
            for folder in (Path.cwd(), repo_root()):
                path = folder / self.spec.api_key_file
                if path.is_file() and path.read_text().strip():
                    return path.read_text().strip()
        return None

    def has_key(self) -> bool:
        return self._find_key() is not None

    def _api_key(self) -> str:
        if self._key is None:
            found = self._find_key()
            if found is None and self.spec.api_key_required:
                where = f"set {self.spec.api_key_env}" + (
                    f" or put the key in {self.spec.api_key_file}" if self.spec.api_key_file else ""
                )
                offline = " (or use --judge offline)" if self.role == "judge" else ""
                raise UserError(f"no API key for the {self.role} {self.spec.id}: {where}{offline}")
            self._key = found or "EMPTY"
        return self._key

    # -- requests ------------------------------------------------------------------------------
    def _session_for_running_loop(self) -> _LoopSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.loop is not loop:
            client = openai.AsyncOpenAI(
                api_key=self._api_key(), base_url=self.spec.base_url, timeout=self.spec.timeout_s, max_retries=0
            )
            self._session = _LoopSession(loop, client, asyncio.Semaphore(self.spec.max_connections))
        return self._session

    def _request(self, messages: list[dict[str, str]], temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
        request: dict[str, Any] = {"model": self.spec.model, "messages": messages}
        temperature = self.spec.temperature if temperature is None else temperature
        max_tokens = self.spec.max_tokens if max_tokens is None else max_tokens
        if temperature is not None:
            request["temperature"] = temperature
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        return request

    def _cache_key(self, request: dict[str, Any], cache_tag: str | None) -> str:
        return request_key({"base_url": self.spec.base_url, "tag": cache_tag, **request})

    def is_cached(
        self, messages: list[dict[str, str]], *, temperature: float | None = None, max_tokens: int | None = None,
        cache_tag: str | None = None,
    ) -> bool:
        """Whether `complete` with these arguments would be answered from the cache (sends nothing)."""
        key = self._cache_key(self._request(messages, temperature, max_tokens), cache_tag)
        return self._cache is not None and self._cache.get(key) is not None

    async def complete(
        self,
        messages: list[dict[str, str]],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        cache_tag: str | None = None,
        refresh: bool = False,
    ) -> Completion:
        """One chat completion. `cache_tag` is the sample identity (e.g. cell, list and ordering of a
        judge request; cell and run of an agent request): otherwise identical requests of different
        samples are each sent, while a rerun of the same sample is answered from the cache. It is never
        sent to the API. `refresh` skips the cached answer (one that could not be used) and replaces it.
        An identical request of the same sample already in flight is awaited instead of sent twice."""
        request = self._request(messages, temperature, max_tokens)
        key = self._cache_key(request, cache_tag)
        if not refresh and self._cache is not None and (hit := self._cache.get(key)) is not None:
            self.usage.cache_hits += 1
            return Completion(hit["text"], hit["prompt_tokens"], hit["completion_tokens"], cached=True)
        in_flight = self._session_for_running_loop().in_flight
        pending = in_flight.get(key)
        if pending is None:
            pending = in_flight[key] = asyncio.ensure_future(self._fetch(key, request))
            pending.add_done_callback(lambda done: _settle(in_flight, key, done))
        else:
            self.usage.merged += 1
        try:
            # Shielded: a caller that is cancelled must not cancel the request others wait for.
            return await asyncio.shield(pending)
        except LLMCallError:
            self.usage.failures += 1
            raise

    async def _fetch(self, key: str, request: dict[str, Any]) -> Completion:
        completion = await self._call_with_retries(request)
        if self._cache is not None:
            entry = {"llm_id": self.spec.id, "text": completion.text,
                     "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
            # The atomic write fsyncs; off the event loop so it does not stall the other requests.
            await asyncio.to_thread(self._cache.put, key, entry)
        return completion

    async def _call_with_retries(self, request: dict[str, Any]) -> Completion:
        timeouts = 0

        def count_retry(state: RetryCallState) -> None:
            nonlocal timeouts
            self.usage.retries += 1
            timeouts += isinstance(state.outcome.exception() if state.outcome else None, openai.APITimeoutError)

        retrying = AsyncRetrying(
            retry=retry_if_exception(_is_transient),
            wait=_JitteredBackoff(self.spec.backoff_initial_s, self.spec.backoff_max_s),
            stop=stop_after_attempt(self.spec.max_retries + 1),
            before_sleep=count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._call_once(request)
        except openai.AuthenticationError as exc:
            raise UserError(f"the {self.role} {self.spec.id} rejected the API key ({_describe(exc, self._key)}): check {self.spec.api_key_env}") from exc
        except (openai.APIError, openai.OpenAIError, _MalformedReply) as exc:
            tries = self.spec.max_retries + 1 if _is_transient(exc) else 1
            if isinstance(exc, openai.APITimeoutError) and timeouts + 1 == tries:
                self._unresponsive = f"no answer within {self.spec.timeout_s:g} s on any of {tries} attempt(s) of an earlier request"
            raise LLMCallError(f"{self.spec.id} failed after {tries} attempt(s): {_describe(exc, self._key)}") from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _call_once(self, request: dict[str, Any]) -> Completion:
        session = self._session_for_running_loop()
        # Hold a slot only while a request is on the wire, never while backing off.
        async with session.slots:
            if self._unresponsive is not None:
                # A server that answered no attempt of a whole request is taken as down: the requests
                # still queued fail at once instead of each waiting out every timeout.
                raise LLMCallError(f"{self.spec.id} not asked: {self._unresponsive}")
            try:
                response = await session.client.chat.completions.create(**request)
            except json.JSONDecodeError as exc:  # a 200 whose body claims JSON but is not
                raise _MalformedReply(f"body is not JSON ({exc})") from exc
        text = _reply_text(response)
        usage = getattr(response, "usage", None)
        prompt_tokens, completion_tokens = _token_count(usage, "prompt_tokens"), _token_count(usage, "completion_tokens")
        self.usage.calls += 1
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        return Completion(text, prompt_tokens, completion_tokens, cached=False)

    # -- preflight -----------------------------------------------------------------------------
    def check_reachable(self) -> None:
        """Fail early, with one line, when the key is missing or the API cannot be reached."""
        if self.spec.is_offline:
            return
        client = openai.OpenAI(api_key=self._api_key(), base_url=self.spec.base_url, timeout=PREFLIGHT_TIMEOUT_S, max_retries=1)
        try:
            listing = client.models.with_raw_response.list()
        except openai.AuthenticationError as exc:
            raise UserError(f"the {self.role} {self.spec.id} rejected the API key ({_describe(exc, self._key)}): check {self.spec.api_key_env}") from exc
        except openai.APIConnectionError as exc:
            raise UserError(f"cannot reach {self.spec.base_url} for the {self.role} {self.spec.id} ({_describe(exc, self._key)}): check the network or the base URL") from exc
        except openai.APIStatusError:
            return  # the server answered; some servers simply do not list models
        finally:
            client.close()
        try:
            json.loads(listing.text)
        except ValueError:
            # A web page (a proxy's login, a URL without /v1) would fail every request later, one by one.
            kind = listing.headers.get("content-type", "no content type").split(";")[0]
            raise UserError(
                f"{self.spec.base_url} answered /models with a {kind} page, not JSON, for the {self.role} {self.spec.id}: "
                "the base URL must be an OpenAI-compatible API (it usually ends in /v1)"
            ) from None


def _settle(in_flight: dict[str, asyncio.Future[Completion]], key: str, done: asyncio.Future[Completion]) -> None:
    """Forget a finished request; its failure was raised to every caller (read here so asyncio does not
    also report it as never retrieved when all of them were cancelled)."""
    if in_flight.get(key) is done:
        del in_flight[key]
    if not done.cancelled():
        done.exception()
