"""A local stand-in for an OpenAI-compatible chat completions server, for tests.

It tests the protocol, not a model: the "model" behind it is a few lines of
Python that either read the incident view they were sent and pick a command
by rule (:func:`rule_based_reply`), or replay a script of replies, including
malformed ones and HTTP errors (:func:`scripted`). It serves
``POST /v1/chat/completions`` on 127.0.0.1 and a free port, from a thread,
with the standard library only, and answers with ``ChatCompletion`` JSON that
carries a ``usage`` block, so a client sees what a real server sends.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"


@dataclass(frozen=True)
class HttpFailure:
    """A scripted reply that is an HTTP error instead of a completion."""

    status: int
    message: str = "stub failure"


Reply = str | None | HttpFailure
"""What a stub model returns: reply text (``None`` for a null content) or an HTTP error."""
Model = Callable[[list[dict[str, Any]]], Reply]
"""A stub model: the request's messages to a reply."""

_SERVICE_ROW = re.compile(r"^  (\S+)\s+(ok|degraded|down|-)\s+([\d.]+)%.*\s(yes|no)$", re.M)


def rule_based_reply(messages: list[dict[str, Any]]) -> str:
    """Read the incident view in the last message: investigate the worst unseen service, then resolve.

    The order is by error rate, read from the view's service table, so the
    stub only works if the agent really sent the view. It ends every episode
    (premature resolves or the SLA), which is all a protocol test needs.
    """
    view = next((str(m["content"]) for m in reversed(messages) if "AFFECTED SERVICES" in str(m["content"])), "")
    rows = [(float(errors), name) for name, _, errors, seen in _SERVICE_ROW.findall(view) if seen == "no"]
    if not rows:
        return "resolve\nevery listed service has been investigated."
    _, name = max(rows)
    return f"investigate {name}\nit has the highest error rate of the services not yet investigated."


def scripted(replies: Iterable[Reply], then: Model = rule_based_reply) -> Model:
    """A model that returns ``replies`` in order, one per request, then answers as ``then``."""
    queue = list(replies)

    def model(messages: list[dict[str, Any]]) -> Reply:
        return queue.pop(0) if queue else then(messages)

    return model


def _tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: about four characters a token."""
    return len(text) // 4 + 1


class StubServer:
    """``POST /v1/chat/completions`` on 127.0.0.1, answered by a stub model, in a background thread.

    Use it as a context manager; ``base_url`` is what ``API_BASE_URL`` should be.
    ``requests`` keeps every request body received and ``usages`` every
    ``usage`` block sent, in order.
    """

    def __init__(self, model: Model = rule_based_reply):
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.usages: list[dict[str, int]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler_class())
        # A short poll interval makes shutdown quick: tests start and stop many stubs.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="openai-stub", daemon=True
        )

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL of the running stub."""
        return f"http://{HOST}:{self._server.server_address[1]}/v1"

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(body)
            number = len(self.requests)
            reply = self.model(body["messages"])
            if isinstance(reply, HttpFailure):
                return reply.status, {"error": {"message": reply.message, "type": "server_error", "code": None}}
            prompt = "".join(str(m.get("content") or "") for m in body["messages"])
            usage = {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(reply or "")}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            self.usages.append(usage)
        completion = {
            "id": f"chatcmpl-stub-{number}",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }
        return 200, completion

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
                    return
                self._send(*stub._answer(body))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

        return Handler
