"""The in-process engine behind the gateway: `ai_provider NAME engine ...`.

The real nginx with the built module serves stories260K (a tiny llama model
trained on TinyStories) from ../shared/models; greedy output is checked
against the engine's own CLI on the same prompt.  AIGW_TEST_MAIN_CONF adds
main-context lines (e.g. "worker_rlimit_core 500m; working_directory /tmp;"
to get a worker's core dump)."""

import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import Gateway, ROOT, free_port, make_workdir

MODELS = os.environ.get("AIGW_MODELS_DIR",
                        os.path.join(ROOT, "..", "shared", "models"))
MODEL = os.path.join(MODELS, "stories260K.gguf")
CLI = os.path.join(ROOT, "module", "engine", "build", "aigw-engine")

pytestmark = pytest.mark.skipif(
    not os.path.exists(MODEL),
    reason="test model missing: %s (stories260K from ../shared/models)"
           % MODEL)

ONCE = "Once upon a time, there was a little girl named Lily."

HTTP_CONF = """
    ai_provider local  engine model=%(m)s threads=1 max_batch=8;
    ai_provider plainp engine model=%(m)s threads=1 max_batch=8 ctx=512
                       template=plain;
    ai_model tiny       local;
    ai_model tiny-plain plainp;
"""

SERVER_CONF = "location /v1/ { ai_gateway; }"


def engine_conf(extra=""):
    return HTTP_CONF % {"m": MODEL} + extra


@pytest.fixture(scope="module")
def gw():
    g = Gateway(engine_conf(), SERVER_CONF,
                main_conf=os.environ.get("AIGW_TEST_MAIN_CONF", "")).start()
    yield g
    g.stop()


