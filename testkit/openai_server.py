"""A real HTTP server on 127.0.0.1 that speaks the chat-completions protocol, driven by a test's handler.

The handler gets each request (parsed JSON body, arrival index) and returns a `Reply`: answer text,
an HTTP error status, a raw 200 body that is not a chat completion, or a dropped connection, optionally
after a delay. The server records every request, how many it answered, and the largest number of
requests it was serving at once.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    text: str = ""
    status: int = 200
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    raw_body: bytes | None = None  # sent as-is with status 200 and `content_type` (a proxy's HTML page, ...)
    content_type: str = "application/json"
    reset: bool = False  # close the connection without any response
    error_message: str | None = None  # the error body's message for a status other than 200


@dataclass(frozen=True)
class SeenRequest:
    index: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def messages(self) -> list[dict[str, str]]:
        return self.body["messages"]

    @property
    def last_user(self) -> str:
        return [m["content"] for m in self.messages if m["role"] == "user"][-1]


Handler = Callable[[SeenRequest], Reply | str]


@dataclass
class ChatServer:
    handler: Handler = lambda request: Reply("ok")
    requests: list[SeenRequest] = field(default_factory=list)
    max_in_flight: int = 0
    answered: list[int] = field(default_factory=list)  # indices of the requests whose reply was written completely
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def reset(self, handler: Handler | None = None) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0
            self.answered.clear()
            if handler is not None:
                self.handler = handler

    def start(self) -> None:
        self._httpd = _QuietServer(("127.0.0.1", 0), _make_request_handler(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def _enter(self, body: dict[str, Any], headers: dict[str, str]) -> SeenRequest:
        with self._lock:
            seen = SeenRequest(len(self.requests), body, headers)
            self.requests.append(seen)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            return seen

    def _leave(self, seen: SeenRequest, answered: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            if answered:
                self.answered.append(seen.index)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that was killed or gave up
            super().handle_error(request, client_address)


def _completion_body(model: str, text: str, prompt: str) -> dict[str, Any]:
    prompt_tokens, completion_tokens = len(prompt.split()), len(text.split())
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def _make_request_handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            return

        def _send(self, status: int, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": "test-model", "object": "model", "created": 0, "owned_by": "test"}]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": "not found"}})
                return
            seen = server._enter(body, {k.lower(): v for k, v in self.headers.items()})
            answered = False
            try:
                reply = server.handler(seen)
                reply = Reply(reply) if isinstance(reply, str) else reply
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.reset:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if reply.status != 200:
                    message = reply.error_message or f"scripted error {reply.status}"
                    self._send(reply.status, {"error": {"message": message, "code": reply.status}}, reply.headers)
                elif reply.raw_body is not None:
                    self._send(200, reply.raw_body, reply.headers, reply.content_type)
                else:
                    prompt = " ".join(m["content"] for m in body.get("messages", []))
                    self._send(200, _completion_body(body.get("model", "?"), reply.text, prompt))
                answered = True
            except (BrokenPipeError, ConnectionResetError):  # the client gave up first (its timeout)
                pass
            finally:
                server._leave(seen, answered)

    return RequestHandler


# A scripted relevance judge for the chat server: even-length tokens are relevant (a known answer).
_CANDIDATE = re.compile(r'^(\d+)\. "(.*)"$', re.MULTILINE)


def judge_rule(token: str) -> str:
    text = token.strip()
    return "RELEVANT" if text and len(text) % 2 == 0 else "IRRELEVANT"


def scripted_judge(request: SeenRequest) -> Reply:
    """Answers the candidates of the last user message (the judge prompt quotes them JSON-style)."""
    tokens = _CANDIDATE.findall(request.last_user)
    return Reply("\n".join(f"ANSWER[{i}]: {judge_rule(json.loads(f'{chr(34)}{tok}{chr(34)}', strict=False))}" for i, tok in tokens))
