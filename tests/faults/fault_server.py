"""A fault-injecting OpenAI-compatible server for tests (stdlib only, loopback only, bounded).

    with FaultServer(reply=lambda messages: "<IMPROVED_VARIABLE>4 * 6</IMPROVED_VARIABLE>",
                     script=["429", "timeout", "ok"], ratios={"ok": 8, "500": 1, "untagged": 1}) as server:
        engine = OpenAIEngine("m", base_url=server.base_url, timeout_s=0.5, retry=RetryPolicy(4, 0.01, 0.05))
        ...
    server.counts  # Counter of what was served, by behaviour

`counts` / `served` say what was served; `delivered` sums the replies and token usage a client could read.
`POST /v1/chat/completions` serves one behaviour per request: the next entry of `script` while it lasts, then one
drawn from `ratios` (weights, seeded) — or "ok" when neither is given. `applies(messages)` can restrict faults to
some requests (the others get "ok"). Behaviours:

    ok            200, the text `reply(messages)` returns, with usage
    latency       sleep `latency_s`, then as ok
    timeout       sleep `timeout_sleep_s` (set it past the client's timeout), then as ok (the client is gone)
    429           429 with `Retry-After: retry_after_s`
    500 502 503   that status with an OpenAI-style error body
    400           400 "bad request" with a message (not worth a retry)
    truncated     200, Content-Type JSON, a body cut in half (Content-Length matches the cut body)
    cut           200, headers promise the whole body, half is sent, the connection closes
    no_choices    200, a JSON body with `"choices": []`
    empty         200, message content ""
    null          200, message content null
    untagged      200, the normal reply with every <IMPROVED_VARIABLE> tag removed
    unclosed      200, the normal reply with its closing tag cut off
    wrong_format  200, a tagged value in the wrong format for the domain (`wrong_format`, prose by default)

Bounded: the server serves at most `max_requests` chat requests (then answers 400 "request limit reached", kind
"limit") and shuts itself down after `lifetime_s`; sleeping handlers wake at shutdown. It binds 127.0.0.1, port 0.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TAG = "IMPROVED_VARIABLE"
OK_KINDS = ("ok", "latency")
RETRYABLE = ("timeout", "429", "500", "502", "503", "cut", "no_choices")  # the engine retries these
UNUSABLE = ("empty", "null", "untagged", "unclosed", "wrong_format")  # 200s whose text the optimizer cannot use
KINDS = OK_KINDS + RETRYABLE + UNUSABLE + ("400", "truncated")

Messages = list[dict[str, str]]


class FaultServer:
    def __init__(self, reply: Callable[[Messages], str] | None = None, *, script: list[str] | None = None,
                 ratios: dict[str, float] | None = None, seed: int = 0,
                 applies: Callable[[Messages], bool] | None = None, latency_s: float = 0.05,
                 timeout_sleep_s: float = 1.0, retry_after_s: float = 0.05,
                 wrong_format: str = f"<{TAG}>Here is a much better answer, written out in words.</{TAG}>",
                 max_requests: int = 1000, lifetime_s: float = 120.0) -> None:
        for kind in list(script or []) + list(ratios or {}):
            if kind not in KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        self.reply = reply or (lambda messages: "ok")
        self.script = list(script or [])
        self.ratios = dict(ratios or {})
        self.applies = applies
        self.latency_s = latency_s
        self.timeout_sleep_s = timeout_sleep_s
        self.retry_after_s = retry_after_s
        self.wrong_format = wrong_format
        self.max_requests = max_requests
        self.lifetime_s = lifetime_s
        self.counts: Counter[str] = Counter()
        self.served: list[str] = []  # the kind of every chat request, in order
        self.requests: list[dict[str, Any]] = []  # every chat request body, in order
        self.delivered: Counter[str] = Counter()  # usage reported in complete 200 replies (what a client counts)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FaultServer:
        handler = type("Handler", (_Handler,), {"fault_server": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        serve = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        watchdog = threading.Thread(target=self._watchdog, daemon=True)
        self._threads = [serve, watchdog]
        serve.start()
        watchdog.start()
        return self

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def _watchdog(self) -> None:
        if not self._stopping.wait(self.lifetime_s):
            self.stop()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what to serve ------------------------------------------------------------------------------------------

    def _choose(self, messages: Messages) -> str:
        with self._lock:
            if len(self.served) >= self.max_requests:
                kind = "limit"
            elif self.applies is not None and not self.applies(messages):
                kind = "ok"
            elif self.script:
                kind = self.script.pop(0)
            elif self.ratios:
                kinds, weights = list(self.ratios), list(self.ratios.values())
                kind = self._rng.choices(kinds, weights)[0]
            else:
                kind = "ok"
            self.served.append(kind)
            self.counts[kind] += 1
        return kind

    def sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def text_for(self, kind: str, messages: Messages) -> str | None:
        if kind == "null":
            return None
        if kind == "empty":
            return ""
        if kind == "wrong_format":
            return self.wrong_format
        text = self.reply(messages)
        if kind == "untagged":
            return re.sub(rf"</?{TAG}>", "", text, flags=re.I)
        if kind == "unclosed":
            return re.sub(rf"</{TAG}>.*\Z", "", text, flags=re.I | re.S)
        return text


def completion_body(text: str | None, messages: Messages, model: str) -> dict[str, Any]:
    prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
    completion_tokens = len(text or "") // 4 + 1
    return {
        "id": "chatcmpl-fault", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class _Handler(BaseHTTPRequestHandler):
    fault_server: FaultServer
    protocol_version = "HTTP/1.0"  # one request a connection: a cut or a late reply never poisons the next

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the client gave up (a timeout behaviour): nothing to tell it

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              content_length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _error(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
        self._send(status, body, headers)

    def do_GET(self) -> None:
        self._error(404, "fault server: only POST /v1/chat/completions", "not_found")

    def do_POST(self) -> None:
        server = self.fault_server
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"fault server: no route {self.path}", "not_found")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            messages = request["messages"]
        except (ValueError, KeyError, TypeError) as exc:
            self._error(400, f"fault server: unreadable request: {exc}", "invalid_request_error")
            return
        with server._lock:
            server.requests.append(request)
        kind = server._choose(messages)
        model = str(request.get("model", "fault-model"))
        if kind == "limit":
            self._error(400, f"fault server: request limit ({server.max_requests}) reached", "limit")
            return
        if kind == "latency":
            server.sleep(server.latency_s)
        elif kind == "timeout":
            server.sleep(server.timeout_sleep_s)
        elif kind == "429":
            self._error(429, "fault server: rate limited (injected)", "rate_limit",
                        {"Retry-After": f"{server.retry_after_s:g}"})
            return
        elif kind in ("500", "502", "503"):
            self._error(int(kind), f"fault server: injected {kind}", "server_error")
            return
        elif kind == "400":
            self._error(400, "fault server: bad request (injected): 'messages' is not what I wanted",
                        "invalid_request_error")
            return
        body = json.dumps(completion_body(server.text_for(kind, messages), messages, model)).encode()
        if kind == "no_choices":
            body = json.dumps({"id": "chatcmpl-fault", "object": "chat.completion", "model": model,
                               "choices": []}).encode()
        if kind == "truncated":
            self._send(200, body[: len(body) // 2])
        elif kind == "cut":
            self._send(200, body[: len(body) // 2], content_length=len(body))
            self.close_connection = True
        else:
            self._send(200, body)
            if kind != "timeout":  # a late reply reaches no one
                usage = json.loads(body).get("usage") or {}
                with server._lock:
                    server.delivered["replies"] += 1
                    server.delivered["prompt_tokens"] += usage.get("prompt_tokens", 0)
                    server.delivered["completion_tokens"] += usage.get("completion_tokens", 0)
