"""The OpenAI-compatible backend over real HTTP on loopback.

Fast tests talk to a tiny scripted ``http.server`` (retries, errors, payload shapes); the slow ones start
llama-cpp-python's real OpenAI-compatible server on the pulled 0.5B GGUF and run the plugin, the
LangChain adapter, the CoE graph and the CLI through it."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest

from coe.errors import ConfigError, InputError
from coe.plugins.llm.openai_compat import OpenAICompatLLM, parse_model_spec
from coe.plugins.llm.protocol import GenerationRequest, ImageRef, Message, OptionScoreRequest, label_probs
from tests.conftest import FIXTURE

MODEL = "qwen2.5-coder-0.5b-instruct-q4"
ALIAS = "coe-test"
DISTRACTORS = {"type": "object",
               "properties": {"distractors": {"type": "array", "minItems": 3, "maxItems": 3,
                                              "items": {"type": "string"}}},
               "required": ["distractors"]}
FAST = {"max_attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05, "connect_timeout": 1.0}


def ask(text: str, **kw) -> GenerationRequest:
    return GenerationRequest(messages=[Message(role="user", content=text)], **kw)


def completion(text: str, **extra) -> dict:
    return {"id": "x", "object": "chat.completion", "model": "served-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- a scripted HTTP server on loopback ----------------------------------------------------------------

class FakeServer:
    """Answers each POST with the next scripted reply (status, body, headers, delay); then 200 echoes."""

    def __init__(self) -> None:
        self.script: list[tuple[int, object, dict, float]] = []
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body, headers):
                raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                self._reply(200, {"object": "list", "data": [{"id": "served-model", "object": "model"}]}, {})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                    step = fake.script.pop(0) if fake.script else None
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    if step is None:  # echo the last message, after a short pause to overlap requests
                        time.sleep(0.15)
                        content = body["messages"][-1]["content"]
                        step = (200, completion(f"echo: {content}"), {}, 0.0)
                    status, reply, headers, delay = step
                    time.sleep(delay)
                    self._reply(status, reply, headers)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def then(self, status: int, body: object = None, headers: dict | None = None, delay: float = 0.0):
        self.script.append((status, completion("ok") if body is None else body, headers or {}, delay))
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.close()


@pytest.fixture
def retry_waits(monkeypatch):
    """The seconds the SDK client chose to wait before each retry, in order (its sleeps still happen)."""
    from coe.plugins.llm.openai_client import _SDKClient

    waits: list[float] = []
    chosen = _SDKClient._calculate_retry_timeout

    def noted(self, *args, **kwargs):
        waits.append(chosen(self, *args, **kwargs))
        return waits[-1]

    monkeypatch.setattr(_SDKClient, "_calculate_retry_timeout", noted)
    return waits


def test_construction_touches_no_network():
    port = free_port()  # closed: any connection attempt would fail
    llm = OpenAICompatLLM("m", f"http://127.0.0.1:{port}")
    assert llm.base_url == f"http://127.0.0.1:{port}/v1"
    assert (llm.name, llm.model_id, llm.supports_images, llm.supports_json_schema) == ("openai", "m", True, True)


def test_unreachable_server_is_one_clear_line_after_bounded_retries(retry_waits):
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = OpenAICompatLLM("m", url, **FAST)
    with pytest.raises(ConfigError) as info:
        llm.generate(ask("hi"))
    assert len(retry_waits) == 2 and all(0 < w <= FAST["backoff_max"] for w in retry_waits), retry_waits
    msg = str(info.value)
    assert msg.startswith(f"cannot reach OpenAI-compatible server at {url}: ") and "(after 3 attempts)" in msg
    assert "\n" not in msg
    with pytest.raises(ConfigError, match="cannot reach OpenAI-compatible server") as probe:
        llm.check()
    assert "attempts" not in str(probe.value)  # the probe tries once: it exists to fail early


def test_5xx_is_retried_then_succeeds_with_usage_and_timing(fake):
    fake.then(500, {"error": {"message": "busy"}}).then(503, "overloaded").then(200, completion("fine"))
    gen = OpenAICompatLLM("m", fake.url, **FAST).generate(ask("hi"))
    assert gen.text == "fine" and len(fake.requests) == 3
    assert gen.usage.prompt_tokens == 7 and gen.usage.completion_tokens == 3
    assert gen.seconds > 0 and gen.model == "served-model" and gen.finish_reason == "stop"
    assert fake.requests[0]["path"] == "/v1/chat/completions"


def test_429_is_retried_honouring_retry_after(fake):
    fake.then(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}).then(200)
    assert OpenAICompatLLM("m", fake.url, **FAST).generate(ask("hi")).text == "ok"
    assert len(fake.requests) == 2


def test_persistent_5xx_gives_up_after_max_attempts(fake):
    for _ in range(3):
        fake.then(500, {"error": {"message": "model crashed"}})
    with pytest.raises(ConfigError, match=r"answered HTTP 500 after 3 attempts: model crashed"):
        OpenAICompatLLM("m", fake.url, **FAST).generate(ask("hi"))
    assert len(fake.requests) == 3


def test_4xx_is_not_retried_and_carries_the_servers_message_truncated(fake):
    fake.then(400, {"error": {"message": "context length exceeded " * 50}})
    with pytest.raises(ConfigError) as info:
        OpenAICompatLLM("m", fake.url, **FAST).generate(ask("hi"))
    msg = str(info.value)
    assert "answered HTTP 400: context length exceeded" in msg and len(msg) < 450 and "\n" not in msg
    assert len(fake.requests) == 1


def test_404_hints_at_the_base_url(fake):
    fake.then(404, {"detail": "Not Found"})
    with pytest.raises(ConfigError, match=r"HTTP 404: Not Found \(is the base URL right"):
        OpenAICompatLLM("m", fake.url, **FAST).generate(ask("hi"))


def test_read_timeout_is_reported_not_retried(fake):
    fake.then(200, delay=1.0)
    llm = OpenAICompatLLM("m", fake.url, read_timeout=0.2, **FAST)
    with pytest.raises(ConfigError, match="did not answer within 0.2 s"):
        llm.generate(ask("hi"))
    assert len(fake.requests) == 1


def test_backoff_is_exponential_with_jitter_and_capped():
    from coe.plugins.llm.openai_client import backoff_delay

    for retry, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (4, 8), (4, 8), (4, 8)]):
        delays = {backoff_delay(retry, 1.0, 8.0) for _ in range(20)}
        assert all(low <= d <= high for d in delays) and len(delays) > 1  # jitter survives the cap


def test_retries_wait_the_configured_backoff(fake, retry_waits):
    fake.then(503, "overloaded").then(503, "overloaded").then(200)
    t0 = time.perf_counter()
    llm = OpenAICompatLLM("m", fake.url, max_attempts=3, backoff_base=0.4, backoff_max=8.0)
    assert llm.generate(ask("hi")).text == "ok"
    # 0.4 s, then 0.8 s, each half fixed and half random
    assert len(retry_waits) == 2 and 0.2 <= retry_waits[0] <= 0.4 and 0.4 <= retry_waits[1] <= 0.8, retry_waits
    assert time.perf_counter() - t0 >= sum(retry_waits)  # and they were waited out


def test_retry_after_is_capped_by_backoff_max(fake, retry_waits):
    fake.then(429, {"error": {"message": "slow down"}}, {"Retry-After": "120"}).then(200)
    assert OpenAICompatLLM("m", fake.url, **FAST).generate(ask("hi")).text == "ok"
    assert retry_waits == [FAST["backoff_max"]] and len(fake.requests) == 2


def test_4xx_after_retries_counts_the_attempts(fake):
    fake.then(503, "overloaded").then(400, {"error": {"message": "bad request"}})
    with pytest.raises(ConfigError, match=r"answered HTTP 400 after 2 attempts: bad request"):
        OpenAICompatLLM("m", fake.url, **FAST).generate(ask("hi"))
    assert len(fake.requests) == 2


def test_api_key_from_env_is_sent_but_never_shown(fake, monkeypatch):
    monkeypatch.setenv("COE_OPENAI_API_KEY", "sk-very-secret")
    fake.then(200).then(401, {"error": {"message": "invalid api key"}})
    llm = OpenAICompatLLM("m", fake.url, **FAST)
    llm.generate(ask("hi"))
    assert fake.requests[0]["headers"]["authorization"] == "Bearer sk-very-secret"
    with pytest.raises(ConfigError) as info:
        llm.generate(ask("hi"))
    assert "check COE_OPENAI_API_KEY" in str(info.value)
    assert "sk-very-secret" not in str(info.value) and "sk-very-secret" not in repr(llm)
    explicit = OpenAICompatLLM("m", fake.url, api_key="sk-other")
    explicit.generate(ask("hi"))
    assert fake.requests[-1]["headers"]["authorization"] == "Bearer sk-other"


def test_images_are_sent_as_data_uri_content_parts(fake):
    png = (FIXTURE / "images/test/7/image.png").read_bytes()
    request = GenerationRequest(messages=[
        Message(role="system", content="You write questions."),
        Message(role="user", content="What eats the rabbit?", images=[ImageRef(data=png, mime="image/png")])])
    OpenAICompatLLM("m", fake.url).generate(request)
    system, user = fake.requests[0]["body"]["messages"]
    assert system == {"role": "system", "content": "You write questions."}
    text, image = user["content"]
    assert text == {"type": "text", "text": "What eats the rabbit?"}
    assert image["type"] == "image_url"
    header, _, payload = image["image_url"]["url"].partition(",")
    assert header == "data:image/png;base64" and base64.b64decode(payload) == png
    with pytest.raises(ConfigError, match="without image input"):
        OpenAICompatLLM("m", fake.url, supports_images=False).generate(request)
    assert len(fake.requests) == 1


def test_request_shape_for_each_json_mode(fake):
    for _ in range(3):
        fake.then(200, completion('Sure: {"distractors": ["a", "b", "c"]}'))
    req = ask("Give three.", json_schema=DISTRACTORS, max_tokens=33, temperature=0.5, seed=4, stop=["END"],
              repeat_penalty=1.1)
    gens = [OpenAICompatLLM("m", fake.url, json_mode=mode).generate(req)
            for mode in ("json_schema", "json_object", "none")]
    assert all(g.data == {"distractors": ["a", "b", "c"]} for g in gens)  # parsed with parse_json_text
    strict, obj, none = (r["body"] for r in fake.requests)
    assert strict["response_format"] == {"type": "json_schema",
                                         "json_schema": {"name": "reply", "schema": DISTRACTORS, "strict": True}}
    assert obj["response_format"] == {"type": "json_object", "schema": DISTRACTORS}
    assert "response_format" not in none and json.dumps(DISTRACTORS, separators=(",", ":")) in \
        none["messages"][-1]["content"]
    assert strict["model"] == "m" and strict["max_tokens"] == 33 and strict["temperature"] == 0.5
    assert strict["seed"] == 4 and strict["stop"] == ["END"] and strict["repeat_penalty"] == 1.1
    assert OpenAICompatLLM("m", fake.url, json_mode="none").supports_json_schema is False
    with pytest.raises(ConfigError, match="json_mode must be one of"):
        OpenAICompatLLM("m", fake.url, json_mode="grammar")


def test_auto_mode_falls_back_to_json_object_once_and_remembers(fake):
    # llama-cpp-python's server answers 500 with a validation message naming response_format
    fake.then(500, {"error": {"message": "1 validation error: ('body', 'response_format', 'type') "
                                         "Input should be 'text' or 'json_object'"}})
    fake.then(200, completion('{"distractors": ["a", "b", "c"]}')).then(200, completion('{"distractors": []}'))
    llm = OpenAICompatLLM("m", fake.url, **FAST)
    assert llm.generate(ask("one", json_schema=DISTRACTORS)).data == {"distractors": ["a", "b", "c"]}
    llm.generate(ask("two", json_schema=DISTRACTORS))
    types = [r["body"]["response_format"]["type"] for r in fake.requests]
    assert types == ["json_schema", "json_object", "json_object"]


def test_batch_keeps_order_with_bounded_concurrency(fake):
    llm = OpenAICompatLLM("m", fake.url, max_concurrency=2)
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    gens = llm.generate_batch([ask(w) for w in words])
    assert [g.text for g in gens] == [f"echo: {w}" for w in words]
    assert fake.max_in_flight == 2


def first_token_logprobs(top: list[tuple[str, float]], chosen: int = 0) -> dict:
    """A reply's ``choices[0].logprobs`` for one token, as OpenAI-compatible servers send it."""
    entries = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top]
    return {"content": [{**entries[chosen], "top_logprobs": entries}]}


