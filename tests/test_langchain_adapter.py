import base64

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate

from coe.plugins.llm.langchain_adapter import PluginChatModel
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
    import pytest
    chat = PluginChatModel(plugin=ScriptedLLM(["x"]))
    with pytest.raises(ValueError):
        chat.invoke([HumanMessage(content=[{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}])])
