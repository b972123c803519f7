"""Provider formats behind the one OpenAI endpoint (Anthropic, Gemini,
Azure OpenAI), and the Anthropic-compatible inbound endpoint."""

import json

import pytest

from conftest import PROVIDER_KEY, Gateway


@pytest.fixture(scope="module")
def pgw(mock):
    g = Gateway("""
    ai_provider anthropic url=http://127.0.0.1:%(m)d/v1 format=anthropic
                key_env=AIGW_TEST_KEY max_tokens=1000;
    ai_provider gemini url=http://127.0.0.1:%(m)d/v1beta format=gemini
                key_env=AIGW_TEST_KEY;
    ai_provider azure url=http://127.0.0.1:%(m)d format=azure
                api_version=2024-10-21 key_env=AIGW_TEST_KEY;
    ai_provider openai url=http://127.0.0.1:%(m)d/v1 key_env=AIGW_TEST_KEY;
    ai_provider lenient url=http://127.0.0.1:%(m)d/v1 format=anthropic
                drop_params=on;
    ai_model claude-lenient lenient:claude-sonnet-4;

    ai_model claude        anthropic:claude-sonnet-4;
    ai_model claude-tools  anthropic:claude-sonnet-4-tools;
    ai_model claude-429    anthropic:claude-error-429;
    ai_model claude-broken anthropic:claude-stream-error;
    ai_model gemini        gemini:gemini-2.0-flash;
    ai_model gemini-tools  gemini:gemini-2.0-flash-tools;
    ai_model gemini-embed  gemini:text-embedding-004;
    ai_model azure-gpt     azure:my-deployment;
    ai_model gpt           openai:gpt-4o-mini;
""" % dict(m=mock.port), "location /v1/ { ai_gateway; }",
        env={"AIGW_TEST_KEY": PROVIDER_KEY}).start()
    yield g
    g.stop()