LETTERS = OptionScoreRequest(messages=[Message(role="user", content="2 + 3?\nA) 7\nB) 5\nC) 9\nD) 4")],
                             labels=["A", "B", "C", "D"])


def test_score_options_reads_the_first_tokens_top_logprobs(fake):
    reply = completion("B")
    reply["choices"][0]["logprobs"] = first_token_logprobs(
        [("B", -0.2), (" B", -2.5), (" A", -1.9), ("The", -3.0), ("C", -4.0)])
    fake.then(200, reply)
    scores = OpenAICompatLLM("m", fake.url).score_options(LETTERS)
    body = fake.requests[0]["body"]
    assert (body["max_tokens"], body["logprobs"], body["top_logprobs"], body["temperature"]) == (1, True, 20, 0.0)
    assert "response_format" not in body and body["messages"][0]["content"].startswith("2 + 3?")
    # leading spaces are stripped and the best token per label kept; D is outside the top-k
    assert scores.method == "logprobs" and scores.logprobs == [-1.9, -0.2, -4.0, None]
    assert scores.probs == pytest.approx(label_probs([-1.9, -0.2, -4.0, -4.0]))  # D: the lowest listed
    assert scores.model == "served-model" and scores.usage.prompt_tokens == 7 and scores.seconds > 0


