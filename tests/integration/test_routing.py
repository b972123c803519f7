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


# --- waits between attempts, and the timeouts of an attempt -------------

@pytest.fixture(scope="module")
def wgw(mock, tls_mock, test_ca):
    g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%(m)d/v1 key_env=AIGW_TEST_KEY;
    ai_provider tls  url=https://127.0.0.1:%(tls)d/v1 host=localhost
                ssl_trusted_certificate=%(ca)s/ca.crt key_env=AIGW_TEST_KEY;
    ai_provider fbt url=http://127.0.0.1:%(m)d/v1 key_env=AIGW_TEST_KEY
                first_byte_timeout=500ms idle_timeout=5s;
    ai_provider tot url=http://127.0.0.1:%(m)d/v1 key_env=AIGW_TEST_KEY
                total_timeout=1s;
    ai_provider anthropic url=http://127.0.0.1:%(m)d/v1 format=anthropic
                key_env=AIGW_TEST_KEY;

    ai_model ra-ms    mock:gpt-w1-flaky1-error-429-ra300ms retries=2
                      breaker=1000/10s;
    ai_model ra-date  mock:gpt-w2-flaky1-error-429-radate1 retries=2
                      breaker=1000/10s;
    ai_model ra-long  mock:gpt-w3-error-429-ra30s retries=3 budget=2s
                      breaker=1000/10s;
    ai_model ra-other mock:gpt-w4-error-429-ra30s mock:gpt-w4-ok
                      strategy=round_robin breaker=1000/10s;
    ai_model backing  mock:gpt-w5-error-500 retries=4 backoff=100ms
                      jitter=none breaker=1000/10s;
    ai_model budgeted mock:gpt-w6-error-503 retries=8 backoff=300ms
                      jitter=none budget=1s breaker=1000/10s;
    ai_model held     mock:gpt-w7-error-429-ra3000ms retries=2
                      breaker=1000/10s;
    ai_model ra-tls   tls:gpt-w8-flaky1-error-429-ra200ms retries=2
                      breaker=1000/10s;

    ai_model fb-slow  fbt:gpt-t1-delay1500;
    ai_model fb-ok    fbt:gpt-t2-delay100;
    ai_model fb-gaps  mock:gpt-t3-gap700-chunks4 first_byte_timeout=300ms
                      idle_timeout=3s;
    ai_model idle     mock:gpt-t4-stallat3-chunks6 idle_timeout=500ms
                      first_byte_timeout=10s;
    ai_model total    mock:gpt-t5-gap300-chunks20 total_timeout=1s
                      idle_timeout=5s;
    ai_model total-p  tot:gpt-t6-gap300-chunks20;
    ai_model total-a  anthropic:claude-t7-gap300-chunks20 total_timeout=1s;
    ai_model total-next mock:gpt-t8-delay3000 mock:gpt-t8-ok
                      strategy=round_robin total_timeout=1s
                      breaker=1000/10s;
