import asyncio
import base64
import json

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.load import dumpd, load
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel
from typing_extensions import TypedDict

from coe.errors import ConfigError
from coe.plugins.llm.from_langchain import LangChainLLM
from coe.plugins.llm.langchain_adapter import PluginChatModel, tool_reply_schema
from coe.plugins.llm.protocol import GenerationRequest, ImageRef, Message, OptionScoreRequest, score_options
from tests.conftest import FIXTURE
from tests.scripted_llm import ScriptedLLM


def test_plain_invoke_maps_roles_and_usage():
    llm = ScriptedLLM(["hello there"])
    chat = PluginChatModel(plugin=llm)
    out = chat.invoke([SystemMessage("be brief"), HumanMessage("hi"), AIMessage("hey"), HumanMessage("again")])
    assert isinstance(out, AIMessage) and out.content == "hello there"
    assert [m.role for m in llm.requests[0].messages] == ["system", "user", "assistant", "user"]
    assert out.usage_metadata["output_tokens"] == 2
    assert out.response_metadata["model"] == "scripted"


def test_json_schema_and_images_pass_through():
    llm = ScriptedLLM([{"answer": "owl"}])
    chat = PluginChatModel(plugin=llm)
    png = base64.b64encode(b"\x89PNG fake").decode()
    msg = HumanMessage(content=[{"type": "text", "text": "what bird?"},
                                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}}])
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    out = chat.invoke([msg], json_schema=schema)
    req = llm.requests[0]
    assert req.json_schema == schema
    assert req.messages[0].content == "what bird?"
    assert req.messages[0].images[0].read_bytes() == b"\x89PNG fake"
    assert out.response_metadata["parsed"] == {"answer": "owl"}


def test_composes_in_an_lcel_chain():
    llm = ScriptedLLM(lambda req: req.messages[-1].content.upper())
    chain = ChatPromptTemplate.from_messages([("human", "say {word}")]) | PluginChatModel(plugin=llm)
    assert chain.invoke({"word": "owl"}).content == "SAY OWL"


def test_remote_image_urls_are_refused():
    chat = PluginChatModel(plugin=ScriptedLLM(["x"]))
    with pytest.raises(ValueError):
        chat.invoke([HumanMessage(content=[{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}])])


# -- streaming, structured output, tools, serialisation ---------------------------------------------------


class StreamingScriptedLLM(ScriptedLLM):
    """Streams each scripted reply word by word and returns the ``Generation`` at the end."""

    def stream(self, request):
        gen = self.generate(request)
        words = gen.text.split(" ")
        for i, word in enumerate(words):
            yield word if i == len(words) - 1 else word + " "
        return gen.model_copy(update={"finish_reason": "stop"})


class Joke(BaseModel):
    setup: str
    punchline: str


class JokeDict(TypedDict):
    setup: str
    punchline: str


JOKE = {"setup": "Why did the cat sit on the computer?", "punchline": "To keep an eye on the mouse."}


def test_stream_yields_the_plugins_chunks_then_usage_once():
    chat = PluginChatModel(plugin=StreamingScriptedLLM(["the owl hoots twice"]))
    chunks = list(chat.stream("hi"))
    assert [c.content for c in chunks] == ["the ", "owl ", "hoots ", "twice", ""]
    assert all(c.usage_metadata is None for c in chunks[:-1])
    full = sum(chunks[1:], chunks[0])
    assert full.content == "the owl hoots twice"
    assert full.usage_metadata == {"input_tokens": 1, "output_tokens": 4, "total_tokens": 5}
    assert full.response_metadata["model_name"] == "scripted"
    assert full.response_metadata["finish_reason"] == "stop"


def test_backend_without_stream_gives_one_chunk_and_async_works():
    chat = PluginChatModel(plugin=ScriptedLLM(["one two", "three four"]))
    chunks = list(chat.stream("hi"))
    assert len(chunks) == 1 and chunks[0].content == "one two" and chunks[0].usage_metadata["output_tokens"] == 2

    async def collect():
        return [c async for c in chat.astream("hi")]

    achunks = asyncio.run(collect())
    assert [c.content for c in achunks] == ["three four"]


def test_streaming_flag_makes_invoke_go_through_stream():
    llm = StreamingScriptedLLM(["a b"])
    out = PluginChatModel(plugin=llm, streaming=True).invoke("hi")
    assert out.content == "a b" and out.response_metadata["finish_reason"] == "stop"


@pytest.mark.parametrize("schema", [Joke, JokeDict, Joke.model_json_schema()])
def test_structured_output_sends_the_schema_and_parses(schema):
    llm = StreamingScriptedLLM([JOKE, JOKE])
    chat = PluginChatModel(plugin=llm).with_structured_output(schema)
    result = chat.invoke("a cat joke")
    assert llm.requests[0].json_schema["properties"].keys() == {"setup", "punchline"}
    assert (result.model_dump() if isinstance(result, Joke) else result) == JOKE
    assert isinstance(result, Joke) == (schema is Joke)
    streamed = list(chat.stream("a cat joke"))
    assert len(streamed) == 1 and streamed[0] == result  # only whole objects come out of a stream


