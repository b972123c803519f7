"""Tenants, virtual keys and their limits, in shared memory (issue 10)."""

import hashlib
import json
import os
import threading
import time

import pytest

from conftest import PROVIDER_KEY, Gateway, make_workdir

KEYS = {
    "a": "aigw-team-a-key-000000000000000000000001",
    "a2": "aigw-team-a-key-000000000000000000000002",
    "b": "aigw-team-b-key-000000000000000000000003",
    "revoked": "aigw-revoked-key-0000000000000000000004",
    "expired": "aigw-expired-key-0000000000000000000005",
    "tok": "aigw-tokens-key-00000000000000000000006",
    "conc": "aigw-conc-key-0000000000000000000000007",
    "budget": "aigw-budget-key-00000000000000000000008",
}


def sha(k):
    return hashlib.sha256(k.encode()).hexdigest()


def tenants_file():
    t = {"tenants": {
        "team-a": {
            "models": ["gpt-4o", "slow"],
            "limits": {"requests_per_minute": 5},
            "keys": [{"id": "main", "sha256": sha(KEYS["a"])},
                     {"id": "second", "sha256": sha(KEYS["a2"]),
                      "limits": {"requests_per_minute": 2}}]},
        "team-b": {
            "limits": {"requests_per_minute": 40},
            "keys": [{"id": "b", "sha256": sha(KEYS["b"])},
                     {"id": "old", "sha256": sha(KEYS["revoked"]),
                      "revoked": True},
                     {"id": "gone", "sha256": sha(KEYS["expired"]),
                      "expires": "2020-01-01T00:00:00Z"}]},
        "team-tok": {
            "limits": {"tokens_per_minute": 400},
            "keys": [{"id": "t", "sha256": sha(KEYS["tok"])}]},
        "team-conc": {
            "limits": {"concurrent": 1},
            "keys": [{"id": "c", "sha256": sha(KEYS["conc"])}]},
        "team-budget": {
            "limits": {"budget_per_day": 0.0001},
            "keys": [{"id": "m", "sha256": sha(KEYS["budget"])}]},
    }}
    d = make_workdir("aigw-tenants-")
    path = os.path.join(d, "tenants.json")
    with open(path, "w") as f:
        json.dump(t, f)
    return path


@pytest.fixture(scope="module")
def tgw(mock):
    g = Gateway("""
    ai_provider mock url=http://127.0.0.1:%d/v1 key_env=AIGW_TEST_KEY;
    ai_model gpt-4o mock:gpt-4o-mock;
    ai_model other  mock:gpt-4o-other;
    ai_model slow   mock:gpt-4o-slow-chunks4;
    ai_tenants %s;
    ai_limits zone=aigw_limits:1m reserve=100;
    ai_price gpt-4o input=2.5 output=10;
""" % (mock.port, tenants_file()), "location /v1/ { ai_gateway; }",
        env={"AIGW_TEST_KEY": PROVIDER_KEY}, workers=2).start()
    yield g
    g.stop()


def chat(model="gpt-4o", **kw):
    b = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    b.update(kw)
    return b


def auth(k):
    return {"Authorization": "Bearer " + KEYS[k]}


def test_missing_and_bad_keys(tgw):
    r = tgw.chat(chat())
    assert r.status == 401
    assert r.json()["error"]["code"] == "missing_api_key"
    r = tgw.chat(chat(), headers={"Authorization": "Bearer nope"})
    assert r.status == 401
    assert r.json()["error"]["message"] == "Incorrect API key provided."
    r = tgw.chat(chat(), headers=auth("revoked"))
    assert r.status == 401 and "revoked" in r.json()["error"]["message"]
    r = tgw.chat(chat(), headers=auth("expired"))
    assert r.status == 401 and "expired" in r.json()["error"]["message"]
    r = tgw.request("GET", "/v1/models")
    assert r.status == 401


def test_key_in_x_api_key(tgw):
    r = tgw.chat(chat(), headers={"x-api-key": KEYS["b"]})
    assert r.status == 200


def test_model_allow_list(tgw):
    r = tgw.chat(chat("other"), headers=auth("a"))
    assert r.status == 403
    assert r.json()["error"]["code"] == "model_not_allowed"
    assert tgw.chat(chat("other"), headers=auth("b")).status == 200