def chat(model, content="hello there", **kw):
    b = {"model": model, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": content}]}
    b.update(kw)
    return b


def stream_chunks(r):
    ev = r.events()
    assert ev[-1] == "[DONE]", ev[-3:]
    return [json.loads(e) for e in ev[:-1]]


def stream_text(chunks):
    return "".join((c["choices"][0]["delta"].get("content") or "")
                   for c in chunks if c["choices"])


# ---- Anthropic -----------------------------------------------------------

def test_anthropic_request_translated(pgw, mock):
    r = pgw.chat(chat("claude", temperature=0.2, stop=["END"], user="u-1"))
    assert r.status == 200, r
    up = mock.last()
    assert up["path"] == "/v1/messages"
    assert up["headers"]["x-api-key"] == PROVIDER_KEY
    assert up["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in up["headers"]
    b = up["body"]
    assert b["model"] == "claude-sonnet-4"
    assert b["system"] in ("be brief", [{"type": "text", "text": "be brief"}])
    assert b["messages"][0]["role"] == "user"
    assert b["max_tokens"] == 1000
    assert b["stop_sequences"] == ["END"]
    assert b["metadata"] == {"user_id": "u-1"}


def test_anthropic_response_is_openai(pgw):
    r = pgw.chat(chat("claude"))
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "claude"
    msg = body["choices"][0]
    assert msg["message"]["role"] == "assistant"
    assert msg["message"]["content"] == "Hello from mock! You said: hello there"
    assert msg["finish_reason"] == "stop"
    u = body["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert "content-length" not in r.headers or \
        int(r.headers["content-length"]) == len(r.data)


def test_anthropic_stream_is_openai(pgw):
    r = pgw.chat(chat("claude", stream=True,
                      stream_options={"include_usage": True}))
    assert r.status == 200
    chunks = stream_chunks(r)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert stream_text(chunks) == "Hello from mock! You said: hello there"
    finals = [c for c in chunks if c["choices"] and
              c["choices"][0].get("finish_reason")]
    assert finals[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"]


def test_anthropic_tool_calls(pgw, mock):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "weather",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string"}}}}}]
    r = pgw.chat(chat("claude-tools", tools=tools, tool_choice="required"))
    up = mock.last()["body"]
    assert up["tools"][0]["name"] == "get_weather"
    assert up["tools"][0]["input_schema"]["type"] == "object"
    assert up["tool_choice"] == {"type": "any"}
    c = r.json()["choices"][0]
    assert c["finish_reason"] == "tool_calls"
    call = c["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    json.loads(call["function"]["arguments"])

    r = pgw.chat(chat("claude-tools", tools=tools, stream=True))
    chunks = stream_chunks(r)
    deltas = [tc for c in chunks if c["choices"]
              for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert deltas[0]["id"] and deltas[0]["function"]["name"] == "get_weather"
    args = "".join(d["function"].get("arguments", "") for d in deltas)
    json.loads(args)


def test_anthropic_error_is_openai_error(pgw):
    r = pgw.chat(chat("claude-429"))
    assert r.status == 429
    e = r.json()["error"]
    assert set(e) == {"message", "type", "param", "code"}
    assert "rate" in e["type"] or "rate" in (e["code"] or "")


def test_anthropic_stream_error_event(pgw):
    r = pgw.chat(chat("claude-broken", stream=True))
    assert r.status == 200
    assert any('"error"' in e for e in r.events())


# ---- Gemini --------------------------------------------------------------

def test_gemini_request_and_response(pgw, mock):
    r = pgw.chat(chat("gemini", temperature=0.1, max_tokens=50))
    assert r.status == 200, r
    up = mock.last()
    assert up["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert up["headers"]["x-goog-api-key"] == PROVIDER_KEY
    b = up["body"]
    assert b["systemInstruction"]["parts"][0]["text"] == "be brief"
    assert b["contents"][0]["role"] == "user"
    assert b["generationConfig"]["maxOutputTokens"] == 50
    body = r.json()
    assert body["choices"][0]["message"]["content"] == \
        "Hello from mock! You said: hello there"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] > 0


def test_gemini_stream(pgw, mock):
    r = pgw.chat(chat("gemini", stream=True))
    assert r.status == 200
    assert mock.last()["path"].endswith(":streamGenerateContent")
    assert mock.last()["query"] == "alt=sse"
    chunks = stream_chunks(r)
    assert stream_text(chunks) == "Hello from mock! You said: hello there"


def test_gemini_tools(pgw):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object"}}}]
    r = pgw.chat(chat("gemini-tools", tools=tools))
    c = r.json()["choices"][0]
    assert c["finish_reason"] == "tool_calls"
    assert c["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_gemini_embeddings(pgw, mock):
    r = pgw.request("POST", "/v1/embeddings",
                    {"model": "gemini-embed", "input": ["a", "b"]})
    assert r.status == 200, r
    assert mock.last()["path"].endswith(":batchEmbedContents")
    d = r.json()
    assert d["object"] == "list" and len(d["data"]) == 2


# ---- Azure ---------------------------------------------------------------

def test_azure_path_and_key(pgw, mock):
    r = pgw.chat(chat("azure-gpt"))
    assert r.status == 200
    up = mock.last()
    assert up["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert up["query"] == "api-version=2024-10-21"
    assert up["headers"]["api-key"] == PROVIDER_KEY
    assert "authorization" not in up["headers"]


# ---- Anthropic inbound (/v1/messages) --------------------------------------

def msg(model, **kw):
    b = {"model": model, "max_tokens": 100, "system": "be brief",
         "messages": [{"role": "user", "content": "hello there"}]}
    b.update(kw)
    return b


def test_messages_native_to_anthropic(pgw, mock):
    sent = msg("claude")
    r = pgw.request("POST", "/v1/messages", sent,
                    headers={"x-api-key": "client", "anthropic-version":
                             "2023-06-01"})
    assert r.status == 200, r
    up = mock.last()
    assert up["path"] == "/v1/messages"
    assert up["body"] == dict(sent, model="claude-sonnet-4")
    assert r.data.decode() == up["response_body"]


def test_messages_to_openai_provider(pgw, mock):
    r = pgw.request("POST", "/v1/messages", msg("gpt"))
    assert r.status == 200, r
    up = mock.last()
    assert up["path"] == "/v1/chat/completions"
    assert up["body"]["messages"][0] == {"role": "system",
                                         "content": "be brief"}
    body = r.json()
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["content"][0]["text"] == "Hello from mock! You said: hello there"
    assert body["stop_reason"] == "end_turn"
    assert body["usage"]["output_tokens"] > 0


def test_messages_stream_from_openai_provider(pgw):
    r = pgw.request("POST", "/v1/messages", msg("gpt", stream=True))
    assert r.status == 200
    text = r.data.decode()
    names = [l[7:] for l in text.split("\n") if l.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "content_block_delta" in names
    deltas = [json.loads(l[6:]) for l in text.split("\n")
              if l.startswith("data: ") and "text_delta" in l]
    assert "".join(d["delta"]["text"] for d in deltas) == \
        "Hello from mock! You said: hello there"


def test_messages_errors_are_anthropic_shaped(pgw):
    r = pgw.request("POST", "/v1/messages", msg("nope"))
    assert r.status == 404
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "not_found_error"
    r = pgw.request("POST", "/v1/messages", "{bad")
    assert r.status == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_unsupported_parameter_is_a_400_naming_it(pgw):
    r = pgw.chat(chat("claude", n=2))
    assert r.status == 400
    assert r.json()["error"]["param"] == "n"


def test_drop_params_drops_it(pgw, mock):
    r = pgw.chat(chat("claude-lenient", n=2))
    assert r.status == 200, r
    assert "n" not in mock.last()["body"]


@pytest.mark.parametrize("name", [
    "gemini/x\r\nHost: evil", "gemini/../../v1/other", "gemini/a?key=1",
    "gemini/a b", "gemini/a#b", "gemini/a%2e"])
def test_passthrough_names_cannot_leave_the_path(pgw, mock, name):
    n = len(mock.requests())
    r = pgw.chat(chat(name))
    assert r.status == 404, r
    assert len(mock.requests()) == n
