"""Structured output on OpenAI-compatible endpoints: each mode sends its field, a refusing server falls back to
tags + repair, and a json_schema reply reaches the parser as tagged text. A loopback server records the bodies."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tgdomains.engines import EngineError, OpenAIEngine, RetryPolicy
from tgdomains.grammar import ValueFormat, reply_format
from tgdomains.optimizer import extract_tagged

MSG = [{"role": "user", "content": "improve it"}]
FORMAT = reply_format(ValueFormat("plan", 'value ::= "{}"', json_schema={"type": "object"}, max_tokens=77))


class Recorder:
    """Answers chat completions on 127.0.0.1; 400 for a body holding any field in `refuse`."""

    def __init__(self, content: str, refuse: tuple[str, ...] = ()):
        self.bodies: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                recorder.bodies.append(body)
                if any(field in body for field in refuse):
                    data, status = {"error": {"message": "unknown field", "type": "invalid_request_error"}}, 400
                else:
                    data, status = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                    "choices": [{"index": 0, "finish_reason": "length",
                                                 "message": {"role": "assistant", "content": content}}],
                                    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}, 200
                out = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server(request):
    servers = []

    def make(content, refuse=()):
        servers.append(Recorder(content, refuse))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def engine(url, structured):
    return OpenAIEngine("m", base_url=url, structured=structured, retry=RetryPolicy(2, 0.01, 0.02), timeout_s=5)


@pytest.mark.parametrize("mode,field", [("llama.cpp", "grammar"), ("vllm", "guided_grammar"),
                                        ("vllm", "structured_outputs")])
def test_grammar_modes_send_the_grammar_and_the_format_token_limit(server, mode, field):
    s = server("<IMPROVED_VARIABLE>{}</IMPROVED_VARIABLE>")
    completion = engine(s.url, mode).generate(MSG, reply_format=FORMAT)
    body = s.bodies[-1]
    grammar = body[field]["grammar"] if field == "structured_outputs" else body[field]
    assert grammar == FORMAT.grammar and body["max_tokens"] == 77
    assert completion.finish_reason == "length"  # the server's finish reason reaches the caller


def test_off_sends_no_structured_field_and_json_schema_sends_the_value_schema(server):
    s = server('{"critique": "too weak", "improved_variable": {"PTV": 1}}')
    engine(s.url, "off").generate(MSG, reply_format=FORMAT)
    assert not {"grammar", "guided_grammar", "response_format"} & set(s.bodies[-1])
    reply = engine(s.url, "json_schema").generate(MSG, reply_format=FORMAT).text
    schema = s.bodies[-1]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["improved_variable"] == {"type": "object"}
    assert reply.startswith("too weak") and json.loads(extract_tagged(reply)) == {"PTV": 1}


def test_a_server_that_refuses_the_field_gets_tags_and_repair_from_then_on(server):
    s = server("<IMPROVED_VARIABLE>v</IMPROVED_VARIABLE>", refuse=("grammar",))
    e = engine(s.url, "llama.cpp")
    assert extract_tagged(e.generate(MSG, reply_format=FORMAT).text) == "v"
    assert "grammar" in s.bodies[0] and "grammar" not in s.bodies[1]
    e.generate(MSG, reply_format=FORMAT)
    assert len(s.bodies) == 3 and "grammar" not in s.bodies[2]  # not asked again
    assert "refused by the server" in e.describe() and e.settings()["structured"] == "off"
    assert e.usage.failures == 1


def test_a_refusal_without_a_structured_field_is_still_an_error(server):
    s = server("x", refuse=("model",))
    with pytest.raises(EngineError, match="400"):
        engine(s.url, "llama.cpp").generate(MSG)
    with pytest.raises(ValueError, match="structured="):
        OpenAIEngine("m", structured="xml")