def cli(prompt, n):
    """The engine's CLI, greedy: the prompt, then the continuation."""
    out = subprocess.run([CLI, "run", "-m", MODEL, "-p", prompt, "-n",
                          str(n), "-t", "0"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("\n")
    assert out.stdout.startswith(prompt)
    return out.stdout[len(prompt):-1]


def chat(model, content, **kw):
    body = {"model": model, "messages": [{"role": "user",
                                          "content": content}]}
    body.update(kw)
    return body


def stream_text(resp):
    """Checks an OpenAI chat stream and returns (text, finish, usage)."""
    assert resp.status == 200, resp
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in resp.headers
    events = resp.events()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    text, finish, usage = "", None, None
    for i, c in enumerate(chunks):
        assert c["object"] == "chat.completion.chunk"
        assert isinstance(c["created"], int)
        if c.get("usage"):
            assert c["choices"] == []
            usage = c["usage"]
            continue
        ch = c["choices"][0]
        assert ch["index"] == 0
        if i == 0:
            assert ch["delta"]["role"] == "assistant"
        assert finish is None, "a chunk after the finish chunk"
        text += ch["delta"].get("content") or ""
        finish = ch["finish_reason"]
    return text, finish, usage


# greedy output is the engine's own

def test_greedy_from_bos(gw):
    r = gw.chat(chat("tiny-plain", "", temperature=0, max_tokens=30))
    assert r.status == 200, r
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.data)
    j = r.json()
    assert j["object"] == "chat.completion"
    assert j["id"].startswith("chatcmpl-")
    assert j["model"] == "tiny-plain"
    msg = j["choices"][0]["message"]
    assert msg["role"] == "assistant"
    assert msg["content"].startswith(ONCE)
    assert msg["content"] == cli("", 30)
    assert j["choices"][0]["finish_reason"] == "length"
    assert j["usage"] == {"prompt_tokens": 1, "completion_tokens": 30,
                          "total_tokens": 31}


def test_greedy_matches_cli(gw):
    r = gw.chat(chat("tiny-plain", "Lily and Tom", temperature=0,
                     max_tokens=40))
    assert r.status == 200, r
    assert r.json()["choices"][0]["message"]["content"] == \
        cli("Lily and Tom", 40)


def test_completions_prompt_as_is(gw):
    r = gw.request("POST", "/v1/completions",
                   {"model": "tiny-plain", "prompt": "Once upon a time",
                    "temperature": 0, "max_tokens": 25})
    assert r.status == 200, r
    j = r.json()
    assert j["object"] == "text_completion"
    assert j["id"].startswith("cmpl-")
    assert j["choices"][0]["text"] == cli("Once upon a time", 25)
    assert j["usage"]["completion_tokens"] == 25


def test_default_template_answers(gw):
    r = gw.chat({"model": "tiny", "temperature": 0, "max_tokens": 16,
                 "messages": [{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "Hello"}]})
    assert r.status == 200, r
    j = r.json()
    assert j["choices"][0]["finish_reason"] in ("stop", "length")
    # "System: Be brief.\n\nUser: Hello\n\nAssistant:" and BOS
    assert j["usage"]["prompt_tokens"] > 8


# streaming

def test_stream_equals_whole(gw):
    whole = gw.chat(chat("tiny-plain", "", temperature=0, max_tokens=60))
    text = whole.json()["choices"][0]["message"]["content"]

    r = gw.chat(chat("tiny-plain", "", temperature=0, max_tokens=60,
                     stream=True, stream_options={"include_usage": True}))
    s, finish, usage = stream_text(r)
    assert s == text
    assert finish == "length"
    assert usage == {"prompt_tokens": 1, "completion_tokens": 60,
                     "total_tokens": 61}


def test_stream_without_usage(gw):
    r = gw.chat(chat("tiny-plain", "", temperature=0, max_tokens=5,
                     stream=True))
    s, finish, usage = stream_text(r)
    assert usage is None
    assert finish == "length"
    assert ONCE.startswith(s)


def test_completions_stream(gw):
    r = gw.request("POST", "/v1/completions",
                   {"model": "tiny-plain", "prompt": "Once upon a time",
                    "temperature": 0, "max_tokens": 25, "stream": True})
    assert r.status == 200, r
    events = r.events()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == \
        cli("Once upon a time", 25)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


# sampling parameters

def test_max_tokens_length(gw):
    for n in (1, 7, 33):
        r = gw.chat(chat("tiny-plain", "", temperature=0,
                         max_completion_tokens=n))
        j = r.json()
        assert j["choices"][0]["finish_reason"] == "length"
        assert j["usage"]["completion_tokens"] == n


def test_stop_sequences(gw):
    r = gw.chat(chat("tiny-plain", "", temperature=0, max_tokens=60,
                     stop="Lily"))
    j = r.json()
    assert j["choices"][0]["message"]["content"] == \
        "Once upon a time, there was a little girl named "
    assert j["choices"][0]["finish_reason"] == "stop"

    r = gw.chat(chat("tiny-plain", "", temperature=0, max_tokens=60,
                     stop=["zzz", ", there"], stream=True))
    s, finish, _ = stream_text(r)
    assert s == "Once upon a time"
    assert finish == "stop"


def test_seed_reproducible(gw):
    def run(seed):
        r = gw.chat(chat("tiny-plain", "", temperature=0.8, max_tokens=40,
                         seed=seed, top_p=0.95, top_k=40))
        assert r.status == 200, r
        return r.json()["choices"][0]["message"]["content"]

    a = run(42)
    assert run(42) == a
    assert len({a, run(7), run(1234), run(99)}) > 1


def test_penalties_accepted(gw):
    r = gw.chat(chat("tiny-plain", "", temperature=0, max_tokens=30,
                     presence_penalty=1.5, frequency_penalty=1.0))
    assert r.status == 200, r
    assert r.json()["usage"]["completion_tokens"] <= 30


@pytest.mark.parametrize("extra,param", [
    ({"tools": [{"type": "function",
                 "function": {"name": "f", "parameters": {}}}]}, "tools"),
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"temperature": 3}, "temperature"),
    ({"stop": [1, 2]}, "stop"),
    ({"max_tokens": 0}, "max_tokens"),
])
def test_unsupported_or_invalid(gw, extra, param):
    body = chat("tiny-plain", "hi")
    body.update(extra)
    r = gw.chat(body)
    assert r.status == 400, r
    err = r.json()["error"]
    assert err["param"] == param
    assert err["type"] == "invalid_request_error"


def test_context_too_long(gw):
    r = gw.chat(chat("tiny", "Lily and Tom played in the park. " * 40))
    assert r.status == 400, r
    assert r.json()["error"]["code"] == "context_length_exceeded"


def test_embeddings_refused(gw):
    r = gw.request("POST", "/v1/embeddings",
                   {"model": "tiny", "input": "hello"})
    assert r.status == 400, r
    assert "engine" in r.json()["error"]["message"]


# continuous batching

PROMPTS = ["", "Lily", "Tom", "The cat", "Once upon a time", "The sun",
           "A little bird", "Ben and Mia"]


def test_concurrent_streams_equal_sequential(gw):
    seq = {}
    for p in PROMPTS:
        r = gw.chat(chat("tiny-plain", p, temperature=0, max_tokens=80))
        seq[p] = r.json()["choices"][0]["message"]["content"]

    got, errors = {}, []

    def one(p):
        try:
            r = gw.chat(chat("tiny-plain", p, temperature=0, max_tokens=80,
                             stream=True), timeout=60)
            got[p] = stream_text(r)[0]
        except Exception as e:     # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(p,)) for p in PROMPTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert got == seq


# clients that go away, or read slowly

def raw_stream_request(port, body):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n"
              b"\r\n" % len(data) + data)
    return s


