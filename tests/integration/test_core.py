"""The gateway core: one OpenAI endpoint, routed by model, streaming,
errors, TLS upstreams, client aborts."""

import json
import os
import socket
import time

import pytest

from conftest import (CLIENT_KEY, PROVIDER_KEY, Gateway, free_port)


@pytest.fixture(scope="module")
def gw(mock, tls_mock, test_ca):
    dead = free_port()
    g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%(mock)d/v1 key_env=AIGW_TEST_KEY
                read_timeout=2s;
    ai_provider dead url=http://127.0.0.1:%(dead)d/v1 connect_timeout=1s;
    ai_provider tls  url=https://127.0.0.1:%(tls)d/v1 host=localhost
                ssl_trusted_certificate=%(ca)s/ca.crt key_env=AIGW_TEST_KEY;
    ai_provider tls_noca url=https://127.0.0.1:%(tls)d/v1 host=localhost;
    ai_provider closed url=http://127.0.0.1:%(mock)d/v1 passthrough=off;

    ai_model gpt-4o    mock:gpt-4o-mock alias=gpt4,gpt-4o-latest;
    ai_model tools     mock:gpt-4o-tools;
    ai_model stall     mock:gpt-4o-stall;
    ai_model slow      mock:gpt-4o-slow-chunks3;
    ai_model err429    mock:gpt-4o-error-429;
    ai_model err500    mock:gpt-4o-error-500;
    ai_model err400    mock:gpt-4o-error-400;
    ai_model reset     mock:gpt-4o-reset;
    ai_model dead      dead:gpt-4o;
    ai_model secure    tls:gpt-4o-tls;
    ai_model insecure  tls_noca:gpt-4o;
    ai_model embed     mock:text-embedding-3-small;
    ai_model legacy    mock:gpt-3.5-turbo-instruct;
    ai_model same      mock;
    ai_model "name with \\"quote\\"" mock:quoted;
""" % dict(mock=mock.port, dead=dead, tls=tls_mock.port, ca=test_ca),
        """
        client_max_body_size 64k;
        client_body_buffer_size 1k;
        location /v1/ { ai_gateway; }
        location = /plain { return 200 "plain\\n"; }