def test_server_without_logprobs_falls_back_to_a_choice_and_remembers(fake):
    fake.then(200, completion("B")).then(200, completion('{"choice": "B"}')).then(200, completion('{"choice": "C"}'))
    llm = OpenAICompatLLM("m", fake.url, json_mode="json_object")
    first = llm.score_options(LETTERS)
    assert first.method == "choice" and first.probs == [0.0, 1.0, 0.0, 0.0]
    assert llm.score_options(LETTERS).probs == [0.0, 0.0, 1.0, 0.0]
    asked = [r["body"] for r in fake.requests]
    assert asked[0]["logprobs"] is True and ["logprobs" in b for b in asked[1:]] == [False, False]
    assert asked[1]["response_format"]["schema"]["properties"]["choice"]["enum"] == ["A", "B", "C", "D"]


def test_server_refusing_logprobs_falls_back_to_a_choice(fake):
    fake.then(400, {"error": {"message": "logprobs is not supported by this model"}})
    fake.then(200, completion('{"choice": "A"}'))
    llm = OpenAICompatLLM("m", fake.url, json_mode="json_object", **FAST)
    assert llm.score_options(LETTERS).probs == [1.0, 0.0, 0.0, 0.0]
    fake.then(400, {"error": {"message": "model not found"}})  # other errors are still errors
    llm = OpenAICompatLLM("m", fake.url, **FAST)
    with pytest.raises(ConfigError, match="HTTP 400: model not found"):
        llm.score_options(LETTERS)


