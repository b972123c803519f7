"""The response cache (issue 5): hits, policy, stream/non-stream
interchange, coalescing, tenants."""

import json
import threading
import time

import pytest

from conftest import PROVIDER_KEY, Gateway


@pytest.fixture(scope="module")
def cgw(mock):
    g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%d/v1 key_env=AIGW_TEST_KEY;
    ai_model gpt-4o  mock:gpt-4o-mock;
    ai_model slow    mock:gpt-4o-mock-slow-chunks3;
    ai_model short   mock:gpt-4o-mock cache_ttl=1s;
    ai_model nocache mock:gpt-4o-mock cache=off;
    ai_model embed   mock:text-embedding-3-small;
    ai_model claude-ish mock:gpt-4o-mock-chunks7;
    ai_cache zone=aigw_cache:1m ttl=10m;
""" % mock.port, "location /v1/ { ai_gateway; }",
        env={"AIGW_TEST_KEY": PROVIDER_KEY}, workers=2).start()
    yield g
    g.stop()


def chat(text, model="gpt-4o", **kw):
    b = {"model": model, "temperature": 0,
         "messages": [{"role": "user", "content": text}]}
    b.update(kw)
    return b


def content(r):
    return r.json()["choices"][0]["message"]["content"]


def stream_text(r):
    ev = r.events()
    assert ev[-1] == "[DONE]"
    return "".join((json.loads(e)["choices"][0]["delta"].get("content") or "")
                   for e in ev[:-1] if json.loads(e)["choices"])


def test_hit_after_miss(cgw, mock):
    n = len(mock.requests())
    r1 = cgw.chat(chat("cache me 1"))
    assert r1.status == 200 and r1.headers["x-aigw-cache"] == "MISS"
    r2 = cgw.chat(chat("cache me 1"))
    assert r2.status == 200 and r2.headers["x-aigw-cache"] == "HIT"
    assert len(mock.requests()) == n + 1
    assert content(r2) == content(r1)
    u = r2.json()["usage"]
    assert u["prompt_tokens_details"]["cached_tokens"] == u["prompt_tokens"]


def test_canonical_key(cgw, mock):
    cgw.request("POST", "/v1/chat/completions",
                '{"model":"gpt-4o","temperature":0,"messages":'
                '[{"role":"user","content":"canon"}]}')
    n = len(mock.requests())
    r = cgw.request("POST", "/v1/chat/completions",
                    '{"messages": [{"content":"canon", "role":"user"}],'
                    ' "temperature": 0.0, "model": "gpt-4o", "user": "x",'
                    ' "stream": false}')
    assert r.headers["x-aigw-cache"] == "HIT"
    assert len(mock.requests()) == n


def test_shared_system_prompt(cgw, mock):
    """Requests that differ only in their last message (the digest of the
    shared prefix is resumed): each gets its own entry, and a prompt one
    byte apart in the middle is another request."""
    system = "".join("rule %d: answer briefly. " % i for i in range(120))

    def body(sys_text, q):
        return {"model": "gpt-4o", "temperature": 0,
                "messages": [{"role": "system", "content": sys_text},
                             {"role": "user", "content": q}]}

    n = len(mock.requests())
    for i in range(12):
        r = cgw.chat(body(system, "shared prefix question %d" % i))
        assert r.headers["x-aigw-cache"] == "MISS"
        assert content(r).endswith("shared prefix question %d" % i)
    assert len(mock.requests()) == n + 12
    for i in reversed(range(12)):
        r = cgw.chat(body(system, "shared prefix question %d" % i))
        assert r.headers["x-aigw-cache"] == "HIT"
        assert content(r).endswith("shared prefix question %d" % i)
    assert len(mock.requests()) == n + 12
    other = system[:1000] + "X" + system[1001:]
    r = cgw.chat(body(other, "shared prefix question 3"))
    assert r.headers["x-aigw-cache"] == "MISS"
    assert len(mock.requests()) == n + 13


def test_non_deterministic_bypassed(cgw):
    b = chat("random please")
    del b["temperature"]
    assert cgw.chat(b).headers["x-aigw-cache"] == "BYPASS"
    assert cgw.chat(b).headers["x-aigw-cache"] == "BYPASS"
    b["seed"] = 7
    assert cgw.chat(b).headers["x-aigw-cache"] == "MISS"
    assert cgw.chat(b).headers["x-aigw-cache"] == "HIT"
    b2 = chat("forced")
    del b2["temperature"]
    h = {"x-aigw-cache-force": "1"}
    assert cgw.chat(b2, headers=h).headers["x-aigw-cache"] == "MISS"
    assert cgw.chat(b2, headers=h).headers["x-aigw-cache"] == "HIT"


def test_cache_control(cgw, mock):
    cgw.chat(chat("cc"))
    r = cgw.chat(chat("cc"), headers={"Cache-Control": "no-store"})
    assert r.headers["x-aigw-cache"] == "BYPASS"
    n = len(mock.requests())
    r = cgw.chat(chat("cc"), headers={"Cache-Control": "no-cache"})
    assert r.headers["x-aigw-cache"] == "REFRESH"
    assert len(mock.requests()) == n + 1
    assert cgw.chat(chat("cc")).headers["x-aigw-cache"] == "HIT"


def test_model_off_and_ttl(cgw):
    assert cgw.chat(chat("x", "nocache")).headers.get("x-aigw-cache") is None
    assert cgw.chat(chat("ttl", "short")).headers["x-aigw-cache"] == "MISS"
    assert cgw.chat(chat("ttl", "short")).headers["x-aigw-cache"] == "HIT"
    time.sleep(2.1)
    assert cgw.chat(chat("ttl", "short")).headers["x-aigw-cache"] == "MISS"


def test_stream_miss_then_both_shapes_hit(cgw, mock):
    r1 = cgw.chat(chat("streamed once", "claude-ish", stream=True))
    assert r1.headers["x-aigw-cache"] == "MISS"
    text = stream_text(r1)
    n = len(mock.requests())
    r2 = cgw.chat(chat("streamed once", "claude-ish", stream=True,
                       stream_options={"include_usage": False}))
    assert r2.headers["x-aigw-cache"] == "HIT"
    assert r2.headers["content-type"].startswith("text/event-stream")
    assert stream_text(r2) == text
    r3 = cgw.chat(chat("streamed once", "claude-ish"))
    assert r3.headers["x-aigw-cache"] == "HIT"
    assert content(r3) == text
    assert len(mock.requests()) == n


def test_stream_hits_rendered(cgw, mock):
    """The first streamed hit renders the events; later ones swap the
    model in and add or leave out the usage: the same bytes as the first
    (replayed the slow way), with and without include_usage."""
    cgw.chat(chat("rendered stream", "claude-ish"))
    n = len(mock.requests())
    for usage in (True, False, True, False, True):
        seen = {}
        for _ in range(3):
            r = cgw.chat(chat("rendered stream", "claude-ish", stream=True,
                              stream_options={"include_usage": usage}))
            assert r.status == 200 and r.headers["x-aigw-cache"] == "HIT"
            seen.setdefault(r.data, 0)
            seen[r.data] += 1
        assert len(seen) == 1
        ev = r.events()
        assert ev[-1] == "[DONE]"
        chunks = [json.loads(e) for e in ev[:-1]]
        assert all(c["model"] == "claude-ish" for c in chunks)
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        if usage:
            assert chunks[-1]["choices"] == []
            u = chunks[-1]["usage"]
            assert u["prompt_tokens_details"]["cached_tokens"] == \
                u["prompt_tokens"]
            assert all(c["usage"] is None for c in chunks[:-1])
        else:
            assert all("usage" not in c for c in chunks)
        assert stream_text(r) == content(cgw.chat(chat("rendered stream",
                                                        "claude-ish")))
    assert len(mock.requests()) == n


def test_non_stream_miss_then_stream_hit(cgw):
    r1 = cgw.chat(chat("whole first"))
    r2 = cgw.chat(chat("whole first", stream=True))
    assert r2.headers["x-aigw-cache"] == "HIT"
    chunks = [json.loads(e) for e in r2.events()[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert stream_text(r2) == content(r1)


def test_errors_not_cached(cgw, mock):
    b = chat("err", "gpt-4o")
    b["model"] = "mock/gpt-4o-error-500"
    assert cgw.chat(b).status == 500
    assert cgw.chat(b).status == 500
    assert mock.last()["body"]["model"] == "gpt-4o-error-500"


def test_truncated_stream_not_cached(cgw, mock):
    b = chat("cut", "mock/gpt-4o-reset-mid", stream=True)
    try:
        cgw.chat(b)
    except Exception:
        pass
    n = len(mock.requests())
    try:
        cgw.chat(b)
    except Exception:
        pass
    assert len(mock.requests()) == n + 1


def test_embeddings_cached(cgw, mock):
    b = {"model": "embed", "input": ["a", "b"]}
    r1 = cgw.request("POST", "/v1/embeddings", b)
    r2 = cgw.request("POST", "/v1/embeddings", b)
    assert r2.headers["x-aigw-cache"] == "HIT"
    assert r2.json()["data"] == r1.json()["data"]


def test_coalescing(cgw, mock):
    n = len(mock.requests())
    out = []
    lock = threading.Lock()

    def one():
        r = cgw.chat(chat("coalesce me", "slow"))
        with lock:
            out.append((r.status, content(r), r.headers["x-aigw-cache"]))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(mock.requests()) == n + 1
    assert [s for s, _, _ in out] == [200] * 8
    assert len({c for _, c, _ in out}) == 1
    assert sorted(h for _, _, h in out) == ["HIT"] * 7 + ["MISS"]


def test_waiter_that_leaves(cgw, mock):
    """A coalesced request whose client disconnects ends at once (499),
    before the leader's answer; the leader is served and stored."""
    import socket

    def statuses():
        with open(cgw.access_log) as f:
            return [ln.split('"')[2].split()[0] for ln in f
                    if "POST /v1/chat/completions" in ln]

    n0 = len(statuses())
    b = chat("waiter leaves", "mock/gpt-4o-delay1500")
    leader = []
    t = threading.Thread(target=lambda: leader.append(cgw.chat(b)))
    t.start()
    time.sleep(0.3)
    raw = json.dumps(b).encode()
    s = socket.create_connection(("127.0.0.1", cgw.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n"
              b"\r\n" % len(raw) + raw)
    time.sleep(0.3)
    s.close()
    t.join()
    assert leader[0].status == 200
    assert leader[0].headers["x-aigw-cache"] == "MISS"
    assert cgw.chat(b).headers["x-aigw-cache"] == "HIT"

    # the waiter's 499 was logged before the leader's 200 (then the hit);
    # a line is written just after its answer is sent
    deadline = time.monotonic() + 5
    while len(statuses()) < n0 + 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert statuses()[n0:] == ["499", "200", "200"]


def test_redis_tier_shared_by_two_gateways(mock):
    from conftest import Redis
    redis = Redis()
    conf = """
    ai_provider mock url=http://127.0.0.1:%d/v1 key_env=AIGW_TEST_KEY;
    ai_model gpt-4o  mock:gpt-4o-mock;
    ai_cache zone=aigw_cache:1m ttl=10m store=redis://127.0.0.1:%d;
""" % (mock.port, redis.port)
    a = Gateway(conf, "location /v1/ { ai_gateway; }",
                env={"AIGW_TEST_KEY": PROVIDER_KEY}).start()
    b = Gateway(conf, "location /v1/ { ai_gateway; }",
                env={"AIGW_TEST_KEY": PROVIDER_KEY}).start()
    try:
        time.sleep(0.3)
        r1 = a.chat(chat("shared tier"))
        assert r1.headers["x-aigw-cache"] == "MISS"
        time.sleep(0.2)
        n = len(mock.requests())
        r2 = b.chat(chat("shared tier"))
        assert r2.headers["x-aigw-cache"] == "HIT"
        assert content(r2) == content(r1)
        assert len(mock.requests()) == n
        # redis down: the cache is bypassed to the provider, requests served
        redis.kill()
        r3 = b.chat(chat("shared tier, redis gone"))
        assert r3.status == 200 and r3.headers["x-aigw-cache"] == "MISS"
    finally:
        a.stop()
        b.stop()
        redis.stop()


def test_tenants_isolated_for_identical_bytes(mock):
    """Entries are per tenant even for byte-identical bodies (the worker
    remembers keys by body bytes: the tenant must be part of that), and a
    model with cache=shared shares them."""
    import hashlib
    import os
    from conftest import make_workdir
    keys = {"a": "aigw-cache-team-a-000000000000000000001",
            "b": "aigw-cache-team-b-000000000000000000002"}
    t = {"tenants": {
        "team-a": {"keys": [{"id": "a", "sha256":
                             hashlib.sha256(keys["a"].encode()).hexdigest()}]},
        "team-b": {"keys": [{"id": "b", "sha256":
                             hashlib.sha256(keys["b"].encode()).hexdigest()}]},
    }}
    d = make_workdir("aigw-cache-tenants-")
    path = os.path.join(d, "tenants.json")
    with open(path, "w") as f:
        json.dump(t, f)
    g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%d/v1 key_env=AIGW_TEST_KEY;
    ai_model gpt-4o  mock:gpt-4o-mock;
    ai_model shared  mock:gpt-4o-mock cache=shared;
    ai_tenants %s;
    ai_cache zone=aigw_cache:1m ttl=10m;
""" % (mock.port, path), "location /v1/ { ai_gateway; }",
        env={"AIGW_TEST_KEY": PROVIDER_KEY}, workers=1).start()
    try:
        def ask(who, model="gpt-4o"):
            body = ('{"model":"%s","temperature":0,"messages":[{"role":'
                    '"user","content":"same bytes for everyone"}]}' % model)
            return g.request("POST", "/v1/chat/completions", body,
                             {"Authorization": "Bearer " + keys[who],
                              "Content-Type": "application/json"})
        assert ask("a").headers["x-aigw-cache"] == "MISS"
        assert ask("a").headers["x-aigw-cache"] == "HIT"
        n = len(mock.requests())
        assert ask("b").headers["x-aigw-cache"] == "MISS"
        assert len(mock.requests()) == n + 1
        assert ask("b").headers["x-aigw-cache"] == "HIT"
        assert ask("a").headers["x-aigw-cache"] == "HIT"
        assert ask("a", "shared").headers["x-aigw-cache"] == "MISS"
        assert ask("b", "shared").headers["x-aigw-cache"] == "HIT"
    finally:
        g.stop()


def test_same_bytes_force_and_not(cgw):
    """One body, asked with and without the force header, many times: the
    worker's memory of keys keeps the two apart."""
    b = chat("forced or not")
    b["temperature"] = 1
    h = {"x-aigw-cache-force": "1"}
    for i in range(3):
        assert cgw.chat(b).headers["x-aigw-cache"] == "BYPASS"
        assert cgw.chat(b, headers=h).headers["x-aigw-cache"] == \
            ("MISS" if i == 0 else "HIT")


def test_hit_body_has_client_model_and_cached_usage(cgw):
    """A hit for an alias returns the alias as the model (escaped when it
    needs to be) and usage counted as cached, the same as the miss's."""
    r1 = cgw.chat(chat("render me", "claude-ish"))
    r2 = cgw.chat(chat("render me", "claude-ish"))
    assert r2.headers["x-aigw-cache"] == "HIT"
    j1, j2 = r1.json(), r2.json()
    assert j2["model"] == "claude-ish"
    assert j2["choices"] == j1["choices"] and j2["id"] == j1["id"]
    assert j2["usage"]["prompt_tokens"] == j1["usage"]["prompt_tokens"]
    assert j2["usage"]["prompt_tokens_details"]["cached_tokens"] == \
        j1["usage"]["prompt_tokens"]
    # the stream shape of the same entry still replays
    r3 = cgw.chat(dict(chat("render me", "claude-ish"), stream=True))
    assert r3.headers["x-aigw-cache"] == "HIT"
    assert stream_text(r3) == j1["choices"][0]["message"]["content"]