""", env={"AIGW_TEST_KEY": PROVIDER_KEY}).start()
    yield g
    g.stop()


def chat_body(model="gpt-4o", content="hello there", **kw):
    b = {"model": model, "messages": [{"role": "user", "content": content}]}
    b.update(kw)
    return b


def error_of(r):
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


# ---- models --------------------------------------------------------------

def test_models_list(gw):
    r = gw.request("GET", "/v1/models")
    assert r.status == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert ids[:4] == ["gpt-4o", "gpt4", "gpt-4o-latest", "tools"]
    assert 'name with "quote"' in ids
    for m in body["data"]:
        assert m["object"] == "model"
        assert isinstance(m["created"], int)
    owners = {m["id"]: m["owned_by"] for m in body["data"]}
    assert owners["gpt-4o"] == "mock" and owners["dead"] == "dead"


def test_model_retrieve(gw):
    r = gw.request("GET", "/v1/models/gpt4")
    assert r.status == 200
    assert r.json()["id"] == "gpt4" and r.json()["owned_by"] == "mock"
    r = gw.request("GET", "/v1/models/nope")
    assert r.status == 404 and error_of(r)["code"] == "model_not_found"


# ---- chat, non-streaming -------------------------------------------------

def test_chat_passes_response_unchanged(gw, mock):
    r = gw.chat(chat_body(), headers={"Authorization": "Bearer " + CLIENT_KEY})
    assert r.status == 200, r
    up = mock.last()
    # byte for byte what the provider sent
    assert r.data.decode() == up["response_body"]
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.data)
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == \
        "Hello from mock! You said: hello there"
    assert body["usage"]["total_tokens"] == \
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_upstream_sees_rewritten_model_and_provider_key(gw, mock):
    sent = chat_body("gpt4", temperature=0.5)
    r = gw.chat(sent, headers={"Authorization": "Bearer " + CLIENT_KEY,
                               "OpenAI-Organization": "org-client",
                               "Cookie": "a=b"})
    assert r.status == 200
    up = mock.last()
    assert up["path"] == "/v1/chat/completions"
    assert up["headers"]["authorization"] == "Bearer " + PROVIDER_KEY
    assert CLIENT_KEY not in json.dumps(up)
    assert "openai-organization" not in up["headers"]
    assert "cookie" not in up["headers"]
    assert up["headers"]["host"] == "127.0.0.1:%d" % mock_port(gw)
    expected = dict(sent, model="gpt-4o-mock")
    assert up["body"] == expected
    # only the model's bytes changed
    assert up["raw_body"] == json.dumps(sent).replace('"gpt4"',
                                                      '"gpt-4o-mock"')


def mock_port(gw):
    with open(gw.conf) as f:
        text = f.read()
    return int(text.split("http://127.0.0.1:")[1].split("/")[0])


def test_alias_and_same_name(gw, mock):
    assert gw.chat(chat_body("gpt-4o-latest")).status == 200
    assert mock.last()["body"]["model"] == "gpt-4o-mock"
    assert gw.chat(chat_body("same")).status == 200
    assert mock.last()["body"]["model"] == "same"


def test_provider_slash_model_passthrough(gw, mock):
    r = gw.chat(chat_body("mock/some-new-model"))
    assert r.status == 200
    assert mock.last()["body"]["model"] == "some-new-model"
    r = gw.chat(chat_body("closed/some-model"))
    assert r.status == 404
    assert error_of(r)["code"] == "model_not_found"


def test_model_with_escapes_and_odd_spacing(gw, mock):
    raw = '{ "messages" : [{"role":"user","content":"x"}] ,\n "mod\\u0065l" :\t"gpt4" }'
    r = gw.request("POST", "/v1/chat/completions", raw)
    assert r.status == 200, r
    assert mock.last()["body"]["model"] == "gpt-4o-mock"
    raw = '{"model"  :  "gpt4", "messages":[{"role":"user","content":"x"}]}'
    assert gw.request("POST", "/v1/chat/completions", raw).status == 200
    assert mock.last()["body"]["model"] == "gpt-4o-mock"


def test_tool_call_response(gw, mock):
    body = chat_body("tools", tools=[{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object"}}}])
    r = gw.chat(body)
    assert r.status == 200
    assert r.data.decode() == mock.last()["response_body"]
    msg = r.json()["choices"][0]
    assert msg["finish_reason"] == "tool_calls"
    call = msg["message"]["tool_calls"][0]
    assert call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    json.loads(call["function"]["arguments"])


def test_completions_and_embeddings(gw, mock):
    r = gw.request("POST", "/v1/completions",
                   {"model": "legacy", "prompt": "Say this"})
    assert r.status == 200, r
    assert mock.last()["path"] == "/v1/completions"
    assert r.json()["object"] == "text_completion"

    r = gw.request("POST", "/v1/embeddings",
                   {"model": "embed", "input": ["a", "b"]})
    assert r.status == 200, r
    assert mock.last()["path"] == "/v1/embeddings"
    assert mock.last()["body"]["model"] == "text-embedding-3-small"
    assert [d["index"] for d in r.json()["data"]] == [0, 1]


def test_large_body_spilled_to_temp_file(gw, mock):
    content = "x" * 20000          # beyond client_body_buffer_size 1k
    r = gw.chat(chat_body(content=content))
    assert r.status == 200
    assert mock.last()["body"]["messages"][0]["content"] == content


def test_chunked_request_body(gw, mock):
    body = json.dumps(chat_body(content="chunked")).encode()
    s = socket.create_connection(("127.0.0.1", gw.port), 5)
    req = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
           b"Content-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    for i in range(0, len(body), 7):
        part = body[i:i + 7]
        req += b"%x\r\n%s\r\n" % (len(part), part)
    s.sendall(req + b"0\r\n\r\n")
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert mock.last()["body"]["messages"][0]["content"] == "chunked"


# ---- streaming -----------------------------------------------------------

def test_stream_passes_events_through(gw, mock):
    r = gw.chat(chat_body(stream=True))
    assert r.status == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.data.decode() == mock.last()["response_body"]
    events = r.events()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in chunks)
    assert text == "Hello from mock! You said: hello there"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert mock.last()["headers"]["accept"] == "text/event-stream"


def test_stream_include_usage(gw, mock):
    r = gw.chat(chat_body(stream=True,
                          stream_options={"include_usage": True}))
    events = r.events()
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["total_tokens"] > 0


def test_stream_tool_calls(gw, mock):
    r = gw.chat(chat_body("tools", stream=True))
    chunks = [json.loads(e) for e in r.events()[:-1]]
    calls = [c["choices"][0]["delta"]["tool_calls"] for c in chunks
             if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    assert len(calls) > 1
    assert calls[0][0]["index"] == 0 and calls[0][0]["id"]
    args = "".join(c[0]["function"].get("arguments", "") for c in calls)
    json.loads(args)


def test_stream_arrives_chunk_by_chunk(gw):
    """Each event reaches the client when the provider sends it (the
    mock waits 200 ms between chunks), not when the answer is complete."""
    s = socket.create_connection(("127.0.0.1", gw.port), 10)
    body = json.dumps(chat_body("slow", stream=True)).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n%s" % (len(body), body))
    arrivals = []
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
        arrivals.append((time.monotonic(), data.count(b"data: ")))
    s.close()
    seen = [n for _, n in arrivals]
    # events came in several reads, spread over time, in order
    assert len(set(seen)) >= 3, arrivals
    assert data.rstrip().endswith(b"0")  # chunked terminator


def test_client_abort_closes_upstream(gw, mock):
    before = mock.connections()["aborted_streams"]
    s = socket.create_connection(("127.0.0.1", gw.port), 10)
    body = json.dumps(chat_body("stall", stream=True)).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n"
              b"\r\n%s" % (len(body), body))
    data = b""
    while b"data: " not in data:
        data += s.recv(65536)
    s.close()
    deadline = time.time() + 5
    while time.time() < deadline:
        if mock.connections()["aborted_streams"] > before:
            break
        time.sleep(0.05)
    assert mock.connections()["aborted_streams"] == before + 1
    time.sleep(0.2)
    assert "client prematurely closed" in gw.logs() or \
        "499" in gw.logs()


# ---- errors --------------------------------------------------------------

@pytest.mark.parametrize("raw,param,code", [
    ("{not json", None, "invalid_json"),
    ("", None, "invalid_json"),
    ("[1,2]", None, "invalid_type"),
    ('{"model":"gpt4","model":"x","messages":[]}', None, "invalid_json"),
    ('{"messages":[{"role":"user","content":"x"}]}', "model",
     "missing_required_parameter"),
    ('{"model":42,"messages":[]}', "model", "invalid_type"),
    ('{"model":"gpt4"}', "messages", "missing_required_parameter"),
    ('{"model":"gpt4","messages":{}}', "messages", "invalid_type"),
    ('{"model":"gpt4","messages":[]}', "messages", "empty_array"),
    ('{"model":"gpt4","messages":[{"content":"x"}]}', "messages[0].role",
     "missing_required_parameter"),
    ('{"model":"gpt4","messages":[{"role":"user","content":"x"}],'
     '"stream":"yes"}', "stream", "invalid_type"),
    ('{"model":"gpt4","messages":[{"role":"user","content":"x"}],'
     '"stream_options":{"include_usage":true}}', "stream_options",
     "invalid_value"),
])
def test_bad_requests(gw, raw, param, code):
    r = gw.request("POST", "/v1/chat/completions", raw)
    assert r.status == 400, r
    assert r.headers["content-type"] == "application/json"
    e = error_of(r)
    assert e["type"] == "invalid_request_error"
    assert e["param"] == param and e["code"] == code
    if param:
        assert param in e["message"]


def test_deep_nesting_is_a_400(gw):
    raw = '{"model":"gpt4","messages":' + "[" * 5000 + "]" * 5000 + "}"
    r = gw.request("POST", "/v1/chat/completions", raw)
    assert r.status == 400 and error_of(r)["code"] == "invalid_json"


def test_embeddings_need_input(gw):
    r = gw.request("POST", "/v1/embeddings", {"model": "embed"})
    assert r.status == 400 and error_of(r)["param"] == "input"


def test_unknown_model_404(gw):
    r = gw.chat(chat_body('no-such-"model'))
    assert r.status == 404
    e = error_of(r)
    assert e == {"message": "The model 'no-such-\"model' does not exist or "
                            "you do not have access to it.",
                 "type": "invalid_request_error", "param": "model",
                 "code": "model_not_found"}


def test_wrong_method_405(gw):
    r = gw.request("GET", "/v1/chat/completions")
    assert r.status == 405 and r.headers["allow"] == "POST"
    assert error_of(r)["code"] == "method_not_allowed"
    r = gw.request("POST", "/v1/models", "{}")
    assert r.status == 405 and r.headers["allow"] == "GET, HEAD"


def test_unknown_url_404(gw):
    r = gw.request("POST", "/v1/nothing/here", "{}")
    assert r.status == 404 and error_of(r)["code"] == "unknown_url"


def test_body_too_large_413(gw):
    r = gw.chat(chat_body(content="x" * 70000))
    assert r.status == 413
    e = error_of(r)
    assert e["code"] == "request_too_large" and "65536" in e["message"]
    assert r.headers["content-type"] == "application/json"


def test_upstream_connect_failure_502(gw):
    r = gw.chat(chat_body("dead"))
    assert r.status == 502
    e = error_of(r)
    assert e["code"] == "bad_gateway" and '"dead"' in e["message"]


def test_upstream_timeout_504(gw):
    t = time.time()
    r = gw.chat(chat_body("stall"))
    assert r.status == 504
    assert error_of(r)["code"] == "gateway_timeout"
    assert time.time() - t < 10


def test_upstream_reset_502(gw):
    r = gw.chat(chat_body("reset"))
    assert r.status == 502 and error_of(r)["code"] == "bad_gateway"


@pytest.mark.parametrize("model,status", [("err429", 429), ("err500", 500),
                                          ("err400", 400)])
def test_upstream_error_body_unchanged(gw, mock, model, status):
    r = gw.chat(chat_body(model))
    assert r.status == status
    assert r.data.decode() == mock.last()["response_body"]
    assert "error" in r.json()
    if status == 429:
        assert r.headers["retry-after"] == "1"


def test_other_locations_untouched(gw):
    r = gw.request("GET", "/plain")
    assert r.status == 200 and r.data == b"plain\n"
    r = gw.request("GET", "/missing")
    assert r.status == 404 and b"<html>" in r.data


def test_secrets_never_logged(gw):
    gw.chat(chat_body("dead"), headers={"Authorization": "Bearer " +
                                        CLIENT_KEY})
    gw.chat(chat_body("gpt4"), headers={"Authorization": "Bearer " +
                                        CLIENT_KEY})
    logs = gw.logs()
    assert PROVIDER_KEY not in logs and CLIENT_KEY not in logs


def test_upstream_connections_are_reused(gw, mock):
    mock.reset()
    for _ in range(5):
        assert gw.chat(chat_body()).status == 200
    c = mock.connections()
    assert c["opened"] == 1 and c["reused"] >= 4, c


# ---- TLS -----------------------------------------------------------------

def test_tls_upstream_verified(gw, tls_mock):
    r = gw.chat(chat_body("secure"))
    assert r.status == 200, r
    up = tls_mock.last()
    assert up["headers"]["host"] == "localhost"
    assert up["headers"]["authorization"] == "Bearer " + PROVIDER_KEY
    assert up["body"]["model"] == "gpt-4o-tls"


def test_tls_upstream_unverified_is_502(gw):
    r = gw.chat(chat_body("insecure"))
    assert r.status == 502
    assert error_of(r)["code"] == "bad_gateway"
    assert "certificate verify" in gw.logs()
