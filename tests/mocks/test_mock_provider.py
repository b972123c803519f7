"""Self-tests for mock_provider.py (stdlib + pytest only).

Run: /usr/bin/python3 -m pytest tests/mocks -q
"""

import base64
import http.client
import json
import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MOCK = os.path.join(HERE, "mock_provider.py")


def start_mock(*extra):
    p = subprocess.Popen([sys.executable, MOCK, "--port", "0", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    assert line.startswith("READY "), (line, p.stderr.read() if p.poll() else "")
    return p, int(line.split()[1])


def stop_mock(p):
    p.terminate()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


@pytest.fixture(scope="module")
def mock():
    p, port = start_mock("--stall-seconds", "3")
    yield port
    stop_mock(p)


@pytest.fixture(scope="module")
def keyed():
    p, port = start_mock("--require-key", "sk-test-1234567890")
    yield port
    stop_mock(p)


def req(port, method, path, body=None, headers=None, timeout=5, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    data = json.dumps(body) if isinstance(body, (dict, list)) else body
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    raw = r.read()
    if conn is None:
        c.close()
    return r, raw


def jreq(port, path, body, **kw):
    r, raw = req(port, "POST", path, body, **kw)
    return r, (json.loads(raw) if raw else None), raw


def ctl(port, method, path):
    r, raw = req(port, method, path)
    return json.loads(raw)


def sse(raw, sep=b"\n\n"):
    """Parse an SSE body into a list of (event, data) tuples."""
    out = []
    for block in raw.split(sep):
        if not block.strip():
            continue
        ev, data = None, []
        for line in block.replace(b"\r\n", b"\n").split(b"\n"):
            if line.startswith(b"event: "):
                ev = line[7:].decode()
            elif line.startswith(b"data: "):
                data.append(line[6:].decode())
        out.append((ev, "\n".join(data)))
    return out


def user(text="hi there"):
    return [{"role": "user", "content": text}]


# ----------------------------------------------------------------------------
# OpenAI
# ----------------------------------------------------------------------------

def test_openai_chat_nonstream(mock):
    r, j, _ = jreq(mock, "/v1/chat/completions",
                   {"model": "gpt-4o", "messages": user("hi there")})
    assert r.status == 200
    assert r.getheader("Content-Type") == "application/json"
    assert r.getheader("x-request-id") and r.getheader("openai-processing-ms")
    assert j["object"] == "chat.completion" and j["id"].startswith("chatcmpl-")
    assert j["model"] == "gpt-4o" and isinstance(j["created"], int)
    ch = j["choices"][0]
    assert ch["message"] == {"role": "assistant",
                             "content": "Hello from mock! You said: hi there",
                             "refusal": None, "annotations": []}
    assert ch["finish_reason"] == "stop" and ch["logprobs"] is None
    u = j["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["completion_tokens_details"]["reasoning_tokens"] == 0
    assert u["prompt_tokens_details"]["cached_tokens"] == 0
    assert "service_tier" in j and j["system_fingerprint"].startswith("fp_")


def test_openai_chat_stream_usage_consistent(mock):
    body = {"model": "gpt-4o", "messages": user("stream me please"),
            "stream": True, "stream_options": {"include_usage": True}}
    r, raw = req(mock, "POST", "/v1/chat/completions", body)
    assert r.status == 200
    assert r.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    assert r.getheader("Transfer-Encoding") == "chunked"
    evs = sse(raw)
    assert evs[-1][1] == "[DONE]"
    chunks = [json.loads(d) for _, d in evs[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert len({c["created"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant",
                                                "content": "", "refusal": None}
    assert all("usage" in c for c in chunks)
    assert all(c["usage"] is None for c in chunks[:-1])
    fin = chunks[-2]
    assert fin["choices"][0]["delta"] == {} and fin["choices"][0]["finish_reason"] == "stop"
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["total_tokens"] > 0
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:-2])
    assert text == "Hello from mock! You said: stream me please"
    # same usage as non-stream
    body.pop("stream")
    _, j, _ = jreq(mock, "/v1/chat/completions", body)
    assert j["usage"] == last["usage"]
    assert j["usage"]["completion_tokens"] == len(chunks) - 3


def test_openai_stream_without_usage(mock):
    r, raw = req(mock, "POST", "/v1/chat/completions",
                 {"model": "m", "messages": user(), "stream": True})
    chunks = [json.loads(d) for _, d in sse(raw)[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_sse_events_are_separate_http_chunks(mock):
    s = socket.create_connection(("127.0.0.1", mock), timeout=5)
    body = json.dumps({"model": "m-chunks3", "messages": user(), "stream": True})
    s.sendall(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
               % (len(body), body)).encode())
    buf = b""
    while not buf.endswith(b"0\r\n\r\n"):
        d = s.recv(65536)
        assert d
        buf += d
    s.close()
    head, rest = buf.split(b"\r\n\r\n", 1)
    chunks = []
    while True:
        size_line, rest = rest.split(b"\r\n", 1)
        n = int(size_line, 16)
        if n == 0:
            break
        chunks.append(rest[:n])
        assert rest[n:n + 2] == b"\r\n"
        rest = rest[n + 2:]
    assert all(c.startswith(b"data: ") and c.endswith(b"\n\n") and c.count(b"data: ") == 1
               for c in chunks)
    assert len(chunks) == 1 + 3 + 1 + 1  # role, 3 content, finish, [DONE]


def test_openai_chunks_and_long(mock):
    _, raw = req(mock, "POST", "/v1/chat/completions",
                 {"model": "gpt-chunks20", "messages": user("x"), "stream": True})
    chunks = [json.loads(d) for _, d in sse(raw)[:-1]]
    content = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    assert len(content) == 20
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == \
        "Hello from mock! You said: x"
    _, j, _ = jreq(mock, "/v1/chat/completions",
                   {"model": "gpt-long", "messages": user("x")})
    assert 8000 <= len(j["choices"][0]["message"]["content"]) <= 8400
    _, j, _ = jreq(mock, "/v1/chat/completions",
                   {"model": "gpt", "messages": user("a b c d e f"), "max_tokens": 3})
    assert j["choices"][0]["finish_reason"] == "length"
    assert j["choices"][0]["message"]["content"] == "Hello from mock!"


def test_openai_tools(mock):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    _, j, _ = jreq(mock, "/v1/chat/completions",
                   {"model": "gpt-tools", "messages": user(), "tools": tools})
    ch = j["choices"][0]
    assert ch["finish_reason"] == "tool_calls"
    tc = ch["message"]["tool_calls"][0]
    assert tc["id"].startswith("call_") and tc["type"] == "function"
    assert tc["function"]["name"] == "lookup"
    args = json.loads(tc["function"]["arguments"])
    assert ch["message"]["content"] is None
    _, raw = req(mock, "POST", "/v1/chat/completions",
                 {"model": "gpt-tools", "messages": user(), "tools": tools,
                  "stream": True})
    chunks = [json.loads(d) for _, d in sse(raw)[:-1]]
    first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["index"] == 0 and first["id"] == first["id"] and \
        first["function"] == {"name": "lookup", "arguments": ""}
    frags = [c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
             for c in chunks[1:-1]]
    assert len(frags) > 3
    assert all("id" not in c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1])
    assert json.loads("".join(frags)) == args
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_openai_errors(mock):
    r, j, raw = jreq(mock, "/v1/chat/completions",
                     {"model": "gpt-error-429", "messages": user()})
    assert r.status == 429
    assert r.getheader("Retry-After") == "1" and r.getheader("retry-after-ms") == "1000"
    assert j["error"]["code"] == "rate_limit_exceeded" and j["error"]["type"] == "requests"
    assert j["error"]["param"] is None
    for code, typ in ((500, "server_error"), (503, "server_error"),
                      (400, "invalid_request_error")):
        r, j, _ = jreq(mock, "/v1/chat/completions",
                       {"model": "gpt-error-%d" % code, "messages": user(),
                        "stream": True})
        assert r.status == code and j["error"]["type"] == typ


def test_openai_stream_error(mock):
    _, raw = req(mock, "POST", "/v1/chat/completions",
                 {"model": "gpt-stream-error", "messages": user(), "stream": True})
    evs = sse(raw)
    assert "error" in json.loads(evs[-1][1])
    assert all(d != "[DONE]" for _, d in evs)


def test_azure_path_and_chunked_request(mock):
    body = json.dumps({"messages": user("azure")}).encode()
    c = http.client.HTTPConnection("127.0.0.1", mock, timeout=5)
    c.putrequest("POST", "/openai/deployments/my-dep/chat/completions?api-version=2024-10-21")
    c.putheader("Content-Type", "application/json")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    half = len(body) // 2
    for part in (body[:half], body[half:]):
        c.send(b"%x\r\n%s\r\n" % (len(part), part))
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    j = json.loads(r.read())
    c.close()
    assert r.status == 200 and j["model"] == "my-dep"
    assert j["choices"][0]["message"]["content"].endswith("azure")
    recs = ctl(mock, "GET", "/_mock/requests")
    last = recs[-1]
    assert last["path"] == "/openai/deployments/my-dep/chat/completions"
    assert last["query"] == "api-version=2024-10-21"
    assert last["body"] == {"messages": user("azure")}
    assert last["headers"]["transfer-encoding"] == "chunked"


def test_legacy_completions(mock):
    _, j, _ = jreq(mock, "/v1/completions", {"model": "gpt-3.5-turbo-instruct",
                                             "prompt": "say hi"})
    assert j["object"] == "text_completion"
    assert j["choices"][0]["text"] == "Hello from mock! You said: say hi"
    _, raw = req(mock, "POST", "/v1/completions",
                 {"model": "i", "prompt": "say hi", "stream": True})
    chunks = [json.loads(d) for _, d in sse(raw)[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks) == \
        "Hello from mock! You said: say hi"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_embeddings(mock):
    _, j, _ = jreq(mock, "/v1/embeddings",
                   {"model": "text-embedding-3-small", "input": ["a", "b"]})
    assert j["object"] == "list" and len(j["data"]) == 2
    assert j["data"][1]["object"] == "embedding" and j["data"][1]["index"] == 1
    vec = j["data"][0]["embedding"]
    _, j2, _ = jreq(mock, "/v1/embeddings",
                    {"model": "e", "input": "a", "encoding_format": "base64"})
    b = base64.b64decode(j2["data"][0]["embedding"])
    assert list(struct.unpack("<%df" % (len(b) // 4), b)) == vec
    _, j3, _ = jreq(mock, "/v1/embeddings", {"model": "e", "input": "a",
                                             "dimensions": 4})
    assert len(j3["data"][0]["embedding"]) == 4
    r, raw = req(mock, "GET", "/v1/models")
    assert json.loads(raw)["object"] == "list"


# ----------------------------------------------------------------------------
# Failure modes
# ----------------------------------------------------------------------------

def test_reset(mock):
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected,
                        BrokenPipeError)):
        req(mock, "POST", "/v1/chat/completions",
            {"model": "gpt-reset", "messages": user()})


def test_reset_mid_stream(mock):
    c = http.client.HTTPConnection("127.0.0.1", mock, timeout=5)
    c.request("POST", "/v1/chat/completions",
              json.dumps({"model": "gpt-reset-mid", "messages": user(),
                          "stream": True}))
    r = c.getresponse()
    assert r.status == 200
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        r.read()
    c.close()


def test_slow(mock):
    t0 = time.monotonic()
    req(mock, "POST", "/v1/chat/completions",
        {"model": "gpt-slow-chunks2", "messages": user(), "stream": True})
    # 200 ms before + 3 gaps (role, 2 content, finish, DONE => 4 gaps)
    assert time.monotonic() - t0 >= 0.8


def wait_for(port, key, value, timeout=2.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        c = ctl(port, "GET", "/_mock/connections")
        if c[key] >= value:
            return c
        time.sleep(0.05)
    return c


def test_stall_stream_detects_client_close(mock):
    before = ctl(mock, "GET", "/_mock/connections")["aborted_streams"]
    c = http.client.HTTPConnection("127.0.0.1", mock, timeout=0.5)
    c.request("POST", "/v1/messages",
              json.dumps({"model": "claude-stall", "max_tokens": 10,
                          "messages": user(), "stream": True}))
    r = c.getresponse()
    assert r.status == 200
    n = int(r.fp.readline(), 16)  # raw chunk framing of the first event
    assert r.fp.read(n + 2).startswith(b"event: message_start")
    with pytest.raises(socket.timeout):
        r.fp.readline()  # nothing more arrives while stalled
    c.close()
    after = wait_for(mock, "aborted_streams", before + 1)
    assert after["aborted_streams"] >= before + 1


def test_stall_nonstream(mock):
    with pytest.raises(socket.timeout):
        req(mock, "POST", "/v1/chat/completions",
            {"model": "gpt-stall", "messages": user()}, timeout=0.4)


def test_keepalive_and_recording(mock):
    ctl(mock, "POST", "/_mock/reset")
    c = http.client.HTTPConnection("127.0.0.1", mock, timeout=5)
    for i in range(3):
        r, raw = req(mock, "POST", "/v1/chat/completions",
                     {"model": "gpt", "messages": user(str(i))},
                     headers={"Authorization": "Bearer abc"}, conn=c)
        assert r.status == 200
    c.close()
    conns = wait_for(mock, "closed", 1)
    assert conns["opened"] == 1 and conns["reused"] == 2 and conns["active"] == 0
    recs = ctl(mock, "GET", "/_mock/requests")
    assert [x["body"]["messages"][0]["content"] for x in recs] == ["0", "1", "2"]
    assert recs[0]["headers"]["authorization"] == "Bearer abc"
    assert recs[0]["method"] == "POST" and isinstance(recs[0]["time"], float)
    assert json.loads(recs[0]["raw_body"]) == recs[0]["body"]
    ctl(mock, "DELETE", "/_mock/requests")
    assert ctl(mock, "GET", "/_mock/requests") == []


# ----------------------------------------------------------------------------
# Anthropic
# ----------------------------------------------------------------------------

def test_anthropic_nonstream(mock):
    r, j, _ = jreq(mock, "/v1/messages",
                   {"model": "claude-x", "max_tokens": 100,
                    "system": "be brief", "messages": user("yo")},
                   headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
    assert r.status == 200 and r.getheader("request-id")
    assert j["id"].startswith("msg_") and j["type"] == "message"
    assert j["role"] == "assistant" and j["model"] == "claude-x"
    assert j["content"] == [{"type": "text", "text": "Hello from mock! You said: yo"}]
    assert j["stop_reason"] == "end_turn" and j["stop_sequence"] is None
    u = j["usage"]
    for k in ("input_tokens", "cache_creation_input_tokens",
              "cache_read_input_tokens", "output_tokens"):
        assert isinstance(u[k], int)
    _, j, _ = jreq(mock, "/v1/messages", {"model": "c", "max_tokens": 2,
                                          "messages": user()})
    assert j["stop_reason"] == "max_tokens" and j["usage"]["output_tokens"] == 2
    _, j, _ = jreq(mock, "/v1/messages", {"model": "c", "max_tokens": 100,
                                          "stop_sequences": ["mock"],
                                          "messages": user()})
    assert j["stop_reason"] == "stop_sequence" and j["stop_sequence"] == "mock"
    assert j["content"][0]["text"] == "Hello from "


def test_anthropic_stream(mock):
    body = {"model": "claude-x", "max_tokens": 100, "messages": user("yo"),
            "stream": True}
    r, raw = req(mock, "POST", "/v1/messages", body)
    assert r.getheader("Content-Type").startswith("text/event-stream")
    evs = sse(raw)
    names = [e for e, _ in evs]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    for e, d in evs:
        assert json.loads(d)["type"] == e
    start = json.loads(evs[0][1])["message"]
    assert start["content"] == [] and start["usage"]["output_tokens"] == 1
    text = "".join(json.loads(d)["delta"]["text"] for e, d in evs
                   if e == "content_block_delta")
    assert text == "Hello from mock! You said: yo"
    md = json.loads(evs[-2][1])
    assert md["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    body.pop("stream")
    _, j, _ = jreq(mock, "/v1/messages", body)
    assert md["usage"]["output_tokens"] == j["usage"]["output_tokens"]
    assert start["usage"]["input_tokens"] == j["usage"]["input_tokens"]


def test_anthropic_tools(mock):
    tools = [{"name": "lookup", "input_schema": {"type": "object"}}]
    _, j, _ = jreq(mock, "/v1/messages", {"model": "claude-tools", "max_tokens": 50,
                                          "messages": user(), "tools": tools})
    assert j["stop_reason"] == "tool_use"
    blk = j["content"][0]
    assert blk["type"] == "tool_use" and blk["id"].startswith("toolu_")
    assert blk["name"] == "lookup" and isinstance(blk["input"], dict)
    _, raw = req(mock, "POST", "/v1/messages",
                 {"model": "claude-tools", "max_tokens": 50, "messages": user(),
                  "tools": tools, "stream": True})
    evs = [(e, json.loads(d)) for e, d in sse(raw)]
    assert evs[1][1]["content_block"]["type"] == "tool_use"
    pj = "".join(d["delta"]["partial_json"] for e, d in evs if e == "content_block_delta")
    assert json.loads(pj) == blk["input"]
    assert evs[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_anthropic_errors(mock):
    r, j, _ = jreq(mock, "/v1/messages", {"model": "claude", "messages": user()})
    assert r.status == 400
    assert j["type"] == "error" and j["error"] == {
        "type": "invalid_request_error", "message": "max_tokens: Field required"}
    r, j, _ = jreq(mock, "/v1/messages", {"model": "claude-error-529",
                                          "max_tokens": 5, "messages": user()})
    assert r.status == 529 and j["error"]["type"] == "overloaded_error"
    r, j, _ = jreq(mock, "/v1/messages", {"model": "claude-error-429",
                                          "max_tokens": 5, "messages": user()})
    assert r.status == 429 and j["error"]["type"] == "rate_limit_error"
    assert r.getheader("retry-after") == "1"
    _, raw = req(mock, "POST", "/v1/messages",
                 {"model": "claude-stream-error", "max_tokens": 5,
                  "messages": user(), "stream": True})
    evs = sse(raw)
    assert evs[-1][0] == "error"
    assert json.loads(evs[-1][1]) == {"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}


# ----------------------------------------------------------------------------
# Gemini
# ----------------------------------------------------------------------------

GEM = {"contents": [{"role": "user", "parts": [{"text": "hola"}]}]}


def test_gemini_generate(mock):
    r, j, _ = jreq(mock, "/v1beta/models/gemini-2.0-flash:generateContent", GEM)
    assert r.status == 200
    c = j["candidates"][0]
    assert c["content"] == {"parts": [{"text": "Hello from mock! You said: hola"}],
                            "role": "model"}
    assert c["finishReason"] == "STOP" and c["index"] == 0
    u = j["usageMetadata"]
    assert u["totalTokenCount"] == u["promptTokenCount"] + u["candidatesTokenCount"]
    assert j["modelVersion"] == "gemini-2.0-flash" and j["responseId"]


def test_gemini_stream_sse(mock):
    r, raw = req(mock, "POST",
                 "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", GEM)
    assert r.getheader("Content-Type") == "text/event-stream"
    assert raw.endswith(b"\r\n\r\n") and b"\n\n" not in raw.replace(b"\r\n\r\n", b"")
    objs = [json.loads(d) for _, d in sse(raw, b"\r\n\r\n")]
    assert "".join(o["candidates"][0]["content"]["parts"][0]["text"] for o in objs) \
        == "Hello from mock! You said: hola"
    assert objs[-1]["candidates"][0]["finishReason"] == "STOP"
    assert all("finishReason" not in o["candidates"][0] for o in objs[:-1])
    _, j, _ = jreq(mock, "/v1beta/models/gemini-2.0-flash:generateContent", GEM)
    assert objs[-1]["usageMetadata"] == j["usageMetadata"]


def test_gemini_stream_json_array(mock):
    _, raw = req(mock, "POST",
                 "/v1beta/models/gemini-x:streamGenerateContent", GEM)
    arr = json.loads(raw)
    assert isinstance(arr, list) and arr[-1]["candidates"][0]["finishReason"] == "STOP"


def test_gemini_tools_errors_embeddings(mock):
    body = dict(GEM, tools=[{"functionDeclarations": [{"name": "lookup"}]}])
    _, j, _ = jreq(mock, "/v1beta/models/gemini-tools:generateContent", body)
    fc = j["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert fc["name"] == "lookup" and isinstance(fc["args"], dict)
    r, j, _ = jreq(mock, "/v1beta/models/gemini-error-429:generateContent", GEM)
    assert r.status == 429
    assert j["error"]["code"] == 429 and j["error"]["status"] == "RESOURCE_EXHAUSTED"
    r, j, _ = jreq(mock, "/v1beta/models/gemini-error-503:streamGenerateContent?alt=sse", GEM)
    assert r.status == 503 and j["error"]["status"] == "UNAVAILABLE"
    _, j, _ = jreq(mock, "/v1beta/models/text-embedding-004:embedContent",
                   {"content": {"parts": [{"text": "a"}]}})
    v = j["embedding"]["values"]
    _, j, _ = jreq(mock, "/v1beta/models/text-embedding-004:batchEmbedContents",
                   {"requests": [{"model": "models/text-embedding-004",
                                  "content": {"parts": [{"text": t}]}}
                                 for t in ("a", "b")]})
    assert len(j["embeddings"]) == 2 and j["embeddings"][0]["values"] == v
    _, j, _ = jreq(mock, "/v1beta/models/gemini-2.0-flash:generateContent",
                   dict(GEM, generationConfig={"maxOutputTokens": 2}))
    assert j["candidates"][0]["finishReason"] == "MAX_TOKENS"


# ----------------------------------------------------------------------------
# Keys and TLS
# ----------------------------------------------------------------------------

KEY = "sk-test-1234567890"


def test_require_key(keyed):
    p = "/v1/chat/completions"
    b = {"model": "gpt", "messages": user()}
    r, j, _ = jreq(keyed, p, b)
    assert r.status == 401 and j["error"]["code"] == "invalid_api_key"
    r, j, _ = jreq(keyed, p, b, headers={"Authorization": "Bearer nope"})
    assert r.status == 401 and j["error"]["type"] == "invalid_request_error"
    r, _, _ = jreq(keyed, p, b, headers={"Authorization": "Bearer " + KEY})
    assert r.status == 200
    ab = {"model": "c", "max_tokens": 5, "messages": user()}
    r, j, _ = jreq(keyed, "/v1/messages", ab, headers={"x-api-key": "bad"})
    assert r.status == 401 and j["error"]["type"] == "authentication_error"
    r, _, _ = jreq(keyed, "/v1/messages", ab, headers={"x-api-key": KEY})
    assert r.status == 200
    gp = "/v1beta/models/gemini-2.0-flash:generateContent"
    r, j, _ = jreq(keyed, gp, GEM, headers={"x-goog-api-key": "bad"})
    assert r.status == 400 and j["error"]["status"] == "INVALID_ARGUMENT"
    r, j, _ = jreq(keyed, gp, GEM)
    assert r.status == 403
    r, _, _ = jreq(keyed, gp, GEM, headers={"x-goog-api-key": KEY})
    assert r.status == 200


def test_tls():
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["sh", os.path.join(HERE, "make_test_ca.sh"), d], check=True)
        for f in ("ca.crt", "ca.key", "server.crt", "server.key"):
            assert os.path.exists(os.path.join(d, f))
        p, port = start_mock("--tls-cert", os.path.join(d, "server.crt"),
                             "--tls-key", os.path.join(d, "server.key"))
        try:
            ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
            for host in ("localhost", "127.0.0.1"):
                c = http.client.HTTPSConnection(host, port, context=ctx, timeout=5)
                c.request("POST", "/v1/chat/completions",
                          json.dumps({"model": "gpt", "messages": user()}))
                r = c.getresponse()
                assert r.status == 200 and json.loads(r.read())["object"] == "chat.completion"
                c.close()
            # stream abort over TLS is detected too
            c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=0.5)
            c.request("POST", "/v1/chat/completions",
                      json.dumps({"model": "gpt-stall", "messages": user(),
                                  "stream": True}))
            r = c.getresponse()
            r.fp.readline()
            c.close()
            r.close()
            cc = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=5)
            end = time.monotonic() + 2
            while time.monotonic() < end:
                cc.request("GET", "/_mock/connections")
                st = json.loads(cc.getresponse().read())
                if st["aborted_streams"] >= 1:
                    break
                time.sleep(0.05)
            cc.close()
            assert st["aborted_streams"] >= 1
        finally:
            stop_mock(p)