def test_client_abort_mid_stream(gw):
    for _ in range(4):
        s = raw_stream_request(gw.port, chat("tiny-plain", "", max_tokens=500,
                                             temperature=1.0, stream=True))
        got = s.recv(4096)
        assert b"200 OK" in got
        s.close()

    time.sleep(0.3)
    r = gw.chat(chat("tiny-plain", "", temperature=0, max_tokens=12))
    assert r.status == 200, r
    assert ONCE.startswith(r.json()["choices"][0]["message"]["content"])
    log = open(gw.error_log, errors="replace").read()
    assert "exited on signal" not in log
    assert "[alert]" not in log


def test_slow_reader_gets_everything():
    """A small send buffer and a client that does not read: the stream
    stalls (the engine pauses the sequence) and resumes intact."""
    port2 = free_port()
    extra = """
    ai_provider slow engine model=%s threads=1 max_batch=4 ctx=512
                     template=plain max_unread=1k;
    ai_model tiny-slow slow;
    server {
        listen 127.0.0.1:%d sndbuf=2k;
        location /v1/ { ai_gateway; }
    }
""" % (MODEL, port2)
    g = Gateway(engine_conf(extra), SERVER_CONF,
                main_conf=os.environ.get("AIGW_TEST_MAIN_CONF", "")).start()
    try:
        whole = g.chat(chat("tiny-slow", "", temperature=0, max_tokens=400))
        text = whole.json()["choices"][0]["message"]["content"]

        s = raw_stream_request(port2, chat("tiny-slow", "", temperature=0,
                                           max_tokens=400, stream=True))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        time.sleep(1.5)
        data = b""
        s.settimeout(20)
        while not data.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            time.sleep(0.01)
        s.close()
        body = data.split(b"\r\n\r\n", 1)[1]
        # undo chunked transfer coding
        out, rest = b"", body
        while rest:
            size, rest = rest.split(b"\r\n", 1)
            n = int(size, 16)
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        events = [l[6:] for l in out.decode().split("\n")
                  if l.startswith("data: ")]
        assert events[-1] == "[DONE]"
        streamed = "".join(json.loads(e)["choices"][0]["delta"].get(
            "content") or "" for e in events[:-1])
        assert streamed == text
    finally:
        g.stop()


# the Anthropic-compatible endpoint

def test_messages_whole(gw):
    r = gw.request("POST", "/v1/messages",
                   {"model": "tiny-plain", "max_tokens": 20,
                    "temperature": 0,
                    "messages": [{"role": "user", "content": ""}]})
    assert r.status == 200, r
    j = r.json()
    assert j["type"] == "message" and j["role"] == "assistant"
    assert j["content"][0]["type"] == "text"
    assert j["content"][0]["text"] == cli("", 20)
    assert j["stop_reason"] == "max_tokens"
    assert j["usage"]["output_tokens"] == 20


def test_messages_stream(gw):
    r = gw.request("POST", "/v1/messages",
                   {"model": "tiny-plain", "max_tokens": 20,
                    "temperature": 0, "stream": True,
                    "messages": [{"role": "user", "content": ""}]})
    assert r.status == 200, r
    text = r.data.decode()
    names = [l[7:] for l in text.split("\n") if l.startswith("event: ")]
    assert names[0] == "message_start"
    assert names[-1] == "message_stop"
    deltas = [json.loads(e) for e in r.events()]
    s = "".join(d["delta"]["text"] for d in deltas
                if d["type"] == "content_block_delta")
    assert s == cli("", 20)
    md = [d for d in deltas if d["type"] == "message_delta"][0]
    assert md["delta"]["stop_reason"] == "max_tokens"
    assert md["usage"]["output_tokens"] == 20


def test_messages_tools_refused(gw):
    r = gw.request("POST", "/v1/messages",
                   {"model": "tiny-plain", "max_tokens": 20,
                    "tools": [{"name": "f", "input_schema":
                               {"type": "object"}}],
                    "messages": [{"role": "user", "content": "hi"}]})
    assert r.status == 400, r
    assert r.json()["type"] == "error"


# several workers: each has its own engine, the weights are shared