def test_requests_per_minute_per_key_and_tenant(tgw, mock):
    # key "second" allows 2 per minute; tenant team-a allows 5
    codes = [tgw.chat(chat(), headers=auth("a2")).status for _ in range(3)]
    assert codes == [200, 200, 429]
    r = tgw.chat(chat(), headers=auth("a2"))
    assert r.status == 429
    e = r.json()["error"]
    assert e["code"] == "rate_limit_exceeded" and e["type"] == "requests"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert "k:team-a:second" in e["message"]
    # the tenant has 3 left, then refuses
    codes = [tgw.chat(chat(), headers=auth("a")).status for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_ratelimit_headers(tgw):
    r = tgw.chat(chat(), headers=auth("b"))
    assert r.status == 200
    assert r.headers["x-ratelimit-limit-requests"] == "40"
    left = int(r.headers["x-ratelimit-remaining-requests"])
    r = tgw.chat(chat(), headers=auth("b"))
    assert int(r.headers["x-ratelimit-remaining-requests"]) == left - 1
    assert r.headers["x-ratelimit-reset-requests"].endswith("s")


def test_tokens_refused_before_the_provider(tgw, mock):
    n = len(mock.requests())
    r = tgw.chat(chat(max_tokens=5000), headers=auth("tok"))
    assert r.status == 429
    assert r.json()["error"]["type"] == "tokens"
    assert len(mock.requests()) == n          # never reached the provider


def test_stream_usage_counted_and_hidden(tgw, mock):
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)
    r = tgw.chat(chat(stream=True, max_tokens=50), headers=auth("tok"))
    assert r.status == 200
    up = mock.last()["body"]
    assert up["stream_options"] == {"include_usage": True}
    events = r.events()
    assert events[-1] == "[DONE]"
    assert all('"usage":{' not in e for e in events)   # client did not ask
    usage = [json.loads(e) for e in mock.last()["response_body"]
             .split("data: ")[1:-1] if '"usage":{' in e]
    used = usage[-1]["usage"]["total_tokens"]
    # the limiter holds exactly what the provider reported (not the estimate)
    time.sleep(0.1)
    u = tgw.request("GET", "/v1/usage", headers=auth("tok")).json()
    assert u["windows"]["tokens_per_minute"]["used"] == used
    assert u["windows"]["tokens_per_day"]["used"] >= used
    # the next response shows exactly what was used (reservation undone)
    r2 = tgw.chat(chat(max_tokens=10), headers=auth("tok"))
    assert r2.status == 200
    left = int(r2.headers["x-ratelimit-remaining-tokens"])
    second = mock.last()["response_body"]
    used2 = json.loads(second)["usage"]["total_tokens"]
    # remaining is computed after the second reservation (estimate)
    assert left <= 400 - used
    time.sleep(0.2)
    r3 = tgw.chat(chat(max_tokens=1), headers=auth("tok"))
    left3 = int(r3.headers["x-ratelimit-remaining-tokens"])
    assert left3 <= 400 - used - used2


def test_concurrency_limit(tgw):
    results = []

    def slow():
        results.append(tgw.chat(chat("slow", stream=True),
                                headers=auth("conc")).status)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.1)
    r = tgw.chat(chat(), headers=auth("conc"))
    t.join()
    assert results == [200]
    assert r.status == 429
    assert "concurrent" in r.json()["error"]["message"]
    # the slot is given back when the stream ends
    assert tgw.chat(chat(), headers=auth("conc")).status == 200


def test_budget(tgw):
    # $0.0001 a day = 100 micro-USD; a request costs ~2.5*prompt+10*completion
    codes = [tgw.chat(chat(max_tokens=5), headers=auth("budget")).status
             for _ in range(6)]
    assert 429 in codes
    r = tgw.chat(chat(max_tokens=5), headers=auth("budget"))
    assert r.status == 429
    assert r.json()["error"]["code"] == "insufficient_quota"


def test_exact_across_workers(tgw):
    # team-b: 40 per minute; some were used above
    r = tgw.chat(chat(), headers=auth("b"))
    left = int(r.headers["x-ratelimit-remaining-requests"])
    statuses = []
    lock = threading.Lock()

    def one():
        s = tgw.chat(chat(), headers=auth("b")).status
        with lock:
            statuses.append(s)

    threads = [threading.Thread(target=one) for _ in range(left + 15)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(200) == left
    assert statuses.count(429) == 15


def test_keys_never_logged(tgw):
    logs = tgw.logs()
    for k in KEYS.values():
        assert k not in logs
    assert PROVIDER_KEY not in logs


def test_usage_api(tgw):
    r = tgw.request("GET", "/v1/usage", headers=auth("b"))
    assert r.status == 200, r
    u = r.json()
    assert u["tenant"] == "team-b" and u["key_id"] == "b"
    w = u["windows"]["requests_per_minute"]
    assert w["limit"] == 40
    assert w["used"] + w["remaining"] == 40
    assert u["windows"]["tokens_per_day"]["limit"] is None
    assert u["windows"]["tokens_per_day"]["used"] > 0
    r = tgw.request("GET", "/v1/usage")
    assert r.status == 401
