"""Several targets per model: fallbacks, retries, breaker, weights
(issue 4)."""

import json
import threading
import time

import pytest

from conftest import PROVIDER_KEY, Gateway, free_port


@pytest.fixture(scope="module")
def rgw(mock):
    dead = free_port()
    g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%(m)d/v1 key_env=AIGW_TEST_KEY
                read_timeout=1s;
    ai_provider dead url=http://127.0.0.1:%(d)d/v1 connect_timeout=1s;
    ai_provider anthropic url=http://127.0.0.1:%(m)d/v1 format=anthropic
                key_env=AIGW_TEST_KEY;

    ai_model flaky  mock:gpt-error-500 mock:gpt-ok breaker=1000/10s;
    ai_model down   dead:gpt-x mock:gpt-ok strategy=round_robin
                    breaker=1000/10s;
    ai_model limited mock:gpt-error-429 breaker=1000/10s;
    ai_model backup anthropic:claude-backup;
    ai_model primary mock:gpt-error-503 fallback=backup breaker=1000/10s;
    ai_model weighted mock:gpt-a weight=3 mock:gpt-b weight=1;
    ai_model stalled mock:gpt-stall mock:gpt-ok2 strategy=round_robin
                     breaker=1000/10s;
    ai_model breaking mock:gpt-error-502 breaker=2/10s cooldown=2s;
    ai_model budgeted mock:gpt-stall-1 mock:gpt-stall-2 mock:gpt-stall-3
                      retries=6 budget=2500ms breaker=1000/10s;
    ai_model midstream mock:gpt-stall-chunks5 breaker=1000/10s retries=1;
""" % dict(m=mock.port, d=dead), "location /v1/ { ai_gateway; }",
        env={"AIGW_TEST_KEY": PROVIDER_KEY}, workers=2).start()
    yield g
    g.stop()


def chat(model, **kw):
    b = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    b.update(kw)
    return b


def run_many(gw, model, n, threads=10, **kw):
    out = []
    lock = threading.Lock()

    def worker(k):
        for _ in range(k):
            r = gw.chat(chat(model, **kw))
            with lock:
                out.append(r)

    ts = [threading.Thread(target=worker, args=(n // threads,))
          for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def test_failing_target_never_seen(rgw):
    rs = run_many(rgw, "flaky", 1000)
    assert len(rs) == 1000
    assert all(r.status == 200 for r in rs), [r for r in rs
                                               if r.status != 200][:3]
    assert all(r.headers["x-aigw-upstream-model"] == "gpt-ok" for r in rs)
    assert any(r.headers["x-aigw-attempts"] == "2" for r in rs)


def test_refused_connection_falls_back(rgw):
    rs = run_many(rgw, "down", 40, threads=4)
    assert all(r.status == 200 for r in rs)


def test_429_with_single_target_reaches_client(rgw):
    r = rgw.chat(chat("limited"))
    assert r.status == 429
    assert r.headers["retry-after"] == "1"


def test_fallback_model_in_another_format(rgw, mock):
    r = rgw.chat(chat("primary"))
    assert r.status == 200, r
    assert r.headers["x-aigw-provider"] == "anthropic"
    assert mock.last()["path"] == "/v1/messages"
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "primary"
    r = rgw.chat(chat("primary", stream=True))
    assert r.status == 200
    assert r.events()[-1] == "[DONE]"


def test_weights_respected(rgw):
    rs = run_many(rgw, "weighted", 400)
    a = sum(1 for r in rs if r.headers["x-aigw-upstream-model"] == "gpt-a")
    assert 0.65 < a / 400 < 0.85, a


def test_stall_before_headers_falls_back(rgw):
    t = time.time()
    r = rgw.chat(chat("stalled"))
    r2 = rgw.chat(chat("stalled"))
    assert r.status == 200 and r2.status == 200
    assert time.time() - t < 6


def test_breaker_opens_probes_and_is_shared(rgw):
    assert rgw.chat(chat("breaking")).status == 502
    assert rgw.chat(chat("breaking")).status == 502
    # open: both workers answer 503 at once, with Retry-After
    for _ in range(6):
        r = rgw.chat(chat("breaking"))
        assert r.status == 503, r
        assert r.json()["error"]["code"] == "providers_unavailable"
        assert 1 <= int(r.headers["retry-after"]) <= 3
    time.sleep(2.6)
    # half-open: one probe goes through (and fails again: reopened)
    assert rgw.chat(chat("breaking")).status == 502
    assert rgw.chat(chat("breaking")).status == 503
    assert "cooling down" in rgw.logs()


def test_time_budget(rgw):
    t = time.time()
    r = rgw.chat(chat("budgeted"))
    took = time.time() - t
    assert r.status == 504
    assert took < 2.5 + 1.0 + 0.5, took      # one timeout step at most


def test_mid_stream_failure_is_an_error_event(rgw):
    r = rgw.chat(chat("midstream", stream=True))
    assert r.status == 200
    ev = r.events()
    assert "[DONE]" not in ev
    assert json.loads(ev[-1])["error"]["code"] == "upstream_incomplete"