def test_model_spec_and_default_llm(monkeypatch):
    from coe.graphs.services import default_llm
    from coe.plugins import registry

    assert parse_model_spec("openai:qwen2.5:0.5b@http://127.0.0.1:11434/v1") == \
        ("qwen2.5:0.5b", "http://127.0.0.1:11434/v1")
    assert parse_model_spec("openai:Qwen/Qwen2.5-VL-3B-Instruct") == ("Qwen/Qwen2.5-VL-3B-Instruct", None)
    for bad in ("openai:", "openai:@http://127.0.0.1:8080/v1"):
        with pytest.raises(InputError, match="openai:MODEL@http://HOST:PORT/v1"):
            parse_model_spec(bad)
    llm = default_llm("openai:m@http://127.0.0.1:8080")
    assert isinstance(llm, OpenAICompatLLM) and llm.base_url == "http://127.0.0.1:8080/v1"
    assert llm.supports_images and llm.json_mode == "auto"
    monkeypatch.setenv("COE_OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.setenv("COE_OPENAI_IMAGES", "0")
    monkeypatch.setenv("COE_OPENAI_JSON_MODE", "json_object")
    llm = default_llm("openai:m")
    assert (llm.base_url, llm.supports_images, llm.json_mode) == ("http://127.0.0.1:8000/v1", False, "json_object")
    monkeypatch.delenv("COE_OPENAI_BASE_URL")
    with pytest.raises(ConfigError, match="no server URL"):
        default_llm("openai:m")
    assert registry.load("llm", "openai") is OpenAICompatLLM


# -- streaming (SSE) ----------------------------------------------------------------------------------

def sse(*events) -> str:
    return "".join(f"data: {json.dumps(e) if isinstance(e, dict) else e}\n\n" for e in events)


def delta(text=None, finish=None) -> dict:
    return {"model": "served-model", "choices": [{"index": 0, "delta": {} if text is None else {"content": text},
                                                  "finish_reason": finish}]}


def drain(stream):
    """The chunks of a plugin stream and the ``Generation`` it returns."""
    chunks = []
    while True:
        try:
            chunks.append(next(stream))
        except StopIteration as end:
            return chunks, end.value


def test_stream_yields_deltas_and_returns_usage_from_the_last_event(fake):
    usage = {"model": "served-model", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}
    fake.then(200, ": keep-alive\n\n" + sse(delta(""), delta('{"distractors": ["a",'), delta(' "b", "c"]}'),
                                              delta(finish="stop"), usage, "[DONE]"))
    llm = OpenAICompatLLM("m", fake.url, json_mode="json_object")
    chunks, gen = drain(llm.stream(ask("Give three.", json_schema=DISTRACTORS, max_tokens=20, stop=["END"])))
    assert chunks == ['{"distractors": ["a",', ' "b", "c"]}']
    assert gen.text == "".join(chunks) and gen.data == {"distractors": ["a", "b", "c"]}
    assert gen.finish_reason == "stop" and gen.model == "served-model"
    assert (gen.usage.prompt_tokens, gen.usage.completion_tokens) == (9, 3)
    body = fake.requests[0]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 20 and body["stop"] == ["END"] and body["response_format"]["type"] == "json_object"


def test_stream_errors_are_one_clear_line(fake):
    fake.then(400, {"error": {"message": "maximum context length is 2048 tokens"}})
    fake.then(200, "data: {not json\n\n")
    llm = OpenAICompatLLM("m", fake.url)
    with pytest.raises(ConfigError, match=r"answered HTTP 400: maximum context length is 2048 tokens$"):
        drain(llm.stream(ask("hi")))
    with pytest.raises(ConfigError, match="stream event that is not JSON"):
        drain(llm.stream(ask("hi")))
    with pytest.raises(ConfigError, match="stream from OpenAI-compatible server at .* failed"):
        drain(OpenAICompatLLM("m", f"http://127.0.0.1:{free_port()}/v1").stream(ask("hi")))


def test_stream_is_tried_once(fake):
    fake.then(503, {"error": {"message": "overloaded"}})
    with pytest.raises(ConfigError, match=r"answered HTTP 503: overloaded$"):
        drain(OpenAICompatLLM("m", fake.url, **FAST).stream(ask("hi")))
    assert len(fake.requests) == 1


def test_a_refused_response_format_is_not_retried(fake):
    fake.then(500, {"error": {"message": "('body', 'response_format', 'type') Input should be 'json_object'"}})
    with pytest.raises(ConfigError, match=r"answered HTTP 500: .*response_format"):
        OpenAICompatLLM("m", fake.url, json_mode="json_schema", **FAST).generate(ask("hi", json_schema=DISTRACTORS))
    assert len(fake.requests) == 1  # a 500 naming the format is the same on every try


def test_stream_in_auto_mode_falls_back_to_json_object(fake):
    fake.then(500, {"error": {"message": "('body', 'response_format', 'type') Input should be 'json_object'"}})
    fake.then(200, sse(delta('{"distractors": []}'), "[DONE]"))
    llm = OpenAICompatLLM("m", fake.url)
    _, gen = drain(llm.stream(ask("one", json_schema=DISTRACTORS)))
    assert gen.data == {"distractors": []} and llm._format == "json_object"
    assert [r["body"]["response_format"]["type"] for r in fake.requests] == ["json_schema", "json_object"]


def test_langchain_adapter_streams_through_the_server(fake):
    from coe.plugins.llm.langchain_adapter import PluginChatModel

    fake.then(200, sse(delta("blue"), delta(" sky"), delta(finish="stop"), "[DONE]"))
    chunks = list(PluginChatModel(plugin=OpenAICompatLLM("m", fake.url), max_tokens=8).stream("sky colour?"))
    assert [c.content for c in chunks] == ["blue", " sky", ""]
    assert chunks[-1].response_metadata["finish_reason"] == "stop"


# -- llama-cpp-python's real OpenAI-compatible server ---------------------------------------------------

@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """``python -m llama_cpp.server`` on the pulled 0.5B GGUF, on a free loopback port."""
    from coe.modelstore import resolve_llm

    gguf = resolve_llm(MODEL)[1]
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", ALIAS,
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--seed", "0"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as probe:
                    if probe.status == 200:
                        break
            except OSError:  # not listening yet (URLError is an OSError)
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server did not answer in 90 s: {log_path.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def real_llm(llama_server):
    # the 0.5B GGUF has no vision projector: the graph must describe images as text
    with OpenAICompatLLM(ALIAS, llama_server, supports_images=False, max_concurrency=2) as llm:
        yield llm


@pytest.mark.slow
def test_real_server_text_round_trip(real_llm):
    assert ALIAS in real_llm.check()
    gen = real_llm.generate(ask("What is the capital of France? Answer with one word.", max_tokens=8))
    assert "paris" in gen.text.lower()
    assert gen.usage.prompt_tokens > 5 and gen.usage.completion_tokens >= 1 and gen.seconds > 0
    assert gen.finish_reason in ("stop", "length") and gen.data is None


@pytest.mark.slow
@pytest.mark.parametrize("json_mode", ["auto", "json_object"])
def test_real_server_json_schema_reply_validates(llama_server, json_mode):
    llm = OpenAICompatLLM(ALIAS, llama_server, json_mode=json_mode, supports_images=False)
    gen = llm.generate(ask("The correct answer is 'Paris'. Write three wrong answers to "
                           "'What is the capital of France?' as JSON.", json_schema=DISTRACTORS, max_tokens=60))
    jsonschema.validate(gen.data, DISTRACTORS)
    assert gen.data == json.loads(gen.text)
    assert llm._format == "json_object"  # llama-cpp-python takes the schema in json_object form


@pytest.mark.slow
def test_real_server_batch_preserves_order(real_llm):
    words = ["apple", "banana", "cherry"]
    gens = real_llm.generate_batch([ask(f"Repeat exactly this word and nothing else: {w}", max_tokens=6)
                                    for w in words])
    assert [w in g.text.lower() for w, g in zip(words, gens)] == [True, True, True]


@pytest.mark.slow
def test_real_server_4xx_is_reported_without_retry(llama_server, retry_waits):
    llm = OpenAICompatLLM(ALIAS, llama_server, max_attempts=3, backoff_base=5.0)
    with pytest.raises(ConfigError, match=r"answered HTTP 400: .*maximum context length is 2048"):
        llm.generate(ask("word " * 3000, max_tokens=5))
    assert retry_waits == []  # no retry, so no backoff wait


@pytest.mark.slow
def test_langchain_adapter_over_real_server(real_llm):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    from coe.plugins.llm.langchain_adapter import PluginChatModel

    chat = PluginChatModel(plugin=real_llm, max_tokens=8)
    out = chat.invoke([SystemMessage("Answer with one word."), HumanMessage("What color is the sky on a clear day?")])
    assert isinstance(out, AIMessage) and "blue" in out.content.lower()
    assert out.usage_metadata["input_tokens"] > 5 and out.response_metadata["model"] == ALIAS
    out = chat.invoke([HumanMessage("Three wrong answers for 2+2, as JSON.")], json_schema=DISTRACTORS,
                      max_tokens=60)
    jsonschema.validate(out.response_metadata["parsed"], DISTRACTORS)


@pytest.mark.slow
def test_real_server_streams_the_reply(real_llm):
    chunks, gen = drain(real_llm.stream(ask("What is the capital of France? Answer with one word.", max_tokens=8)))
    assert len(chunks) >= 1 and "paris" in gen.text.lower() and gen.text == "".join(chunks)
    assert gen.finish_reason in ("stop", "length")


class StubReader:
    name = "stub"

    def describe(self, image, source_path=None):
        from coe.plugins.vision.protocol import ImageText
        return ImageText(caption="a food chain", ocr_text="grass rabbit fox", source="stub")


@pytest.mark.slow
def test_coe_graph_over_real_server(real_llm, fixture_index):
    from coe.agents.validation import validate_distractors
    from coe.graphs import Services, graph

    state = {"answer": "rabbit", "context": "This is a food chain from a meadow: grass, rabbit, fox.",
             "image_path": str(FIXTURE / "images/test/7/image.png"), "n_distractors": 3}
    services = Services(llm=real_llm, retriever=fixture_index, image_reader=StubReader())
    # the model writes and picks every step here (a text-only server would otherwise leave picking to the rankers)
    out = graph.invoke(state, config={"configurable": {"n_distractors": 3, "question_selection": "model",
                                                       "pool_selection": "blend"}}, context=services)
    assert out["valid"] and out["question"].strip() and out["rationale"]
    assert len(out["distractors"]) == 3
    assert validate_distractors(out["distractors"], "rabbit", 3).valid
    steps = [t for t in out["trace"] if t["node"] in ("question", "rationale", "distractors")]
    assert steps and all(t["model"] == ALIAS and t["usage"]["prompt_tokens"] > 0 for t in steps)


@pytest.mark.slow
def test_cli_generate_with_openai_spec(llama_server, tmp_path):
    from coe.paths import models_dir

    env = {**os.environ, "COE_HOME": str(tmp_path), "COE_MODELS_DIR": str(models_dir()),
           "COE_SCIENCEQA_DIR": str(FIXTURE), "HF_HUB_OFFLINE": "1", "COE_OPENAI_IMAGES": "0"}
    env.pop("COE_CHROMA_DIR", None)
    env.pop("COE_CHROMA_URL", None)
    cli = [sys.executable, "-m", "coe.cli"]
    built = subprocess.run([*cli, "index", "build", "--data", str(FIXTURE)], capture_output=True, text=True,
                           env=env, timeout=300)
    assert built.returncode == 0, built.stderr
    run = subprocess.run([*cli, "generate", "--model", f"openai:{ALIAS}@{llama_server}", "--json",
                          "--image", str(FIXTURE / "images/test/7/image.png"), "--answer", "rabbit",
                          "--context", "This is a food chain from a meadow.", "--n-distractors", "2"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    item = json.loads(run.stdout)
    assert item["answer"] == "rabbit" and len(item["distractors"]) == 2 and item["model"] == ALIAS
    closed = subprocess.run([*cli, "generate", "--model", f"openai:{ALIAS}@http://127.0.0.1:{free_port()}/v1",
                             "--answer", "rabbit", "--context", "A food chain."],
                            capture_output=True, text=True, env=env, timeout=120)
    assert closed.returncode == 1
    errors = [line for line in closed.stderr.splitlines() if line.startswith("coe:")]
    assert len(errors) == 1 and errors[0].startswith("coe: error: cannot reach OpenAI-compatible server at ")


@pytest.fixture(scope="module")
def in_process():
    from coe.modelstore import resolve_llm
    from coe.plugins.llm.llamacpp import LlamaCppLLM

    return LlamaCppLLM(resolve_llm(MODEL)[1], n_ctx=2048)


@pytest.mark.slow
def test_real_server_option_scores_match_in_process_llama_cpp(real_llm, in_process):
    system = Message(role="system", content="You answer multiple-choice questions with the letter of the "
                                            "correct option only.")
    requests = [
        OptionScoreRequest(messages=[system, Message(role="user", content="What is 2 + 3?\nA) 7\nB) 5\nC) 9\n"
                                                     "D) 4\nReply with the letter only.")], labels=list("ABCD")),
        OptionScoreRequest(messages=[system, Message(role="user", content="Which planet is closest to the sun?\n"
                                                     "A) Mars\nB) Venus\nC) Mercury\nReply with the letter only.")],
                           labels=list("ABC")),
        OptionScoreRequest(messages=[Message(role="user", content="Is ice colder than steam? Reply Yes or No.")],
                           labels=["Yes", "No"])]
    for request in requests:
        served, local = real_llm.score_options(request), in_process.score_options(request)
        assert served.method == "logprobs" and None not in served.logprobs  # all labels in the top 20
        # the same llama.cpp build, chat template and float32 log-softmax over the whole vocabulary on
        # both sides: they agree to the digits JSON carries, not just roughly
        assert served.probs == pytest.approx(local.probs, abs=1e-4)
        assert served.logprobs == pytest.approx(local.logprobs, abs=1e-4)
        assert served.usage.prompt_tokens == local.usage.prompt_tokens
    assert real_llm._has_logprobs