def test_structured_output_include_raw_reports_a_parsing_error():
    chat = PluginChatModel(plugin=ScriptedLLM([JOKE, "not json at all"])).with_structured_output(
        Joke, include_raw=True)
    good = chat.invoke("joke")
    assert good["parsed"] == Joke(**JOKE) and good["parsing_error"] is None and good["raw"].content
    bad = chat.invoke("joke")
    assert bad["parsed"] is None and isinstance(bad["parsing_error"], ValueError)
    assert bad["raw"].content == "not json at all"


def test_json_mode_without_schema_returns_any_object():
    llm = ScriptedLLM([{"a": 1}])
    assert PluginChatModel(plugin=llm).with_structured_output(method="json_mode").invoke("x") == {"a": 1}
    assert llm.requests[0].json_schema == {"type": "object"}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_bound_tools_constrain_the_reply_and_come_back_as_tool_calls():
    llm = StreamingScriptedLLM([{"name": "add", "arguments": {"a": 2, "b": 3}}] * 2)
    chat = PluginChatModel(plugin=llm).bind_tools([add], tool_choice="any")
    out = chat.invoke("what is 2+3?")
    assert out.tool_calls[0]["name"] == "add" and out.tool_calls[0]["args"] == {"a": 2, "b": 3}
    assert out.tool_calls[0]["id"] and out.content == ""
    request = llm.requests[0]
    assert request.json_schema["properties"]["name"] == {"const": "add"}  # forced: the only option
    assert request.messages[0].role == "system" and "add" in request.messages[0].content
    streamed = list(chat.stream("what is 2+3?"))
    full = sum(streamed[1:], streamed[0])
    assert isinstance(full, AIMessageChunk) and full.tool_calls[0]["args"] == {"a": 2, "b": 3}


def test_auto_tool_choice_allows_a_plain_answer_and_histories_become_text():
    llm = ScriptedLLM([{"content": "It is 5."}])
    chat = PluginChatModel(plugin=llm).bind_tools([add])
    history = [HumanMessage("2+3?"),
               AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "c1"}]),
               ToolMessage("5", tool_call_id="c1", name="add")]
    out = chat.invoke(history)
    assert out.content == "It is 5." and out.tool_calls == []
    request = llm.requests[0]
    assert len(request.json_schema["anyOf"]) == 2
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "user"]
    assert json.loads(request.messages[2].content) == {"name": "add", "arguments": {"a": 2, "b": 3}}
    assert request.messages[3].content == "Result of tool call add: 5"


def test_tool_choice_naming_an_unbound_tool_is_refused():
    with pytest.raises(ValueError, match="names no bound tool"):
        tool_reply_schema([{"type": "function", "function": {"name": "add"}}], "subtract")


def test_serialises_as_its_spec_and_resolves_lazily(monkeypatch):
    import coe.plugins.llm.langchain_adapter as adapter

    built = []
    monkeypatch.setattr(adapter, "resolve_plugin", lambda spec: built.append(spec) or ScriptedLLM(["hi"]))
    chat = PluginChatModel(model="openai:m@http://127.0.0.1:9/v1", max_tokens=7)
    loaded = load(dumpd(chat), valid_namespaces=["coe"], allowed_objects=[PluginChatModel])
    assert loaded.model_name == chat.model_name and loaded.max_tokens == 7 and built == []
    assert loaded.invoke("x").content == "hi" and built == ["openai:m@http://127.0.0.1:9/v1"]
    params = loaded._get_ls_params()
    assert params["ls_provider"] == "openai" and params["ls_model_name"] == "openai:m@http://127.0.0.1:9/v1"
    assert loaded._get_ls_params(model="llamacpp:x")["ls_model_name"] == "llamacpp:x"


def test_a_plugin_instance_is_named_by_a_spec_that_resolves_back(monkeypatch):
    class Served(ScriptedLLM):
        name = "openai"
        base_url = "http://127.0.0.1:9/v1"

    assert PluginChatModel(plugin=Served(model_id="m")).model_name == "openai:m@http://127.0.0.1:9/v1"
    monkeypatch.delenv("COE_MODEL", raising=False)
    with pytest.raises(ValueError, match="needs plugin="):
        PluginChatModel()
    monkeypatch.setenv("COE_MODEL", "llamacpp:some-preset")
    assert PluginChatModel().model_name == "llamacpp:some-preset"


# -- the reverse: a LangChain chat model as the graph's LLM plugin -------------------------------------------



class StubReader:
    name = "stub"

    def describe(self, image, source_path=None):
        from coe.plugins.vision.protocol import ImageText
        return ImageText(caption="a food chain", ocr_text="grass rabbit fox", source="stub")