def test_two_workers():
    g = Gateway(engine_conf(), SERVER_CONF, workers=2).start()
    try:
        want = cli("", 30)
        got, errors = [], []

        def one():
            try:
                r = g.chat(chat("tiny-plain", "", temperature=0,
                                max_tokens=30, stream=True), timeout=60)
                got.append(stream_text(r)[0])
            except Exception as e:     # reported below
                errors.append(repr(e))

        threads = [threading.Thread(target=one) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert got == [want] * 12
        log = open(g.error_log).read()
        assert log.count('ai_provider "plainp": engine started') == 2
    finally:
        g.stop()


def test_kv_f16():
    """kv=f16: streamed and whole answers agree, usage is exact, the same
    prompts together give what each gives alone, and the log says f16."""
    g = Gateway("""
    ai_provider half engine model=%s threads=2 max_batch=8 ctx=256 kv=f16
                     template=plain;
    ai_model tiny-half half;
""" % MODEL, SERVER_CONF).start()
    try:
        whole = g.chat(chat("tiny-half", "", temperature=0, max_tokens=80))
        assert whole.status == 200
        text = whole.json()["choices"][0]["message"]["content"]
        assert text.startswith("Once upon a time"), text
        r = g.chat(chat("tiny-half", "", temperature=0, max_tokens=80,
                        stream=True,
                        stream_options={"include_usage": True}))
        s, finish, usage = stream_text(r)
        assert s == text and finish == "length"
        assert usage["completion_tokens"] == 80

        prompts = ["The cat", "Lily", "One day, a big dog", "She was very"]
        alone = [g.chat(chat("tiny-half", p, temperature=0, max_tokens=40))
                 .json()["choices"][0]["message"]["content"] for p in prompts]
        got = [None] * len(prompts)

        def one(i):
            got[i] = stream_text(g.chat(chat(
                "tiny-half", prompts[i], temperature=0, max_tokens=40,
                stream=True), timeout=60))[0]

        threads = [threading.Thread(target=one, args=(i,))
                   for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert got == alone
        assert "batch 8, ctx 256, kv f16)" in open(g.error_log).read()
    finally:
        g.stop()


# configuration errors are caught by nginx -t

def config_error(http_conf):
    g = Gateway(http_conf, SERVER_CONF)
    try:
        r = g.test_config()
        assert r.returncode != 0, r.stderr
        return r.stderr
    finally:
        g.stop_dir()


def test_missing_model_file():
    err = config_error("ai_provider local engine "
                       "model=/nonexistent/model.gguf;")
    assert 'ai_provider "local": cannot load model' in err
    assert "/nonexistent/model.gguf" in err


def test_corrupt_model_file():
    d = make_workdir("aigw-model-")
    try:
        bad = os.path.join(d, "truncated.gguf")
        with open(MODEL, "rb") as f:
            data = f.read()
        with open(bad, "wb") as f:
            f.write(data[:len(data) // 2])
        err = config_error("ai_provider local engine model=%s;" % bad)
        assert 'ai_provider "local": cannot load model' in err
        assert "gguf" in err and "truncated" in err

        with open(bad, "wb") as f:
            f.write(b"GGUF" + b"\xff" * 60)
        err = config_error("ai_provider local engine model=%s;" % bad)
        assert "cannot load model" in err
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_cuda_refused_or_fallback():
    err = config_error("ai_provider local engine model=%s device=cuda;"
                       % MODEL)
    assert ("device=cuda: the CUDA backend is not available in this build"
            in err)

    g = Gateway("ai_provider local engine model=%s device=cuda "
                "fallback=cpu;" % MODEL, SERVER_CONF)
    try:
        r = g.test_config()
        assert r.returncode == 0, r.stderr
        assert "running on the CPU" in r.stderr
    finally:
        g.stop_dir()


@pytest.mark.parametrize("params,needle", [
    ("threads=0", 'invalid threads "0"'),
    ("max_batch=x", 'invalid max_batch "x"'),
    ("template=jinja", 'invalid template "jinja"'),
    ("kv=f8", 'invalid kv "f8"'),
    ("max_unread=12", 'invalid max_unread "12"'),
    ("device=tpu", 'invalid device "tpu"'),
    ("colour=blue", 'unknown engine parameter "colour"'),
    ("threads", 'invalid engine parameter "threads"'),
])
def test_bad_parameters(params, needle):
    err = config_error("ai_provider local engine model=%s %s;"
                       % (MODEL, params))
    assert needle in err
    assert 'ai_provider "local"' in err


def test_model_required():
    err = config_error("ai_provider local engine threads=1;")
    assert "engine needs model=" in err


def test_engine_metrics(mock):
    g = Gateway("""
    ai_provider local engine model=%s threads=1 max_batch=4;
    ai_model tiny local;
    ai_metrics_zone zone=aigw_metrics:1m;
""" % MODEL, """
        location /v1/ { ai_gateway; }
        location = /metrics { ai_metrics; }
""").start()
    try:
        r = g.chat({"model": "tiny", "max_tokens": 8, "temperature": 0,
                    "messages": [{"role": "user", "content": "hi"}]})
        assert r.status == 200
        m = g.request("GET", "/metrics").data.decode()
        assert "# TYPE aigw_engine_generated_tokens_total counter" in m
        line = [l for l in m.split("\n")
                if l.startswith("aigw_engine_generated_tokens_total{")][0]
        assert 'provider="local"' in line and int(line.split()[-1]) >= 8
        cap = [l for l in m.split("\n")
               if l.startswith("aigw_engine_kv_capacity_tokens{")][0]
        assert int(cap.split()[-1]) > 0
    finally:
        g.stop()