""" % dict(m=mock.port, tls=tls_mock.port, ca=test_ca),
        "location /v1/ { ai_gateway; }",
        env={"AIGW_TEST_KEY": PROVIDER_KEY}, workers=2).start()
    yield g
    g.stop()


def attempts_of(mock, model):
    """Start times of the requests the mock saw for this provider model."""
    return [q["time"] for q in mock.requests()
            if isinstance(q["body"], dict) and q["body"].get("model") == model]


def gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


def test_retry_after_ms_is_waited_for(wgw, mock):
    r = wgw.chat(chat("ra-ms"))
    assert r.status == 200, r
    assert r.headers["x-aigw-attempts"] == "2"
    t = attempts_of(mock, "gpt-w1-flaky1-error-429-ra300ms")[-2:]
    assert gaps(t)[0] >= 0.295, t
    assert "waits" in wgw.logs()


def test_wait_over_tls(wgw, tls_mock):
    for _ in range(2):
        r = wgw.chat(chat("ra-tls", stream=True))
        assert r.status == 200, r
        assert r.headers["x-aigw-attempts"] == "2"
        assert r.events()[-1] == "[DONE]"
    t = attempts_of(tls_mock, "gpt-w8-flaky1-error-429-ra200ms")[-2:]
    assert gaps(t)[0] >= 0.195, t


def test_retry_after_http_date(wgw):
    r = wgw.chat(chat("ra-date"))
    assert r.status == 200, r
    assert r.headers["x-aigw-attempts"] == "2"


def test_retry_after_beyond_budget_passes_429(wgw, mock):
    n = len(attempts_of(mock, "gpt-w3-error-429-ra30s"))
    r = wgw.chat(chat("ra-long"))
    assert r.status == 429, r
    assert r.headers["retry-after"] == "30"
    assert r.json()["error"]["type"]
    # no second attempt, no wait: the provider's answer at once
    assert len(attempts_of(mock, "gpt-w3-error-429-ra30s")) == n + 1
    # the target cools down meanwhile: 503 with its Retry-After
    r = wgw.chat(chat("ra-long"))
    assert r.status == 503
    assert 20 <= int(r.headers["retry-after"]) <= 30


def test_retry_after_moves_to_another_target(wgw):
    rs = [wgw.chat(chat("ra-other")) for _ in range(4)]
    assert all(r.status == 200 for r in rs), rs
    assert all(r.headers["x-aigw-upstream-model"] == "gpt-w4-ok" for r in rs)


def test_backoff_grows(wgw, mock):
    r = wgw.chat(chat("backing"))
    assert r.status == 500
    assert r.headers["x-aigw-attempts"] == "4"
    t = attempts_of(mock, "gpt-w5-error-500")[-4:]
    g = gaps(t)
    assert len(g) == 3
    # 100, 200, 400 ms: never shorter (less 5 ms: nginx's timers count in
    # its cached milliseconds, the mock's clock does not)
    assert g[0] >= 0.095 and g[1] >= 0.195 and g[2] >= 0.395, g


def test_waits_stay_within_budget(wgw, mock):
    r = wgw.chat(chat("budgeted"))
    assert r.status == 503
    t = attempts_of(mock, "gpt-w6-error-503")
    n = int(r.headers["x-aigw-attempts"])
    assert 2 <= n < 8
    t = t[-n:]
    # waits of 300 and 600 ms fit in 1 s; the next (1.2 s) does not
    assert t[-1] - t[0] < 1.0, t


def worker_fds(gw):
    import os
    kids = os.popen("pgrep -P %d" % gw.proc.pid).read().split()
    return sum(len(os.listdir("/proc/%s/fd" % k)) for k in kids)


def test_client_abort_while_waiting(wgw, mock):
    import socket
    wgw.chat(chat("fb-ok"))
    time.sleep(0.3)
    before = worker_fds(wgw)
    n = len(attempts_of(mock, "gpt-w7-error-429-ra3000ms"))
    body = json.dumps(chat("held")).encode()
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", wgw.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.4)           # the first attempt failed, the wait runs
        s.close()
    time.sleep(3.5)               # past the end of every wait
    # the held attempts were never sent, their connections were closed
    assert len(attempts_of(mock, "gpt-w7-error-429-ra3000ms")) <= n + 3
    assert "waits" in wgw.logs()
    assert worker_fds(wgw) <= before + 2
    assert wgw.chat(chat("fb-ok")).status == 200


def test_first_byte_timeout(wgw):
    r = wgw.chat(chat("fb-slow"))
    assert r.status == 504
    assert r.json()["error"]["code"]
    assert wgw.chat(chat("fb-ok")).status == 200


def test_idle_timeout_is_not_first_byte_timeout(wgw):
    r = wgw.chat(chat("fb-gaps", stream=True))
    assert r.status == 200
    assert r.events()[-1] == "[DONE]"


def test_idle_timeout_mid_stream(wgw):
    r = wgw.chat(chat("idle", stream=True))
    assert r.status == 200
    ev = r.events()
    assert "[DONE]" not in ev
    assert json.loads(ev[-1])["error"]["code"] == "upstream_incomplete"


@pytest.mark.parametrize("model", ["total", "total-p", "total-a"])
def test_total_timeout_mid_stream(wgw, model):
    r = wgw.chat(chat(model, stream=True))
    assert r.status == 200
    ev = r.events()
    assert "[DONE]" not in ev
    assert len(ev) < 20
    assert "error" in json.loads(ev[-1])
    assert "exceeded total_timeout" in wgw.logs()


def test_total_timeout_before_header_tries_next(wgw):
    for _ in range(2):
        r = wgw.chat(chat("total-next"))
        assert r.status == 200, r
        assert r.headers["x-aigw-upstream-model"] == "gpt-t8-ok"