class Recorder(BaseCallbackHandler):
    """What each call sent the chat model: its messages and its invocation arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[list, dict]] = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.calls.append((messages[0], kwargs.get("invocation_params") or {}))


def fake_chat(*replies, recorder: Recorder | None = None) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([r if isinstance(r, AIMessage) else AIMessage(
        json.dumps(r), usage_metadata={"input_tokens": 11, "output_tokens": 3, "total_tokens": 14})
        for r in replies]), callbacks=[recorder] if recorder else None)


def test_the_graph_runs_on_a_langchain_chat_model(fixture_index):
    from coe.graphs import Services, graph

    recorder = Recorder()
    llm = LangChainLLM(fake_chat({"question": "Which organism is eaten by the fox?"},
                                 {"rationale": "In a food chain, arrows point from food to eater. "
                                               "The fox eats the rabbit."},
                                 {"distractors": ["grass", "hawk"]}, recorder=recorder))
    state = {"answer": "rabbit", "context": "This is a food chain from a meadow.", "n_distractors": 2,
             "image_path": str(FIXTURE / "images/test/7/image.png")}
    out = graph.invoke(state, config={"configurable": {"n_distractors": 2, "verify": False,
                                                       "pool_selection": "model", "question_selection": "model",
                                                       "write_notes": False}},
                       context=Services(llm=llm, retriever=fixture_index, image_reader=StubReader()))
    assert out["question"] == "Which organism is eaten by the fox?"
    assert out["distractors"] == ["grass", "hawk"] and out["valid"]
    assert llm.structured == "instruction" and len(recorder.calls) == 3
    # the schema travels as an instruction on the last user message, and the request's limits as arguments
    last = recorder.calls[2][0][-1].content
    assert "matching this JSON schema" in last and '"distractors"' in last
    assert all(kw["max_tokens"] > 0 and kw["temperature"] == 0.0 for _, kw in recorder.calls)
    steps = [t for t in out["trace"] if t["node"] in ("question", "rationale", "distractors")]
    assert steps and all(t["model"] == "GenericFakeChatModel" and t["usage"]["prompt_tokens"] == 11 for t in steps)


def test_native_structured_output_gets_the_requests_limits_and_usage():
    scripted = ScriptedLLM([{"answer": "owl"}, "no json here"])
    llm = LangChainLLM(PluginChatModel(plugin=scripted))
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    ask = GenerationRequest(messages=[Message(role="user", content="which bird?")], json_schema=schema,
                            max_tokens=17, stop=["\n\n"])
    gen = llm.generate(ask)
    assert llm.structured == "native" and gen.data == {"answer": "owl"} and gen.model == "scripted"
    assert gen.usage.prompt_tokens == 2 and gen.usage.completion_tokens == 2
    sent = scripted.requests[0]
    assert sent.max_tokens == 17 and sent.stop == ["\n\n"] and sent.json_schema == schema
    bad = llm.generate(ask)  # untrusted output: the text comes back, unparsed
    assert bad.text == "no json here" and bad.data is None


def test_option_scores_from_returned_logprobs_else_a_constrained_choice():
    top = [{"token": " B", "logprob": -0.2}, {"token": "A", "logprob": -1.9}, {"token": "x", "logprob": -3.0}]
    scored = AIMessage("B", response_metadata={"logprobs": {"content": [
        {"token": " B", "logprob": -0.2, "top_logprobs": top}]}})
    request = OptionScoreRequest(messages=[Message(role="user", content="A or B or C?")], labels=["A", "B", "C"])
    scores = score_options(LangChainLLM(fake_chat(scored), logprobs=True), request)
    assert scores.method == "logprobs" and scores.logprobs == [-1.9, -0.2, None]
    assert scores.probs[1] > scores.probs[0] > scores.probs[2] > 0  # C keeps the smallest listed share
    plain = LangChainLLM(fake_chat(AIMessage("B"), {"choice": "A"}), logprobs=True)
    choice = score_options(plain, request)
    assert choice.method == "choice" and choice.probs == [1.0, 0.0, 0.0] and plain.logprobs is False


def test_images_need_a_vision_model():
    png = ImageRef(data=b"\x89PNG fake")
    ask = GenerationRequest(messages=[Message(role="user", content="what bird?", images=[png])])
    with pytest.raises(ConfigError, match="without image input"):
        LangChainLLM(fake_chat({"a": 1})).generate(ask)
    recorder = Recorder()
    assert LangChainLLM(fake_chat(AIMessage("an owl"), recorder=recorder), supports_images=True).generate(
        ask).text == "an owl"
    blocks = recorder.calls[0][0][0].content
    assert blocks[0] == {"type": "text", "text": "what bird?"} and blocks[1]["image_url"]["url"].startswith(
        "data:image/png;base64,")
    with pytest.raises(ConfigError, match="BaseChatModel"):
        LangChainLLM(ScriptedLLM([]))
